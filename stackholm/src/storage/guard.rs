//! The guard of a checkpoint entered on an ambient storage.

use std::fmt;
use std::marker::PhantomData;

use super::{Ambient, Mode, Storage};
use crate::engine::FrameId;
use crate::Error;

/// A checkpoint entered on a [`Storage`]; dropping the guard leaves it.
///
/// The guard of an [`Ambient`] storage is `!Send`: its checkpoint may live on
/// the stack of the thread that entered it, so the guard must be dropped
/// there too. The guard of a task-only handle
/// ([`Storage::task`](crate::Storage::task)) is `Send`: its checkpoint lives
/// on the task's stack, which moves with the task, so it may be held across
/// `.await` in a spawned task.
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
/// stack is not there (its scope has ended or is not running, or its thread
/// is exiting) does nothing when dropped: its checkpoint ends with its
/// stack.
///
/// # Panics
///
/// Dropping the guard panics (unless the thread is already panicking) if the
/// storage is in use further up the call stack at that moment: the guard
/// was moved into a [`Storage::with`] closure, or is dropped by the
/// destructor of a value the storage is dropping. Its checkpoint cannot be
/// left then, and carrying on silently would leave it active.
#[must_use = "the checkpoint is left as soon as the guard is dropped"]
pub struct CheckpointGuard<M: Mode = Ambient> {
    storage: Storage<M>,
    id: FrameId,
    _marker: PhantomData<M::GuardMarker>,
}

impl<M: Mode> CheckpointGuard<M> {
    pub(super) fn new(storage: Storage<M>, id: FrameId) -> Self {
        Self {
            storage,
            id,
            _marker: PhantomData,
        }
    }
}

impl<M: Mode> Drop for CheckpointGuard<M> {
    #[inline]
    fn drop(&mut self) {
        match self.storage.leave(self.id) {
            // A stack that is gone took its checkpoints with it.
            Ok(_) | Err(Error::Destroyed | Error::NoScope { .. }) => {}
            Err(err) if !std::thread::panicking() => {
                panic!(
                    "stackholm: cannot leave a checkpoint of {}: {err}",
                    self.storage.name()
                )
            }
            Err(_) => {}
        }
    }
}

impl<M: Mode> fmt::Debug for CheckpointGuard<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointGuard")
            .field("storage", &self.storage.name())
            .finish_non_exhaustive()
    }
}
