//! Carrying the visible values into spawned tasks and threads.

use std::future::Future;

use super::Storage;
use crate::error::Operation;
use crate::futures::Scoped;
use crate::{Checkpoint, Error, Stack};

impl Storage {
    /// A checkpoint pre-loaded with the checkpoint values visible here of
    /// every [inherited](crate::Key::inherited) key, to enter somewhere
    /// else; see [`Stack::snapshot`]. Empty where no checkpoint is active.
    ///
    /// # Panics
    ///
    /// Inside a [`with`](Self::with) closure of this storage, where the
    /// stack cannot be changed ([`try_snapshot`](Self::try_snapshot) returns
    /// the error instead).
    #[track_caller]
    #[must_use]
    pub fn snapshot(&self) -> Checkpoint {
        self.try_snapshot().unwrap_or_else(|err| self.fail(err))
    }

    /// A checkpoint pre-loaded with the values visible here of every
    /// inherited key.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] inside a [`with`](Self::with) closure of this
    /// storage.
    pub fn try_snapshot(&self) -> Result<Checkpoint, Error> {
        match self.write(Operation::Snapshot, Stack::snapshot) {
            Err(Error::Destroyed) => Ok(Checkpoint::new()),
            result => result,
        }
    }

    /// Runs `future` in a task-local scope of this storage whose root holds
    /// the values of [inherited](crate::Key::inherited) keys visible here: what [`spawn`](Self::spawn) hands to
    /// `tokio::spawn`, for every other way of running a future elsewhere
    /// (`JoinSet::spawn`, `spawn_local`, another executor).
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
        self.scope_with(self.snapshot(), future)
    }

    /// Spawns a thread whose stack starts with the values of
    /// [inherited](crate::Key::inherited) keys visible here, in one
    /// checkpoint; like `std::thread::spawn`, which starts with nothing.
    ///
    /// What the thread sets stays in the thread.
    ///
    /// ```
    /// use stackholm::{Key, DEFAULT};
    ///
    /// static USER: Key<String> = Key::new("user").inherited();
    ///
    /// let _request = DEFAULT.enter();
    /// DEFAULT.set(&USER, "alice".to_owned())?;
    /// let seen = DEFAULT
    ///     .spawn_thread(|| {
    ///         let seen = DEFAULT.get(&USER);
    ///         DEFAULT.set(&USER, "mallory".to_owned()).unwrap();
    ///         seen
    ///     })
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(seen.as_deref(), Some("alice"));
    /// assert_eq!(DEFAULT.get(&USER).as_deref(), Some("alice"));
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// As [`snapshot`](Self::snapshot), and as `std::thread::spawn` if the
    /// thread cannot be created.
    #[track_caller]
    pub fn spawn_thread<F, T>(&self, f: F) -> std::thread::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let storage = *self;
        let snapshot = self.snapshot();
        std::thread::spawn(move || {
            let _inherited = storage.enter_with(snapshot);
            f()
        })
    }

    /// Spawns a tokio task that runs in a task-local scope of this storage
    /// whose root holds the values of [inherited](crate::Key::inherited)
    /// keys visible here; like `tokio::spawn`, which starts with nothing.
    ///
    /// What the task sets stays in the task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stackholm::Error> {
    /// use stackholm::{Checkpoint, Key, DEFAULT};
    ///
    /// static TRACE: Key<u64> = Key::new("trace").inherited();
    ///
    /// DEFAULT
    ///     .scope_with(Checkpoint::new(), async {
    ///         DEFAULT.set(&TRACE, 99)?;
    ///         let child = DEFAULT.spawn(async {
    ///             let seen = DEFAULT.get(&TRACE);
    ///             DEFAULT.set(&TRACE, 1).unwrap();
    ///             seen
    ///         });
    ///         assert_eq!(child.await.unwrap(), Some(99));
    ///         assert_eq!(DEFAULT.get(&TRACE), Some(99));
    ///         Ok(())
    ///     })
    ///     .await
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`snapshot`](Self::snapshot), and as `tokio::spawn` outside a
    /// tokio runtime.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(self.inherit(future))
    }

    /// Runs `f` on tokio's blocking pool in a task-local scope of this
    /// storage whose root holds the values of
    /// [inherited](crate::Key::inherited) keys visible here; like
    /// `tokio::task::spawn_blocking`, which starts with nothing.
    ///
    /// # Panics
    ///
    /// As [`snapshot`](Self::snapshot), and as
    /// `tokio::task::spawn_blocking` outside a tokio runtime.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let storage = *self;
        let snapshot = self.snapshot();
        tokio::task::spawn_blocking(move || storage.sync_scope_with(snapshot, f))
    }
}
