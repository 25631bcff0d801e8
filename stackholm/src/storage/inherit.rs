//! Carrying the visible values of inherited keys into spawned work.

use std::future::Future;

use super::scope::Scoped;
use super::Storage;
use crate::error::Operation;
use crate::{Checkpoint, Error};

impl Storage {
    /// A checkpoint pre-loaded with the values visible here of every
    /// [inherited](crate::Key::inherited) key, shared rather than copied, to
    /// enter somewhere else: what [`inherit`](Self::inherit) and
    /// [`inherit_fn`](Self::inherit_fn) root spawned work in, and what to
    /// enter on a [`Stack`](crate::Stack) of one's own or keep for later.
    /// See [`Stack::snapshot`](crate::Stack::snapshot).
    /// Empty where no checkpoint is active, or no stack can be reached.
    ///
    /// ```
    /// use stackholm::{Key, Stack, DEFAULT};
    ///
    /// static TENANT: Key<u32> = Key::new("tenant").inherited();
    /// static TRANSACTION: Key<u32> = Key::new("transaction");
    ///
    /// let _request = DEFAULT.enter();
    /// DEFAULT.set(&TENANT, 7)?;
    /// DEFAULT.set(&TRANSACTION, 1)?;
    /// let snapshot = DEFAULT.snapshot();
    /// assert_eq!((snapshot.get(&TENANT), snapshot.get(&TRANSACTION)), (Some(&7), None));
    ///
    /// let mut elsewhere = Stack::new();
    /// assert_eq!(elsewhere.enter_with(snapshot).get(&TENANT), Some(&7));
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

    /// [`inherit`](Self::inherit) for a closure: takes a
    /// [`snapshot`](Self::snapshot) now and returns a closure that runs `f`
    /// in a task-local scope of this storage rooted in it, wherever it is
    /// called. Hand it to `std::thread::spawn`, `tokio::task::spawn_blocking`,
    /// `std::thread::scope`'s `spawn` or a thread pool, which all start a
    /// closure with nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stackholm::Error> {
    /// use stackholm::{Checkpoint, Key, DEFAULT};
    ///
    /// static TENANT: Key<u32> = Key::new("tenant").inherited();
    ///
    /// let request = Checkpoint::new().with_value(&TENANT, 7);
    /// let seen = DEFAULT
    ///     .scope(request, async {
    ///         tokio::task::spawn_blocking(DEFAULT.inherit_fn(|| DEFAULT.get(&TENANT)))
    ///             .await
    ///             .unwrap()
    ///     })
    ///     .await;
    /// assert_eq!(seen, Some(7));
    ///
    /// let _request = DEFAULT.enter();
    /// DEFAULT.set(&TENANT, 8)?;
    /// let thread = std::thread::spawn(DEFAULT.inherit_fn(|| DEFAULT.get(&TENANT)));
    /// assert_eq!(thread.join().unwrap(), Some(8));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// The closure's scope is `inherit`'s: a root holding the inherited
    /// values, which `on_exit` and `on_root_exit` hooks registered there
    /// are run with when `f` returns ([`Outcome::Left`]) or panics
    /// ([`Outcome::Unwound`]); a panic then goes on as the thread's or the
    /// job's, with the stack of the thread running it as it was. What `f`
    /// sets stays in its scope.
    ///
    /// A method of its own rather than `inherit` taking closures too: a
    /// type may be both a future and a closure, so one method cannot take
    /// either; and what each gives back is what its spawners take, a future
    /// ([`Scoped`]) or a closure. Called with `f` run at once, it is
    /// [`sync_scope`](Self::sync_scope) rooted in a snapshot.
    ///
    /// [`Outcome::Left`]: crate::Outcome::Left
    /// [`Outcome::Unwound`]: crate::Outcome::Unwound
    ///
    /// # Panics
    ///
    /// Here, as [`snapshot`](Self::snapshot). The closure returned panics
    /// as [`Scope::run`](crate::Scope::run) does: if `f` returns with a
    /// checkpoint it entered still active.
    #[must_use = "the closure runs `f` only when called"]
    #[track_caller]
    pub fn inherit_fn<F, R>(&self, f: F) -> impl FnOnce() -> R + Send
    where
        F: FnOnce() -> R + Send,
    {
        let (storage, root) = (*self, self.snapshot());
        move || storage.sync_scope(root, f)
    }
}
