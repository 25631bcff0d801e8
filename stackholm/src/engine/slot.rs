//! The settings of one key, the values they hold, and the one way the
//! engine handles values without knowing their type.
//!
//! A [`Slot<T>`] keeps the settings of its key as a stack ordered by
//! checkpoint depth, so the nearest setting is always the last one: that is
//! what makes a read O(1) at any depth and with any number of other keys
//! set. Stacks and values waiting to be dropped keep their values in slots,
//! checkpoints off the stack in [`Carried`] places of one value each; all
//! move values between each other through [`Erased`], whose stack side is
//! [`ErasedSlot`].

use std::any::Any;
use std::sync::Arc;

use super::panics::Panics;
use crate::key::{Share, Shared};
use crate::Key;

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

/// One setting of a key: the value and the depth of the checkpoint holding
/// it (0 in a checkpoint off the stack).
#[derive(Debug)]
pub(crate) struct Entry<T> {
    pub(crate) depth: u32,
    pub(crate) value: Value<T>,
}

/// The settings of one key, innermost last.
#[derive(Debug)]
pub(crate) struct Slot<T: 'static> {
    key: &'static Key<T>,
    entries: Vec<Entry<T>>,
}

impl<T: Send + 'static> Slot<T> {
    pub(crate) const fn new(key: &'static Key<T>) -> Self {
        Self {
            key,
            entries: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn top(&self) -> Option<&Entry<T>> {
        self.entries.last()
    }

    /// Sets the value at `depth`: replaces the setting made at that depth
    /// and returns the value it held, or pushes a new setting and returns
    /// `None`, in which case the caller records it in the frame at `depth`.
    /// The old value is the caller's to drop.
    #[inline(always)]
    pub(crate) fn set(&mut self, depth: u32, value: T) -> Option<Value<T>> {
        match self.entries.last_mut() {
            Some(top) if top.depth == depth => {
                Some(std::mem::replace(&mut top.value, Value::Owned(value)))
            }
            _ => {
                self.push(Entry {
                    depth,
                    value: Value::Owned(value),
                });
                None
            }
        }
    }

    /// Sets the value at depth 0, under any deeper settings; returns the
    /// value it replaces, as [`set`](Self::set) does.
    pub(crate) fn set_root(&mut self, value: T) -> Option<Value<T>> {
        let value = Value::Owned(value);
        match self.entries.first_mut() {
            Some(first) if first.depth == 0 => Some(std::mem::replace(&mut first.value, value)),
            _ => {
                self.entries.insert(0, Entry { depth: 0, value });
                None
            }
        }
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Entry<T>> {
        self.entries.pop()
    }

    /// Takes every setting out of the slot.
    pub(crate) fn take_all(&mut self) -> Vec<Entry<T>> {
        std::mem::take(&mut self.entries)
    }

    #[inline(always)]
    fn push(&mut self, entry: Entry<T>) {
        if self.entries.len() == self.entries.capacity() {
            self.grow();
        }
        self.entries.push(entry);
    }

    /// Doubles the room for settings, starting from one: most keys are set
    /// once per stack, and a suspended scope holds its root's slots.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        self.entries.reserve_exact(self.entries.capacity().max(1));
    }
}

/// A key's values as the engine sees them without knowing their type, on
/// a stack or in a checkpoint off it: what moves values between the two.
///
/// Values move only between places of one key, so always between places
/// of one value type.
pub(crate) trait Erased: Any + Send {
    /// The tag of the key: what tables find it by.
    fn tag(&self) -> u32;

    /// The name of the key, for `Debug`.
    fn key_name(&self) -> &'static str;

    /// Whether the key is [private](Key::private), for `Debug`.
    fn private(&self) -> bool;

    /// How many values it holds.
    fn len(&self) -> usize;

    /// A new, empty stack slot of the same key.
    fn slot(&self) -> Box<dyn ErasedSlot>;

    /// A new, empty checkpoint place of the same key.
    fn carrier(&self) -> Box<dyn Erased>;

    /// Moves the innermost value into `into`, a place of the same key, at
    /// `depth`; returns whether there was one.
    fn move_top(&mut self, into: &mut dyn Erased, depth: u32) -> bool;

    /// Takes the value out of `value`, an `Option<Value<T>>` of the key's
    /// type, as the innermost one, at `depth`.
    fn receive(&mut self, value: &mut dyn Any, depth: u32);
}

/// A stack's slot: also what leaving a frame and a snapshot do to it.
pub(crate) trait ErasedSlot: Erased {
    /// Whether the key is [inherited](Key::inherited).
    fn inherited(&self) -> bool;

    /// Whether dropping a value may run code (the value type has drop glue).
    fn drops(&self) -> bool;

    /// The depth of the innermost setting.
    fn top_depth(&self) -> Option<u32>;

    /// Drops the innermost setting.
    fn drop_top(&mut self);

    /// Drops every setting, first first; a destructor that panics does not
    /// stop the others, and its panic is kept in `panics`.
    fn drop_all(&mut self, panics: &mut Panics);

    /// A checkpoint place sharing the innermost setting: what a snapshot
    /// carries. `None` unless the key is inherited.
    fn share_top(&mut self) -> Option<Box<dyn Erased>>;
}

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

/// A place found under a key's tag was made for that key, so it has the
/// key's value type.
#[inline]
pub(crate) fn downcast<S>(place: Option<S>) -> S {
    place.expect("stackholm: a slot holds the value type of the key it was made for")
}
