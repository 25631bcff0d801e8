//! Values held by a checkpoint while it is not on a stack.
//!
//! A [`Checkpoint`](crate::Checkpoint) carries its values in typed carriers:
//! entering moves each value into its key's slot, popping moves it back. A
//! carrier outlives the moves, so a checkpoint entered and left again and
//! again (an instrumented future, once per poll) allocates only the first
//! time it holds a given key.

use std::any::Any;

use super::slot::{Kind, Slots};
use super::value::Value;
use crate::Key;

/// A checkpoint's value for one key and kind, or an empty place for it.
pub(crate) trait Carrier: Any + Send {
    fn key_index(&self) -> usize;
    fn key_name(&self) -> &'static str;
    fn kind(&self) -> Kind;
    /// Whether the key is inherited.
    fn inherited(&self) -> bool;
    fn is_empty(&self) -> bool;

    /// Moves the value into its slot at `depth`; returns the slot's
    /// position if it gained a setting at that depth (the caller records it
    /// in the frame).
    fn attach(&mut self, slots: &mut Slots, depth: u32) -> Option<u32>;

    /// Moves the innermost setting of the carrier's key and kind back out of
    /// `slots` into the carrier.
    fn detach(&mut self, slots: &mut Slots);

    /// Drops the value the carrier holds, if any.
    fn clear(&mut self);
}

/// The carrier for values of type `T`.
#[derive(Debug)]
pub(crate) struct Carried<T: 'static> {
    key: &'static Key<T>,
    kind: Kind,
    value: Option<Value<T>>,
}

impl<T: Send + 'static> Carried<T> {
    pub(crate) fn new(key: &'static Key<T>, kind: Kind, value: Value<T>) -> Self {
        Self {
            key,
            kind,
            value: Some(value),
        }
    }

    pub(crate) fn empty(key: &'static Key<T>, kind: Kind) -> Self {
        Self {
            key,
            kind,
            value: None,
        }
    }

    pub(crate) fn value(&self) -> Option<&T> {
        self.value.as_ref().map(Value::get)
    }

    pub(crate) fn replace(&mut self, value: Value<T>) {
        self.value = Some(value);
    }
}

impl<T: Send + 'static> Carrier for Carried<T> {
    fn key_index(&self) -> usize {
        self.key.index()
    }

    fn key_name(&self) -> &'static str {
        self.key.name()
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn inherited(&self) -> bool {
        self.key.sharing().is_some()
    }

    fn is_empty(&self) -> bool {
        self.value.is_none()
    }

    fn attach(&mut self, slots: &mut Slots, depth: u32) -> Option<u32> {
        let value = self.value.take()?;
        let (position, slot) = slots.typed_or_insert(self.key);
        // A checkpoint holds one value per key and kind, and the frame it
        // enters is new: nothing is there to replace.
        slot.set(self.kind, depth, value)
            .is_none()
            .then_some(position)
    }

    fn detach(&mut self, slots: &mut Slots) {
        self.value = slots
            .typed_mut(self.key)
            .and_then(|slot| slot.pop(self.kind))
            .map(|entry| entry.value);
    }

    fn clear(&mut self) {
        // Taken out first, so that the carrier is empty even if the
        // destructor panics.
        drop(self.value.take());
    }
}
