//! Stack-based context: nested checkpoints whose values nested code can read
//! and shadow cheaply.
//!
//! ```
//! use stackholm::{Key, DEFAULT};
//!
//! static REQUEST_ID: Key<u64> = Key::new("request_id");
//! static USER: Key<&'static str> = Key::new("user");
//!
//! fn audit(action: &str) -> String {
//!     let id = DEFAULT.get(&REQUEST_ID).unwrap_or_default();
//!     let user = DEFAULT.get(&USER).unwrap_or("anonymous");
//!     format!("[{id}] {user}: {action}")
//! }
//!
//! let _request = DEFAULT.enter();
//! DEFAULT.set(&REQUEST_ID, 42)?;
//! DEFAULT.set(&USER, "alice")?;
//! assert_eq!(audit("login"), "[42] alice: login");
//! {
//!     // A nested checkpoint inherits the outer values and may shadow them.
//!     let _sudo = DEFAULT.enter();
//!     DEFAULT.set(&USER, "root")?;
//!     assert_eq!(audit("reboot"), "[42] root: reboot");
//! }
//! // Leaving it restores what was shadowed.
//! assert_eq!(audit("logout"), "[42] alice: logout");
//! # Ok::<(), stackholm::Error>(())
//! ```
//!
//! # One call per job
//!
//! | job | call |
//! |---|---|
//! | a per-request value | `DEFAULT.set(&USER, user)?` in the request's root (behind `stackholm_tower::StackholmLayer`, or in a [`Storage::scope`]) |
//! | a nested shadow, in sync code | `let _sudo = DEFAULT.enter();` then [`DEFAULT.set`](Storage::set); left when the guard drops |
//! | a nested shadow, across awaits | `future.in_checkpoint(Checkpoint::new().with_value(&USER, root))` ([`CheckpointExt`]) |
//! | a deep read | [`DEFAULT.get(&USER)`](Storage::get) |
//! | a read without cloning | [`DEFAULT.with(&USER, \|user\| ..)`](Storage::with) |
//! | a value private to its checkpoint | `static FLAG: Key<bool> = Key::new("flag").private();` ([`Key::private`]) |
//! | a value that follows spawned work | `static ID: Key<u64> = Key::new("id").inherited();` ([`Key::inherited`]) |
//! | spawning with inheritance | `tokio::spawn(DEFAULT.inherit(future))`; a blocking job or a thread: `spawn_blocking(DEFAULT.inherit_fn(f))` ([`Storage::inherit_fn`]) |
//! | something done when the checkpoint ends | [`DEFAULT.on_exit(\|outcome\| ..)?`](Storage::on_exit), or [`on_root_exit`](Storage::on_root_exit) for the request |
//! | the checkpoint chain | [`Checkpoint::named("tx")`](Checkpoint::named) and [`DEFAULT.names()`](Storage::names) |
//! | a stack of your own | [`Stack::new()`](Stack::new), used through `&mut` |
//! | a storage of your own | [`storage!`]`{ pub static MINE; }`, named in other types with `.storage(MINE)` |
//!
//! Writes return a `Result` whose error says what was missing
//! ([`Error::NoCheckpoint`]: enter a checkpoint first) and hands the value
//! back; reads never fail, giving `None` where nothing is set; entering
//! panics only where the stack cannot be reached or changed (see
//! [`Storage::enter`]).
//!
//! # Concepts
//!
//! A *stack* holds *checkpoints*, entered and left in LIFO order. Each
//! checkpoint holds values stored under typed [`Key`]s. A value is visible
//! in the checkpoint that set it and in every checkpoint nested in it;
//! reading gives the value from the nearest checkpoint that set the key,
//! and a nested setting shadows the outer one until the nested checkpoint
//! is left. [`remove`](Storage::remove) takes away the nearest setting,
//! [`reset`](Storage::reset) every setting. A [private](Key::private) key's
//! values are visible only in the one checkpoint that set them.
//!
//! A [`Checkpoint`] can be pre-loaded with values before it is entered.
//!
//! Reading the nearest value is O(1): independent of the depth of the stack
//! and of how many other keys are set. Each key has a slot in every stack
//! that uses it, holding its settings innermost last and found through a
//! small table by the key's tag: no walk up the stack (`read_nearest` in
//! `BENCHMARKS.md`, at depths 1 to 100 and with 0 or 50 other keys).
//! Entering and leaving a checkpoint does not allocate once the stack has
//! warmed up (`tests/alloc.rs`).
//!
//! # Storages
//!
//! A storage decides whose stack it is:
//!
//! - [`Stack`]: a stack you own and pass around, used through `&mut`;
//! - [`Storage`]: an ambient stack reached through a global handle:
//!   [`DEFAULT`], or your own declared with [`storage!`]. Inside a
//!   task-local scope ([`Storage::scope`]) it is the task's own stack,
//!   elsewhere the thread's. Guards leave their checkpoints when dropped,
//!   also when a panic unwinds through them. [`Storage::task`] is the same
//!   storage without the fallback to the thread's stack, for code that must
//!   run inside a scope.
//!
//! # Async
//!
//! Scopes and instrumented futures work on any executor; nothing needs
//! tokio:
//!
//! - [`Storage::scope`] runs a future in a stack of its own, whatever thread
//!   polls it;
//! - [`CheckpointExt::in_checkpoint`] runs a future inside a checkpoint,
//!   entered on every poll and taken off before the poll returns: the way to
//!   hold a checkpoint across `.await`, right under `join!`, `select!` and
//!   `FuturesUnordered`. Guards are for code between awaits; see
//!   [In asynchronous code](Storage#in-asynchronous-code);
//! - [`Storage::inherit`] (a future) and [`Storage::inherit_fn`] (a
//!   closure, for a thread or a blocking job) carry the values of
//!   [inherited](Key::inherited) keys visible at the call site into spawned
//!   work, shared rather than copied; every other value stays where it was
//!   set.
//!
//! # When checkpoints end
//!
//! [`Storage::on_exit`] and [`Storage::on_root_exit`] register hooks that
//! run when the innermost or the outermost checkpoint ends, told how it
//! ended ([`Outcome`]: left, unwound by a panic, or cancelled), while its
//! values are still there: commit or roll back, flush a journal, emit a
//! metric, from any depth. Checkpoints may carry a name
//! ([`Checkpoint::named`]), and [`Storage::names`] gives the chain of names
//! from the root.
//!
//! # Destructors and errors
//!
//! A value is dropped once its checkpoint is off the stack and the storage is
//! released: its destructor may use the storage freely, and a destructor
//! that panics never aborts the process; see
//! [Destructors](Storage#destructors).
//!
//! Writing with no checkpoint active is an error ([`Error::NoCheckpoint`],
//! handing the value back in a [`SetError`]); reading then gives `None`.
//! Misuse is reported, and never leaves the stack in a state that correct
//! use could not have produced; see [`Error`].
//!
//! # Pitfalls
//!
//! - **Layer order.** Only what runs inside a scope sees the task's stack:
//!   behind `stackholm_tower::StackholmLayer`, a middleware added *after*
//!   the layer with axum's `Router::layer` (so outside it) runs on the
//!   worker thread's own stack, where no checkpoint is active: its writes
//!   are refused with an [`Error::NoCheckpoint`] that says to add the
//!   layer outermost (last with `Router::layer`, first in
//!   `ServiceBuilder`). Unless something entered a checkpoint on that
//!   thread's stack (`main`, on a current-thread runtime): then the writes
//!   succeed, and are seen by whatever else that thread runs. Put the layer outermost, or at least outside
//!   every middleware that reads or sets context; code that must run inside
//!   a request can use a [`task`](Storage::task) handle to be told.
//! - **Concurrent branches of one task.** A guard held across an `.await`
//!   keeps its checkpoint on the task's stack while the task polls *other*
//!   futures: the branches of `tokio::join!`, `select!` or a
//!   `FuturesUnordered` would read each other's values. Use guards only
//!   between awaits, and [`in_checkpoint`](CheckpointExt::in_checkpoint)
//!   across them. Inside a scope or an `in_checkpoint` future, a poll that
//!   returns with a guard's checkpoint still active leaves it and panics;
//!   outside any scope (a current-thread `main`, a `LocalSet` task without
//!   a scope) the thread's one stack is shared and nothing can tell, so
//!   open a scope per task there. In an axum handler it is a compile error,
//!   reported as "the trait `Handler<_, _>` is not implemented"; clippy
//!   names the guard in any async code, given it in `clippy.toml`: see
//!   [In asynchronous code](Storage#in-asynchronous-code).
//! - **Values' destructors** run after their checkpoint is off the stack: a
//!   transaction stored in a nested checkpoint sees the request's root
//!   values as it rolls back, but one stored in the root itself sees the
//!   root gone (still inside the request's scope, so never another
//!   request's or the thread's values). Use an
//!   [`on_root_exit`](Storage::on_root_exit) hook to act while the root's
//!   values are still there.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod engine;
mod error;
mod exit;
pub mod futures;
mod key;
mod storage;

pub use engine::{Checkpoint, Stack, StackGuard};
pub use error::{Error, Operation, SetError};
pub use exit::Outcome;
pub use futures::CheckpointExt;
pub use key::Key;
pub use storage::{CheckpointGuard, Scope, Storage};

/// What `storage!` expands to needs; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::storage::Local;
}

storage! {
    /// The storage for the common case: one stack per thread, shared by all
    /// code that does not declare its own [`storage!`].
    pub static DEFAULT;
}

// The crate's README is what crates.io shows; its examples are doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
