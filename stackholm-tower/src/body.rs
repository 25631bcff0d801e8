//! The response body: polled inside the request's scope.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use stackholm::{Scope, Storage};

use crate::end::RequestEnd;

pin_project! {
    /// A response body polled inside its request's scope, so that streaming
    /// bodies (server-sent events, chunked downloads) read the request's
    /// values as the handler did.
    ///
    /// The scope, with its stack, is dropped as soon as the body ends, or
    /// with the body; the inner body is dropped inside it (or without it,
    /// where the scope cannot be run then: inside a `with` closure of its
    /// storage, or on an exiting thread).
    ///
    /// A root exit hook (or a value's destructor) that panics once the body
    /// is complete, or when the body is dropped before it, is reported by
    /// the panic hook, as every panic is, and goes no further: the response
    /// is sent whole, and the panic does not reach the connection.
    pub struct ScopedBody<B> {
        #[pin]
        body: Option<B>,
        scope: Option<Scope>,
        storage: Storage,
    }

    impl<B> PinnedDrop for ScopedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // With a scope left, dropped before its end: the response was
            // not sent whole.
            drop_unfinished(this.body, this.scope);
        }
    }
}

impl<B: Body> ScopedBody<B> {
    /// A body that is empty from the start (a `204`, a `HEAD` response) may
    /// never be polled: its request ends with its head.
    pub(crate) fn new(body: B, mut scope: Option<Scope>, storage: Storage) -> Self {
        if body.is_end_stream() {
            if let Some(scope) = &mut scope {
                let _ = scope.try_run(|| complete(storage));
            }
            end(&mut scope);
        }
        Self {
            body: Some(body),
            scope,
            storage,
        }
    }
}

impl<B> ScopedBody<B> {
    /// The inner body.
    pub fn get_ref(&self) -> &B {
        self.body.as_ref().expect(PRESENT)
    }

    /// The inner body, mutably.
    pub fn get_mut(&mut self) -> &mut B {
        self.body.as_mut().expect(PRESENT)
    }

    /// The inner body, taken out of the request's scope: polled afterwards,
    /// it no longer sees the request's values. The scope is dropped here,
    /// with the values still in it.
    pub fn into_inner(mut self) -> B {
        self.body.take().expect(PRESENT)
    }
}

const PRESENT: &str = "the inner body is present until `ScopedBody` is dropped";

/// What a body's `poll_frame` gives.
type Polled<B> = Poll<Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>>;

/// Whether `polled` is the body's last frame.
fn ended<B: Body>(polled: &Polled<B>, body: &Pin<&mut B>) -> bool {
    match polled {
        Poll::Ready(None) => true,
        // A server need not poll a body again once it says it is at its
        // end (hyper does not, for a body of known length).
        Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
        _ => false,
    }
}

/// Tells the root's exit hooks that the body was sent whole; run inside
/// the request's scope.
fn complete(storage: Storage) {
    RequestEnd::record(storage, |end| end.body_complete = true);
}

/// The response is complete: the request's values go now, not whenever the
/// connection gets round to dropping the body.
///
/// Dropping the scope runs the root's exit hooks and its values'
/// destructors, which may panic (the first panic is resumed once all have
/// run). Nothing is left to fail by then: the panic hook has reported the
/// panic, and unwinding on into the server would only drop the connection,
/// with the complete response still in its buffer.
pub(crate) fn end(scope: &mut Option<Scope>) {
    if let Some(scope) = scope.take() {
        // Unwind safe: the scope is gone whether it panics or not, and the
        // stack it ran in is taken back from the thread on the way out.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(scope)));
    }
}

/// Drops what a request left unfinished, its future or its body, inside
/// its scope if it still has one (without it where the scope cannot be run:
/// inside a `with` closure of its storage, or on an exiting thread), then
/// ends the scope as [`end`] does, told the request was cancelled.
pub(crate) fn drop_unfinished<T>(mut inner: Pin<&mut Option<T>>, scope: &mut Option<Scope>) {
    if let Some(scope) = scope.as_mut() {
        scope.cancel();
        let _ = scope.try_run(|| inner.set(None));
    }
    inner.set(None);
    end(scope);
}

impl<B: Body> Body for ScopedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut body = this.body.as_pin_mut().expect(PRESENT);
        let storage = *this.storage;
        let (polled, ended) = match this.scope.as_mut() {
            Some(scope) => scope.run(|| {
                let polled = body.as_mut().poll_frame(cx);
                let ended = ended(&polled, &body);
                if ended {
                    complete(storage);
                }
                (polled, ended)
            }),
            None => (body.as_mut().poll_frame(cx), false),
        };
        if ended {
            end(this.scope);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.get_ref().is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.get_ref().size_hint()
    }
}

impl<B> fmt::Debug for ScopedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedBody")
            .field("body", &std::any::type_name::<B>())
            .field("scope", &self.scope)
            .finish()
    }
}
