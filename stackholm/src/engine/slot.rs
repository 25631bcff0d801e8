//! The settings of one key, and the one way the engine handles values
//! without knowing their type.
//!
//! A [`Slot<T>`] keeps the settings of its key as a stack ordered by
//! checkpoint depth, so the nearest setting is always the last one: that is
//! what makes a read O(1) at any depth and with any number of other keys
//! set. Stacks, checkpoints off the stack and values waiting to be dropped
//! all keep their values in slots, and move them between each other through
//! [`ErasedSlot`].

use std::any::Any;

use super::panics::Panics;
use super::value::Value;
use crate::Key;

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

/// A slot as the engine sees it without knowing its value type: what a
/// frame leaving, a checkpoint entering or a snapshot does to it.
///
/// Slots of one key have one value type, so the slot a value moves into is
/// always of its own type.
pub(crate) trait ErasedSlot: Any + Send {
    /// The tag of the slot's key: what tables find it by.
    fn tag(&self) -> u32;

    /// Whether the key is [inherited](Key::inherited).
    fn inherited(&self) -> bool;

    /// Whether dropping a value may run code (the value type has drop glue).
    fn drops(&self) -> bool;

    /// The name of the slot's key, for `Debug`.
    fn key_name(&self) -> &'static str;

    /// Whether the key is [private](Key::private), for `Debug`.
    fn private(&self) -> bool;

    /// How many settings the slot holds.
    fn len(&self) -> usize;

    /// The depth of the innermost setting.
    fn top_depth(&self) -> Option<u32>;

    /// A new, empty slot of the same key.
    fn empty(&self) -> Box<dyn ErasedSlot>;

    /// Moves the innermost setting into `into`, a slot of the same key, at
    /// `depth`; returns whether there was one.
    fn move_top(&mut self, into: &mut dyn ErasedSlot, depth: u32) -> bool;

    /// Drops the innermost setting, for a value type whose drop runs no
    /// code.
    fn drop_top(&mut self);

    /// Drops every setting, first first; a destructor that panics does not
    /// stop the others, and its panic is kept in `panics`.
    fn drop_all(&mut self, panics: &mut Panics);

    /// A new slot sharing the innermost setting, at depth 0: what a snapshot
    /// carries. `None` unless the key is inherited.
    fn share_top(&mut self) -> Option<Box<dyn ErasedSlot>>;
}

impl<T: Send + 'static> ErasedSlot for Slot<T> {
    fn tag(&self) -> u32 {
        self.key.tag()
    }

    fn inherited(&self) -> bool {
        self.key.sharing().is_some()
    }

    fn drops(&self) -> bool {
        std::mem::needs_drop::<T>()
    }

    fn key_name(&self) -> &'static str {
        self.key.name()
    }

    fn private(&self) -> bool {
        self.key.is_private()
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn top_depth(&self) -> Option<u32> {
        Some(self.top()?.depth)
    }

    fn empty(&self) -> Box<dyn ErasedSlot> {
        Box::new(Self::new(self.key))
    }

    fn move_top(&mut self, into: &mut dyn ErasedSlot, depth: u32) -> bool {
        let into: &mut Self = downcast((into as &mut dyn Any).downcast_mut());
        let Some(Entry { value, .. }) = self.pop() else {
            return false;
        };
        into.push(Entry { depth, value });
        true
    }

    #[inline]
    fn drop_top(&mut self) {
        debug_assert!(!std::mem::needs_drop::<T>(), "dropped in place");
        self.pop();
    }

    fn drop_all(&mut self, panics: &mut Panics) {
        // Drained, so that the slot keeps its room for the next ones.
        let mut entries = self.entries.drain(..);
        while entries.len() > 0 {
            panics.catch(|| entries.by_ref().for_each(drop));
        }
    }

    fn share_top(&mut self) -> Option<Box<dyn ErasedSlot>> {
        let share = self.key.sharing()?;
        let Entry { depth, value } = self.pop()?;
        let (kept, shared) = value.share(share);
        self.push(Entry { depth, value: kept });
        let mut carried = Self::new(self.key);
        carried.push(Entry {
            depth: 0,
            value: Value::Shared(shared),
        });
        Some(Box::new(carried))
    }
}

/// A slot found under a key's tag was made for that key, so it has the
/// key's value type.
#[inline]
pub(crate) fn downcast<S>(slot: Option<S>) -> S {
    slot.expect("stackholm: a slot holds the value type of the key it was made for")
}
