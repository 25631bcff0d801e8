//! Task-local scopes: a stack of the task's own, installed while the task
//! (or one synchronous call) runs.

use std::fmt;
use std::future::Future;
use std::thread::LocalKey;

use super::{Local, Mode, Storage};
use crate::futures::Scoped;
use crate::{Checkpoint, Stack};

/// A task-local stack of a [`Storage`], held while it is not installed.
///
/// [`run`](Self::run) installs it as the storage's task-local stack for the
/// length of one call and takes it back afterwards, with everything the call
/// did to it. [`Storage::scope`] runs a future this way on every poll; a
/// middleware uses a `Scope` directly to poll a response future and then the
/// response body inside the same stack.
///
/// Dropping a scope leaves the checkpoints still active in it, innermost
/// first, dropping their values as leaving them with guards would. The
/// emptied stack is then kept by the dropping thread for the next scope
/// started there (up to 32 per thread and storage, and none that grew past
/// 64 checkpoints), so that a scope per request costs no allocation once
/// the thread is warm.
///
/// ```
/// use stackholm::{Checkpoint, Key, Scope, DEFAULT};
///
/// static REQUEST: Key<u32> = Key::new("request");
///
/// let mut scope = Scope::with_root(DEFAULT, Checkpoint::new().with_value(&REQUEST, 7));
/// assert_eq!(DEFAULT.get(&REQUEST), None);
/// scope.run(|| {
///     assert_eq!(DEFAULT.get(&REQUEST), Some(7));
///     DEFAULT.set(&REQUEST, 8)
/// })?;
/// // What the call set is still there at the next call.
/// assert_eq!(scope.run(|| DEFAULT.get(&REQUEST)), Some(8));
/// assert_eq!(scope.stack().depth(), 1);
/// # Ok::<(), stackholm::Error>(())
/// ```
pub struct Scope {
    name: &'static str,
    local: &'static LocalKey<Local>,
    /// `None` only while the stack is installed, or if taking it back
    /// failed, in which case the scope goes on with an empty one.
    stack: Option<Stack>,
}

impl Scope {
    /// A scope with an empty stack: no checkpoint is active in it.
    #[must_use]
    pub fn new<M: Mode>(storage: Storage<M>) -> Self {
        Self {
            name: storage.name,
            local: storage.local,
            stack: Some(
                storage
                    .local
                    .try_with(Local::take_spare)
                    .unwrap_or_default(),
            ),
        }
    }

    /// A scope whose stack has `root` entered: its values are visible to
    /// everything run in the scope, and it is left when the scope is dropped.
    #[must_use]
    pub fn with_root<M: Mode>(storage: Storage<M>, root: Checkpoint) -> Self {
        let mut scope = Self::new(storage);
        scope.stack_mut().push(root);
        scope
    }

    /// Runs `f` with this scope's stack as the storage's task-local stack.
    ///
    /// The stack is installed in the storage's own thread-local, with the
    /// stack it replaces (the thread's, or an outer scope's) set aside until
    /// `f` returns, so reaching it costs what reaching the thread's stack
    /// does. Scopes nest: inside `f`, another scope of the same storage
    /// replaces this one until it returns. The stack is taken back also when
    /// `f` panics.
    ///
    /// # Panics
    ///
    /// If called from inside a [`Storage::with`] closure of the same
    /// storage, from a destructor of a value that the storage is dropping
    /// as a checkpoint of a set-aside stack is left, or while the thread is
    /// exiting.
    #[track_caller]
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        /// Takes the stack back before the call ends, on return and on
        /// unwind alike.
        struct TakeBack<'a> {
            local: &'static LocalKey<Local>,
            stack: &'a mut Option<Stack>,
        }
        impl Drop for TakeBack<'_> {
            fn drop(&mut self) {
                *self.stack = self.local.try_with(Local::uninstall).ok().flatten();
            }
        }

        // Two thread-local lookups, install and take-back, measure fewer
        // instructions than one lookup wrapped around `f`.
        let local = self.local;
        local.with(|local| local.install(&mut self.stack));
        let _take_back = TakeBack {
            local,
            stack: &mut self.stack,
        };
        f()
    }

    /// The scope's stack, for inspection between runs.
    #[must_use]
    pub fn stack(&self) -> &Stack {
        static EMPTY: Stack = Stack::new();
        self.stack.as_ref().unwrap_or(&EMPTY)
    }

    /// The scope's stack, to change it between runs.
    pub fn stack_mut(&mut self) -> &mut Stack {
        self.stack.get_or_insert_with(Stack::new)
    }
}

impl Drop for Scope {
    /// Drops the values left in the scope, innermost checkpoint first, then
    /// keeps the empty stack for the next scope this thread starts. A value
    /// whose destructor panics takes the stack down with it instead.
    fn drop(&mut self) {
        if let Some(mut stack) = self.stack.take() {
            stack.clear();
            let _ = self.local.try_with(|local| local.keep_spare(stack));
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("storage", &self.name)
            .field("stack", self.stack())
            .finish()
    }
}

impl<M: Mode> Storage<M> {
    /// Runs `future` inside a fresh task-local stack of this storage, with no
    /// checkpoint active. The stack lives in the returned future, so every
    /// task has its own, whatever thread polls it.
    ///
    /// Inside, the storage's methods reach the task's stack; code that is
    /// not inside any scope reaches its thread's stack instead.
    pub fn scope<F: Future>(&self, future: F) -> Scoped<F> {
        Scoped::new(Scope::new(*self), future)
    }

    /// Runs `future` inside a fresh task-local stack of this storage, with
    /// `root` entered as its first checkpoint.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use stackholm::{Checkpoint, Key, DEFAULT};
    ///
    /// static TENANT: Key<u32> = Key::new("tenant");
    ///
    /// let tenant = DEFAULT
    ///     .scope_with(Checkpoint::new().with_value(&TENANT, 3), async {
    ///         tokio::task::yield_now().await;
    ///         DEFAULT.get(&TENANT)
    ///     })
    ///     .await;
    /// assert_eq!(tenant, Some(3));
    /// # }
    /// ```
    pub fn scope_with<F: Future>(&self, root: Checkpoint, future: F) -> Scoped<F> {
        Scoped::new(Scope::with_root(*self, root), future)
    }

    /// Runs `f` inside a fresh task-local stack of this storage, with no
    /// checkpoint active.
    ///
    /// # Panics
    ///
    /// As [`Scope::run`].
    #[track_caller]
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        Scope::new(*self).run(f)
    }

    /// Runs `f` inside a fresh task-local stack of this storage, with `root`
    /// entered as its first checkpoint.
    ///
    /// # Panics
    ///
    /// As [`Scope::run`].
    #[track_caller]
    pub fn sync_scope_with<R>(&self, root: Checkpoint, f: impl FnOnce() -> R) -> R {
        Scope::with_root(*self, root).run(f)
    }
}
