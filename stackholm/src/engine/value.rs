//! A stored value: owned by its slot, or shared with snapshots.

use std::sync::Arc;

/// A value as a slot or a carrier holds it.
///
/// Values start owned, so setting one does not allocate. A snapshot taken to
/// carry the visible values into a spawned task turns each of them into a
/// shared one once, and from then on every snapshot shares it by reference
/// count instead of copying it.
#[derive(Debug)]
pub(crate) enum Value<T> {
    Owned(T),
    Shared(Arc<T>),
}

impl<T> Value<T> {
    #[inline]
    pub(crate) fn get(&self) -> &T {
        match self {
            Value::Owned(value) => value,
            Value::Shared(value) => value,
        }
    }

    /// Turns the value into a shared one and returns a new reference to it.
    pub(crate) fn share(self) -> (Self, Arc<T>) {
        let shared = match self {
            Value::Owned(value) => Arc::new(value),
            Value::Shared(shared) => shared,
        };
        (Value::Shared(Arc::clone(&shared)), shared)
    }
}
