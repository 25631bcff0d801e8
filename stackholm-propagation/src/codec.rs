//! How a key's value becomes text on the wire, and back.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt::{Display, Write as _};
use std::str::FromStr;

/// The error a [`Codec`] gives for text it cannot decode.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Turns a key's values into text for a header or a baggage member, and
/// text from one back into a value.
///
/// [`Text`] is the ready-made codec, for every `FromStr + Display` type:
/// `String`, the integers, `Uuid`, ... Implement this trait for anything
/// else, a value with several parts say:
///
/// ```
/// use stackholm_propagation::{BoxError, Codec};
///
/// /// A deadline sent as milliseconds since the Unix epoch.
/// struct UnixMillis;
///
/// impl Codec<std::time::SystemTime> for UnixMillis {
///     fn encode(&self, value: &std::time::SystemTime, out: &mut String) {
///         let millis = value.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
///         out.push_str(&millis.to_string());
///     }
///
///     fn decode(&self, text: &str) -> Result<std::time::SystemTime, BoxError> {
///         let millis: u64 = text.parse()?;
///         Ok(std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis))
///     }
/// }
/// ```
pub trait Codec<T>: Send + Sync + 'static {
    /// Appends `value` as text to `out`. Percent-encoding for baggage is
    /// done afterwards; write the plain text.
    ///
    /// It runs inside a read of the storage, as a [`Storage::with`]
    /// closure does: it may read the context, and a write to it fails with
    /// [`Error::Busy`] rather than changing the stack under the read.
    ///
    /// [`Storage::with`]: stackholm::Storage::with
    /// [`Error::Busy`]: stackholm::Error::Busy
    fn encode(&self, value: &T, out: &mut String);

    /// Reads a value from `text` (percent-decoded already, for baggage).
    ///
    /// # Errors
    ///
    /// Why `text` is not a value: the member or header is then skipped and
    /// the error handed to the [`on_reject`](super::Propagation::on_reject)
    /// hook.
    fn decode(&self, text: &str) -> Result<T, BoxError>;
}

/// The codec of every `FromStr + Display` type: the value's `Display` text
/// out, `FromStr` in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Text;

impl<T> Codec<T> for Text
where
    T: FromStr + Display + 'static,
    T::Err: Into<BoxError>,
{
    fn encode(&self, value: &T, out: &mut String) {
        // The formatting machinery costs more than the copy it makes of a
        // `String`, the most common value.
        if let Some(text) = (value as &dyn Any).downcast_ref::<String>() {
            out.push_str(text);
            return;
        }
        // Writing to a `String` fails only if `Display` does, which is a
        // bug of that impl; the text is then whatever it wrote.
        let _ = write!(out, "{value}");
    }

    fn decode(&self, text: &str) -> Result<T, BoxError> {
        text.parse().map_err(Into::into)
    }
}
