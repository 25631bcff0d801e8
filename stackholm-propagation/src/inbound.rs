//! Incoming requests: declared values into the root checkpoint, undeclared
//! baggage kept to be passed on.

use std::borrow::Cow;
use std::sync::Arc;

use stackholm::{Checkpoint, Error, Key, Storage};

use super::baggage::{self, Item, Names, Reader};
use super::carrier::Extractor;
use super::field::Target;
use super::scratch;
use super::small::Small;
use super::{Direction, Place, Propagation, Reason, Source};

/// The baggage members of the incoming request that this service passes
/// on: inherited, so that spawned work passes them on too.
pub(crate) static FORWARDED: Key<Forwarded> = Key::new("stackholm.baggage").inherited();

/// The incoming `baggage` members to pass on, within the limits, each name
/// once and none this service declares, joined by commas.
#[derive(Debug, Clone)]
pub(crate) struct Forwarded {
    pub(crate) value: Arc<[u8]>,
    pub(crate) members: usize,
    /// The [`Propagation`] whose declarations filtered the members: another
    /// one filters them again by its own.
    pub(crate) declared_by: u64,
}

/// Where a declared member was found.
#[derive(Clone, Copy, Default)]
enum Found<'a> {
    #[default]
    Absent,
    Once(&'a [u8]),
    /// Once, but malformed: not accepted.
    Broken,
    /// Once, under a spelling of its name: not accepted.
    Spelt,
    Twice,
}

impl Propagation {
    /// A checkpoint holding the declared inbound values of `carrier`, for
    /// servers that are not tower services (a queue consumer, say): enter
    /// it around the work done for that message, with
    /// [`Storage::scope`](stackholm::Storage::scope) say.
    ///
    /// ```
    /// use stackholm::{Key, DEFAULT};
    /// use stackholm_propagation::{Direction, Propagation};
    ///
    /// static TENANT: Key<String> = Key::new("tenant");
    ///
    /// let propagation = Propagation::new().member("tenant", &TENANT, Direction::Inbound);
    /// let headers = vec![("baggage".to_owned(), "tenant=acme%20inc".to_owned())];
    ///
    /// let _guard = DEFAULT.enter_with(propagation.extract(&headers));
    /// assert_eq!(DEFAULT.get(&TENANT).as_deref(), Some("acme inc"));
    /// ```
    #[must_use]
    pub fn extract<E: Extractor + ?Sized>(&self, carrier: &E) -> Checkpoint {
        let mut checkpoint = Checkpoint::new();
        self.extract_to(carrier, &mut Target::Checkpoint(&mut checkpoint));
        checkpoint
    }

    /// Sets the declared inbound values of `carrier` in the outermost
    /// checkpoint of `storage`'s current stack: for code that already runs
    /// in the scope of the request or message these headers came with, so
    /// that [`on_reject`](Self::on_reject) runs inside it too.
    /// [`StackholmLayer`'s seed](https://docs.rs/stackholm-tower) does this
    /// for tower services.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use stackholm::{Checkpoint, Key, DEFAULT};
    /// use stackholm_propagation::{Direction, Propagation};
    ///
    /// static REQUEST_ID: Key<String> = Key::new("request_id");
    ///
    /// let propagation = Propagation::new().header("x-request-id", &REQUEST_ID, Direction::Inbound);
    /// let message = HashMap::from([("X-Request-Id".to_owned(), "r-1".to_owned())]);
    ///
    /// DEFAULT.sync_scope(Checkpoint::new(), || {
    ///     propagation.extract_into(&message, DEFAULT)?;
    ///     assert_eq!(DEFAULT.get(&REQUEST_ID).as_deref(), Some("r-1"));
    ///     Ok::<(), stackholm::Error>(())
    /// })?;
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Storage::set_root`]: [`Error::NoCheckpoint`] where no
    /// checkpoint is active, [`Error::Busy`] inside a read of `storage`.
    /// The first error is returned once every value was tried.
    pub fn extract_into<E: Extractor + ?Sized>(
        &self,
        carrier: &E,
        storage: Storage,
    ) -> Result<(), Error> {
        let mut target = Target::Root(storage, None);
        self.extract_to(carrier, &mut target);
        match target {
            Target::Root(_, Some(failed)) => Err(failed),
            _ => Ok(()),
        }
    }

    fn extract_to<E: Extractor + ?Sized>(&self, carrier: &E, target: &mut Target<'_>) {
        let inner = &*self.inner;
        let mut taken = Taken(Small::filled(inner.inbound_keys.len()));
        for declared in &inner.headers_in {
            let mut values = carrier.get_all(&declared.name);
            let Some(value) = values.next() else { continue };
            let place = Place::Header(declared.name.as_str());
            if values.next().is_some() {
                self.reject(Direction::Inbound, place, Reason::Ambiguous);
                continue;
            }
            if value.len() > baggage::MAX_BYTES {
                self.reject(Direction::Inbound, place, Reason::TooLong);
                continue;
            }
            let Some(text) = header_text(value) else {
                self.reject(Direction::Inbound, place, Reason::NotText);
                continue;
            };
            if taken.outranks(declared.source) {
                continue;
            }
            match declared.field.accept(text, target) {
                Ok(()) => taken.take(declared.source),
                Err(err) => self.reject(Direction::Inbound, place, Reason::Decode(err)),
            }
        }
        for name in &inner.headers_out_only {
            if carrier.get_all(name).next().is_some() {
                self.reject(
                    Direction::Inbound,
                    Place::Header(name.as_str()),
                    Reason::OutboundOnly,
                );
            }
        }
        if inner.members_in.is_empty() && inner.members_out.is_empty() && !inner.relay {
            return;
        }
        let mut values = carrier.get_all(&inner.baggage).peekable();
        if values.peek().is_none() {
            return;
        }

        let mut found = Small::<Found<'_>, 4>::filled(inner.members_in.len());
        let mut pass = PassOn::default();
        let (mut malformed, mut loose) = (0, 0);
        let mut reader = Reader::new(values);
        for item in reader.by_ref() {
            let (key, member) = match item {
                Item::Member(member) => (member.key, Some(member)),
                Item::Malformed { key } => {
                    malformed += 1;
                    let Some(key) = key else { continue };
                    (key, None)
                }
            };
            // A name spelt so that readers who decode and trim names take
            // it for another counts as that name, but a value under it is
            // never taken.
            let name = baggage::name(key);
            let spelt = matches!(name, Cow::Owned(_));
            let listed = inner.may_declare(&name);
            let inbound = listed
                .then(|| {
                    inner
                        .members_in
                        .iter()
                        .position(|declared| baggage::same(declared.name.as_bytes(), &name))
                })
                .flatten();
            if let Some(i) = inbound {
                let found = &mut found.as_mut_slice()[i];
                *found = match (*found, member) {
                    (Found::Absent, Some(_)) if spelt => Found::Spelt,
                    (Found::Absent, Some(member)) => Found::Once(member.value),
                    (Found::Absent, None) => Found::Broken,
                    _ => Found::Twice,
                };
            } else if let Some(declared) = listed
                .then(|| {
                    inner
                        .members_out
                        .iter()
                        .find(|declared| baggage::same(declared.name.as_bytes(), &name))
                })
                .flatten()
            {
                self.reject(
                    Direction::Inbound,
                    Place::Member(declared.name),
                    Reason::OutboundOnly,
                );
            } else if let Some(member) = member.filter(|_| inner.relay) {
                if member.strict {
                    pass.push(name, member.raw);
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
                // A broken member is told with the others below.
                Found::Absent | Found::Broken => {}
                Found::Spelt => self.reject(Direction::Inbound, place, Reason::Spelling),
                Found::Twice => self.reject(Direction::Inbound, place, Reason::Ambiguous),
                Found::Once(_) if taken.outranks(declared.source) => {}
                Found::Once(value) => {
                    match declared.field.accept(&baggage::decode(value), target) {
                        Ok(()) => taken.take(declared.source),
                        Err(err) => self.reject(Direction::Inbound, place, Reason::Decode(err)),
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
        if pass.repeated > 0 {
            self.reject(
                Direction::Inbound,
                Place::Baggage,
                Reason::Repeated {
                    members: pass.repeated,
                },
            );
        }
        if truncated {
            self.reject(Direction::Inbound, Place::Baggage, Reason::OverLimit);
        }
        if pass.len() > 0 {
            target.set(
                &FORWARDED,
                Forwarded {
                    value: scratch::with(|_, joined| pass.joined(joined)),
                    members: pass.len(),
                    declared_by: inner.id,
                },
            );
        }
    }
}

/// A header's value as text: visible ASCII, spaces and tabs, as HTTP
/// allows in a value; anything else is not taken.
fn header_text(value: &[u8]) -> Option<&str> {
    if baggage::is_field_text(value) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// The rank of the source each inbound key took its value from, 0 while
/// it has none. Headers are read before baggage whatever the order the
/// sources were declared in: a value from a source declared earlier
/// replaces one taken from a later one.
struct Taken(Small<u32, 8>);

impl Taken {
    /// Whether the key of `source` has its value from a source declared
    /// before it, which wins.
    #[inline]
    fn outranks(&self, source: Source) -> bool {
        let rank = self.0.as_slice()[source.key];
        rank != 0 && rank < source.rank
    }

    #[inline]
    fn take(&mut self, source: Source) {
        self.0.as_mut_slice()[source.key] = source.rank;
    }
}

/// The members to pass on, each name once (the first), as they came.
#[derive(Default)]
struct PassOn<'a> {
    members: Small<&'a [u8], 8>,
    names: Names<'a>,
    /// Members dropped for a name given before them.
    repeated: usize,
}

impl<'a> PassOn<'a> {
    fn len(&self) -> usize {
        self.members.as_slice().len()
    }

    /// Keeps the member `raw`, whose name reads as `name`, unless a member
    /// of that name was kept already.
    fn push(&mut self, name: Cow<'a, [u8]>, raw: &'a [u8]) {
        if self.names.contains(&name) {
            self.repeated += 1;
        } else {
            self.names.insert(name);
            self.members.push(raw);
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
