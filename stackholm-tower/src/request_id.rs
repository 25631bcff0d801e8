//! Request ids: [`RequestIds`], what
//! [`StackholmLayer::request_id`](crate::StackholmLayer::request_id) makes,
//! beside the ids it makes and the echo of each on its response.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::header::{Entry, HeaderName, HeaderValue};
use http::request::Parts;
use http::HeaderMap;
use stackholm::Key;

use crate::seed::Root;

/// The longest request id taken from a request, in bytes: Heroku's router
/// bound, past which it makes a fresh id too.
const LONGEST: usize = 200;

/// Where [`StackholmLayer`](crate::StackholmLayer) reads each request's id,
/// the key it puts it in, and where it echoes it: made by
/// [`StackholmLayer::request_id`](crate::StackholmLayer::request_id), whose
/// docs say what it does; written in the layer's type,
/// `StackholmLayer<R, RequestIds, E>`.
#[derive(Clone)]
pub struct RequestIds {
    header: HeaderName,
    key: &'static Key<String>,
}

impl RequestIds {
    #[track_caller]
    pub(crate) fn new(header: &'static str, key: &'static Key<String>) -> Self {
        let header = match HeaderName::from_bytes(header.as_bytes()) {
            // A name written in lower case is kept static, so that the copy
            // each request takes of it is a copy of a pointer.
            Ok(_) if !header.bytes().any(|b| b.is_ascii_uppercase()) => {
                HeaderName::from_static(header)
            }
            Ok(lowered) => lowered,
            Err(_) => panic!("stackholm-tower: `{header}` is not a header name"),
        };
        Self { header, key }
    }
}

impl fmt::Debug for RequestIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestIds")
            .field("header", &self.header)
            .field("key", &self.key.name())
            .finish()
    }
}

/// What a layer does with request ids: nothing (`()`), or what
/// [`RequestIds`] says. Sealed: its one use is the layer's type.
pub trait Identify: sealed::Sealed {
    /// What the request's response future keeps to echo the id.
    type Echo: Echo;

    /// Reads the request's id, or makes one, before any seed runs.
    #[doc(hidden)]
    fn identify(&self, parts: &mut Parts, root: &mut Root<'_>) -> Self::Echo;
}

/// What a response future keeps to echo a request's id on its response.
/// Sealed.
pub trait Echo: sealed::Sealed {
    /// Puts the id on the response's head, unless it has one already.
    #[doc(hidden)]
    fn echo(&mut self, headers: &mut HeaderMap);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl Sealed for super::RequestIds {}
    impl Sealed for super::EchoId {}
}

impl Identify for () {
    type Echo = ();

    #[inline(always)]
    fn identify(&self, _parts: &mut Parts, _root: &mut Root<'_>) {}
}

impl Echo for () {
    #[inline(always)]
    fn echo(&mut self, _headers: &mut HeaderMap) {}
}

impl Identify for RequestIds {
    type Echo = EchoId;

    fn identify(&self, parts: &mut Parts, root: &mut Root<'_>) -> EchoId {
        // One look-up for both the read and the write.
        let (value, id) = match parts.headers.entry(&self.header) {
            Entry::Occupied(mut sent) => match taken(sent.get()) {
                Some(id) => (sent.get().clone(), id),
                None => {
                    let (value, id) = fresh();
                    sent.insert(value.clone());
                    (value, id)
                }
            },
            // In the request too, for what runs inside: a
            // `SetRequestIdLayer` takes it, rather than making another.
            Entry::Vacant(none) => {
                let (value, id) = fresh();
                none.insert(value.clone());
                (value, id)
            }
        };
        root.set(self.key, id);
        EchoId {
            header: self.header.clone(),
            value: Some(value),
        }
    }
}

/// A request's id, as its response future keeps it to echo.
#[derive(Debug)]
pub struct EchoId {
    header: HeaderName,
    // `None` once echoed.
    value: Option<HeaderValue>,
}

impl Echo for EchoId {
    fn echo(&mut self, headers: &mut HeaderMap) {
        if let (Some(value), Entry::Vacant(entry)) =
            (self.value.take(), headers.entry(&self.header))
        {
            entry.insert(value);
        }
    }
}

/// The id a request carries, if it is taken as it came: 1 to [`LONGEST`]
/// visible ASCII characters, no white space, so that it reads as one word
/// in a log line.
fn taken(sent: &HeaderValue) -> Option<String> {
    let id = sent.to_str().ok()?;
    acceptable(id).then(|| id.to_owned())
}

fn acceptable(id: &str) -> bool {
    (1..=LONGEST).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A fresh request id, as a header value and as text: this process's
/// random prefix, then how many ids it made before, in decimal
/// (`4f1qk8w2bdr0a-17`).
fn fresh() -> (HeaderValue, String) {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let prefix = prefix();
    let mut n = MADE.fetch_add(1, Ordering::Relaxed);
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut id = String::with_capacity(prefix.len() + 1 + digits.len() - at);
    id.push_str(prefix);
    id.push('-');
    // Digits are ASCII.
    id.extend(digits[at..].iter().map(|&b| char::from(b)));
    let value = HeaderValue::from_str(&id).expect("an id is visible ASCII");
    (value, id)
}

/// This process's prefix of request ids: 64 random bits in 13 characters
/// of Crockford's base 32, so that ids of two processes differ but with a
/// chance of one in 2^64 for each pair.
fn prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        // `RandomState` keys its hashers from the OS's randomness; the pid
        // and the time tell apart processes forked with the same keys.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(now.as_nanos());
        }
        let mut bits = hasher.finish();
        const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
        (0..13)
            .map(|_| {
                let digit = ALPHABET[(bits & 31) as usize];
                bits >>= 5;
                char::from(digit)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn fresh_ids_are_unique_and_acceptable() {
        let ids: Vec<String> = (0..10_000).map(|_| fresh().1).collect();
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            assert!(acceptable(id), "{id}");
            assert_eq!(id.split_once('-').map(|(p, _)| p), Some(prefix()));
        }
    }

    #[test]
    fn fresh_ids_are_unique_across_threads() {
        let made: Vec<Vec<String>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..2_500).map(|_| fresh().1).collect()))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let distinct: HashSet<&String> = made.iter().flatten().collect();
        assert_eq!(distinct.len(), 10_000);
    }

    #[test]
    fn the_header_value_is_the_text() {
        let (value, id) = fresh();
        assert_eq!(value.to_str().unwrap(), id);
    }

    #[test]
    fn an_id_is_taken_if_short_visible_and_one_word() {
        assert!(acceptable("r-1"));
        assert!(acceptable(&"a".repeat(LONGEST)));
        assert!(!acceptable(""));
        assert!(!acceptable(&"a".repeat(LONGEST + 1)));
        assert!(!acceptable("r 1"));
        assert!(!acceptable("r\t1"));
        assert!(!acceptable("r-é"));
    }

    #[test]
    fn a_header_name_is_taken_in_any_case() {
        static KEY: Key<String> = Key::new("id");
        assert_eq!(RequestIds::new("X-Request-Id", &KEY).header, "x-request-id");
    }

    #[test]
    #[should_panic = "`x request` is not a header name"]
    fn a_header_name_with_a_space_is_refused() {
        static KEY: Key<String> = Key::new("id");
        let _ = RequestIds::new("x request", &KEY);
    }
}
