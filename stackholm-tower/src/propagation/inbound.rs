//! Incoming requests: declared values into the root checkpoint, undeclared
//! baggage kept to be passed on.

use std::borrow::Cow;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, HeaderValue};
use stackholm::{Checkpoint, Key};

use super::baggage::{self, Item, Reader};
use super::field::Target;
use super::scratch;
use super::small::Small;
use super::{Direction, Place, Propagation, Reason, BAGGAGE};
use crate::seed::{Root, SeedRoot};

/// The baggage members of the incoming request that this service passes
/// on: inherited, so that spawned work passes them on too.
pub(crate) static FORWARDED: Key<Forwarded> = Key::new("stackholm.baggage").inherited();

/// The incoming `baggage` members to pass on, within the limits, each name
/// once and none this service declares: the request's own header value
/// when all of its members pass (shared, not copied), else a copy of those
/// that do.
#[derive(Debug, Clone)]
pub(crate) struct Forwarded {
    pub(crate) value: Kept,
    pub(crate) members: usize,
    /// The [`Propagation`] whose declarations filtered the members: another
    /// one filters them again by its own.
    pub(crate) declared_by: u64,
}

/// The text of kept members: checked already, so kept as bytes rather than
/// checked again as a header value.
#[derive(Debug, Clone)]
pub(crate) enum Kept {
    Header(HeaderValue),
    Copied(Arc<[u8]>),
}

impl Kept {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Header(value) => value.as_bytes(),
            Self::Copied(bytes) => bytes,
        }
    }
}

/// Where a declared member was found.
#[derive(Clone, Copy, Default)]
enum Found<'a> {
    #[default]
    Absent,
    Once(&'a [u8]),
    /// Once, but malformed: not accepted.
    Broken,
    Twice,
}

impl Propagation {
    /// A checkpoint holding the declared inbound values of `headers`, for
    /// servers that are not tower services (a queue consumer, say): enter
    /// it around the work done for that message.
    ///
    /// ```
    /// use stackholm::{Key, DEFAULT};
    /// use stackholm_tower::propagation::{Direction, Propagation};
    ///
    /// static TENANT: Key<String> = Key::new("tenant");
    ///
    /// let propagation = Propagation::new().member("tenant", &TENANT, Direction::Inbound);
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("baggage", http::HeaderValue::from_static("tenant=acme%20inc"));
    ///
    /// let _guard = DEFAULT.enter_with(propagation.extract(&headers));
    /// assert_eq!(DEFAULT.get(&TENANT).as_deref(), Some("acme inc"));
    /// ```
    #[must_use]
    pub fn extract(&self, headers: &HeaderMap) -> Checkpoint {
        let mut checkpoint = Checkpoint::new();
        self.extract_into(headers, &mut Target::Checkpoint(&mut checkpoint));
        checkpoint
    }

    fn extract_into(&self, headers: &HeaderMap, target: &mut Target<'_, '_>) {
        let inner = &*self.inner;
        for declared in &inner.headers_in {
            let mut values = headers.get_all(&declared.name).iter();
            let Some(value) = values.next() else { continue };
            let place = Place::Header(declared.label);
            if values.next().is_some() {
                self.reject(Direction::Inbound, place, Reason::Ambiguous);
                continue;
            }
            let Ok(text) = value.to_str() else {
                self.reject(Direction::Inbound, place, Reason::NotText);
                continue;
            };
            if let Err(err) = declared.field.accept(text, target) {
                self.reject(Direction::Inbound, place, Reason::Decode(err));
            }
        }
        for declared in &inner.headers_out {
            if !inner.headers_in.iter().any(|h| h.name == declared.name)
                && headers.contains_key(&declared.name)
            {
                self.reject(
                    Direction::Inbound,
                    Place::Header(declared.label),
                    Reason::OutboundOnly,
                );
            }
        }
        if inner.members_in.is_empty() && inner.members_out.is_empty() && !inner.relay {
            return;
        }
        let values = headers.get_all(BAGGAGE);
        if values.iter().next().is_none() {
            return;
        }

        let mut found = Small::<Found<'_>, 4>::filled(inner.members_in.len());
        let mut pass = PassOn::default();
        let (mut members, mut malformed, mut loose) = (0, 0, 0);
        let mut reader = Reader::new(values.iter().map(HeaderValue::as_bytes));
        for item in reader.by_ref() {
            let (key, member) = match item {
                Item::Member(member) => {
                    members += 1;
                    (member.key, Some(member))
                }
                Item::Malformed { key } => {
                    malformed += 1;
                    let Some(key) = key else { continue };
                    (key, None)
                }
            };
            // A name spelt with escapes counts as the name it decodes to,
            // but a value under it is never taken.
            let name = baggage::name(key);
            let spelt = matches!(name, Cow::Owned(_));
            if let Some(i) = inner
                .members_in
                .iter()
                .position(|declared| baggage::same(declared.name.as_bytes(), &name))
            {
                let found = &mut found.as_mut_slice()[i];
                *found = match (*found, member.filter(|_| !spelt)) {
                    (Found::Absent, Some(member)) => Found::Once(member.value),
                    (Found::Absent, None) => Found::Broken,
                    _ => Found::Twice,
                };
            } else if let Some(declared) = inner
                .members_out
                .iter()
                .find(|declared| baggage::same(declared.name.as_bytes(), &name))
            {
                self.reject(
                    Direction::Inbound,
                    Place::Member(declared.name),
                    Reason::OutboundOnly,
                );
            } else if let Some(member) = member.filter(|_| inner.relay) {
                if member.strict {
                    pass.push(member.key, member.raw);
                } else {
                    // Readable, but not fit to pass on as it is.
                    loose += 1;
                }
            }
        }
        let truncated = reader.truncated();

        for (declared, &found) in inner.members_in.iter().zip(found.as_slice()) {
            let place = Place::Member(declared.name);
            match found {
                Found::Absent | Found::Broken => {}
                Found::Twice => self.reject(Direction::Inbound, place, Reason::Ambiguous),
                Found::Once(value) => {
                    if let Err(err) = declared.field.accept(&baggage::decode(value), target) {
                        self.reject(Direction::Inbound, place, Reason::Decode(err));
                    }
                }
            }
        }
        if malformed + loose > 0 {
            self.reject(
                Direction::Inbound,
                Place::Baggage,
                Reason::Malformed {
                    members: malformed + loose,
                },
            );
        }
        if truncated {
            self.reject(Direction::Inbound, Place::Baggage, Reason::OverLimit);
        }
        if pass.len() > 0 {
            let mut iter = values.iter();
            let whole = match (iter.next(), iter.next()) {
                // The header is exactly its members joined by commas: no
                // white space or empty elements between them.
                (Some(only), None)
                    if pass.len() == members
                        && malformed == 0
                        && !truncated
                        && pass.bytes + pass.len() - 1 == only.len() =>
                {
                    Some(only)
                }
                _ => None,
            };
            let value = match whole {
                // Every member passes on as it came: share the header.
                Some(only) => Kept::Header(only.clone()),
                None => Kept::Copied(scratch::with(|_, joined| pass.joined(joined))),
            };
            target.set(
                &FORWARDED,
                Forwarded {
                    value,
                    members: pass.len(),
                    declared_by: inner.id,
                },
            );
        }
    }
}

/// The members to pass on, each name once (the first), as they came.
#[derive(Default)]
struct PassOn<'a> {
    members: Small<&'a [u8], 8>,
    bytes: usize,
}

impl<'a> PassOn<'a> {
    fn len(&self) -> usize {
        self.members.as_slice().len()
    }

    fn push(&mut self, key: &[u8], raw: &'a [u8]) {
        let named = |other: &&[u8]| {
            other.starts_with(key) && matches!(other.get(key.len()), Some(b'=' | b' ' | b'\t'))
        };
        if !self.members.as_slice().iter().any(named) {
            self.members.push(raw);
            self.bytes += raw.len();
        }
    }

    fn joined(&self, text: &mut Vec<u8>) -> Arc<[u8]> {
        for (i, raw) in self.members.as_slice().iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            text.extend_from_slice(raw);
        }
        Arc::from(&text[..])
    }
}

impl SeedRoot for Propagation {
    fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
        self.extract_into(&parts.headers, &mut Target::Root(root));
    }
}
