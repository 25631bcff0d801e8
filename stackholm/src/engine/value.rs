//! A stored value: owned by its slot, or shared with snapshots.

use std::any::Any;
use std::sync::Arc;

/// A value as a slot or a carrier holds it.
///
/// Values start owned, so setting one does not allocate. A snapshot taken to
/// carry the visible values into a spawned task turns each value of an
/// [inherited](crate::Key::inherited) key into a shared one once, and from
/// then on every snapshot shares it by reference count instead of copying
/// it.
///
/// The shared form is type-erased so that a `Value<T>` is `Send` whenever
/// `T` is: values of keys that are not inherited need not be `Sync`, and
/// only inherited ones, which are, are ever shared.
#[derive(Debug)]
pub(crate) enum Value<T> {
    Owned(T),
    Shared(Arc<dyn Any + Send + Sync>),
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
}

impl<T: Send + Sync + 'static> Value<T> {
    /// Turns the value into a shared one and returns a new reference to it.
    pub(crate) fn share(self) -> (Self, Arc<dyn Any + Send + Sync>) {
        let shared: Arc<dyn Any + Send + Sync> = match self {
            Value::Owned(value) => Arc::new(value),
            Value::Shared(shared) => shared,
        };
        (Value::Shared(Arc::clone(&shared)), shared)
    }
}
