//! The layer allocates nothing per request once the worker is warm, also
//! with a seeded root whose values have destructors.
//!
//! The allocator counts allocations per thread, so the count is the test's.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Empty;
use stackholm::{Error, Key, DEFAULT};
use stackholm_tower::StackholmLayer;
use tower::{service_fn, Layer, Service};

include!("../../stackholm/tests/support/counting_alloc.rs");

/// A value with a destructor, which uses the storage as it goes: it takes
/// the path of values dropped after their checkpoint is left, inside the
/// request's scope, with the root (its own checkpoint) already left. There
/// a write is refused for want of a checkpoint (outside any scope, the
/// task-only handle would say `NoScope` instead), and the root's values are
/// gone. What it saw is counted, and checked after the requests: a panic
/// here would be caught with the rest of what the request's end runs.
struct Token;

/// Tokens dropped, and those that saw anything else than the above.
static TOKENS_DROPPED: AtomicUsize = AtomicUsize::new(0);
static TOKENS_MISPLACED: AtomicUsize = AtomicUsize::new(0);

impl Drop for Token {
    fn drop(&mut self) {
        let seen = DEFAULT.task().set(&PROBE, ()).map_err(|err| err.error());
        let in_place = matches!(seen, Err(Error::NoCheckpoint { .. }))
            && DEFAULT.task().get(&REQUEST_ID).is_none();
        TOKENS_DROPPED.fetch_add(1, Ordering::SeqCst);
        if !in_place {
            TOKENS_MISPLACED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

static REQUEST_ID: Key<u64> = Key::new("request_id");
static ROUTE: Key<&'static str> = Key::new("route");
static TOKEN: Key<Token> = Key::new("token");
static STEP: Key<u32> = Key::new("step");
/// Written only to learn where a destructor runs.
static PROBE: Key<()> = Key::new("probe");

/// Calls `service` and polls the response to the end of its body, with no
/// runtime: the futures here are ready at once.
fn one_request<S, B>(service: &mut S, id: u64)
where
    S: Service<Request<u64>, Response = Response<B>, Error = Infallible>,
    B: Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    let request = Request::new(id);
    let response = pin!(service.call(request));
    let Poll::Ready(Ok(response)) = response.poll(&mut cx) else {
        panic!("the response is ready at once");
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(_)) = body.as_mut().poll_frame(&mut cx) {}
}

fn allocations_per_request<S, B>(service: &mut S) -> usize
where
    S: Service<Request<u64>, Response = Response<B>, Error = Infallible>,
    B: Body,
{
    for id in 0..100 {
        one_request(service, id);
    }
    let before = allocations();
    for id in 0..1000 {
        one_request(service, id);
    }
    (allocations() - before) / 1000
}

#[test]
fn a_seeded_layer_allocates_nothing_per_request_once_warm() {
    let handler = |request: Request<u64>| {
        // The handler reads the root and sets a value of its own.
        assert_eq!(DEFAULT.get(&REQUEST_ID), Some(*request.body()));
        DEFAULT.set(&STEP, 1).unwrap();
        std::future::ready(Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())))
    };
    let seeded = StackholmLayer::new().seed(|parts, root| {
        let id = parts.extensions.get::<u64>().copied().unwrap_or_default();
        root.set(&REQUEST_ID, id);
        root.set(&ROUTE, "/hello");
        root.set(&TOKEN, Token);
    });
    // The request id travels in an extension too, for the seed.
    let mut layered = seeded.layer(service_fn(move |request: Request<u64>| handler(request)));
    let mut with_extension = service_fn(move |mut request: Request<u64>| {
        let id = *request.body();
        request.extensions_mut().insert(id);
        layered.call(request)
    });
    let mut bare = service_fn(move |mut request: Request<u64>| {
        let id = *request.body();
        request.extensions_mut().insert(id);
        std::future::ready(Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())))
    });

    let bare_allocations = allocations_per_request(&mut bare);
    let layered_allocations = allocations_per_request(&mut with_extension);
    assert_eq!(
        layered_allocations, bare_allocations,
        "the layer, its seeded root of 3 values and their drops allocate nothing per request"
    );
    assert_eq!(
        TOKENS_DROPPED.load(Ordering::SeqCst),
        1100,
        "a token per request"
    );
    assert_eq!(
        TOKENS_MISPLACED.load(Ordering::SeqCst),
        0,
        "each token dropped in the request's scope, its root left"
    );
}
