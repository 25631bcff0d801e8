//! What was not taken in or sent out, and why: told to the
//! [`on_reject`](super::Propagation::on_reject) hook.

use std::error::Error as StdError;
use std::fmt;

use super::codec::BoxError;

/// Which way a value was crossing the service boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From an incoming request into its root checkpoint.
    Inbound,
    /// From the current context into an outgoing request.
    Outbound,
    /// Both ways: a value this service takes in and passes on.
    Both,
}

impl Direction {
    pub(crate) fn inbound(self) -> bool {
        matches!(self, Self::Inbound | Self::Both)
    }

    pub(crate) fn outbound(self) -> bool {
        matches!(self, Self::Outbound | Self::Both)
    }
}

/// Why a value was skipped.
#[derive(Debug)]
#[non_exhaustive]
pub enum Reason {
    /// The key's [`Codec`](super::Codec) could not read the text.
    Decode(BoxError),
    /// An incoming header value is not visible ASCII text.
    NotText,
    /// The value was given more than once (two headers, or two members of
    /// one name or spellings of it), and intermediaries may disagree about
    /// which one counts.
    Ambiguous,
    /// A declared member came only under a spelling of its name: with
    /// percent escapes or white space that readers who decode and trim
    /// names remove (`no%74e`, `note%09`). Services behind this one may
    /// read it as the declared name, so its value is not taken; a value is
    /// taken only under the name as declared.
    Spelling,
    /// Members of the `baggage` header do not follow the grammar.
    Malformed {
        /// How many members were dropped for it.
        members: usize,
    },
    /// Members of the `baggage` header were dropped for a name (or a
    /// spelling of it) given before them: the first of each name is kept.
    Repeated {
        /// How many members were dropped for it.
        members: usize,
    },
    /// The incoming request names a value this service declares outbound
    /// only: it sends that value and never takes it from a request (the
    /// acting user at a gateway, say).
    OutboundOnly,
    /// Members beyond the limits (64 members, 8192 bytes) were dropped,
    /// each whole.
    OverLimit,
    /// A header's value is longer than 8192 bytes, the bound `baggage` has
    /// too: not taken, or not sent.
    TooLong,
    /// An outgoing value cannot be sent exactly as a header value: it is not
    /// visible ASCII, or has white space at either end, which HTTP trims.
    /// Declare the key as a baggage member instead, where values are
    /// percent-encoded.
    NotHeaderValue,
}

/// `count` member(s), spelt out.
fn members(count: usize) -> String {
    match count {
        1 => "1 member".to_owned(),
        count => format!("{count} members"),
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (max_members, max_bytes) = (super::baggage::MAX_MEMBERS, super::baggage::MAX_BYTES);
        match self {
            Self::Decode(err) => write!(f, "its text could not be decoded: {err}"),
            Self::NotText => f.write_str("the header value is not visible ASCII text"),
            Self::Ambiguous => f.write_str("it was given more than once"),
            Self::Spelling => f.write_str(concat!(
                "it came only under a spelling of its name with escapes or white space, ",
                "which services behind this one may read differently",
            )),
            Self::Malformed { members: count } => write!(
                f,
                "{} dropped for not following the W3C Baggage grammar",
                members(*count)
            ),
            Self::Repeated { members: count } => write!(
                f,
                "{} dropped for a name given before (the first of each name is kept)",
                members(*count)
            ),
            Self::OutboundOnly => {
                f.write_str("this service sends it but does not take it from a request")
            }
            Self::OverLimit => write!(
                f,
                "the members beyond {max_members} members or {max_bytes} bytes were dropped"
            ),
            Self::TooLong => write!(f, "the value is longer than {max_bytes} bytes"),
            Self::NotHeaderValue => f.write_str(concat!(
                "the value is not visible ASCII or has white space at either end, ",
                "so it cannot be sent as a header value",
            )),
        }
    }
}

/// Where a skipped value was, or was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// A header of its own, such as `x-request-id`.
    Header(&'static str),
    /// A member of the `baggage` header.
    Member(&'static str),
    /// The `baggage` header as a whole.
    Baggage,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "header `{name}`"),
            Self::Member(name) => write!(f, "baggage member `{name}`"),
            Self::Baggage => f.write_str("`baggage` header"),
        }
    }
}

/// A value that was not taken from an incoming request, or not written to
/// an outgoing one. The rest of the context is not affected: a rejection
/// never fails a request.
#[derive(Debug)]
pub struct Rejection {
    direction: Direction,
    place: Place,
    reason: Reason,
}

impl Rejection {
    pub(crate) fn new(direction: Direction, place: Place, reason: Reason) -> Self {
        Self {
            direction,
            place,
            reason,
        }
    }

    /// [`Direction::Inbound`] or [`Direction::Outbound`].
    #[must_use]
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Where the value was.
    #[must_use]
    pub fn place(&self) -> Place {
        self.place
    }

    /// Why it was skipped.
    #[must_use]
    pub fn reason(&self) -> &Reason {
        &self.reason
    }
}

/// Says what was dropped and what was kept: a header or a member is
/// dropped whole, the rest of the context kept; of the `baggage` header,
/// the members named, the others kept.
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let way = match self.direction {
            Direction::Outbound => "outgoing",
            Direction::Inbound | Direction::Both => "incoming",
        };
        match self.place {
            Place::Baggage => write!(
                f,
                "{way} `baggage` header: {}; the other members were kept",
                self.reason
            ),
            place => write!(f, "{way} {place} dropped: {}", self.reason),
        }
    }
}

impl StdError for Rejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.reason {
            Reason::Decode(err) => Some(&**err),
            _ => None,
        }
    }
}
