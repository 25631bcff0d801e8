//! How a checkpoint ended, and the hooks that are told.

use std::fmt;

use crate::engine::Panics;

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

/// The exit hooks of one checkpoint, in the order they were registered.
#[derive(Default)]
pub(crate) struct Hooks(Vec<Hook>);

impl Hooks {
    pub(crate) const fn new() -> Self {
        Self(Vec::new())
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn push(&mut self, hook: Hook) {
        self.0.push(hook);
    }

    /// Moves every hook of `other` after these.
    pub(crate) fn append(&mut self, other: &mut Self) {
        self.0.append(&mut other.0);
    }

    /// Runs the hooks, the last registered first. A hook that panics does
    /// not stop the others: its panic is kept in `panics`.
    ///
    /// Call it with no storage borrowed.
    pub(crate) fn run(&mut self, outcome: Outcome, panics: &mut Panics) {
        while let Some(hook) = self.0.pop() {
            panics.catch(move || hook(outcome));
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} hook(s)", self.0.len())
    }
}
