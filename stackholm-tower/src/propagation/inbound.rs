//! Incoming requests: declared values into the root checkpoint, undeclared
//! baggage kept to be passed on.

use http::request::Parts;
use http::{HeaderMap, HeaderValue};
use stackholm::{Checkpoint, Key};

use super::baggage::{self, Item, Reader};
use super::field::Target;
use super::{Direction, Place, Propagation, Reason, BAGGAGE};
use crate::layer::{Root, SeedRoot};

/// The baggage members of the incoming request that this service passes
/// on: inherited, so that spawned work passes them on too.
pub(crate) static FORWARDED: Key<Forwarded> = Key::new("stackholm.baggage").inherited();

/// The incoming `baggage` members to pass on, within the limits, each name
/// once and none this service declares: the request's own header value
/// when all of its members pass (shared, not copied), else a copy of those
/// that do.
#[derive(Debug, Clone)]
pub(crate) struct Forwarded {
    pub(crate) value: HeaderValue,
    pub(crate) members: usize,
    /// The [`Propagation`] whose declarations filtered the members: another
    /// one filters them again by its own.
    pub(crate) declared_by: u64,
}

/// Where a declared member was found.
#[derive(Clone, Copy)]
enum Found<'a> {
    Absent,
    Once(&'a str),
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
            if headers.contains_key(&declared.name)
                && !inner.headers_in.iter().any(|h| h.name == declared.name)
            {
                self.reject(
                    Direction::Inbound,
                    Place::Header(declared.label),
                    Reason::OutboundOnly,
                );
            }
        }
        if inner.members_in.is_empty() && inner.members_out.is_empty() && !inner.forward {
            return;
        }
        let values = headers.get_all(BAGGAGE);
        if values.iter().next().is_none() {
            return;
        }

        let mut found = [Found::Absent; baggage::MAX_MEMBERS];
        let mut pass = PassOn::default();
        let (mut members, mut malformed) = (0, 0);
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
            if let Some(i) = inner
                .members_in
                .iter()
                .position(|declared| declared.name == key)
            {
                found[i] = match (found[i], member) {
                    (Found::Absent, Some(member)) => Found::Once(member.value),
                    (Found::Absent, None) => Found::Broken,
                    _ => Found::Twice,
                };
            } else if let Some(declared) = inner
                .members_out
                .iter()
                .find(|declared| declared.name == key)
            {
                self.reject(
                    Direction::Inbound,
                    Place::Member(declared.name),
                    Reason::OutboundOnly,
                );
            } else if let Some(member) = member.filter(|member| inner.forward && member.strict) {
                pass.push(member.key, member.raw);
            }
        }
        let truncated = reader.truncated();

        for (declared, found) in inner.members_in.iter().zip(found) {
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
        if malformed > 0 {
            self.reject(
                Direction::Inbound,
                Place::Baggage,
                Reason::Malformed { members: malformed },
            );
        }
        if truncated {
            self.reject(Direction::Inbound, Place::Baggage, Reason::OverLimit);
        }
        if pass.count > 0 {
            let mut iter = values.iter();
            let whole = match (iter.next(), iter.next()) {
                (Some(only), None) if pass.count == members && malformed == 0 && !truncated => {
                    Some(only)
                }
                _ => None,
            };
            let value = match whole {
                // Every member passes on as it came: share the header.
                Some(only) => only.clone(),
                None => match HeaderValue::try_from(pass.joined()) {
                    Ok(value) => value,
                    Err(_) => return,
                },
            };
            target.set(
                &FORWARDED,
                Forwarded {
                    value,
                    members: pass.count,
                    declared_by: inner.id,
                },
            );
        }
    }
}

/// The members to pass on, each name once (the first), as they came.
struct PassOn<'a> {
    members: [(&'a str, &'a str); baggage::MAX_MEMBERS],
    count: usize,
}

impl Default for PassOn<'_> {
    fn default() -> Self {
        Self {
            members: [("", ""); baggage::MAX_MEMBERS],
            count: 0,
        }
    }
}

impl<'a> PassOn<'a> {
    fn push(&mut self, key: &'a str, raw: &'a str) {
        if self.members[..self.count]
            .iter()
            .all(|(other, _)| *other != key)
        {
            self.members[self.count] = (key, raw);
            self.count += 1;
        }
    }

    fn joined(&self) -> String {
        let members = &self.members[..self.count];
        let mut text = String::with_capacity(members.iter().map(|(_, raw)| raw.len() + 1).sum());
        for (i, (_, raw)) in members.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(raw);
        }
        text
    }
}

impl SeedRoot for Propagation {
    fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
        self.extract_into(&parts.headers, &mut Target::Root(root));
    }
}
