//! Ambient storages: a stack per task or per thread, reached from anywhere
//! without passing it around.

mod guard;
mod local;
mod mode;
mod propagate;
mod scope;

use std::fmt;
use std::marker::PhantomData;
use std::thread::LocalKey;

pub use guard::CheckpointGuard;
pub use local::Local;
pub use mode::{Ambient, Mode, TaskOnly};
pub use scope::Scope;

use crate::{Checkpoint, Error, Key, Stack};

/// Declares an independent ambient [`Storage`].
///
/// Each storage has its own stacks, so checkpoints entered in one are never
/// seen in another. A library that keeps state in checkpoints (a revision
/// tracker, say) declares its own storage so that its nesting cannot be
/// confused with the application's; everyone else can use
/// [`DEFAULT`](crate::DEFAULT).
///
/// ```
/// use stackholm::Key;
///
/// stackholm::storage! {
///     /// Checkpoints of the revision tracker.
///     pub static REVISIONS;
/// }
/// static OPEN: Key<u32> = Key::new("open_revisions");
///
/// let _app = stackholm::DEFAULT.enter();
/// assert_eq!(REVISIONS.depth(), 0);
///
/// let _tracking = REVISIONS.enter();
/// REVISIONS.set(&OPEN, 1)?;
/// assert_eq!(REVISIONS.get(&OPEN), Some(1));
/// assert_eq!(stackholm::DEFAULT.get(&OPEN), None);
/// # Ok::<(), stackholm::Error>(())
/// ```
#[macro_export]
macro_rules! storage {
    ($(#[$attr:meta])* $vis:vis static $name:ident $(;)?) => {
        $(#[$attr])*
        // A `const`, as `thread_local!` expands to, so that every use site
        // sees which thread-local it reaches and the access is inlined; the
        // thread-local itself is one item, shared by all uses.
        $vis const $name: $crate::Storage = {
            ::std::thread_local! {
                static LOCAL: $crate::__private::Local = const { $crate::__private::Local::new() };
            }
            $crate::Storage::__new(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!($name)),
                &LOCAL,
            )
        };
    };
}

/// An ambient checkpoint stack, one per task or per thread, reached through
/// a global handle.
///
/// A `Storage` is a `Copy` handle: [`storage!`](crate::storage!) declares
/// it as a constant, the way `thread_local!` declares its keys, and every
/// copy reaches the same thread-local. Its identity is that thread-local,
/// not the handle's address.
///
/// Declare one with [`storage!`](crate::storage!), or use
/// [`DEFAULT`](crate::DEFAULT). Entering returns a [`CheckpointGuard`] that
/// leaves the checkpoint when dropped, in the style of
/// `tracing::Span::enter`; values are set in and read from the innermost
/// checkpoint of the current stack, with the semantics of [`Stack`].
///
/// # Whose stack
///
/// The current stack is the task's inside a task-local scope of the storage
/// ([`scope`](Self::scope), [`sync_scope`](Self::sync_scope), or a layer
/// that opens one per request), and the calling
/// thread's everywhere else. The same call works in both, so a helper
/// written for synchronous code reads the request's values when a request
/// handler calls it, and the thread's when a plain thread does, like
/// asgiref's `Local` under Django.
///
/// Guards of this (ambient) storage are `!Send`, since they may refer to the
/// thread. In async code, hold a checkpoint across `.await` with a guard of
/// [`task`](Self::task) (which is `Send`), or run the future inside a
/// checkpoint with [`CheckpointExt::in_checkpoint`](crate::CheckpointExt::in_checkpoint).
///
/// ```
/// use stackholm::{Key, DEFAULT};
///
/// static USER: Key<String> = Key::new("user");
///
/// fn greeting() -> String {
///     DEFAULT.with(&USER, |user| format!("hello, {}", user.map_or("stranger", String::as_str)))
/// }
///
/// {
///     let _request = DEFAULT.enter();
///     DEFAULT.set(&USER, "alice".to_owned())?;
///     assert_eq!(greeting(), "hello, alice");
///     {
///         let _impersonation = DEFAULT.enter();
///         DEFAULT.set(&USER, "bob".to_owned())?;
///         assert_eq!(greeting(), "hello, bob");
///     }
///     assert_eq!(greeting(), "hello, alice");
/// }
/// assert_eq!(greeting(), "hello, stranger");
/// # Ok::<(), stackholm::Error>(())
/// ```
///
/// # Reading inside a read
///
/// [`with`](Self::with) lends the value by reference while its closure
/// runs. Reads nest freely inside it, but changing the same storage from
/// inside the closure is refused with [`Error::Busy`] (and [`enter`](Self::enter)
/// panics), because it could drop the value the closure holds.
pub struct Storage<M: Mode = Ambient> {
    name: &'static str,
    local: &'static LocalKey<Local>,
    _mode: PhantomData<M>,
}

impl Storage {
    #[doc(hidden)]
    pub const fn __new(name: &'static str, local: &'static LocalKey<Local>) -> Self {
        Self {
            name,
            local,
            _mode: PhantomData,
        }
    }

    /// This storage restricted to the stack of the current task: a handle
    /// whose methods fail with [`Error::NoScope`] outside a task-local scope
    /// instead of falling back to the thread's stack, and whose guards are
    /// `Send`, so they can be held across `.await` in a spawned task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stackholm::Error> {
    /// use stackholm::{Key, DEFAULT};
    ///
    /// static STEP: Key<u32> = Key::new("step");
    ///
    /// let handle = tokio::spawn(DEFAULT.scope(async {
    ///     let _step = DEFAULT.task().enter();
    ///     DEFAULT.set(&STEP, 1)?;
    ///     tokio::task::yield_now().await;
    ///     Ok::<_, stackholm::Error>(DEFAULT.get(&STEP))
    /// }));
    /// assert_eq!(handle.await.unwrap()?, Some(1));
    ///
    /// // Outside any scope the task-only handle says so.
    /// assert!(matches!(DEFAULT.task().try_enter(), Err(stackholm::Error::NoScope { .. })));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub const fn task(&self) -> Storage<TaskOnly> {
        Storage {
            name: self.name,
            local: self.local,
            _mode: PhantomData,
        }
    }
}

impl<M: Mode> Clone for Storage<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: Mode> Copy for Storage<M> {}

impl<M: Mode> Storage<M> {
    /// The path the storage was declared under, for diagnostics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Enters a new, empty checkpoint; it is left when the guard is dropped.
    ///
    /// # Panics
    ///
    /// If the storage is borrowed by a [`with`](Self::with) closure further
    /// up the call stack, or the thread is exiting. [`try_enter`](Self::try_enter)
    /// returns these as errors instead.
    #[track_caller]
    #[inline]
    pub fn enter(&self) -> CheckpointGuard<M> {
        self.try_enter().unwrap_or_else(|err| self.fail(err))
    }

    /// Enters `checkpoint` with its pre-loaded values; they are visible until
    /// the guard is dropped.
    ///
    /// # Panics
    ///
    /// As [`enter`](Self::enter).
    #[track_caller]
    pub fn enter_with(&self, checkpoint: Checkpoint) -> CheckpointGuard<M> {
        self.try_enter_with(checkpoint)
            .unwrap_or_else(|err| self.fail(err))
    }

    /// Enters a new, empty checkpoint.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] if the storage is borrowed by a [`with`](Self::with)
    /// closure further up the call stack, [`Error::Destroyed`] if the thread
    /// is exiting.
    #[inline]
    pub fn try_enter(&self) -> Result<CheckpointGuard<M>, Error> {
        let id = self.write("enter", Stack::push_empty)?;
        Ok(CheckpointGuard::new(*self, id))
    }

    /// Enters `checkpoint` with its pre-loaded values.
    ///
    /// # Errors
    ///
    /// As [`try_enter`](Self::try_enter).
    pub fn try_enter_with(&self, mut checkpoint: Checkpoint) -> Result<CheckpointGuard<M>, Error> {
        let id = self.write("enter", |stack| stack.push_from(&mut checkpoint))?;
        Ok(CheckpointGuard::new(*self, id))
    }

    /// Sets a checkpoint value in the innermost checkpoint; see [`Stack::set`].
    ///
    /// # Errors
    ///
    /// [`Error::NoCheckpoint`] if no checkpoint is active, [`Error::Busy`]
    /// inside a [`with`](Self::with) closure, [`Error::Destroyed`] if the
    /// thread is exiting.
    #[inline]
    pub fn set<T: Send + Sync + 'static>(
        &self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<(), Error> {
        self.write("set", |stack| stack.set(key, value))?
    }

    /// A clone of the nearest checkpoint value of `key`; `None` if no active
    /// checkpoint set it or none is active. See [`Stack::get`].
    ///
    /// # Panics
    ///
    /// If called from a destructor of a value that is being dropped by this
    /// same storage.
    #[track_caller]
    #[must_use]
    #[inline]
    pub fn get<T: Clone + Send + Sync + 'static>(&self, key: &'static Key<T>) -> Option<T> {
        self.with(key, |value| value.cloned())
    }

    /// Calls `f` with a reference to the nearest checkpoint value of `key`,
    /// or `None` if no active checkpoint set it or none is active.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    #[inline]
    pub fn with<T: Send + Sync + 'static, R>(
        &self,
        key: &'static Key<T>,
        f: impl FnOnce(Option<&T>) -> R,
    ) -> R {
        self.read_value(key, Stack::get, f)
    }

    /// A clone of the nearest checkpoint value of `key`, telling "no
    /// checkpoint is active" apart from "the key is not set".
    ///
    /// # Errors
    ///
    /// [`Error::NoCheckpoint`] if no checkpoint is active,
    /// [`Error::Busy`] from the destructor of a value this storage is
    /// dropping, [`Error::NoScope`] on a [`task`](Self::task) handle outside
    /// any scope, [`Error::Destroyed`] if the thread is exiting.
    pub fn try_get<T: Clone + Send + Sync + 'static>(
        &self,
        key: &'static Key<T>,
    ) -> Result<Option<T>, Error> {
        self.try_with(key, |value| value.cloned())
    }

    /// Calls `f` with the nearest checkpoint value of `key`, telling "no
    /// checkpoint is active" apart from "the key is not set".
    ///
    /// # Errors
    ///
    /// As [`try_get`](Self::try_get).
    pub fn try_with<T: Send + Sync + 'static, R>(
        &self,
        key: &'static Key<T>,
        f: impl FnOnce(Option<&T>) -> R,
    ) -> Result<R, Error> {
        self.read(|stack| stack.try_get(key).map(f))?
    }

    /// Whether `key` has a checkpoint value visible here.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    #[must_use]
    pub fn contains<T: Send + Sync + 'static>(&self, key: &'static Key<T>) -> bool {
        self.with(key, |value| value.is_some())
    }

    /// Removes the nearest setting of `key`; see [`Stack::remove`].
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    #[inline]
    pub fn remove<T: Send + Sync + 'static>(&self, key: &'static Key<T>) -> Result<bool, Error> {
        self.write("remove", |stack| stack.remove(key))?
    }

    /// Removes every setting of `key` in every active checkpoint and returns
    /// how many there were; see [`Stack::reset`].
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] inside a [`with`](Self::with) closure,
    /// [`Error::Destroyed`] if the thread is exiting.
    pub fn reset<T: Send + Sync + 'static>(&self, key: &'static Key<T>) -> Result<usize, Error> {
        self.write("reset", |stack| stack.reset(key))
    }

    /// Sets a block value, visible in the innermost checkpoint only; see
    /// [`Stack::set_block`].
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn set_block<T: Send + Sync + 'static>(
        &self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<(), Error> {
        self.write("set block value", |stack| stack.set_block(key, value))?
    }

    /// A clone of the innermost checkpoint's block value of `key`.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    #[must_use]
    pub fn get_block<T: Clone + Send + Sync + 'static>(&self, key: &'static Key<T>) -> Option<T> {
        self.with_block(key, |value| value.cloned())
    }

    /// Calls `f` with the innermost checkpoint's block value of `key`.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn with_block<T: Send + Sync + 'static, R>(
        &self,
        key: &'static Key<T>,
        f: impl FnOnce(Option<&T>) -> R,
    ) -> R {
        self.read_value(key, Stack::get_block, f)
    }

    /// Removes the innermost checkpoint's block value of `key`.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn remove_block<T: Send + Sync + 'static>(
        &self,
        key: &'static Key<T>,
    ) -> Result<bool, Error> {
        self.write("remove block value", |stack| stack.remove_block(key))?
    }

    /// How many checkpoints are active on this thread; 0 while the thread is
    /// exiting.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    #[track_caller]
    #[must_use]
    pub fn depth(&self) -> usize {
        match self.read(Stack::depth) {
            Ok(depth) => depth,
            Err(Error::Destroyed | Error::NoScope { .. }) => 0,
            Err(err) => panic!("stackholm: cannot read the depth of {}: {err}", self.name),
        }
    }

    /// The panic of the methods that have a `try_` form returning `err`.
    #[cold]
    #[track_caller]
    pub(crate) fn fail(&self, err: Error) -> ! {
        panic!("stackholm: {}: {err}", self.name)
    }

    /// Leaves the checkpoint a guard entered, wherever it is on this
    /// thread.
    #[inline]
    pub(crate) fn leave(&self, id: crate::engine::FrameId) -> Result<bool, Error> {
        self.local
            .try_with(|local| local.leave(id))
            .unwrap_or(Err(Error::Destroyed))
    }

    /// The storage's state on this thread, where this handle may reach it.
    #[inline]
    fn local<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Local) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.local
            .try_with(|local| {
                if M::TASK_ONLY && !local.in_scope() {
                    return Err(Error::NoScope { operation });
                }
                f(local)
            })
            .unwrap_or(Err(Error::Destroyed))
    }

    #[inline]
    fn read<R>(&self, f: impl FnOnce(&Stack) -> R) -> Result<R, Error> {
        self.local("read", |local| match local.current().try_borrow() {
            Ok(stack) => Ok(f(&stack)),
            Err(_) => Err(Error::Busy { operation: "read" }),
        })
    }

    #[inline]
    pub(crate) fn write<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Stack) -> R,
    ) -> Result<R, Error> {
        self.local(operation, |local| match local.current().try_borrow_mut() {
            Ok(mut stack) => Ok(f(&mut stack)),
            Err(_) => Err(Error::Busy { operation }),
        })
    }

    /// Calls `f` with the value `get` finds for `key`. Where there is no
    /// stack (outside a task-local scope for a task-only handle, on an
    /// exiting thread) it sees what a stack without checkpoints shows:
    /// nothing.
    #[track_caller]
    #[inline]
    fn read_value<T: Send + Sync + 'static, R>(
        &self,
        key: &'static Key<T>,
        get: for<'a> fn(&'a Stack, &'static Key<T>) -> Option<&'a T>,
        f: impl FnOnce(Option<&T>) -> R,
    ) -> R {
        let mut f = Some(f);
        let mut call = |value: Option<&T>| f.take().map(|f| f(value));
        let output = match self.read(|stack| call(get(stack, key))) {
            Ok(output) => output,
            Err(Error::Destroyed | Error::NoScope { .. }) => call(None),
            Err(err) => panic!(
                "stackholm: cannot read `{}` from {}: {err}",
                key.name(),
                self.name
            ),
        };
        output.expect("stackholm: the read closure runs exactly once")
    }
}

impl<M: Mode> fmt::Debug for Storage<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
