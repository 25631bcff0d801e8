//! Logging a request's context: stackholm-tracing's fields, read from the
//! stack when an event is formatted, against the tracing-native way, a span
//! per request holding the same fields, entered on every poll as
//! `tower_http::trace::TraceLayer` and `Instrument` do.

use std::hint::black_box;

use stackholm::{Key, DEFAULT};
use stackholm_tracing::LogContext;
use tracing::Dispatch;
use tracing_subscriber::fmt::format;

static REQUEST_ID: Key<u64> = Key::new("request_id").inherited();
static USER: Key<&'static str> = Key::new("user").inherited();
static TENANT: Key<u32> = Key::new("tenant").inherited();

/// How many polls (and events, one each) a request of these workloads has.
pub const POLLS: usize = 3;

/// The `fmt` subscriber writing to a sink, with the three context fields.
#[must_use]
pub fn stackholm_subscriber() -> Dispatch {
    let context = LogContext::new()
        .display("request_id", &REQUEST_ID)
        .display("user", &USER)
        .display("tenant", &TENANT);
    Dispatch::new(
        tracing_subscriber::fmt()
            .event_format(context.text(format().without_time()))
            .with_writer(std::io::sink)
            .finish(),
    )
}

/// The same `fmt` subscriber without context fields, for spans.
#[must_use]
pub fn span_subscriber() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::fmt()
            .event_format(format().without_time())
            .with_writer(std::io::sink)
            .finish(),
    )
}

/// Runs `f` inside a request's checkpoint holding the three values.
pub fn in_stackholm_request<R>(f: impl FnOnce() -> R) -> R {
    let _request = DEFAULT.enter();
    DEFAULT
        .set(&REQUEST_ID, black_box(7))
        .expect("in a checkpoint");
    DEFAULT
        .set(&USER, black_box("alice"))
        .expect("in a checkpoint");
    DEFAULT.set(&TENANT, black_box(3)).expect("in a checkpoint");
    f()
}

/// A span holding the three values, as a tracing layer would open per
/// request.
#[must_use]
pub fn request_span() -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = black_box(7_u64),
        user = black_box("alice"),
        tenant = black_box(3_u32)
    )
}

/// One event.
pub fn event() {
    tracing::info!("handled");
}

/// A whole request, stackholm's way: the values set once, an event per poll.
pub fn stackholm_request() {
    in_stackholm_request(|| {
        for _ in 0..POLLS {
            event();
        }
    });
}

/// A whole request, the span's way: the span created, entered and left
/// around each poll's event, then closed.
pub fn span_request() {
    let span = request_span();
    for _ in 0..POLLS {
        let _entered = span.enter();
        event();
    }
}
