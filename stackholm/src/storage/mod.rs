//! Ambient storages: a stack per task or per thread, reached from anywhere
//! without passing it around.

mod guard;
mod inherit;
mod local;
mod scope;

use std::cell::RefMut;
use std::fmt;
use std::thread::LocalKey;

pub use guard::CheckpointGuard;
pub use local::Local;
pub(crate) use local::Unreached;
pub(crate) use scope::held_across;
pub use scope::{Scope, Scoped};

use crate::engine::{FrameId, Until};
use crate::error::{no_checkpoint, Operation, SetError};
use crate::exit::{Hook, Outcome};
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
                static LOCAL: $crate::__private::Local = const {
                    $crate::__private::Local::new(::core::concat!(
                        ::core::module_path!(),
                        "::",
                        ::core::stringify!($name)
                    ))
                };
            }
            $crate::Storage::__new(&LOCAL)
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
/// handler calls it, and the thread's when a plain thread does.
///
/// Guards are for synchronous code, and are `!Send`. In asynchronous code,
/// run the future inside the checkpoint with
/// [`CheckpointExt::in_checkpoint`](crate::CheckpointExt::in_checkpoint)
/// instead: see [In asynchronous code](#in-asynchronous-code).
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
/// # In asynchronous code
///
/// A guard's checkpoint is on the stack from `enter` until the guard is
/// dropped, whatever runs in between. Held across an `.await`, it stays on
/// the stack while the task runs *other* futures: two branches of
/// `tokio::join!` (or `select!`, or a `FuturesUnordered`) that each held a
/// guard would read each other's values and leave each other's
/// checkpoints. This is the pitfall of `tracing::Span::enter`, and stackholm
/// follows `tokio::task_local!`'s rule to avoid it: in async code,
/// checkpoints are scoped by futures.
///
/// - [`in_checkpoint`](crate::CheckpointExt::in_checkpoint) runs a future
///   inside a checkpoint, entered on each of its polls only; this is also
///   the form for "the rest of this middleware":
///   `next.run(request).in_checkpoint(checkpoint).await`;
/// - [`set`](Self::set) in a future run that way (or directly in a request's
///   root checkpoint) needs no guard at all;
/// - guards are fine between two `.await`s.
///
/// A guard held across an `.await` is caught where it can be: a poll of a
/// [`scope`](Self::scope)d future or of an `in_checkpoint` future that
/// returns with a checkpoint entered during it still active leaves that
/// checkpoint and panics, naming the mistake. Outside any scope (a
/// current-thread `main`, `LocalSet` tasks without a scope) the thread's one
/// stack is shared by every future the thread polls, and nothing can tell;
/// open a scope per task there.
///
/// Where the future must be `Send`, a guard held across an `.await` does
/// not compile, the guard being `!Send`: a `tokio::spawn`ed future, an
/// axum handler. axum reports it as its handler trait not implemented, not
/// naming the guard:
///
/// ```text
/// error[E0277]: the trait bound `fn() -> impl Future<Output = String> {handler}: Handler<_, _>` is not satisfied
/// ```
///
/// `#[axum::debug_handler]` on the handler (axum's `macros` feature) names
/// the cause: the future is not `Send` because the guard is held across an
/// await. Clippy's `await_holding_invalid_type` lint finds a guard held
/// across an `.await` in any async code, `Send` or not, given the guard in
/// the project's `clippy.toml`:
///
/// ```toml
/// await-holding-invalid-types = [
///     { path = "stackholm::CheckpointGuard", reason = "a guard held across `.await` stays on the task's stack while the task polls other futures: use `CheckpointExt::in_checkpoint`" },
/// ]
/// ```
///
/// # Destructors
///
/// Values are dropped after they leave the stack and after the storage is
/// released: a value's destructor may read the storage, set values and
/// enter checkpoints, and sees the checkpoint it belonged to already left.
/// A destructor that panics does not keep the other values of its
/// checkpoint from being dropped; its panic is resumed after them, unless
/// the thread is already unwinding (a second panic would abort the
/// process), in which case the panic hook has reported it and it goes no
/// further.
///
/// # Reading inside a read
///
/// [`with`](Self::with) lends the value by reference while its closure
/// runs. Reads nest freely inside it, but changing the same storage from
/// inside the closure is refused with [`Error::Busy`] (and [`enter`](Self::enter)
/// panics), because it could drop the value the closure holds.
#[derive(Clone, Copy)]
pub struct Storage {
    // Two words, passed in registers: the name, for messages only, is in
    // the thread-local.
    local: &'static LocalKey<Local>,
    /// Set on a [`task`](Self::task) handle: no falling back to the
    /// thread's stack outside a scope.
    task_only: bool,
}

impl Storage {
    #[doc(hidden)]
    pub const fn __new(local: &'static LocalKey<Local>) -> Self {
        Self {
            local,
            task_only: false,
        }
    }

    /// This storage restricted to the stack of the current task: outside a
    /// task-local scope, where the storage itself would reach the thread's
    /// stack, this handle reaches none. Its writes fail there with
    /// [`Error::NoScope`], [`enter`](Self::enter) panics, and reads find
    /// nothing. Code that must run inside a request (behind a layer that
    /// opens a scope per request) uses it to be told when it does not.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stackholm::Error> {
    /// use stackholm::{Checkpoint, Error, Key, DEFAULT};
    ///
    /// static STEP: Key<u32> = Key::new("step");
    ///
    /// let step = DEFAULT
    ///     .scope(Checkpoint::new(), async {
    ///         DEFAULT.task().set(&STEP, 1)?;
    ///         tokio::task::yield_now().await;
    ///         Ok::<_, Error>(DEFAULT.task().get(&STEP))
    ///     })
    ///     .await?;
    /// assert_eq!(step, Some(1));
    ///
    /// // Outside any scope the task-only handle says so.
    /// let _thread = DEFAULT.enter();
    /// let refused = DEFAULT.task().set(&STEP, 2).unwrap_err();
    /// assert!(matches!(refused.error(), Error::NoScope { .. }));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub const fn task(&self) -> Self {
        Self {
            task_only: true,
            ..*self
        }
    }

    /// Enters a new, empty checkpoint; it is left when the guard is dropped.
    ///
    /// # Panics
    ///
    /// If the storage is lent to a [`with`](Self::with) closure further up
    /// the call stack, or the thread is exiting, or (on a
    /// [`task`](Self::task) handle) outside any scope.
    #[track_caller]
    #[inline]
    pub fn enter(&self) -> CheckpointGuard {
        // The common case alone, small enough to inline (enter_leave on the
        // thread measured 6 instructions fewer); anything else takes the
        // whole path, `enter_slowly`, which this attempt changed nothing for.
        let opened = self.local.try_with(|local| {
            if self.task_only && !local.in_scope() {
                return None;
            }
            local.write(Stack::open)
        });
        match opened {
            Ok(Some(id)) => CheckpointGuard::new(*self, id),
            _ => self.enter_slowly(),
        }
    }

    /// Enters `checkpoint` with its pre-loaded values; they are visible until
    /// the guard is dropped.
    ///
    /// # Panics
    ///
    /// As [`enter`](Self::enter).
    #[track_caller]
    pub fn enter_with(&self, mut checkpoint: Checkpoint) -> CheckpointGuard {
        match self.write(Operation::Enter, |stack| stack.open_with(&mut checkpoint)) {
            Ok(id) => CheckpointGuard::new(*self, id),
            Err(err) => self.fail(err),
        }
    }

    /// Sets a value in the innermost checkpoint; see [`Stack::set`]. The
    /// value it replaces there is dropped after the storage is released.
    ///
    /// # Errors
    ///
    /// [`Error::NoCheckpoint`] if no checkpoint is active, [`Error::Busy`]
    /// inside a [`with`](Self::with) closure, [`Error::NoScope`] on a
    /// [`task`](Self::task) handle outside any scope, [`Error::Destroyed`] if
    /// the thread is exiting. The error hands the value back.
    #[inline]
    pub fn set<T: Send + 'static>(
        &self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<(), SetError<T>> {
        self.put(Operation::Set, key, value, false)
    }

    /// A clone of the nearest value of `key`; `None` if no active
    /// checkpoint set it or none is active. See [`Stack::get`].
    ///
    /// It never panics: where there is no stack to read (outside any scope
    /// on a [`task`](Self::task) handle, or on an exiting thread) it gives
    /// `None`.
    #[must_use]
    #[inline]
    pub fn get<T: Clone + Send + 'static>(&self, key: &'static Key<T>) -> Option<T> {
        self.read(|stack| stack.get(key).cloned())
    }

    /// Calls `f` with a reference to the nearest value of `key`, or `None`
    /// (as for [`get`](Self::get)): a read without cloning.
    #[inline]
    pub fn with<T: Send + 'static, R>(
        &self,
        key: &'static Key<T>,
        f: impl FnOnce(Option<&T>) -> R,
    ) -> R {
        let mut f = Some(f);
        match self.read(|stack| Some(f.take().expect(ONCE)(stack.get(key)))) {
            Some(output) => output,
            None => f.take().expect(ONCE)(None),
        }
    }

    /// Removes the nearest setting of `key`; see [`Stack::remove`]. Returns
    /// whether there was one (none where no checkpoint is active: removing
    /// nothing is no error). The value is dropped after the storage is
    /// released.
    ///
    /// # Errors
    ///
    /// Where the stack cannot be changed: [`Error::Busy`] inside a
    /// [`with`](Self::with) closure, [`Error::NoScope`] on a
    /// [`task`](Self::task) handle outside any scope, [`Error::Destroyed`]
    /// if the thread is exiting.
    #[inline]
    pub fn remove<T: Send + 'static>(&self, key: &'static Key<T>) -> Result<bool, Error> {
        // Dropped here, after the storage is released.
        let taken = self.write(Operation::Remove, |stack| stack.take_nearest(key))?;
        Ok(taken.is_some())
    }

    /// Removes every setting of `key` in every active checkpoint and returns
    /// how many there were; see [`Stack::reset`].
    ///
    /// # Errors
    ///
    /// As [`remove`](Self::remove).
    pub fn reset<T: Send + 'static>(&self, key: &'static Key<T>) -> Result<usize, Error> {
        // Dropped here, after the storage is released.
        let removed = self.write(Operation::Reset, |stack| stack.take_all(key))?;
        Ok(removed.len())
    }

    /// Sets a value in the outermost checkpoint of the current stack (the
    /// request's root under a layer that opens one per request), whatever
    /// checkpoints are nested in it: the form for something opened lazily,
    /// at any depth, for the whole request, such as a database transaction.
    /// A nested checkpoint that set the same key still shadows it until it
    /// is left.
    ///
    /// ```
    /// use stackholm::{Key, DEFAULT};
    ///
    /// static TX: Key<u32> = Key::new("transaction");
    ///
    /// let _root = DEFAULT.enter();
    /// {
    ///     let _deep = DEFAULT.enter();
    ///     DEFAULT.set_root(&TX, 1)?;
    /// }
    /// assert_eq!(DEFAULT.get(&TX), Some(1));
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn set_root<T: Send + 'static>(
        &self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<(), SetError<T>> {
        self.put(Operation::SetRoot, key, value, true)
    }

    /// Sets a value in the innermost checkpoint, or the outermost if
    /// `root`; drops the value it replaces once the storage is released.
    #[inline]
    fn put<T: Send + 'static>(
        &self,
        operation: Operation,
        key: &'static Key<T>,
        value: T,
        root: bool,
    ) -> Result<(), SetError<T>> {
        let mut unset = Some(value);
        let put = self.write(operation, |stack| {
            let value = unset.take().expect(ONCE);
            if root {
                stack.replace_root(key, value)
            } else {
                stack.replace(key, value)
            }
        });
        match put {
            Ok(Ok(replaced)) => {
                drop(replaced);
                Ok(())
            }
            Ok(Err(value)) => Err(no_checkpoint(operation, key, value, self.outside_scope())),
            Err(err) => Err(SetError::new(unset.take().expect(ONCE), err)),
        }
    }

    /// Registers `hook` to run when the innermost checkpoint ends, told how
    /// it ended.
    ///
    /// This is how code at any depth has something done when the checkpoint
    /// it runs in is over (commit or roll back, flush a journal, emit a
    /// metric) without a guard threaded down to it. Hooks run when their
    /// checkpoint is left, the last registered first, before the
    /// checkpoint's values are dropped: a hook reads them, and the rest of
    /// the stack, as code inside the checkpoint would. Nothing is borrowed
    /// while a hook runs, so it may use the storage freely.
    ///
    /// A hook that panics does not keep the others from running, nor the
    /// checkpoint from being left; its panic is resumed once they have run
    /// and the values are dropped, unless the thread is already unwinding
    /// (a second panic would abort the process), in which case the panic
    /// hook has reported it and it goes no further.
    ///
    /// A hook of a checkpointed future
    /// ([`in_checkpoint`](crate::CheckpointExt::in_checkpoint)) stays with
    /// the future between polls, and runs when the future completes
    /// ([`Outcome::Left`]) or is dropped before ([`Outcome::Cancelled`]);
    /// dropped where its checkpoint cannot be entered again (inside a
    /// [`with`](Self::with) closure of the storage, on an exiting thread),
    /// the future drops its hooks unrun, as a scope dropped there does.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use stackholm::{Key, Outcome, DEFAULT};
    ///
    /// static TX: Key<&'static str> = Key::new("transaction");
    ///
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// {
    ///     let _work = DEFAULT.enter();
    ///     DEFAULT.set(&TX, "tx-1")?;
    ///     let sink = Arc::clone(&log);
    ///     DEFAULT.on_exit(move |outcome| {
    ///         let action = if outcome == Outcome::Left { "commit" } else { "roll back" };
    ///         // The checkpoint's values are still there.
    ///         sink.lock().unwrap().push(format!("{action} {}", DEFAULT.get(&TX).unwrap()));
    ///     })?;
    /// }
    /// assert_eq!(*log.lock().unwrap(), ["commit tx-1"]);
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    ///
    /// Registering allocates the hook's box (unless it captures nothing) and,
    /// for the first hook on a stack, the list they are kept in; the list is
    /// reused after that.
    ///
    /// # Errors
    ///
    /// [`Error::NoCheckpoint`] if no checkpoint is active, and as
    /// [`set`](Self::set); the hook is dropped then, without running.
    pub fn on_exit(&self, hook: impl FnOnce(Outcome) + Send + 'static) -> Result<(), Error> {
        self.register_exit(Box::new(hook), false)
    }

    /// Registers `hook` to run when the outermost checkpoint of the current
    /// stack ends: the request's root under a layer that opens one per
    /// request, the task's root in a scope. See [`on_exit`](Self::on_exit).
    ///
    /// # Errors
    ///
    /// As [`on_exit`](Self::on_exit).
    pub fn on_root_exit(&self, hook: impl FnOnce(Outcome) + Send + 'static) -> Result<(), Error> {
        self.register_exit(Box::new(hook), true)
    }

    fn register_exit(&self, hook: Hook, root: bool) -> Result<(), Error> {
        let mut hook = Some(hook);
        let registered = self.write(Operation::OnExit, |stack| {
            stack.register(hook.take().expect(ONCE), root)
        });
        // A refused hook, handed back or never taken, is dropped on the way
        // out, with nothing borrowed.
        match registered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_refused)) => Err(Error::NoCheckpoint {
                operation: Operation::OnExit,
                key: None,
                outside_scope: self.outside_scope(),
            }),
            Err(err) => Err(err),
        }
    }

    /// The names of the active checkpoints of the current stack that have
    /// one, outermost first; see [`Checkpoint::named`]. Empty where there
    /// is no stack.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.read(|stack| Some(stack.names())).unwrap_or_default()
    }

    /// How many checkpoints are active on the current stack: the task's
    /// inside a scope of this storage, the thread's elsewhere. 0 where there
    /// is no stack (outside any scope on a [`task`](Self::task) handle, or on
    /// an exiting thread).
    #[must_use]
    pub fn depth(&self) -> usize {
        self.read(|stack| Some(stack.depth())).unwrap_or(0)
    }

    /// The path the storage was declared under, for messages.
    pub(crate) fn name(&self) -> &'static str {
        self.local
            .try_with(|local| local.name)
            .unwrap_or("a storage of an exiting thread")
    }

    /// Whether the current stack is the thread's own, no scope of the
    /// storage running: what [`Error::NoCheckpoint`] tells, asked only once
    /// a write has failed.
    // An error's detail: out of the way of the writes that inline around it.
    #[cold]
    #[inline(never)]
    fn outside_scope(&self) -> bool {
        self.local
            .try_with(|local| !local.in_scope())
            .unwrap_or(false)
    }

    /// The panic of the methods that cannot hand `err` back.
    #[cold]
    #[track_caller]
    pub(crate) fn fail(&self, err: Error) -> ! {
        panic!("stackholm: {}: {err}", self.name())
    }

    /// Leaves checkpoints until `until`, wherever they are on this thread;
    /// returns how many were left. See [`Local::leave`].
    #[inline]
    pub(crate) fn leave_until(&self, until: Until, outcome: Outcome) -> Result<usize, Unreached> {
        self.local
            .try_with(|local| local.leave(until, outcome))
            .unwrap_or(Err(Unreached::Gone))
    }

    /// Leaves the checkpoint `id` and any still active inside it.
    #[inline]
    pub(crate) fn leave(&self, id: FrameId, outcome: Outcome) -> Result<usize, Unreached> {
        self.leave_until(Until::Left(id), outcome)
    }

    /// Takes the checkpoint `id` off into `checkpoint`, keeping its values,
    /// if it is the innermost one of the current stack; returns whether it
    /// was.
    pub(crate) fn suspend(&self, id: FrameId, checkpoint: &mut Checkpoint) -> bool {
        self.write(Operation::Enter, |stack| stack.suspend(id, checkpoint))
            .unwrap_or(false)
    }

    /// The storage's state on this thread, where this handle may reach it.
    #[inline]
    fn local<R>(
        &self,
        operation: Operation,
        f: impl FnOnce(&Local) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.local
            .try_with(|local| {
                if self.task_only && !local.in_scope() {
                    return Err(Error::NoScope { operation });
                }
                f(local)
            })
            .unwrap_or(Err(Error::Destroyed))
    }

    /// Runs `f` on the current stack, lent; `None` where this handle
    /// reaches no stack, or the stack is being changed. A guard dropped
    /// inside `f` cannot leave its checkpoint then: that is done once the
    /// loan is over, also when `f` panics.
    #[inline]
    fn read<R>(&self, f: impl FnOnce(&Stack) -> Option<R>) -> Option<R> {
        struct AfterRead<'a>(&'a Local);
        impl Drop for AfterRead<'_> {
            #[inline]
            fn drop(&mut self) {
                self.0.leave_deferred();
            }
        }
        let read = self.local.try_with(|local| {
            if self.task_only && !local.in_scope() {
                return None;
            }
            let _after = AfterRead(local);
            // Bound, so that the loan ends before `_after` looks for
            // deferred leaves.
            let read = f(local.current.try_borrow().ok()?.as_deref()?);
            read
        });
        read.unwrap_or(None)
    }

    /// Runs `f` on the current stack, borrowed. `f` must not drop values
    /// that may run user code: it hands them out instead.
    #[inline]
    pub(crate) fn write<R>(
        &self,
        operation: Operation,
        f: impl FnOnce(&mut Stack) -> R,
    ) -> Result<R, Error> {
        self.local(operation, |local| {
            let write = |mut current: RefMut<'_, Option<Box<Stack>>>| {
                let stack = match &mut *current {
                    Some(stack) => stack,
                    None => current.insert(local.new_stack()),
                };
                f(stack)
            };
            let current = local.current.try_borrow_mut().ok();
            current.map(write).ok_or(Error::Busy { operation })
        })
    }
}

/// A value (or a closure) is handed to a closure that runs at most once,
/// and taken back only where it did not run.
const ONCE: &str = "stackholm: a value handed to the stack is taken once";

/// Two handles are equal when they reach the same stacks: those of one
/// [`storage!`](crate::storage!) declaration, whether or not either is a
/// [`task`](Storage::task) handle.
impl PartialEq for Storage {
    fn eq(&self, other: &Self) -> bool {
        // The handle's `LocalKey` may be a copy per crate that uses the
        // storage; the thread-local it reaches is one.
        let reached = |storage: &Self| storage.local.try_with(|local| local as *const Local);
        std::ptr::eq(self.local, other.local)
            || reached(self).is_ok_and(|a| reached(other) == Ok(a))
    }
}

impl Eq for Storage {}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("name", &self.name())
            .field("task_only", &self.task_only)
            .finish_non_exhaustive()
    }
}
