//! Properties of `Propagation::extract` and `inject` over arbitrary header
//! bytes: they never panic, never set an undeclared key, and what they write
//! is always W3C Baggage within its limits, checked by a grammar of its own.

use std::collections::BTreeSet;

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use stackholm::{Checkpoint, Key, DEFAULT};
use stackholm_tower::propagation::{Direction, Propagation, BAGGAGE};

static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
/// Declared outbound only: extraction never sets it.
static OUT_HEADER: Key<String> = Key::new("out_header").inherited();
static TENANT: Key<String> = Key::new("tenant").inherited();
/// Declared inbound only: read, and never sent on.
static NOTE: Key<String> = Key::new("note").inherited();
static COUNT: Key<u32> = Key::new("count").inherited();
/// Declared outbound only: extraction never sets it.
static USER: Key<String> = Key::new("user").inherited();
/// Declared nowhere.
static SECRET: Key<String> = Key::new("secret").inherited();

fn declared() -> Propagation {
    Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .header("x-out", &OUT_HEADER, Direction::Outbound)
        .member("tenant", &TENANT, Direction::Both)
        .member("note", &NOTE, Direction::Inbound)
        .member("count", &COUNT, Direction::Both)
        .member("user", &USER, Direction::Outbound)
        // Display every rejection, so that its text is built too.
        .on_reject(|rejection| assert!(!rejection.to_string().is_empty()))
}

// ---------------------------------------------------------------------------
// An independent, strict reading of the W3C Baggage grammar:
//
//   baggage-string = list-member *( OWS "," OWS list-member )
//   list-member    = key OWS "=" OWS value *( OWS ";" OWS property )
//   property       = key OWS "=" OWS value / key
//   key            = token
//   value          = *baggage-octet

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_baggage_octet(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !b"\",;\\".contains(&b)
}

struct Grammar<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Grammar<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let eaten = self.peek() == Some(byte);
        self.at += usize::from(eaten);
        eaten
    }

    fn run(&mut self, class: fn(u8) -> bool) -> &'a str {
        let start = self.at;
        while self.peek().is_some_and(class) {
            self.at += 1;
        }
        std::str::from_utf8(&self.text[start..self.at]).unwrap()
    }

    fn key(&mut self) -> Result<&'a str, String> {
        let key = self.run(is_tchar);
        if key.is_empty() {
            return Err(format!("no key at byte {}", self.at));
        }
        Ok(key)
    }

    fn member(&mut self) -> Result<(&'a str, &'a str), String> {
        let key = self.key()?;
        self.ows();
        if !self.eat(b'=') {
            return Err(format!("no `=` after `{key}`"));
        }
        self.ows();
        let value = self.run(is_baggage_octet);
        loop {
            let before = self.at;
            self.ows();
            if !self.eat(b';') {
                self.at = before;
                break;
            }
            self.ows();
            self.key()?;
            let before = self.at;
            self.ows();
            if self.eat(b'=') {
                self.ows();
                self.run(is_baggage_octet);
            } else {
                self.at = before;
            }
        }
        Ok((key, value))
    }
}

/// The members of a `baggage` header value, if it is a strict
/// baggage-string.
fn parse_baggage(text: &[u8]) -> Result<Vec<(&str, &str)>, String> {
    let mut grammar = Grammar { text, at: 0 };
    let mut members = vec![grammar.member()?];
    loop {
        grammar.ows();
        if grammar.peek().is_none() {
            break;
        }
        if !grammar.eat(b',') {
            return Err(format!("unexpected byte at {}", grammar.at));
        }
        grammar.ows();
        members.push(grammar.member()?);
    }
    if text.last().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err("trailing white space".to_owned());
    }
    Ok(members)
}

#[test]
fn the_grammar_checker_itself() {
    fn ok(text: &str) -> Vec<(&str, &str)> {
        parse_baggage(text.as_bytes()).unwrap()
    }
    assert_eq!(ok("a=1"), [("a", "1")]);
    assert_eq!(
        ok("a = 1 ;p ; q= x=y , b=,c=%20;k"),
        [("a", "1"), ("b", ""), ("c", "%20")]
    );
    for bad in [
        "", "a", "=1", "a=1,", ",a=1", "a=1,,b=2", "a=\"1\"", "a=1;", "a=1;=p", "a b=1", "a=1 2",
        "a=\\", " a=1", "a=1 ", "é=1", "a=é",
    ] {
        assert!(parse_baggage(bad.as_bytes()).is_err(), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------
// Arbitrary header bytes, leaning on the grammar's own pieces so that the
// interesting paths are reached.

fn chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => any::<u8>().prop_map(|b| vec![b]),
        3 => prop::sample::select(vec![
            "tenant", "note", "count", "user", "secret", "x", "=", "=", ",", ",", ";", " ",
            "\t", "%", "%2", "%41", "%C3%A9", "%ff", "%e2%9c%93", "\"", "\\", "1", "42",
            "p=1", "\u{e9}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => "[a-z0-9=,; %]{0,16}".prop_map(String::into_bytes),
    ]
}

fn header_bytes(chunks: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(chunk(), 0..chunks).prop_map(|chunks| chunks.concat())
}

#[derive(Debug, Clone)]
struct Input {
    baggage: Vec<Vec<u8>>,
    request_id: Vec<Vec<u8>>,
    /// `baggage` already on the outgoing request.
    present: Vec<Vec<u8>>,
    /// Set in the context before injecting.
    user: Option<String>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop::collection::vec(header_bytes(300), 0..4),
        prop::collection::vec(header_bytes(6), 0..3),
        prop::collection::vec(header_bytes(40), 0..3),
        prop::option::of(any::<String>()),
    )
        .prop_map(|(baggage, request_id, present, user)| Input {
            baggage,
            request_id,
            present,
            user,
        })
}

fn header_map(name: &'static str, values: &[Vec<u8>]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    headers
}

/// Checks the outgoing `baggage`: at most one value, a strict
/// baggage-string within the limits, no name twice. Gives its members.
fn check_output(out: &HeaderMap) -> Result<Vec<(String, String)>, TestCaseError> {
    let mut values = out.get_all(BAGGAGE).iter();
    let Some(value) = values.next() else {
        return Ok(Vec::new());
    };
    prop_assert!(values.next().is_none(), "baggage written twice");
    let text = value.as_bytes();
    prop_assert!(text.len() <= 8192, "{} bytes", text.len());
    let members = parse_baggage(text).map_err(|err| {
        TestCaseError::fail(format!("{err}: {:?}", String::from_utf8_lossy(text)))
    })?;
    prop_assert!(members.len() <= 64, "{} members", members.len());
    let mut names = BTreeSet::new();
    for (name, _) in &members {
        prop_assert!(names.insert(*name), "`{name}` twice in {value:?}");
    }
    Ok(members
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn mentions(values: &[Vec<u8>], name: &str) -> bool {
    values
        .iter()
        .any(|value| value.windows(name.len()).any(|w| w == name.as_bytes()))
}

/// Checks one service's extract and inject of `input`, first as an edge
/// (the default), then as a relay.
fn check_extract_and_inject(input: &Input) -> Result<(), TestCaseError> {
    check_service(input, false)?;
    check_service(input, true)
}

fn check_service(input: &Input, relay: bool) -> Result<(), TestCaseError> {
    let propagation = if relay {
        declared().relay()
    } else {
        declared()
    };
    let mut headers = header_map("baggage", &input.baggage);
    for value in &input.request_id {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append("x-request-id", value.clone());
            headers.append("x-out", value);
        }
    }

    let _guard = DEFAULT.enter_with(propagation.extract(&headers));

    // Nothing undeclared, nothing outbound-only, is ever set.
    prop_assert_eq!(DEFAULT.get(&USER), None);
    prop_assert_eq!(DEFAULT.get(&OUT_HEADER), None);
    prop_assert_eq!(DEFAULT.get(&SECRET), None);
    // The header is taken when it is there once, as text.
    let ids: Vec<_> = headers.get_all("x-request-id").iter().collect();
    let expected_id = match ids[..] {
        [id] => id.to_str().ok().map(str::to_owned),
        _ => None,
    };
    prop_assert_eq!(DEFAULT.get(&REQUEST_ID), expected_id.clone());
    // A declared member is only ever set from a member of its name.
    for (key, name) in [(&TENANT, "tenant"), (&NOTE, "note")] {
        if DEFAULT.get(key).is_some() {
            prop_assert!(mentions(&input.baggage, name));
        }
    }
    if DEFAULT.get(&COUNT).is_some() {
        prop_assert!(mentions(&input.baggage, "count"));
    }

    if let Some(user) = &input.user {
        DEFAULT.set(&USER, user.clone()).unwrap();
    }
    let mut out = header_map("baggage", &input.present);
    propagation.inject(&mut out);

    let members = check_output(&out)?;
    // It goes on as it came, unless HTTP would trim it on the way.
    let outer = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    let sent_id = expected_id
        .map(String::into_bytes)
        .filter(|id| !outer(id.first()) && !outer(id.last()));
    prop_assert_eq!(
        out.get("x-request-id").map(|v| v.as_bytes().to_vec()),
        sent_id
    );
    prop_assert_eq!(out.get("x-out"), None);
    for (name, _) in &members {
        match name.as_str() {
            // Declared inbound only: never forwarded from the request.
            "note" => prop_assert!(mentions(&input.present, "note")),
            // Declared outbound only: from the context or the call site.
            "user" => prop_assert!(input.user.is_some() || mentions(&input.present, "user")),
            "tenant" | "count" => {}
            // Undeclared: passed on by a relay only, unless the call site
            // put it on the outgoing request.
            other => prop_assert!(
                relay || mentions(&input.present, other),
                "`{}` passed on by a service that is no relay",
                other
            ),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn extract_and_inject_over_arbitrary_bytes(input in input()) {
        check_extract_and_inject(&input)?;
    }

    /// Well-formed members between untidy separators, and nothing on the
    /// outgoing request: the path where kept members go out whole.
    #[test]
    fn extract_and_inject_over_untidy_lists(
        members in prop::collection::vec(
            ("(tenant|note|user|x|y|z[0-9])", "[!#-+--:<-\\[\\]-~]{0,8}", prop::option::of("; ?p(=[a-z0-9]{0,3})?")),
            0..8,
        ),
        separators in prop::collection::vec(prop::sample::select(vec![",", ", ", " ,", ",,", "\t,\t", " , , "]), 8),
        ends in (prop::sample::select(vec!["", ",", " ", ", "]), prop::sample::select(vec!["", ",", " ", " ,"])),
    ) {
        let mut header = ends.0.to_owned();
        for (i, (key, value, property)) in members.iter().enumerate() {
            if i > 0 {
                header.push_str(separators[i % separators.len()]);
            }
            header.push_str(&format!("{key}={value}{}", property.as_deref().unwrap_or("")));
        }
        header.push_str(ends.1);
        let input = Input { baggage: vec![header.into_bytes()], request_id: Vec::new(), present: Vec::new(), user: None };
        check_extract_and_inject(&input)?;
    }

    #[test]
    fn extract_and_inject_over_raw_bytes(
        baggage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2048), 0..4),
        request_id in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 0..2),
    ) {
        check_extract_and_inject(&Input { baggage, request_id, present: Vec::new(), user: None })?;
    }
}

// ---------------------------------------------------------------------------
// Round trips: what is injected is extracted to the same values.

static RT_ID: Key<String> = Key::new("rt_id");
static RT_TENANT: Key<String> = Key::new("rt_tenant");
static RT_NOTE: Key<String> = Key::new("rt_note");
static RT_COUNT: Key<u32> = Key::new("rt_count");

fn round_trip() -> Propagation {
    Propagation::new()
        .header("x-request-id", &RT_ID, Direction::Both)
        .member("tenant", &RT_TENANT, Direction::Both)
        .member("note", &RT_NOTE, Direction::Both)
        .member("count", &RT_COUNT, Direction::Both)
}

/// Injects `checkpoint`'s values, checks the output, and extracts them.
fn inject_then_extract(checkpoint: Checkpoint) -> Result<(HeaderMap, Checkpoint), TestCaseError> {
    let propagation = round_trip();
    let mut headers = HeaderMap::new();
    {
        let _guard = DEFAULT.enter_with(checkpoint);
        propagation.inject(&mut headers);
    }
    check_output(&headers)?;
    let extracted = propagation.extract(&headers);
    Ok((headers, extracted))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn declared_values_round_trip(
        tenant in any::<String>(),
        note in prop::option::of(".{0,200}"),
        count in any::<u32>(),
        id in "[!-~]([ -~]{0,40}[!-~])?",
    ) {
        let mut checkpoint = Checkpoint::new()
            .with_value(&RT_TENANT, tenant.clone())
            .with_value(&RT_COUNT, count)
            .with_value(&RT_ID, id.clone());
        if let Some(note) = &note {
            checkpoint = checkpoint.with_value(&RT_NOTE, note.clone());
        }
        let (_, extracted) = inject_then_extract(checkpoint)?;
        let _extracted = DEFAULT.enter_with(extracted);
        prop_assert_eq!(DEFAULT.get(&RT_TENANT), Some(tenant));
        prop_assert_eq!(DEFAULT.get(&RT_NOTE), note);
        prop_assert_eq!(DEFAULT.get(&RT_COUNT), Some(count));
        prop_assert_eq!(DEFAULT.get(&RT_ID), Some(id));
    }

    /// A header value goes out exactly when it can arrive unchanged: one
    /// that is not visible ASCII, or has white space at either end (which
    /// HTTP trims), is skipped on the way out, as the docs say.
    #[test]
    fn header_values_round_trip_or_are_skipped(
        id in prop_oneof![any::<String>(), "[ \t]{0,2}[ -~\t]{0,6}[ \t]{0,2}"],
    ) {
        let checkpoint = Checkpoint::new().with_value(&RT_ID, id.clone());
        let (headers, extracted) = inject_then_extract(checkpoint)?;
        let outer = |b: Option<u8>| matches!(b, Some(b' ' | b'\t'));
        let exact = id.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
            && !outer(id.bytes().next())
            && !outer(id.bytes().last());
        prop_assert_eq!(headers.contains_key("x-request-id"), exact, "{:?}", id);
        if exact {
            let _extracted = DEFAULT.enter_with(extracted);
            prop_assert_eq!(DEFAULT.get(&RT_ID), Some(id));
        }
    }
}

// ---------------------------------------------------------------------------
// Huge headers, once each.

/// Deterministic noise of valid header-value bytes.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"tenant=acme,note;%20 \t\"\\xyz09\xc3\xa9\xff=,";
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ALPHABET[usize::try_from(seed >> 33).unwrap() % ALPHABET.len()]
        })
        .collect()
}

#[test]
fn huge_headers() {
    let mib = 1 << 20;
    let mut cases = vec![
        Input {
            baggage: vec![noise(mib, 1), noise(mib, 2)],
            request_id: vec![b"r-1".to_vec()],
            present: vec![noise(64 * 1024, 3)],
            user: Some("alice".to_owned()),
        },
        // One member, one megabyte.
        Input {
            baggage: vec![[b"tenant=".as_slice(), &vec![b'a'; mib]].concat()],
            request_id: vec![b"r-1".to_vec()],
            present: Vec::new(),
            user: None,
        },
        // A megabyte of empty list elements before the members.
        Input {
            baggage: vec![[", \t".repeat(mib / 3).as_bytes(), b"tenant=acme,other=1"].concat()],
            request_id: vec![b"r-1".to_vec()],
            present: Vec::new(),
            user: None,
        },
        // 100,000 members.
        Input {
            baggage: vec![(0..100_000)
                .map(|i| format!("k{i}=v;p"))
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes()],
            request_id: vec![b"r-1".to_vec()],
            present: Vec::new(),
            user: Some("\u{e9}".repeat(3000)),
        },
    ];
    for (i, input) in cases.drain(..).enumerate() {
        check_extract_and_inject(&input).unwrap_or_else(|err| panic!("case {i}: {err}"));
    }

    // Within the limits, a relay passes on the first 64 members, 8192
    // bytes at most.
    let propagation = declared().relay();
    let mut headers = HeaderMap::new();
    let many = (0..100_000)
        .map(|i| format!("k{i}=v;p"))
        .collect::<Vec<_>>()
        .join(",");
    headers.insert(BAGGAGE, HeaderValue::from_str(&many).unwrap());
    let _guard = DEFAULT.enter_with(propagation.extract(&headers));
    let mut out = HeaderMap::new();
    propagation.inject(&mut out);
    let members = check_output(&out).unwrap();
    assert_eq!(members.len(), 64);
    assert_eq!(members[63], ("k63".to_owned(), "v".to_owned()));
}
