//! The checkpoint stack engine.
//!
//! [`Stack`] (`stack.rs`) is the one seam the storages use: its methods
//! change [`frames`], the core that never runs user code and hands back
//! what it takes off, which keeps each key's settings in [`slot`]s found
//! through the table of [`slots`]; values taken off wait in [`removed`] to
//! be dropped with nothing borrowed, by the loop of [`leave`] when hooks
//! run between steps; a [`Checkpoint`] holds values while off a stack.

mod checkpoint;
mod frames;
mod ids;
mod leave;
mod panics;
mod removed;
mod slot;
mod slots;
mod stack;

pub use checkpoint::Checkpoint;
pub(crate) use frames::{Clearing, Step, Until};
pub(crate) use ids::FrameId;
pub(crate) use leave::leave_by_steps;
pub(crate) use panics::Panics;
pub(crate) use removed::Removed;
pub(crate) use stack::no_checkpoint;
pub use stack::{Stack, StackGuard};
