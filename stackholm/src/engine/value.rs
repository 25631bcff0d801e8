//! A stored value: owned by its slot, or shared with snapshots.

use std::any::Any;
use std::sync::Arc;

/// A value shared between a stack and the snapshots taken of it.
///
/// Type-erased so that a `Value<T>` is `Send` whenever `T` is: values of
/// keys that are not inherited need not be `Sync`, and only inherited ones,
/// which are, are ever shared.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

/// How an [inherited](crate::Key::inherited) key turns its values into
/// shared ones; only a `Sync` value type has one.
pub(crate) type Share<T> = fn(T) -> Shared;

/// Moves `value` into a shared allocation: the [`Share`] of an inherited
/// key.
pub(crate) fn share<T: Send + Sync + 'static>(value: T) -> Shared {
    Arc::new(value)
}

/// A value as a slot holds it.
///
/// Values start owned, so setting one does not allocate. A snapshot taken to
/// carry the visible values into a spawned task turns each value of an
/// inherited key into a shared one once, and from then on every snapshot
/// shares it by reference count instead of copying it.
#[derive(Debug)]
pub(crate) enum Value<T> {
    Owned(T),
    Shared(Shared),
}

impl<T: 'static> Value<T> {
    #[inline]
    pub(crate) fn get(&self) -> &T {
        match self {
            Value::Owned(value) => value,
            Value::Shared(value) => value
                .downcast_ref()
                .expect("stackholm: a shared value has its key's type"),
        }
    }

    /// Turns the value into a shared one with `share`, and returns it with
    /// a new reference to it.
    pub(crate) fn share(self, share: Share<T>) -> (Self, Shared) {
        let shared = match self {
            Value::Owned(value) => share(value),
            Value::Shared(shared) => shared,
        };
        (Value::Shared(Arc::clone(&shared)), shared)
    }
}
