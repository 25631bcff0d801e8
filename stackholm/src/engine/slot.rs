//! Per-key value stacks: where the values of one key live in one stack.
//!
//! Each key owns a dense slot, found by the key's index without hashing. A
//! slot keeps the settings of its key as a stack ordered by checkpoint depth,
//! so the nearest setting is always the last one: that is what makes a read
//! O(1) at any depth and with any number of other keys set.

use std::any::Any;

use super::carrier::{Carried, Carrier};
use super::doomed::Doomed;
use super::value::Value;
use crate::Key;

/// Which of a checkpoint's two maps a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Inherited by nested checkpoints, shadowed by their own settings.
    Checkpoint = 0,
    /// Private to the one checkpoint that set it.
    Block = 1,
}

/// One setting of a key: the value and the depth of the checkpoint holding it.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    pub(crate) depth: u32,
    pub(crate) value: Value<T>,
}

/// The settings of one key, both kinds, innermost last.
#[derive(Debug)]
pub(crate) struct Slot<T: 'static> {
    key: &'static Key<T>,
    entries: [Vec<Entry<T>>; 2],
}

impl<T: Send + 'static> Slot<T> {
    pub(crate) fn new(key: &'static Key<T>) -> Self {
        Self {
            key,
            entries: [Vec::new(), Vec::new()],
        }
    }

    #[inline]
    pub(crate) fn top(&self, kind: Kind) -> Option<&Entry<T>> {
        self.entries[kind as usize].last()
    }

    /// Sets the value at `depth`: replaces the setting made at that depth
    /// and returns the value it held, or pushes a new setting and returns
    /// `None`, in which case the caller must record it in the frame at
    /// `depth`. The old value is the caller's to drop, once the stack is no
    /// longer borrowed.
    #[inline]
    pub(crate) fn set(&mut self, kind: Kind, depth: u32, value: Value<T>) -> Option<Value<T>> {
        let entries = &mut self.entries[kind as usize];
        match entries.last_mut() {
            Some(top) if top.depth == depth => Some(std::mem::replace(&mut top.value, value)),
            _ => {
                entries.push(Entry { depth, value });
                None
            }
        }
    }

    /// Sets the value of the outermost checkpoint (depth 0), under any
    /// settings of nested ones; returns the value it replaces, as
    /// [`set`](Self::set) does.
    pub(crate) fn set_root(&mut self, kind: Kind, value: Value<T>) -> Option<Value<T>> {
        let entries = &mut self.entries[kind as usize];
        match entries.first_mut() {
            Some(first) if first.depth == 0 => Some(std::mem::replace(&mut first.value, value)),
            _ => {
                entries.insert(0, Entry { depth: 0, value });
                None
            }
        }
    }

    #[inline]
    pub(crate) fn pop(&mut self, kind: Kind) -> Option<Entry<T>> {
        self.entries[kind as usize].pop()
    }

    /// Takes every setting of `kind` out of the slot.
    pub(crate) fn take_all(&mut self, kind: Kind) -> Vec<Entry<T>> {
        std::mem::take(&mut self.entries[kind as usize])
    }
}

impl<T: Send + Sync + 'static> Slot<T> {
    /// Shares the nearest checkpoint value, for a snapshot.
    fn share_top(&mut self) -> Option<Entry<T>> {
        let entries = &mut self.entries[Kind::Checkpoint as usize];
        let Entry { depth, value } = entries.pop()?;
        let (kept, shared) = value.share();
        entries.push(Entry { depth, value: kept });
        Some(Entry {
            depth,
            value: Value::Shared(shared),
        })
    }
}

/// A carrier sharing the nearest checkpoint value of `slot`, a `Slot<T>`:
/// what an [inherited](Key::inherited) key shares with snapshots. Only keys
/// whose values are `Sync` have it, which is what makes a value of any
/// other key free not to be.
pub(crate) fn share_top<T: Send + Sync + 'static>(slot: &mut dyn Any) -> Option<Box<dyn Carrier>> {
    let slot: &mut Slot<T> = downcast(slot.downcast_mut());
    let entry = slot.share_top()?;
    Some(Box::new(Carried::new(
        slot.key,
        Kind::Checkpoint,
        entry.value,
    )))
}

/// The operations the stack runs on a slot without knowing its value type.
pub(crate) trait ErasedSlot: Any + Send {
    /// Moves the innermost setting of `kind` into `doomed`, to be dropped
    /// once the stack is no longer borrowed.
    fn doom_top(&mut self, kind: Kind, doomed: &mut Doomed);

    /// Moves the innermost setting of `kind` out into a new carrier, so that
    /// a popped checkpoint keeps the values set in it.
    fn detach_top(&mut self, kind: Kind) -> Option<Box<dyn Carrier>>;

    /// A carrier sharing the nearest checkpoint value, if there is one and
    /// the key is inherited.
    fn share_top_checkpoint_value(&mut self) -> Option<Box<dyn Carrier>>;

    /// The name of the slot's key, for `Debug`.
    fn key_name(&self) -> &'static str;

    /// Whether dropping a value of the slot's type may run code.
    fn has_drop_glue(&self) -> bool;

    /// How many settings of `kind` the slot holds.
    fn len(&self, kind: Kind) -> usize;

    /// The depth of the innermost setting of `kind`.
    fn top_depth(&self, kind: Kind) -> Option<u32>;
}

impl<T: Send + 'static> ErasedSlot for Slot<T> {
    #[inline]
    fn doom_top(&mut self, kind: Kind, doomed: &mut Doomed) {
        if let Some(entry) = self.pop(kind) {
            doomed.keep(self.key, kind, entry.value);
        }
    }

    fn detach_top(&mut self, kind: Kind) -> Option<Box<dyn Carrier>> {
        let entry = self.pop(kind)?;
        Some(Box::new(Carried::new(self.key, kind, entry.value)))
    }

    fn share_top_checkpoint_value(&mut self) -> Option<Box<dyn Carrier>> {
        let share = self.key.sharing()?;
        share(self)
    }

    fn key_name(&self) -> &'static str {
        self.key.name()
    }

    fn has_drop_glue(&self) -> bool {
        std::mem::needs_drop::<T>()
    }

    fn len(&self, kind: Kind) -> usize {
        self.entries[kind as usize].len()
    }

    fn top_depth(&self, kind: Kind) -> Option<u32> {
        Some(self.top(kind)?.depth)
    }
}

/// Every slot of one stack, indexed by key index.
#[derive(Default)]
pub(crate) struct Slots {
    slots: Vec<Option<Box<dyn ErasedSlot>>>,
}

impl Slots {
    pub(crate) const fn new() -> Self {
        Self { slots: Vec::new() }
    }

    #[inline]
    pub(crate) fn typed<T: Send + 'static>(&self, key: &'static Key<T>) -> Option<&Slot<T>> {
        let slot: &dyn Any = self.slots.get(key.index())?.as_deref()?;
        Some(downcast(slot.downcast_ref()))
    }

    #[inline]
    pub(crate) fn typed_mut<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> Option<&mut Slot<T>> {
        let slot: &mut dyn Any = self.slots.get_mut(key.index())?.as_deref_mut()?;
        Some(downcast(slot.downcast_mut()))
    }

    /// The key's slot, created on the key's first use in this stack.
    #[inline]
    pub(crate) fn typed_or_insert<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        index: usize,
    ) -> &mut Slot<T> {
        if !matches!(self.slots.get(index), Some(Some(_))) {
            self.insert(key, index);
        }
        let slot: &mut dyn Any = self.slots[index]
            .as_deref_mut()
            .expect("stackholm: the slot was created above");
        downcast(slot.downcast_mut())
    }

    /// Creates the key's slot: once per key and stack, so out of the way of
    /// every later set.
    #[cold]
    #[inline(never)]
    fn insert<T: Send + 'static>(&mut self, key: &'static Key<T>, index: usize) {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(Box::new(Slot::new(key)));
    }

    #[inline]
    pub(crate) fn erased(&self, index: u32) -> Option<&dyn ErasedSlot> {
        self.slots.get(index as usize)?.as_deref()
    }

    #[inline]
    pub(crate) fn erased_mut(&mut self, index: u32) -> Option<&mut dyn ErasedSlot> {
        self.slots.get_mut(index as usize)?.as_deref_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &dyn ErasedSlot> {
        self.slots.iter().filter_map(|slot| slot.as_deref())
    }
}

/// A key's index is assigned to that one key, and its slot is created from
/// it, so the slot found at the index always has the key's value type.
#[inline]
fn downcast<S>(slot: Option<S>) -> S {
    slot.expect("stackholm: a slot holds the value type of the key it was created for")
}
