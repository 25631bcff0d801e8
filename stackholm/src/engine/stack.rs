//! The stack: checkpoints over the slots of the keys set in them, and the
//! path every read and write takes, from the key's tag to its value.
//!
//! Nothing here runs user code. What a method takes off the stack it
//! hands back, to the caller or into [`Removed`], for the layer above to
//! drop when that is safe: the owned `Stack` at once, an ambient storage
//! once its borrow is released. Values whose drop runs no code are dropped
//! in place. Moving checkpoints on and off whole, and leaving step by step
//! past exit hooks, are the children `moves` and `steps`.

mod moves;
mod steps;

use std::fmt;
use std::ops::{Deref, DerefMut};

use super::checkpoint::Checkpoint;
use super::ids::{FrameId, FrameIds};
use super::panics::Panics;
use super::removed::Removed;
use super::slots::{Setting, Slots, Value};
use crate::error::{no_checkpoint, Operation, SetError};
use crate::exit::Hook;
use crate::Key;

pub(crate) use steps::{leave_by_steps, Clearing, Step, Until};

/// A LIFO stack of checkpoints and the values set in them.
///
/// A storage of its own: a `Stack` you hold yourself and use through
/// `&mut`. For a stack per thread or per task, see
/// [`Storage`](crate::Storage).
///
/// A value set in a checkpoint ([`set`](Self::set), [`get`](Self::get)) is
/// visible in it and in every checkpoint nested in it; a nested checkpoint
/// that sets the same key shadows the outer value until it is left. The
/// values of a [private](Key::private) key are visible in the one checkpoint
/// that set them only.
///
/// Reading the nearest value costs the same at any depth and with any number
/// of keys set: each key keeps its own stack of settings, innermost last.
///
/// ```
/// use stackholm::{Key, Stack};
///
/// static A: Key<i32> = Key::new("a");
///
/// let mut stack = Stack::new();
/// {
///     let mut outer = stack.enter();
///     outer.set(&A, 1)?;
///     {
///         let mut inner = outer.enter();
///         assert_eq!(inner.get(&A), Some(&1));
///         inner.set(&A, 2)?;
///         assert_eq!(inner.get(&A), Some(&2));
///     }
///     assert_eq!(outer.get(&A), Some(&1));
/// }
/// assert_eq!(stack.get(&A), None);
/// assert!(stack.set(&A, 3).is_err(), "no checkpoint is active");
/// # Ok::<(), stackholm::Error>(())
/// ```
#[derive(Default)]
pub struct Stack {
    /// The active checkpoints, outermost first.
    frames: Vec<Frame>,
    /// The settings every frame holds, frame after frame: a frame's are
    /// from its `start` to the next frame's.
    settings: Vec<Setting>,
    /// Exit hooks with the depth of their frame, in the order of the
    /// frames, each frame's in the order registered.
    hooks: Vec<(u32, Hook)>,
    slots: Slots,
    /// Ids for the checkpoints entered here.
    ids: FrameIds,
    /// Values taken off with drop glue, dropped before a method returns
    /// (an ambient storage's, after its borrow is released).
    removed: Removed,
}

/// One active checkpoint.
#[derive(Debug)]
struct Frame {
    id: FrameId,
    name: Option<&'static str>,
    /// Where its settings start in [`Stack::settings`].
    start: u32,
}

impl Stack {
    /// An empty stack: no checkpoint is active.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            frames: Vec::new(),
            settings: Vec::new(),
            hooks: Vec::new(),
            slots: Slots::new(),
            ids: FrameIds::new(),
            removed: Removed::new(),
        }
    }

    /// How many checkpoints are active.
    #[inline]
    #[must_use]
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    /// Enters a new, empty checkpoint; it is left when the guard is dropped.
    ///
    /// The guard dereferences to the stack, so everything is done through it
    /// while it lives, nested checkpoints included.
    #[inline]
    pub fn enter(&mut self) -> StackGuard<'_> {
        let id = self.open();
        StackGuard { stack: self, id }
    }

    /// Sets a value in the innermost checkpoint, replacing the value that
    /// checkpoint already held for `key` and shadowing any outer one until
    /// the checkpoint is left.
    ///
    /// # Errors
    ///
    /// [`Error::NoCheckpoint`](crate::Error::NoCheckpoint) if no checkpoint
    /// is active; the error hands the value back.
    // Always inlined: called, its `Result` came back through memory, and
    // request_like measured 14 instructions more.
    #[inline(always)]
    pub fn set<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<(), SetError<T>> {
        match self.replace(key, value) {
            Ok(replaced) => {
                drop(replaced);
                Ok(())
            }
            Err(value) => Err(no_checkpoint(Operation::Set, key, value, false)),
        }
    }

    /// The nearest value of `key`: the one set by the innermost checkpoint
    /// that set it (for a [private](Key::private) key, by the innermost
    /// checkpoint itself). `None` if none did, or if no checkpoint is
    /// active at all.
    // Always inlined: the read is a few instructions, and a call around it
    // measured a quarter more (read_nearest in `benches/instructions.sh`).
    #[inline(always)]
    #[must_use]
    pub fn get<T: Send + 'static>(&self, key: &'static Key<T>) -> Option<&T> {
        let (setting, slot) = self.slots.typed(key)?;
        let top = slot.top()?;
        if setting.private() && top.depth as usize + 1 != self.frames.len() {
            return None;
        }
        Some(top.value.get())
    }

    /// Enters a new, empty checkpoint and returns its id.
    #[inline]
    pub(crate) fn open(&mut self) -> FrameId {
        let id = self.ids.next();
        if self.frames.len() == self.frames.capacity() {
            self.grow();
        }
        self.frames.push(Frame {
            id,
            name: None,
            start: self.settings.len() as u32,
        });
        id
    }

    /// Enters `checkpoint`, moving its values, name and hooks in, and
    /// returns its id.
    #[inline]
    pub(crate) fn open_with(&mut self, checkpoint: &mut Checkpoint) -> FrameId {
        let id = self.open();
        if !checkpoint.brings_nothing() {
            self.move_in(checkpoint);
        }
        id
    }

    /// Enters `root`, taken whole: a scope's first checkpoint.
    #[inline]
    pub(crate) fn open_root(&mut self, mut root: Checkpoint) -> FrameId {
        let id = self.open_with(&mut root);
        if root.holds_nothing() {
            // Its drop, out of line, would only find that out again.
            std::mem::forget(root);
        }
        id
    }

    /// Doubles the room for frames, starting from one: a suspended scope
    /// holds its root only, and should not hold room for four.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        self.frames.reserve_exact(self.frames.capacity().max(1));
    }

    /// Sets a value in the innermost checkpoint; returns the value it
    /// replaces, if dropping it may run code (the caller's to drop, with
    /// nothing borrowed; any other is dropped here), or gives `value` back
    /// if no checkpoint is active.
    // Always inlined, like the read: the caller then drops what is replaced
    // without a result passed through memory.
    #[inline(always)]
    pub(crate) fn replace<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<Option<Value<T>>, T> {
        let Some(depth) = self.frames.len().checked_sub(1) else {
            return Err(value);
        };
        let (setting, slot) = self.slots.typed_or_insert(key);
        let replaced = slot.set(depth as u32, value);
        if replaced.is_none() {
            self.settings.push(setting);
        }
        // A value whose type runs no code when dropped (shared or not) is
        // dropped here: the caller then has nothing to hand out, and a set
        // of such values compiles to no check for one.
        Ok(replaced.filter(|_| std::mem::needs_drop::<T>()))
    }

    /// Sets a value in the outermost checkpoint, under any settings of the
    /// checkpoints nested in it; as [`replace`](Self::replace) otherwise.
    #[inline(always)]
    pub(crate) fn replace_root<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<Option<Value<T>>, T> {
        if self.frames.len() > 1 {
            let replaced = self.replace_under(key, value);
            return Ok(replaced.filter(|_| std::mem::needs_drop::<T>()));
        }
        // The root is the innermost checkpoint, if there is one.
        self.replace(key, value)
    }

    /// The id of the innermost checkpoint, if one is active.
    #[inline]
    pub(crate) fn top_id(&self) -> Option<FrameId> {
        Some(self.frames.last()?.id)
    }

    /// Leaves the checkpoint `id` if it is the innermost one and has no
    /// exit hooks, its values kept for [`take_removed`](Self::take_removed):
    /// the common case of leaving, kept small enough to inline. Returns
    /// whether it did.
    // Always inlined: a call here measured 30 instructions more a leave.
    #[inline(always)]
    pub(crate) fn leave_top(&mut self, id: FrameId) -> bool {
        let on_top = self.frames.last().is_some_and(|top| top.id == id);
        if on_top && !self.top_has_hooks() {
            self.pop_top();
            true
        } else {
            false
        }
    }

    /// Whether the innermost checkpoint has exit hooks.
    #[inline]
    fn top_has_hooks(&self) -> bool {
        let depth = self.frames.len() as u32;
        self.hooks.last().is_some_and(|&(at, _)| at + 1 == depth)
    }

    /// Leaves the innermost checkpoint, whose hooks have run; values that
    /// run code when dropped go to `removed`, the last set first, the
    /// others are dropped here.
    #[inline]
    fn pop_top(&mut self) {
        debug_assert!(
            !self.top_has_hooks(),
            "hooks run before their frame is left"
        );
        let Some(frame) = self.frames.pop() else {
            return;
        };
        let start = frame.start as usize;
        for &setting in self.settings[start..].iter().rev() {
            let slot = self.slots.at_mut(setting);
            if setting.drops() {
                self.removed.keep(slot);
            } else {
                slot.drop_top();
            }
        }
        // Nothing above can fail halfway: no user code runs, and the
        // settings are cut once their values are off.
        self.settings.truncate(start);
    }

    /// The values taken off and waiting to be dropped, if there are any.
    #[inline]
    pub(crate) fn take_removed(&mut self) -> Option<Removed> {
        self.removed.take_full()
    }

    /// Takes back the buffer [`take_removed`](Self::take_removed) handed
    /// out, emptied, to reuse it.
    pub(crate) fn give_back(&mut self, emptied: Removed) {
        self.removed.give_back(emptied);
    }

    /// Leaves the checkpoint `id` and any still active inside it, running
    /// their exit hooks and dropping their values.
    #[inline]
    fn leave(&mut self, id: FrameId) {
        if !self.leave_top(id) {
            self.leave_stepwise(id);
        } else if !self.removed.is_empty() {
            let mut panics = Panics::default();
            self.removed.drop_all(&mut panics);
            panics.resume();
        }
    }
}

/// A checkpoint entered on a [`Stack`]; dropping the guard leaves it.
///
/// The guard dereferences to the stack, so nested checkpoints are entered
/// through it, and the borrow checker keeps them in LIFO order.
///
/// Dropping the guard leaves its checkpoint together with any checkpoint
/// still active inside it (one pushed through the guard with
/// [`Stack::push`]); if its checkpoint was already popped with
/// [`Stack::pop`], dropping it changes nothing.
#[must_use = "the checkpoint is left as soon as the guard is dropped"]
pub struct StackGuard<'a> {
    stack: &'a mut Stack,
    id: FrameId,
}

impl Deref for StackGuard<'_> {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        self.stack
    }
}

impl DerefMut for StackGuard<'_> {
    fn deref_mut(&mut self) -> &mut Stack {
        self.stack
    }
}

impl Drop for StackGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.stack.leave(self.id);
    }
}

impl fmt::Debug for StackGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackGuard")
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}
