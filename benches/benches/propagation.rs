//! Context across a service, per request: read from the incoming request's
//! headers, made current, written into an outgoing request. Ours,
//! `stackholm_tower::propagation`, against OpenTelemetry's
//! `BaggagePropagator`, on the same request, in one run.
//!
//! `cargo bench -p stackholm-benches --bench propagation`
//!
//! The incoming request carries a `baggage` header of 6 members (2 declared,
//! `tenant` and `user`; 4 passed on, one with a property, one
//! percent-encoded) and 2 headers of their own, `x-request-id` and
//! `x-tenant-region`. Both sides send the same 8 values on: the 2 headers
//! as headers, the 6 members in `baggage`. OpenTelemetry holds the 2
//! headers as one typed context value, read and written by hand, as a
//! service using it would.
//!
//! Allocations per request, counted on this thread for one warm request of
//! each side, are printed first.
//!
//! The same request is also carried in `HashMap<String, String>`s, as a
//! queue consumer gets and sends a message's headers, each side with its
//! own carrier for maps.
//!
//! `propagation requests/SIDE N` runs `N` requests of one side and nothing
//! else, for `benches/instructions.sh` to count their instructions under
//! callgrind; SIDE is `stackholm`, `stackholm-checkpoint` (through
//! `Propagation::extract`), `opentelemetry`, `stackholm-hashmap` or
//! `opentelemetry-hashmap`.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::BaggagePropagator;
use stackholm::{Checkpoint, Key, Scope, DEFAULT};
use stackholm_tower::propagation::{
    Direction, Extractor as CarrierIn, Injector as CarrierOut, Propagation,
};

// Counting allocator: on only while `COUNTING` is set, so that the timed
// runs pay one relaxed load per allocation, on both sides alike. Counted per
// thread, so only this thread's requests are counted.

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);

thread_local! {
    // Const-initialised, no destructor: reaching it never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    if COUNTING.load(Ordering::Relaxed) {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The allocations (and reallocations) `f` makes on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.store(true, Ordering::Relaxed);
    let output = f();
    COUNTING.store(false, Ordering::Relaxed);
    (ALLOCATIONS.with(Cell::get) - before, output)
}

// The request.

const REQUEST_ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const REGION: &str = "eu-west-1";
const BAGGAGE: &str = "tenant=acme,user=alice,session=5c2f1a9e,cohort=beta;ttl=60,\
                       note=hello%20world%2C%20again,sampled=true";

fn incoming() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("api.example.com"));
    headers.insert("accept", HeaderValue::from_static("application/json"));
    // Made as a server makes them, from bytes read: not static.
    for (name, value) in [
        ("x-request-id", REQUEST_ID),
        ("x-tenant-region", REGION),
        ("baggage", BAGGAGE),
    ] {
        headers.insert(name, HeaderValue::from_str(value).expect("a header value"));
    }
    headers
}

/// The same headers as a message's header map, as a queue client hands
/// them out.
fn incoming_map() -> HashMap<String, String> {
    incoming()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
        .collect()
}

/// A map written by either side, as headers, for [`downstream`].
fn as_headers(map: &HashMap<String, String>) -> HeaderMap {
    map.iter()
        .map(|(name, value)| {
            (
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            )
        })
        .collect()
}

// Ours.

static REQUEST: Key<String> = Key::new("request_id").inherited();
static TENANT_REGION: Key<String> = Key::new("tenant_region").inherited();
static TENANT: Key<String> = Key::new("tenant").inherited();
static USER: Key<String> = Key::new("user").inherited();

fn declared() -> Propagation {
    Propagation::new()
        .header("x-request-id", &REQUEST, Direction::Both)
        .header("x-tenant-region", &TENANT_REGION, Direction::Both)
        .member("tenant", &TENANT, Direction::Both)
        .member("user", &USER, Direction::Both)
        // A service in the middle, passing on the members it does not
        // declare, as OpenTelemetry's propagator does.
        .relay()
}

/// One request as a service with a scope of its own handles it (as
/// `StackholmLayer` does, or a queue consumer): the request's task-local
/// stack (pooled) entered, the headers' declared values set in its root,
/// and an outgoing request's headers written from inside.
fn stackholm_request<C>(propagation: &Propagation, incoming: &C) -> C
where
    C: CarrierIn + CarrierOut + Default,
{
    let mut scope = Scope::new(DEFAULT, Checkpoint::new());
    scope.run(|| {
        propagation
            .extract_into(incoming, DEFAULT)
            .expect("inside the scope");
        let mut outgoing = C::default();
        propagation.inject(&mut outgoing);
        outgoing
    })
}

/// The same, the headers read first into a checkpoint that is then entered
/// as the scope's root: `Propagation::extract`'s path.
fn stackholm_request_checkpoint(propagation: &Propagation, incoming: &HeaderMap) -> HeaderMap {
    let mut scope = Scope::new(DEFAULT, propagation.extract(incoming));
    scope.run(|| {
        let mut outgoing = HeaderMap::new();
        propagation.inject(&mut outgoing);
        outgoing
    })
}

// OpenTelemetry. The adapters are those of `opentelemetry-http`.

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The two headers that are not baggage, as a typed context value.
struct Custom {
    request_id: Option<String>,
    region: Option<String>,
}

/// One request: a context of the headers' baggage and the two headers,
/// attached, and an outgoing request's headers written from the current
/// context.
fn otel_request(propagator: &BaggagePropagator, incoming: &HeaderMap) -> HeaderMap {
    let extractor = HeaderExtractor(incoming);
    let custom = Custom {
        request_id: extractor.get("x-request-id").map(str::to_owned),
        region: extractor.get("x-tenant-region").map(str::to_owned),
    };
    let cx = propagator
        .extract_with_context(&Context::new(), &extractor)
        .with_value(custom);
    let _attached = cx.attach();

    let mut outgoing = HeaderMap::new();
    propagator.inject(&mut HeaderInjector(&mut outgoing));
    Context::map_current(|cx| {
        if let Some(custom) = cx.get::<Custom>() {
            for (name, value) in [
                ("x-request-id", &custom.request_id),
                ("x-tenant-region", &custom.region),
            ] {
                if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    outgoing.insert(name, value);
                }
            }
        }
    });
    outgoing
}

/// [`otel_request`] over maps, with OpenTelemetry's own `HashMap` carriers.
fn otel_request_map(
    propagator: &BaggagePropagator,
    incoming: &HashMap<String, String>,
) -> HashMap<String, String> {
    let custom = Custom {
        request_id: Extractor::get(incoming, "x-request-id").map(str::to_owned),
        region: Extractor::get(incoming, "x-tenant-region").map(str::to_owned),
    };
    let cx = propagator
        .extract_with_context(&Context::new(), incoming)
        .with_value(custom);
    let _attached = cx.attach();

    let mut outgoing = HashMap::new();
    propagator.inject(&mut outgoing);
    Context::map_current(|cx| {
        if let Some(custom) = cx.get::<Custom>() {
            for (name, value) in [
                ("x-request-id", &custom.request_id),
                ("x-tenant-region", &custom.region),
            ] {
                if let Some(value) = value {
                    Injector::set(&mut outgoing, name, value.clone());
                }
            }
        }
    });
    outgoing
}

// What the next service sees.

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match hex {
            Some(byte) if bytes[i] == b'%' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// The values an outgoing request carries: its two headers, and its
/// baggage members decoded, properties included.
fn downstream(outgoing: &HeaderMap) -> BTreeSet<(String, String)> {
    assert_eq!(outgoing.len(), 3, "{outgoing:?}");
    let mut values = BTreeSet::new();
    for name in ["x-request-id", "x-tenant-region"] {
        let value = outgoing[name].to_str().expect("text");
        values.insert((name.to_owned(), value.to_owned()));
    }
    for member in outgoing["baggage"].to_str().expect("text").split(',') {
        let (head, properties) = member.split_once(';').unwrap_or((member, ""));
        let (key, value) = head.split_once('=').expect("a member");
        let mut value = percent_decode(value.trim());
        if !properties.is_empty() {
            value = format!("{value};{}", properties.trim());
        }
        values.insert((format!("baggage {}", key.trim()), value));
    }
    values
}

fn extract_inject(c: &mut Criterion) {
    let headers = incoming();
    let propagation = declared();
    let propagator = BaggagePropagator::new();

    let map = incoming_map();
    let ours = downstream(&stackholm_request(&propagation, &headers));
    let theirs = downstream(&otel_request(&propagator, &headers));
    assert_eq!(ours.len(), 8, "{ours:?}");
    assert_eq!(ours, theirs);
    assert_eq!(
        ours,
        downstream(&stackholm_request_checkpoint(&propagation, &headers))
    );
    assert_eq!(
        ours,
        downstream(&as_headers(&stackholm_request(&propagation, &map)))
    );
    assert_eq!(
        ours,
        downstream(&as_headers(&otel_request_map(&propagator, &map)))
    );
    assert!(ours.contains(&("baggage note".to_owned(), "hello world, again".to_owned())));
    assert!(ours.contains(&("baggage cohort".to_owned(), "beta;ttl=60".to_owned())));

    // One warm request each.
    let _ = stackholm_request(&propagation, &headers);
    let _ = stackholm_request_checkpoint(&propagation, &headers);
    let _ = otel_request(&propagator, &headers);
    let _ = stackholm_request(&propagation, &map);
    let _ = otel_request_map(&propagator, &map);
    let (ours, _) = allocations(|| stackholm_request(&propagation, &headers));
    let (checkpoint, _) = allocations(|| stackholm_request_checkpoint(&propagation, &headers));
    let (theirs, _) = allocations(|| otel_request(&propagator, &headers));
    let (ours_map, _) = allocations(|| stackholm_request(&propagation, &map));
    let (theirs_map, _) = allocations(|| otel_request_map(&propagator, &map));
    eprintln!(
        "allocations per request: HeaderMap: stackholm {ours} (through a checkpoint \
         {checkpoint}), opentelemetry {theirs}; HashMap: stackholm {ours_map}, \
         opentelemetry {theirs_map}"
    );

    let mut group = c.benchmark_group("propagation/extract_inject");
    let id = "6-members-2-headers";
    group.bench_function(BenchmarkId::new("stackholm", id), |b| {
        b.iter(|| stackholm_request(black_box(&propagation), black_box(&headers)));
    });
    group.bench_function(BenchmarkId::new("opentelemetry", id), |b| {
        b.iter(|| otel_request(black_box(&propagator), black_box(&headers)));
    });
    let id = "6-members-2-headers-hashmap";
    group.bench_function(BenchmarkId::new("stackholm", id), |b| {
        b.iter(|| stackholm_request(black_box(&propagation), black_box(&map)));
    });
    group.bench_function(BenchmarkId::new("opentelemetry", id), |b| {
        b.iter(|| otel_request_map(black_box(&propagator), black_box(&map)));
    });
    group.finish();
}

/// Runs `n` requests of `side` and nothing else.
fn requests(side: &str, n: usize) {
    let headers = incoming();
    let map = incoming_map();
    let propagation = declared();
    let propagator = BaggagePropagator::new();
    for _ in 0..n {
        match side {
            "stackholm" => {
                black_box(stackholm_request(
                    black_box(&propagation),
                    black_box(&headers),
                ));
            }
            "stackholm-checkpoint" => {
                black_box(stackholm_request_checkpoint(
                    black_box(&propagation),
                    black_box(&headers),
                ));
            }
            "opentelemetry" => {
                black_box(otel_request(black_box(&propagator), black_box(&headers)));
            }
            "stackholm-hashmap" => {
                black_box(stackholm_request(black_box(&propagation), black_box(&map)));
            }
            "opentelemetry-hashmap" => {
                black_box(otel_request_map(black_box(&propagator), black_box(&map)));
            }
            other => panic!("unknown side `{other}`"),
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .nresamples(10_000);
    targets = extract_inject
}

/// `criterion_main!`'s, with the instruction-counting mode first.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, workload, n] = &args[..] {
        if let Some(side) = workload.strip_prefix("requests/") {
            requests(side, n.parse().expect("a number of requests"));
            return;
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
