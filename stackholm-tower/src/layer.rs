//! The layer: configuration shared by every service it wraps.

use std::fmt;

use http::request::Parts;
use stackholm::{Checkpoint, Storage, DEFAULT};
use tower_layer::Layer;

use crate::service::StackholmService;

/// Gives each request its own root checkpoint, in a fresh task-local stack.
///
/// Every request handled by the wrapped service runs in a task-local scope of
/// its own ([`Storage::scope`]): the synchronous part of the inner service's
/// `call`, every poll of its response future, and every poll of the response
/// body. Nothing set while handling one request is visible to another, even
/// on the same worker thread. The stack is dropped when the response body
/// ends, or when the response or its body is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::{routing::get, Router};
/// use stackholm::{Checkpoint, Key, DEFAULT};
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
///     StackholmLayer::new().seed(|parts| {
///         let id = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok());
///         Checkpoint::new().with_value(&REQUEST_ID, id.unwrap_or("-").to_owned())
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

    /// Pre-loads each request's root checkpoint with what `seed` returns for
    /// the request's head: a request id from a header, the matched path, a
    /// user an outer layer put in the extensions.
    #[must_use]
    pub fn seed<F>(self, seed: F) -> StackholmLayer<F>
    where
        F: Fn(&Parts) -> Checkpoint,
    {
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

/// What pre-loads a request's root checkpoint; see
/// [`StackholmLayer::seed`].
///
/// Implemented for every `Fn(&Parts) -> Checkpoint`, and by [`EmptyRoot`];
/// sealed, as `seed` takes closures only, so that their argument type is
/// inferred.
pub trait SeedRoot: sealed::Sealed {
    /// The root checkpoint for a request with this head.
    fn seed(&self, parts: &Parts) -> Checkpoint;
}

mod sealed {
    use super::{Checkpoint, EmptyRoot, Parts};

    pub trait Sealed {}

    impl<F: Fn(&Parts) -> Checkpoint> Sealed for F {}
    impl Sealed for EmptyRoot {}
}

impl<F> SeedRoot for F
where
    F: Fn(&Parts) -> Checkpoint,
{
    fn seed(&self, parts: &Parts) -> Checkpoint {
        self(parts)
    }
}

/// Opens every root checkpoint empty: the default [`SeedRoot`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyRoot;

impl SeedRoot for EmptyRoot {
    fn seed(&self, _parts: &Parts) -> Checkpoint {
        Checkpoint::new()
    }
}
