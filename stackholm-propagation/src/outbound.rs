//! Outgoing requests and messages: the current context's declared values
//! into headers and `baggage`.

use std::borrow::Cow;

use super::baggage::{self, Item, Names, Reader};
use super::carrier::Injector;
use super::inbound::FORWARDED;
use super::scratch;
use super::{Direction, Place, Propagation, Reason};

/// The `baggage` header being written: members in order, their names to
/// keep each name once, within the limits.
struct Writer<'a> {
    text: Vec<u8>,
    names: Names<'a>,
    count: usize,
    dropped: bool,
    /// Members not written for a name written before them.
    repeated: usize,
}

impl<'a> Writer<'a> {
    fn new(text: Vec<u8>) -> Self {
        Self {
            text,
            names: Names::default(),
            count: 0,
            dropped: false,
            repeated: 0,
        }
    }

    /// Whether a member of `name` (as [`baggage::name`] gives it), or of a
    /// spelling of it, was written.
    fn has(&self, name: &[u8]) -> bool {
        self.names.contains(name)
    }

    /// Whether `members` more members of `len` bytes in all fit.
    fn fits(&mut self, members: usize, len: usize) -> bool {
        let separator = usize::from(self.count > 0);
        let fits = self.count + members <= baggage::MAX_MEMBERS
            && self.text.len() + separator + len <= baggage::MAX_BYTES;
        self.dropped |= !fits;
        fits
    }

    /// Starts a member of `len` bytes named `name` (as [`baggage::name`]
    /// gives it), if it fits; the caller then appends exactly those bytes.
    fn start(&mut self, name: Cow<'a, [u8]>, len: usize) -> bool {
        if !self.fits(1, len) {
            return false;
        }
        if self.count > 0 {
            self.text.push(b',');
        }
        self.names.insert(name);
        self.count += 1;
        true
    }

    /// Appends the member `name`, a declared name (its own spelling: a
    /// token without `%`), its value percent-encoded, if it fits: written
    /// first and taken back if not, the encoded length being known only
    /// once written.
    fn push_encoded(&mut self, name: &'a [u8], value: &str) {
        let mark = self.text.len();
        if self.count > 0 {
            self.text.push(b',');
        }
        self.text.extend_from_slice(name);
        self.text.push(b'=');
        baggage::encode_into(value, &mut self.text);
        if self.count == baggage::MAX_MEMBERS || self.text.len() > baggage::MAX_BYTES {
            self.text.truncate(mark);
            self.dropped = true;
            return;
        }
        self.names.insert(Cow::Borrowed(name));
        self.count += 1;
    }

    /// Appends the member `raw`, named `key`, unless a member of its name
    /// was written.
    fn push_raw(&mut self, key: &'a [u8], raw: &[u8]) {
        let name = baggage::name(key);
        if self.has(&name) {
            self.repeated += 1;
        } else if self.start(name, raw.len()) {
            self.text.extend_from_slice(raw);
        }
    }

    /// Appends members already filtered against every name written so
    /// far, if they all fit; nothing is written after them.
    fn push_all(&mut self, members: usize, text: &[u8]) -> bool {
        if !self.fits(members, text.len()) {
            return false;
        }
        if self.count > 0 {
            self.text.push(b',');
        }
        self.text.extend_from_slice(text);
        self.count += members;
        true
    }
}

impl Propagation {
    /// Writes the current context's declared outbound values into
    /// `carrier`, with the incoming baggage this service passes on: call it
    /// on an outgoing request's headers (reqwest's, say) or a message's
    /// before sending. `stackholm-tower`'s `PropagateLayer` does this for
    /// tower clients.
    ///
    /// The context is read now, from the storage of
    /// [`storage`](Self::storage): in a handler, in a nested checkpoint, or
    /// in spawned work (which sees inherited keys only). A header already
    /// in `carrier` is left as it is, and so are the `baggage` members
    /// already there that follow the grammar (the others are dropped and
    /// told to [`on_reject`](Self::on_reject)): what the call site set wins
    /// over the context. (With no member declared outbound and no
    /// [`relay`](Self::relay), `baggage` is not touched.)
    ///
    /// ```
    /// use stackholm::{Key, DEFAULT};
    /// use stackholm_propagation::{Direction, Propagation};
    ///
    /// static TENANT: Key<String> = Key::new("tenant");
    ///
    /// let propagation = Propagation::new().member("tenant", &TENANT, Direction::Outbound);
    /// let _guard = DEFAULT.enter();
    /// DEFAULT.set(&TENANT, "acme inc".to_owned()).unwrap();
    ///
    /// let mut headers = std::collections::HashMap::new();
    /// propagation.inject(&mut headers);
    /// assert_eq!(headers["baggage"], "tenant=acme%20inc");
    /// ```
    pub fn inject(&self, carrier: &mut impl Injector) {
        scratch::with(|text, bytes| self.inject_with(carrier, text, bytes));
    }

    fn inject_with(&self, carrier: &mut impl Injector, text: &mut String, bytes: &mut Vec<u8>) {
        let inner = &*self.inner;
        // A new request's or message's carrier is often empty, and then
        // there is nothing to look up.
        let fresh = carrier.names().next().is_none();
        for declared in &inner.headers_out {
            if !fresh && carrier.get_all(&declared.name).next().is_some() {
                continue;
            }
            text.clear();
            if !declared.field.write(inner.storage, text) {
                continue;
            }
            let place = Place::Header(declared.name.as_str());
            if text.len() > baggage::MAX_BYTES {
                self.reject(Direction::Outbound, place, Reason::TooLong);
            } else if is_header_value(text) {
                carrier.set(&declared.name, text.clone());
            } else {
                self.reject(Direction::Outbound, place, Reason::NotHeaderValue);
            }
        }
        if inner.members_out.is_empty() && !inner.relay {
            return;
        }

        let mut forwarded = None;
        let mut writer = Writer::new(std::mem::take(bytes));

        let mut malformed = 0;
        let mut present = false;
        let mut reader = Reader::new(
            (!fresh)
                .then(|| carrier.get_all(&inner.baggage))
                .into_iter()
                .flatten()
                .inspect(|_| present = true),
        );
        for item in reader.by_ref() {
            match item {
                Item::Member(member) if member.strict => writer.push_raw(member.key, member.raw),
                Item::Member(_) | Item::Malformed { .. } => malformed += 1,
            }
        }
        writer.dropped |= reader.truncated();
        drop(reader);
        if malformed > 0 {
            self.reject(
                Direction::Outbound,
                Place::Baggage,
                Reason::Malformed { members: malformed },
            );
        }

        for declared in &inner.members_out {
            if writer.has(declared.name.as_bytes()) {
                continue;
            }
            text.clear();
            if !declared.field.write(inner.storage, text) {
                continue;
            }
            writer.push_encoded(declared.name.as_bytes(), text);
        }

        if inner.relay {
            // Members filtered by these very declarations, with nothing on
            // the request before them, go out as they are.
            let done = !present
                && inner.storage.with(&FORWARDED, |kept| match kept {
                    None => true,
                    Some(kept) if kept.declared_by == inner.id => {
                        writer.push_all(kept.members, &kept.value)
                    }
                    Some(_) => false,
                });
            if !done {
                forwarded = inner.storage.get(&FORWARDED);
            }
        }
        if let Some(forwarded) = &forwarded {
            for item in Reader::new(std::iter::once(&forwarded.value[..])) {
                if let Item::Member(member) = item {
                    if !self.declares_member(member.key) {
                        writer.push_raw(member.key, member.raw);
                    }
                }
            }
        }

        if writer.repeated > 0 {
            self.reject(
                Direction::Outbound,
                Place::Baggage,
                Reason::Repeated {
                    members: writer.repeated,
                },
            );
        }
        if writer.dropped {
            self.reject(Direction::Outbound, Place::Baggage, Reason::OverLimit);
        }
        // What is written borrows nothing of the carrier's: it may change.
        let Writer {
            text: written,
            count,
            names,
            ..
        } = writer;
        drop(names);
        if count > 0 {
            // Every member written is visible ASCII, spaces and tabs inside
            // at most: text, and a header value.
            if let Ok(text) = std::str::from_utf8(&written) {
                carrier.set(&inner.baggage, text.to_owned());
            }
        } else if present {
            carrier.remove(&inner.baggage);
        }
        *bytes = written;
    }
}

/// Whether `text` arrives exactly so as a header value: visible ASCII,
/// spaces and tabs inside only. Bytes beyond ASCII could not be read as
/// text by the next service, and white space at either end is trimmed by
/// HTTP on the way in.
fn is_header_value(text: &str) -> bool {
    let outer = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    let bytes = text.as_bytes();
    baggage::is_field_text(bytes) && !outer(bytes.first()) && !outer(bytes.last())
}
