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

    /// The index of the slot's key.
    fn key_index(&self) -> usize;
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

    fn key_index(&self) -> usize {
        self.key.index()
    }
}

/// Every slot of one stack: the slots of the keys it has used, found from
/// a key's tag (its index + 1) through a small open-addressed table.
///
/// A table of the stack's own, not a vector indexed by key index: key
/// indexes are process-wide, so such a vector grows with every key the
/// process has used, in every stack (a suspended request's scope held
/// 321 KB once 10,000 keys had been used; `benches/examples/heap.rs`).
#[derive(Default)]
pub(crate) struct Slots {
    /// In order of first use.
    slots: Vec<Box<dyn ErasedSlot>>,
    /// `(tag, position in slots)`, `(0, _)` where free; a power of two long
    /// and at most half full, so that every probe ends.
    table: Vec<(u32, u32)>,
}

/// Where a probe for `tag` starts in a table of `mask + 1` places:
/// multiplying by an odd constant maps consecutive tags, which keys mostly
/// have, to distinct places.
#[inline]
fn start(tag: u32, mask: usize) -> usize {
    tag.wrapping_mul(0x9E37_79B9) as usize & mask
}

impl Slots {
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            table: Vec::new(),
        }
    }

    /// Where the slot under `tag` is in `slots`.
    #[inline]
    fn position(&self, tag: u32) -> Option<usize> {
        // An empty table's mask starts the probe out of bounds: one check
        // for both.
        let mask = self.table.len().wrapping_sub(1);
        let mut at = start(tag, mask);
        loop {
            match *self.table.get(at)? {
                (stored, position) if stored == tag => return Some(position as usize),
                (0, _) => return None,
                _ => at = (at + 1) & mask,
            }
        }
    }

    #[inline]
    pub(crate) fn typed<T: Send + 'static>(&self, key: &'static Key<T>) -> Option<&Slot<T>> {
        let slot: &dyn Any = &**self.slots.get(self.position(key.tag())?)?;
        Some(downcast(slot.downcast_ref()))
    }

    #[inline]
    pub(crate) fn typed_mut<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> Option<&mut Slot<T>> {
        let position = self.position(key.tag())?;
        let slot: &mut dyn Any = &mut **self.slots.get_mut(position)?;
        Some(downcast(slot.downcast_mut()))
    }

    /// The key's slot and its position, created on the key's first use in
    /// this stack.
    #[inline]
    pub(crate) fn typed_or_insert<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> (u32, &mut Slot<T>) {
        let tag = key.tag();
        let position = match self.position(tag) {
            Some(position) => position,
            None => self.insert(key, tag),
        };
        let slot: &mut dyn Any = &mut *self.slots[position];
        (position as u32, downcast(slot.downcast_mut()))
    }

    /// The position of the key's slot, if the stack has used the key.
    pub(crate) fn position_of<T>(&self, key: &'static Key<T>) -> Option<u32> {
        Some(self.position(key.tag())? as u32)
    }

    /// Creates the key's slot: once per key and stack, so out of the way of
    /// every later set. Returns its position.
    #[cold]
    #[inline(never)]
    fn insert<T: Send + 'static>(&mut self, key: &'static Key<T>, tag: u32) -> usize {
        let position = self.slots.len();
        self.slots.push(Box::new(Slot::new(key)));
        if self.table.len() < 2 * self.slots.len() {
            let len = (2 * self.slots.len()).next_power_of_two().max(4);
            let old = std::mem::replace(&mut self.table, vec![(0, 0); len]);
            for (tag, position) in old.into_iter().filter(|&(tag, _)| tag != 0) {
                self.put(tag, position);
            }
        }
        self.put(tag, position as u32);
        position
    }

    fn put(&mut self, tag: u32, position: u32) {
        let mask = self.table.len() - 1;
        let mut at = start(tag, mask);
        while self.table[at].0 != 0 {
            at = (at + 1) & mask;
        }
        self.table[at] = (tag, position);
    }

    /// The slot at `position`, as a frame's setting names it.
    #[inline]
    pub(crate) fn at(&self, position: u32) -> &dyn ErasedSlot {
        &*self.slots[position as usize]
    }

    /// The slot at `position`, as a frame's setting names it.
    #[inline]
    pub(crate) fn at_mut(&mut self, position: u32) -> &mut dyn ErasedSlot {
        &mut *self.slots[position as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &dyn ErasedSlot> {
        self.slots.iter().map(|slot| &**slot)
    }
}

/// A key's index is assigned to that one key, and its slot is created from
/// it, so the slot found at the index always has the key's value type.
#[inline]
fn downcast<S>(slot: Option<S>) -> S {
    slot.expect("stackholm: a slot holds the value type of the key it was created for")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_finds_every_slot_as_it_grows_and_none_it_lacks() {
        let keys: Vec<&'static Key<usize>> = (0..1000)
            .map(|_| &*Box::leak(Box::new(Key::new("k"))))
            .collect();
        let absent: &'static Key<usize> = Box::leak(Box::new(Key::new("absent")));
        let mut slots = Slots::new();
        assert!(slots.typed(absent).is_none(), "an empty table");
        for (n, key) in keys.iter().enumerate() {
            let (position, slot) = slots.typed_or_insert(key);
            assert_eq!(position as usize, n, "positions in order of first use");
            assert!(slot.set(Kind::Checkpoint, 0, Value::Owned(n)).is_none());
            for (m, earlier) in keys[..=n].iter().enumerate().step_by(97) {
                let found = slots
                    .typed(earlier)
                    .and_then(|slot| slot.top(Kind::Checkpoint));
                assert_eq!(found.map(|entry| *entry.value.get()), Some(m));
            }
            assert!(slots.typed(absent).is_none());
        }
        assert_eq!(slots.iter().count(), 1000);
        assert_eq!(slots.position_of(keys[500]), Some(500));
        assert_eq!(slots.position_of(absent), None);
    }
}
