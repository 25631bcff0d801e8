//! Declared keys across service boundaries, through an axum `Router` and
//! `StackholmLayer`: what a handler sees of the incoming headers, and what
//! `inject` (or `PropagateLayer`) writes into the requests it makes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use stackholm::{Checkpoint, CheckpointExt, Key, Stack, DEFAULT};
use stackholm_tower::propagation::{
    Direction, Place, PropagateLayer, Propagation, Reason, Rejection,
};
use stackholm_tower::StackholmLayer;
use tower::{service_fn, ServiceBuilder, ServiceExt};

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
static LIMIT: Key<u32> = Key::new("limit").inherited();
static CALLER: Key<String> = Key::new("caller").inherited();
static TENANT: Key<String> = Key::new("tenant").inherited();
static USER: Key<String> = Key::new("user").inherited();
static NOTE: Key<String> = Key::new("note").inherited();
static COUNT: Key<u32> = Key::new("count").inherited();
/// Declared outbound, but not inherited: spawned work does not send it.
static LOCAL: Key<String> = Key::new("local");

/// The declarations most tests use, as a relay, so that what it passes on
/// shows. Members go out in this order: tenant, user, note, count, local;
/// then the forwarded ones.
fn declared() -> Propagation {
    edge().relay()
}

/// The same declarations at the edge: nothing undeclared is passed on.
fn edge() -> Propagation {
    Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .header("x-limit", &LIMIT, Direction::Inbound)
        .header("x-caller", &CALLER, Direction::Outbound)
        .member("tenant", &TENANT, Direction::Both)
        .member("user", &USER, Direction::Outbound)
        .member("note", &NOTE, Direction::Both)
        .member("count", &COUNT, Direction::Both)
        .member("local", &LOCAL, Direction::Outbound)
}

/// What a handler saw of the context, and what `inject` wrote.
#[derive(Debug, Clone, Default)]
struct Seen {
    values: BTreeMap<&'static str, String>,
    out: HeaderMap,
}

impl Seen {
    fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The one value of an outgoing header, as text.
    fn out(&self, name: &str) -> Option<&str> {
        let mut values = self.out.get_all(name).iter();
        let value = values.next()?;
        assert!(values.next().is_none(), "`{name}` written twice");
        Some(value.to_str().expect("visible ASCII"))
    }
}

/// The current values of every key, and what `inject` writes into `out`.
fn observe_into(propagation: &Propagation, mut out: HeaderMap) -> Seen {
    let mut values = BTreeMap::new();
    let mut put = |name, value: Option<String>| {
        if let Some(value) = value {
            values.insert(name, value);
        }
    };
    put("request_id", DEFAULT.get(&REQUEST_ID));
    put("limit", DEFAULT.get(&LIMIT).map(|v| v.to_string()));
    put("caller", DEFAULT.get(&CALLER));
    put("tenant", DEFAULT.get(&TENANT));
    put("user", DEFAULT.get(&USER));
    put("note", DEFAULT.get(&NOTE));
    put("count", DEFAULT.get(&COUNT).map(|v| v.to_string()));
    put("local", DEFAULT.get(&LOCAL));
    propagation.inject(&mut out);
    Seen { values, out }
}

fn observe(propagation: &Propagation) -> Seen {
    observe_into(propagation, HeaderMap::new())
}

async fn observing(propagation: Propagation) -> Vec<Seen> {
    vec![observe(&propagation)]
}

/// A router whose one handler runs `work` and returns what it gives, in the
/// response's extensions.
fn app<F, Fut>(propagation: Propagation, work: F) -> Router
where
    F: Fn(Propagation) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Vec<Seen>> + Send + 'static,
{
    let outgoing = propagation.clone();
    let handler = move || {
        let work = work.clone();
        let outgoing = outgoing.clone();
        async move { (Extension(work(outgoing).await), "ok") }
    };
    Router::new()
        .route("/", get(handler))
        .layer(StackholmLayer::new().seed_with(propagation))
}

/// Header pairs, their values as bytes of any length.
macro_rules! headers {
    ($(($name:expr, $value:expr)),* $(,)?) => {
        &[$(($name, &$value[..])),*]
    };
}

fn request(headers: &[(&str, &[u8])]) -> Request<Body> {
    let mut request = Request::get("/").body(Body::empty()).unwrap();
    for &(name, value) in headers {
        let value = HeaderValue::from_bytes(value).expect("a header value http accepts");
        request.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value,
        );
    }
    request
}

/// Serves `request`, which must succeed, and returns what the handler gave.
async fn serve(app: Router, request: Request<Body>) -> Vec<Seen> {
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
        .extensions()
        .get::<Vec<Seen>>()
        .expect("the handler ran")
        .clone()
}

/// Serves one request with `observing` as the handler.
async fn served(propagation: Propagation, headers: &[(&str, &[u8])]) -> Seen {
    serve(app(propagation, observing), request(headers))
        .await
        .remove(0)
}

/// One call of the `on_reject` hook.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Told {
    direction: Direction,
    place: Place,
    reason: String,
    text: String,
    source: Option<String>,
}

fn told(direction: Direction, place: Place, reason: &str, text: &str) -> Told {
    Told {
        direction,
        place,
        reason: reason.to_owned(),
        text: text.to_owned(),
        source: None,
    }
}

type Log = Arc<Mutex<Vec<Told>>>;

fn recording(propagation: Propagation) -> (Propagation, Log) {
    let log = Log::default();
    let hook_log = Arc::clone(&log);
    let propagation = propagation.on_reject(move |rejection: &Rejection| {
        let reason = match rejection.reason() {
            Reason::Decode(_) => "Decode".to_owned(),
            Reason::NotText => "NotText".to_owned(),
            Reason::Ambiguous => "Ambiguous".to_owned(),
            Reason::Malformed { members } => format!("Malformed({members})"),
            Reason::OverLimit => "OverLimit".to_owned(),
            Reason::Spelling => "Spelling".to_owned(),
            Reason::Repeated { members } => format!("Repeated({members})"),
            Reason::TooLong => "TooLong".to_owned(),
            Reason::NotHeaderValue => "NotHeaderValue".to_owned(),
            Reason::OutboundOnly => "OutboundOnly".to_owned(),
            other => format!("unknown: {other:?}"),
        };
        hook_log.lock().unwrap().push(Told {
            direction: rejection.direction(),
            place: rejection.place(),
            reason,
            text: rejection.to_string(),
            source: std::error::Error::source(rejection).map(ToString::to_string),
        });
    });
    (propagation, log)
}

fn take(log: &Log) -> Vec<Told> {
    std::mem::take(&mut *log.lock().unwrap())
}

fn members(count: usize) -> String {
    (0..count)
        .map(|i| format!("m{i}=v"))
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------
// Headers and members, in and out.

#[tokio::test]
async fn header_in_and_out() {
    let seen = served(
        declared(),
        headers![("x-request-id", b"r-1"), ("x-limit", b"42")],
    )
    .await;
    assert_eq!(seen.value("request_id"), Some("r-1"));
    assert_eq!(seen.value("limit"), Some("42"));
    assert_eq!(seen.out("x-request-id"), Some("r-1"));
    // Inbound only: read, never written.
    assert_eq!(seen.out("x-limit"), None);
    assert_eq!(seen.out("baggage"), None);
    assert_eq!(seen.out.len(), 1);
}

#[tokio::test]
async fn outbound_header_from_the_context() {
    let work = |propagation: Propagation| async move {
        DEFAULT.set(&CALLER, "front".to_owned()).unwrap();
        vec![observe(&propagation)]
    };
    let seen = serve(
        app(declared(), work),
        request(headers![("x-caller", b"mallory"), ("x-request-id", b"r-2")]),
    )
    .await
    .remove(0);
    // The client's `x-caller` was not taken: the handler's value goes out.
    assert_eq!(seen.value("caller"), Some("front"));
    assert_eq!(seen.out("x-caller"), Some("front"));
    assert_eq!(seen.out("x-request-id"), Some("r-2"));
}

#[tokio::test]
async fn outbound_only_header_from_a_client_is_not_accepted() {
    let seen = served(declared(), headers![("x-caller", b"mallory")]).await;
    assert_eq!(seen.value("caller"), None);
    assert_eq!(seen.out("x-caller"), None);
    assert!(seen.out.is_empty(), "{:?}", seen.out);
}

#[tokio::test]
async fn baggage_in_and_out() {
    let work = |propagation: Propagation| async move {
        DEFAULT.set(&USER, "alice".to_owned()).unwrap();
        vec![observe(&propagation)]
    };
    let seen = serve(
        app(declared(), work),
        request(&[
            ("x-request-id", b"r-1"),
            ("baggage", b"tenant=acme, note = hi ,count=7"),
        ]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("tenant"), Some("acme"));
    assert_eq!(seen.value("note"), Some("hi"));
    assert_eq!(seen.value("count"), Some("7"));
    assert_eq!(
        seen.out("baggage"),
        Some("tenant=acme,user=alice,note=hi,count=7")
    );
    assert_eq!(seen.out("x-request-id"), Some("r-1"));
}

#[tokio::test]
async fn baggage_from_several_header_values() {
    let seen = served(
        declared(),
        headers![("baggage", b"tenant=acme"), ("baggage", b"note=hi,other=1")],
    )
    .await;
    assert_eq!(seen.value("tenant"), Some("acme"));
    assert_eq!(seen.value("note"), Some("hi"));
    assert_eq!(seen.out("baggage"), Some("tenant=acme,note=hi,other=1"));
}

#[tokio::test]
async fn percent_encoding_round_trips() {
    const TEXT: &str = "a b,c;d=e%f\"g\\h+\u{e9}t\u{e9} \u{2713}\t";
    const WIRE: &str = "a%20b%2Cc%3Bd%3De%25f%22g%5Ch%2B%C3%A9t%C3%A9%20%E2%9C%93%09";

    let work = |propagation: Propagation| async move {
        DEFAULT.set(&NOTE, TEXT.to_owned()).unwrap();
        vec![observe(&propagation)]
    };
    let out = serve(app(declared(), work), request(headers![]))
        .await
        .remove(0);
    let baggage = out.out("baggage").unwrap().to_owned();
    assert_eq!(baggage, format!("note={WIRE}"));

    // What one service writes, the next reads back.
    let seen = served(declared(), headers![("baggage", baggage.as_bytes())]).await;
    assert_eq!(seen.value("note"), Some(TEXT));
    assert_eq!(seen.out("baggage"), Some(&*baggage));
}

#[tokio::test]
async fn percent_decoding_of_other_producers() {
    // Lowercase hex, `+` kept as it is, stray `%` kept.
    let seen = served(
        declared(),
        headers![(
            "baggage",
            b"note=caf%c3%a9+%20%3D%2C%25%zz%4,tenant=%E2%9C%93"
        )],
    )
    .await;
    assert_eq!(seen.value("note"), Some("caf\u{e9}+ =,%%zz%4"));
    assert_eq!(seen.value("tenant"), Some("\u{2713}"));
    assert_eq!(
        seen.out("baggage"),
        Some("tenant=%E2%9C%93,note=caf%C3%A9%2B%20%3D%2C%25%25zz%254")
    );

    // Bytes that are not UTF-8 once decoded become U+FFFD.
    let seen = served(declared(), headers![("baggage", b"note=a%FFb%C3")]).await;
    assert_eq!(seen.value("note"), Some("a\u{fffd}b\u{fffd}"));
    assert_eq!(seen.out("baggage"), Some("note=a%EF%BF%BDb%EF%BF%BD"));
}

#[tokio::test]
async fn properties_are_kept_on_forwarded_members() {
    let seen = served(
        declared(),
        &[(
            "baggage",
            b"tenant=acme;ttl=3, other=kept;p=1;flag , third = x ; q = 2",
        )],
    )
    .await;
    assert_eq!(seen.value("tenant"), Some("acme"));
    // The declared member goes out from the context, without the
    // properties it came with; the others go out as they came.
    assert_eq!(
        seen.out("baggage"),
        Some("tenant=acme,other=kept;p=1;flag,third = x ; q = 2")
    );
}

#[tokio::test]
async fn a_relay_forwards_undeclared_members_unchanged() {
    let seen = served(
        declared(),
        headers![("baggage", b"zz=%E2%9C%93;m,a=1,b=c=d,e=%zz")],
    )
    .await;
    assert!(seen.values.is_empty(), "{:?}", seen.values);
    // Not decoded, not re-encoded.
    assert_eq!(seen.out("baggage"), Some("zz=%E2%9C%93;m,a=1,b=c=d,e=%zz"));
}

#[tokio::test]
async fn undeclared_members_are_not_passed_on_without_relay() {
    let seen = served(
        edge(),
        headers![("baggage", b"tenant=acme,other=kept;p=1,more=2")],
    )
    .await;
    assert_eq!(seen.value("tenant"), Some("acme"));
    assert_eq!(seen.out("baggage"), Some("tenant=acme"));

    let seen = served(edge(), headers![("baggage", b"other=kept")]).await;
    assert_eq!(seen.out("baggage"), None);
}

#[tokio::test]
async fn outbound_only_member_from_a_client_is_neither_accepted_nor_forwarded() {
    let seen = served(declared(), headers![("baggage", b"user=mallory,other=1")]).await;
    assert_eq!(seen.value("user"), None);
    assert_eq!(seen.out("baggage"), Some("other=1"));

    // Sent only from the context.
    let work = |propagation: Propagation| async move {
        DEFAULT.set(&USER, "alice".to_owned()).unwrap();
        vec![observe(&propagation)]
    };
    let seen = serve(
        app(declared(), work),
        request(headers![("baggage", b"user=mallory,other=1")]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("user"), Some("alice"));
    assert_eq!(seen.out("baggage"), Some("user=alice,other=1"));
}

#[tokio::test]
async fn inbound_only_member_is_read_and_never_forwarded() {
    static REGION: Key<String> = Key::new("region");
    let propagation = Propagation::new()
        .member("region", &REGION, Direction::Inbound)
        .member("tenant", &TENANT, Direction::Both)
        .relay();
    let work = |propagation: Propagation| async move {
        let region = DEFAULT.get(&REGION);
        let mut seen = observe(&propagation);
        if let Some(region) = region {
            seen.values.insert("region", region);
        }
        vec![seen]
    };
    let seen = serve(
        app(propagation, work),
        request(headers![("baggage", b"region=eu;p,tenant=acme,other=1")]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("region"), Some("eu"));
    assert_eq!(seen.out("baggage"), Some("tenant=acme,other=1"));
}

// ---------------------------------------------------------------------------
// Which context `inject` reads.

#[tokio::test]
async fn innermost_value_wins_with_a_guard() {
    let work = |propagation: Propagation| async move {
        let inner = {
            let _guard = DEFAULT.enter();
            DEFAULT.set(&TENANT, "inner".to_owned()).unwrap();
            DEFAULT.set(&REQUEST_ID, "r-inner".to_owned()).unwrap();
            observe(&propagation)
        };
        let outer = observe(&propagation);
        vec![inner, outer]
    };
    let seen = serve(
        app(declared(), work),
        request(headers![
            ("x-request-id", b"r-1"),
            ("baggage", b"tenant=acme")
        ]),
    )
    .await;
    assert_eq!(seen[0].out("baggage"), Some("tenant=inner"));
    assert_eq!(seen[0].out("x-request-id"), Some("r-inner"));
    assert_eq!(seen[1].out("baggage"), Some("tenant=acme"));
    assert_eq!(seen[1].out("x-request-id"), Some("r-1"));
}

#[tokio::test]
async fn innermost_value_wins_in_checkpoint() {
    let work = |propagation: Propagation| async move {
        let checkpoint = Checkpoint::new().with_value(&TENANT, "inner".to_owned());
        let inner = async {
            tokio::task::yield_now().await;
            observe(&propagation)
        }
        .in_checkpoint(checkpoint)
        .await;
        vec![inner, observe(&propagation)]
    };
    let seen = serve(
        app(declared(), work),
        request(headers![("baggage", b"tenant=acme,other=1")]),
    )
    .await;
    assert_eq!(seen[0].out("baggage"), Some("tenant=inner,other=1"));
    assert_eq!(seen[1].out("baggage"), Some("tenant=acme,other=1"));
}

#[tokio::test]
async fn inject_from_spawned_work_sends_inherited_keys_only() {
    let work = |propagation: Propagation| async move {
        DEFAULT.set(&USER, "alice".to_owned()).unwrap();
        DEFAULT.set(&LOCAL, "here".to_owned()).unwrap();
        let here = observe(&propagation);
        let there = tokio::spawn(DEFAULT.inherit(async move { observe(&propagation) }))
            .await
            .unwrap();
        vec![here, there]
    };
    let seen = serve(
        app(declared(), work),
        request(&[
            ("x-request-id", b"r-1"),
            ("baggage", b"tenant=acme,other=1;p"),
        ]),
    )
    .await;
    assert_eq!(
        seen[0].out("baggage"),
        Some("tenant=acme,user=alice,local=here,other=1;p")
    );
    // `local` is not inherited: the spawned task neither sees nor sends it.
    // The forwarded members are inherited.
    assert_eq!(seen[1].value("local"), None);
    assert_eq!(
        seen[1].out("baggage"),
        Some("tenant=acme,user=alice,other=1;p")
    );
    assert_eq!(seen[1].out("x-request-id"), Some("r-1"));
}

#[tokio::test]
async fn existing_baggage_member_wins_and_is_not_duplicated() {
    let work = |propagation: Propagation| async move {
        let mut out = HeaderMap::new();
        out.append("baggage", HeaderValue::from_static("tenant=mine;p=1"));
        out.append("baggage", HeaderValue::from_static("extra=2, b=1"));
        out.insert("x-request-id", HeaderValue::from_static("r-mine"));
        vec![observe_into(&propagation, out)]
    };
    let seen = serve(
        app(declared(), work),
        request(&[
            ("x-request-id", b"r-1"),
            ("baggage", b"tenant=acme,note=hi,extra=9,other=1,b=2"),
        ]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("tenant"), Some("acme"));
    assert_eq!(seen.out("x-request-id"), Some("r-mine"));
    assert_eq!(
        seen.out("baggage"),
        Some("tenant=mine;p=1,extra=2,b=1,note=hi,other=1")
    );
}

#[tokio::test]
async fn no_name_is_written_twice() {
    let work = |propagation: Propagation| async move {
        DEFAULT.set(&USER, "alice".to_owned()).unwrap();
        let mut out = HeaderMap::new();
        out.insert("baggage", HeaderValue::from_static("p=1,p=2,note=call"));
        vec![observe_into(&propagation, out)]
    };
    let seen = serve(
        app(declared(), work),
        request(&[
            // The client repeats undeclared and declared names.
            ("baggage", b"a=1,a=2,user=x,user=y,note=n,p=3"),
            ("baggage", b"a=3,tenant=t"),
        ]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("note"), Some("n"));
    assert_eq!(
        seen.out("baggage"),
        Some("p=1,note=call,tenant=t,user=alice,a=1")
    );
}

// ---------------------------------------------------------------------------
// Rejections.

#[tokio::test]
async fn on_reject_is_told_why() {
    let (propagation, log) = recording(declared());
    let router = |propagation: Propagation| app(propagation, observing);
    let parse_error = "invalid digit found in string";

    let seen = serve(
        router(propagation.clone()),
        request(headers![("x-limit", b"abc")]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("limit"), None);
    assert_eq!(
        take(&log),
        [Told {
            source: Some(parse_error.to_owned()),
            ..told(
                Direction::Inbound,
                Place::Header("x-limit"),
                "Decode",
                &format!(
                    "incoming header `x-limit` dropped: its text could not be decoded: {parse_error}"
                ),
            )
        }]
    );

    let seen = serve(
        router(propagation.clone()),
        request(headers![("baggage", b"count=-1")]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("count"), None);
    // Declared, so not passed on as it came either.
    assert_eq!(seen.out("baggage"), None);
    assert_eq!(
        take(&log),
        [Told {
            source: Some(parse_error.to_owned()),
            ..told(
                Direction::Inbound,
                Place::Member("count"),
                "Decode",
                &format!(
                    "incoming baggage member `count` dropped: its text could not be decoded: {parse_error}"
                ),
            )
        }]
    );

    let seen = serve(
        router(propagation.clone()),
        request(&[
            ("x-request-id", b"r-1"),
            ("x-request-id", b"r-2"),
            ("baggage", b"tenant=a,note=n,tenant=b"),
        ]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("request_id"), None);
    assert_eq!(seen.value("tenant"), None);
    assert_eq!(seen.value("note"), Some("n"));
    assert_eq!(
        take(&log),
        [
            told(
                Direction::Inbound,
                Place::Header("x-request-id"),
                "Ambiguous",
                "incoming header `x-request-id` dropped: it was given more than once",
            ),
            told(
                Direction::Inbound,
                Place::Member("tenant"),
                "Ambiguous",
                "incoming baggage member `tenant` dropped: it was given more than once",
            ),
        ]
    );

    let seen = serve(
        router(propagation.clone()),
        request(headers![("x-request-id", b"r-\xff")]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("request_id"), None);
    assert_eq!(
        take(&log),
        [told(
            Direction::Inbound,
            Place::Header("x-request-id"),
            "NotText",
            "incoming header `x-request-id` dropped: the header value is not visible ASCII text",
        )]
    );

    let seen = serve(
        router(propagation.clone()),
        request(headers![("baggage", b"novalue,=v,ok=1,tenant=acme")]),
    )
    .await
    .remove(0);
    assert_eq!(seen.value("tenant"), Some("acme"));
    assert_eq!(seen.out("baggage"), Some("tenant=acme,ok=1"));
    assert_eq!(
        take(&log),
        [told(
            Direction::Inbound,
            Place::Baggage,
            "Malformed(2)",
            "incoming `baggage` header: 2 members dropped for not following the W3C Baggage grammar; the other members were kept",
        )]
    );
    serve(
        router(propagation.clone()),
        request(headers![("baggage", b"k y=v")]),
    )
    .await;
    assert_eq!(
        take(&log),
        [told(
            Direction::Inbound,
            Place::Baggage,
            "Malformed(1)",
            "incoming `baggage` header: 1 member dropped for not following the W3C Baggage grammar; the other members were kept",
        )]
    );

    serve(
        router(propagation.clone()),
        request(headers![("baggage", members(65).as_bytes())]),
    )
    .await;
    assert_eq!(
        take(&log),
        [told(
            Direction::Inbound,
            Place::Baggage,
            "OverLimit",
            "incoming `baggage` header: the members beyond 64 members or 8192 bytes were dropped; the other members were kept",
        )]
    );
}

#[tokio::test]
async fn on_reject_is_told_of_outgoing_values() {
    let (propagation, log) = recording(declared());
    let work = |propagation: Propagation| async move {
        DEFAULT.set(&REQUEST_ID, "r\n1".to_owned()).unwrap();
        DEFAULT.set(&NOTE, "x".repeat(9000)).unwrap();
        DEFAULT.set(&TENANT, "acme".to_owned()).unwrap();
        DEFAULT.set(&COUNT, 3).unwrap();
        let mut out = HeaderMap::new();
        out.insert("baggage", HeaderValue::from_static("bad,ok=1"));
        vec![observe_into(&propagation, out)]
    };
    let seen = serve(app(propagation, work), request(headers![]))
        .await
        .remove(0);
    assert_eq!(seen.out("x-request-id"), None);
    // The note is dropped whole; the members after it still go.
    assert_eq!(seen.out("baggage"), Some("ok=1,tenant=acme,count=3"));
    assert_eq!(
        take(&log),
        [
            told(
                Direction::Outbound,
                Place::Header("x-request-id"),
                "NotHeaderValue",
                "outgoing header `x-request-id` dropped: the value is not visible ASCII or has white space at either end, so it cannot be sent as a header value",
            ),
            told(
                Direction::Outbound,
                Place::Baggage,
                "Malformed(1)",
                "outgoing `baggage` header: 1 member dropped for not following the W3C Baggage grammar; the other members were kept",
            ),
            told(
                Direction::Outbound,
                Place::Baggage,
                "OverLimit",
                "outgoing `baggage` header: the members beyond 64 members or 8192 bytes were dropped; the other members were kept",
            ),
        ]
    );
}

/// The docs: "Header values are visible ASCII: a value that is not is
/// skipped on the way out (and told to `on_reject`)". A non-ASCII value
/// would otherwise go out as obs-text, which the next service (this one
/// included) rejects as `NotText`.
#[tokio::test]
async fn non_ascii_header_value_is_skipped_on_the_way_out() {
    let (propagation, log) = recording(declared());
    let work = |propagation: Propagation| async move {
        DEFAULT.set(&REQUEST_ID, "caf\u{e9}".to_owned()).unwrap();
        vec![observe(&propagation)]
    };
    let seen = serve(app(propagation, work), request(headers![]))
        .await
        .remove(0);
    assert_eq!(seen.out.get("x-request-id"), None);
    assert_eq!(
        take(&log),
        [told(
            Direction::Outbound,
            Place::Header("x-request-id"),
            "NotHeaderValue",
            "outgoing header `x-request-id` dropped: the value is not visible ASCII or has white space at either end, so it cannot be sent as a header value",
        )]
    );
}

/// A value HTTP cannot carry exactly is skipped, not sent altered: servers
/// and clients trim a field value's outer white space, so `" a "` would
/// arrive as `a` and a lone tab as an empty value.
#[tokio::test]
async fn header_values_with_outer_white_space_are_skipped_on_the_way_out() {
    /// What goes out, and what is told, for the caller `value`.
    async fn sent(value: &'static str) -> (Seen, Vec<Told>) {
        let (propagation, log) = recording(declared());
        let work = move |propagation: Propagation| async move {
            DEFAULT.set(&CALLER, value.to_owned()).unwrap();
            vec![observe(&propagation)]
        };
        let seen = serve(app(propagation, work), request(headers![]))
            .await
            .remove(0);
        (seen, take(&log))
    }
    for value in [" lead and trail ", "\t", " lead", "trail\t", " "] {
        let (seen, told_) = sent(value).await;
        assert_eq!(seen.out.get("x-caller"), None, "{value:?}");
        assert_eq!(
            told_,
            [told(
                Direction::Outbound,
                Place::Header("x-caller"),
                "NotHeaderValue",
                "outgoing header `x-caller` dropped: the value is not visible ASCII or has white space at either end, so it cannot be sent as a header value",
            )],
            "{value:?}"
        );
    }
    // White space inside a value, and an empty value, go out exactly.
    for value in ["in\tside out", ""] {
        let (seen, told_) = sent(value).await;
        assert_eq!(seen.out("x-caller"), Some(value));
        assert_eq!(told_, []);
    }
}

/// Some SDKs read baggage values with form decoding, where `+` is a space;
/// written as `%2B`, every reader takes it for `+`.
#[tokio::test]
async fn a_plus_goes_out_percent_encoded() {
    let work = |propagation: Propagation| async move {
        DEFAULT.set(&TENANT, "a+b".to_owned()).unwrap();
        vec![observe(&propagation)]
    };
    let seen = serve(app(declared(), work), request(headers![]))
        .await
        .remove(0);
    assert_eq!(seen.out("baggage"), Some("tenant=a%2Bb"));
    // A literal `+` from another producer is a `+`, and goes on as `%2B`.
    let seen = served(declared(), headers![("baggage", b"tenant=a+b")]).await;
    assert_eq!(seen.value("tenant"), Some("a+b"));
    assert_eq!(seen.out("baggage"), Some("tenant=a%2Bb"));
}

// ---------------------------------------------------------------------------
// Outgoing requests through a tower client.

fn echo_client(
    propagation: Propagation,
) -> impl tower::Service<Request<()>, Response = HeaderMap, Error = Infallible, Future: Send>
       + Clone
       + Send {
    ServiceBuilder::new()
        .layer(PropagateLayer::new(propagation))
        .service(service_fn(|request: Request<()>| async move {
            Ok::<_, Infallible>(request.headers().clone())
        }))
}

#[tokio::test]
async fn propagate_layer_over_a_service_fn_client() {
    let work = |propagation: Propagation| async move {
        DEFAULT.set(&USER, "alice".to_owned()).unwrap();
        let client = echo_client(propagation);
        let plain = client.clone().oneshot(Request::new(())).await.unwrap();
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert("baggage", HeaderValue::from_static("tenant=override"));
        let preset = client.clone().oneshot(request).await.unwrap();
        let nested = client
            .oneshot(Request::new(()))
            .in_checkpoint(Checkpoint::new().with_value(&USER, "bob".to_owned()))
            .await
            .unwrap();
        [plain, preset, nested]
            .into_iter()
            .map(|out| Seen {
                values: BTreeMap::new(),
                out,
            })
            .collect()
    };
    let seen = serve(
        app(declared(), work),
        request(&[
            ("x-request-id", b"r-1"),
            ("baggage", b"tenant=acme,other=1"),
        ]),
    )
    .await;
    assert_eq!(seen[0].out("x-request-id"), Some("r-1"));
    assert_eq!(
        seen[0].out("baggage"),
        Some("tenant=acme,user=alice,other=1")
    );
    assert_eq!(
        seen[1].out("baggage"),
        Some("tenant=override,user=alice,other=1")
    );
    assert_eq!(seen[2].out("baggage"), Some("tenant=acme,user=bob,other=1"));
}

#[tokio::test]
async fn propagate_layer_outside_any_request() {
    let client = echo_client(declared());
    let out = client.clone().oneshot(Request::new(())).await.unwrap();
    assert!(out.is_empty(), "{out:?}");
    let checkpoint = Checkpoint::new()
        .with_value(&REQUEST_ID, "r-9".to_owned())
        .with_value(&NOTE, "a b".to_owned());
    let out = client
        .oneshot(Request::new(()))
        .in_checkpoint(checkpoint)
        .await
        .unwrap();
    assert_eq!(out["x-request-id"], "r-9");
    assert_eq!(out["baggage"], "note=a%20b");
    assert_eq!(out.len(), 2);
}

#[test]
fn extract_gives_a_checkpoint_of_declared_inbound_values() {
    let propagation = declared();
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", HeaderValue::from_static("r-1"));
    headers.insert("x-caller", HeaderValue::from_static("mallory"));
    headers.insert(
        "baggage",
        HeaderValue::from_static("tenant=a%20b,user=mallory,local=x,other=1"),
    );
    let _guard = DEFAULT.enter_with(propagation.extract(&headers));
    let seen = observe(&propagation);
    assert_eq!(
        seen.values,
        BTreeMap::from([
            ("request_id", "r-1".to_owned()),
            ("tenant", "a b".to_owned())
        ])
    );
    assert_eq!(seen.out("baggage"), Some("tenant=a%20b,other=1"));
}

#[test]
fn extract_fills_a_stack_of_ones_own() {
    let propagation = declared();
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", HeaderValue::from_static("r-1"));
    headers.insert("baggage", HeaderValue::from_static("tenant=acme,other=1"));
    let mut stack = Stack::new();
    let root = stack.enter_with(propagation.extract(&headers));
    assert_eq!(root.get(&REQUEST_ID).map(String::as_str), Some("r-1"));
    assert_eq!(root.get(&TENANT).map(String::as_str), Some("acme"));
}

#[test]
fn inject_twice_writes_the_same_headers() {
    let propagation = declared();
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", HeaderValue::from_static("r-1"));
    headers.insert(
        "baggage",
        HeaderValue::from_static("tenant=acme,other=1;p,more=2"),
    );
    let _guard = DEFAULT.enter_with(propagation.extract(&headers));
    DEFAULT.set(&USER, "a b".to_owned()).unwrap();
    let once = observe(&propagation).out;
    let twice = observe_into(&propagation, once.clone()).out;
    assert_eq!(once, twice);
    assert_eq!(once["baggage"], "tenant=acme,user=a%20b,other=1;p,more=2");
}

// ---------------------------------------------------------------------------
// Bad input: every request is served, the rest of its context intact, and
// nothing undeclared is accepted.

#[tokio::test]
async fn obs_text_and_invalid_utf8_in_baggage() {
    let (propagation, log) = recording(declared());
    let seen = served(
        propagation,
        &[
            ("x-request-id", b"r-1"),
            (
                "baggage",
                b"tenant=acme,bad=\xff\xfe;p,note=ok,weird=caf\xc3\xa9,count=\xc3\xa9",
            ),
        ],
    )
    .await;
    assert_eq!(
        seen.values,
        BTreeMap::from([
            ("note", "ok".to_owned()),
            ("request_id", "r-1".to_owned()),
            ("tenant", "acme".to_owned()),
        ])
    );
    assert_eq!(seen.out("x-request-id"), Some("r-1"));
    assert_eq!(seen.out("baggage"), Some("tenant=acme,note=ok"));
    assert_eq!(
        take(&log).into_iter().map(|t| t.reason).collect::<Vec<_>>(),
        ["Malformed(3)"]
    );
}

#[tokio::test]
async fn invalid_utf8_in_a_header() {
    let seen = served(
        declared(),
        &[
            ("x-request-id", b"r-\xc3\x28"),
            ("x-limit", b"\xff"),
            ("baggage", b"tenant=acme"),
        ],
    )
    .await;
    assert_eq!(seen.values, BTreeMap::from([("tenant", "acme".to_owned())]));
    assert_eq!(seen.out("x-request-id"), None);
    assert_eq!(seen.out("baggage"), Some("tenant=acme"));
}

#[tokio::test]
async fn control_characters() {
    // Raw control characters other than tab are not header values at all.
    assert!(HeaderValue::from_bytes(b"tenant=a\x00b").is_err());
    assert!(HeaderValue::from_bytes(b"tenant=a\nb").is_err());

    let seen = served(
        declared(),
        &[
            ("x-request-id", b"r\t1"),
            // A tab inside a value is not a baggage-octet; encoded control
            // characters are the declared value's business.
            ("baggage", b"tenant=ac\tme,note=%00%0A%1B%7F,other=a\tb,x=1"),
        ],
    )
    .await;
    assert_eq!(
        seen.values,
        BTreeMap::from([
            ("note", "\u{0}\n\u{1b}\u{7f}".to_owned()),
            ("request_id", "r\t1".to_owned()),
        ])
    );
    assert_eq!(seen.out("x-request-id"), Some("r\t1"));
    assert_eq!(seen.out("baggage"), Some("note=%00%0A%1B%7F,x=1"));
}

#[tokio::test]
async fn ten_thousand_members() {
    let (propagation, log) = recording(declared());
    let first = format!("tenant=acme,{}", members(10_000));
    let seen = served(
        propagation.clone(),
        headers![("x-request-id", b"r-1"), ("baggage", first.as_bytes())],
    )
    .await;
    assert_eq!(seen.value("tenant"), Some("acme"));
    assert_eq!(seen.value("request_id"), Some("r-1"));
    assert_eq!(seen.out("x-request-id"), Some("r-1"));
    // The first 64 members were read; all 64 go out again.
    assert_eq!(
        seen.out("baggage"),
        Some(&*format!("tenant=acme,{}", members(63)))
    );
    assert_eq!(take(&log).len(), 1);

    // A declared member beyond the limit is not read.
    let last = format!("{},tenant=acme,note=hi", members(10_000));
    let seen = served(
        propagation,
        headers![("x-request-id", b"r-1"), ("baggage", last.as_bytes())],
    )
    .await;
    assert_eq!(
        seen.values,
        BTreeMap::from([("request_id", "r-1".to_owned())])
    );
    assert_eq!(seen.out("baggage"), Some(&*members(64)));
}

#[tokio::test]
async fn an_80_kib_baggage_header() {
    let big = "x".repeat(80 * 1024);
    let tail = format!("tenant=acme,note=hi,big={big},other=1");
    let seen = served(
        declared(),
        headers![("x-request-id", b"r-1"), ("baggage", tail.as_bytes())],
    )
    .await;
    assert_eq!(seen.value("tenant"), Some("acme"));
    assert_eq!(seen.value("note"), Some("hi"));
    assert_eq!(seen.out("x-request-id"), Some("r-1"));
    assert_eq!(seen.out("baggage"), Some("tenant=acme,note=hi"));

    let head = format!("big={big},tenant=acme");
    let seen = served(
        declared(),
        headers![("x-request-id", b"r-1"), ("baggage", head.as_bytes())],
    )
    .await;
    assert_eq!(
        seen.values,
        BTreeMap::from([("request_id", "r-1".to_owned())])
    );
    assert_eq!(seen.out("x-request-id"), Some("r-1"));
    assert_eq!(seen.out("baggage"), None);

    // Members within 8192 bytes are read, the one that crosses is not.
    let fill = "v".repeat(8192 - "tenant=acme,".len() - "f=".len());
    let exact = format!("tenant=acme,f={fill}");
    assert_eq!(exact.len(), 8192);
    let seen = served(
        declared(),
        headers![("baggage", exact.as_bytes()), ("baggage", b"note=hi")],
    )
    .await;
    assert_eq!(seen.value("tenant"), Some("acme"));
    assert_eq!(seen.value("note"), None);
    assert_eq!(seen.out("baggage"), Some(&*exact));
}

#[tokio::test]
async fn duplicate_members() {
    let (propagation, log) = recording(declared());
    let seen = served(
        propagation.clone(),
        &[
            ("x-request-id", b"r-1"),
            ("baggage", b"tenant=a,note=n,tenant=a,other=1,other=2"),
        ],
    )
    .await;
    assert_eq!(
        seen.values,
        BTreeMap::from([("note", "n".to_owned()), ("request_id", "r-1".to_owned())])
    );
    assert_eq!(seen.out("baggage"), Some("note=n,other=1"));
    assert_eq!(take(&log)[0].reason, "Ambiguous");

    // Across header values too.
    let seen = served(
        propagation,
        headers![("baggage", b"tenant=a"), ("baggage", b"tenant=b,note=n")],
    )
    .await;
    assert_eq!(seen.value("tenant"), None);
    assert_eq!(seen.value("note"), Some("n"));
    assert_eq!(seen.out("baggage"), Some("note=n"));
}

#[tokio::test]
async fn a_member_setting_an_outbound_only_key() {
    let seen = served(
        declared(),
        &[
            ("x-request-id", b"r-1"),
            ("x-caller", b"root"),
            ("baggage", b"user=root,local=x,tenant=acme"),
        ],
    )
    .await;
    assert_eq!(
        seen.values,
        BTreeMap::from([
            ("request_id", "r-1".to_owned()),
            ("tenant", "acme".to_owned())
        ])
    );
    assert_eq!(seen.out("baggage"), Some("tenant=acme"));
    assert_eq!(seen.out("x-caller"), None);
}

#[tokio::test]
async fn a_client_naming_an_outbound_only_value_is_told_to_the_hook() {
    let (propagation, log) = recording(declared());
    let seen = served(
        propagation,
        &[("x-caller", b"root"), ("baggage", b"user=root,tenant=acme")],
    )
    .await;
    assert_eq!(seen.value("user"), None);
    assert_eq!(seen.value("caller"), None);
    assert_eq!(
        take(&log),
        [
            told(
                Direction::Inbound,
                Place::Header("x-caller"),
                "OutboundOnly",
                "incoming header `x-caller` dropped: this service sends it but does not take it from a request",
            ),
            told(
                Direction::Inbound,
                Place::Member("user"),
                "OutboundOnly",
                "incoming baggage member `user` dropped: this service sends it but does not take it from a request",
            ),
        ]
    );
}

/// Readers disagree about which copy counts (OpenTelemetry's takes the last
/// and reads `b c`): a broken second copy makes the name ambiguous too.
#[tokio::test]
async fn a_malformed_second_copy_of_a_declared_member_is_ambiguous() {
    let (propagation, log) = recording(declared());
    let seen = served(
        propagation,
        headers![("baggage", b"tenant=a,tenant=b c,note=n")],
    )
    .await;
    assert_eq!(seen.value("tenant"), None);
    assert_eq!(seen.value("note"), Some("n"));
    let reasons: Vec<_> = take(&log).into_iter().map(|told| told.reason).collect();
    assert_eq!(reasons, ["Ambiguous", "Malformed(1)"]);
}

/// White space and empty list elements are bytes of the header too: a
/// megabyte of them costs the reader no more than 8192 bytes of work, and
/// what follows is over the limit.
#[tokio::test]
async fn empty_elements_count_toward_the_byte_limit() {
    let (propagation, log) = recording(declared());
    let mut header = ", \t".repeat(1 << 18).into_bytes();
    header.extend_from_slice(b"tenant=acme,other=1");
    let seen = served(
        propagation,
        &[("x-request-id", b"r-1"), ("baggage", &header)],
    )
    .await;
    assert_eq!(seen.value("request_id"), Some("r-1"));
    assert_eq!(seen.value("tenant"), None);
    assert_eq!(seen.out("baggage"), None);
    let reasons: Vec<_> = take(&log).into_iter().map(|told| told.reason).collect();
    assert_eq!(reasons, ["OverLimit"]);
}

// Mistakes in the declarations panic where the service is set up, each
// saying what is wrong.

#[test]
#[should_panic(expected = "the header `X-Request-Id` is already declared in this direction")]
fn a_header_declared_twice_in_one_direction_panics() {
    let _ = Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .header("X-Request-Id", &CALLER, Direction::Outbound);
}

#[test]
#[should_panic(expected = "the baggage member `tenant` is already declared in this direction")]
fn a_member_declared_twice_in_one_direction_panics() {
    let _ = Propagation::new()
        .member("tenant", &TENANT, Direction::Inbound)
        .member("tenant", &NOTE, Direction::Both);
}

#[tokio::test]
async fn a_key_taken_in_from_a_header_then_baggage_takes_the_first_there() {
    let propagation = Propagation::new()
        .header("x-tenant", &TENANT, Direction::Inbound)
        .member("tenant", &TENANT, Direction::Inbound);
    let both = served(
        propagation.clone(),
        headers![("x-tenant", b"acme"), ("baggage", b"tenant=globex")],
    )
    .await;
    assert_eq!(both.value("tenant"), Some("acme"));
    let baggage_only = served(propagation, headers![("baggage", b"tenant=globex")]).await;
    assert_eq!(baggage_only.value("tenant"), Some("globex"));
}

#[test]
#[should_panic(expected = "`x tenant` cannot be declared as a header")]
fn an_invalid_header_name_panics() {
    let _ = Propagation::new().header("x tenant", &TENANT, Direction::Inbound);
}

#[test]
#[should_panic(expected = "declare baggage members with `Propagation::member`")]
fn baggage_declared_as_a_header_panics() {
    let _ = Propagation::new().header("Baggage", &TENANT, Direction::Inbound);
}

#[test]
#[should_panic(expected = "`a=b` cannot be a baggage member's name")]
fn a_member_name_that_is_not_a_token_panics() {
    let _ = Propagation::new().member("a=b", &TENANT, Direction::Inbound);
}

#[test]
#[should_panic(expected = "at most 64 baggage members can be declared in one direction")]
fn more_members_than_a_request_carries_panics() {
    let names: Vec<&'static str> = (0..65)
        .map(|i| &*Box::leak(format!("m{i}").into_boxed_str()))
        .collect();
    let _ = names.iter().fold(Propagation::new(), |declared, name| {
        declared.member(name, &NOTE, Direction::Outbound)
    });
}

#[test]
fn one_key_may_go_out_in_several_places() {
    let propagation = Propagation::new()
        .header("x-tenant", &TENANT, Direction::Both)
        .member("tenant", &TENANT, Direction::Outbound);
    let _guard = DEFAULT.enter();
    DEFAULT.set(&TENANT, "acme".to_owned()).unwrap();
    let mut headers = HeaderMap::new();
    propagation.inject(&mut headers);
    assert_eq!(headers["x-tenant"], "acme");
    assert_eq!(headers["baggage"], "tenant=acme");
}

// Found in review.

/// Kept members used to be sent as the header came, empty elements and
/// white space at the ends included, which the grammar does not allow.
#[tokio::test]
async fn kept_members_go_out_without_empty_elements() {
    for (incoming, expected) in [
        (&b",x=1"[..], "x=1"),
        (b"x=1,", "x=1"),
        (b"a=1,,b=2", "a=1,b=2"),
        (b" a=1 , b=2 ", "a=1,b=2"),
        (b"a=1, b=2", "a=1,b=2"),
        (b"a=1,b=2", "a=1,b=2"),
    ] {
        let seen = served(Propagation::new().relay(), &[("baggage", incoming)]).await;
        assert_eq!(seen.out("baggage"), Some(expected), "{incoming:?}");
    }
}

/// A member's name spelt with percent escapes is the declared name to
/// readers that decode names (OpenTelemetry's do): it is neither passed on
/// nor accepted, and it makes a real copy ambiguous.
#[tokio::test]
async fn a_declared_name_spelt_with_escapes_is_not_smuggled_through() {
    let (propagation, log) = recording(declared());
    let seen = served(
        propagation,
        headers![(
            "baggage",
            b"us%65r=mallory,ten%61nt=evil,tenant=acme,note=n,ot%68er=1"
        )],
    )
    .await;
    assert_eq!(seen.value("tenant"), None);
    assert_eq!(seen.value("note"), Some("n"));
    assert_eq!(seen.out("baggage"), Some("note=n,ot%68er=1"));
    let reasons: Vec<_> = take(&log).into_iter().map(|told| told.reason).collect();
    assert_eq!(reasons, ["OutboundOnly", "Ambiguous"]);
}

#[test]
fn baggage_on_the_request_beyond_the_limits_is_told_to_the_hook() {
    // The members are the call site's: an edge sends them too.
    let (propagation, log) = recording(edge());
    let mut headers = HeaderMap::new();
    headers.insert("baggage", HeaderValue::from_str(&members(100)).unwrap());
    propagation.inject(&mut headers);
    assert_eq!(headers["baggage"].to_str().unwrap(), members(64));
    let reasons: Vec<_> = take(&log).into_iter().map(|told| told.reason).collect();
    assert_eq!(reasons, ["OverLimit"]);
}

/// A codec's `encode` runs inside a read of the storage: it reads the
/// context, and a write from there is refused, not done under the read.
#[test]
fn a_codec_encoding_inside_the_read_may_read_and_cannot_write() {
    use stackholm_tower::propagation::{BoxError, Codec};

    struct Meddling(Arc<Mutex<Vec<String>>>);

    impl Codec<String> for Meddling {
        fn encode(&self, value: &String, out: &mut String) {
            let outcome = match DEFAULT.set(&NOTE, "meddled".to_owned()) {
                Ok(()) => "written".to_owned(),
                Err(err) => err.to_string(),
            };
            self.0.lock().unwrap().push(outcome);
            out.push_str(value);
            out.push_str(&DEFAULT.get(&REQUEST_ID).unwrap_or_default());
        }

        fn decode(&self, text: &str) -> Result<String, BoxError> {
            Ok(text.to_owned())
        }
    }

    let seen = Arc::new(Mutex::new(Vec::new()));
    let propagation = Propagation::new().member_with(
        "tenant",
        &TENANT,
        Direction::Outbound,
        Meddling(Arc::clone(&seen)),
    );
    let _guard = DEFAULT.enter();
    DEFAULT.set(&TENANT, "acme-".to_owned()).unwrap();
    DEFAULT.set(&REQUEST_ID, "r-1".to_owned()).unwrap();
    let mut headers = HeaderMap::new();
    propagation.inject(&mut headers);
    assert_eq!(headers["baggage"], "tenant=acme-r-1");
    assert_eq!(DEFAULT.get(&NOTE), None);
    let outcomes = seen.lock().unwrap().clone();
    assert_eq!(outcomes.len(), 1);
    assert!(
        outcomes[0].contains("lent to a `with` closure"),
        "{outcomes:?}"
    );
}
