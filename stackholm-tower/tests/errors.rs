//! What a user is told when context is set where the layer does not reach.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use stackholm::{Key, DEFAULT};
use stackholm_tower::StackholmLayer;
use tower::ServiceExt;

static USER: Key<String> = Key::new("user").inherited();

/// The README's middleware, word for word.
async fn authenticate(request: Request, next: Next) -> Response {
    DEFAULT
        .set(&USER, "alice".to_owned())
        .expect("inside the layer's root checkpoint");
    next.run(request).await
}

/// The panic of one request through `app`, on a worker thread of the
/// runtime as a server's connection task would run it.
async fn panic_of(app: Router) -> String {
    let request = http::Request::get("/").body(Body::empty()).unwrap();
    let served = tokio::spawn(app.oneshot(request)).await;
    let payload = served.expect_err("the middleware panics").into_panic();
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(
            || "a panic without a message".to_owned(),
            |s| (*s).to_owned(),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_middleware_outside_the_layer_is_told_the_layer_order() {
    // `Router::layer` wraps what is there already: the middleware added
    // after `StackholmLayer` runs before it, with no request scope yet.
    let app = Router::new()
        .route("/", get(|| async { "unreachable" }))
        .layer(StackholmLayer::new())
        .layer(middleware::from_fn(authenticate));
    assert_eq!(
        panic_of(app).await,
        concat!(
            "inside the layer's root checkpoint: SetError { error: NoCheckpoint { ",
            "operation: Set, key: Some(\"user\"), outside_scope: true, message: ",
            "\"cannot set `user`: no checkpoint is active, and no task-local scope; ",
            "enter a checkpoint first, or, in a tower or axum service, run this code ",
            "inside `StackholmLayer`: add the layer outermost (last with ",
            "`Router::layer`, first in `ServiceBuilder`)\" }, ",
            "value: \"alloc::string::String\" }",
        )
    );
}

#[tokio::test]
async fn the_same_middleware_inside_the_layer_sets_the_user() {
    let app = Router::new()
        .route(
            "/",
            get(|| async { DEFAULT.get(&USER).unwrap_or_default() }),
        )
        .layer(middleware::from_fn(authenticate))
        .layer(StackholmLayer::new());
    let request = http::Request::get("/").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(body, "alice");
}
