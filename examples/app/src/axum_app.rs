//! The axum app of `examples/axum_app.rs`, also driven by the loopback tests.
//!
//! Every request gets its own root checkpoint from [`StackholmLayer`],
//! seeded with a request id and the matched route; a middleware inside the
//! layer adds the acting user; handlers open nested checkpoints across
//! awaits, run futures inside checkpoints, spawn tasks that inherit the
//! request's values, and stream bodies that read them while they are polled.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use stackholm::{Checkpoint, CheckpointExt, Key, DEFAULT};
use stackholm_tower::StackholmLayer;
use tower_http::catch_panic::CatchPanicLayer;

/// The request id: from the `x-request-id` header, or made by the layer,
/// and echoed on the response.
pub static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
/// The route the request matched, such as `/orders/{id}`.
pub static ROUTE: Key<String> = Key::new("route").inherited();
/// The acting user, set by the `authenticate` middleware.
pub static USER: Key<String> = Key::new("user").inherited();
/// What the handler is doing; nested checkpoints shadow it.
pub static STEP: Key<&'static str> = Key::new("step").inherited();
/// An audit trail that nested code appends to: one per request.
pub static TRAIL: Key<Arc<Mutex<Vec<String>>>> = Key::new("trail").inherited();
/// Counts this request among the live ones for as long as its root lives.
static LIVE: Key<LiveRequest> = Key::new("live");

static LIVE_REQUESTS: AtomicUsize = AtomicUsize::new(0);

/// How many requests' root checkpoints exist right now: zero once every
/// response has been sent (or every cancelled request dropped).
pub fn live_requests() -> usize {
    LIVE_REQUESTS.load(Ordering::SeqCst)
}

/// Lives in a request's root checkpoint, so it is dropped with it.
struct LiveRequest;

impl LiveRequest {
    fn new() -> Self {
        LIVE_REQUESTS.fetch_add(1, Ordering::SeqCst);
        LiveRequest
    }
}

impl Drop for LiveRequest {
    fn drop(&mut self) {
        LIVE_REQUESTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The app: routes, the user middleware, the layer, and panic recovery.
pub fn router() -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/orders/{id}", post(place_order))
        .route("/echo", get(echo))
        .route("/events", get(events))
        .route("/slow", get(slow))
        .route("/panic", get(panics))
        .layer(middleware::from_fn(authenticate))
        .layer(
            StackholmLayer::new()
                .request_id("x-request-id", &REQUEST_ID)
                .seed(|parts, root| {
                    let route = parts
                        .extensions
                        .get::<MatchedPath>()
                        .map_or("?", MatchedPath::as_str)
                        .to_owned();
                    root.set(&ROUTE, route);
                    root.set(&TRAIL, Arc::default());
                    root.set(&LIVE, LiveRequest::new());
                }),
        )
        // Outermost, so a panicking handler unwinds through the layer too.
        .layer(CatchPanicLayer::new())
}

/// Sets the acting user in the request's root checkpoint.
async fn authenticate(request: Request, next: Next) -> Response {
    let user = request
        .headers()
        .get("x-user")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("anonymous")
        .to_owned();
    DEFAULT
        .set(&USER, user)
        .expect("StackholmLayer opened the root checkpoint");
    next.run(request).await
}

/// One line about the current request, as any code inside it can tell.
pub fn describe() -> String {
    format!(
        "{} {} user={} step={}",
        DEFAULT.get(&REQUEST_ID).unwrap_or_else(|| "-".into()),
        DEFAULT.get(&ROUTE).unwrap_or_else(|| "-".into()),
        DEFAULT.get(&USER).unwrap_or_else(|| "-".into()),
        DEFAULT.get(&STEP).unwrap_or("-"),
    )
}

/// What the app's log lines carry: declared once, for the subscriber.
pub fn log_context() -> stackholm_tracing::LogContext {
    stackholm_tracing::LogContext::new()
        .display("request_id", &REQUEST_ID)
        .display("user", &USER)
        .display("step", &STEP)
}

/// Appends to the request's audit trail, from wherever it is called, and
/// logs it: the line carries the request's id, user and step.
fn audit(event: &str) {
    tracing::info!(target: "axum_app", "{event}");
    DEFAULT.with(&TRAIL, |trail| {
        if let Some(trail) = trail {
            trail
                .lock()
                .unwrap()
                .push(format!("{event} ({})", describe()));
        }
    });
}

async fn hello() -> String {
    format!("hello: {}\n", describe())
}

/// Nested checkpoints with awaits in between, a future inside a
/// checkpoint, and a spawned task that inherits the request's values.
async fn place_order(axum::extract::Path(id): axum::extract::Path<u32>) -> String {
    audit("received");
    // A nested checkpoint across awaits is a future run inside it: a guard
    // held across `.await` would be seen by whatever else the task polls.
    async {
        DEFAULT.set(&STEP, "validate").unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        audit("validated");
    }
    .in_checkpoint(Checkpoint::new())
    .await;
    async {
        tokio::task::yield_now().await;
        audit("charged");
    }
    .in_checkpoint(Checkpoint::new().with_value(&STEP, "charge"))
    .await;
    let notified = tokio::spawn(DEFAULT.inherit(async move {
        DEFAULT.set(&STEP, "notify").unwrap();
        tokio::task::yield_now().await;
        audit("notified");
    }))
    .await;
    notified.expect("the notification task does not panic");
    audit("done");
    let trail = DEFAULT.get(&TRAIL).expect("seeded by the layer");
    let lines = trail.lock().unwrap().join("\n  ");
    format!("order {id}:\n  {lines}\n")
}

/// Echoes what the request sees before, inside and after nested
/// checkpoints with awaits in between, and the depths of its stack and of
/// the worker thread's own stack.
async fn echo() -> String {
    let before = DEFAULT.get(&REQUEST_ID).unwrap_or_default();
    let user = DEFAULT.get(&USER).unwrap_or_default();
    let mut inner = String::new();
    for level in 0..3 {
        let expected = format!("{before}/{level}");
        inner = async {
            DEFAULT.set(&REQUEST_ID, expected.clone()).unwrap();
            tokio::task::yield_now().await;
            DEFAULT.get(&REQUEST_ID).unwrap_or_default()
        }
        .in_checkpoint(Checkpoint::new())
        .await;
        if inner != expected {
            break;
        }
    }
    let after = DEFAULT.get(&REQUEST_ID).unwrap_or_default();
    let depth = DEFAULT.depth();
    // A task spawned without a scope sees the worker thread's own stack.
    let thread_depth = tokio::spawn(async { DEFAULT.depth() })
        .await
        .unwrap_or(usize::MAX);
    format!("{before} {user} {inner} {after} {depth} {thread_depth}")
}

/// A streaming body: each chunk is made while the body is polled, and says
/// what the request's context held at that moment.
async fn events() -> Body {
    let stream = futures_util::stream::unfold(0, |n| async move {
        if n == 3 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let line = format!("event {n}: {}\n", describe());
        Some((Ok::<_, Infallible>(Bytes::from(line)), n + 1))
    });
    Body::from_stream(stream)
}

/// Takes far longer than any client waits: for cancellation.
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(60)).await;
    "finally"
}

async fn panics() -> &'static str {
    // A guard is fine where no `.await` follows it.
    let _nested = DEFAULT.enter();
    DEFAULT.set(&STEP, "about to fail").unwrap();
    panic!("the handler failed inside a nested checkpoint");
}

/// Serves the app on `addr` (port 0 for an ephemeral one) in a background
/// task; returns the address it listens on and the server's task.
///
/// # Errors
///
/// If the address cannot be bound.
pub async fn spawn_server(
    addr: std::net::SocketAddr,
) -> std::io::Result<(
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    crate::serve(router(), addr).await
}

/// Waits up to `timeout` for every request context to be dropped; returns
/// how many are still alive then (0 when all are gone).
pub async fn wait_for_no_live_requests(timeout: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + timeout;
    while live_requests() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    live_requests()
}
