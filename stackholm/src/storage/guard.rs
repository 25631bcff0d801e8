//! The guard of a checkpoint entered on an ambient storage.

use std::fmt;
use std::marker::PhantomData;

use super::{Storage, Unreached};
use crate::engine::{FrameId, Until};
use crate::error::Operation;
use crate::exit::Outcome;

/// A checkpoint entered on a [`Storage`]; dropping the guard leaves it.
///
/// Guards are for synchronous code. They are `!Send`, like
/// `tracing::span::Entered`: the checkpoint is on the stack the guard was
/// entered on, which may be the thread's, so the guard is dropped on that
/// thread. In asynchronous code, run the future inside the checkpoint with
/// [`in_checkpoint`](crate::CheckpointExt::in_checkpoint) instead of holding
/// a guard across `.await`; see [the storage's
/// docs](crate::Storage#in-asynchronous-code) for why, and for how a guard
/// held across `.await` is caught: a panic inside a scope, a compile error
/// where the future must be `Send` (axum's "the trait `Handler<_, _>` is
/// not implemented"), and clippy's `await_holding_invalid_type` lint with
/// this type in the project's `clippy.toml`.
///
/// ```compile_fail
/// let guard = stackholm::DEFAULT.enter();
/// std::thread::spawn(move || drop(guard));
/// ```
///
/// # Dropping out of order
///
/// Checkpoints are meant to be left in the reverse order of entering, which
/// scoped guards give for free. If a guard is dropped while checkpoints
/// entered after it are still active, it leaves those too: everything nested
/// inside a checkpoint ends with it, exactly as if the inner guards had been
/// dropped first. The inner guards, dropped later, then find their
/// checkpoints gone and do nothing. The stack is never left in a state that
/// in-order drops could not have produced.
///
/// ```
/// use stackholm::DEFAULT;
///
/// let outer = DEFAULT.enter();
/// let inner = DEFAULT.enter();
/// drop(outer);
/// assert_eq!(DEFAULT.depth(), 0);
/// drop(inner);
/// assert_eq!(DEFAULT.depth(), 0);
/// ```
///
/// A guard leaves its checkpoint wherever that is on the dropping thread:
/// on the current stack, or on a stack that a running scope has set aside
/// (a guard entered outside a scope and dropped inside one). A guard whose
/// checkpoint is not there does nothing when dropped: the checkpoint was
/// left with an outer one, or its stack is gone (the thread is exiting), or
/// the guard escaped the scope run it was entered in, which that run has
/// already reported by panicking.
///
/// Dropping a guard never panics on its own account. The values of the
/// checkpoint are dropped after it is off the stack, with the storage
/// released; a value's destructor that panics does not keep the others from
/// being dropped, and its panic goes on after them unless the thread is
/// already unwinding. A guard dropped inside a [`Storage::with`] closure of
/// its storage cannot leave its checkpoint then, with the stack lent to the
/// closure: it is left as soon as the closure returns (or unwinds).
#[must_use = "the checkpoint is left as soon as the guard is dropped"]
pub struct CheckpointGuard {
    storage: Storage,
    id: FrameId,
    _not_send: PhantomData<*const ()>,
}

impl CheckpointGuard {
    pub(super) fn new(storage: Storage, id: FrameId) -> Self {
        Self {
            storage,
            id,
            _not_send: PhantomData,
        }
    }
}

impl Storage {
    /// [`enter`](Self::enter) where its common case does not apply: makes
    /// the thread's stack on its first use, or panics.
    #[cold]
    #[inline(never)]
    #[track_caller]
    pub(super) fn enter_slowly(&self) -> CheckpointGuard {
        match self.write(Operation::Enter, |stack| stack.open()) {
            Ok(id) => CheckpointGuard::new(*self, id),
            Err(err) => self.fail(err),
        }
    }
}

impl Drop for CheckpointGuard {
    // Always inlined: where the guard is dropped, its storage is known, and
    // its thread-local is reached without a call through the handle.
    #[inline(always)]
    fn drop(&mut self) {
        // A busy stack is lent to a read: the checkpoint is left when that
        // is over. Every other error means the checkpoint cannot be reached
        // from here; see the type's docs for why each is left as it is.
        let _ = self.storage.local.try_with(|local| {
            if let Err(Unreached::Busy) = local.leave(Until::Left(self.id), Outcome::Left) {
                local.defer_leave(self.id);
            }
        });
    }
}

impl fmt::Debug for CheckpointGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointGuard")
            .field("storage", &self.storage.name())
            .finish_non_exhaustive()
    }
}
