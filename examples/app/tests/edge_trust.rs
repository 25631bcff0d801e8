//! A client's forged baggage, through two services on real sockets of
//! 127.0.0.1: an edge that declares only what it needs, and an inner
//! service that takes `role` from baggage. The edge passes on nothing it
//! did not declare unless it says it is a relay.

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use stackholm::{Key, DEFAULT};
use stackholm_examples::client::Client;
use stackholm_tower::propagation::{Direction, PropagateLayer, Propagation};
use stackholm_tower::StackholmLayer;
use tower::{ServiceBuilder, ServiceExt};

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
static ROLE: Key<String> = Key::new("role").inherited();

/// The inner service: answers with the role its context holds, and the
/// `baggage` header it received.
fn inner() -> Router {
    let propagation = Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .member("role", &ROLE, Direction::Inbound);
    let handler = |headers: http::HeaderMap| async move {
        let baggage = headers
            .get("baggage")
            .map_or("-", |v| v.to_str().unwrap_or("?"))
            .to_owned();
        format!(
            "role={} baggage={baggage}",
            DEFAULT.get(&ROLE).unwrap_or_else(|| "-".to_owned())
        )
    };
    Router::new()
        .route("/", get(handler))
        .layer(StackholmLayer::new().seed_with(propagation))
}

/// The edge: declares the request id only, and calls `inner` through
/// `PropagateLayer`.
fn edge(propagation: Propagation, inner: SocketAddr) -> Router {
    let client = ServiceBuilder::new()
        .layer(PropagateLayer::new(propagation.clone()))
        .service(HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let handler = move || {
        let client = client.clone();
        async move {
            let request = http::Request::get(format!("http://{inner}/"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = client.oneshot(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        }
    };
    Router::new()
        .route("/", get(handler))
        .layer(StackholmLayer::new().seed_with(propagation))
}

/// What the inner service saw of a client's request sent to the edge.
async fn through_edge(edge_propagation: Propagation, baggage: &str) -> String {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (inner_addr, inner_server) = stackholm_examples::serve(inner(), loopback).await.unwrap();
    let (edge_addr, edge_server) =
        stackholm_examples::serve(edge(edge_propagation, inner_addr), loopback)
            .await
            .unwrap();
    let (status, body) = Client::new(edge_addr)
        .send(
            Method::GET,
            "/",
            &[("x-request-id", "r-1"), ("baggage", baggage)],
        )
        .await
        .unwrap();
    inner_server.abort();
    edge_server.abort();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn edge_declarations() -> Propagation {
    Propagation::new().header("x-request-id", &REQUEST_ID, Direction::Both)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_passes_on_no_member_it_did_not_declare() {
    let seen = through_edge(edge_declarations(), "role=admin,other=1;p").await;
    assert_eq!(seen, "role=- baggage=-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_passes_on_what_it_was_told_to() {
    let seen = through_edge(edge_declarations().relay(), "role=admin,other=1;p").await;
    assert_eq!(seen, "role=admin baggage=role=admin,other=1;p");
}
