//! How a request ended, for the exit hooks of its root checkpoint.

use std::cell::Cell;

use http::StatusCode;
use stackholm::{Key, Storage};

/// How a request ended, as far as [`StackholmLayer`](crate::StackholmLayer)
/// saw it: what a root exit hook
/// ([`Storage::on_root_exit`](stackholm::Storage::on_root_exit)) reads to
/// decide whether to commit or roll back.
///
/// Together with the hook's [`Outcome`](stackholm::Outcome) it tells every
/// ending apart:
///
/// | the request | outcome | `status()` | `body_complete()` |
/// |---|---|---|---|
/// | answered, body sent to the end | `Left` | `Some(status)` | `true` |
/// | answered, body dropped early (the client went away) | `Cancelled` | `Some(status)` | `false` |
/// | dropped before the answer (the client went away) | `Cancelled` | `None` | `false` |
/// | the inner service returned an error | `Left` | `None` | `false` |
/// | the handler panicked | `Unwound` | `None` | `false` |
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
///                 let end = RequestEnd::current(DEFAULT).expect("inside the request");
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
    pub(crate) status: Option<StatusCode>,
    pub(crate) body_complete: bool,
}

/// Where the layer keeps it: in the request's root, for no other task.
/// In a cell, so that recording the request's end is one read of the
/// storage, not a read and a write. Not inherited: spawned work has no
/// end of the request to record or read.
static END: Key<Cell<RequestEnd>> = Key::new("stackholm_tower::request_end");

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

    /// Whether the request succeeded: a 2xx or 3xx response, its body sent
    /// to the end.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.body_complete
            && self
                .status
                .is_some_and(|status| status.is_success() || status.is_redirection())
    }

    /// How the current request has ended so far, on `storage` (the
    /// layer's, [`DEFAULT`](stackholm::DEFAULT) unless it was given
    /// another); `None` outside a request of a
    /// [`StackholmLayer`](crate::StackholmLayer).
    #[must_use]
    pub fn current(storage: Storage) -> Option<Self> {
        storage.with(&END, |end| end.map(Cell::get))
    }

    /// Puts the request's end, nothing known yet, in its root; run inside
    /// the request's scope, first.
    pub(crate) fn begin(storage: Storage) {
        let _ = storage.set_root(&END, Cell::new(Self::default()));
    }

    /// Records a change in the request's root; run inside the request's
    /// scope.
    pub(crate) fn record(storage: Storage, change: impl FnOnce(&mut Self)) {
        storage.with(&END, |end| {
            if let Some(end) = end {
                let mut changed = end.get();
                change(&mut changed);
                end.set(changed);
            }
        });
    }
}
