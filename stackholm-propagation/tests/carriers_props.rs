//! Every carrier gives the same reading of the same headers, whatever they
//! hold: generated lists of names (declared ones in any case, `baggage`,
//! others) and values (members, broken members, spellings, bytes HTTP
//! refuses), read from a list of pairs, a `HeaderMap`, a `HashMap` and a
//! `BTreeMap`, must set the same values and tell the same rejections; and
//! what `inject` writes into each is the same.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use stackholm::{Checkpoint, Key, DEFAULT};
use stackholm_propagation::{Direction, Extractor, Name, Propagation};

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
static TENANT: Key<String> = Key::new("tenant").inherited();
static NOTE: Key<String> = Key::new("note").inherited();
static USER: Key<String> = Key::new("user").inherited();

type Told = Arc<Mutex<Vec<String>>>;

fn declared(relay: bool) -> (Propagation, Told) {
    let told = Told::default();
    let sink = Arc::clone(&told);
    let propagation = Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .member("tenant", &TENANT, Direction::Both)
        .member("note", &NOTE, Direction::Inbound)
        .member("user", &USER, Direction::Outbound)
        .on_reject(move |rejection| sink.lock().unwrap().push(rejection.to_string()));
    (
        if relay {
            propagation.relay()
        } else {
            propagation
        },
        told,
    )
}

/// What reading `carrier` gives: the values set, what was told, and the
/// `baggage` and request id a hop sends on (the context's user alice).
type Reading = (Vec<Option<String>>, Vec<String>, Vec<(String, String)>);

fn read<E: Extractor + ?Sized>(carrier: &E, relay: bool) -> Reading {
    let (propagation, told) = declared(relay);
    let (values, mut sent) = DEFAULT.sync_scope(propagation.extract(carrier), || {
        DEFAULT.set(&USER, "alice".to_owned()).unwrap();
        let values = vec![
            DEFAULT.get(&REQUEST_ID),
            DEFAULT.get(&TENANT),
            DEFAULT.get(&NOTE),
        ];
        let mut sent: Vec<(String, String)> = Vec::new();
        propagation.inject(&mut sent);
        (values, sent)
    });
    sent.sort();
    let mut told = told.lock().unwrap().clone();
    told.sort();
    (values, told, sent)
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-request-id".to_owned()),
        Just("X-Request-ID".to_owned()),
        Just("baggage".to_owned()),
        Just("Baggage".to_owned()),
        Just("x-other".to_owned()),
        "[a-z]{1,3}",
    ]
}

fn member() -> impl Strategy<Value = String> {
    prop_oneof![
        "(tenant|note|user|x|no%74e|note%09|%78)=[a-z%0-9 ]{0,6}",
        "[a-z]{1,3}=[a-z]{0,3};p=1",
        "[ -~]{0,8}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(member(), 0..5).prop_map(|members| members.join(",")),
        "[ -~]{0,12}",
        "r-[0-9]{1,3}",
    ]
}

/// Header values as HTTP carries them: visible ASCII, tabs and spaces
/// inside, nothing at either end (what a `HeaderMap` holds is trimmed).
fn http_value(value: &str) -> Option<http::HeaderValue> {
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return None;
    }
    http::HeaderValue::from_str(value).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_list_and_a_header_map_read_alike(
        pairs in proptest::collection::vec((name(), value()), 0..6),
        relay in any::<bool>(),
    ) {
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .filter(|(_, value)| http_value(value).is_some())
            .collect();
        let mut headers = http::HeaderMap::new();
        for (name, value) in &pairs {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http_value(value).unwrap(),
            );
        }
        prop_assert_eq!(read(&pairs, relay), read(&headers, relay));
    }

    #[test]
    fn maps_read_as_a_list_of_their_pairs(
        pairs in proptest::collection::vec((name(), value()), 0..6),
        relay in any::<bool>(),
    ) {
        // One pair a name, whatever its case: a map's order is its own.
        let mut unique: Vec<(String, String)> = Vec::new();
        for (name, value) in pairs {
            if !unique.iter().any(|(other, _)| other.eq_ignore_ascii_case(&name)) {
                unique.push((name, value));
            }
        }
        let hash: HashMap<String, String> = unique.iter().cloned().collect();
        let tree: BTreeMap<String, String> = unique.iter().cloned().collect();
        let want = read(&unique, relay);
        prop_assert_eq!(read(&hash, relay), want.clone());
        prop_assert_eq!(read(&tree, relay), want);
    }

    #[test]
    fn every_carrier_is_written_alike(
        before in proptest::collection::vec((name(), value()), 0..4),
        request_id in "[!-~]{1,8}",
        tenant in "[ -~]{0,8}",
    ) {
        let mut unique: Vec<(String, String)> = Vec::new();
        for (name, value) in before {
            if http_value(&value).is_some()
                && !unique.iter().any(|(other, _)| other.eq_ignore_ascii_case(&name))
            {
                unique.push((name, value));
            }
        }
        let mut headers = http::HeaderMap::new();
        for (name, value) in &unique {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http_value(value).unwrap(),
            );
        }
        let (propagation, _) = declared(true);
        let mut list = unique.clone();
        let mut hash: HashMap<String, String> = unique.iter().cloned().collect();
        let root = || {
            Checkpoint::new()
                .with_value(&REQUEST_ID, request_id.clone())
                .with_value(&TENANT, tenant.clone())
        };
        DEFAULT.sync_scope(root(), || propagation.inject(&mut list));
        DEFAULT.sync_scope(root(), || propagation.inject(&mut hash));
        DEFAULT.sync_scope(root(), || propagation.inject(&mut headers));
        let names = ["x-request-id", "baggage"].map(Name::new);
        let seen = |carrier: &dyn Fn(&Name) -> Vec<Vec<u8>>| {
            names.iter().map(carrier).collect::<Vec<_>>()
        };
        let from_list = seen(&|name| list.get_all(name).map(<[u8]>::to_vec).collect());
        let from_hash = seen(&|name| hash.get_all(name).map(<[u8]>::to_vec).collect());
        let from_headers = seen(&|name| {
            Extractor::get_all(&headers, name).map(<[u8]>::to_vec).collect()
        });
        prop_assert_eq!(&from_list, &from_hash);
        prop_assert_eq!(&from_list, &from_headers);
    }
}
