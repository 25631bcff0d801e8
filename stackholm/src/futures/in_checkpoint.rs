//! A future run inside a checkpoint, entered on every poll.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::engine::{FrameId, Until};
use crate::error::Operation;
use crate::exit::Outcome;
use crate::storage::held_across;
use crate::{Checkpoint, Error, Storage};

pin_project! {
    /// Future for
    /// [`CheckpointExt::in_checkpoint`](crate::CheckpointExt::in_checkpoint):
    /// the inner future, run inside a checkpoint.
    ///
    /// On every poll the checkpoint is entered on the storage's current
    /// stack (the task's inside a task-local scope, else the polling
    /// thread's) and taken off again before the poll returns, with the
    /// values set in it, so they are there again at the next poll and no
    /// other future polled in between sees them. When the inner future
    /// completes, the checkpoint is left for good and its values dropped.
    /// Dropping the future before then enters the checkpoint once more to
    /// drop the inner future inside it, then leaves it.
    ///
    /// # Panics
    ///
    /// A poll panics if the inner future returns from it with a checkpoint
    /// entered during the poll still active: a guard held across an
    /// `.await`, which would let other futures polled in between see its
    /// values. The checkpoint is left first. See [`Storage`'s
    /// docs](crate::Storage#in-asynchronous-code).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct InCheckpoint<F> {
        #[pin]
        inner: Option<F>,
        storage: Storage,
        // `None` once left for good.
        checkpoint: Option<Checkpoint>,
        // Set when a poll panicked: dropped later, the future was unwound,
        // not cancelled.
        unwound: bool,
    }

    impl<F> PinnedDrop for InCheckpoint<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut inner = this.inner;
            if inner.as_mut().as_pin_mut().is_none() {
                return;
            }
            // Whoever drops us may not be able to lend the stack (a `with`
            // closure further up); the inner future is dropped regardless.
            let entered = this
                .checkpoint
                .as_mut()
                .and_then(|checkpoint| enter(*this.storage, checkpoint).ok());
            let outcome = if *this.unwound {
                Outcome::Unwound
            } else {
                Outcome::Cancelled
            };
            // Left by a guard, so that it is left even if the inner
            // future's destructor panics.
            let _leave = entered.map(|id| LeaveOnDrop {
                storage: *this.storage,
                id,
                outcome,
            });
            inner.set(None);
        }
    }
}

/// Leaves a checkpoint when dropped, unwinding included.
struct LeaveOnDrop {
    storage: Storage,
    id: FrameId,
    outcome: Outcome,
}

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        let _ = self.storage.leave(self.id, self.outcome);
    }
}

impl<F> InCheckpoint<F> {
    pub(crate) fn new(inner: F, storage: Storage, checkpoint: Checkpoint) -> Self {
        Self {
            inner: Some(inner),
            storage,
            checkpoint: Some(checkpoint),
            unwound: false,
        }
    }

    /// The inner future.
    #[must_use]
    pub fn inner(&self) -> &F {
        self.inner.as_ref().expect(PRESENT)
    }

    /// The inner future, mutably.
    pub fn inner_mut(&mut self) -> &mut F {
        self.inner.as_mut().expect(PRESENT)
    }

    /// Runs the future inside its checkpoint on `storage` instead of
    /// [`DEFAULT`](crate::DEFAULT): the one way every stackholm type is told
    /// its storage.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use stackholm::{Checkpoint, CheckpointExt, Key, DEFAULT};
    ///
    /// stackholm::storage! {
    ///     static JOBS;
    /// }
    /// static STEP: Key<u32> = Key::new("step");
    ///
    /// let step = async { (JOBS.get(&STEP), DEFAULT.get(&STEP)) }
    ///     .in_checkpoint(Checkpoint::new().with_value(&STEP, 1))
    ///     .storage(JOBS)
    ///     .await;
    /// assert_eq!(step, (Some(1), None));
    /// # }
    /// ```
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// The inner future, taken out of the checkpoint: the checkpoint ends
    /// here, cancelled. Its exit hooks run, inside it, and its values are
    /// dropped.
    pub fn into_inner(mut self) -> F {
        let inner = self.inner.take().expect(PRESENT);
        if let Some(checkpoint) = self.checkpoint.as_mut() {
            if let Ok(id) = enter(self.storage, checkpoint) {
                let _ = self.storage.leave(id, Outcome::Cancelled);
            }
        }
        inner
    }
}

const PRESENT: &str = "the inner future is present until `InCheckpoint` is dropped";

fn enter(storage: Storage, checkpoint: &mut Checkpoint) -> Result<FrameId, Error> {
    storage.write(Operation::Enter, |stack| stack.open_with(checkpoint))
}

impl<F: Future> Future for InCheckpoint<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let storage = *this.storage;
        let inner = this.inner.as_pin_mut().expect(PRESENT);
        let Some(checkpoint) = this.checkpoint.as_mut() else {
            // Completed: polled again, the inner future says what it does.
            return inner.poll(cx);
        };
        let id = match enter(storage, checkpoint) {
            Ok(id) => id,
            // On an exiting thread there is no stack to enter.
            Err(Error::Destroyed) => return inner.poll(cx),
            Err(err) => storage.fail(err),
        };
        let mut entered = Entered {
            storage,
            checkpoint,
            unwound: this.unwound,
            id,
            done: false,
        };
        let output = inner.poll(cx);
        let strays = if output.is_ready() {
            entered.leave()
        } else {
            entered.suspend()
        };
        drop(entered);
        if output.is_ready() {
            *this.checkpoint = None;
        }
        if strays > 0 {
            held_across(storage.name(), strays);
        }
        output
    }
}

impl<F> fmt::Debug for InCheckpoint<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InCheckpoint")
            .field("storage", &self.storage.name())
            .field("inner", &std::any::type_name::<F>())
            .finish_non_exhaustive()
    }
}

/// A future's checkpoint, entered for the length of one poll. Dropping it
/// (when the poll panics) takes it off the stack again.
///
/// The stack it is taken off is the one it was entered on: a poll cannot
/// change the current stack (a scope run inside it is over before it
/// returns).
struct Entered<'a> {
    storage: Storage,
    checkpoint: &'a mut Checkpoint,
    unwound: &'a mut bool,
    id: FrameId,
    done: bool,
}

impl Entered<'_> {
    /// Takes the checkpoint off the stack, keeping its values for the next
    /// poll. Checkpoints entered during the poll and still active above it
    /// are left first; returns how many.
    ///
    /// Marked done only once it is: a stray's hook or destructor that panics
    /// while it is left goes on through the drop, which suspends again, the
    /// stray gone by then.
    fn suspend(&mut self) -> usize {
        let id = self.id;
        if self.storage.suspend(id, self.checkpoint) {
            self.done = true;
            return 0;
        }
        let strays = self
            .storage
            .leave_until(Until::Top(Some(id)), Outcome::Cancelled)
            .unwrap_or(0);
        self.storage.suspend(id, self.checkpoint);
        self.done = true;
        strays
    }

    /// Leaves the checkpoint for good, dropping its values. Returns how many
    /// checkpoints entered during the poll were still active above it.
    ///
    /// Marked done once the strays are gone, as in
    /// [`suspend`](Self::suspend); its own hooks' panics go on with the
    /// checkpoint already left.
    fn leave(&mut self) -> usize {
        let id = self.id;
        let strays = self
            .storage
            .leave_until(Until::Top(Some(id)), Outcome::Cancelled)
            .unwrap_or(0);
        self.done = true;
        let _ = self.storage.leave(id, Outcome::Left);
        strays
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if !self.done {
            // The poll is unwinding.
            *self.unwound = true;
            self.suspend();
        }
    }
}
