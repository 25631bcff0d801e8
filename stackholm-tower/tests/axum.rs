//! The layer in the usual axum placements.

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::routing::get;
use axum::Router;
use http::Request;
use stackholm::{Checkpoint, CheckpointExt, Key, DEFAULT};
use stackholm_tower::{SeedRoot, StackholmLayer};
use tower::{ServiceBuilder, ServiceExt};

static ROUTE: Key<String> = Key::new("route");

fn by_route() -> StackholmLayer<impl SeedRoot + Clone> {
    StackholmLayer::new().seed(|parts, root| {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        root.set(&ROUTE, route.to_owned());
    })
}

async fn route_seen() -> String {
    format!(
        "{} {}",
        DEFAULT.depth(),
        DEFAULT.get(&ROUTE).unwrap_or_else(|| "none".into())
    )
}

async fn get_text(app: Router, path: &str) -> String {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn router_layer_sees_the_matched_path() {
    let app = Router::new()
        .route("/items/{id}", get(route_seen))
        .layer(by_route());
    assert_eq!(get_text(app, "/items/3").await, "1 /items/{id}");
}

#[tokio::test]
async fn route_layer_wraps_only_the_routes() {
    let app = Router::new()
        .route("/items/{id}", get(route_seen))
        .route_layer(by_route())
        .fallback(route_seen);
    assert_eq!(get_text(app.clone(), "/items/3").await, "1 /items/{id}");
    assert_eq!(get_text(app, "/elsewhere").await, "0 none");
}

#[tokio::test]
async fn service_builder_with_other_layers() {
    let app = Router::new().route("/", get(route_seen)).layer(
        ServiceBuilder::new()
            .layer(by_route())
            .map_request(|request: Request<Body>| {
                // A layer inside ours runs in the request's scope too.
                assert_eq!(DEFAULT.depth(), 1);
                request
            }),
    );
    assert_eq!(get_text(app, "/").await, "1 /");
}

#[tokio::test]
async fn handlers_nest_checkpoints_freely() {
    async fn nested() -> String {
        let inner = async {
            DEFAULT.set(&ROUTE, "shadowed".to_owned()).unwrap();
            tokio::task::yield_now().await;
            DEFAULT.get(&ROUTE).unwrap()
        }
        .in_checkpoint(Checkpoint::new())
        .await;
        format!("{inner} {}", DEFAULT.get(&ROUTE).unwrap())
    }
    let app = Router::new().route("/n", get(nested)).layer(by_route());
    assert_eq!(get_text(app, "/n").await, "shadowed /n");
}

#[tokio::test]
async fn a_middleware_outside_the_layer_reaches_the_threads_stack() {
    async fn outside(
        request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        // Outside the layer: no request scope, only the thread's stack.
        let refused = DEFAULT
            .task()
            .set(&ROUTE, "outside".to_owned())
            .unwrap_err();
        assert!(matches!(refused.error(), stackholm::Error::NoScope { .. }));
        assert_eq!(DEFAULT.task().get(&ROUTE), None);
        assert_eq!(DEFAULT.depth(), 0);
        next.run(request).await
    }
    let app = Router::new()
        .route("/", get(route_seen))
        .layer(by_route())
        .layer(axum::middleware::from_fn(outside));
    assert_eq!(get_text(app, "/").await, "1 /");
}
