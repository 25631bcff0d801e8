//! The owned stack: the frames core, with the values it takes off dropped
//! at once.

use std::convert::Infallible;
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::checkpoint::Checkpoint;
use super::frames::{Clearing, Frames, Step, Until};
use super::ids::{FrameId, FrameIds};
use super::leave::leave_by_steps;
use super::panics::Panics;
use super::removed::Cleared;
use super::removed::Removed;
use super::slot::{Entry, Value};
use crate::error::{Operation, SetError};
use crate::exit::{Hook, Outcome};
use crate::{Error, Key};

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
    frames: Frames,
    /// Ids for the checkpoints entered here.
    ids: FrameIds,
    /// Values taken off with drop glue, dropped before a method returns
    /// (an ambient storage's, after its borrow is released).
    removed: Removed,
}

impl Stack {
    /// An empty stack: no checkpoint is active.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            frames: Frames::new(),
            ids: FrameIds::new(),
            removed: Removed::new(),
        }
    }

    /// How many checkpoints are active.
    #[inline]
    #[must_use]
    pub fn depth(&self) -> usize {
        self.frames.depth()
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

    /// Enters `checkpoint` with the values pre-loaded into it; they are
    /// visible until the guard is dropped.
    pub fn enter_with(&mut self, mut checkpoint: Checkpoint) -> StackGuard<'_> {
        let id = self.open_with(&mut checkpoint);
        StackGuard { stack: self, id }
    }

    /// Enters `checkpoint` without a guard; [`pop`](Self::pop) leaves it.
    ///
    /// This is the manual form of [`enter_with`](Self::enter_with), for
    /// checkpoints whose lifetime is not a lexical scope.
    pub fn push(&mut self, mut checkpoint: Checkpoint) {
        self.open_with(&mut checkpoint);
    }

    /// Leaves the innermost checkpoint and returns it, holding every value
    /// that was set in it; entering it again brings them back. `None` if no
    /// checkpoint is active.
    ///
    /// ```
    /// # use stackholm::{Checkpoint, Key, Stack};
    /// static A: Key<u8> = Key::new("a");
    ///
    /// let mut stack = Stack::new();
    /// stack.push(Checkpoint::new());
    /// stack.set(&A, 7)?;
    /// let saved = stack.pop().expect("a checkpoint is active");
    /// assert_eq!(stack.get(&A), None);
    ///
    /// stack.push(saved);
    /// assert_eq!(stack.get(&A), Some(&7));
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    pub fn pop(&mut self) -> Option<Checkpoint> {
        let mut checkpoint = Checkpoint::new();
        self.frames.pop_into(&mut checkpoint)?;
        Some(checkpoint)
    }

    /// Sets a value in the innermost checkpoint, replacing the value that
    /// checkpoint already held for `key` and shadowing any outer one until
    /// the checkpoint is left.
    ///
    /// # Errors
    ///
    /// [`Error::NoCheckpoint`] if no checkpoint is active; the error hands
    /// the value back.
    #[inline]
    pub fn set<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<(), SetError<T>> {
        match self.frames.set(key, value) {
            Ok(replaced) => {
                drop(replaced);
                Ok(())
            }
            Err(value) => Err(no_checkpoint(Operation::Set, key, value)),
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
        self.frames.get(key)
    }

    /// Removes the nearest setting of `key`: the next outer setting, if any, becomes
    /// visible again. Returns whether there was a setting to remove: none
    /// where no checkpoint is active.
    ///
    /// The setting removed may belong to an outer checkpoint; it stays
    /// removed when the inner checkpoints are left. A
    /// [private](Key::private) key's setting is removed only from the
    /// innermost checkpoint, the only one where it is visible.
    pub fn remove<T: Send + 'static>(&mut self, key: &'static Key<T>) -> bool {
        self.frames.take_nearest(key).is_some()
    }

    /// Removes every setting of `key` in every active checkpoint and returns
    /// how many there were.
    pub fn reset<T: Send + 'static>(&mut self, key: &'static Key<T>) -> usize {
        self.frames.take_all(key).len()
    }

    /// A checkpoint pre-loaded with the checkpoint values visible here of
    /// every [inherited](Key::inherited) key: the nearest setting of each,
    /// shared rather than copied. Values of other keys stay here.
    ///
    /// Entering it on another stack (a spawned task's, another thread's)
    /// gives code there the values visible here; what it sets there stays
    /// there. Taking a snapshot costs a look at each value on the stack and
    /// one reference count per inherited value it carries, however many
    /// keys the thread has used; the first snapshot of a value moves it
    /// into a shared allocation.
    ///
    /// ```
    /// # use stackholm::{Key, Stack};
    /// static USER: Key<String> = Key::new("user").inherited();
    ///
    /// let mut parent = Stack::new();
    /// let mut root = parent.enter();
    /// root.set(&USER, "alice".to_owned())?;
    /// let snapshot = root.snapshot();
    ///
    /// let mut child = Stack::new();
    /// let mut inherited = child.enter_with(snapshot);
    /// assert_eq!(inherited.get(&USER).map(String::as_str), Some("alice"));
    /// inherited.set(&USER, "bob".to_owned())?;
    /// assert_eq!(root.get(&USER).map(String::as_str), Some("alice"));
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    #[must_use]
    pub fn snapshot(&mut self) -> Checkpoint {
        self.frames.snapshot()
    }

    /// The names of the active checkpoints that have one, outermost first;
    /// see [`Checkpoint::named`].
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.frames.names()
    }

    /// Enters a new, empty checkpoint and returns its id.
    #[inline]
    pub(crate) fn open(&mut self) -> FrameId {
        let id = self.ids.next();
        self.frames.enter(id);
        id
    }

    /// Enters `checkpoint` and returns its id.
    pub(crate) fn open_with(&mut self, checkpoint: &mut Checkpoint) -> FrameId {
        let id = self.ids.next();
        self.frames.enter_with(id, checkpoint);
        id
    }
}

/// What the ambient storages do to a stack: each method hands back what it
/// takes off (a replaced value, a removed one, values left in
/// `Removed`), for the storage to drop once its borrow is released.
impl Stack {
    /// Sets a value in the innermost checkpoint, or in the outermost one
    /// if `root`; returns the value it replaces, or `value` back if no
    /// checkpoint is active.
    #[inline(always)]
    pub(crate) fn replace<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
        root: bool,
    ) -> Result<Option<Value<T>>, T> {
        if root {
            self.frames.set_root(key, value)
        } else {
            self.frames.set(key, value)
        }
    }

    /// Takes the nearest setting of `key` off; see [`remove`](Self::remove).
    pub(crate) fn take_nearest<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> Option<Value<T>> {
        self.frames.take_nearest(key)
    }

    /// Takes every setting of `key` off; see [`reset`](Self::reset).
    pub(crate) fn take_all<T: Send + 'static>(&mut self, key: &'static Key<T>) -> Vec<Entry<T>> {
        self.frames.take_all(key)
    }

    /// Registers an exit hook on the innermost checkpoint, or on the
    /// outermost one if `root`; gives it back if no checkpoint is active.
    pub(crate) fn register(&mut self, hook: Hook, root: bool) -> Result<(), Hook> {
        self.frames.on_exit(hook, root)
    }

    /// The id of the innermost checkpoint, if one is active.
    #[inline]
    pub(crate) fn top_id(&self) -> Option<FrameId> {
        self.frames.top_id()
    }

    /// Takes the checkpoint `id` off into `checkpoint`, keeping its values,
    /// if it is the innermost one; returns whether it was.
    pub(crate) fn suspend(&mut self, id: FrameId, checkpoint: &mut Checkpoint) -> bool {
        self.frames.suspend(id, checkpoint)
    }

    /// Leaves the checkpoint `id` if it is the innermost one and has no
    /// exit hooks, its values kept for [`take_removed`](Self::take_removed);
    /// returns whether it did.
    #[inline]
    pub(crate) fn leave_top(&mut self, id: FrameId) -> bool {
        self.frames.leave_top(id, &mut self.removed)
    }

    /// One step of leaving towards `until` (see [`Frames::step`]), the
    /// values taken off kept for [`take_removed`](Self::take_removed).
    pub(crate) fn step(&mut self, until: Until) -> Step {
        self.frames.step(until, &mut self.removed)
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

    /// Leaves every checkpoint at once if none has an exit hook, handing
    /// their values back; see [`Frames::clear`].
    pub(crate) fn clear(&mut self) -> Clearing {
        self.frames.clear()
    }

    /// Puts back the slots [`clear`](Self::clear) took with the values;
    /// see [`Frames::restore`].
    pub(crate) fn restore(&mut self, cleared: Cleared) {
        self.frames.restore(cleared);
    }

    /// Whether the stack is small enough to keep for reuse: no checkpoint
    /// active, at most `frames` of room for checkpoints and `keys` slots.
    pub(crate) fn reusable(&self, frames: usize, keys: usize) -> bool {
        self.frames.depth() == 0 && self.frames.capacity() <= frames && self.frames.keys() <= keys
    }

    /// How many keys the stack holds a slot for.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.frames.keys()
    }

    /// Leaves the checkpoint `id` and any still active inside it, running
    /// their exit hooks and dropping their values.
    #[inline]
    fn leave(&mut self, id: FrameId) {
        if self.frames.leave_top(id, &mut self.removed) {
            if !self.removed.is_empty() {
                let mut panics = Panics::default();
                self.removed.drop_all(&mut panics);
                panics.resume();
            }
            return;
        }
        let left = leave_by_steps(Outcome::Left, |panics| {
            let step = self.frames.step(Until::Left(id), &mut self.removed);
            self.removed.drop_all(panics);
            Ok::<_, Infallible>(step)
        });
        let Ok(_) = left;
    }
}

/// The error of a set with no checkpoint active, handing `value` back; out
/// of line, so that the set stays small.
#[cold]
#[inline(never)]
pub(crate) fn no_checkpoint<T>(
    operation: Operation,
    key: &'static Key<T>,
    value: T,
) -> SetError<T> {
    let err = Error::NoCheckpoint {
        operation,
        key: Some(key.name()),
    };
    SetError::new(value, err)
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.frames.fmt(f)
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
