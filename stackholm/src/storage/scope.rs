//! Task-local scopes: a stack of the task's own, installed while the task
//! (or one synchronous call) runs.

use std::fmt;
use std::future::Future;
use std::thread::LocalKey;

use super::{Local, Storage};
use crate::engine::{FrameId, FrameIds, Frames, Until};
use crate::exit::Outcome;
use crate::futures::Scoped;
use crate::{Checkpoint, Error};

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
    name: &'static str,
    local: &'static LocalKey<Local>,
    /// While the stack is installed, what it replaced if that held no
    /// checkpoint (the two are swapped), or empty frames. If taking it back
    /// fails, the scope goes on with those: a stack with no checkpoint.
    frames: Frames,
    /// What the checkpoints still active when the scope is dropped are told.
    ending: Outcome,
}

impl Scope {
    /// A scope of `storage` whose stack has `root` entered: its values are
    /// visible to everything run in the scope, and it is left when the
    /// scope is dropped.
    #[must_use]
    pub fn new(storage: Storage, mut root: Checkpoint) -> Self {
        let (mut frames, id) = storage
            .local
            .try_with(|local| (local.take_spare(), local.next_id()))
            .unwrap_or_else(|_| (Frames::new(), FrameIds::new().next()));
        frames.enter_with(id, &mut root);
        Self {
            name: storage.name,
            local: storage.local,
            frames,
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
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let name = self.name;
        let mut installed = self
            .install()
            .unwrap_or_else(|err| panic!("stackholm: {name}: {err}"));
        let output = f();
        let strays = installed.take_back();
        if strays > 0 {
            held_across(name, strays);
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

    /// Installs the scope's stack until the returned guard takes it back.
    ///
    /// Two thread-local lookups, install and take-back, measure fewer
    /// instructions than one lookup wrapped around the call.
    fn install(&mut self) -> Result<Installed<'_>, Error> {
        let local = self.local;
        let top = self.frames.top_id();
        let parked = local
            .try_with(|local| local.install(&mut self.frames))
            .map_err(|_| Error::Destroyed)??;
        Ok(Installed {
            local,
            frames: &mut self.frames,
            ending: &mut self.ending,
            top,
            parked,
            taken_back: false,
        })
    }
}

/// A scope's stack while it is installed. Takes it back when dropped, also
/// when the call panics, once the checkpoints that outlived the call are
/// left.
struct Installed<'a> {
    local: &'static LocalKey<Local>,
    frames: &'a mut Frames,
    ending: &'a mut Outcome,
    /// The innermost checkpoint when the stack was installed.
    top: Option<FrameId>,
    /// Whether the frames it replaced were parked, rather than waiting in
    /// `frames`.
    parked: bool,
    taken_back: bool,
}

impl Installed<'_> {
    /// Takes the stack back; returns how many checkpoints entered during the
    /// call had to be left.
    fn take_back(&mut self) -> usize {
        self.taken_back = true;
        let (top, parked, frames) = (self.top, self.parked, &mut *self.frames);
        self.local
            .try_with(|local| local.uninstall(top, frames, parked))
            .unwrap_or(0)
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        if !self.taken_back {
            // The call is unwinding: the scope's work ends with the panic,
            // even if whoever catches it drops the scope later.
            *self.ending = Outcome::Unwound;
            self.take_back();
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn held_across(name: &str, strays: usize) -> ! {
    panic!(
        "stackholm: {strays} checkpoint(s) of {name} entered during a scope's run \
         were still active when it returned: a guard was held across an `.await` \
         (or kept past the call); in async code run the future inside the \
         checkpoint with `in_checkpoint` instead"
    )
}

impl Drop for Scope {
    /// Leaves the checkpoints still active in the scope, innermost first,
    /// inside the scope: their values' destructors see the scope's stack as
    /// the current one, each with its own checkpoint already left. Then
    /// keeps the empty stack for the next scope this thread starts.
    ///
    /// Where the scope cannot be run (inside a `with` closure of its
    /// storage, or on an exiting thread) the stack and its values are
    /// dropped as they are, with nothing borrowed.
    fn drop(&mut self) {
        if self.frames.is_bare() {
            self.frames.clear_bare();
        }
        if self.frames.depth() > 0 {
            let (local, outcome) = (self.local, self.ending);
            let Ok(mut installed) = self.install() else {
                return;
            };
            // The run leaves every checkpoint: none left is what it should
            // find when it returns, not strays to look for.
            installed.top = None;
            let _ = local.try_with(|local| local.leave(Until::Top(None), outcome));
            installed.take_back();
        }
        let frames = std::mem::take(&mut self.frames);
        let _ = self.local.try_with(|local| local.keep_spare(frames));
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("storage", &self.name)
            .field("stack", &self.frames)
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
        Scoped::new(Scope::new(*self, root), future)
    }

    /// Runs `f` inside a fresh task-local stack of this storage, with `root`
    /// entered as its first checkpoint: for a thread or a blocking job, as
    /// `tokio::task_local!`'s `sync_scope`.
    ///
    /// # Panics
    ///
    /// As [`Scope::run`].
    #[track_caller]
    pub fn sync_scope<R>(&self, root: Checkpoint, f: impl FnOnce() -> R) -> R {
        Scope::new(*self, root).run(f)
    }
}
