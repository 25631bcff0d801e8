//! The W3C Baggage grammar: reading list-members within the limits, and
//! writing values percent-encoded.
//!
//! <https://www.w3.org/TR/baggage/#header-content>

use std::borrow::Cow;

use super::small::Small;

/// The most list-members read from, or written to, one request: the
/// specification's minimum, which is also what OpenTelemetry SDKs keep.
pub(crate) const MAX_MEMBERS: usize = 64;

/// The most bytes of `baggage` read from, or written to, one request,
/// separators included.
pub(crate) const MAX_BYTES: usize = 8192;

/// One list-member, trimmed of the optional white space around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member<'a> {
    /// The member's key: a token.
    pub(crate) key: &'a [u8],
    /// The value as written, still percent-encoded: ASCII.
    pub(crate) value: &'a [u8],
    /// The whole member, properties included, as it may be passed on: ASCII
    /// if `strict`.
    pub(crate) raw: &'a [u8],
    /// Whether the whole member, properties included, follows the grammar,
    /// so that it may be passed on unchanged. Values with a `"` or `\`
    /// (which some producers do not encode) are read but not passed on.
    pub(crate) strict: bool,
}

/// What one comma-separated element of a `baggage` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item<'a> {
    Member(Member<'a>),
    /// Not a list-member; `key` is the name it gives itself, if it starts
    /// like one (`tenant=a b`), so that a broken copy of a declared member
    /// still counts as a second one.
    Malformed {
        key: Option<&'a [u8]>,
    },
}

/// Reads the list-members of the `baggage` header values, in order, while
/// they fit in [`MAX_MEMBERS`] and [`MAX_BYTES`].
///
/// The bytes counted are the header's own, white space, empty elements and
/// separators included (as the specification counts a `baggage-string`),
/// several header values joined by a comma. A member that would cross a
/// limit ends the reading: it and everything after it are dropped whole.
/// Scanning stops there too, so a hostile header costs at most
/// [`MAX_BYTES`] bytes of work however long it is.
#[derive(Debug)]
pub(crate) struct Reader<'a, I> {
    values: I,
    rest: &'a [u8],
    started: bool,
    members: usize,
    bytes: usize,
    truncated: bool,
}

impl<'a, I: Iterator<Item = &'a [u8]>> Reader<'a, I> {
    pub(crate) fn new(values: I) -> Self {
        Self {
            values,
            rest: &[],
            started: false,
            members: 0,
            bytes: 0,
            truncated: false,
        }
    }

    /// Whether members were dropped for crossing a limit.
    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    fn stop(&mut self) -> Option<Item<'a>> {
        self.truncated = true;
        self.rest = &[];
        None
    }
}

impl<'a, I: Iterator<Item = &'a [u8]>> Iterator for Reader<'a, I> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        if self.truncated {
            return None;
        }
        loop {
            while self.rest.is_empty() {
                self.rest = self.values.next()?;
                self.bytes += usize::from(self.started);
                self.started = true;
                if self.bytes > MAX_BYTES {
                    return self.stop();
                }
            }
            // Look no further than the budget left: an element that does
            // not end inside it is over the limit whatever follows.
            let budget = MAX_BYTES - self.bytes.min(MAX_BYTES);
            if budget == 0 {
                // Even an empty element costs a byte: a run of commas
                // past the limit is over it too.
                return self.stop();
            }
            let window = &self.rest[..self.rest.len().min(budget + 1)];
            let (item, end) = scan(window);
            if end > budget || (end == window.len() && window.len() < self.rest.len()) {
                return self.stop();
            }
            let consumed = (end + 1).min(self.rest.len());
            self.bytes += consumed;
            self.rest = &self.rest[consumed..];
            // Empty list elements are allowed by RFC 9110's list syntax.
            let Some(item) = item else { continue };
            if self.members == MAX_MEMBERS {
                return self.stop();
            }
            self.members += 1;
            return Some(item);
        }
    }
}

const TOKEN: u8 = 1;
const STRICT: u8 = 2;
const LENIENT: u8 = 4;
/// Written as it is in a value: see [`encode_into`].
const VERBATIM: u8 = 8;

/// Each byte's classes, so that a member is checked in one pass.
static CLASS: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let mut class = 0;
        if is_tchar(byte) {
            class |= TOKEN;
        }
        if is_baggage_octet(byte) {
            class |= STRICT | LENIENT;
        }
        if byte == b'"' || byte == b'\\' {
            class |= LENIENT;
        }
        if is_baggage_octet(byte) && !matches!(byte, b'%' | b'=' | b'+') {
            class |= VERBATIM;
        }
        table[b] = class;
        b += 1;
    }
    table
};

fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

/// Where the run of bytes of class `class` that starts at `from` ends.
fn run(bytes: &[u8], from: usize, class: u8) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| CLASS[usize::from(b)] & class == 0)
        .map_or(bytes.len(), |at| from + at)
}

fn skip_ows(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_ows(bytes[i]) {
        i += 1;
    }
    i
}

/// Reads the element at the start of `bytes`: `OWS key OWS "=" OWS value
/// *(OWS ";" OWS property) OWS`, up to the `,` that ends it. Gives the item
/// (`None` for an empty element) and where the element ends: at its `,`,
/// or at the end of `bytes`.
#[inline]
fn scan(bytes: &[u8]) -> (Option<Item<'_>>, usize) {
    // Producers write `key=value` with nothing around: two runs read it,
    // and anything else is read again by the whole grammar.
    let key_end = run(bytes, 0, TOKEN);
    if key_end > 0 && bytes.get(key_end) == Some(&b'=') {
        let end = run(bytes, key_end + 1, STRICT);
        if bytes.get(end).is_none_or(|&b| b == b',') {
            let member = Member {
                key: &bytes[..key_end],
                value: &bytes[key_end + 1..end],
                raw: &bytes[..end],
                strict: true,
            };
            return (Some(Item::Member(member)), end);
        }
    }
    scan_grammar(bytes)
}

/// [`scan`] by the whole grammar, in one pass.
#[inline(never)]
fn scan_grammar(bytes: &[u8]) -> (Option<Item<'_>>, usize) {
    let comma = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&b| b == b',')
            .map_or(bytes.len(), |at| from + at)
    };
    let start = skip_ows(bytes, 0);
    let mut i = run(bytes, start, TOKEN);
    let key = &bytes[start..i];
    if key.is_empty() && bytes.get(i).is_none_or(|&b| b == b',') {
        return (None, i);
    }
    i = skip_ows(bytes, i);
    if key.is_empty() || bytes.get(i) != Some(&b'=') {
        return (Some(Item::Malformed { key: None }), comma(i));
    }
    i = skip_ows(bytes, i + 1);
    let value_start = i;
    i = run(bytes, i, STRICT);
    let strict_end = i;
    i = run(bytes, i, LENIENT);
    let mut strict = i == strict_end;
    let value = &bytes[value_start..i];
    i = skip_ows(bytes, i);
    let end = match bytes.get(i) {
        None | Some(b',') => i,
        Some(b';') => {
            let end = comma(i);
            strict &= bytes[i + 1..end].split(|&b| b == b';').all(is_property);
            end
        }
        Some(_) => return (Some(Item::Malformed { key: Some(key) }), comma(i)),
    };
    let member = Member {
        key,
        value,
        // `start` is past the leading white space: this trims the rest.
        raw: trim_ows(&bytes[start..end]),
        strict,
    };
    (Some(Item::Member(member)), end)
}

fn is_property(property: &[u8]) -> bool {
    match property.iter().position(|&b| b == b'=') {
        Some(eq) => {
            is_token(trim_ows(&property[..eq]))
                && trim_ows(&property[eq + 1..])
                    .iter()
                    .all(|&b| class(b) & STRICT != 0)
        }
        None => is_token(trim_ows(property)),
    }
}

/// RFC 9110's `token`: what a baggage key is.
pub(crate) fn is_token(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(|&b| class(b) & TOKEN != 0)
}

/// Whether `bytes` is field text as HTTP sends it: visible ASCII, spaces and
/// tabs. Folded without an early exit, so that it runs over whole words:
/// values are short, and nearly always pass.
pub(crate) fn is_field_text(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        ok & ((b' '..=b'~').contains(&b) | (b == b'\t'))
    })
}

const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// `baggage-octet`: printable US-ASCII but for `"`, `,`, `;` and `\`.
const fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

/// Whether two names are equal, mismatches mostly told by length or first
/// byte without a call to `memcmp`.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.first() == b.first() && a == b
}

/// Percent-decodes a value: `%XX` becomes its byte, a `%` not followed by
/// two hex digits stays as it is, and byte sequences that are not UTF-8
/// become U+FFFD, as the specification asks.
pub(crate) fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match unescape(bytes) {
        // Values are ASCII, which `from_utf8` checks faster than the lossy
        // conversion.
        Cow::Borrowed(bytes) => std::str::from_utf8(bytes)
            .map_or_else(|_| String::from_utf8_lossy(bytes), Cow::Borrowed),
        Cow::Owned(out) => Cow::Owned(
            String::from_utf8(out)
                .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()),
        ),
    }
}

/// A member's name as readers that decode names see it: percent-decoded,
/// then trimmed of white space and control characters (OpenTelemetry's
/// reader trims white space, others all control characters), so that a
/// name spelt with escapes (`no%74e`, `note%09`) is the name it reads as.
/// A token has neither escapes nor anything to trim: it is its own name.
#[inline(always)]
pub(crate) fn name(key: &[u8]) -> Cow<'_, [u8]> {
    // Names are short: a loop without an early exit, over whole words,
    // beats `memchr`'s call.
    if key.iter().fold(false, |seen, &b| seen | (b == b'%')) {
        Cow::Owned(spelt_name(key))
    } else {
        Cow::Borrowed(key)
    }
}

/// [`name`] of a key with escapes: rare, and out of the way of the others.
#[cold]
#[inline(never)]
fn spelt_name(key: &[u8]) -> Vec<u8> {
    let decoded = unescape(key).into_owned();
    match std::str::from_utf8(&decoded) {
        Ok(text) => text
            .trim_matches(|c: char| c.is_whitespace() || c.is_control())
            .as_bytes()
            .to_vec(),
        // Strict readers skip such a name; lossy ones read U+FFFD in it,
        // which nothing trims and no token holds.
        Err(_) => decoded,
    }
}

/// One of 64 bits, picked by `name`'s length and ends: a set of names as
/// the union of their bits tells most other names apart from them without
/// comparing.
#[inline]
pub(crate) fn bit(name: &[u8]) -> u64 {
    let (first, last) = (name.first().copied(), name.last().copied());
    let mix = name.len() * 7 + usize::from(first.unwrap_or(0)) * 3 + usize::from(last.unwrap_or(0));
    1 << (mix % 64)
}

/// The names given so far, as [`name`] reads them, to keep each name once.
/// Spelt names, the rare case, are decoded once and kept decoded.
#[derive(Default)]
pub(crate) struct Names<'a> {
    /// The [`bit`]s of the names given: a name whose bit is clear is new
    /// without a comparison, as nearly every name is.
    seen: u64,
    plain: Small<&'a [u8], 8>,
    spelt: Vec<Vec<u8>>,
}

impl<'a> Names<'a> {
    /// Whether a name reading as `name` (as [`name`] gives it) was given.
    #[inline]
    pub(crate) fn contains(&self, name: &[u8]) -> bool {
        self.seen & bit(name) != 0 && self.compare(name)
    }

    #[inline(never)]
    fn compare(&self, name: &[u8]) -> bool {
        self.plain.as_slice().iter().any(|other| same(other, name))
            || self.spelt.iter().any(|other| other == name)
    }

    /// Adds `name`, as [`name`] gives it.
    #[inline]
    pub(crate) fn insert(&mut self, name: Cow<'a, [u8]>) {
        self.seen |= bit(&name);
        match name {
            Cow::Borrowed(plain) => self.plain.push(plain),
            Cow::Owned(spelt) => self.spelt.push(spelt),
        }
    }
}

/// `%XX` turned into its byte; a `%` not followed by two hex digits kept.
fn unescape(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `value` percent-encoded: every byte outside `baggage-octet`;
/// `%`; `=`, for readers that split a member at its last `=`
/// (OpenTelemetry's does); and `+`, for those that decode values as forms
/// (OpenTelemetry's Python SDK), where it is a space.
pub(crate) fn encode_into(value: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut rest = value.as_bytes();
    // Copy runs that need no escape whole: values are mostly such runs.
    while let Some(at) = rest.iter().position(|&b| class(b) & VERBATIM == 0) {
        out.extend_from_slice(&rest[..at]);
        let b = rest[at];
        out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(values: &[&str]) -> (Vec<Item<'static>>, bool) {
        let values: Vec<&'static [u8]> = values
            .iter()
            .map(|v| &*Box::leak(v.as_bytes().to_vec().into_boxed_slice()))
            .collect();
        let mut reader = Reader::new(values.into_iter());
        let items = reader.by_ref().collect();
        (items, reader.truncated())
    }

    fn member(
        key: &'static str,
        value: &'static str,
        raw: &'static str,
        strict: bool,
    ) -> Item<'static> {
        Item::Member(Member {
            key: key.as_bytes(),
            value: value.as_bytes(),
            raw: raw.as_bytes(),
            strict,
        })
    }

    #[test]
    fn reads_the_specifications_examples() {
        let (items, truncated) = read(&[
            "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
        ]);
        assert!(!truncated);
        assert_eq!(
            items,
            [
                member("key1", "value1", "key1=value1;property1;property2", true),
                member("key2", "value2", "key2 = value2", true),
                member(
                    "key3",
                    "value3",
                    "key3=value3; propertyKey=propertyValue",
                    true
                ),
            ]
        );
        let (items, _) = read(&[
            "userId =   alice",
            "serverNode = DF%2028, isProduction = false",
        ]);
        assert_eq!(items.len(), 3);
        assert_eq!(decode("DF%2028".as_bytes()), "DF 28");
    }

    #[test]
    fn an_empty_value_leaves_no_white_space_in_the_member() {
        let (items, _) = read(&["a= , b = ;p , c=\t"]);
        assert_eq!(
            items,
            [
                member("a", "", "a=", true),
                member("b", "", "b = ;p", true),
                member("c", "", "c=", true),
            ]
        );
    }

    #[test]
    fn values_may_hold_equal_signs_and_empty_elements_are_skipped() {
        let (items, _) = read(&[",a=b=c,, ,"]);
        assert_eq!(items, [member("a", "b=c", "a=b=c", true)]);
    }

    #[test]
    fn malformed_members_are_told_apart() {
        let (items, _) = read(&["novalue,=v,k y=v,k=v v,k=\u{e9},ok=1"]);
        assert_eq!(items[0], Item::Malformed { key: None });
        assert_eq!(items[1], Item::Malformed { key: None });
        assert_eq!(items[2], Item::Malformed { key: None });
        assert_eq!(items[3], Item::Malformed { key: Some(b"k") });
        assert_eq!(items[4], Item::Malformed { key: Some(b"k") });
        assert_eq!(items[5], member("ok", "1", "ok=1", true));
    }

    #[test]
    fn lenient_values_and_bad_properties_are_read_but_not_strict() {
        let (items, _) = read(&["a=\"q\\\",b=1;bad prop,c=1;p=\"x\""]);
        assert_eq!(
            items,
            [
                member("a", "\"q\\\"", "a=\"q\\\"", false),
                member("b", "1", "b=1;bad prop", false),
                member("c", "1", "c=1;p=\"x\"", false),
            ]
        );
    }

    #[test]
    fn members_beyond_the_limits_are_dropped_whole() {
        let many = (0..100)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let (items, truncated) = read(&[&many]);
        assert_eq!(items.len(), MAX_MEMBERS);
        assert!(truncated);

        // 8192 bytes exactly fit; one byte more drops the member that crosses.
        let value = "v".repeat(MAX_BYTES - 2 - 4);
        let fits = format!("a=1,b={value}");
        assert_eq!(fits.len(), MAX_BYTES);
        let (items, truncated) = read(&[&fits, "c=1"]);
        assert_eq!(items.len(), 2);
        assert!(truncated);
        let over = format!("a=1,b={value}v");
        let (items, truncated) = read(&[&over]);
        assert_eq!(items.len(), 1);
        assert!(truncated);
    }

    #[test]
    fn commas_past_the_byte_limit_end_the_reading() {
        let header = format!("x={}{}", "v".repeat(MAX_BYTES - 2), ",".repeat(1 << 20));
        let mut reader = Reader::new(std::iter::once(header.as_bytes()));
        assert_eq!(reader.by_ref().count(), 1);
        assert!(reader.truncated());
        assert!(reader.bytes <= MAX_BYTES + 1, "{} bytes read", reader.bytes);
    }

    proptest::proptest! {
        /// The fast path for `key=value` reads every element as the whole
        /// grammar does.
        #[test]
        fn the_fast_path_reads_as_the_grammar(
            text in r#"([ \t]{0,1}[a-z%!/+é]{0,2}[ \t]{0,1}={0,1}[ \t]{0,1}[a-z"\\=é\x00/+\t]{0,2}(;[a-z= ]{0,2}){0,1}[ \t]{0,1},{0,1}){1,3}"#
        ) {
            let bytes = text.as_bytes();
            proptest::prop_assert_eq!(scan(bytes), scan_grammar(bytes));
        }
    }

    #[test]
    fn percent_decoding_keeps_stray_percents_and_replaces_bad_utf8() {
        assert_eq!(decode("100%".as_bytes()), "100%");
        assert_eq!(decode("%zz%4".as_bytes()), "%zz%4");
        assert_eq!(decode("%C3%A9t%C3%A9".as_bytes()), "été");
        assert_eq!(decode("%FF".as_bytes()), "\u{fffd}");
    }

    #[test]
    fn encoding_round_trips_and_writes_only_baggage_octets() {
        for text in [
            "plain",
            "a b,c;d=e%f\"g\\h",
            "été ✓",
            "\u{0}\u{7f}",
            "1+1=2",
        ] {
            let mut out = Vec::new();
            encode_into(text, &mut out);
            assert!(
                out.iter()
                    .all(|&b| is_baggage_octet(b) && !matches!(b, b'=' | b'+')),
                "{out:?}"
            );
            assert_eq!(decode(&out), text);
        }
    }
}
