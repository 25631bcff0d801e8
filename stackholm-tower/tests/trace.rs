//! tower-http's `TraceLayer` inside `StackholmLayer`, behind a real server:
//! every line it writes for a request (on request, on response, at the end
//! of the stream, on failure) carries that request's context.
//!
//! The subscriber is the test thread's default, and the runtime is a
//! current-thread one, so that the server's lines are written there too.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use http_body::Frame;
use http_body_util::StreamBody;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use stackholm::Key;
use stackholm_tower::StackholmLayer;
use stackholm_tracing::LogContext;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;
use tracing::subscriber::DefaultGuard;

mod support;
use support::serve;

static REQUEST_ID: Key<String> = Key::new("request_id");

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Sets a text subscriber writing here, with the request id on every
    /// line written inside a request, as the thread's default.
    fn install() -> (Self, DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let context = LogContext::new().display("request_id", &REQUEST_ID);
        let format = tracing_subscriber::fmt::format().without_time();
        let subscriber = tracing_subscriber::fmt()
            .event_format(context.text(format))
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// `TraceLayer`'s lines written so far, taken out.
    fn trace_lines(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        let text = String::from_utf8(bytes).unwrap();
        let lines = text
            .lines()
            .filter(|line| line.contains("tower_http::trace"));
        lines.map(str::to_owned).collect()
    }
}

/// The lines of `lines` written by `TraceLayer`'s callback `kind`
/// (`on_request`, `on_response`, `on_eos`, `on_failure`).
fn of_kind<'a>(lines: &'a [String], kind: &str) -> Vec<&'a str> {
    let target = format!("tower_http::trace::{kind}:");
    let lines = lines.iter().filter(|line| line.contains(&target));
    lines.map(String::as_str).collect()
}

/// The request id from `x-request-id`.
fn context_layer() -> StackholmLayer<impl stackholm_tower::SeedRoot + Clone> {
    StackholmLayer::new().seed(|parts, root| {
        let id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        root.set(&REQUEST_ID, id.unwrap_or("-").to_owned());
    })
}

/// `/full`: a body of known length. `/stream`: a chunked body, at its end
/// on a last poll. `/fail`: a 500. `TraceLayer` inside `StackholmLayer`, as
/// the crate documents it.
fn app() -> Router {
    let chunks = || {
        let chunks = ["one;", "two;"].map(|chunk| Ok::<_, Infallible>(Bytes::from(chunk)));
        Body::from_stream(futures_util::stream::iter(chunks))
    };
    Router::new()
        .route("/full", get(|| async { "all of it" }))
        .route("/stream", get(move || async move { chunks() }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .layer(TraceLayer::new_for_http())
        .layer(context_layer())
}

/// `TraceLayer` classifying gRPC calls, whose failures show in the body:
/// `/broken`, a body that fails after its first frame; `/trailers`, a call
/// that ends with `grpc-status: 13` (INTERNAL) in its trailers.
fn grpc_app() -> Router {
    fn frames(last: Result<Frame<Bytes>, io::Error>) -> Body {
        let frames = [Ok(Frame::data(Bytes::from("one;"))), last];
        Body::new(StreamBody::new(futures_util::stream::iter(frames)))
    }
    let broken = || frames(Err(io::Error::other("the disk failed")));
    let trailers = || {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("13"));
        frames(Ok(Frame::trailers(trailers)))
    };
    let grpc = |body: Body| ([("content-type", "application/grpc")], body);
    Router::new()
        .route("/broken", get(move || async move { grpc(broken()) }))
        .route("/trailers", get(move || async move { grpc(trailers()) }))
        .layer(TraceLayer::new_for_grpc())
        .layer(context_layer())
}

/// Sends `GET path` with `id` as its request id from a real client and
/// reads the body as far as it goes; its status, if its head came, and
/// whether the whole body came.
async fn get_over_loopback(addr: SocketAddr, path: &str, id: &str) -> (Option<StatusCode>, bool) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let request = http::Request::get(format!("http://{addr}{path}"))
        .header("x-request-id", id)
        .body(Body::empty())
        .unwrap();
    let (status, whole) = match client.request(request).await {
        Ok(response) => {
            let status = response.status();
            let body = axum::body::to_bytes(Body::new(response.into_body()), 1 << 16).await;
            (Some(status), body.is_ok())
        }
        // A body that fails before its first bytes are sent cuts the
        // response short.
        Err(_) => (None, false),
    };
    // The connection task ends a broken response's request: let it run.
    tokio::task::yield_now().await;
    (status, whole)
}

/// Every line in `lines` ends with the request id `id`.
fn all_carry(lines: &[&str], id: &str) {
    let field = format!(" request_id={id}");
    for line in lines {
        assert!(line.ends_with(&field), "no `{field}` on {line:?}");
    }
}

#[tokio::test]
async fn the_request_and_response_lines_carry_the_context() {
    let (captured, _default) = Captured::install();
    let addr = serve(app()).await;

    assert_eq!(
        get_over_loopback(addr, "/full", "r-1").await,
        (Some(StatusCode::OK), true)
    );
    let lines = captured.trace_lines();
    let (requests, responses) = (
        of_kind(&lines, "on_request"),
        of_kind(&lines, "on_response"),
    );
    assert_eq!((requests.len(), responses.len()), (1, 1), "{lines:#?}");
    all_carry(&requests, "r-1");
    all_carry(&responses, "r-1");
}

#[tokio::test]
async fn the_end_of_a_streamed_body_carries_the_context() {
    let (captured, _default) = Captured::install();
    let addr = serve(app()).await;

    assert_eq!(
        get_over_loopback(addr, "/stream", "r-2").await,
        (Some(StatusCode::OK), true)
    );
    let lines = captured.trace_lines();
    let ends = of_kind(&lines, "on_eos");
    assert_eq!(ends.len(), 1, "{lines:#?}");
    all_carry(&ends, "r-2");
}

#[tokio::test]
async fn a_failed_response_carries_the_context() {
    let (captured, _default) = Captured::install();
    let addr = serve(app()).await;

    let answered = get_over_loopback(addr, "/fail", "r-3").await;
    assert_eq!(answered, (Some(StatusCode::INTERNAL_SERVER_ERROR), true));
    let lines = captured.trace_lines();
    let failures = of_kind(&lines, "on_failure");
    assert_eq!(failures.len(), 1, "{lines:#?}");
    all_carry(&failures, "r-3");
    all_carry(&of_kind(&lines, "on_response"), "r-3");
}

#[tokio::test]
async fn a_body_that_fails_carries_the_context() {
    let (captured, _default) = Captured::install();
    let addr = serve(grpc_app()).await;

    assert!(!get_over_loopback(addr, "/broken", "r-4").await.1);
    let lines = captured.trace_lines();
    let failures = of_kind(&lines, "on_failure");
    assert_eq!(failures.len(), 1, "{lines:#?}");
    assert!(failures[0].contains("the disk failed"), "{failures:?}");
    all_carry(&failures, "r-4");
}

#[tokio::test]
async fn a_call_failed_in_its_trailers_carries_the_context() {
    let (captured, _default) = Captured::install();
    let addr = serve(grpc_app()).await;

    get_over_loopback(addr, "/trailers", "r-5").await;
    let lines = captured.trace_lines();
    let (failures, ends) = (of_kind(&lines, "on_failure"), of_kind(&lines, "on_eos"));
    assert_eq!((failures.len(), ends.len()), (1, 1), "{lines:#?}");
    all_carry(&failures, "r-5");
    all_carry(&ends, "r-5");
}

/// A body collected in process is polled once more after its last frame,
/// where `TraceLayer` writes its end of the stream: that poll is still
/// inside the request.
#[tokio::test]
async fn the_end_of_a_body_collected_in_process_carries_the_context() {
    let (captured, _default) = Captured::install();

    for (path, id) in [("/full", "r-6"), ("/stream", "r-7"), ("/fail", "r-8")] {
        let request = http::Request::get(path).header("x-request-id", id);
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let lines = captured.trace_lines();
        let ends = of_kind(&lines, "on_eos");
        assert_eq!(ends.len(), 1, "{path}: {lines:#?}");
        all_carry(&lines.iter().map(String::as_str).collect::<Vec<_>>(), id);
    }
}
