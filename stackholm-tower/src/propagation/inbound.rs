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

/// Incoming `baggage`, within the limits: usually the request's own header
/// value, shared rather than copied. Which members go out is decided when a
/// request is made.
#[derive(Debug, Clone)]
pub(crate) struct Forwarded(pub(crate) HeaderValue);

/// Where a declared member was found.
#[derive(Clone, Copy)]
enum Found<'a> {
    Absent,
    Once(&'a str),
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
        let (mut malformed, mut undeclared) = (0, false);
        let mut reader = Reader::new(values.iter().map(HeaderValue::as_bytes));
        for item in reader.by_ref() {
            let Item::Member(member) = item else {
                malformed += 1;
                continue;
            };
            match inner
                .members_in
                .iter()
                .position(|declared| declared.name == member.key)
            {
                Some(i) => {
                    found[i] = match found[i] {
                        Found::Absent => Found::Once(member.value),
                        Found::Once(_) | Found::Twice => Found::Twice,
                    }
                }
                None => match inner
                    .members_out
                    .iter()
                    .find(|declared| declared.name == member.key)
                {
                    Some(declared) => self.reject(
                        Direction::Inbound,
                        Place::Member(declared.name),
                        Reason::OutboundOnly,
                    ),
                    None => undeclared |= member.strict,
                },
            }
        }
        let truncated = reader.truncated();

        for (declared, found) in inner.members_in.iter().zip(found) {
            let place = Place::Member(declared.name);
            match found {
                Found::Absent => {}
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
        if inner.forward && undeclared {
            if let Some(forwarded) = forwarded(&values, truncated) {
                target.set(&FORWARDED, Forwarded(forwarded));
            }
        }
    }
}

/// The incoming baggage to keep for passing on: the one header value as it
/// is (a reference count, no copy), or, when there are several or some
/// were over the limits, a copy of the members within them.
fn forwarded(
    values: &http::header::GetAll<'_, HeaderValue>,
    truncated: bool,
) -> Option<HeaderValue> {
    let mut iter = values.iter();
    let first = iter.next()?;
    if iter.next().is_none() && !truncated {
        return Some(first.clone());
    }
    let mut joined = String::new();
    for item in Reader::new(values.iter().map(HeaderValue::as_bytes)) {
        if let Item::Member(member) = item {
            if member.strict {
                if !joined.is_empty() {
                    joined.push(',');
                }
                joined.push_str(member.raw);
            }
        }
    }
    HeaderValue::try_from(joined).ok()
}

impl SeedRoot for Propagation {
    fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
        self.extract_into(&parts.headers, &mut Target::Root(root));
    }
}
