//! The `baggage` header against OpenTelemetry's `BaggagePropagator`: what
//! `inject` writes, it reads to the same pairs; what it writes, `extract`
//! reads, and a relay passes on the members it does not declare unchanged.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::BaggagePropagator;
use proptest::prelude::*;
use stackholm::{Checkpoint, Key, DEFAULT};
use stackholm_tower::propagation::{Direction, Propagation, BAGGAGE};

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
static TENANT: Key<String> = Key::new("tenant").inherited();
static NOTE: Key<String> = Key::new("note").inherited();
static USER: Key<String> = Key::new("user").inherited();

fn declared() -> Propagation {
    Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .member("tenant", &TENANT, Direction::Both)
        .member("note", &NOTE, Direction::Both)
        .member("user", &USER, Direction::Outbound)
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(
            HeaderName::from_bytes(key.as_bytes()).unwrap(),
            HeaderValue::try_from(value).unwrap(),
        );
    }
}

/// Name to (value, metadata), as OpenTelemetry reads `headers`.
fn otel_reads(headers: &HeaderMap) -> BTreeMap<String, (String, String)> {
    let cx =
        BaggagePropagator::new().extract_with_context(&Context::new(), &HeaderExtractor(headers));
    cx.baggage()
        .iter()
        .map(|(key, (value, metadata))| {
            (
                key.as_str().to_owned(),
                (value.as_str().to_owned(), metadata.as_str().to_owned()),
            )
        })
        .collect()
}

/// The `baggage` header OpenTelemetry writes for `entries` of name, value
/// and metadata.
fn otel_writes(entries: &[(&'static str, &'static str, &'static str)]) -> HeaderMap {
    let mut baggage = Baggage::new();
    for &(name, value, metadata) in entries {
        assert!(baggage
            .insert_with_metadata(name, value, metadata)
            .is_none());
    }
    assert_eq!(baggage.len(), entries.len());
    let cx = Context::new().with_baggage(baggage);
    let mut headers = HeaderMap::new();
    BaggagePropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
    headers
}

fn pairs(entries: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String)> {
    entries
        .iter()
        .map(|&(k, v, m)| (k.to_owned(), (v.to_owned(), m.to_owned())))
        .collect()
}

fn baggage_text(headers: &HeaderMap) -> &str {
    let mut values = headers.get_all(BAGGAGE).iter();
    let value = values.next().expect("a baggage header");
    assert!(values.next().is_none());
    value.to_str().unwrap()
}

const NOTE_TEXT: &str = "caf\u{e9} \u{2713} = 100%, ok; \"yes\" \\ / ~ a+b";

#[test]
fn what_we_write_opentelemetry_reads() {
    let propagation = declared().relay();
    let mut incoming = HeaderMap::new();
    incoming.insert(
        BAGGAGE,
        HeaderValue::from_static("tenant=acme%20inc,other=kept;p=1;flag,enc=%E2%9C%93"),
    );
    let _guard = DEFAULT.enter_with(propagation.extract(&incoming));
    DEFAULT.set(&USER, "alice+bob".to_owned()).unwrap();
    DEFAULT.set(&NOTE, NOTE_TEXT.to_owned()).unwrap();

    let mut out = HeaderMap::new();
    propagation.inject(&mut out);
    assert_eq!(
        baggage_text(&out),
        "tenant=acme%20inc,note=caf%C3%A9%20%E2%9C%93%20%3D%20100%25%2C%20ok%3B%20%22yes%22%20%5C%20/%20~%20a%2Bb,\
         user=alice%2Bbob,other=kept;p=1;flag,enc=%E2%9C%93"
    );
    assert_eq!(
        otel_reads(&out),
        pairs(&[
            ("tenant", "acme inc", ""),
            ("note", NOTE_TEXT, ""),
            // `+` goes out as `%2B`, which readers that take `+` for a
            // space (OpenTelemetry's Python SDK) read right too.
            ("user", "alice+bob", ""),
            ("other", "kept", "p=1;flag"),
            ("enc", "\u{2713}", ""),
        ])
    );
}

/// What a relay sends on, OpenTelemetry reads as the relay meant it: a
/// member spelt so that OpenTelemetry's reader (which decodes names, trims
/// them and keeps the last copy) takes it for a declared name or for a
/// name passed on before it is not passed on.
#[test]
fn no_spelling_gets_a_name_past_a_relay_to_opentelemetry() {
    let propagation = declared().relay();
    for incoming in [
        "user%09=root",
        "%0auser=root",
        "%20user=root",
        "%75ser=root",
        "user%C2%A0=root",
        "x=1,%78=2",
        "x=1,x%09=2",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(BAGGAGE, HeaderValue::from_str(incoming).unwrap());
        let _guard = DEFAULT.enter_with(propagation.extract(&headers));
        DEFAULT.set(&USER, "alice".to_owned()).unwrap();
        let mut out = HeaderMap::new();
        propagation.inject(&mut out);
        let read = otel_reads(&out);
        assert_eq!(
            read["user"].0,
            "alice",
            "{incoming}: {}",
            baggage_text(&out)
        );
        // `x=1` is passed on as it came; no later spelling of `x` is.
        let x = read.get("x").map(|(x, _)| x.as_str());
        let sent_x = incoming.starts_with("x=1").then_some("1");
        assert_eq!(x, sent_x, "{incoming}: {}", baggage_text(&out));
    }
}

#[test]
fn what_opentelemetry_writes_we_read() {
    let headers = otel_writes(&[
        ("tenant", "acme inc", ""),
        // OpenTelemetry leaves `%` and `\` as they are.
        ("note", "caf\u{e9} \u{2713} 100% C:\\dir", ""),
        ("user", "bob", ""),
        ("other", "kept", "p=1;flag"),
        ("spaced", "a b", ""),
        ("uni", "\u{2713}\u{e9}", "ttl=3"),
        ("slash", "C:\\dir", ""),
    ]);
    let written = baggage_text(&headers).to_owned();

    let propagation = declared().relay();
    let _guard = DEFAULT.enter_with(propagation.extract(&headers));
    assert_eq!(DEFAULT.get(&TENANT).as_deref(), Some("acme inc"));
    assert_eq!(
        DEFAULT.get(&NOTE).as_deref(),
        Some("caf\u{e9} \u{2713} 100% C:\\dir")
    );
    // Outbound only: not taken from the request.
    assert_eq!(DEFAULT.get(&USER), None);

    let mut out = HeaderMap::new();
    propagation.inject(&mut out);
    let ours = baggage_text(&out).to_owned();

    // The undeclared members go on exactly as OpenTelemetry wrote them, in
    // its order; `slash`, whose value holds a `\`, is read but (as the docs
    // say) not passed on.
    let theirs: Vec<&str> = written
        .split(',')
        .filter(|member| {
            ["other=", "spaced=", "uni="]
                .iter()
                .any(|name| member.starts_with(name))
        })
        .collect();
    assert_eq!(theirs.len(), 3, "{written}");
    let forwarded: Vec<&str> = ours.split(',').skip(2).collect();
    assert_eq!(forwarded, theirs, "{ours}");
    assert!(ours.starts_with("tenant=acme%20inc,note=caf%C3%A9%20%E2%9C%93%20100%25%20C:%5Cdir,"));

    // And OpenTelemetry reads what we pass on as it read what it wrote.
    assert_eq!(
        otel_reads(&out),
        pairs(&[
            ("tenant", "acme inc", ""),
            ("note", "caf\u{e9} \u{2713} 100% C:\\dir", ""),
            ("other", "kept", "p=1;flag"),
            ("spaced", "a b", ""),
            ("uni", "\u{2713}\u{e9}", "ttl=3"),
        ])
    );
}

#[test]
fn opentelemetry_reads_our_header_among_others() {
    // A `baggage` member already on the outgoing request, in OpenTelemetry's
    // writing, wins over the context's value and keeps its metadata.
    let propagation = declared();
    let checkpoint = Checkpoint::new()
        .with_value(&TENANT, "ours".to_owned())
        .with_value(&REQUEST_ID, "r-1".to_owned());
    let _guard = DEFAULT.enter_with(checkpoint);
    let mut out = otel_writes(&[("tenant", "theirs too", "p"), ("x", "1", "")]);
    propagation.inject(&mut out);
    assert_eq!(out["x-request-id"], "r-1");
    assert_eq!(
        otel_reads(&out),
        pairs(&[("tenant", "theirs too", "p"), ("x", "1", "")])
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any value we write, OpenTelemetry reads the same (less the white
    /// space it trims from both ends); any value it writes without `%`, we
    /// read the same.
    #[test]
    fn values_cross_both_ways(tenant in ".{0,64}", note in any::<String>()) {
        let propagation = declared();
        let checkpoint = Checkpoint::new()
            .with_value(&TENANT, tenant.clone())
            .with_value(&NOTE, note.clone());
        let mut out = HeaderMap::new();
        {
            let _guard = DEFAULT.enter_with(checkpoint);
            propagation.inject(&mut out);
        }
        let read = otel_reads(&out);
        prop_assert_eq!(&read["tenant"].0, tenant.trim());
        prop_assert_eq!(&read["note"].0, note.trim());

        let mut baggage = Baggage::new();
        let _ = baggage.insert("tenant", tenant.clone());
        let _ = baggage.insert("note", note.clone());
        let cx = Context::new().with_baggage(baggage);
        let mut headers = HeaderMap::new();
        BaggagePropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
        let _guard = DEFAULT.enter_with(propagation.extract(&headers));
        // OpenTelemetry writes `%` unencoded: only values without one are
        // unambiguous.
        if !tenant.contains('%') {
            prop_assert_eq!(DEFAULT.get(&TENANT), Some(tenant.trim().to_owned()));
        }
        if !note.contains('%') {
            prop_assert_eq!(DEFAULT.get(&NOTE), Some(note.trim().to_owned()));
        }
    }
}
