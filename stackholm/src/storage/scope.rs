//! Task-local scopes: a stack of the task's own, installed while the task
//! (or one synchronous call) runs.
//!
//! Everything a scope does is here: the [`Scope`] and its one install path
//! ([`Installed`], used by runs, by polls of the [`Scoped`] future and by
//! the scope's end alike), the future, and the panic of a checkpoint that
//! outlived a run. The stack is installed by swapping a pointer with
//! the thread's current one (see [`Local`]), as `tokio::task_local!` swaps
//! its value in and out.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::local::Local;
use super::Storage;
use crate::engine::{Clearing, FrameId, Panics, Until};
use crate::exit::Outcome;
use crate::{Checkpoint, Error, Stack};

/// A task-local stack of a [`Storage`], held while it is not installed.
///
/// [`run`](Self::run) installs it as the storage's task-local stack for the
/// length of one call and takes it back afterwards, with everything the call
/// did to it. [`Storage::scope`] runs a future this way on every poll; a
/// middleware uses a `Scope` directly to poll a response future and then the
/// response body inside the same stack.
///
/// Between runs a scope holds its root checkpoint only: a run that returns
/// with a checkpoint entered during it still active leaves it (and `run`
/// panics, naming the mistake). Dropping the scope leaves the root inside
/// the scope, running its exit hooks and dropping its values as leaving it
/// with a guard would. The emptied stack is then kept by the dropping
/// thread for the next scope started there (up to 32 per thread and
/// storage, and none that grew past 64 checkpoints or 256 keys), so that a
/// scope per request costs no allocation once the thread is warm.
///
/// ```
/// use stackholm::{Checkpoint, Key, Scope, DEFAULT};
///
/// static REQUEST: Key<u32> = Key::new("request");
///
/// let mut scope = Scope::new(DEFAULT, Checkpoint::new().with_value(&REQUEST, 7));
/// assert_eq!(DEFAULT.get(&REQUEST), None);
/// scope.run(|| {
///     assert_eq!(DEFAULT.get(&REQUEST), Some(7));
///     DEFAULT.set(&REQUEST, 8)
/// })?;
/// // What the call set is still there at the next call.
/// assert_eq!(scope.run(|| (DEFAULT.get(&REQUEST), DEFAULT.depth())), (Some(8), 1));
/// # Ok::<(), stackholm::Error>(())
/// ```
pub struct Scope {
    storage: Storage,
    /// The scope's stack, a pointer swapped with the thread's current one
    /// while it is installed: then it holds what it replaced if that held
    /// no checkpoint, or nothing (the replaced stack is parked). If taking
    /// it back fails, the scope goes on with what it holds.
    stack: Option<Box<Stack>>,
    /// What the checkpoints still active when the scope is dropped are told.
    ending: Outcome,
}

impl Scope {
    /// A scope of `storage` whose stack has `root` entered: its values are
    /// visible to everything run in the scope, and it is left when the
    /// scope is dropped.
    #[must_use]
    pub fn new(storage: Storage, root: Checkpoint) -> Self {
        let spare = storage.local.try_with(Local::take_spare).ok().flatten();
        let mut stack = spare.unwrap_or_default();
        stack.open_root(root);
        Self {
            storage,
            stack: Some(stack),
            ending: Outcome::Left,
        }
    }

    /// Marks the scope's work as dropped unfinished: the exit hooks of the
    /// checkpoints still active in it when it is dropped are told
    /// [`Outcome::Cancelled`] instead of [`Outcome::Left`]. What owns a
    /// scope calls it when the work it runs there is dropped before it
    /// completes (a future, a response body).
    ///
    /// A scope whose [`run`](Self::run) panicked tells them
    /// [`Outcome::Unwound`], and keeps doing so.
    pub fn cancel(&mut self) {
        if self.ending == Outcome::Left {
            self.ending = Outcome::Cancelled;
        }
    }

    /// What the checkpoints still active would be told, were the scope
    /// dropped now: [`Outcome::Left`], [`Outcome::Cancelled`] once
    /// [`cancel`](Self::cancel)led, or [`Outcome::Unwound`] once a run
    /// panicked. What owns the scope reads it to report how the work it
    /// ran there ended, as its checkpoints' exit hooks will be told.
    ///
    /// ```
    /// use stackholm::{Checkpoint, Outcome, Scope, DEFAULT};
    ///
    /// let mut scope = Scope::new(DEFAULT, Checkpoint::new());
    /// assert_eq!(scope.outcome(), Outcome::Left);
    /// let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    ///     scope.run(|| panic!("the work failed"))
    /// }));
    /// assert!(panicked.is_err());
    /// scope.cancel();
    /// assert_eq!(scope.outcome(), Outcome::Unwound);
    /// ```
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.ending
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
    /// storage, or while the thread is exiting ([`try_run`](Self::try_run)
    /// returns these as errors instead).
    ///
    /// After `f` returns, if a checkpoint entered during the call is still
    /// active: a guard outlived the call, which in a scoped future means it
    /// was held across an `.await` (see [`Storage`'s
    /// docs](crate::Storage#in-asynchronous-code)). The checkpoint is left
    /// first, so the stack is as the call found it.
    #[track_caller]
    #[inline]
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let storage = self.storage;
        let mut installed = match self.install() {
            Ok(installed) => installed,
            Err(err) => storage.fail(err),
        };
        let output = f();
        let strays = installed.take_back();
        if strays > 0 {
            held_across(storage.name(), strays);
        }
        output
    }

    /// Runs `f` with this scope's stack as the storage's task-local stack,
    /// like [`run`](Self::run), without panicking: what drop paths use.
    ///
    /// A checkpoint entered during the call and still active after it is
    /// left, as `run` does, but not reported.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] inside a [`Storage::with`] closure of the same
    /// storage, [`Error::Destroyed`] if the thread is exiting. `f` is not
    /// called then.
    pub fn try_run<R>(&mut self, f: impl FnOnce() -> R) -> Result<R, Error> {
        let mut installed = self.install()?;
        let output = f();
        installed.take_back();
        Ok(output)
    }

    /// Installs the scope's stack until the returned guard takes it back:
    /// the one way in, for runs, polls and the scope's end.
    #[inline]
    fn install(&mut self) -> Result<Installed<'_>, Error> {
        Installed::new(self.storage, &mut self.stack, &mut self.ending)
    }

    /// Leaves the checkpoints still active, inside the scope.
    ///
    /// Without exit hooks, the stack is cleared at once, its values
    /// dropped straight from their slots with no stack current in its
    /// place, which reads as an empty one: their destructors see the
    /// scope's storage as the scope's stack, with their checkpoints gone,
    /// would show it. A destructor that writes there is given a spare
    /// stack, and one that drops a guard of a stack set aside leaves its
    /// checkpoint there. With hooks, the checkpoints are left one by one as
    /// guards would leave them.
    fn end(&mut self) {
        let Some(stack) = self.stack.as_mut() else {
            return;
        };
        let mut panics = Panics::default();
        match stack.clearing() {
            Clearing::Nothing => stack.clear(&mut panics),
            Clearing::Values => {
                // Where the stand-in cannot be installed, the values are
                // dropped with nothing installed, and nothing borrowed.
                let mut stand_in = None;
                let installed = Installed::new(self.storage, &mut stand_in, &mut self.ending);
                stack.clear(&mut panics);
                drop(installed);
                // A stack a destructor wrote to: a spare again, so that the
                // next end writing there allocates nothing.
                if let Some(made) = stand_in {
                    let _ = self.storage.local.try_with(|local| local.keep_spare(made));
                }
            }
            Clearing::Hooks => {
                let outcome = self.ending;
                if let Ok(mut installed) = self.install() {
                    // Every checkpoint is left: none is what the take-back
                    // should find, not strays to look for.
                    installed.top = None;
                    let local = installed.storage.local;
                    let _ = local.try_with(|local| local.leave(Until::Top(None), outcome));
                    installed.take_back();
                }
            }
        }
        panics.resume();
    }
}

/// A scope's stack while it is installed. Takes it back when dropped, also
/// when the call panics, once the checkpoints that outlived the call are
/// left.
struct Installed<'a> {
    storage: Storage,
    /// Where the stack goes back to.
    stack: &'a mut Option<Box<Stack>>,
    /// What the scope's checkpoints are told when it ends: a panic through
    /// the call makes it [`Outcome::Unwound`].
    ending: &'a mut Outcome,
    /// The innermost checkpoint when the stack was installed.
    top: Option<FrameId>,
    /// Whether the stack it replaced was parked, rather than waiting in
    /// `stack`.
    parked: bool,
    taken_back: bool,
}

impl<'a> Installed<'a> {
    /// Two thread-local lookups, install and take-back, measure fewer
    /// instructions than one lookup wrapped around the call.
    #[inline]
    fn new(
        storage: Storage,
        stack: &'a mut Option<Box<Stack>>,
        ending: &'a mut Outcome,
    ) -> Result<Self, Error> {
        let top = stack.as_ref().and_then(|stack| stack.top_id());
        let parked = storage
            .local
            .try_with(|local| local.install(stack))
            .map_err(|_| Error::Destroyed)??;
        Ok(Self {
            storage,
            stack,
            ending,
            top,
            parked,
            taken_back: false,
        })
    }

    /// Takes the stack back; returns how many checkpoints entered during the
    /// call had to be left.
    #[inline]
    fn take_back(&mut self) -> usize {
        self.taken_back = true;
        let (top, parked) = (self.top, self.parked);
        self.storage
            .local
            .try_with(|local| local.uninstall(top, self.stack, parked))
            .unwrap_or(0)
    }
}

impl Drop for Installed<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.taken_back {
            if std::thread::panicking() {
                // The call is unwinding: the scope's work ends with the
                // panic, even if whoever catches it drops the scope later.
                *self.ending = Outcome::Unwound;
            }
            self.take_back();
        }
    }
}

/// The panic of a run or a poll that returned with checkpoints it entered
/// still active.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn held_across(name: &str, strays: usize) -> ! {
    panic!(
        "stackholm: {strays} checkpoint(s) of {name} entered during a scope's run \
         or a checkpointed future's poll were still active when it returned: a \
         guard was held across an `.await` (or kept past the call); in async code \
         run the future inside the checkpoint with `in_checkpoint` instead"
    )
}

impl Drop for Scope {
    /// Leaves the checkpoints still active in the scope, innermost first,
    /// inside the scope: exit hooks see the scope's stack as the current
    /// one, and their values' destructors see it as it stands with their
    /// own checkpoint already left. Then keeps the empty stack for the next
    /// scope this thread starts.
    ///
    /// Where the scope cannot be run (inside a `with` closure of its
    /// storage, or on an exiting thread) the stack and its values are
    /// dropped as they are, with nothing borrowed.
    fn drop(&mut self) {
        // Kept by the thread even if a hook or a destructor panics.
        let keep = KeepSpare(self);
        if keep.0.stack.as_ref().is_some_and(|stack| stack.depth() > 0) {
            keep.0.end();
        }
    }
}

/// Hands a scope's stack to its thread for the next scope once the scope
/// has ended, also when its end panics.
struct KeepSpare<'a>(&'a mut Scope);

impl Drop for KeepSpare<'_> {
    fn drop(&mut self) {
        if let Some(stack) = self.0.stack.take() {
            let _ = self
                .0
                .storage
                .local
                .try_with(|local| local.keep_spare(stack));
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("storage", &self.storage.name())
            .field("stack", &self.stack)
            .finish()
    }
}

pin_project! {
    /// Future for [`Storage::scope`] and [`Storage::inherit`]: the inner
    /// future, run inside its own task-local stack.
    ///
    /// Every poll installs the stack, and so does dropping the inner future,
    /// so that its destructors see the same stack as its polls. Where the
    /// stack cannot be installed at drop time (inside a `with` closure of
    /// the storage, or on an exiting thread), the inner future is dropped
    /// without it, as `tokio::task::futures::TaskLocalFuture` does.
    ///
    /// # Panics
    ///
    /// A poll panics as [`Scope::run`] does: above all, if the inner future
    /// returns from a poll holding a checkpoint guard (a guard held across
    /// an `.await`).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Scoped<F> {
        scope: Scope,
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for Scoped<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut future = this.future;
            if future.as_mut().as_pin_mut().is_none() {
                return;
            }
            this.scope.cancel();
            if this.scope.try_run(|| future.set(None)).is_err() {
                future.set(None);
            }
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        this.scope.run(|| {
            let output = future
                .as_mut()
                .as_pin_mut()
                .expect("`Scoped` polled after completion")
                .poll(cx);
            if output.is_ready() {
                // Dropped here, inside the scope, like on cancellation.
                future.set(None);
            }
            output
        })
    }
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &self.scope)
            .field("future", &std::any::type_name::<F>())
            .finish()
    }
}

impl Storage {
    /// Runs `future` inside a fresh task-local stack of this storage, with
    /// `root` entered as its first checkpoint. The stack lives in the
    /// returned future, so every task has its own, whatever thread polls
    /// it: what `tokio::task_local!`'s `scope` does for one value.
    ///
    /// Inside, the storage's methods reach the task's stack; code that is
    /// not inside any scope reaches its thread's stack instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use stackholm::{Checkpoint, Key, DEFAULT};
    ///
    /// static TENANT: Key<u32> = Key::new("tenant");
    ///
    /// let tenant = DEFAULT
    ///     .scope(Checkpoint::new().with_value(&TENANT, 3), async {
    ///         tokio::task::yield_now().await;
    ///         DEFAULT.get(&TENANT)
    ///     })
    ///     .await;
    /// assert_eq!(tenant, Some(3));
    /// # }
    /// ```
    pub fn scope<F: Future>(&self, root: Checkpoint, future: F) -> Scoped<F> {
        Scoped {
            scope: Scope::new(*self, root),
            future: Some(future),
        }
    }

    /// Runs `f` inside a fresh task-local stack of this storage, with `root`
    /// entered as its first checkpoint, as `tokio::task_local!`'s
    /// `sync_scope`: synchronous work given a root of its own. A thread or
    /// a blocking job that inherits the caller's context takes
    /// [`inherit_fn`](Self::inherit_fn).
    ///
    /// # Panics
    ///
    /// As [`Scope::run`].
    #[track_caller]
    pub fn sync_scope<R>(&self, root: Checkpoint, f: impl FnOnce() -> R) -> R {
        Scope::new(*self, root).run(f)
    }
}
