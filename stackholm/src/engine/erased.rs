//! The engine's values without their type: how a stack's [`Slot`]s and a
//! checkpoint's [`Carried`] places each say what [`Erased`] asks of them,
//! from which values move between the two.

use std::any::Any;

use super::panics::Panics;
use super::slots::{downcast, Entry, Erased, ErasedSlot, Slot, Value};
use crate::Key;

/// A place for one key's values, typed: what [`Slot`] and [`Carried`]
/// each say of themselves, from which both are [`Erased`].
trait Place: Send + 'static {
    type Value: Send + 'static;

    fn key(&self) -> &'static Key<Self::Value>;

    /// How many values it holds.
    fn count(&self) -> usize;

    /// Takes the innermost value out.
    fn take_top(&mut self) -> Option<Value<Self::Value>>;

    /// Holds `value` as the innermost one, at `depth`.
    fn put(&mut self, value: Value<Self::Value>, depth: u32);
}

impl<P: Place> Erased for P {
    fn tag(&self) -> u32 {
        self.key().tag()
    }

    fn key_name(&self) -> &'static str {
        self.key().name()
    }

    fn private(&self) -> bool {
        self.key().is_private()
    }

    fn len(&self) -> usize {
        self.count()
    }

    fn slot(&self) -> Box<dyn ErasedSlot> {
        Box::new(Slot::new(self.key()))
    }

    fn carrier(&self) -> Box<dyn Erased> {
        Box::new(Carried::new(self.key()))
    }

    fn move_top(&mut self, into: &mut dyn Erased, depth: u32) -> bool {
        let Some(value) = self.take_top() else {
            return false;
        };
        // Handed over as an `Option`, which the place of the same key takes
        // the value out of: no allocation, and the type checked once.
        let mut value = Some(value);
        into.receive(&mut value, depth);
        debug_assert!(value.is_none(), "a place of the key takes its value");
        true
    }

    fn receive(&mut self, value: &mut dyn Any, depth: u32) {
        let value: &mut Option<Value<P::Value>> = downcast(value.downcast_mut());
        if let Some(value) = value.take() {
            self.put(value, depth);
        }
    }
}

impl<T: Send + 'static> Place for Slot<T> {
    type Value = T;

    fn key(&self) -> &'static Key<T> {
        self.key
    }

    fn count(&self) -> usize {
        self.entries.len()
    }

    fn take_top(&mut self) -> Option<Value<T>> {
        Some(self.pop()?.value)
    }

    fn put(&mut self, value: Value<T>, depth: u32) {
        self.push(Entry { depth, value });
    }
}

impl<T: Send + 'static> ErasedSlot for Slot<T> {
    fn inherited(&self) -> bool {
        self.key.sharing().is_some()
    }

    fn drops(&self) -> bool {
        std::mem::needs_drop::<T>()
    }

    fn top_depth(&self) -> Option<u32> {
        Some(self.top()?.depth)
    }

    #[inline]
    fn drop_top(&mut self) {
        // An owned value whose type runs no code when dropped is cut off in
        // place: no copy of the entry out of the vector to look at its
        // variant (18 instructions against 12 a value left).
        if !std::mem::needs_drop::<T>() {
            if let Some(Entry {
                value: Value::Owned(_),
                ..
            }) = self.entries.last()
            {
                self.entries.truncate(self.entries.len() - 1);
                return;
            }
        }
        self.pop();
    }

    fn drop_all(&mut self, panics: &mut Panics) {
        // Drained, so that the slot keeps its room for the next ones.
        let mut entries = self.entries.drain(..);
        while entries.len() > 0 {
            panics.catch(|| entries.by_ref().for_each(drop));
        }
    }

    fn share_top(&mut self) -> Option<Box<dyn Erased>> {
        let share = self.key.sharing()?;
        let Entry { depth, value } = self.pop()?;
        let (kept, shared) = value.share(share);
        self.push(Entry { depth, value: kept });
        let mut carried = Carried::new(self.key);
        carried.value = Some(Value::Shared(shared));
        Some(Box::new(carried))
    }
}

/// A checkpoint's value for one key while the checkpoint is off the stack,
/// or an empty place for it: one value, held in the box itself, so that a
/// checkpoint costs one allocation a value.
#[derive(Debug)]
pub(crate) struct Carried<T: 'static> {
    key: &'static Key<T>,
    value: Option<Value<T>>,
}

impl<T: Send + 'static> Carried<T> {
    pub(crate) const fn new(key: &'static Key<T>) -> Self {
        Self { key, value: None }
    }

    /// The value it holds.
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        Some(self.value.as_ref()?.get())
    }

    /// Holds `value`; returns the value it held.
    pub(crate) fn replace(&mut self, value: T) -> Option<Value<T>> {
        self.value.replace(Value::Owned(value))
    }
}

impl<T: Send + 'static> Place for Carried<T> {
    type Value = T;

    fn key(&self) -> &'static Key<T> {
        self.key
    }

    fn count(&self) -> usize {
        usize::from(self.value.is_some())
    }

    fn take_top(&mut self) -> Option<Value<T>> {
        self.value.take()
    }

    fn put(&mut self, value: Value<T>, _depth: u32) {
        // A checkpoint holds one value a key, as a frame one setting a key.
        debug_assert!(
            self.value.is_none(),
            "a place of a checkpoint is filled twice"
        );
        self.value = Some(value);
    }
}
