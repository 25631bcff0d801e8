//! Outgoing requests: the current context's declared values into headers
//! and `baggage`, by a function or a tower layer.

use std::task::{Context, Poll};

use http::header::Entry;
use http::{HeaderMap, HeaderValue, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::baggage::{self, Item, Reader};
use super::inbound::FORWARDED;
use super::scratch;
use super::small::Small;
use super::{Direction, Place, Propagation, Reason, BAGGAGE};

/// The `baggage` header being written: members in order, their names to
/// keep each name once, within the limits.
struct Writer<'a> {
    text: Vec<u8>,
    names: Small<&'a [u8], 8>,
    count: usize,
    dropped: bool,
}

impl<'a> Writer<'a> {
    fn new(text: Vec<u8>) -> Self {
        Self {
            text,
            names: Small::default(),
            count: 0,
            dropped: false,
        }
    }

    fn has(&self, name: &[u8]) -> bool {
        self.names
            .as_slice()
            .iter()
            .any(|other| baggage::same(other, name))
    }

    /// Whether `members` more members of `len` bytes in all fit.
    fn fits(&mut self, members: usize, len: usize) -> bool {
        let separator = usize::from(self.count > 0);
        let fits = self.count + members <= baggage::MAX_MEMBERS
            && self.text.len() + separator + len <= baggage::MAX_BYTES;
        self.dropped |= !fits;
        fits
    }

    /// Starts a member of `len` bytes named `name`, if it fits; the caller
    /// then appends exactly those bytes.
    fn start(&mut self, name: &'a [u8], len: usize) -> bool {
        if !self.fits(1, len) {
            return false;
        }
        if self.count > 0 {
            self.text.push(b',');
        }
        self.names.push(name);
        self.count += 1;
        true
    }

    /// Appends the member `name`, its value percent-encoded, if it fits:
    /// written first and taken back if not, the encoded length being known
    /// only once written.
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
        self.names.push(name);
        self.count += 1;
    }

    fn push_raw(&mut self, name: &'a [u8], raw: &[u8]) {
        if !self.has(name) && self.start(name, raw.len()) {
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
    /// `headers`, with the incoming baggage this service passes on: for
    /// clients that are not tower services (reqwest, say), call it on the
    /// request's headers before sending. [`PropagateLayer`] does this for
    /// tower clients.
    ///
    /// The context is read now, from the storage of
    /// [`storage`](Self::storage): in a handler, in a nested checkpoint, or
    /// in spawned work (which sees inherited keys only). A header already
    /// on the request is left as it is, and so are the `baggage` members
    /// already there that follow the grammar (the others are dropped and
    /// told to [`on_reject`](Self::on_reject)): what the call site set wins
    /// over the context. (With no member declared outbound and no
    /// [`relay`](Self::relay), `baggage` is not touched.)
    ///
    /// ```
    /// use stackholm::{Key, DEFAULT};
    /// use stackholm_tower::propagation::{Direction, Propagation};
    ///
    /// static TENANT: Key<String> = Key::new("tenant");
    ///
    /// let propagation = Propagation::new().member("tenant", &TENANT, Direction::Outbound);
    /// let _guard = DEFAULT.enter();
    /// DEFAULT.set(&TENANT, "acme inc".to_owned()).unwrap();
    ///
    /// let mut headers = http::HeaderMap::new();
    /// propagation.inject(&mut headers);
    /// assert_eq!(headers["baggage"], "tenant=acme%20inc");
    /// ```
    pub fn inject(&self, headers: &mut HeaderMap) {
        scratch::with(|text, bytes| self.inject_with(headers, text, bytes));
    }

    fn inject_with(&self, headers: &mut HeaderMap, text: &mut String, bytes: &mut Vec<u8>) {
        let inner = &*self.inner;
        // Before the headers below: a new request's map is often empty,
        // and then there is nothing to look up.
        let present: Vec<HeaderValue> = if headers.is_empty() {
            Vec::new()
        } else {
            headers.get_all(BAGGAGE).iter().cloned().collect()
        };
        for declared in &inner.headers_out {
            let Entry::Vacant(entry) = headers.entry(&declared.name) else {
                continue;
            };
            text.clear();
            if !declared.field.write(inner.storage, text) {
                continue;
            }
            match exact_header_value(text) {
                Some(value) => {
                    entry.insert(value);
                }
                None => self.reject(
                    Direction::Outbound,
                    Place::Header(declared.label),
                    Reason::NotHeaderValue,
                ),
            }
        }
        if inner.members_out.is_empty() && !inner.relay {
            return;
        }

        let mut forwarded = None;
        let mut writer = Writer::new(std::mem::take(bytes));

        let mut malformed = 0;
        let mut reader = Reader::new(present.iter().map(HeaderValue::as_bytes));
        for item in reader.by_ref() {
            match item {
                Item::Member(member) if member.strict => writer.push_raw(member.key, member.raw),
                Item::Member(_) | Item::Malformed { .. } => malformed += 1,
            }
        }
        writer.dropped |= reader.truncated();
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
            let done = present.is_empty()
                && inner.storage.with(&FORWARDED, |kept| match kept {
                    None => true,
                    Some(kept) if kept.declared_by == inner.id => {
                        writer.push_all(kept.members, kept.value.as_bytes())
                    }
                    Some(_) => false,
                });
            if !done {
                forwarded = inner.storage.get(&FORWARDED);
            }
        }
        if let Some(forwarded) = &forwarded {
            for item in Reader::new(std::iter::once(forwarded.value.as_bytes())) {
                if let Item::Member(member) = item {
                    if !self.declares_member(member.key) {
                        writer.push_raw(member.key, member.raw);
                    }
                }
            }
        }

        if writer.dropped {
            self.reject(Direction::Outbound, Place::Baggage, Reason::OverLimit);
        }
        if !present.is_empty() {
            headers.remove(BAGGAGE);
        }
        if writer.count > 0 {
            // Every member written is visible ASCII, spaces and tabs inside
            // at most, so this always converts.
            if let Ok(value) = HeaderValue::from_bytes(&writer.text) {
                headers.insert(BAGGAGE, value);
            }
        }
        *bytes = writer.text;
    }
}

/// `text` as a header value, if it arrives exactly so. `from_str` lets
/// bytes beyond ASCII through, which the next service could not read as
/// text, and white space at either end, which HTTP trims on the way in.
fn exact_header_value(text: &str) -> Option<HeaderValue> {
    let outer = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    let bytes = text.as_bytes();
    if !text.is_ascii() || outer(bytes.first()) || outer(bytes.last()) {
        return None;
    }
    HeaderValue::from_str(text).ok()
}

/// Writes the caller's context into every outgoing request: see
/// [`Propagation::inject`], which it calls from the service's `call`, so
/// the context is the one current when the request is handed to the client.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use stackholm::{Checkpoint, CheckpointExt, Key};
/// use stackholm_tower::propagation::{Direction, PropagateLayer, Propagation};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// static REQUEST_ID: Key<String> = Key::new("request_id");
///
/// let propagation = Propagation::new().header("x-request-id", &REQUEST_ID, Direction::Outbound);
/// // In a real service the client is hyper-util's `Client`; this one echoes.
/// let client = ServiceBuilder::new()
///     .layer(PropagateLayer::new(propagation))
///     .service(service_fn(|request: http::Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(request.headers()["x-request-id"].clone())
///     }));
///
/// // `oneshot` calls the client when first polled: the context is read
/// // then, inside the checkpoint.
/// let checkpoint = Checkpoint::new().with_value(&REQUEST_ID, "r-7".to_owned());
/// let echoed = client.oneshot(http::Request::new(())).in_checkpoint(checkpoint).await;
/// assert_eq!(echoed.unwrap(), "r-7");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PropagateLayer {
    propagation: Propagation,
}

impl PropagateLayer {
    /// A layer writing `propagation`'s outbound keys into requests.
    #[must_use]
    pub fn new(propagation: Propagation) -> Self {
        Self { propagation }
    }
}

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Propagate {
            inner,
            propagation: self.propagation.clone(),
        }
    }
}

/// The service made by [`PropagateLayer`].
#[derive(Debug, Clone)]
pub struct Propagate<S> {
    inner: S,
    propagation: Propagation,
}

impl<S> Propagate<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, taken out.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.propagation.inject(request.headers_mut());
        self.inner.call(request)
    }
}
