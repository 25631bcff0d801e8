//! A future run inside a checkpoint, entered on every poll.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::engine::Suspended;
use crate::{Checkpoint, Error, Storage};

pin_project! {
    /// A future run inside a checkpoint; see
    /// [`CheckpointExt::in_checkpoint`](crate::CheckpointExt::in_checkpoint).
    ///
    /// On every poll the checkpoint is entered on the storage's current
    /// stack (the task's inside a task-local scope, else the polling
    /// thread's) and taken off again before the poll returns, with the
    /// values set in it and any checkpoint entered inside it and still open,
    /// so they are all there again at the next poll, and no other future
    /// polled in between sees them. Dropping the future enters them once
    /// more to drop the inner future inside them, then leaves them.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct InCheckpoint<F> {
        #[pin]
        inner: Option<F>,
        storage: Storage,
        suspended: Suspended,
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
            let resumed = Resumed::new(*this.storage, this.suspended).ok();
            inner.set(None);
            if let Some(resumed) = resumed {
                resumed.leave();
            }
        }
    }
}

impl<F> InCheckpoint<F> {
    pub(crate) fn new(inner: F, storage: Storage, checkpoint: Checkpoint) -> Self {
        Self {
            inner: Some(inner),
            storage,
            suspended: Suspended::new(checkpoint),
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

    /// The inner future, pinned.
    pub fn inner_pin_mut(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().inner.as_pin_mut().expect(PRESENT)
    }

    /// The inner future, taken out of the checkpoint: the checkpoint's
    /// values are dropped.
    pub fn into_inner(mut self) -> F {
        self.inner.take().expect(PRESENT)
    }
}

const PRESENT: &str = "the inner future is present until `InCheckpoint` is dropped";

impl<F: Future> Future for InCheckpoint<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let storage = *this.storage;
        let _resumed = match Resumed::new(storage, this.suspended) {
            Ok(resumed) => Some(resumed),
            // On an exiting thread there is no stack to enter.
            Err(Error::Destroyed) => None,
            Err(err) => panic!(
                "stackholm: cannot enter the checkpoint of a future on {}: {err}",
                storage.name()
            ),
        };
        this.inner.as_pin_mut().expect(PRESENT).poll(cx)
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

/// A future's checkpoints, entered for the length of one poll. Dropping it
/// takes them off the stack again, also when the poll panics.
///
/// The stack they are taken off is the one they were entered on: a poll
/// cannot change the current stack (a scope run inside it is over before it
/// returns).
struct Resumed<'a> {
    storage: Storage,
    suspended: &'a mut Suspended,
}

impl<'a> Resumed<'a> {
    fn new(storage: Storage, suspended: &'a mut Suspended) -> Result<Self, Error> {
        storage.write("enter", |stack| stack.resume(suspended))?;
        Ok(Self { storage, suspended })
    }

    /// Leaves the checkpoints for good instead, dropping their values.
    fn leave(self) {
        let base = self.suspended.base();
        let _ = self.storage.write("leave", |stack| stack.leave(base));
        self.suspended.clear();
        std::mem::forget(self);
    }
}

impl Drop for Resumed<'_> {
    fn drop(&mut self) {
        let suspended = &mut *self.suspended;
        let _ = self
            .storage
            .write("suspend", |stack| stack.suspend(suspended));
    }
}
