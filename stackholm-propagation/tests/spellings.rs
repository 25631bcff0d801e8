//! Names spelt so that a reader who decodes and trims them (OpenTelemetry's
//! does both, and keeps the last copy) takes them for another: each is
//! treated as a spelling of that name, and every piece dropped is told.

use std::sync::{Arc, Mutex};

use stackholm::{Checkpoint, Key, DEFAULT};
use stackholm_propagation::{Direction, Propagation};

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
static USER: Key<String> = Key::new("user").inherited();
static NOTE: Key<String> = Key::new("note").inherited();

type Told = Arc<Mutex<Vec<String>>>;

fn declared(propagation: Propagation) -> (Propagation, Told) {
    let told = Told::default();
    let sink = Arc::clone(&told);
    let propagation = propagation
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .member("user", &USER, Direction::Outbound)
        .member("note", &NOTE, Direction::Both)
        .on_reject(move |rejection| sink.lock().unwrap().push(rejection.to_string()));
    (propagation, told)
}

/// What one hop does with `incoming`: the note it takes in, the `baggage`
/// it sends on (the context's user being alice), and what it told.
struct Hop {
    note: Option<String>,
    request_id: Option<String>,
    baggage: Option<String>,
    told: Vec<String>,
}

fn hop(propagation: Propagation, incoming: &[(&str, &str)]) -> Hop {
    let (propagation, told) = declared(propagation);
    let incoming: Vec<(String, String)> = incoming
        .iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let (note, request_id, outgoing) = DEFAULT.sync_scope(propagation.extract(&incoming), || {
        DEFAULT.set(&USER, "alice".to_owned()).unwrap();
        let mut outgoing = Vec::new();
        propagation.inject(&mut outgoing);
        (DEFAULT.get(&NOTE), DEFAULT.get(&REQUEST_ID), outgoing)
    });
    let baggage = outgoing
        .into_iter()
        .find(|(name, _)| name == "baggage")
        .map(|(_, value)| value);
    let told = told.lock().unwrap().clone();
    Hop {
        note,
        request_id,
        baggage,
        told,
    }
}

#[test]
fn a_relay_passes_on_no_spelling_of_a_declared_name() {
    for spelt in [
        "user%09=root",
        "%0auser=root",
        "%20user%20=root",
        "user%C2%A0=root",
        "%75ser=root",
        "user%00=root",
    ] {
        let hop = hop(Propagation::new().relay(), &[("baggage", spelt)]);
        assert_eq!(hop.baggage.as_deref(), Some("user=alice"), "{spelt}");
        assert_eq!(hop.told.len(), 1, "{spelt}: {:?}", hop.told);
    }
}

#[test]
fn a_declared_name_and_a_spelling_of_it_are_ambiguous() {
    for baggage in ["note=,%0anote=a", "note=a,no%74e=b", "note%20=a,note=b"] {
        let hop = hop(Propagation::new(), &[("baggage", baggage)]);
        assert_eq!(hop.note, None, "{baggage}");
        assert_eq!(hop.told.len(), 1, "{baggage}: {:?}", hop.told);
        assert!(hop.told[0].contains("more than once"), "{:?}", hop.told);
    }
}

#[test]
fn a_declared_name_given_only_in_a_spelling_is_told_and_not_taken() {
    let hop = hop(Propagation::new().relay(), &[("baggage", "no%74e=x")]);
    assert_eq!(hop.note, None);
    assert_eq!(hop.baggage.as_deref(), Some("user=alice"));
    assert_eq!(hop.told.len(), 1, "{:?}", hop.told);
    assert!(hop.told[0].contains("`note`"), "{:?}", hop.told);
}

#[test]
fn a_relay_passes_each_undeclared_name_on_once_whatever_its_spelling() {
    for (incoming, passed) in [
        ("x=1,%78=2", "x=1"),
        ("x=1,x%20=2", "x=1"),
        ("%78=1,x=2", "%78=1"),
        ("x=1,x=2", "x=1"),
    ] {
        let hop = hop(Propagation::new().relay(), &[("baggage", incoming)]);
        let want = format!("user=alice,{passed}");
        assert_eq!(hop.baggage.as_deref(), Some(&*want), "{incoming}");
        assert_eq!(hop.told.len(), 1, "{incoming}: {:?}", hop.told);
        assert!(hop.told[0].contains("1 member"), "{:?}", hop.told);
    }
}

#[test]
fn a_call_site_member_spelt_as_a_declared_name_is_that_name() {
    let (propagation, _) = declared(Propagation::new());
    let mut outgoing = vec![("baggage".to_owned(), "%75ser=bob".to_owned())];
    DEFAULT.sync_scope(Checkpoint::new(), || {
        DEFAULT.set(&USER, "alice".to_owned()).unwrap();
        propagation.inject(&mut outgoing);
    });
    assert_eq!(outgoing, [("baggage".to_owned(), "%75ser=bob".to_owned())]);
}

#[test]
#[should_panic(expected = "`t%41g` cannot be a baggage member's name")]
fn a_declared_member_name_with_an_escape_panics() {
    let _ = Propagation::new().member("t%41g", &NOTE, Direction::Both);
}

#[test]
fn a_declared_header_value_is_bounded() {
    let longest = "r".repeat(8192);
    let hop_longest = hop(Propagation::new(), &[("x-request-id", &longest)]);
    assert!(hop_longest.request_id.as_deref() == Some(&*longest));
    assert!(hop_longest.told.is_empty(), "{:?}", hop_longest.told);

    let over = "r".repeat(8193);
    let hop_over = hop(Propagation::new(), &[("x-request-id", &over)]);
    assert_eq!(hop_over.request_id, None);
    assert_eq!(hop_over.told.len(), 1, "{:?}", hop_over.told);
    assert!(
        hop_over.told[0].contains("8192 bytes"),
        "{:?}",
        hop_over.told
    );
}

#[test]
fn a_declared_header_value_over_the_bound_is_not_sent() {
    let (propagation, told) = declared(Propagation::new());
    let mut outgoing = Vec::new();
    let root = Checkpoint::new().with_value(&REQUEST_ID, "r".repeat(8193));
    DEFAULT.sync_scope(root, || propagation.inject(&mut outgoing));
    assert!(outgoing.is_empty(), "{} headers written", outgoing.len());
    assert_eq!(told.lock().unwrap().len(), 1);
}
