//! Checkpoints taken off a stack between two polls of a future.

use super::checkpoint::Checkpoint;
use super::stack::FrameId;

/// The checkpoints an instrumented future holds while it is not being
/// polled: its own checkpoint at the base, then any checkpoint entered inside
/// it and still active (a guard held across an `.await`), each with the id
/// its guard knows it by.
///
/// The checkpoints are kept for reuse, so a future polled again and again
/// allocates only when it holds more checkpoints or keys than before.
#[derive(Debug)]
pub(crate) struct Suspended {
    pub(super) frames: Vec<(FrameId, Checkpoint)>,
    /// How many of `frames`, from the bottom, are to be entered again.
    pub(super) active: usize,
}

impl Suspended {
    /// `checkpoint` as the base, not yet entered.
    pub(crate) fn new(checkpoint: Checkpoint) -> Self {
        Self {
            frames: vec![(FrameId::default(), checkpoint)],
            active: 1,
        }
    }

    /// The id of the base checkpoint.
    pub(crate) fn base(&self) -> FrameId {
        self.frames[0].0
    }

    /// Forgets the checkpoints after they were left for good.
    pub(crate) fn clear(&mut self) {
        self.active = 0;
    }
}
