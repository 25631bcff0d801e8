//! The layer: configuration shared by every service it wraps.

use std::fmt;

use http::request::Parts;
use stackholm::{Key, Storage, DEFAULT};
use tower_layer::Layer;

use crate::end::OnEnd;
use crate::request_id::RequestIds;
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
/// [`on_end`](Self::on_end) runs a hook of the layer's own once for every
/// request, however it ends, inside it.
///
/// # With other layers
///
/// Only what runs inside the layer sees the request's stack: put it
/// outermost. axum applies layers bottom-up, so what is added *before*
/// `StackholmLayer` runs inside it. tower-http's `TraceLayer` belongs
/// there: every line it writes for a request (on request, on response, at
/// the end of the stream, on failure) then carries the request's context
/// (with `stackholm-tracing`'s `LogContext`); outside it, none does.
///
/// ```
/// use axum::{routing::get, Router};
/// use stackholm_tower::StackholmLayer;
/// use tower_http::trace::TraceLayer;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(TraceLayer::new_for_http())
///     .layer(StackholmLayer::new());
/// # let _ = app;
/// ```
///
/// # Seeding the root
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::{routing::get, Router};
/// use stackholm::{Key, DEFAULT};
/// use stackholm_tower::StackholmLayer;
/// use tower::ServiceExt;
///
/// static TENANT: Key<String> = Key::new("tenant");
///
/// async fn handler() -> String {
///     DEFAULT.get(&TENANT).unwrap_or_default()
/// }
///
/// let app = Router::new().route("/", get(handler)).layer(
///     StackholmLayer::new().seed(|parts, root| {
///         let host = parts.headers.get("host").and_then(|v| v.to_str().ok());
///         let tenant = host.and_then(|host| host.split('.').next());
///         root.set(&TENANT, tenant.unwrap_or("public").to_owned());
///     }),
/// );
///
/// let request = http::Request::get("/").header("host", "acme.example.com").body(axum::body::Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
/// assert_eq!(body, "acme");
/// # }
/// ```
#[derive(Clone)]
pub struct StackholmLayer<R = EmptyRoot, I = (), E = ()> {
    storage: Storage,
    seed: R,
    // `()`, or the `RequestIds` of `request_id`.
    ids: I,
    on_end: E,
}

impl StackholmLayer {
    /// A layer opening an empty root checkpoint on [`DEFAULT`] per request.
    #[must_use]
    pub fn new() -> Self {
        Self {
            storage: DEFAULT,
            seed: EmptyRoot,
            ids: (),
            on_end: (),
        }
    }
}

impl Default for StackholmLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<R, I, E> StackholmLayer<R, I, E> {
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
    /// After [`seed_with`](StackholmLayer::seed_with), it runs once that
    /// seed has filled the root, and sees what it set: here a tenant is
    /// given when the client sent none.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axum::{routing::get, Router};
    /// use stackholm::{Key, DEFAULT};
    /// use stackholm_tower::propagation::{Direction, Propagation};
    /// use stackholm_tower::StackholmLayer;
    /// use tower::ServiceExt;
    ///
    /// static TENANT: Key<String> = Key::new("tenant").inherited();
    ///
    /// let propagation = Propagation::new().member("tenant", &TENANT, Direction::Both);
    /// let layer = StackholmLayer::new()
    ///     .seed_with(propagation)
    ///     .seed(|_parts, root| {
    ///         if root.get(&TENANT).is_none() {
    ///             root.set(&TENANT, "public".to_owned());
    ///         }
    ///     });
    /// let app = Router::new()
    ///     .route("/", get(|| async { DEFAULT.get(&TENANT).unwrap_or_default() }))
    ///     .layer(layer);
    ///
    /// let sent = http::Request::get("/").header("baggage", "tenant=acme");
    /// let none = http::Request::get("/");
    /// for (request, tenant) in [(sent, "acme"), (none, "public")] {
    ///     let response = app.clone().oneshot(request.body(axum::body::Body::empty()).unwrap());
    ///     let body = axum::body::to_bytes(response.await.unwrap().into_body(), 64).await.unwrap();
    ///     assert_eq!(body, tenant);
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn seed<F>(self, seed: F) -> StackholmLayer<(R, F), I, E>
    where
        F: Fn(&Parts, &mut Root<'_>),
    {
        StackholmLayer {
            storage: self.storage,
            seed: (self.seed, seed),
            ids: self.ids,
            on_end: self.on_end,
        }
    }

    /// Gives every request an id, in `key`: the one in its `header` (any
    /// case: `"x-request-id"`), or a fresh one where it has none, which is
    /// also put in the request's `header`, for what runs inside. The id
    /// is echoed in the response's `header`, unless the response has one.
    /// It is there before the [seeds](Self::seed) run, which see it in the
    /// root and in the head.
    ///
    /// A fresh id is this process's random prefix and a count,
    /// `4f1qk8w2bdr0a-17`: unique within the process, and across processes
    /// but with a chance in 2^64 for each pair. The count of requests shows
    /// through it. An id the request carries is taken if it is 1 to 200
    /// visible ASCII characters without white space (the bound of Heroku's
    /// router), so that it is one word of a log line; another is replaced
    /// by a fresh one, in the request's header too.
    ///
    /// With tower-http's request-id layers, each request still has one id:
    ///
    /// - `SetRequestIdLayer` outside this layer puts its `MakeRequestId`'s
    ///   id in the header (and its `RequestId` extension), where this layer
    ///   takes it: the way to make ids of your own, UUIDs say. Inside, it
    ///   takes this layer's id from the header into the extension.
    /// - `PropagateRequestIdLayer`, outside or inside, echoes the same id,
    ///   and puts it in the response's `RequestId` extension.
    ///
    /// Over gRPC the header is the call's metadata entry (tonic's
    /// `request.metadata().get("x-request-id")`), echoed in the response's
    /// initial metadata, also of a call that fails.
    ///
    /// Called again, it replaces the header and key given before.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axum::{routing::get, Router};
    /// use stackholm::{Key, DEFAULT};
    /// use stackholm_tower::StackholmLayer;
    /// use tower::ServiceExt;
    ///
    /// static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
    ///
    /// let app = Router::new()
    ///     .route("/", get(|| async { DEFAULT.get(&REQUEST_ID).unwrap_or_default() }))
    ///     .layer(StackholmLayer::new().request_id("x-request-id", &REQUEST_ID));
    ///
    /// // The client's id, echoed.
    /// let request = http::Request::get("/").header("x-request-id", "r-1");
    /// let response = app.clone().oneshot(request.body(axum::body::Body::empty()).unwrap()).await.unwrap();
    /// assert_eq!(response.headers()["x-request-id"], "r-1");
    /// let body = axum::body::to_bytes(response.into_body(), 64).await.unwrap();
    /// assert_eq!(body, "r-1");
    ///
    /// // None sent: a fresh one, the same in the handler and on the response.
    /// let request = http::Request::get("/").body(axum::body::Body::empty()).unwrap();
    /// let response = app.oneshot(request).await.unwrap();
    /// let echoed = response.headers()["x-request-id"].clone();
    /// let body = axum::body::to_bytes(response.into_body(), 64).await.unwrap();
    /// assert_eq!(body, echoed.as_bytes());
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `header` is not a header name.
    #[must_use]
    #[track_caller]
    pub fn request_id(
        self,
        header: &'static str,
        key: &'static Key<String>,
    ) -> StackholmLayer<R, RequestIds, E> {
        StackholmLayer {
            storage: self.storage,
            seed: self.seed,
            ids: RequestIds::new(header, key),
            on_end: self.on_end,
        }
    }

    /// Sets `hook`, any [`OnEnd`], to run once for every request when it
    /// ends, in place of the hook before it: told the
    /// [`Outcome`](stackholm::Outcome) the request's root exit hooks are
    /// told and its [`RequestEnd`](crate::RequestEnd) (status, gRPC status,
    /// whether the body was sent whole), inside the request's scope, so
    /// that a log line written there carries the request's context.
    ///
    /// It runs where the request is over: once the body has said it is at
    /// its end, or with an empty body's head; when the response future or
    /// the body is dropped unfinished; when the inner service fails or
    /// panics. That is before the root's exit hooks, which run when the
    /// scope ends, with every value of the root still there. A hook that
    /// panics goes no further (see [`OnEnd`]); where the scope cannot be
    /// run (the body dropped inside a `with` closure of the storage, or on
    /// an exiting thread) the hook is not run, as the root's exit hooks
    /// are not.
    ///
    /// A closure needs its parameters' types written out, as tower-http's
    /// `TraceLayer` callbacks do.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::{Arc, Mutex};
    /// use axum::{routing::get, Router};
    /// use stackholm::{Key, Outcome, DEFAULT};
    /// use stackholm_tower::{RequestEnd, StackholmLayer};
    /// use tower::ServiceExt;
    ///
    /// static REQUEST_ID: Key<String> = Key::new("request_id");
    ///
    /// let ended = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&ended);
    /// let layer = StackholmLayer::new()
    ///     .request_id("x-request-id", &REQUEST_ID)
    ///     .on_end(move |outcome: Outcome, end: RequestEnd| {
    ///         // Inside the request: its id is still there.
    ///         let id = DEFAULT.get(&REQUEST_ID).unwrap_or_default();
    ///         sink.lock().unwrap().push((id, outcome, end.status(), end.succeeded()));
    ///     });
    /// let app = Router::new().route("/", get(|| async { "hello" })).layer(layer);
    ///
    /// let request = http::Request::get("/").header("x-request-id", "r-1").body(axum::body::Body::empty()).unwrap();
    /// let response = app.oneshot(request).await.unwrap();
    /// axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
    /// let expected = ("r-1".to_owned(), Outcome::Left, Some(http::StatusCode::OK), true);
    /// assert_eq!(*ended.lock().unwrap(), [expected]);
    /// # }
    /// ```
    #[must_use]
    pub fn on_end<H: OnEnd>(self, hook: H) -> StackholmLayer<R, I, H> {
        StackholmLayer {
            storage: self.storage,
            seed: self.seed,
            ids: self.ids,
            on_end: hook,
        }
    }
}

impl<I, E> StackholmLayer<EmptyRoot, I, E> {
    /// Makes `seed`, any [`SeedRoot`], what fills each request's root
    /// checkpoint: the form for a
    /// [`Propagation`](crate::propagation::Propagation), or for a seed type
    /// of your own, so that the layer's type can be named.
    /// [`seed`](StackholmLayer::seed) adds closures after it. Only a layer
    /// with no seed yet has it, so that no seed is replaced unseen: give
    /// several as a tuple, `(a, b)`, which runs `a` then `b`.
    ///
    /// ```compile_fail
    /// use stackholm_tower::{EmptyRoot, Root, StackholmLayer};
    ///
    /// // The closure would be dropped without a word: refused instead.
    /// let layer = StackholmLayer::new()
    ///     .seed(|_: &http::request::Parts, _: &mut Root<'_>| {})
    ///     .seed_with(EmptyRoot);
    /// ```
    #[must_use]
    pub fn seed_with<S: SeedRoot>(self, seed: S) -> StackholmLayer<S, I, E> {
        StackholmLayer {
            storage: self.storage,
            seed,
            ids: self.ids,
            on_end: self.on_end,
        }
    }
}

impl<S, R: Clone, I: Clone, E: Clone> Layer<S> for StackholmLayer<R, I, E> {
    type Service = StackholmService<S, R, I, E>;

    fn layer(&self, inner: S) -> Self::Service {
        let (seed, ids, on_end) = (self.seed.clone(), self.ids.clone(), self.on_end.clone());
        StackholmService::new(inner, self.storage, seed, ids, on_end)
    }
}

impl<R, I: fmt::Debug, E> fmt::Debug for StackholmLayer<R, I, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackholmLayer")
            .field("storage", &self.storage)
            .field("seed", &std::any::type_name::<R>())
            .field("ids", &self.ids)
            .field("on_end", &std::any::type_name::<E>())
            .finish()
    }
}
