//! The thread-local state of one storage: the current stack, the stacks
//! that running scopes have set aside, and spare stacks for new scopes.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};

use crate::engine::{leave_by_steps, FrameId, Panics, Removed, Step, Until};
use crate::error::Operation;
use crate::exit::Outcome;
use crate::{Error, Stack};

/// Why checkpoints could not be left from here; never shown to users,
/// whose guards and futures leave what they can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreached {
    /// The current stack is lent to a read: try again once it is over.
    Busy,
    /// The thread's storage is gone: the thread is exiting.
    Gone,
}

/// One storage's state on one thread; public only for
/// [`storage!`](crate::storage!).
///
/// A task-local scope is installed by swapping a pointer to its stack in as
/// the current one and setting the previous current stack aside until the
/// scope's call returns, so every access, inside a scope or not, is one
/// thread-local lookup and one `RefCell` borrow, and a scope's run moves
/// no stack.
///
/// No user code runs while any of these cells is borrowed: values that
/// leave a stack are handed to the current stack's [`Removed`] and dropped
/// after the borrow is released, as `tokio::task_local!` swaps its values
/// out before dropping them.
#[doc(hidden)]
pub struct Local {
    /// The path the storage was declared under, for messages.
    pub(super) name: &'static str,
    /// The stack that the storage's methods reach: the innermost running
    /// scope's, or the thread's own when no scope is running (made on the
    /// thread's first write).
    pub(super) current: RefCell<Option<Box<Stack>>>,
    /// The stacks holding checkpoints set aside by the running scopes,
    /// outermost first.
    #[expect(clippy::vec_box, reason = "stacks move in and out as pointers")]
    parked: RefCell<Vec<Box<Stack>>>,
    /// How many scopes are running, readable without a borrow on every
    /// access.
    scopes: Cell<usize>,
    /// Empty stacks of ended scopes, kept warm so that a new scope (one per
    /// request, behind a layer) does not allocate its frames and slots anew.
    #[expect(clippy::vec_box, reason = "stacks move in and out as pointers")]
    spare: RefCell<Vec<Box<Stack>>>,
    /// Checkpoints whose guards were dropped while the current stack was
    /// lent to a read (`with`), to be left as soon as the read is over;
    /// `deferring` says whether there are any without a borrow.
    deferred: RefCell<Vec<FrameId>>,
    deferring: Cell<bool>,
}

impl Local {
    #[doc(hidden)]
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            current: RefCell::new(None),
            parked: RefCell::new(Vec::new()),
            scopes: Cell::new(0),
            spare: RefCell::new(Vec::new()),
            deferred: RefCell::new(Vec::new()),
            deferring: Cell::new(false),
        }
    }

    /// How many spare stacks a thread keeps per storage: enough for the
    /// requests one worker thread finishes between two it starts, without
    /// holding much memory when the load drops.
    const SPARE_STACKS: usize = 32;

    /// Stacks that grew deeper than this are not kept, so that one deep
    /// recursion does not pin its memory for the thread's lifetime.
    const SPARE_FRAMES: usize = 64;

    /// Stacks that have used more keys than this are not kept either: a
    /// spare keeps a slot for each key a scope used, so that the next
    /// request setting the same keys allocates nothing, and a thread that
    /// goes through many keys, each used once, would otherwise pile their
    /// slots up in the stack every new scope starts from.
    const SPARE_SLOTS: usize = 256;

    /// An empty stack for a new scope: a spare one if there is one.
    #[inline]
    pub(super) fn take_spare(&self) -> Option<Box<Stack>> {
        self.spare.try_borrow_mut().ok()?.pop()
    }

    /// A stack for a write where there is none: the thread's own, made on
    /// its first write, or the one a destructor writes to while a scope's
    /// values are dropped at its end (see [`Scope`](super::Scope)'s end),
    /// which goes back to the spares afterwards.
    #[cold]
    #[inline(never)]
    pub(super) fn new_stack(&self) -> Box<Stack> {
        self.take_spare().unwrap_or_default()
    }

    /// Keeps the stack of an ended scope for a later one. A stack that still
    /// holds checkpoints is dropped instead: its values are the scope's.
    #[inline]
    pub(super) fn keep_spare(&self, stack: Box<Stack>) {
        if !stack.reusable(Self::SPARE_FRAMES, Self::SPARE_SLOTS) {
            return;
        }
        if let Ok(mut spare) = self.spare.try_borrow_mut() {
            if spare.len() < Self::SPARE_STACKS {
                spare.push(stack);
            }
        }
    }

    #[inline]
    pub(super) fn in_scope(&self) -> bool {
        self.scopes.get() > 0
    }

    /// Runs `f` on the current stack, borrowed to be changed; `None` while
    /// it is lent or being changed, or if the thread has none yet.
    #[inline]
    pub(super) fn write<R>(&self, f: impl FnOnce(&mut Stack) -> R) -> Option<R> {
        Some(f(self.current.try_borrow_mut().ok()?.as_deref_mut()?))
    }

    /// Makes `stack` the current stack until [`uninstall`](Self::uninstall)
    /// hands it back. The current stack is set aside meanwhile: where it
    /// holds no checkpoint (a worker thread's, between requests) it waits
    /// in `stack`, a swap of pointers; otherwise it is parked, where a
    /// guard entered on it can still find its checkpoint, and `stack` is
    /// left empty. Returns whether it was parked.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] if the current stack is lent to a `with` closure;
    /// nothing changes then.
    #[inline]
    pub(super) fn install(&self, stack: &mut Option<Box<Stack>>) -> Result<bool, Error> {
        let busy = Error::Busy {
            operation: Operation::RunScope,
        };
        let mut current = self.current.try_borrow_mut().map_err(|_| busy)?;
        let park = current.as_ref().is_some_and(|current| current.depth() > 0);
        if park {
            // Borrowed before anything changes, so that a refused install
            // leaves every stack where it was.
            let mut parked = self.parked.try_borrow_mut().map_err(|_| busy)?;
            let outer = std::mem::replace(&mut *current, stack.take());
            parked.extend(outer);
        } else {
            std::mem::swap(&mut *current, stack);
        }
        self.scopes.set(self.scopes.get() + 1);
        Ok(park)
    }

    /// Leaves the checkpoints entered above `top` on the current stack (a
    /// guard outlived the scope's run), then hands the current stack back
    /// into `stack` and makes the one set aside by the matching
    /// [`install`](Self::install) (which said whether it `parked` it)
    /// current again. Returns how many checkpoints had to be left; `stack`
    /// is left as it is if the state cannot be reached.
    #[inline]
    pub(super) fn uninstall(
        &self,
        top: Option<FrameId>,
        stack: &mut Option<Box<Stack>>,
        parked: bool,
    ) -> usize {
        let mut strays = Ok(0);
        let mut current = match self.current.try_borrow_mut() {
            Ok(current) if current.as_ref().and_then(|stack| stack.top_id()) == top => current,
            Ok(current) => {
                drop(current);
                // A hook or destructor of a stray may panic: the stack is
                // taken back first all the same, or the scope's values
                // would stay the thread's.
                strays = panic::catch_unwind(AssertUnwindSafe(|| self.leave_strays(top)));
                match self.current.try_borrow_mut() {
                    Ok(current) => current,
                    Err(_) => return resume(strays),
                }
            }
            Err(_) => return 0,
        };
        if !parked {
            std::mem::swap(&mut *current, stack);
        } else if let Some(outer) = self.parked.try_borrow_mut().ok().and_then(|mut p| p.pop()) {
            debug_assert!(stack.is_none(), "a parking install took the scope's stack");
            *stack = current.replace(outer);
        } else {
            drop(current);
            return resume(strays);
        }
        self.scopes.set(self.scopes.get() - 1);
        drop(current);
        resume(strays)
    }

    #[cold]
    #[inline(never)]
    fn leave_strays(&self, top: Option<FrameId>) -> usize {
        // Their guards did not leave them: as if dropped unfinished.
        self.leave(Until::Top(top), Outcome::Cancelled).unwrap_or(0)
    }

    /// Leaves checkpoints until `until`, innermost first, and returns how
    /// many were left. Each checkpoint's values are dropped once it is off
    /// the stack and no borrow is held, so their destructors may use the
    /// storage and see it consistent.
    ///
    /// A checkpoint to leave ([`Until::Left`]) is looked for on the current
    /// stack, then on the ones running scopes have set aside (a guard
    /// entered outside a scope and dropped inside it); frame ids are unique,
    /// so no other checkpoint can be taken for it.
    ///
    /// A destructor that panics does not stop the others; its panic is
    /// resumed once all are dropped, unless the thread is already
    /// unwinding.
    ///
    /// Exit hooks of each checkpoint run first, told `outcome` (or
    /// [`Outcome::Unwound`] if a panic is unwinding), while the checkpoint is
    /// still on the stack and nothing is borrowed.
    #[inline]
    pub(super) fn leave(&self, until: Until, outcome: Outcome) -> Result<usize, Unreached> {
        if let Until::Left(id) = until {
            let left = self.write(|current| current.leave_top(id).then(|| current.take_removed()));
            if let Some(removed) = left.flatten() {
                if let Some(removed) = removed {
                    let mut panics = Panics::default();
                    self.drop_removed(removed, &mut panics);
                    panics.resume();
                }
                return Ok(1);
            }
        }
        self.leave_stepwise(until, outcome)
    }

    /// [`leave`](Self::leave), one step at a time.
    #[inline(never)]
    fn leave_stepwise(&self, until: Until, outcome: Outcome) -> Result<usize, Unreached> {
        leave_by_steps(outcome, |panics| {
            let (step, removed) = self.step(until)?;
            if let Some(removed) = removed {
                self.drop_removed(removed, panics);
            }
            Ok(step)
        })
    }

    /// Drops values a leave took off, with no cell borrowed, then gives the
    /// emptied buffer back for the next leave.
    #[cold]
    #[inline(never)]
    fn drop_removed(&self, mut removed: Removed, panics: &mut Panics) {
        removed.drop_all(panics);
        self.write(|current| current.give_back(removed));
    }

    /// One step of leaving, on the current stack or, for a checkpoint not
    /// there, on the ones running scopes set aside; with what it took off
    /// that waits to be dropped.
    fn step(&self, until: Until) -> Result<(Step, Option<Removed>), Unreached> {
        let busy = Unreached::Busy;
        let mut current = self.current.try_borrow_mut().map_err(|_| busy)?;
        // No current stack (a scope's end dropping its values): nothing is
        // here, as on an empty one, and a checkpoint to leave is looked for
        // among the parked stacks all the same.
        let mut none;
        let current = match current.as_deref_mut() {
            Some(current) => current,
            None => {
                none = Stack::new();
                &mut none
            }
        };
        let step = current.step(until);
        if matches!((&step, until), (Step::Missing, Until::Left(_))) {
            let mut parked = self.parked.try_borrow_mut().map_err(|_| busy)?;
            for stack in parked.iter_mut().rev() {
                let step = stack.step(until);
                if !matches!(step, Step::Missing) {
                    return Ok((step, stack.take_removed()));
                }
            }
        }
        Ok((step, current.take_removed()))
    }
}

/// How many strays were left, or the panic of a hook or destructor of
/// one, resumed now that the stack is taken back.
fn resume(strays: Result<usize, Box<dyn Any + Send>>) -> usize {
    strays.unwrap_or_else(|panic| panic::resume_unwind(panic))
}

impl Local {
    /// Leaves the checkpoint `id` as soon as the current stack is no longer
    /// lent to a read: its guard was dropped inside one.
    pub(super) fn defer_leave(&self, id: FrameId) {
        if let Ok(mut deferred) = self.deferred.try_borrow_mut() {
            deferred.push(id);
            self.deferring.set(true);
        }
    }

    /// Leaves the checkpoints whose leaving was deferred, once a read that
    /// lent the stack is over.
    #[inline]
    pub(super) fn leave_deferred(&self) {
        if self.deferring.get() {
            self.leave_deferred_now();
        }
    }

    #[cold]
    #[inline(never)]
    fn leave_deferred_now(&self) {
        // Still lent to an outer read: that one's end leaves them.
        if self.current.try_borrow_mut().is_err() {
            return;
        }
        loop {
            let id = match self.deferred.try_borrow_mut() {
                Ok(mut deferred) => deferred.pop(),
                Err(_) => return,
            };
            let Some(id) = id else { break };
            // Outcomes and hooks as if the guard had been dropped now. Still
            // busy (a destructor's own read): the next read's end retries.
            if let Err(Unreached::Busy) = self.leave(Until::Left(id), Outcome::Left) {
                self.defer_leave(id);
                return;
            }
        }
        self.deferring.set(false);
    }
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("current", &self.current)
            .field("scopes", &self.scopes.get())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Local;
    use crate::{Checkpoint, Key, DEFAULT};

    /// The spare stack a new scope starts from does not keep a slot for
    /// every key the thread has used, each once.
    #[test]
    fn spare_stacks_do_not_pile_up_the_slots_of_keys_used_once() {
        for _ in 0..2 * Local::SPARE_SLOTS {
            let key: &'static Key<u64> = Box::leak(Box::new(Key::new("used once")));
            DEFAULT.sync_scope(Checkpoint::new(), || DEFAULT.set(key, 1).unwrap());
        }
        DEFAULT.local.with(|local| {
            let spare = local.spare.borrow();
            assert!(
                spare.iter().all(|stack| stack.keys() <= Local::SPARE_SLOTS),
                "spares hold {:?} slots",
                spare.iter().map(|stack| stack.keys()).collect::<Vec<_>>()
            );
        });
    }
}
