//! The thread-local state of one storage: the current stack, the stacks
//! that running scopes have set aside, and spare stacks for new scopes.

use std::cell::{Cell, RefCell};

use crate::engine::FrameId;
use crate::{Error, Stack};

/// One storage's state on one thread; public only for
/// [`storage!`](crate::storage!).
///
/// A task-local scope is installed by swapping its stack in as the current
/// one and setting the previous current stack aside until the scope's call
/// returns, so every access, inside a scope or not, is one thread-local
/// lookup and one `RefCell` borrow.
#[doc(hidden)]
#[derive(Debug)]
pub struct Local {
    /// The stack that the storage's methods reach: the innermost running
    /// scope's, or the thread's own when no scope is running.
    current: RefCell<Stack>,
    /// The stacks set aside by the running scopes, outermost first; while
    /// any scope runs, the first is the thread's own.
    parked: RefCell<Vec<Stack>>,
    /// How many scopes are running: `parked.len()`, readable without a
    /// borrow on every access.
    scopes: Cell<usize>,
    /// Empty stacks of ended scopes, kept warm so that a new scope (one per
    /// request, behind a layer) does not allocate its frames and slots anew.
    spare: RefCell<Vec<Stack>>,
}

impl Local {
    #[doc(hidden)]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            current: RefCell::new(Stack::new()),
            parked: RefCell::new(Vec::new()),
            scopes: Cell::new(0),
            spare: RefCell::new(Vec::new()),
        }
    }

    /// How many spare stacks a thread keeps per storage: enough for the
    /// requests one worker thread finishes between two it starts, without
    /// holding much memory when the load drops.
    const SPARE_STACKS: usize = 32;

    /// Stacks that grew deeper than this are not kept, so that one deep
    /// recursion does not pin its memory for the thread's lifetime.
    const SPARE_FRAMES: usize = 64;

    /// An empty stack for a new scope: a spare one if there is one.
    pub(super) fn take_spare(&self) -> Stack {
        self.spare
            .try_borrow_mut()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_default()
    }

    /// Keeps the stack of an ended scope for a later one. The stack must be
    /// empty: its values are the scope's, and must be dropped with it.
    pub(super) fn keep_spare(&self, stack: Stack) {
        debug_assert_eq!(stack.depth(), 0, "a spare stack holds no checkpoint");
        if stack.frame_capacity() > Self::SPARE_FRAMES {
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

    #[inline]
    pub(super) fn current(&self) -> &RefCell<Stack> {
        &self.current
    }

    /// Makes the stack in `slot` (a fresh one if it is empty) the current
    /// stack until [`uninstall`](Self::uninstall) hands it back. Moving it
    /// out of an `Option` rather than leaving an empty stack behind spares
    /// every poll of a scoped future building and dropping one.
    ///
    /// # Panics
    ///
    /// If the current stack is borrowed by a `with` closure.
    #[track_caller]
    pub(super) fn install(&self, slot: &mut Option<Stack>) {
        // Both borrows are taken before anything changes, so that a refused
        // install leaves every stack where it was.
        let Ok(mut current) = self.current.try_borrow_mut() else {
            panic!(
                "stackholm: cannot run a scope while the storage is in use further up this \
                 call stack (a `with` closure, or a destructor of a value it is dropping)"
            );
        };
        let Ok(mut parked) = self.parked.try_borrow_mut() else {
            panic!("stackholm: cannot run a scope from a destructor of a value its storage is dropping");
        };
        let stack = slot.take().unwrap_or_default();
        parked.push(std::mem::replace(&mut *current, stack));
        self.scopes.set(parked.len());
    }

    /// Takes the current stack back out and makes the stack set aside by
    /// the matching [`install`](Self::install) current again; `None` if the
    /// state is not reachable (a borrow held while unwinding).
    pub(super) fn uninstall(&self) -> Option<Stack> {
        let (Ok(mut current), Ok(mut parked)) =
            (self.current.try_borrow_mut(), self.parked.try_borrow_mut())
        else {
            return None;
        };
        let outer = parked.pop()?;
        self.scopes.set(parked.len());
        Some(std::mem::replace(&mut *current, outer))
    }

    /// Leaves the checkpoint `id` wherever it is on this thread: on the
    /// current stack, or on one that a running scope has set aside (a guard
    /// entered outside a scope and dropped inside it). Frame ids are unique,
    /// so no other checkpoint can be taken for it.
    #[inline]
    pub(super) fn leave(&self, id: FrameId) -> Result<bool, Error> {
        let busy = Error::Busy {
            operation: "leave a checkpoint",
        };
        if self.current.try_borrow_mut().map_err(|_| busy)?.leave(id) {
            return Ok(true);
        }
        let mut parked = self.parked.try_borrow_mut().map_err(|_| busy)?;
        Ok(parked.iter_mut().rev().any(|stack| stack.leave(id)))
    }
}

impl Default for Local {
    fn default() -> Self {
        Self::new()
    }
}
