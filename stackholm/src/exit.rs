//! How a checkpoint ended, and the hooks that are told.

use std::fmt;

/// How a checkpoint ended, as its exit hooks are told; see
/// [`Storage::on_exit`](crate::Storage::on_exit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Left normally: its guard was dropped, its future completed, its
    /// scope's work ended.
    Left,
    /// Left while a panic unwound through it.
    Unwound,
    /// Dropped unfinished: its future, or the scope it was in, was dropped
    /// before it completed (a cancelled task, a client that went away).
    Cancelled,
}

impl Outcome {
    /// `outcome`, or [`Unwound`](Self::Unwound) if a panic is unwinding:
    /// how a checkpoint left right now ended.
    pub(crate) fn now(outcome: Self) -> Self {
        if std::thread::panicking() {
            Self::Unwound
        } else {
            outcome
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Left => "left",
            Self::Unwound => "unwound by a panic",
            Self::Cancelled => "cancelled",
        })
    }
}

/// An exit hook, as a checkpoint holds it.
pub(crate) type Hook = Box<dyn FnOnce(Outcome) + Send>;
