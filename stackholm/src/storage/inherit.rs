//! Carrying the visible values of inherited keys into spawned work.

use std::future::Future;

use super::scope::Scoped;
use super::Storage;
use crate::error::Operation;
use crate::{Checkpoint, Error};

impl Storage {
    /// A checkpoint pre-loaded with the values visible here of every
    /// [inherited](crate::Key::inherited) key, shared rather than copied, to
    /// enter somewhere else: the root of a thread's or a blocking job's
    /// [`sync_scope`](Self::sync_scope), say. See
    /// [`Stack::snapshot`](crate::Stack::snapshot).
    /// Empty where no checkpoint is active, or no stack can be reached.
    ///
    /// ```
    /// use stackholm::{Key, DEFAULT};
    ///
    /// static TENANT: Key<u32> = Key::new("tenant").inherited();
    ///
    /// let _request = DEFAULT.enter();
    /// DEFAULT.set(&TENANT, 7)?;
    /// let snapshot = DEFAULT.snapshot();
    /// let seen = std::thread::spawn(move || DEFAULT.sync_scope(snapshot, || DEFAULT.get(&TENANT)))
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(seen, Some(7));
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// Inside a [`with`](Self::with) closure of this storage, where the
    /// stack cannot be changed: the first snapshot of a value moves it into
    /// a shared allocation.
    #[track_caller]
    #[must_use]
    pub fn snapshot(&self) -> Checkpoint {
        match self.write(Operation::Snapshot, |stack| stack.snapshot()) {
            Ok(snapshot) => snapshot,
            Err(Error::Busy { operation }) => self.fail(Error::Busy { operation }),
            Err(_) => Checkpoint::new(),
        }
    }

    /// Runs `future` in a task-local scope of this storage whose root holds
    /// the values of [inherited](crate::Key::inherited) keys visible here:
    /// hand it to `tokio::spawn`, `JoinSet::spawn`, `spawn_local` or any
    /// other executor, which all start a future with nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stackholm::Error> {
    /// use stackholm::{Key, DEFAULT};
    ///
    /// static TENANT: Key<u32> = Key::new("tenant").inherited();
    ///
    /// let _request = DEFAULT.enter();
    /// DEFAULT.set(&TENANT, 7)?;
    /// let child = tokio::spawn(DEFAULT.inherit(async { DEFAULT.get(&TENANT) }));
    /// assert_eq!(child.await.unwrap(), Some(7));
    ///
    /// let mut jobs = tokio::task::JoinSet::new();
    /// for _ in 0..3 {
    ///     jobs.spawn(DEFAULT.inherit(async { DEFAULT.get(&TENANT) }));
    /// }
    /// while let Some(seen) = jobs.join_next().await {
    ///     assert_eq!(seen.unwrap(), Some(7));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`snapshot`](Self::snapshot).
    #[track_caller]
    pub fn inherit<F: Future>(&self, future: F) -> Scoped<F> {
        self.scope(self.snapshot(), future)
    }
}
