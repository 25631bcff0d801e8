//! The checkpoint stack engine.
//!
//! Start at [`frames`]: the stack of checkpoints, whose methods change it
//! and never run user code, handing back what they take off. The rest is
//! what it is built from and what is built on it:
//!
//! - [`slot`]: the settings of one key, innermost last, a checkpoint's one
//!   value of a key, and [`Erased`], the one way values are handled and
//!   moved between the two without knowing their type;
//!   [`slots`]: a stack's slots, found by key; [`value`]: a value owned or
//!   shared with snapshots;
//! - [`checkpoint`]: values while a checkpoint is off the stack;
//! - [`removed`]: values taken off, waiting to be dropped with nothing
//!   borrowed; [`leave`]: the loop that leaves checkpoints, running exit
//!   hooks and destructors between steps; [`panics`]: what those may throw;
//! - [`stack`]: the owned [`Stack`], the frames with what they take off
//!   dropped at once; the ambient storages (`crate::storage`) are the other
//!   layer, dropping once their borrow is released.
//!
//! [`Erased`]: slot::Erased

mod checkpoint;
mod frames;
mod ids;
mod leave;
mod panics;
mod removed;
mod slot;
mod slots;
mod stack;
mod value;

pub use checkpoint::Checkpoint;
pub(crate) use ids::FrameId;
pub(crate) use leave::{leave_by_steps, Step, Until};
pub(crate) use panics::Panics;
pub(crate) use removed::Removed;
pub(crate) use stack::no_checkpoint;
pub use stack::{Stack, StackGuard};
pub(crate) use value::{share, Share};
