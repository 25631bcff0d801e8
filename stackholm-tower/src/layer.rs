//! The layer: configuration shared by every service it wraps.

use std::fmt;
use std::marker::PhantomData;

use http::request::Parts;
use stackholm::{Key, Storage, DEFAULT};
use tower_layer::Layer;

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

    /// Fills each request's root checkpoint from the request's head with
    /// `seed`: a request id from a header, the matched path, a user an outer
    /// layer put in the extensions.
    #[must_use]
    pub fn seed<F>(self, seed: F) -> StackholmLayer<F>
    where
        F: Fn(&Parts, &mut Root<'_>),
    {
        self.seed_with(seed)
    }

    /// Fills each request's root checkpoint with `seed`, any [`SeedRoot`]:
    /// the form for a seed type of your own, so that the layer's type can be
    /// named. [`seed`](Self::seed) is the form for closures.
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

/// What fills a request's root checkpoint; see [`StackholmLayer::seed`]
/// and [`StackholmLayer::seed_with`].
///
/// Implemented for every `Fn(&Parts, &mut Root<'_>)`, by [`EmptyRoot`],
/// by [`Propagation`](crate::propagation::Propagation) (declared headers
/// and baggage members), and by pairs of seeds. Implement it on a type of your own to name the layer's
/// type, as tower-http's `MakeRequestId` allows:
///
/// ```
/// use http::request::Parts;
/// use stackholm::Key;
/// use stackholm_tower::{Root, SeedRoot, StackholmLayer};
///
/// static TENANT: Key<String> = Key::new("tenant");
///
/// #[derive(Clone)]
/// struct TenantFromHost;
///
/// impl SeedRoot for TenantFromHost {
///     fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
///         if let Some(host) = parts.uri.host() {
///             root.set(&TENANT, host.to_owned());
///         }
///     }
/// }
///
/// // The layer's type can be written down, in a struct field or a signature.
/// fn context_layer() -> StackholmLayer<TenantFromHost> {
///     StackholmLayer::new().seed_with(TenantFromHost)
/// }
/// # let _ = context_layer();
/// ```
pub trait SeedRoot {
    /// Sets the root checkpoint's values for a request with this head.
    fn seed(&self, parts: &Parts, root: &mut Root<'_>);
}

impl<F> SeedRoot for F
where
    F: Fn(&Parts, &mut Root<'_>),
{
    fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
        self(parts, root);
    }
}

/// Two seeds, the first then the second: a
/// [`Propagation`](crate::propagation::Propagation) and a seed of your own,
/// say.
impl<A: SeedRoot, B: SeedRoot> SeedRoot for (A, B) {
    fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
        self.0.seed(parts, root);
        self.1.seed(parts, root);
    }
}

/// Leaves every root checkpoint empty: the default [`SeedRoot`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyRoot;

impl SeedRoot for EmptyRoot {
    fn seed(&self, _parts: &Parts, _root: &mut Root<'_>) {}
}

/// A request's root checkpoint, as a [`SeedRoot`] fills it.
///
/// The seed runs inside the request's scope, before the inner service is
/// called: its values go straight into the request's task-local stack,
/// which is reused from an earlier request on the same worker thread, so
/// seeding allocates nothing of its own once the worker is warm (the values
/// may, a `String` say).
pub struct Root<'a> {
    storage: Storage,
    _seeding: PhantomData<&'a mut ()>,
}

impl Root<'_> {
    pub(crate) fn new(storage: Storage) -> Self {
        debug_assert_eq!(storage.depth(), 1, "the root is the stack's one checkpoint");
        Self {
            storage,
            _seeding: PhantomData,
        }
    }

    /// Sets a value in the root: visible to the whole request (or, for a
    /// [private](stackholm::Key::private) key, to the root checkpoint only),
    /// also from inside a checkpoint the seed entered.
    ///
    /// # Panics
    ///
    /// If called inside a [`with`](stackholm::Storage::with) closure of the
    /// layer's storage, where the stack cannot be changed: read the value
    /// out first.
    #[track_caller]
    pub fn set<T: Send + 'static>(&mut self, key: &'static Key<T>, value: T) {
        // The root is there: the seed runs in the request's scope.
        if let Err(refused) = self.storage.set_root(key, value) {
            panic!(
                "stackholm-tower: a seed cannot set `{}`: {refused}",
                key.name()
            );
        }
    }

    /// A clone of the nearest value of `key`, if set: the root's, unless
    /// the seed entered a checkpoint of its own.
    #[must_use]
    pub fn get<T: Clone + Send + 'static>(&self, key: &'static Key<T>) -> Option<T> {
        self.storage.get(key)
    }
}

impl fmt::Debug for Root<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Root")
            .field("storage", &self.storage)
            .finish()
    }
}
