//! Context across services: declared [`stackholm`] keys in and out of
//! headers and the W3C `baggage` header, over any carrier: HTTP headers,
//! gRPC metadata, a message's header map.
//!
//! A [`Propagation`] lists the keys that cross this service's boundary,
//! each with its wire name and its [`Direction`]. Nothing undeclared is ever
//! read from a carrier or written to one. [`extract`](Propagation::extract)
//! reads a checkpoint from incoming headers, to run the work they came
//! with in; [`inject`](Propagation::inject) writes the current context
//! into outgoing ones. Carriers are anything [`Extractor`] and [`Injector`]
//! are implemented for: maps and lists of `String` pairs here,
//! `http::HeaderMap` with the `http` feature. For tower and axum,
//! `stackholm-tower` seeds each request from a `Propagation` and writes
//! outgoing requests through a layer.
//!
//! A message consumer, its messages' headers a map:
//!
//! ```
//! use std::collections::HashMap;
//! use stackholm::{Key, DEFAULT};
//! use stackholm_propagation::{Direction, Propagation};
//!
//! static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
//! static TENANT: Key<String> = Key::new("tenant").inherited();
//!
//! let propagation = Propagation::new()
//!     .header("x-request-id", &REQUEST_ID, Direction::Both)
//!     .member("tenant", &TENANT, Direction::Both);
//!
//! let incoming = HashMap::from([
//!     ("X-Request-Id".to_owned(), "r-1".to_owned()),
//!     // `role`, declared nowhere here, is not taken in or passed on.
//!     ("baggage".to_owned(), "tenant=acme%20inc,role=admin".to_owned()),
//! ]);
//!
//! let outgoing = DEFAULT.sync_scope(propagation.extract(&incoming), || {
//!     assert_eq!(DEFAULT.get(&TENANT).as_deref(), Some("acme inc"));
//!     // The message this one leads to carries the context on.
//!     let mut headers = Vec::new();
//!     propagation.inject(&mut headers);
//!     headers
//! });
//! assert_eq!(
//!     outgoing,
//!     [
//!         ("x-request-id".to_owned(), "r-1".to_owned()),
//!         ("baggage".to_owned(), "tenant=acme%20inc".to_owned()),
//!     ]
//! );
//! ```
//!
//! # Baggage
//!
//! Values are percent-encoded on the way out and decoded on the way in.
//! A service passes on nothing it did not declare: a member a client made
//! up stops at the first service that has no use for it. A service in the
//! middle of a trusted mesh that should pass on what it does not know says
//! so with [`Propagation::relay`]: members it did not declare then go
//! unchanged, properties included, to the requests it makes while handling
//! the request that brought them.
//!
//! Names are compared as readers that decode them see them: percent-decoded
//! and trimmed of white space and control characters, as OpenTelemetry's
//! reader does before it keeps the last copy of a name. So `no%74e` and
//! `note%09` are spellings of `note`. A name this service declares is its
//! own: a member under a spelling of it is never taken (and told), one
//! under it and another under a spelling of it are ambiguous, and neither
//! is ever passed on: it is sent only from the context. A relay passes
//! each name on once, the first of its spellings. No name is written
//! twice: a member already on the outgoing request wins, then the
//! context's value, then one passed on. What is written always follows the
//! grammar: members that do not are not passed on.
//!
//! The limits are the specification's: at most 64 members and 8192 bytes
//! (white space and empty elements included) are read from a request and
//! written to one; members beyond them are dropped whole, never cut, and
//! reading stops there, so a hostile header costs bounded time and memory.
//! A declared header's value is bounded alike, at 8192 bytes.
//!
//! Nothing here fails a request. Every piece dropped is told to the
//! [`on_reject`](Propagation::on_reject) hook, saying what was dropped and
//! what was kept: a declared value that does not decode, is too long,
//! comes twice, under a spelling or the wrong way; members that break the
//! grammar or the limits, or repeat a name; a value that cannot be written.
//! Members an edge does not declare are not passed on by design, and not
//! told.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod baggage;
mod carrier;
mod codec;
mod field;
mod inbound;
mod outbound;
mod reject;
mod scratch;
mod small;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use stackholm::{Key, Storage, DEFAULT};

pub use carrier::{Extractor, Injector, Name};
pub use codec::{BoxError, Codec, Text};
pub use reject::{Direction, Place, Reason, Rejection};

use field::{Field, Typed};

/// The name of the W3C Baggage header.
pub const BAGGAGE: &str = "baggage";

type RejectHook = dyn Fn(&Rejection) + Send + Sync;

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The keys that cross this service's boundary, and how: see the
/// [module docs](self).
///
/// Cloning is cheap: the declarations are shared.
#[derive(Clone)]
pub struct Propagation {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    /// Tells these declarations apart from any other, changed ones
    /// included: see `Forwarded::declared_by`.
    id: u64,
    storage: Storage,
    /// [`BAGGAGE`], made once.
    baggage: Name,
    headers_in: Vec<HeaderField>,
    headers_out: Vec<HeaderField>,
    /// The headers declared outbound and not inbound: made once, for
    /// telling a request that names one.
    headers_out_only: Vec<Name>,
    /// The keys declared inbound, each once, by address: a key may come in
    /// from several sources.
    inbound_keys: Vec<usize>,
    /// How many inbound declarations were made: the next one's rank.
    inbound_sources: u32,
    members_in: Vec<MemberField>,
    members_out: Vec<MemberField>,
    /// The [`baggage::bit`]s of the members declared either way: a member
    /// whose bit is clear is not declared, without a search.
    member_bits: u64,
    relay: bool,
    on_reject: Option<Arc<RejectHook>>,
}

impl Inner {
    /// Whether `name` (as [`baggage::name`] gives it) may be a member
    /// declared either way: `false` tells an undeclared name, as most are,
    /// without a search.
    #[inline]
    fn may_declare(&self, name: &[u8]) -> bool {
        self.member_bits & baggage::bit(name) != 0
    }
}

#[derive(Clone)]
struct HeaderField {
    name: Name,
    field: Arc<dyn Field>,
    source: Source,
}

#[derive(Clone)]
struct MemberField {
    name: &'static str,
    field: Arc<dyn Field>,
    source: Source,
}

/// Which key an inbound declaration sets, as an index into
/// `Inner::inbound_keys`, and its precedence among that key's sources:
/// the lower `rank`, declared earlier, wins.
#[derive(Clone, Copy, Default)]
struct Source {
    key: usize,
    rank: u32,
}

impl Propagation {
    /// Declares nothing: nothing is read from or written to headers.
    ///
    /// Outgoing requests read the context of [`DEFAULT`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                id: next_id(),
                storage: DEFAULT,
                baggage: Name::new(BAGGAGE),
                headers_in: Vec::new(),
                headers_out: Vec::new(),
                headers_out_only: Vec::new(),
                inbound_keys: Vec::new(),
                inbound_sources: 0,
                members_in: Vec::new(),
                members_out: Vec::new(),
                member_bits: 0,
                relay: false,
                on_reject: None,
            }),
        }
    }

    /// Reads the context of outgoing requests from `storage` instead of
    /// [`DEFAULT`]. (Incoming values go where the caller puts them: the
    /// checkpoint [`extract`](Self::extract) returns, the storage given to
    /// [`extract_into`](Self::extract_into).)
    #[must_use]
    pub fn storage(mut self, storage: Storage) -> Self {
        self.inner_mut().storage = storage;
        self
    }

    /// Declares `key` as a header of its own, `name` (such as
    /// `x-request-id`), with the [`Text`] codec.
    ///
    /// Header values are visible ASCII, with no white space at either end
    /// (HTTP trims it), and at most 8,192 bytes: a value that is not is
    /// skipped on the way in and out, never sent altered, and told to
    /// [`on_reject`](Self::on_reject). Use [`member`](Self::member) for free
    /// text. The name is matched ignoring ASCII case in every carrier, and
    /// written as given (lowercase in HTTP's headers).
    ///
    /// A key may come in from several places, a header and a baggage member
    /// say: the first declared that gives a value wins, and one that gives
    /// none (absent, or rejected) leaves the next its turn.
    ///
    /// ```
    /// use stackholm::{Key, DEFAULT};
    /// use stackholm_propagation::{Direction, Propagation};
    ///
    /// static TENANT: Key<String> = Key::new("tenant");
    ///
    /// // A public header first, then the mesh's baggage.
    /// let propagation = Propagation::new()
    ///     .header("x-tenant", &TENANT, Direction::Inbound)
    ///     .member("tenant", &TENANT, Direction::Inbound);
    /// let read = |headers: &[(&str, &str)]| {
    ///     let headers: Vec<(String, String)> =
    ///         headers.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect();
    ///     DEFAULT.sync_scope(propagation.extract(&headers), || DEFAULT.get(&TENANT))
    /// };
    /// let both = read(&[("x-tenant", "acme"), ("baggage", "tenant=globex")]);
    /// assert_eq!(both.as_deref(), Some("acme"));
    /// let baggage_only = read(&[("baggage", "tenant=globex")]);
    /// assert_eq!(baggage_only.as_deref(), Some("globex"));
    /// ```
    ///
    /// # Panics
    ///
    /// If `name` is not a token (RFC 9110), is `baggage`, or is already
    /// declared in that direction.
    #[must_use]
    #[track_caller]
    pub fn header<T>(self, name: &'static str, key: &'static Key<T>, direction: Direction) -> Self
    where
        T: std::str::FromStr + fmt::Display + Send + Sync + 'static,
        T::Err: Into<BoxError>,
    {
        self.header_with(name, key, direction, Text)
    }

    /// [`header`](Self::header) with a codec of your own.
    ///
    /// # Panics
    ///
    /// As [`header`](Self::header).
    #[must_use]
    #[track_caller]
    pub fn header_with<T, C>(
        mut self,
        name: &'static str,
        key: &'static Key<T>,
        direction: Direction,
        codec: C,
    ) -> Self
    where
        T: Send + Sync + 'static,
        C: Codec<T>,
    {
        assert!(
            baggage::is_token(name.as_bytes()),
            "`{name}` cannot be declared as a header: it is not a token"
        );
        assert!(
            !name.eq_ignore_ascii_case(BAGGAGE),
            "declare baggage members with `Propagation::member`, not as a header"
        );
        let field: Arc<dyn Field> = Arc::new(Typed { key, codec });
        let source = self.source(direction, &*field);
        let declared = HeaderField {
            name: Name::new(name),
            field,
            source,
        };
        let inner = self.inner_mut();
        let lists = [
            (direction.inbound(), &mut inner.headers_in),
            (direction.outbound(), &mut inner.headers_out),
        ];
        add(
            lists,
            declared,
            |other| other.name.as_str().eq_ignore_ascii_case(name),
            ("header", name),
            usize::MAX,
        );
        inner.headers_out_only = inner
            .headers_out
            .iter()
            .filter(|out| {
                let name = out.name.as_str();
                !inner
                    .headers_in
                    .iter()
                    .any(|h| h.name.as_str().eq_ignore_ascii_case(name))
            })
            .map(|out| out.name.clone())
            .collect();
        self
    }

    /// Declares `key` as the member `name` of the `baggage` header, with
    /// the [`Text`] codec.
    ///
    /// # Panics
    ///
    /// If `name` is not a token (RFC 9110: letters, digits and
    /// ``!#$&'*+-.^_`|~``; `%` is one, but a name with escapes reads as
    /// another once decoded), or is already declared in that direction; or
    /// if a direction would have more than 64 members, which is all one
    /// request carries.
    #[must_use]
    #[track_caller]
    pub fn member<T>(self, name: &'static str, key: &'static Key<T>, direction: Direction) -> Self
    where
        T: std::str::FromStr + fmt::Display + Send + Sync + 'static,
        T::Err: Into<BoxError>,
    {
        self.member_with(name, key, direction, Text)
    }

    /// [`member`](Self::member) with a codec of your own.
    ///
    /// # Panics
    ///
    /// As [`member`](Self::member).
    #[must_use]
    #[track_caller]
    pub fn member_with<T, C>(
        mut self,
        name: &'static str,
        key: &'static Key<T>,
        direction: Direction,
        codec: C,
    ) -> Self
    where
        T: Send + Sync + 'static,
        C: Codec<T>,
    {
        assert!(
            baggage::is_token(name.as_bytes()) && !name.contains('%'),
            "`{name}` cannot be a baggage member's name: it is not a token without `%` \
             (a name with escapes reads as another once decoded)"
        );
        let field: Arc<dyn Field> = Arc::new(Typed { key, codec });
        let source = self.source(direction, &*field);
        let declared = MemberField {
            name,
            field,
            source,
        };
        let inner = self.inner_mut();
        let lists = [
            (direction.inbound(), &mut inner.members_in),
            (direction.outbound(), &mut inner.members_out),
        ];
        add(
            lists,
            declared,
            |other| other.name == name,
            ("baggage member", name),
            baggage::MAX_MEMBERS,
        );
        inner.member_bits |= baggage::bit(name.as_bytes());
        self
    }

    /// Makes this service a relay: baggage members it does not declare are
    /// passed on, unchanged, to the requests it makes while handling the
    /// request that brought them, as the specification asks of a service
    /// in the middle.
    ///
    /// Without it, only declared members are sent. Keep it so at the edge
    /// (a gateway, any service clients reach): a relay there passes a
    /// client's made-up members, `role=admin` say, to every service behind
    /// it that takes them in. Choose `relay` for a service inside a mesh
    /// whose callers are trusted, so that what the services around it
    /// declare gets through it.
    ///
    /// ```
    /// use stackholm_propagation::Propagation;
    ///
    /// let edge = Propagation::new();          // passes on nothing undeclared
    /// let relay = Propagation::new().relay(); // passes on what it does not know
    /// # let _ = (edge, relay);
    /// ```
    #[must_use]
    pub fn relay(mut self) -> Self {
        self.inner_mut().relay = true;
        self
    }

    /// Calls `hook` for every value skipped on the way in or out: one that
    /// does not decode, is given twice, is over the limits, or cannot be
    /// written. Log them here; nothing else reports them.
    ///
    /// For an outgoing request the hook runs inside the caller's context.
    /// For an incoming one it runs while the values are being read: from
    /// [`extract_into`](Self::extract_into) (so as the seed of
    /// `stackholm-tower`'s `StackholmLayer`), inside the request's scope,
    /// whose root holds what has been read so far; from
    /// [`extract`](Self::extract), in the caller's context. It should not
    /// panic: a panic goes up to the caller (the layer's `call`, the
    /// client's).
    ///
    /// ```
    /// use stackholm_propagation::Propagation;
    ///
    /// let propagation = Propagation::new().on_reject(|rejection| {
    ///     eprintln!("{rejection}"); // or tracing::warn!(%rejection)
    /// });
    /// # let _ = propagation;
    /// ```
    #[must_use]
    pub fn on_reject(mut self, hook: impl Fn(&Rejection) + Send + Sync + 'static) -> Self {
        self.inner_mut().on_reject = Some(Arc::new(hook));
        self
    }

    fn inner_mut(&mut self) -> &mut Inner {
        let inner = Arc::make_mut(&mut self.inner);
        inner.id = next_id();
        inner
    }

    /// Where a declaration of `field` stands among the sources of its key
    /// (the first declared that gives a value wins), if it is inbound.
    fn source(&mut self, direction: Direction, field: &dyn Field) -> Source {
        if !direction.inbound() {
            return Source::default();
        }
        let inner = self.inner_mut();
        let addr = field.key_addr();
        let key = match inner.inbound_keys.iter().position(|&other| other == addr) {
            Some(key) => key,
            None => {
                inner.inbound_keys.push(addr);
                inner.inbound_keys.len() - 1
            }
        };
        inner.inbound_sources += 1;
        Source {
            key,
            rank: inner.inbound_sources,
        }
    }

    fn reject(&self, direction: Direction, place: Place, reason: Reason) {
        if let Some(hook) = &self.inner.on_reject {
            hook(&Rejection::new(direction, place, reason));
        }
    }

    /// Whether `name` is a member this service declares, either way: such
    /// members are never passed on as they came.
    fn declares_member(&self, key: &[u8]) -> bool {
        let inner = &*self.inner;
        let name = baggage::name(key);
        inner.may_declare(&name)
            && inner
                .members_in
                .iter()
                .chain(&inner.members_out)
                .any(|m| baggage::same(m.name.as_bytes(), &name))
    }
}

/// Adds `declared` to the list of each direction it is `wanted` in, where
/// no other is the `same` and fewer than `most` are.
#[track_caller]
fn add<F: Clone>(
    lists: [(bool, &mut Vec<F>); 2],
    declared: F,
    same: impl Fn(&F) -> bool,
    (what, name): (&str, &str),
    most: usize,
) {
    for (wanted, list) in lists {
        if wanted {
            assert!(
                !list.iter().any(&same),
                "the {what} `{name}` is already declared in this direction"
            );
            assert!(
                list.len() < most,
                "at most {most} {what}s can be declared in one direction"
            );
            list.push(declared.clone());
        }
    }
}

impl Default for Propagation {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Fields<'a, I>(&'a [I]);
        impl fmt::Debug for Fields<'_, HeaderField> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|h| (h.name.as_str(), h.field.key_name())))
                    .finish()
            }
        }
        impl fmt::Debug for Fields<'_, MemberField> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|m| (m.name, m.field.key_name())))
                    .finish()
            }
        }
        let inner = &*self.inner;
        f.debug_struct("Propagation")
            .field("storage", &inner.storage)
            .field("headers_in", &Fields(&inner.headers_in))
            .field("headers_out", &Fields(&inner.headers_out))
            .field("members_in", &Fields(&inner.members_in))
            .field("members_out", &Fields(&inner.members_out))
            .field("relay", &inner.relay)
            .field("on_reject", &inner.on_reject.is_some())
            .finish()
    }
}

// The crate's README, which crates.io shows, is tested with the docs.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
