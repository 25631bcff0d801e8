//! How a request ends: what its root's exit hooks and the layer's
//! [`OnEnd`] hook are told, and the one place the response future and the
//! body end the request's scope.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;

use http::header::HeaderName;
use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use stackholm::{Outcome, Scope, Storage};

/// How a request ended, as far as [`StackholmLayer`](crate::StackholmLayer)
/// saw it: what a root exit hook
/// ([`Storage::on_root_exit`](stackholm::Storage::on_root_exit)) reads to
/// decide whether to commit or roll back, and what the layer's own hook
/// ([`StackholmLayer::on_end`](crate::StackholmLayer::on_end)) is told.
///
/// Together with the hook's [`Outcome`] it tells every ending apart:
///
/// | the request | outcome | `status()` | `body_complete()` |
/// |---|---|---|---|
/// | answered, body sent to the end | `Left` | `Some(status)` | `true` |
/// | answered, body dropped early (the client went away) | `Cancelled` | `Some(status)` | `false` |
/// | dropped before the answer (the client went away) | `Cancelled` | `None` | `false` |
/// | the inner service returned an error | `Left` | `None` | `false` |
/// | the handler panicked | `Unwound` | `None` | `false` |
///
/// A gRPC call (a tonic service, say) is answered `200 OK` however it
/// ends: its own status is a `grpc-status` code, which
/// [`grpc_status`](Self::grpc_status) reads, and a call whose code is not
/// `0` (OK) has not [`succeeded`](Self::succeeded):
///
/// | the call | outcome | `status()` | `grpc_status()` | `body_complete()` |
/// |---|---|---|---|---|
/// | answered OK, unary or streamed to the end | `Left` | `Some(200)` | `Some(0)` | `true` |
/// | failed before answering (the handler returned `Err(status)`: a trailers-only response) | `Left` | `Some(200)` | `Some(code)` | `true` |
/// | failed in the middle of a stream (the status in its trailers) | `Left` | `Some(200)` | `Some(code)` | `true` |
/// | cancelled by the client (mid-stream, or before the answer) | `Cancelled` | `Some(200)` or `None` | `None` | `false` |
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::{Arc, Mutex};
/// use axum::{routing::get, Router};
/// use stackholm::{Outcome, DEFAULT};
/// use stackholm_tower::{RequestEnd, StackholmLayer};
/// use tower::ServiceExt;
///
/// let endings = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&endings);
/// let handler = move || {
///     let sink = Arc::clone(&sink);
///     async move {
///         DEFAULT
///             .on_root_exit(move |outcome| {
///                 let end = RequestEnd::current(DEFAULT).expect("inside the request's end");
///                 sink.lock().unwrap().push((outcome, end.succeeded()));
///             })
///             .unwrap();
///         "done"
///     }
/// };
/// let app = Router::new().route("/", get(handler)).layer(StackholmLayer::new());
///
/// let request = http::Request::get("/").body(axum::body::Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
/// assert_eq!(*endings.lock().unwrap(), [(Outcome::Left, true)]);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestEnd {
    status: Option<StatusCode>,
    grpc: GrpcStatus,
    body_complete: bool,
}

thread_local! {
    /// The storage of the request running on this thread: set, with
    /// `ENDED`, around each run of the request's scope and its end, rather
    /// than kept in its stack, so that a request whose end nobody reads
    /// pays for no value there.
    static RUNNING: Cell<Option<Storage>> = const { Cell::new(None) };
    /// How the running request has ended so far: a cell of its own, so that
    /// recording it writes four bytes.
    static ENDED: Cell<RequestEnd> = const {
        Cell::new(RequestEnd {
            status: None,
            grpc: GrpcStatus::UNSEEN,
            body_complete: false,
        })
    };
    /// The requests of other storages the running one is nested in (a
    /// layer behind a layer of another storage), innermost last: looked
    /// into only when asked for another storage than the running one's.
    static OUTER: RefCell<Vec<(Storage, RequestEnd)>> = const { RefCell::new(Vec::new()) };
}

impl RequestEnd {
    /// The status of the response, once its head was produced; `None` if
    /// there was no response (the inner service failed or panicked, or the
    /// request was dropped before it).
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// Whether the response body was sent to its end.
    #[must_use]
    pub fn body_complete(&self) -> bool {
        self.body_complete
    }

    /// The gRPC status code of the call, `0` if it succeeded: the
    /// `grpc-status` of the response head (a trailers-only response, as a
    /// handler that returns an error sends) or, where the head has none, of
    /// the trailers (sent at the end of every call that got as far as its
    /// body, and of a stream that failed midway). Compare it with
    /// `tonic::Code::Internal as i32`, or read it with
    /// `tonic::Code::from_i32`.
    ///
    /// `None` for a response that is not gRPC, a call cancelled before its
    /// trailers, and a `grpc-status` that is not an integer: such a response
    /// succeeds or fails by its HTTP status alone, as tower-http's
    /// `GrpcErrorsAsFailures` classifies it. An integer past the codes gRPC
    /// defines reads as `2` (UNKNOWN), as tonic reads it. The head is read
    /// where gRPC puts a status there, in a response without a body.
    #[must_use]
    pub fn grpc_status(&self) -> Option<i32> {
        self.grpc.code()
    }

    /// Whether the request succeeded: a 2xx or 3xx response, its body sent
    /// to the end, and a gRPC call's [`grpc_status`](Self::grpc_status),
    /// if it has one, `0`.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.body_complete
            && !self.grpc.failed()
            && self
                .status
                .is_some_and(|status| status.is_success() || status.is_redirection())
    }

    /// How the current request has ended so far, on `storage` (the
    /// layer's, [`DEFAULT`](stackholm::DEFAULT) unless it was given
    /// another); `None` outside a request of a
    /// [`StackholmLayer`](crate::StackholmLayer), in work it spawned too.
    #[must_use]
    pub fn current(storage: Storage) -> Option<Self> {
        match RUNNING.get()? {
            of if of == storage => Some(ENDED.get()),
            _ => OUTER
                .try_with(|outer| {
                    let outer = outer.try_borrow().ok()?;
                    let (_, end) = outer.iter().rev().find(|(of, _)| *of == storage)?;
                    Some(*end)
                })
                .ok()
                .flatten(),
        }
    }

    /// This response was produced. A body empty from the start is complete
    /// with the head, which then carries a gRPC call's status (a
    /// trailers-only response): read only there, so that a response with a
    /// body pays for no look-up in its head.
    pub(crate) fn answered<B: Body>(response: &Response<B>) -> Self {
        let status = Some(response.status());
        if response.body().is_end_stream() {
            return Self {
                status,
                grpc: GrpcStatus::of(response.headers()),
                body_complete: true,
            };
        }
        Self {
            status,
            grpc: GrpcStatus::UNSEEN,
            body_complete: false,
        }
    }

    /// The response's trailers were sent, with a gRPC call's status.
    pub(crate) fn trailers(self, trailers: &HeaderMap) -> Self {
        Self {
            grpc: GrpcStatus::of(trailers),
            ..self
        }
    }

    /// The response's body was sent to its end.
    pub(crate) fn completed(self) -> Self {
        Self {
            body_complete: true,
            ..self
        }
    }
}

/// A gRPC call's `grpc-status`, in a byte, so that recording how a request
/// ended stays a four-byte write: its code, or `UNSEEN`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct GrpcStatus(u8);

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// gRPC's UNKNOWN, and the last code it defines.
const UNKNOWN: u8 = 2;
const LAST_CODE: u8 = 16;

impl GrpcStatus {
    /// No `grpc-status` read: not a gRPC response, not yet at its
    /// trailers, or one that is not an integer.
    const UNSEEN: Self = Self(u8::MAX);

    /// The `grpc-status` in `headers`, read as tower-http's
    /// `GrpcErrorsAsFailures` reads it: text parsed as an `i32`.
    fn of(headers: &HeaderMap) -> Self {
        let code = headers
            .get(&GRPC_STATUS)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<i32>().ok());
        match code.map(u8::try_from) {
            None => Self::UNSEEN,
            Some(Ok(code)) if code <= LAST_CODE => Self(code),
            Some(_) => Self(UNKNOWN),
        }
    }

    fn code(self) -> Option<i32> {
        (self.0 <= LAST_CODE).then(|| i32::from(self.0))
    }

    /// A code other than OK.
    fn failed(self) -> bool {
        matches!(self.0, 1..=LAST_CODE)
    }
}

impl Default for GrpcStatus {
    fn default() -> Self {
        Self::UNSEEN
    }
}

impl fmt::Debug for GrpcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.code(), f)
    }
}

/// What [`StackholmLayer::on_end`](crate::StackholmLayer::on_end) runs
/// once for every request, when it ends: told the
/// [`Outcome`] its root's exit hooks are told and the [`RequestEnd`] they
/// read, inside the request's scope, with its root checkpoint and every
/// value in it still there, so that a log line written here carries the
/// request's context.
///
/// Implemented for every `Fn(Outcome, RequestEnd)`, and by `()`, which
/// does nothing and is the layer's default (a layer without a hook pays
/// nothing for one). Implement it on a type of your own to name the
/// layer's type, as tower-http's `OnResponse` allows:
///
/// ```
/// use stackholm::Outcome;
/// use stackholm_tower::{EmptyRoot, OnEnd, RequestEnd, StackholmLayer};
///
/// #[derive(Clone)]
/// struct LogFailures;
///
/// impl OnEnd for LogFailures {
///     fn on_end(&self, outcome: Outcome, end: RequestEnd) {
///         if outcome != Outcome::Left || !end.succeeded() {
///             eprintln!("request failed: {outcome}, status {:?}", end.status());
///         }
///     }
/// }
///
/// fn context_layer() -> StackholmLayer<EmptyRoot, (), LogFailures> {
///     StackholmLayer::new().on_end(LogFailures)
/// }
/// # let _ = context_layer();
/// ```
pub trait OnEnd {
    /// Told how a request ended, inside its scope. A hook that panics is
    /// reported by the panic hook, as every panic is, and goes no
    /// further: the request's scope still ends, its root exit hooks run.
    fn on_end(&self, outcome: Outcome, end: RequestEnd);
}

impl<F> OnEnd for F
where
    F: Fn(Outcome, RequestEnd),
{
    fn on_end(&self, outcome: Outcome, end: RequestEnd) {
        self(outcome, end);
    }
}

/// No hook: what a layer runs unless it is given one.
impl OnEnd for () {
    #[inline]
    fn on_end(&self, _outcome: Outcome, _end: RequestEnd) {}
}

/// Tells `hook` how the request ended: run inside the request's scope, with
/// `end` recorded. Its panic goes no further, as a root exit hook's once
/// the response is complete: the scope still has to end.
#[inline]
pub(crate) fn tell<E: OnEnd>(hook: &E, outcome: Outcome, end: RequestEnd) {
    let _ = panic::catch_unwind(AssertUnwindSafe(|| hook.on_end(outcome, end)));
}

/// Runs `f` (a run of the request's scope, or its end) with
/// [`RequestEnd::current`] giving `end` for `storage`.
#[inline(always)]
pub(crate) fn telling<R>(storage: Storage, end: RequestEnd, f: impl FnOnce() -> R) -> R {
    /// Puts back the request it displaced, also when `f` panics.
    struct Told {
        displaced: Option<Storage>,
        ended: RequestEnd,
        kept_outer: bool,
    }
    impl Drop for Told {
        #[inline(always)]
        fn drop(&mut self) {
            RUNNING.set(self.displaced);
            ENDED.set(self.ended);
            if self.kept_outer {
                drop_outer();
            }
        }
    }
    // These cells hold no value to drop, so they are never destroyed: no
    // `try_with`.
    let displaced = RUNNING.replace(Some(storage));
    let ended = ENDED.replace(end);
    let kept_outer = match displaced {
        Some(of) if of != storage => keep_outer((of, ended)),
        _ => false,
    };
    let _told = Told {
        displaced,
        ended,
        kept_outer,
    };
    f()
}

/// Takes off the request [`keep_outer`] kept.
#[cold]
#[inline(never)]
fn drop_outer() {
    let _ = OUTER.try_with(|outer| outer.try_borrow_mut().map(|mut outer| outer.pop()));
}

/// Keeps a request of another storage that a new one is nested in, where
/// [`RequestEnd::current`] finds it.
#[cold]
#[inline(never)]
fn keep_outer(request: (Storage, RequestEnd)) -> bool {
    OUTER
        .try_with(|outer| {
            outer
                .try_borrow_mut()
                .map(|mut outer| outer.push(request))
                .is_ok()
        })
        .unwrap_or(false)
}

/// Records `end` as how the running request has ended so far: what code
/// run after it in the same run of its scope reads.
pub(crate) fn record(end: RequestEnd) {
    // Outside a request it is read by nothing, and put back by the
    // telling around it.
    ENDED.set(end);
}

/// Ends a request's scope, told how the request ended: its root exit hooks
/// run and its values are dropped here. A panic of those goes on to the
/// caller.
pub(crate) fn end(scope: Scope, storage: Storage, end: RequestEnd) {
    telling(storage, end, || drop(scope));
}

/// Ends a request's scope once its response is complete: the request's
/// values go now, not whenever the connection gets round to dropping the
/// body.
pub(crate) fn end_complete(scope: Scope, storage: Storage, done: RequestEnd) {
    telling(storage, done, || drop_caught(scope));
}

/// Drops what a request left unfinished, its future or its body, inside
/// its scope if it still has one (without it where the scope cannot be run:
/// inside a `with` closure of its storage, or on an exiting thread), tells
/// `hook` there, then ends the scope as [`end_complete`] does, told the
/// request was cancelled.
pub(crate) fn end_unfinished<T, E: OnEnd>(
    mut inner: Pin<&mut Option<T>>,
    scope: Option<Scope>,
    storage: Storage,
    done: RequestEnd,
    hook: &E,
) {
    let Some(mut scope) = scope else {
        inner.set(None);
        return;
    };
    // The scope goes inside `telling` also when dropping `inner` panics,
    // so that its hooks, unwound, still read how the request ended.
    telling(storage, done, move || {
        scope.cancel();
        let outcome = scope.outcome();
        let _ = scope.try_run(|| {
            // Caught only for the hook to be told, as the root's exit hooks
            // will be, that the request unwound; the panic then goes on.
            let dropped = panic::catch_unwind(AssertUnwindSafe(|| inner.set(None)));
            let outcome = if dropped.is_err() {
                Outcome::Unwound
            } else {
                outcome
            };
            tell(hook, outcome, done);
            if let Err(panic) = dropped {
                panic::resume_unwind(panic);
            }
        });
        inner.set(None);
        drop_caught(scope);
    });
}

/// Ends a request's scope whose seed or inner service's `call` panicked,
/// telling `hook` inside the scope first.
pub(crate) fn end_unwound<E: OnEnd>(mut scope: Scope, storage: Storage, hook: &E) {
    let (outcome, done) = (scope.outcome(), RequestEnd::default());
    telling(storage, done, move || {
        let _ = scope.try_run(|| tell(hook, outcome, done));
        drop(scope);
    });
}

/// Drops a request's scope whose response is complete or gone.
///
/// A root exit hook or a value's destructor may panic (the first panic is
/// resumed once all have run). Nothing is left to fail by then: the panic
/// hook has reported the panic, and unwinding on into the server would only
/// drop the connection, with the complete response still in its buffer.
pub(crate) fn drop_caught(scope: Scope) {
    // Unwind safe: the scope is gone whether it panics or not, and the
    // stack it ran in is taken back from the thread on the way out.
    let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(scope)));
}
