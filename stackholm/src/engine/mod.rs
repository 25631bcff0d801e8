//! The checkpoint stack engine: frames, per-key value stacks, the carriers
//! that hold a checkpoint's values while it is off the stack, and the values
//! waiting to be dropped once the stack is free.

mod carrier;
mod checkpoint;
mod doomed;
mod slot;
mod stack;
mod value;

pub(crate) use carrier::Carrier;
pub use checkpoint::Checkpoint;
pub(crate) use doomed::{Doomed, Panics};
pub(crate) use slot::{share_top, Kind};
pub(crate) use stack::{leave_by_steps, FrameId, Step, Until};
pub use stack::{Stack, StackGuard};
pub(crate) use value::Value;
