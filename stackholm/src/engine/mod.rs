//! The checkpoint stack engine.
//!
//! A [`Stack`] (`stack.rs`, with the children `moves` and `steps`) keeps
//! each key's settings in a slot found through the table of `slots.rs`,
//! moves values it does not know the type of through `erased.rs`, and
//! hands what it takes off to `removed.rs`, to be dropped with nothing
//! borrowed; a [`Checkpoint`] holds values while off a stack.

mod checkpoint;
mod erased;
mod ids;
mod panics;
mod removed;
mod slots;
mod stack;

pub use checkpoint::Checkpoint;
pub(crate) use ids::FrameId;
pub(crate) use panics::Panics;
pub(crate) use removed::Removed;
pub(crate) use stack::{leave_by_steps, Clearing, Step, Until};
pub use stack::{Stack, StackGuard};
