//! `StackholmLayer::request_id` beside tower-http's request-id layers, on a
//! real server of 127.0.0.1: whichever layer makes the id, the request has
//! one, the same in tower-http's `RequestId` extension, in the key, on the
//! response and on the request's log lines.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use stackholm::{Key, DEFAULT};
use stackholm_tower::StackholmLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tracing_subscriber::fmt::format;

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();

/// Logs a line, and answers with the key and the `RequestId` extension.
async fn handler(Extension(extension): Extension<RequestId>) -> String {
    tracing::info!("handled");
    let extension = extension.header_value().to_str().unwrap().to_owned();
    format!(
        "{} {extension}",
        DEFAULT.get(&REQUEST_ID).unwrap_or_default()
    )
}

/// Where tower-http's request-id layers go around ours.
#[derive(Debug, Clone, Copy)]
enum Placement {
    /// `SetRequestIdLayer` outside: its `MakeRequestId` makes the ids.
    SetOutside,
    /// `SetRequestIdLayer` inside: it takes ours into the extension.
    SetInside,
}

fn app(placement: Placement) -> Router {
    let ours = StackholmLayer::new().request_id("x-request-id", &REQUEST_ID);
    let routes = Router::new().route("/", get(handler));
    // `Router::layer` wraps what is there: the last layer is outermost.
    match placement {
        Placement::SetOutside => routes
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(ours)
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid)),
        Placement::SetInside => routes
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(ours)
            .layer(PropagateRequestIdLayer::x_request_id()),
    }
}

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

/// Serves `app` on 127.0.0.1, sends it one request with `headers`; returns
/// the response's `x-request-id` and its body.
async fn fetch(app: Router, headers: &[(&str, &str)]) -> (String, String) {
    let (addr, _server) = stackholm_examples::serve(app, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let mut request = http::Request::get(format!("http://{addr}/"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (echoed, String::from_utf8(body.to_vec()).unwrap())
}

/// Sends one request with `headers` to `app`; returns the key and the
/// extension the handler saw, the response's id and the logged id.
async fn one_request(app: Router, headers: &[(&str, &str)]) -> [String; 4] {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .event_format(
            stackholm_tracing::LogContext::new()
                .display("request_id", &REQUEST_ID)
                .text(format().without_time()),
        )
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let (echoed, body) = fetch(app, headers).await;
    let (key, extension) = body.split_once(' ').unwrap();
    let logged = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let logged = logged
        .split_once("request_id=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no request_id in {logged:?}"))
        .to_owned();
    [key.to_owned(), extension.to_owned(), echoed, logged]
}

#[tokio::test(flavor = "current_thread")]
async fn one_id_everywhere_whichever_layer_makes_it() {
    for placement in [Placement::SetOutside, Placement::SetInside] {
        for sent in [None, Some("r-1")] {
            let headers: Vec<_> = sent.iter().map(|id| ("x-request-id", *id)).collect();
            let seen = one_request(app(placement), &headers).await;
            assert!(
                seen.iter().all(|id| *id == seen[0]),
                "{placement:?}: {seen:?}"
            );
            if let Some(sent) = sent {
                assert_eq!(seen[0], sent, "{placement:?}");
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn set_request_id_outside_makes_the_ids_with_its_make_request_id() {
    let [key, ..] = one_request(app(Placement::SetOutside), &[]).await;
    // A UUID, `MakeRequestUuid`'s, not one of ours.
    assert_eq!(key.len(), 36, "{key}");
    assert_eq!(key.matches('-').count(), 4, "{key}");
}
