//! The slots of one stack (or checkpoint, or buffer of values to drop),
//! found from a key's tag through a small open-addressed table.

use std::any::Any;

use super::slot::{downcast, ErasedSlot, Slot};
use crate::Key;

/// Where a key's slot is in its [`Slots`], and what a frame needs to know
/// of it without asking the slot, in one word: a setting a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setting(u32);

impl Setting {
    fn new(position: usize, inherited: bool, drops: bool) -> Self {
        let position = u32::try_from(position)
            .ok()
            .filter(|&position| position < 1 << 30)
            .expect("stackholm: too many keys used on one stack");
        Self((position << 2) | (u32::from(inherited) << 1) | u32::from(drops))
    }

    /// Where the key's slot is.
    #[inline]
    pub(crate) fn position(self) -> usize {
        (self.0 >> 2) as usize
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
/// every stack (a suspended request's scope held 321 KB once 10,000 keys
/// had been used; `benches/examples/heap.rs`).
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

    #[inline]
    pub(crate) fn typed<T: Send + 'static>(&self, key: &'static Key<T>) -> Option<&Slot<T>> {
        let slot: &dyn Any = &**self.slots.get(self.find(key.peek_tag())?.position())?;
        Some(downcast(slot.downcast_ref()))
    }

    #[inline]
    pub(crate) fn typed_mut<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> Option<&mut Slot<T>> {
        let position = self.find(key.tag())?.position();
        let slot: &mut dyn Any = &mut **self.slots.get_mut(position)?;
        Some(downcast(slot.downcast_mut()))
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
        let setting = Setting::new(self.slots.len(), slot.inherited(), slot.drops());
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
                let found = slots.typed(earlier).and_then(Slot::top);
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
