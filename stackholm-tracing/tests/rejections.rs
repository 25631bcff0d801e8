//! What propagation drops from a request, logged from `on_reject` as the
//! layer seeds the request: inside the request's scope, so the line carries
//! the request's id, and saying what was dropped and what was kept.

// Only the text subscriber is used here.
#[allow(dead_code)]
mod support;

use axum::routing::get;
use axum::Router;
use stackholm::{Key, DEFAULT};
use stackholm_tower::propagation::{Direction, Propagation};
use stackholm_tower::StackholmLayer;
use stackholm_tracing::LogContext;
use support::Captured;
use tower::ServiceExt;

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
static TENANT: Key<String> = Key::new("tenant").inherited();

#[tokio::test(flavor = "current_thread")]
async fn a_rejection_logged_while_the_layer_seeds_carries_the_request_id() {
    let out = Captured::default();
    let context = LogContext::new().display("request_id", &REQUEST_ID);
    let _default = tracing::subscriber::set_default(out.text_subscriber(&context));

    let propagation = Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Inbound)
        .member("tenant", &TENANT, Direction::Inbound)
        .on_reject(|rejection| tracing::warn!(%rejection));
    let app = Router::new()
        .route(
            "/",
            get(|| async { DEFAULT.get(&TENANT).unwrap_or_default() }),
        )
        .layer(StackholmLayer::new().seed_with(propagation));

    let request = http::Request::get("/")
        .header("x-request-id", "r-1")
        .header("baggage", "tenant=acme,a b,no%74e=x")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(body, "acme", "the valid member is kept");

    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("request_id=r-1"), "{lines:?}");
    assert!(
        lines[0].contains(
            "incoming `baggage` header: 1 member dropped for not following the W3C Baggage \
             grammar; the other members were kept"
        ),
        "{lines:?}"
    );
}
