//! The layer: configuration shared by every service it wraps.

use std::fmt;

use http::request::Parts;
use stackholm::{Storage, DEFAULT};
use tower_layer::Layer;

use crate::seed::{EmptyRoot, Root, SeedRoot};
use crate::service::StackholmService;

/// Gives each request its own root checkpoint, in a fresh task-local stack.
///
/// Every request handled by the wrapped service runs in a task-local scope of
/// its own ([`Storage::scope`]): the synchronous part of the inner service's
/// `call`, every poll of its response future, and every poll of the response
/// body. Nothing set while handling one request is visible to another, even
/// on the same worker thread. The stack is dropped when the response body
/// ends, or when the response or its body is dropped. A root exit hook that
/// panics once the response is complete (its body sent to the end, or empty
/// from the start) is reported by the panic hook and does not reach the
/// connection; see [`ScopedBody`](crate::ScopedBody).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::{routing::get, Router};
/// use stackholm::{Key, DEFAULT};
/// use stackholm_tower::StackholmLayer;
/// use tower::ServiceExt;
///
/// static REQUEST_ID: Key<String> = Key::new("request_id");
///
/// async fn handler() -> String {
///     DEFAULT.get(&REQUEST_ID).unwrap_or_default()
/// }
///
/// let app = Router::new().route("/", get(handler)).layer(
///     StackholmLayer::new().seed(|parts, root| {
///         let id = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok());
///         root.set(&REQUEST_ID, id.unwrap_or("-").to_owned());
///     }),
/// );
///
/// let request = http::Request::get("/").header("x-request-id", "r-1").body(axum::body::Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
/// assert_eq!(body, "r-1");
/// # }
/// ```
#[derive(Clone)]
pub struct StackholmLayer<R = EmptyRoot> {
    storage: Storage,
    seed: R,
}

impl StackholmLayer {
    /// A layer opening an empty root checkpoint on [`DEFAULT`] per request.
    #[must_use]
    pub fn new() -> Self {
        Self {
            storage: DEFAULT,
            seed: EmptyRoot,
        }
    }
}

impl Default for StackholmLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> StackholmLayer<R> {
    /// Opens the root checkpoints on `storage` instead of [`DEFAULT`].
    #[must_use]
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Adds `seed`, a closure, to what fills each request's root checkpoint
    /// from the request's head, after the seeds before it: a request id
    /// from a header, the matched path, a user an outer layer put in the
    /// extensions.
    ///
    /// After [`seed_with`](Self::seed_with), it runs once that seed has
    /// filled the root, and sees what it set: here a request id is made
    /// when the client sent none.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use axum::{routing::get, Router};
    /// use stackholm::{Key, DEFAULT};
    /// use stackholm_tower::propagation::{Direction, Propagation};
    /// use stackholm_tower::StackholmLayer;
    /// use tower::ServiceExt;
    ///
    /// static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
    /// static NEXT: AtomicU64 = AtomicU64::new(1);
    ///
    /// let propagation = Propagation::new().header("x-request-id", &REQUEST_ID, Direction::Both);
    /// let layer = StackholmLayer::new()
    ///     .seed_with(propagation)
    ///     .seed(|_parts, root| {
    ///         if root.get(&REQUEST_ID).is_none() {
    ///             let id = NEXT.fetch_add(1, Ordering::Relaxed);
    ///             root.set(&REQUEST_ID, format!("gen-{id}"));
    ///         }
    ///     });
    /// let app = Router::new()
    ///     .route("/", get(|| async { DEFAULT.get(&REQUEST_ID).unwrap_or_default() }))
    ///     .layer(layer);
    ///
    /// let sent = http::Request::get("/").header("x-request-id", "r-1");
    /// let made = http::Request::get("/");
    /// for (request, id) in [(sent, "r-1"), (made, "gen-1")] {
    ///     let response = app.clone().oneshot(request.body(axum::body::Body::empty()).unwrap());
    ///     let body = axum::body::to_bytes(response.await.unwrap().into_body(), 64).await.unwrap();
    ///     assert_eq!(body, id);
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn seed<F>(self, seed: F) -> StackholmLayer<(R, F)>
    where
        F: Fn(&Parts, &mut Root<'_>),
    {
        StackholmLayer {
            storage: self.storage,
            seed: (self.seed, seed),
        }
    }

    /// Sets what fills each request's root checkpoint to `seed`, any
    /// [`SeedRoot`], in place of the seeds before it: the form for a
    /// [`Propagation`](crate::propagation::Propagation), or for a seed type
    /// of your own, so that the layer's type can be named.
    /// [`seed`](Self::seed) adds closures after it.
    #[must_use]
    pub fn seed_with<S: SeedRoot>(self, seed: S) -> StackholmLayer<S> {
        StackholmLayer {
            storage: self.storage,
            seed,
        }
    }
}

impl<S, R: Clone> Layer<S> for StackholmLayer<R> {
    type Service = StackholmService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        StackholmService::new(inner, self.storage, self.seed.clone())
    }
}

impl<R> fmt::Debug for StackholmLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackholmLayer")
            .field("storage", &self.storage)
            .field("seed", &std::any::type_name::<R>())
            .finish()
    }
}
