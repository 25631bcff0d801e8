//! `StackholmLayer::request_id`: the id a request carries or a fresh one,
//! the same in the key, in the request the inner service gets and on the
//! response.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use stackholm::{Key, DEFAULT};
use stackholm_tower::StackholmLayer;
use tower::{service_fn, Layer, ServiceExt};

static REQUEST_ID: Key<String> = Key::new("request_id");

/// What the inner service saw, and what the response carried.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    key: Option<String>,
    header: Option<String>,
    echoed: Option<String>,
}

impl Seen {
    /// The one id seen everywhere.
    fn one(&self) -> &str {
        let id = self.key.as_deref().expect("the key is set");
        assert_eq!(self.header.as_deref(), Some(id), "{self:?}");
        assert_eq!(self.echoed.as_deref(), Some(id), "{self:?}");
        id
    }
}

/// Sends `request` through the layer with request ids in `header` to a
/// service answering with the headers of `answer`.
async fn send(
    header: &'static str,
    request: Request<Empty<Bytes>>,
    answer: &'static [(&'static str, &'static str)],
) -> Seen {
    let inside = Arc::new(Mutex::new(None));
    let record = Arc::clone(&inside);
    let service = StackholmLayer::new()
        .request_id(header, &REQUEST_ID)
        .layer(service_fn(move |request: Request<Empty<Bytes>>| {
            *record.lock().unwrap() = Some((
                DEFAULT.get(&REQUEST_ID),
                text(request.headers().get(header)),
            ));
            let mut response = Response::new(Empty::<Bytes>::new());
            for (name, value) in answer {
                response
                    .headers_mut()
                    .insert(*name, HeaderValue::from_static(value));
            }
            std::future::ready(Ok::<_, Infallible>(response))
        }));
    let response = service.oneshot(request).await.unwrap();
    let (key, header_seen) = inside
        .lock()
        .unwrap()
        .take()
        .expect("the service was called");
    Seen {
        key,
        header: header_seen,
        echoed: text(response.headers().get(header)),
    }
}

fn text(value: Option<&HeaderValue>) -> Option<String> {
    value.map(|value| value.to_str().unwrap().to_owned())
}

fn with_id(id: &str) -> Request<Empty<Bytes>> {
    Request::get("/")
        .header("x-request-id", id)
        .body(Empty::new())
        .unwrap()
}

fn without_id() -> Request<Empty<Bytes>> {
    Request::get("/").body(Empty::new()).unwrap()
}

#[tokio::test]
async fn the_id_a_request_carries_is_taken_and_echoed() {
    let seen = send("x-request-id", with_id("r-1"), &[]).await;
    assert_eq!(seen.one(), "r-1");
}

#[tokio::test]
async fn a_request_without_an_id_gets_a_fresh_one_everywhere() {
    let mut ids = HashSet::new();
    for _ in 0..100 {
        let seen = send("x-request-id", without_id(), &[]).await;
        assert!(ids.insert(seen.one().to_owned()), "{seen:?}");
    }
}

#[tokio::test]
async fn an_id_too_long_with_white_space_or_empty_is_replaced() {
    let long = "a".repeat(201);
    for sent in [long.as_str(), "r 1", ""] {
        let seen = send("x-request-id", with_id(sent), &[]).await;
        assert_ne!(seen.one(), sent);
    }
    let opaque = Request::get("/")
        .header("x-request-id", HeaderValue::from_bytes(b"r-\xff").unwrap())
        .body(Empty::new())
        .unwrap();
    let seen = send("x-request-id", opaque, &[]).await;
    assert!(seen.one().is_ascii());
    let longest = "a".repeat(200);
    assert_eq!(
        send("x-request-id", with_id(&longest), &[]).await.one(),
        longest
    );
}

#[tokio::test]
async fn an_id_the_response_has_is_kept() {
    let seen = send("x-request-id", with_id("r-1"), &[("x-request-id", "mine")]).await;
    assert_eq!(seen.key.as_deref(), Some("r-1"));
    assert_eq!(seen.echoed.as_deref(), Some("mine"));
}

#[tokio::test]
async fn the_header_is_the_one_given_in_any_case() {
    let request = Request::get("/")
        .header("x-correlation-id", "c-1")
        .header("x-request-id", "r-1")
        .body(Empty::new())
        .unwrap();
    let seen = send("X-Correlation-Id", request, &[]).await;
    assert_eq!(seen.key.as_deref(), Some("c-1"));
}

#[tokio::test]
async fn seeds_see_the_id_in_the_root_and_in_the_head() {
    static SEEN_BY_SEED: Key<String> = Key::new("seen_by_seed");
    let service = StackholmLayer::new()
        .seed(|parts, root| {
            let head = text(parts.headers.get("x-request-id")).unwrap_or_default();
            let key = root.get(&REQUEST_ID).unwrap_or_default();
            root.set(&SEEN_BY_SEED, format!("{key} {head}"));
        })
        .request_id("x-request-id", &REQUEST_ID)
        .layer(service_fn(|_: Request<Empty<Bytes>>| async {
            let seen = DEFAULT.get(&SEEN_BY_SEED).unwrap_or_default();
            let id = DEFAULT.get(&REQUEST_ID).unwrap_or_default();
            let mut response = Response::new(Empty::<Bytes>::new());
            let value = HeaderValue::from_str(&format!("{seen} {id}")).unwrap();
            response.headers_mut().insert("x-seen", value);
            Ok::<_, Infallible>(response)
        }));
    let response = service.oneshot(without_id()).await.unwrap();
    let id = text(response.headers().get("x-request-id")).unwrap();
    let seen = text(response.headers().get("x-seen")).unwrap();
    assert_eq!(seen, format!("{id} {id} {id}"));
}

#[tokio::test]
async fn without_request_ids_the_layer_leaves_the_header_alone() {
    let service = StackholmLayer::new().layer(service_fn(|request: Request<Empty<Bytes>>| {
        assert!(!request.headers().contains_key("x-request-id"));
        std::future::ready(Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())))
    }));
    let response = service.oneshot(without_id()).await.unwrap();
    assert!(!response.headers().contains_key("x-request-id"));
}
