//! The checkpoint stack engine: frames, per-key value stacks, and the
//! carriers that hold a checkpoint's values while it is off the stack.

mod carrier;
mod checkpoint;
mod slot;
mod stack;
mod suspended;
mod value;

pub use checkpoint::Checkpoint;
pub(crate) use stack::FrameId;
pub use stack::{Stack, StackGuard};
pub(crate) use suspended::Suspended;
