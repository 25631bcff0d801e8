//! Every carrier gives the same context for the same headers, and takes the
//! same context out: names matched ignoring case, a name in two spellings
//! ambiguous, the call site's values kept.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use stackholm::{Key, DEFAULT};
use stackholm_propagation::{Direction, Extractor, Injector, Propagation, Reason};

static REQUEST_ID: Key<String> = Key::new("request_id");
static TENANT: Key<String> = Key::new("tenant");
static USER: Key<String> = Key::new("user");

type Told = Arc<Mutex<Vec<String>>>;

fn propagation() -> (Propagation, Told) {
    let told = Told::default();
    let sink = Arc::clone(&told);
    let propagation = Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .member("tenant", &TENANT, Direction::Both)
        .member("user", &USER, Direction::Outbound)
        .on_reject(move |rejection| {
            let ambiguous = matches!(rejection.reason(), Reason::Ambiguous);
            sink.lock()
                .unwrap()
                .push(format!("{ambiguous} {rejection}"));
        });
    (propagation, told)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// What `carrier` gives: the request id and tenant taken in, and what was
/// told to `on_reject`.
fn read<E: Extractor + ?Sized>(carrier: &E) -> (Option<String>, Option<String>, Vec<String>) {
    let (propagation, told) = propagation();
    let root = propagation.extract(carrier);
    let (id, tenant) =
        DEFAULT.sync_scope(root, || (DEFAULT.get(&REQUEST_ID), DEFAULT.get(&TENANT)));
    let told = told.lock().unwrap().clone();
    (id, tenant, told)
}

/// `list` in every carrier.
fn each_carrier(
    list: &[(&str, &str)],
    check: impl Fn(&str, (Option<String>, Option<String>, Vec<String>)),
) {
    let list = pairs(list);
    let hash: HashMap<String, String> = list.iter().cloned().collect();
    let tree: BTreeMap<String, String> = list.iter().cloned().collect();
    let mut headers = http::HeaderMap::new();
    for (name, value) in &list {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    check("vec", read(&list));
    check("slice", read(list.as_slice()));
    check("hash map", read(&hash));
    check("btree map", read(&tree));
    check("header map", read(&headers));
}

#[test]
fn every_carrier_reads_the_same_ignoring_the_case_of_names() {
    each_carrier(
        &[
            ("X-Request-ID", "r-1"),
            ("Baggage", "tenant=acme%20inc,user=mallory"),
        ],
        |carrier, (id, tenant, told)| {
            assert_eq!(id.as_deref(), Some("r-1"), "{carrier}");
            assert_eq!(tenant.as_deref(), Some("acme inc"), "{carrier}");
            // `user` goes out only: a client naming it is told, not taken.
            assert_eq!(told.len(), 1, "{carrier}: {told:?}");
            assert!(told[0].contains("user"), "{carrier}: {told:?}");
        },
    );
}

#[test]
fn a_name_in_two_spellings_is_ambiguous_in_every_carrier() {
    each_carrier(
        &[("x-request-id", "r-1"), ("X-Request-Id", "r-2")],
        |carrier, (id, _, told)| {
            assert_eq!(id, None, "{carrier}");
            assert_eq!(told.len(), 1, "{carrier}: {told:?}");
            assert!(told[0].starts_with("true "), "{carrier}: {told:?}");
        },
    );
}

#[test]
fn a_value_that_is_not_header_text_is_not_taken_from_any_carrier() {
    each_carrier(
        &[("x-request-id", "r-1\u{e9}")],
        |carrier, (id, _, told)| {
            assert_eq!(id, None, "{carrier}");
            assert_eq!(told.len(), 1, "{carrier}: {told:?}");
        },
    );
}

/// What `inject` writes into `carrier`, holding `before`, in a context with
/// a request id, tenant and user; as sorted lowercase pairs.
fn written<C: Injector + Extractor>(
    mut carrier: C,
    names: &[&'static str],
) -> Vec<(String, String)> {
    let (propagation, _) = propagation();
    let root = stackholm::Checkpoint::new()
        .with_value(&REQUEST_ID, "r-9".to_owned())
        .with_value(&TENANT, "acme".to_owned())
        .with_value(&USER, "alice".to_owned());
    DEFAULT.sync_scope(root, || propagation.inject(&mut carrier));
    let mut out: Vec<(String, String)> = names
        .iter()
        .flat_map(|&name| {
            let name = stackholm_propagation::Name::new(name);
            carrier
                .get_all(&name)
                .map(|value| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8(value.to_vec()).unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_carrier_is_written_the_same_keeping_what_the_call_site_set() {
    let before = pairs(&[("X-Request-Id", "mine"), ("Baggage", "extra=1")]);
    let names = ["x-request-id", "baggage"];
    let want = pairs(&[
        ("baggage", "extra=1,tenant=acme,user=alice"),
        ("x-request-id", "mine"),
    ]);
    let mut headers = http::HeaderMap::new();
    for (name, value) in &before {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    assert_eq!(written(before.clone(), &names), want, "vec");
    assert_eq!(
        written(before.iter().cloned().collect::<HashMap<_, _>>(), &names),
        want,
        "hash map"
    );
    assert_eq!(
        written(before.iter().cloned().collect::<BTreeMap<_, _>>(), &names),
        want,
        "btree map"
    );
    assert_eq!(written(headers, &names), want, "header map");
}

#[test]
fn an_empty_carrier_gets_every_outbound_value() {
    let want = pairs(&[
        ("baggage", "tenant=acme,user=alice"),
        ("x-request-id", "r-9"),
    ]);
    let names = ["x-request-id", "baggage"];
    assert_eq!(written(Vec::new(), &names), want);
    assert_eq!(written(HashMap::new(), &names), want);
    assert_eq!(written(http::HeaderMap::new(), &names), want);
}

#[test]
fn a_baggage_header_of_nothing_valid_is_removed_in_every_carrier() {
    let (propagation, _) = propagation();
    let propagation = propagation.clone();
    let mut list = pairs(&[("BAGGAGE", "not a member")]);
    let mut hash: HashMap<String, String> = list.iter().cloned().collect();
    // No context at all: nothing to write, and what is there cannot go on.
    propagation.inject(&mut list);
    propagation.inject(&mut hash);
    assert!(list.is_empty(), "{list:?}");
    assert!(hash.is_empty(), "{hash:?}");
}
