//! The layer in isolation: tower services built with `service_fn`, driven
//! with `oneshot` and by hand.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
use stackholm::{Checkpoint, CheckpointExt, Key, DEFAULT};
use stackholm_tower::{SeedRoot, StackholmLayer};
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

static REQUEST_ID: Key<String> = Key::new("request_id");
static SEEN: Key<u32> = Key::new("seen");

stackholm::storage! {
    static APP;
}

fn request(id: &str) -> Request<Empty<Bytes>> {
    Request::get("/")
        .header("x-request-id", id)
        .body(Empty::new())
        .unwrap()
}

fn seeded() -> StackholmLayer<impl SeedRoot + Clone> {
    StackholmLayer::new().seed(|parts, root| {
        let id = parts.headers["x-request-id"].to_str().unwrap().to_owned();
        root.set(&REQUEST_ID, id);
    })
}

async fn body_text<B: Body<Data = Bytes>>(body: B) -> String
where
    B::Error: std::fmt::Debug,
{
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn call_and_every_poll_run_inside_a_fresh_root_checkpoint() {
    let service = seeded().layer(service_fn(|_req: Request<Empty<Bytes>>| {
        // The synchronous part of `call`.
        let in_call = (DEFAULT.depth(), DEFAULT.get(&REQUEST_ID));
        DEFAULT.set(&SEEN, 1).unwrap();
        async move {
            tokio::task::yield_now().await;
            let in_poll = (
                DEFAULT.depth(),
                DEFAULT.get(&REQUEST_ID),
                DEFAULT.get(&SEEN),
            );
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{in_call:?} {in_poll:?}"
            )))))
        }
    }));
    let response = service.oneshot(request("r-1")).await.unwrap();
    assert_eq!(
        body_text(response.into_body()).await,
        r#"(1, Some("r-1")) (1, Some("r-1"), Some(1))"#
    );
    assert_eq!(DEFAULT.depth(), 0, "nothing reached the test's own stack");
}

#[tokio::test]
async fn seeds_added_one_after_another_all_run_in_order() {
    let service = StackholmLayer::new()
        .seed_with(
            |_: &http::request::Parts, root: &mut stackholm_tower::Root<'_>| {
                root.set(&SEEN, 1);
            },
        )
        .seed(|_, root| root.set(&SEEN, root.get(&SEEN).unwrap() * 10 + 2))
        .seed(|_, root| root.set(&SEEN, root.get(&SEEN).unwrap() * 10 + 3))
        .layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            let seen = DEFAULT.get(&SEEN);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("{seen:?}")))))
        }));
    let response = service.oneshot(request("r-1")).await.unwrap();
    assert_eq!(body_text(response.into_body()).await, "Some(123)");
}

/// Private to the root checkpoint: the seed sets it, nested checkpoints do
/// not see it.
static ROOT_ONLY: Key<&'static str> = Key::new("root_only").private();

#[tokio::test]
async fn the_seed_runs_inside_the_requests_scope_and_reads_its_root_back() {
    let service = StackholmLayer::new()
        .seed(|parts, root| {
            // Inside the request's scope: its root is the one checkpoint, and
            // the request has no response yet.
            assert_eq!(DEFAULT.depth(), 1);
            let end = stackholm_tower::RequestEnd::current(DEFAULT).expect("inside the request");
            assert_eq!(end.status(), None);
            assert_eq!(root.get(&REQUEST_ID), None);
            let id = parts.headers["x-request-id"].to_str().unwrap().to_owned();
            root.set(&REQUEST_ID, id);
            root.set(&ROOT_ONLY, "root");
            // A clone of what was set, also through the storage.
            assert_eq!(root.get(&REQUEST_ID).as_deref(), Some("seeded"));
            assert_eq!(DEFAULT.get(&REQUEST_ID).as_deref(), Some("seeded"));
            assert_eq!(root.get(&ROOT_ONLY), Some("root"));
        })
        .layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            let in_root = (DEFAULT.get(&REQUEST_ID), DEFAULT.get(&ROOT_ONLY));
            let nested = async { (DEFAULT.get(&REQUEST_ID), DEFAULT.get(&ROOT_ONLY)) }
                .in_checkpoint(Checkpoint::new())
                .await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{in_root:?} {nested:?}"
            )))))
        }));
    let response = service.oneshot(request("seeded")).await.unwrap();
    assert_eq!(
        body_text(response.into_body()).await,
        r#"(Some("seeded"), Some("root")) (Some("seeded"), None)"#
    );
    assert_eq!(DEFAULT.depth(), 0, "nothing reached the test's own stack");
}

#[tokio::test]
async fn concurrent_requests_on_one_thread_never_see_each_other() {
    let service = seeded().layer(service_fn(|_req: Request<Empty<Bytes>>| async {
        let mine = DEFAULT.get(&REQUEST_ID).unwrap();
        for _ in 0..5 {
            async {
                DEFAULT.set(&REQUEST_ID, format!("{mine}/nested")).unwrap();
                tokio::task::yield_now().await;
                assert_eq!(DEFAULT.get(&REQUEST_ID), Some(format!("{mine}/nested")));
            }
            .in_checkpoint(Checkpoint::new())
            .await;
        }
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
            DEFAULT.get(&REQUEST_ID).unwrap(),
        ))))
    }));
    let (a, b) = tokio::join!(
        service.clone().oneshot(request("a")),
        service.clone().oneshot(request("b"))
    );
    assert_eq!(body_text(a.unwrap().into_body()).await, "a");
    assert_eq!(body_text(b.unwrap().into_body()).await, "b");
}

/// A streaming body that reports, per frame, the request id it sees.
struct Reporting {
    frames: u32,
}

impl Body for Reporting {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.frames == 0 {
            return Poll::Ready(None);
        }
        self.frames -= 1;
        let seen = DEFAULT.get(&REQUEST_ID).unwrap_or_else(|| "none".into());
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!("{seen};"))))))
    }
}

/// Counts drops, to tell when a request's stack is gone.
struct DropCounter(Arc<AtomicUsize>);
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
static COUNTER: Key<DropCounter> = Key::new("drop_counter");

#[tokio::test]
async fn the_body_is_polled_inside_the_scope_which_ends_with_it() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&dropped);
    let service = seeded().layer(service_fn(move |_req: Request<Empty<Bytes>>| {
        DEFAULT
            .set(&COUNTER, DropCounter(Arc::clone(&counter)))
            .unwrap();
        async { Ok::<_, Infallible>(Response::new(Reporting { frames: 3 })) }
    }));
    let response = service.clone().oneshot(request("s")).await.unwrap();
    let mut body = response.into_body();
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "the scope lives on in the body"
    );
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        text.push_str(std::str::from_utf8(&frame.unwrap().into_data().unwrap()).unwrap());
    }
    assert_eq!(text, "s;s;s;");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the scope ends with the body"
    );
    drop(body);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);

    // A body dropped before its end takes the scope with it.
    let response = service.oneshot(request("t")).await.unwrap();
    drop(response);
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_cancelled_request_drops_its_future_inside_its_scope_and_then_the_scope() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let saw_on_drop = Arc::new(std::sync::Mutex::new(None));
    struct ReportsOnDrop(Arc<std::sync::Mutex<Option<String>>>);
    impl Drop for ReportsOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = DEFAULT.get(&REQUEST_ID);
        }
    }
    let (counter, saw) = (Arc::clone(&dropped), Arc::clone(&saw_on_drop));
    let mut service = seeded().layer(service_fn(move |_req: Request<Empty<Bytes>>| {
        DEFAULT
            .set(&COUNTER, DropCounter(Arc::clone(&counter)))
            .unwrap();
        let reporter = ReportsOnDrop(Arc::clone(&saw));
        async move {
            let _reporter = reporter;
            std::future::pending::<Result<Response<Empty<Bytes>>, Infallible>>().await
        }
    }));
    let mut future = Box::pin(service.call(request("gone")));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    drop(future);
    assert_eq!(saw_on_drop.lock().unwrap().as_deref(), Some("gone"));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert_eq!(DEFAULT.depth(), 0);
}

#[derive(Debug, PartialEq)]
struct Refused(&'static str);

#[tokio::test]
async fn errors_pass_through_unchanged() {
    let service = StackholmLayer::new().layer(service_fn(|_req: Request<Empty<Bytes>>| async {
        Err::<Response<Empty<Bytes>>, _>(Refused("no"))
    }));
    assert_eq!(
        service.oneshot(request("e")).await.unwrap_err(),
        Refused("no")
    );
}

/// Ready only on its second poll, then failing readiness on the third.
#[derive(Debug, Clone, Default)]
struct Reluctant {
    polls: u32,
}

impl Service<Request<Empty<Bytes>>> for Reluctant {
    type Response = Response<Empty<Bytes>>;
    type Error = Refused;
    type Future = std::future::Ready<Result<Self::Response, Refused>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        self.polls += 1;
        match self.polls {
            1 => Poll::Pending,
            2 => Poll::Ready(Ok(())),
            _ => Poll::Ready(Err(Refused("overloaded"))),
        }
    }

    fn call(&mut self, _req: Request<Empty<Bytes>>) -> Self::Future {
        std::future::ready(Ok(Response::new(Empty::new())))
    }
}

#[test]
fn poll_ready_is_the_inner_services() {
    let mut service = StackholmLayer::new().layer(Reluctant::default());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_pending());
    assert_eq!(service.poll_ready(&mut cx), Poll::Ready(Ok(())));
    assert_eq!(
        service.poll_ready(&mut cx),
        Poll::Ready(Err(Refused("overloaded")))
    );
    assert_eq!(service.get_ref().polls, 3);
}

#[tokio::test]
async fn a_declared_storage_gets_the_root_instead_of_default() {
    let service = ServiceBuilder::new()
        .layer(StackholmLayer::new().storage(APP))
        .service(service_fn(|_req: Request<Empty<Bytes>>| async {
            let depths = format!("{} {}", APP.depth(), DEFAULT.depth());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(depths))))
        }));
    let response = service.oneshot(request("x")).await.unwrap();
    assert_eq!(body_text(response.into_body()).await, "1 0");
}

#[tokio::test]
async fn layers_nest_each_with_its_own_root() {
    let service = ServiceBuilder::new()
        .layer(seeded())
        .layer(StackholmLayer::new())
        .service(service_fn(|_req: Request<Empty<Bytes>>| async {
            let seen = format!("{} {:?}", DEFAULT.depth(), DEFAULT.get(&REQUEST_ID));
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen))))
        }));
    let response = service.oneshot(request("outer")).await.unwrap();
    // The inner layer opens a fresh scope: the outer root is not visible.
    assert_eq!(body_text(response.into_body()).await, "1 None");
}

#[test]
fn the_layer_is_clone_default_and_debug() {
    let layer = StackholmLayer::default().clone();
    let shown = format!("{layer:?}");
    assert!(shown.contains("stackholm::DEFAULT"), "{shown}");
    assert!(shown.contains("EmptyRoot"), "{shown}");
    let service = layer.layer(Reluctant::default()).clone();
    let shown = format!("{service:?}");
    assert!(shown.contains("StackholmService"), "{shown}");
    assert!(shown.contains("Reluctant"), "{shown}");
    assert!(shown.contains("EmptyRoot"), "{shown}");
    assert_eq!(service.into_inner().polls, 0);
}

#[test]
fn futures_and_bodies_are_send_for_send_services() {
    fn assert_send<T: Send>(_: &T) {}
    let mut service = seeded().layer(service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    }));
    let future = service.call(request("s"));
    assert_send(&future);
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
        panic!("the service answers at once");
    };
    assert_send(&response);
}

/// Reports, when dropped, what the storage showed: the request's scope
/// (with its root already left) refuses a write with `NoCheckpoint`
/// (outside any scope, the task-only handle would say `NoScope`); the
/// worker thread's stack, which a destructor run outside the scope would
/// see, holds 999.
struct ReportsWhereItIs(Arc<std::sync::Mutex<Vec<String>>>);
impl Drop for ReportsWhereItIs {
    fn drop(&mut self) {
        let probed = DEFAULT.task().set(&PROBE, ()).map_err(|err| err.error());
        let seen = match probed {
            Err(stackholm::Error::NoCheckpoint { .. }) => "in the request's scope".to_owned(),
            other => format!("elsewhere: {other:?} / {:?}", DEFAULT.get(&THREAD_VALUE)),
        };
        self.0.lock().unwrap().push(seen);
    }
}
static REPORTER: Key<ReportsWhereItIs> = Key::new("reporter");
static THREAD_VALUE: Key<u32> = Key::new("thread_value");
/// Written only to learn where a destructor runs.
static PROBE: Key<()> = Key::new("probe");

#[tokio::test]
async fn values_are_dropped_inside_the_requests_scope_at_the_end_of_the_body() {
    let _thread = DEFAULT.enter();
    DEFAULT.set(&THREAD_VALUE, 999).unwrap();
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let service = seeded().layer(service_fn(move |_req: Request<Empty<Bytes>>| {
        DEFAULT
            .set(&REPORTER, ReportsWhereItIs(Arc::clone(&sink)))
            .unwrap();
        async { Ok::<_, Infallible>(Response::new(Reporting { frames: 1 })) }
    }));
    // To the end of the body, and dropped before it.
    let response = service.clone().oneshot(request("r")).await.unwrap();
    assert_eq!(body_text(response.into_body()).await, "r;");
    let response = service.oneshot(request("s")).await.unwrap();
    drop(response);
    assert_eq!(
        *reports.lock().unwrap(),
        ["in the request's scope", "in the request's scope"]
    );
}

#[tokio::test]
async fn a_body_dropped_inside_a_read_of_its_storage_does_not_panic() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&dropped);
    let service = seeded().layer(service_fn(move |_req: Request<Empty<Bytes>>| {
        DEFAULT
            .set(&COUNTER, DropCounter(Arc::clone(&counter)))
            .unwrap();
        async { Ok::<_, Infallible>(Response::new(Reporting { frames: 1 })) }
    }));
    let body = service.oneshot(request("b")).await.unwrap().into_body();
    let _outer = DEFAULT.enter();
    DEFAULT.set(&THREAD_VALUE, 1).unwrap();
    // The scope cannot be run inside the read: the body and the scope are
    // dropped without it, and nothing panics.
    DEFAULT.with(&THREAD_VALUE, move |_| drop(body));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_handler_holding_a_guard_across_an_await_fails_loudly() {
    use futures_util::FutureExt;

    let service = seeded().layer(service_fn(|_req: Request<Empty<Bytes>>| async {
        let _nested = DEFAULT.enter();
        DEFAULT.set(&REQUEST_ID, "shadowed".to_owned()).unwrap();
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    }));
    let outcome = std::panic::AssertUnwindSafe(service.oneshot(request("g")))
        .catch_unwind()
        .await;
    let payload = outcome.expect_err("the request fails instead of going on wrong");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("held across"), "{message}");
    assert_eq!(DEFAULT.depth(), 0);
}

#[tokio::test]
async fn the_scoped_body_gives_access_to_its_inner_body() {
    let service = seeded().layer(service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Reporting { frames: 2 }))
    }));
    let mut body = service.oneshot(request("i")).await.unwrap().into_body();
    body.get_mut().frames = 3;
    assert_eq!(body.get_ref().frames, 3);
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        text.push_str(std::str::from_utf8(&frame.unwrap().into_data().unwrap()).unwrap());
    }
    assert_eq!(text, "i;i;i;");

    let body = seeded()
        .layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Reporting { frames: 1 }))
        }))
        .oneshot(request("j"))
        .await
        .unwrap()
        .into_body();
    // Taken out of the scope, the body no longer sees the request.
    assert_eq!(body_text(body.into_inner()).await, "none;");
}

type Endings = Arc<std::sync::Mutex<Vec<(stackholm::Outcome, Option<u16>, bool)>>>;

/// Registers a root exit hook that records how the request ended.
fn record_ending(endings: &Endings) {
    let endings = Arc::clone(endings);
    DEFAULT
        .on_root_exit(move |outcome| {
            let end = stackholm_tower::RequestEnd::current(DEFAULT).expect("inside the request");
            endings.lock().unwrap().push((
                outcome,
                end.status().map(|status| status.as_u16()),
                end.body_complete(),
            ));
        })
        .unwrap();
}

#[tokio::test]
async fn root_hooks_see_how_each_request_ended() {
    use stackholm::Outcome::{Cancelled, Left, Unwound};
    use stackholm_tower::RequestEnd;

    let endings = Endings::default();
    let sink = Arc::clone(&endings);
    let service = seeded().layer(service_fn(move |request: Request<Empty<Bytes>>| {
        record_ending(&sink);
        let mode = request.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        async move {
            match mode.as_str() {
                "error" => return Err(Refused("no")),
                "panic" => panic!("the handler failed"),
                "hang" => std::future::pending::<()>().await,
                _ => {}
            }
            let status = if mode == "fail" { 500 } else { 200 };
            let mut response = Response::new(Reporting { frames: 2 });
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok(response)
        }
    }));
    let last = || endings.lock().unwrap().pop().expect("a hook ran");

    // Answered and sent to the end: the one success.
    let response = service.clone().oneshot(request("ok")).await.unwrap();
    body_text(response.into_body()).await;
    assert_eq!(last(), (Left, Some(200), true));

    let response = service.clone().oneshot(request("fail")).await.unwrap();
    body_text(response.into_body()).await;
    assert_eq!(last(), (Left, Some(500), true));

    // The client went away during the body, or before the answer.
    let response = service.clone().oneshot(request("ok")).await.unwrap();
    drop(response);
    assert_eq!(last(), (Cancelled, Some(200), false));
    let mut pending = Box::pin(service.clone().oneshot(request("hang")));
    assert!(futures_util::poll!(pending.as_mut()).is_pending());
    drop(pending);
    assert_eq!(last(), (Cancelled, None, false));

    // No response at all.
    assert!(service.clone().oneshot(request("error")).await.is_err());
    assert_eq!(last(), (Left, None, false));
    let panicked = std::panic::AssertUnwindSafe(service.oneshot(request("panic")));
    assert!(futures_util::FutureExt::catch_unwind(panicked)
        .await
        .is_err());
    assert_eq!(last(), (Unwound, None, false));

    assert!(endings.lock().unwrap().is_empty());
    assert_eq!(RequestEnd::current(DEFAULT), None, "outside any request");
    assert!(
        !RequestEnd::default().succeeded(),
        "no response, no success"
    );
}

#[tokio::test]
async fn a_body_at_its_end_ends_the_request_without_another_poll() {
    use stackholm::Outcome::Left;

    let endings = Endings::default();
    let sink = Arc::clone(&endings);
    let service = seeded().layer(service_fn(move |request: Request<Empty<Bytes>>| {
        record_ending(&sink);
        let empty = request.headers()["x-request-id"] == "empty";
        async move {
            let text = if empty { "" } else { "all of it" };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
        }
    }));

    // A body of known length says it is at its end with its last frame, and
    // a server need not poll it again (hyper does not).
    let mut body = service
        .clone()
        .oneshot(request("full"))
        .await
        .unwrap()
        .into_body();
    assert!(
        endings.lock().unwrap().is_empty(),
        "the request goes on in the body"
    );
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "all of it");
    // Its scope stays for a poll that would still come, and goes with it.
    assert!(endings.lock().unwrap().is_empty());
    drop(body);
    assert_eq!(
        endings.lock().unwrap().pop(),
        Some((Left, Some(200), true)),
        "the request was complete with its last frame"
    );

    // An empty body may never be polled at all.
    let body = service.oneshot(request("empty")).await.unwrap().into_body();
    drop(body);
    assert_eq!(
        endings.lock().unwrap().pop(),
        Some((Left, Some(200), true)),
        "the request was complete with its head"
    );
    assert!(endings.lock().unwrap().is_empty(), "and ended only once");
}

/// A request of a layer on one storage, nested in a request of a layer on
/// another: each storage's `RequestEnd` is its own request's, the outer one
/// readable from inside the inner one.
#[tokio::test]
async fn nested_requests_on_two_storages_each_tell_their_own_end() {
    use stackholm_tower::RequestEnd;

    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hooked = Arc::clone(&seen);
    let inner =
        StackholmLayer::new()
            .storage(APP)
            .layer(service_fn(move |_: Request<Empty<Bytes>>| {
                let hooked = Arc::clone(&hooked);
                async move {
                    let reads = |at| (at, RequestEnd::current(DEFAULT), RequestEnd::current(APP));
                    hooked.lock().unwrap().push(reads("handler"));
                    APP.on_root_exit(move |_| hooked.lock().unwrap().push(reads("inner end")))
                        .unwrap();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"x"))))
                }
            }));
    let service = StackholmLayer::new().layer(inner);
    let response = service.oneshot(request("r")).await.unwrap();
    body_text(response.into_body()).await;
    let answered = RequestEnd::default();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], ("handler", Some(answered), Some(answered)));
    let (at, outer, inner) = seen[1];
    assert_eq!(at, "inner end");
    assert!(outer.is_some(), "the outer request is still running");
    assert!(inner.is_some_and(|end| end.succeeded()), "{inner:?}");
}

/// A seed that panics ends its request unwound; the root's hooks it
/// registered still read how the request ended.
#[test]
fn a_panicking_seed_ends_its_request_with_its_end_still_told() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hooked = Arc::clone(&seen);
    let mut service = StackholmLayer::new()
        .seed(move |_, _| {
            let hooked = Arc::clone(&hooked);
            DEFAULT
                .on_root_exit(move |outcome| {
                    let end = stackholm_tower::RequestEnd::current(DEFAULT);
                    hooked.lock().unwrap().push((outcome, end));
                })
                .unwrap();
            panic!("the seed failed");
        })
        .layer(service_fn(|_: Request<Empty<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
        }));
    let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(service.call(request("r")));
    }));
    assert!(called.is_err());
    assert_eq!(
        *seen.lock().unwrap(),
        [(
            stackholm::Outcome::Unwound,
            Some(stackholm_tower::RequestEnd::default())
        )]
    );
}

/// The handler's future, dropped once it has produced its response, sees
/// the response's status in `RequestEnd`.
#[tokio::test]
async fn the_handler_future_is_dropped_knowing_the_status() {
    struct Reads(Arc<std::sync::Mutex<Option<Option<http::StatusCode>>>>);
    impl Drop for Reads {
        fn drop(&mut self) {
            let end = stackholm_tower::RequestEnd::current(DEFAULT);
            *self.0.lock().unwrap() = Some(end.and_then(|end| end.status()));
        }
    }
    /// A future that answers at once and reads on drop, with the future
    /// itself (not at the end of an `async` body, inside the poll).
    struct Answers(#[allow(dead_code, reason = "read when dropped")] Reads);
    impl Future for Answers {
        type Output = Result<Response<Empty<Bytes>>, Infallible>;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            let mut response = Response::new(Empty::<Bytes>::new());
            *response.status_mut() = http::StatusCode::ACCEPTED;
            Poll::Ready(Ok(response))
        }
    }
    let seen = Arc::new(std::sync::Mutex::new(None));
    let held = Arc::clone(&seen);
    let service = StackholmLayer::new().layer(service_fn(move |_: Request<Empty<Bytes>>| {
        Answers(Reads(Arc::clone(&held)))
    }));
    let response = service.oneshot(request("r")).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Some(http::StatusCode::ACCEPTED))
    );
    drop(response);
}

/// A body of the given frames, at its end once they are out.
struct Frames(std::collections::VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

fn trailers(grpc_status: &'static str) -> Frame<Bytes> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static(grpc_status));
    Frame::trailers(trailers)
}

fn data() -> Frame<Bytes> {
    Frame::data(Bytes::from_static(b"\0\0\0\0\0"))
}

/// Serves one response through the layer, of `status`, with `grpc-status:
/// head` in its head if given, and `frames` as its body, reads it to the
/// end, and gives what a root exit hook saw: the call's gRPC status and
/// whether it succeeded.
async fn grpc_ending(
    status: u16,
    head: Option<&'static str>,
    frames: Vec<Frame<Bytes>>,
) -> (Option<i32>, bool) {
    let mut response = Response::new(Frames(frames.into()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    if let Some(code) = head {
        headers.insert("grpc-status", http::HeaderValue::from_static(code));
    }
    let mut response = Some(response);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let hooked = Arc::clone(&seen);
    let service = StackholmLayer::new().layer(service_fn(move |_: Request<Empty<Bytes>>| {
        let hooked = Arc::clone(&hooked);
        DEFAULT
            .on_root_exit(move |outcome| {
                let end =
                    stackholm_tower::RequestEnd::current(DEFAULT).expect("inside the request");
                *hooked.lock().unwrap() = Some((outcome, end));
            })
            .unwrap();
        std::future::ready(Ok::<_, Infallible>(response.take().unwrap()))
    }));
    let response = service.oneshot(request("r")).await.unwrap();
    response.into_body().collect().await.unwrap();
    let (outcome, end) = seen.lock().unwrap().take().expect("the hook ran");
    assert_eq!(outcome, stackholm::Outcome::Left);
    assert!(end.body_complete());
    assert_eq!(end.status().map(|status| status.as_u16()), Some(status));
    (end.grpc_status(), end.succeeded())
}

/// A gRPC call is answered `200 OK` however it ends; its `grpc-status`,
/// classified as tower-http's `GrpcErrorsAsFailures` does, decides.
#[tokio::test]
async fn a_grpc_call_succeeds_only_with_status_zero_in_its_head_or_trailers() {
    // Ended OK: a unary call, a stream.
    assert_eq!(
        grpc_ending(200, None, vec![data(), trailers("0")]).await,
        (Some(0), true)
    );
    assert_eq!(
        grpc_ending(200, None, vec![trailers("0")]).await,
        (Some(0), true)
    );
    // Failed before answering: trailers-only, the status in the head.
    assert_eq!(
        grpc_ending(200, Some("13"), vec![]).await,
        (Some(13), false)
    );
    // Failed in the middle of a stream: the status in the trailers.
    let midway = vec![data(), data(), trailers("10")];
    assert_eq!(grpc_ending(200, None, midway).await, (Some(10), false));
    // A code gRPC does not define is UNKNOWN, a failure.
    assert_eq!(
        grpc_ending(200, None, vec![trailers("99")]).await,
        (Some(2), false)
    );
    assert_eq!(grpc_ending(200, Some("-1"), vec![]).await, (Some(2), false));
    // No status anywhere, or none that is an integer: the HTTP status decides.
    assert_eq!(grpc_ending(200, None, vec![data()]).await, (None, true));
    assert_eq!(grpc_ending(200, Some("oops"), vec![]).await, (None, true));
    assert_eq!(
        grpc_ending(200, None, vec![trailers("")]).await,
        (None, true)
    );
    assert_eq!(
        grpc_ending(503, None, vec![trailers("0")]).await,
        (Some(0), false)
    );
    // The head is read where gRPC puts a status, in a response without a
    // body; in one with a body, the trailers tell.
    let both = vec![data(), trailers("0")];
    assert_eq!(grpc_ending(200, Some("13"), both).await, (Some(0), true));
}

/// A gRPC stream the client drops midway is cancelled, with no gRPC status.
#[tokio::test]
async fn a_grpc_stream_dropped_midway_is_cancelled_without_a_status() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let hooked = Arc::clone(&seen);
    let service = StackholmLayer::new().layer(service_fn(move |_: Request<Empty<Bytes>>| {
        let hooked = Arc::clone(&hooked);
        DEFAULT
            .on_root_exit(move |outcome| {
                let end =
                    stackholm_tower::RequestEnd::current(DEFAULT).expect("inside the request");
                *hooked.lock().unwrap() = Some((outcome, end));
            })
            .unwrap();
        let frames = Frames(vec![data(), data(), trailers("0")].into());
        std::future::ready(Ok::<_, Infallible>(Response::new(frames)))
    }));
    let mut body = service.oneshot(request("r")).await.unwrap().into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    let (outcome, end) = seen.lock().unwrap().take().expect("the hook ran");
    assert_eq!(outcome, stackholm::Outcome::Cancelled);
    assert_eq!(end.status(), Some(http::StatusCode::OK));
    assert_eq!(end.grpc_status(), None);
    assert!(!end.body_complete() && !end.succeeded());
}

/// Trailers are a body's last frame: hyper's HTTP/2 server sends them and
/// polls the body no more, whatever its `is_end_stream` says.
#[tokio::test]
async fn a_body_ends_with_its_trailers_without_another_poll() {
    use stackholm::Outcome::Left;

    let endings = Endings::default();
    let sink = Arc::clone(&endings);
    let service = seeded().layer(service_fn(move |_: Request<Empty<Bytes>>| {
        record_ending(&sink);
        let frames = futures_util::stream::iter([Ok::<_, Infallible>(data()), Ok(trailers("0"))]);
        std::future::ready(Ok::<_, Infallible>(Response::new(
            http_body_util::StreamBody::new(frames),
        )))
    }));
    let mut body = service.oneshot(request("r")).await.unwrap().into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    assert!(body.frame().await.unwrap().unwrap().is_trailers());
    assert!(
        !body.is_end_stream(),
        "the inner body does not say it is at its end"
    );
    assert_eq!(
        endings.lock().unwrap().pop(),
        Some((Left, Some(200), true)),
        "the request ended with its trailers"
    );
    drop(body);
    assert!(endings.lock().unwrap().is_empty(), "and ended only once");
}
