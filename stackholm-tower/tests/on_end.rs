//! `StackholmLayer::on_end`: every way a request ends runs the hook once,
//! told what the request's root exit hooks are told, inside the request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use stackholm::Outcome::{self, Cancelled, Left, Unwound};
use stackholm::{Key, DEFAULT};
use stackholm_tower::{OnEnd, RequestEnd, StackholmLayer};
use tokio::sync::mpsc;
use tower::{service_fn, Layer, ServiceExt};

mod support;
use support::serve;

static REQUEST_ID: Key<String> = Key::new("request_id");

/// What a hook saw: the request id it read, the outcome, how it ended.
type Seen = (String, Outcome, RequestEnd);

/// Sends what it is told, with the request id it reads, to `seen`.
#[derive(Clone)]
struct Recorder(mpsc::UnboundedSender<Seen>);

impl OnEnd for Recorder {
    fn on_end(&self, outcome: Outcome, end: RequestEnd) {
        let id = DEFAULT.get(&REQUEST_ID).unwrap_or_else(|| "none".into());
        self.0.send((id, outcome, end)).unwrap();
    }
}

/// The layer under test: the request id from `x-request-id`, and `hook`.
fn layer<E: OnEnd>(hook: E) -> StackholmLayer<impl stackholm_tower::SeedRoot + Clone, (), E> {
    StackholmLayer::new()
        .seed(|parts, root| {
            let id = parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok());
            root.set(&REQUEST_ID, id.unwrap_or("-").to_owned());
        })
        .on_end(hook)
}

/// Registers a root exit hook sending what it is told to `root`, for the
/// layer's hook to be compared with.
fn root_hook(root: &mpsc::UnboundedSender<Seen>) {
    let root = root.clone();
    DEFAULT
        .on_root_exit(move |outcome| {
            let id = DEFAULT.get(&REQUEST_ID).unwrap();
            let end = RequestEnd::current(DEFAULT).expect("inside the request");
            root.send((id, outcome, end)).unwrap();
        })
        .unwrap();
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A body of one frame, then `trailers` if any.
fn body(text: &'static str, trailers: Option<HeaderMap>) -> TestBody {
    let mut frames = vec![Ok(Frame::data(Bytes::from(text)))];
    frames.extend(trailers.map(|trailers| Ok(Frame::trailers(trailers))));
    StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
}

fn grpc_status(code: &'static str) -> HeaderMap {
    HeaderMap::from_iter([(
        "grpc-status".parse().unwrap(),
        HeaderValue::from_static(code),
    )])
}

/// What the request `id` ends with, in process: the handler does as `id`
/// says.
async fn handle(id: &str) -> Result<Response<TestBody>, Refused> {
    match id {
        "error" => return Err(Refused),
        "panic" => panic!("the handler failed"),
        "hang" => std::future::pending::<()>().await,
        _ => {}
    }
    Ok(match id {
        "empty" => Response::new(Empty::new().boxed_unsync()),
        "grpc-head" => {
            let mut response = Response::new(Empty::new().boxed_unsync());
            *response.headers_mut() = grpc_status("5");
            response
        }
        "grpc-trailers" => Response::new(body("one;", Some(grpc_status("13")))),
        _ => Response::new(Full::new(Bytes::from("all of it")).boxed_unsync()),
    })
}

fn request(id: &str) -> Request<()> {
    Request::get("/")
        .header("x-request-id", id)
        .body(())
        .unwrap()
}

#[tokio::test]
async fn every_ending_in_process_runs_the_hook_once_inside_the_request() {
    let (hook, mut told) = mpsc::unbounded_channel();
    let (root, mut rooted) = mpsc::unbounded_channel();
    let service = layer(Recorder(hook)).layer(service_fn(move |request: Request<()>| {
        let id = request.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        root_hook(&root);
        assert_ne!(id, "call-panic", "the service's call failed");
        async move { handle(&id).await }
    }));
    let mut check =
        |id: &str, outcome: Outcome, status: Option<u16>, complete: bool, grpc: Option<i32>| {
            let (seen_id, seen_outcome, end) = told
                .try_recv()
                .unwrap_or_else(|_| panic!("{id}: no hook ran"));
            assert_eq!((seen_id.as_str(), seen_outcome), (id, outcome), "{id}");
            let status_seen = end.status().map(|status| status.as_u16());
            assert_eq!(
                (status_seen, end.body_complete(), end.grpc_status()),
                (status, complete, grpc),
                "{id}"
            );
            assert!(told.try_recv().is_err(), "{id}: the hook ran once");
            assert_eq!(
                rooted.try_recv().ok(),
                Some((seen_id, seen_outcome, end)),
                "{id}: as the root's hooks"
            );
        };

    // Answered and sent whole, with a body or without.
    let response = service.clone().oneshot(request("ok")).await.unwrap();
    response.into_body().collect().await.unwrap();
    check("ok", Left, Some(200), true, None);
    let response = service.clone().oneshot(request("empty")).await.unwrap();
    drop(response);
    check("empty", Left, Some(200), true, None);

    // The client went away during the body, or before the answer.
    let response = service.clone().oneshot(request("dropped")).await.unwrap();
    drop(response);
    check("dropped", Cancelled, Some(200), false, None);
    let mut pending = Box::pin(service.clone().oneshot(request("hang")));
    assert!(futures_util::poll!(pending.as_mut()).is_pending());
    drop(pending);
    check("hang", Cancelled, None, false, None);

    // No response: the inner service failed, or its future or call panicked.
    assert!(service.clone().oneshot(request("error")).await.is_err());
    check("error", Left, None, false, None);
    let panicked = AssertUnwindSafe(service.clone().oneshot(request("panic")));
    assert!(panicked.catch_unwind().await.is_err());
    check("panic", Unwound, None, false, None);
    let panicked = AssertUnwindSafe(service.clone().oneshot(request("call-panic")));
    assert!(panicked.catch_unwind().await.is_err());
    check("call-panic", Unwound, None, false, None);

    // gRPC calls that failed: in a trailers-only head, in the trailers.
    let response = service.clone().oneshot(request("grpc-head")).await.unwrap();
    response.into_body().collect().await.unwrap();
    check("grpc-head", Left, Some(200), true, Some(5));
    let response = service.oneshot(request("grpc-trailers")).await.unwrap();
    response.into_body().collect().await.unwrap();
    check("grpc-trailers", Left, Some(200), true, Some(13));
}

#[tokio::test]
async fn a_closure_is_a_hook_and_a_panicking_one_goes_no_further() {
    let ran = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&ran);
    let hook = move |_: Outcome, _: RequestEnd| {
        *counter.lock().unwrap() += 1;
        panic!("the hook failed");
    };
    let (root, mut rooted) = mpsc::unbounded_channel();
    let service = layer(hook).layer(service_fn(move |request: Request<()>| {
        root_hook(&root);
        let id = request.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        async move { handle(&id).await }
    }));

    let response = service.clone().oneshot(request("ok")).await.unwrap();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, "all of it");
    drop(service.clone().oneshot(request("dropped")).await.unwrap());
    assert!(service.oneshot(request("error")).await.is_err());
    assert_eq!(*ran.lock().unwrap(), 3);
    for id in ["ok", "dropped", "error"] {
        assert_eq!(
            rooted.try_recv().unwrap().0,
            id,
            "the root's hooks ran after it"
        );
    }
}

/// `/full`, `/stream`: sent whole. `/endless`: a body that never ends.
/// `/hang`: no answer, once it says it `arrived`. `/panic`: a handler that
/// panics.
fn app(hook: Recorder, arrived: mpsc::UnboundedSender<()>) -> Router {
    let hang = move || {
        arrived.send(()).unwrap();
        std::future::pending::<()>()
    };
    let endless = || {
        let first = futures_util::stream::iter([Ok::<_, Infallible>(Bytes::from("one;"))]);
        Body::from_stream(first.chain(futures_util::stream::pending()))
    };
    let stream = || {
        let chunks = ["one;", "two;"].map(|chunk| Ok::<_, Infallible>(Bytes::from(chunk)));
        Body::from_stream(futures_util::stream::iter(chunks))
    };
    Router::new()
        .route("/full", get(|| async { "all of it" }))
        .route("/stream", get(move || async move { stream() }))
        .route("/endless", get(move || async move { endless() }))
        .route("/hang", get(hang))
        .route("/panic", get(panics))
        .layer(layer(hook))
}

async fn panics() -> &'static str {
    panic!("the handler failed")
}

fn get_request(addr: SocketAddr, path: &str) -> Request<Body> {
    let id = path.trim_start_matches('/');
    Request::get(format!("http://{addr}{path}"))
        .header("x-request-id", id)
        .body(Body::empty())
        .unwrap()
}

/// The next hook's report, waited for as long as the server takes to see a
/// client gone (a guard against hanging, not a measure).
async fn next(told: &mut mpsc::UnboundedReceiver<Seen>) -> (String, Outcome, Option<u16>, bool) {
    let seen = tokio::time::timeout(Duration::from_secs(10), told.recv()).await;
    let (id, outcome, end) = seen.expect("a hook ran in time").unwrap();
    (
        id,
        outcome,
        end.status().map(|status| status.as_u16()),
        end.body_complete(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ending_over_loopback_runs_the_hook_once_inside_the_request() {
    let (hook, mut told) = mpsc::unbounded_channel();
    let (arrived, mut arrival) = mpsc::unbounded_channel();
    let addr = serve(app(Recorder(hook), arrived)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();

    for path in ["/full", "/stream"] {
        let response = client.request(get_request(addr, path)).await.unwrap();
        response.into_body().collect().await.unwrap();
        let id = path.trim_start_matches('/').to_owned();
        assert_eq!(next(&mut told).await, (id, Left, Some(200), true));
    }

    // The client goes away during the body, or before the answer: a
    // client of its own, whose connection goes with it.
    let client_gone = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let mut body = client_gone
        .request(get_request(addr, "/endless"))
        .await
        .unwrap()
        .into_body();
    body.frame().await.unwrap().unwrap();
    drop((body, client_gone));
    assert_eq!(
        next(&mut told).await,
        ("endless".into(), Cancelled, Some(200), false)
    );
    let client_gone = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let pending = tokio::spawn(client_gone.request(get_request(addr, "/hang")));
    arrival.recv().await.unwrap();
    pending.abort();
    drop(client_gone);
    assert_eq!(
        next(&mut told).await,
        ("hang".into(), Cancelled, None, false)
    );

    assert!(client.request(get_request(addr, "/panic")).await.is_err());
    assert_eq!(
        next(&mut told).await,
        ("panic".into(), Unwound, None, false)
    );
    assert!(told.try_recv().is_err(), "each hook ran once");
}
