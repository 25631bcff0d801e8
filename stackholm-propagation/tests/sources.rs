//! A key taken in from several sources: the first declared that gives a
//! value wins, whatever order the carrier holds them in; one that gives none
//! (absent, or rejected) leaves the next its turn, and its rejection is
//! still told.

use std::sync::{Arc, Mutex};

use stackholm::{Key, DEFAULT};
use stackholm_propagation::{Direction, Propagation};

static TENANT: Key<u32> = Key::new("tenant");

type Told = Arc<Mutex<Vec<String>>>;

/// Reads `headers` with `propagation`: the tenant taken in, and what was
/// told.
fn read(propagation: Propagation, headers: &[(&str, &str)]) -> (Option<u32>, Vec<String>) {
    let told = Told::default();
    let sink = Arc::clone(&told);
    let propagation =
        propagation.on_reject(move |rejection| sink.lock().unwrap().push(rejection.to_string()));
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let tenant = DEFAULT.sync_scope(propagation.extract(&headers), || DEFAULT.get(&TENANT));
    let told = told.lock().unwrap().clone();
    (tenant, told)
}

fn header_first() -> Propagation {
    Propagation::new()
        .header("x-tenant", &TENANT, Direction::Inbound)
        .member("tenant", &TENANT, Direction::Both)
}

fn baggage_first() -> Propagation {
    Propagation::new()
        .member("tenant", &TENANT, Direction::Both)
        .header("x-tenant", &TENANT, Direction::Inbound)
}

#[test]
fn the_first_declared_source_wins() {
    let both = [("x-tenant", "1"), ("baggage", "tenant=2")];
    assert_eq!(read(header_first(), &both), (Some(1), vec![]));
    assert_eq!(read(baggage_first(), &both), (Some(2), vec![]));
}

#[test]
fn an_absent_source_leaves_the_next_its_turn() {
    assert_eq!(
        read(header_first(), &[("baggage", "tenant=2")]),
        (Some(2), vec![])
    );
    assert_eq!(
        read(baggage_first(), &[("x-tenant", "1")]),
        (Some(1), vec![])
    );
    assert_eq!(read(header_first(), &[]), (None, vec![]));
}

#[test]
fn a_rejected_source_does_not_hide_the_next() {
    for headers in [
        [("x-tenant", "not a number"), ("baggage", "tenant=2")],
        [("baggage", "tenant=2"), ("x-tenant", "not a number")],
    ] {
        let (tenant, told) = read(header_first(), &headers);
        assert_eq!(tenant, Some(2), "{headers:?}");
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].contains("header `x-tenant` dropped"), "{told:?}");
    }
    let ambiguous = [("baggage", "tenant=2,tenant=3"), ("x-tenant", "1")];
    let (tenant, told) = read(baggage_first(), &ambiguous);
    assert_eq!(tenant, Some(1));
    assert_eq!(told.len(), 1, "{told:?}");
}

#[test]
fn a_key_from_several_sources_goes_out_where_declared_outbound() {
    let propagation = header_first();
    let root = stackholm::Checkpoint::new().with_value(&TENANT, 7);
    let mut out: Vec<(String, String)> = Vec::new();
    DEFAULT.sync_scope(root, || propagation.inject(&mut out));
    assert_eq!(out, [("baggage".to_owned(), "tenant=7".to_owned())]);
}
