//! Futures that run inside checkpoints and task-local scopes.

mod in_checkpoint;

use std::future::Future;

pub use crate::storage::Scoped;
pub use in_checkpoint::InCheckpoint;

use crate::Checkpoint;

/// Runs futures inside checkpoints, in the spirit of `tracing::Instrument`.
///
/// Implemented for every future.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use stackholm::{Checkpoint, CheckpointExt, Key, DEFAULT};
///
/// static STEP: Key<&'static str> = Key::new("step");
///
/// async fn current_step() -> Option<&'static str> {
///     tokio::task::yield_now().await;
///     DEFAULT.get(&STEP)
/// }
///
/// let step = current_step()
///     .in_checkpoint(Checkpoint::new().with_value(&STEP, "charge"))
///     .await;
/// assert_eq!(step, Some("charge"));
/// assert_eq!(DEFAULT.get(&STEP), None);
/// # }
/// ```
pub trait CheckpointExt: Sized {
    /// Runs `self` inside `checkpoint` on [`DEFAULT`](crate::DEFAULT) (or
    /// on another storage, with [`InCheckpoint::storage`]): the checkpoint
    /// is entered on every poll and left before the poll returns, keeping
    /// what was set in it for the next poll, and left for good when `self`
    /// completes.
    ///
    /// This is how async code holds a checkpoint across `.await`, a
    /// middleware's "rest of the request" included:
    /// `next.run(request).in_checkpoint(checkpoint).await`. Values set with
    /// [`Storage::set`](crate::Storage::set) inside it go into the
    /// checkpoint.
    fn in_checkpoint(self, checkpoint: Checkpoint) -> InCheckpoint<Self> {
        InCheckpoint::new(self, crate::DEFAULT, checkpoint)
    }
}

impl<F: Future> CheckpointExt for F {}
