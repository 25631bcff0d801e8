//! Values taken off a stack, to be dropped once nothing is borrowed.
//!
//! A value's destructor is user code: it may log, read the storage, or
//! enter checkpoints. It must not run while the storage's stack is borrowed,
//! or it would find the storage busy and the stack half-changed. Values
//! whose checkpoint ended are moved into [`Removed`] under the borrow, and
//! dropped after it is released, with the stack consistent.

use super::panics::Panics;
use super::slots::{ErasedSlot, Setting, Slots};

/// Values waiting to be dropped, in slots kept for reuse (one per key), so
/// that dropping values allocates nothing once warm.
///
/// One word until a value with drop glue is first kept.
#[derive(Default)]
pub(crate) struct Removed(Option<Box<Kept>>);

#[derive(Default)]
struct Kept {
    slots: Slots,
    /// The slots holding a value, in the order they were filled, which is
    /// the order they are dropped in.
    filled: Vec<Setting>,
}

impl Removed {
    pub(crate) const fn new() -> Self {
        Self(None)
    }

    /// Moves the innermost setting of `from` in, to be dropped by
    /// [`drop_all`](Self::drop_all).
    pub(crate) fn keep(&mut self, from: &mut dyn ErasedSlot) {
        let kept = self.0.get_or_insert_with(Box::default);
        let (setting, into) = kept.slots.erased_or_insert(from.tag(), || from.slot());
        if from.move_top(into, 0) {
            kept.filled.push(setting);
        }
    }

    /// Whether no value waits to be dropped.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|kept| kept.filled.is_empty())
    }

    /// Takes the values kept out, with their buffer, if there are any: to
    /// drop them once the cell holding this buffer is released.
    #[inline]
    pub(crate) fn take_full(&mut self) -> Option<Removed> {
        if self.is_empty() {
            None
        } else {
            Some(Removed(self.0.take()))
        }
    }

    /// Puts back a buffer [`take_full`](Self::take_full) took, emptied,
    /// unless a destructor's own leave made a new one meanwhile.
    pub(crate) fn give_back(&mut self, emptied: Removed) {
        debug_assert!(emptied.is_empty(), "its values are dropped first");
        if self.0.is_none() {
            self.0 = emptied.0;
        }
    }

    /// Drops every value kept, first kept first. A destructor that panics
    /// does not stop the others: the first panic is kept in `panics`.
    ///
    /// Call it with no storage borrowed.
    #[inline]
    pub(crate) fn drop_all(&mut self, panics: &mut Panics) {
        if !self.is_empty() {
            self.drop_kept(panics);
        }
    }

    #[cold]
    #[inline(never)]
    fn drop_kept(&mut self, panics: &mut Panics) {
        let Some(kept) = &mut self.0 else {
            return;
        };
        for setting in kept.filled.drain(..) {
            kept.slots.at_mut(setting).drop_all(panics);
        }
    }
}
