//! A declared key with its codec, its type erased so that one
//! [`Propagation`](super::Propagation) holds keys of any types.

use std::mem;

use stackholm::{Checkpoint, Error, Key, Storage};

use super::codec::{BoxError, Codec};

/// Where incoming values go: the root of the scope being seeded, or a
/// checkpoint for code that enters it itself.
pub(crate) enum Target<'a> {
    /// The outermost checkpoint of the storage's current stack, with the
    /// first error setting a value there met.
    Root(Storage, Option<Error>),
    Checkpoint(&'a mut Checkpoint),
}

impl Target<'_> {
    pub(crate) fn set<T: Send + 'static>(&mut self, key: &'static Key<T>, value: T) {
        match self {
            Self::Root(storage, failed) => {
                if let Err(refused) = storage.set_root(key, value) {
                    failed.get_or_insert(refused.error());
                }
            }
            Self::Checkpoint(checkpoint) => {
                let taken = mem::replace(*checkpoint, Checkpoint::new());
                **checkpoint = taken.with_value(key, value);
            }
        }
    }
}

pub(crate) trait Field: Send + Sync {
    /// The key's name, for `Debug`.
    fn key_name(&self) -> &'static str;

    /// The key's address: one key is declared once per direction.
    fn key_addr(&self) -> usize;

    /// Decodes `text` and sets the key to it in `target`.
    fn accept(&self, text: &str, target: &mut Target<'_>) -> Result<(), BoxError>;

    /// Appends the current value of the key, as text, to `out`; `false` if
    /// the key is not set.
    fn write(&self, storage: Storage, out: &mut String) -> bool;
}

pub(crate) struct Typed<T: 'static, C> {
    pub(crate) key: &'static Key<T>,
    pub(crate) codec: C,
}

impl<T, C> Field for Typed<T, C>
where
    T: Send + Sync + 'static,
    C: Codec<T>,
{
    fn key_name(&self) -> &'static str {
        self.key.name()
    }

    fn key_addr(&self) -> usize {
        std::ptr::from_ref(self.key) as usize
    }

    fn accept(&self, text: &str, target: &mut Target<'_>) -> Result<(), BoxError> {
        target.set(self.key, self.codec.decode(text)?);
        Ok(())
    }

    fn write(&self, storage: Storage, out: &mut String) -> bool {
        storage.with(self.key, |value| {
            value.map(|value| self.codec.encode(value, out)).is_some()
        })
    }
}
