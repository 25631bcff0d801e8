//! What context travels in: the headers of a request, a message's header
//! map, a list of pairs. [`Extractor`] reads them, [`Injector`] writes them.
//!
//! Names match ignoring ASCII case in every carrier, as HTTP's do: a
//! message whose map holds both `X-Request-Id` and `x-request-id` gives
//! that header twice, which is ambiguous.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;

/// Where incoming context is read from: a carrier of named text values.
///
/// Implemented for `http::HeaderMap` (feature `http`), tonic's
/// `MetadataMap` (feature `tonic`), `async_nats::HeaderMap` (feature
/// `async-nats`), `HashMap<String, String>`,
/// `BTreeMap<String, String>`, and lists of `(String, String)` pairs, as
/// message headers come from a queue's client. For a carrier of your own,
/// two methods are enough:
///
/// ```
/// use stackholm_propagation::Extractor;
///
/// /// A message's headers, as a broker's client hands them out.
/// struct Headers(Vec<(String, String)>);
///
/// impl Extractor for Headers {
///     fn get(&self, name: &str) -> Option<&[u8]> {
///         self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_bytes())
///     }
///
///     fn names(&self) -> impl Iterator<Item = &str> {
///         self.0.iter().map(|(n, _)| n.as_str())
///     }
/// }
/// # let headers = Headers(vec![("X-Request-Id".into(), "r-1".into())]);
/// # let name = stackholm_propagation::Name::new("x-request-id");
/// # assert_eq!(headers.get_all(&name).collect::<Vec<_>>(), [b"r-1"]);
/// ```
///
/// A carrier that holds several values under one name overrides
/// [`get_all`](Self::get_all) to give each of them.
pub trait Extractor {
    /// The first value under exactly `name`, as [`names`](Self::names)
    /// gives it; bytes, as HTTP allows values that are not text.
    fn get(&self, name: &str) -> Option<&[u8]>;

    /// The names present, each once.
    fn names(&self) -> impl Iterator<Item = &str>;

    /// Every value under a name equal to `name` ignoring ASCII case, in the
    /// carrier's order: two of them make a declared value ambiguous.
    fn get_all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a [u8]> {
        self.names()
            .filter(move |present| name.matches(present))
            .filter_map(move |present| self.get(present))
    }
}

/// Where outgoing context is written to: an [`Extractor`] that can also be
/// changed, so that what the call site put there already is seen (and
/// wins over the context).
pub trait Injector: Extractor {
    /// Sets `value` under `name`, in place of every value under a name equal
    /// to it ignoring ASCII case. `name` is a token (RFC 9110) as declared;
    /// `value` is visible ASCII, spaces and tabs inside at most.
    fn set(&mut self, name: &Name, value: String);

    /// Removes every value under a name equal to `name` ignoring ASCII case.
    fn remove(&mut self, name: &Name);
}

/// A name context is read and written under: a token (RFC 9110: letters,
/// digits and ``!#$%&'*+-.^_`|~``), matched ignoring ASCII case, and
/// written as given. Made once, where a name is declared, so that a
/// carrier that keeps names in a form of its own (an `http::HeaderName`)
/// finds it without converting it on every request.
#[derive(Clone)]
pub struct Name {
    text: &'static str,
    #[cfg(feature = "http")]
    header: http::HeaderName,
}

impl Name {
    /// `text` as a name.
    ///
    /// # Panics
    ///
    /// If `text` is not a token.
    #[must_use]
    #[track_caller]
    pub fn new(text: &'static str) -> Self {
        assert!(
            crate::baggage::is_token(text.as_bytes()),
            "`{text}` cannot be a name: it is not a token"
        );
        Self {
            text,
            #[cfg(feature = "http")]
            header: http_headers::header_name(text),
        }
    }

    /// The name as given.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        self.text
    }

    /// Whether `present`, a name in a carrier, is this one: equal ignoring
    /// ASCII case.
    #[must_use]
    pub fn matches(&self, present: &str) -> bool {
        // Names are mostly spelt alike: compared whole first.
        present.len() == self.text.len()
            && (present == self.text || present.eq_ignore_ascii_case(self.text))
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.text, f)
    }
}

impl<S: BuildHasher> Extractor for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        HashMap::get(self, name).map(String::as_bytes)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.keys().map(String::as_str)
    }

    // Over the pairs: a message's few headers are compared faster than one
    // of them is hashed.
    fn get_all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a [u8]> {
        pairs_named(self, name)
    }
}

/// The values of `pairs` whose name matches `name`.
fn pairs_named<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)> + 'a,
    name: &'a Name,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    pairs
        .into_iter()
        .filter(move |(present, _)| name.matches(present))
        .map(|(_, value)| value.as_bytes())
}

impl<S: BuildHasher> Injector for HashMap<String, String, S> {
    fn set(&mut self, name: &Name, value: String) {
        Injector::remove(self, name);
        self.insert(name.as_str().to_owned(), value);
    }

    fn remove(&mut self, name: &Name) {
        // There is mostly nothing to remove, and a look at the keys costs
        // less than `retain`'s pass over the entries (34 instructions a
        // request on the propagation bench's map).
        if self.keys().any(|present| name.matches(present)) {
            self.retain(|present, _| !name.matches(present));
        }
    }
}

impl Extractor for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        BTreeMap::get(self, name).map(String::as_bytes)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.keys().map(String::as_str)
    }

    fn get_all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a [u8]> {
        pairs_named(self, name)
    }
}

impl Injector for BTreeMap<String, String> {
    fn set(&mut self, name: &Name, value: String) {
        Injector::remove(self, name);
        self.insert(name.as_str().to_owned(), value);
    }

    fn remove(&mut self, name: &Name) {
        self.retain(|present, _| !name.matches(present));
    }
}

/// Pairs in order, a name given any number of times.
impl Extractor for [(String, String)] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(present, _)| present == name)
            .map(|(_, value)| value.as_bytes())
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.iter()
            .enumerate()
            .filter(|&(i, (name, _))| !self[..i].iter().any(|(earlier, _)| earlier == name))
            .map(|(_, (name, _))| name.as_str())
    }

    fn get_all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a [u8]> {
        pairs_named(self.iter().map(|(name, value)| (name, value)), name)
    }
}

impl Extractor for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        Extractor::get(self.as_slice(), name)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        Extractor::names(self.as_slice())
    }

    fn get_all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a [u8]> {
        Extractor::get_all(self.as_slice(), name)
    }
}

/// Appended last, after any pair of another name.
impl Injector for Vec<(String, String)> {
    fn set(&mut self, name: &Name, value: String) {
        Injector::remove(self, name);
        self.push((name.as_str().to_owned(), value));
    }

    fn remove(&mut self, name: &Name) {
        self.retain(|(present, _)| !name.matches(present));
    }
}

#[cfg(feature = "http")]
mod http_headers {
    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::{Extractor, Injector, Name};

    /// Names are found as `HeaderMap` finds them, ignoring case; a value
    /// is given as its bytes, text or not.
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    impl Extractor for HeaderMap {
        fn get(&self, name: &str) -> Option<&[u8]> {
            HeaderMap::get(self, name).map(HeaderValue::as_bytes)
        }

        fn names(&self) -> impl Iterator<Item = &str> {
            self.keys().map(HeaderName::as_str)
        }

        fn get_all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a [u8]> {
            HeaderMap::get_all(self, &name.header)
                .into_iter()
                .map(HeaderValue::as_bytes)
        }
    }

    /// # Panics
    ///
    /// [`set`](Injector::set) panics if `value` is not a header value:
    /// [`Propagation`](crate::Propagation) writes only values it checked.
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    impl Injector for HeaderMap {
        fn set(&mut self, name: &Name, value: String) {
            let value = HeaderValue::try_from(value)
                .unwrap_or_else(|err| panic!("`{}` cannot be sent: {err}", name.as_str()));
            self.insert(name.header.clone(), value);
        }

        fn remove(&mut self, name: &Name) {
            HeaderMap::remove(self, &name.header);
        }
    }

    /// `name`, a token, as a header name: without a copy when it is
    /// lowercase already, as declared names usually are.
    pub(super) fn header_name(name: &'static str) -> HeaderName {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|err| panic!("`{name}` cannot be a header name: {err}"))
        } else {
            HeaderName::from_static(name)
        }
    }
}

#[cfg(feature = "tonic")]
mod tonic_metadata {
    use tonic::metadata::MetadataMap;

    use super::{Extractor, Injector, Name};

    /// The metadata's entries as the HTTP/2 headers that carry them.
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    impl Extractor for MetadataMap {
        fn get(&self, name: &str) -> Option<&[u8]> {
            Extractor::get(self.as_ref(), name)
        }

        fn names(&self) -> impl Iterator<Item = &str> {
            Extractor::names(self.as_ref())
        }

        fn get_all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a [u8]> {
            Extractor::get_all(self.as_ref(), name)
        }
    }

    /// # Panics
    ///
    /// As the `http::HeaderMap` injector's.
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    impl Injector for MetadataMap {
        fn set(&mut self, name: &Name, value: String) {
            Injector::set(self.as_mut(), name, value);
        }

        fn remove(&mut self, name: &Name) {
            Injector::remove(self.as_mut(), name);
        }
    }
}

#[cfg(feature = "async-nats")]
mod nats_headers {
    use async_nats::{HeaderMap, HeaderName};

    use super::{Extractor, Injector, Name};

    /// A NATS message's headers. `async_nats::HeaderMap` finds a name by
    /// its exact bytes, and a name it knows (`Nats-Msg-Id`) only in the
    /// form it parsed it to: names are found here by their text instead,
    /// ignoring case, so `X-Request-Id` from one client is `x-request-id`
    /// to another.
    #[cfg_attr(docsrs, doc(cfg(feature = "async-nats")))]
    impl Extractor for HeaderMap {
        fn get(&self, name: &str) -> Option<&[u8]> {
            self.iter()
                .find(|(present, _)| text(present) == name)
                .and_then(|(_, values)| values.first())
                .map(|value| value.as_str().as_bytes())
        }

        fn names(&self) -> impl Iterator<Item = &str> {
            self.iter().map(|(name, _)| text(name))
        }

        fn get_all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a [u8]> {
            self.iter()
                .filter(move |(present, _)| name.matches(text(present)))
                .flat_map(|(_, values)| values.iter().map(|value| value.as_str().as_bytes()))
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "async-nats")))]
    impl Injector for HeaderMap {
        fn set(&mut self, name: &Name, value: String) {
            Injector::remove(self, name);
            self.insert(name.as_str(), value);
        }

        fn remove(&mut self, name: &Name) {
            let spelled = |present: &HeaderName| name.matches(text(present));
            // `HeaderMap` has no way to remove a name: the others are copied
            // into a new one, only when there is something to remove.
            if !self.iter().any(|(present, _)| spelled(present)) {
                return;
            }
            let mut kept = HeaderMap::new();
            for (present, values) in self.iter().filter(|(present, _)| !spelled(present)) {
                for value in values {
                    // `append`: `insert` would replace the values before.
                    kept.append(present.clone(), value.clone());
                }
            }
            *self = kept;
        }
    }

    /// `name` as text: `HeaderName` is also bytes, which `as_ref` alone
    /// cannot tell from it.
    fn text(name: &HeaderName) -> &str {
        name.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn names_match_ignoring_case_in_every_carrier() {
        let list = pairs(&[("X-Request-Id", "r-1"), ("other", "o")]);
        let hash: HashMap<_, _> = list.iter().cloned().collect();
        let tree: BTreeMap<_, _> = list.iter().cloned().collect();
        let want: Vec<&[u8]> = vec![b"r-1"];
        let name = Name::new("x-request-id");
        assert_eq!(list.get_all(&name).collect::<Vec<_>>(), want);
        assert_eq!(hash.get_all(&name).collect::<Vec<_>>(), want);
        assert_eq!(tree.get_all(&name).collect::<Vec<_>>(), want);
    }

    #[test]
    fn a_name_in_two_spellings_gives_both_values() {
        let list = pairs(&[("x-request-id", "a"), ("X-Request-ID", "b")]);
        let hash: HashMap<_, _> = list.iter().cloned().collect();
        let name = Name::new("x-request-id");
        assert_eq!(list.get_all(&name).count(), 2);
        assert_eq!(hash.get_all(&name).count(), 2);
    }

    #[test]
    fn a_list_names_each_name_once_and_gives_every_value() {
        let list = pairs(&[("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(list.names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(list.get("a"), Some(&b"1"[..]));
        let name = Name::new("A");
        let all: Vec<&[u8]> = list.get_all(&name).collect();
        assert_eq!(all, [b"1", b"3"]);
    }

    #[test]
    fn set_replaces_every_spelling() {
        let mut list = pairs(&[("Tenant", "x"), ("keep", "k"), ("TENANT", "y")]);
        let tenant = Name::new("tenant");
        list.set(&tenant, "acme".to_owned());
        assert_eq!(list, pairs(&[("keep", "k"), ("tenant", "acme")]));

        let mut hash: HashMap<String, String> = pairs(&[("Tenant", "x")]).into_iter().collect();
        hash.set(&tenant, "acme".to_owned());
        assert_eq!(hash.len(), 1);
        assert_eq!(hash["tenant"], "acme");

        let mut tree: BTreeMap<String, String> = pairs(&[("TENANT", "x")]).into_iter().collect();
        Injector::remove(&mut tree, &tenant);
        assert!(tree.is_empty());
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn tonic_metadata_is_read_and_written_as_its_headers() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("x-request-id", "r-1".parse().unwrap());
        let name = Name::new("X-Request-Id");
        let all: Vec<&[u8]> = Extractor::get_all(&metadata, &name).collect();
        assert_eq!(all, [b"r-1"]);
        Injector::set(&mut metadata, &name, "r-2".to_owned());
        assert_eq!(metadata.get("x-request-id").unwrap(), "r-2");
        assert_eq!(metadata.len(), 1);
    }

    #[cfg(feature = "http")]
    #[test]
    fn a_header_map_gives_every_value_of_a_name() {
        let mut headers = http::HeaderMap::new();
        headers.append("x-a", http::HeaderValue::from_static("1"));
        headers.append("X-A", http::HeaderValue::from_static("2"));
        let name = Name::new("X-a");
        let all: Vec<&[u8]> = Extractor::get_all(&headers, &name).collect();
        assert_eq!(all, [b"1", b"2"]);
        headers.set(&Name::new("x-a"), "3".to_owned());
        assert_eq!(Extractor::get_all(&headers, &Name::new("x-a")).count(), 1);
        headers.set(&Name::new("X-Upper"), "4".to_owned());
        assert_eq!(headers["x-upper"], "4");
    }

    #[cfg(feature = "async-nats")]
    #[test]
    fn a_nats_header_map_matches_names_ignoring_case() {
        use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};

        let mut headers = HeaderMap::new();
        headers.append("X-Request-Id", "a");
        headers.append("X-Request-Id", "b");
        headers.append("x-request-id", "c");
        // Parsed from the wire, a name the client knows has a form of its
        // own, which a lookup by text does not find in `HeaderMap`.
        headers.insert(NATS_MESSAGE_ID, "m-1");
        let name = Name::new("x-request-id");
        let mut all: Vec<&[u8]> = Extractor::get_all(&headers, &name).collect();
        all.sort_unstable();
        assert_eq!(all, [b"a", b"b", b"c"]);
        assert_eq!(Extractor::get(&headers, "X-Request-Id"), Some(&b"a"[..]));
        assert_eq!(Extractor::get(&headers, "Nats-Msg-Id"), Some(&b"m-1"[..]));
        let msg_id = Name::new("nats-msg-id");
        assert_eq!(Extractor::get_all(&headers, &msg_id).count(), 1);
        let mut names: Vec<&str> = headers.names().collect();
        names.sort_unstable();
        assert_eq!(names, ["Nats-Msg-Id", "X-Request-Id", "x-request-id"]);
    }

    #[cfg(feature = "async-nats")]
    #[test]
    fn a_nats_header_map_set_replaces_every_spelling_and_keeps_the_rest() {
        use async_nats::HeaderMap;

        let mut headers = HeaderMap::new();
        headers.append("Tenant", "x");
        headers.append("TENANT", "y");
        headers.append("keep", "1");
        headers.append("keep", "2");
        let tenant = Name::new("tenant");
        headers.set(&tenant, "acme".to_owned());
        assert_eq!(
            Extractor::get_all(&headers, &tenant).collect::<Vec<_>>(),
            [b"acme"]
        );
        assert_eq!(Extractor::get(&headers, "tenant"), Some(&b"acme"[..]));
        let keep: Vec<&str> = headers.get_all("keep").map(|v| v.as_str()).collect();
        assert_eq!(keep, ["1", "2"]);
        Injector::remove(&mut headers, &Name::new("Tenant"));
        assert_eq!(headers.names().collect::<Vec<_>>(), ["keep"]);
        Injector::remove(&mut headers, &tenant);
        assert_eq!(headers.len(), 1);
    }
}
