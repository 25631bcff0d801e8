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
//! # Concepts
//!
//! A *stack* holds *checkpoints*, entered and left in LIFO order. Each
//! checkpoint holds two kinds of values, stored under typed [`Key`]s:
//!
//! - **checkpoint values** are visible in the checkpoint that set them and in
//!   every checkpoint nested in it. Reading gives the value from the nearest
//!   checkpoint that set the key; a nested setting shadows the outer one until
//!   the nested checkpoint is left. [`remove`](Stack::remove) takes away the
//!   nearest setting, [`reset`](Stack::reset) every setting;
//! - **block values** are private to the one checkpoint that set them.
//!
//! A [`Checkpoint`] can be pre-loaded with values before it is entered.
//!
//! Reading the nearest value is O(1): independent of the depth of the stack
//! and of how many other keys are set. Each key has a dense slot in every
//! stack, holding its settings innermost last; there is no hashing and no
//! walk up the stack. Entering and leaving a checkpoint does not allocate once
//! the stack has warmed up.
//!
//! # Storages
//!
//! A storage decides whose stack it is:
//!
//! - [`Stack`]: a stack you own and pass around, used through `&mut`;
//! - [`Storage`]: an ambient stack reached through a global handle:
//!   [`DEFAULT`], or your own declared with [`storage!`]. Inside a
//!   task-local scope ([`Storage::scope`]) it is the task's own stack,
//!   elsewhere the thread's. Guards leave their checkpoints when
//!   dropped, also when a panic unwinds through them.
//!
//! # Async
//!
//! Scopes and instrumented futures work on any executor; only spawning needs
//! the `tokio` feature (on by default):
//!
//! - [`Storage::scope`] runs a future in a stack of its own, whatever thread
//!   polls it;
//! - [`CheckpointExt::in_checkpoint`] runs a future inside a checkpoint,
//!   entered on every poll and taken off before the poll returns: the way to
//!   hold a checkpoint across `.await`, right under `join!`, `select!` and
//!   `FuturesUnordered`. Guards are for code between awaits; see
//!   [In asynchronous code](Storage#in-asynchronous-code);
//! - [`Storage::spawn`] and [`Storage::spawn_blocking`] (`tokio` feature),
//!   [`Storage::spawn_thread`] and [`Storage::inherit`] carry the values of
//!   [inherited](Key::inherited) keys visible at the call site into the
//!   child, shared rather than copied; every other value stays where it was
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
//! handing the value back in a [`SetError`]); reading then gives `None`, and
//! the `try_` readers tell the two apart. Misuse is reported, and never
//! leaves the stack in a state that correct use could not have produced;
//! see [`Error`].
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
pub use storage::{Ambient, CheckpointGuard, Mode, Scope, Storage, TaskOnly};

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
