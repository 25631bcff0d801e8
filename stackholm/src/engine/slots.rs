//! A stack's values by key: the settings of each key in a [`Slot`],
//! innermost last, found from the key's tag through a small open-addressed
//! table; and [`ErasedSlot`], what the engine does to a slot without
//! knowing its value type (implemented in `erased.rs`).
//!
//! A slot keeps its key's settings ordered by checkpoint depth, so the
//! nearest one is always the last: that is what makes a read O(1) at any
//! depth and with any number of other keys set.

use std::any::Any;
use std::sync::Arc;

use super::panics::Panics;
use crate::key::{Share, Shared};
use crate::Key;

/// Where a key's slot is in its [`Slots`], and what a frame or a read
/// needs to know of it without asking the slot, in one word: a setting a
/// frame holds, and what the table finds under a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setting(u32);

impl Setting {
    fn new(position: usize, slot: &dyn ErasedSlot) -> Self {
        let position = u32::try_from(position)
            .ok()
            .filter(|&position| position < 1 << 29)
            .expect("stackholm: too many keys used on one stack");
        let flag = |set: bool, bit: u32| u32::from(set) << bit;
        Self(
            (position << 3)
                | flag(slot.private(), 2)
                | flag(slot.inherited(), 1)
                | flag(slot.drops(), 0),
        )
    }

    /// Where the key's slot is.
    #[inline]
    pub(crate) fn position(self) -> usize {
        (self.0 >> 3) as usize
    }

    /// Whether the key is [private](Key::private): read here with the
    /// slot, rather than from the key, in the same load.
    #[inline]
    pub(crate) fn private(self) -> bool {
        self.0 & 4 != 0
    }

    /// Whether a snapshot may share the setting's value.
    #[inline]
    pub(crate) fn inherited(self) -> bool {
        self.0 & 2 != 0
    }

    /// Whether dropping the value may run code, so that it must wait until
    /// no storage is borrowed.
    #[inline]
    pub(crate) fn drops(self) -> bool {
        self.0 & 1 != 0
    }
}

/// Slots, in order of first use, and the table that finds them.
///
/// A table of its own, not a vector indexed by tag: tags are process-wide,
/// so such a vector would grow with every key the process has used, in
/// every stack (in 0.1, a request's scope with a two-value root, boxed
/// around a waiting future, held 320,439 bytes once 10,000 keys had been
/// used, 792 before; as `benches/examples/heap.rs` counts).
#[derive(Default)]
pub(crate) struct Slots {
    slots: Vec<Box<dyn ErasedSlot>>,
    /// `(tag, setting)`, tag [`FREE`] where free; a power of two long and
    /// at most half full, so that every probe ends.
    table: Vec<(u32, Setting)>,
}

/// The tag of a free place: no key's. Not 0, which is the tag of a key
/// not used yet, so that a read of such a key (which need not assign it
/// one) finds nothing without a check of its own.
const FREE: u32 = u32::MAX;

/// Where a probe for `tag` starts in a table of `mask + 1` places. Tags are
/// handed out one after the other, so the keys a stack uses mostly have
/// tags close together, which their low bits already keep apart.
#[inline]
fn start(tag: u32, mask: usize) -> usize {
    tag as usize & mask
}

impl Slots {
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            table: Vec::new(),
        }
    }

    /// The setting naming the slot under `tag`.
    #[inline]
    pub(crate) fn find(&self, tag: u32) -> Option<Setting> {
        // An empty table's mask starts the probe out of bounds: one check
        // for both.
        let mask = self.table.len().wrapping_sub(1);
        let mut at = start(tag, mask);
        loop {
            match *self.table.get(at)? {
                (stored, setting) if stored == tag => return Some(setting),
                (FREE, _) => return None,
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// The key's slot, with its setting: one probe and one type check.
    #[inline]
    pub(crate) fn typed<T: Send + 'static>(
        &self,
        key: &'static Key<T>,
    ) -> Option<(Setting, &Slot<T>)> {
        let setting = self.find(key.peek_tag())?;
        let slot: &dyn Any = &**self.slots.get(setting.position())?;
        Some((setting, downcast(slot.downcast_ref())))
    }

    /// The key's slot, with its setting, to change it.
    pub(crate) fn typed_mut<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> Option<(Setting, &mut Slot<T>)> {
        let setting = self.find(key.tag())?;
        let slot: &mut dyn Any = &mut **self.slots.get_mut(setting.position())?;
        Some((setting, downcast(slot.downcast_mut())))
    }

    /// The key's slot and its setting, made on the key's first use here.
    #[inline(always)]
    pub(crate) fn typed_or_insert<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> (Setting, &mut Slot<T>) {
        let tag = key.tag();
        let setting = match self.find(tag) {
            Some(setting) => setting,
            None => self.insert(tag, Box::new(Slot::new(key))),
        };
        let slot: &mut dyn Any = &mut *self.slots[setting.position()];
        (setting, downcast(slot.downcast_mut()))
    }

    /// The slot under `tag` and its setting, made with `make` if there is
    /// none.
    pub(crate) fn erased_or_insert(
        &mut self,
        tag: u32,
        make: impl FnOnce() -> Box<dyn ErasedSlot>,
    ) -> (Setting, &mut dyn ErasedSlot) {
        let setting = match self.find(tag) {
            Some(setting) => setting,
            None => self.insert(tag, make()),
        };
        (setting, &mut *self.slots[setting.position()])
    }

    /// Adds a slot: once per key and stack, so out of the way of every
    /// later set.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, tag: u32, slot: Box<dyn ErasedSlot>) -> Setting {
        let setting = Setting::new(self.slots.len(), &*slot);
        if self.slots.len() == self.slots.capacity() {
            // From one, doubling: a suspended scope holds its root's slots.
            self.slots.reserve_exact(self.slots.capacity().max(1));
        }
        self.slots.push(slot);
        if self.table.len() < 2 * self.slots.len() {
            let len = (2 * self.slots.len()).next_power_of_two().max(4);
            let old = std::mem::replace(&mut self.table, vec![(FREE, setting); len]);
            for (tag, setting) in old.into_iter().filter(|&(tag, _)| tag != FREE) {
                self.put(tag, setting);
            }
        }
        self.put(tag, setting);
        setting
    }

    fn put(&mut self, tag: u32, setting: Setting) {
        let mask = self.table.len() - 1;
        let mut at = start(tag, mask);
        while self.table[at].0 != FREE {
            at = (at + 1) & mask;
        }
        self.table[at] = (tag, setting);
    }

    /// The slot a setting names.
    #[inline]
    pub(crate) fn at_mut(&mut self, setting: Setting) -> &mut dyn ErasedSlot {
        &mut *self.slots[setting.position()]
    }

    /// How many slots there are.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &dyn ErasedSlot> {
        self.slots.iter().map(|slot| &**slot)
    }
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
    pub(super) key: &'static Key<T>,
    pub(super) entries: Vec<Entry<T>>,
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
    pub(super) fn push(&mut self, entry: Entry<T>) {
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

/// A place found under a key's tag was made for that key, so it has the
/// key's value type.
#[inline]
pub(crate) fn downcast<S>(place: Option<S>) -> S {
    place.expect("stackholm: a slot holds the value type of the key it was made for")
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
            let (setting, slot) = slots.typed_or_insert(key);
            assert_eq!(setting.position(), n, "positions in order of first use");
            assert!(slot.set(0, n).is_none());
            for (m, earlier) in keys[..=n].iter().enumerate().step_by(97) {
                let found = slots.typed(earlier).and_then(|(_, slot)| slot.top());
                assert_eq!(found.map(|entry| *entry.value.get()), Some(m));
            }
            assert!(slots.typed(absent).is_none());
        }
        assert_eq!(slots.iter().count(), 1000);
        assert_eq!(
            slots.find(keys[500].tag()).map(Setting::position),
            Some(500)
        );
        assert_eq!(slots.find(absent.tag()), None);
    }
}
