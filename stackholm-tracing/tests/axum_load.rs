//! Every line logged while 2,000 requests go through a real axum server at
//! 64 at a time carries its own request's id and no other, in text and in
//! JSON: in the handler, in a nested checkpoint, in a spawned task and in
//! the request's root exit hook.
//!
//! One test: the subscriber is the process's global one.

// Only the capture: the subscriber here has two filtered layers.
#[allow(dead_code)]
mod support;

use std::net::{Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, StreamExt};
use http::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use stackholm::{Checkpoint, CheckpointExt, Key, DEFAULT};
use stackholm_tower::StackholmLayer;
use stackholm_tracing::LogContext;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use support::Captured;

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
static USER: Key<String> = Key::new("user");

const REQUESTS: usize = 2_000;
const CONCURRENCY: usize = 64;
/// Lines each request logs.
const LINES: usize = 5;

/// Serves `app` on a loopback port of its own, for the rest of the test.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Sends `GET /` with `id` as its request id and reads the whole body, so
/// that the request ends and the connection is kept for the next one.
async fn get_with_id(
    client: &Client<HttpConnector, Body>,
    addr: SocketAddr,
    id: &str,
) -> StatusCode {
    let request = Request::get(format!("http://{addr}/"))
        .header("x-request-id", id)
        .body(Body::empty())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    axum::body::to_bytes(Body::new(response.into_body()), usize::MAX)
        .await
        .unwrap();
    status
}

async fn handler(headers: http::HeaderMap) -> &'static str {
    // What the line must carry, from the request itself rather than from
    // the context under test.
    let id = headers["x-request-id"].to_str().unwrap().to_owned();
    tracing::info!(expected = %id, "started");
    DEFAULT.set(&USER, format!("user-{id}")).unwrap();
    let hook_id = id.clone();
    DEFAULT
        .on_root_exit(move |outcome| tracing::info!(expected = %hook_id, %outcome, "ended"))
        .unwrap();
    tokio::task::yield_now().await;
    tracing::info!(expected = %id, "signed in");
    let nested_id = id.clone();
    async move {
        tokio::task::yield_now().await;
        tracing::info!(expected = %nested_id, "nested");
    }
    .in_checkpoint(Checkpoint::named("nested"))
    .await;
    let spawned_id = id.clone();
    tokio::spawn(DEFAULT.inherit(async move {
        tokio::task::yield_now().await;
        tracing::info!(expected = %spawned_id, "spawned");
    }))
    .await
    .unwrap();
    "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_carries_its_own_requests_id() {
    let (text, json) = (Captured::default(), Captured::default());
    let context = LogContext::new()
        .display("request_id", &REQUEST_ID)
        .display("user", &USER);
    let (text_out, json_out) = (text.clone(), json.clone());
    // This test's events only, not hyper's.
    let ours = || filter_fn(|metadata| metadata.target() == module_path!());
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(context.text(format().without_time().with_target(false)))
                .with_writer(move || text_out.clone())
                .with_filter(ours()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(context.json(format().json().without_time()))
                .with_writer(move || json_out.clone())
                .with_filter(ours()),
        );
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let app = Router::new()
        .route("/", get(handler))
        .layer(StackholmLayer::new().seed(|parts, root| {
            let id = parts.headers["x-request-id"].to_str().unwrap();
            root.set(&REQUEST_ID, id.to_owned());
        }));
    let addr = serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let statuses: Vec<StatusCode> = stream::iter(0..REQUESTS)
        .map(|i| {
            let client = client.clone();
            async move { get_with_id(&client, addr, &format!("req-{i}")).await }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    assert!(statuses.iter().all(|status| *status == StatusCode::OK));
    // The last exit hooks run as the last bodies end, maybe after the
    // client has read them.
    for _ in 0..100 {
        if text
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
            >= REQUESTS * LINES
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Text: `expected=ID` is the event's own field, `request_id=ID` the
    // context's.
    let mut checked = 0;
    for line in text.lines() {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|part| part.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        };
        let expected = field("expected").unwrap_or_else(|| panic!("no expected id: {line}"));
        assert_eq!(
            field("request_id").as_deref(),
            Some(expected.as_str()),
            "{line}"
        );
        checked += 1;
    }
    assert_eq!(checked, REQUESTS * LINES, "every line, each request's five");

    let mut checked = 0;
    for line in json.lines() {
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        let expected = &line["fields"]["expected"];
        assert_eq!(&line["request_id"], expected, "{line}");
        let message = line["fields"]["message"].as_str().unwrap();
        // The user is not inherited: not in the spawned task's line.
        let user = line.get("user").and_then(|user| user.as_str());
        match message {
            "started" | "spawned" => assert_eq!(user, None, "{line}"),
            _ => assert_eq!(
                user.map(str::to_owned),
                Some(format!("user-{}", expected.as_str().unwrap())),
                "{line}"
            ),
        }
        checked += 1;
    }
    assert_eq!(checked, REQUESTS * LINES);
}
