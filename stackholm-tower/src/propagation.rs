//! Context across services: [`Propagation`] (re-exported from
//! [`stackholm_propagation`], where its docs are), a [`SeedRoot`] for
//! [`StackholmLayer`](crate::StackholmLayer), and [`PropagateLayer`], which
//! writes the context into the requests of a tower client.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{routing::get, Router};
//! use stackholm::{Key, DEFAULT};
//! use stackholm_tower::propagation::{Direction, Propagation};
//! use stackholm_tower::StackholmLayer;
//! use tower::ServiceExt;
//!
//! static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
//! static TENANT: Key<String> = Key::new("tenant").inherited();
//! static USER: Key<String> = Key::new("user").inherited();
//!
//! let propagation = Propagation::new()
//!     .header("x-request-id", &REQUEST_ID, Direction::Both)
//!     .member("tenant", &TENANT, Direction::Both)
//!     // Sent to the services behind this one, never taken from a client.
//!     .member("user", &USER, Direction::Outbound);
//!
//! let outgoing = propagation.clone();
//! let handler = move || {
//!     let outgoing = outgoing.clone();
//!     async move {
//!         DEFAULT.set(&USER, "alice".to_owned()).unwrap();
//!         let mut headers = http::HeaderMap::new();
//!         outgoing.inject(&mut headers);
//!         format!("{headers:?}")
//!     }
//! };
//! let app = Router::new()
//!     .route("/", get(handler))
//!     .layer(StackholmLayer::new().seed_with(propagation));
//!
//! // `user` is not taken from a client, and `role`, declared nowhere here,
//! // is not passed on.
//! let request = http::Request::get("/")
//!     .header("x-request-id", "r-1")
//!     .header("baggage", "tenant=acme,user=mallory,role=admin")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
//! assert_eq!(
//!     body,
//!     r#"{"x-request-id": "r-1", "baggage": "tenant=acme,user=alice"}"#
//! );
//! # }
//! ```

use std::task::{Context, Poll};

use http::request::Parts;
use http::Request;
pub use stackholm_propagation::*;
use tower_layer::Layer;
use tower_service::Service;

use crate::seed::{Root, SeedRoot};

/// Seeds each request's root with the declared inbound values of its
/// headers; rejections are told inside the request's scope.
impl SeedRoot for Propagation {
    #[track_caller]
    fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
        if let Err(refused) = self.extract_into(&parts.headers, root.storage()) {
            panic!("stackholm-tower: a seed cannot set the request's values: {refused}");
        }
    }
}

/// Writes the caller's context into every outgoing request: see
/// [`Propagation::inject`], which it calls from the service's `call`, so
/// the context is the one current when the request is handed to the client.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use stackholm::{Checkpoint, CheckpointExt, Key};
/// use stackholm_tower::propagation::{Direction, PropagateLayer, Propagation};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// static REQUEST_ID: Key<String> = Key::new("request_id");
///
/// let propagation = Propagation::new().header("x-request-id", &REQUEST_ID, Direction::Outbound);
/// // In a real service the client is hyper-util's `Client`; this one echoes.
/// let client = ServiceBuilder::new()
///     .layer(PropagateLayer::new(propagation))
///     .service(service_fn(|request: http::Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(request.headers()["x-request-id"].clone())
///     }));
///
/// // `oneshot` calls the client when first polled: the context is read
/// // then, inside the checkpoint.
/// let checkpoint = Checkpoint::new().with_value(&REQUEST_ID, "r-7".to_owned());
/// let echoed = client.oneshot(http::Request::new(())).in_checkpoint(checkpoint).await;
/// assert_eq!(echoed.unwrap(), "r-7");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PropagateLayer {
    propagation: Propagation,
}

impl PropagateLayer {
    /// A layer writing `propagation`'s outbound keys into requests.
    #[must_use]
    pub fn new(propagation: Propagation) -> Self {
        Self { propagation }
    }
}

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Propagate {
            inner,
            propagation: self.propagation.clone(),
        }
    }
}

/// The service made by [`PropagateLayer`].
#[derive(Debug, Clone)]
pub struct Propagate<S> {
    inner: S,
    propagation: Propagation,
}

impl<S> Propagate<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, taken out.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.propagation.inject(request.headers_mut());
        self.inner.call(request)
    }
}
