//! A declared key with its codec, its type erased so that one
//! [`Propagation`](super::Propagation) holds keys of any types.

use std::mem;

use stackholm::{Checkpoint, Key, Storage};

use super::codec::{BoxError, Codec};
use crate::seed::Root;

/// Where an incoming value goes: the layer's pooled root, or a checkpoint
/// for code that enters it itself.
pub(crate) enum Target<'a, 'r> {
    Root(&'a mut Root<'r>),
    Checkpoint(&'a mut Checkpoint),
}

impl Target<'_, '_> {
    pub(crate) fn set<T: Send + 'static>(&mut self, key: &'static Key<T>, value: T) {
        match self {
            Self::Root(root) => root.set(key, value),
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
    fn accept(&self, text: &str, target: &mut Target<'_, '_>) -> Result<(), BoxError>;

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

    fn accept(&self, text: &str, target: &mut Target<'_, '_>) -> Result<(), BoxError> {
        target.set(self.key, self.codec.decode(text)?);
        Ok(())
    }

    fn write(&self, storage: Storage, out: &mut String) -> bool {
        storage.with(self.key, |value| {
            value.map(|value| self.codec.encode(value, out)).is_some()
        })
    }
}
