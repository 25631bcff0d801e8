//! A tower layer that gives every request its own
//! [`stackholm`] root checkpoint, in task-local storage.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{middleware, routing::get, Router};
//! use stackholm::{Key, DEFAULT};
//! use stackholm_tower::StackholmLayer;
//! use tower::ServiceExt;
//!
//! static USER: Key<String> = Key::new("user");
//!
//! async fn whoami() -> String {
//!     DEFAULT.get(&USER).unwrap_or_else(|| "nobody".to_owned())
//! }
//!
//! // A middleware inside the layer sets a root value for the handlers.
//! async fn authenticate(
//!     request: axum::extract::Request,
//!     next: middleware::Next,
//! ) -> axum::response::Response {
//!     if let Some(user) = request.headers().get("x-user").and_then(|v| v.to_str().ok()) {
//!         DEFAULT.set(&USER, user.to_owned()).expect("the layer opened a root checkpoint");
//!     }
//!     next.run(request).await
//! }
//!
//! let app = Router::new()
//!     .route("/whoami", get(whoami))
//!     .layer(middleware::from_fn(authenticate))
//!     .layer(StackholmLayer::new());
//!
//! let request = http::Request::get("/whoami").header("x-user", "alice").body(axum::body::Body::empty()).unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
//! assert_eq!(body, "alice");
//! # }
//! ```
//!
//! See [`StackholmLayer`] for what runs inside the request's scope, and how
//! to seed its root checkpoint from the request.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod body;
mod end;
mod future;
mod layer;
pub mod propagation;
mod request_id;
mod seed;
mod service;

pub use body::ScopedBody;
pub use end::{OnEnd, RequestEnd};
pub use future::ResponseFuture;
pub use layer::StackholmLayer;
pub use request_id::RequestIds;
pub use seed::{EmptyRoot, Root, SeedRoot};
pub use service::StackholmService;

// The workspace README's examples are doc tests too; they are compiled here,
// where both crates and axum are at hand. So are this crate's own README's,
// which crates.io shows.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadmeDoctests;
