//! Leaving checkpoints past their exit hooks: the one loop that runs
//! hooks, drops values and keeps going past panics, for every kind of
//! stack, and the steps of a [`Stack`] it takes.
//!
//! Leaving a checkpoint runs user code twice: its exit hooks, while it is
//! still on the stack, then its values' destructors, once it is off. Neither
//! may run while a storage is borrowed, so leaving goes in steps. A step,
//! with the stack borrowed, either takes one exit hook off the innermost
//! checkpoint or takes the checkpoint itself off, handing its values to
//! `Removed`; between steps, with nothing borrowed, [`leave_by_steps`]
//! runs the hook or drops the values. How the stack is reached for a step
//! is up to the caller: the owned [`Stack`] directly, an ambient storage
//! through its cell, trying the stacks set aside by running scopes too.

use std::convert::Infallible;

use super::Stack;
use crate::engine::ids::FrameId;
use crate::engine::panics::Panics;
use crate::exit::{Hook, Outcome};

/// Where leaving stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Once the checkpoint has been left.
    Left(FrameId),
    /// Once the checkpoint is the innermost one (`None`: once none is left).
    Top(Option<FrameId>),
}

/// What one [`Stack::step`] did.
pub(crate) enum Step {
    /// Took a frame off; there are more to go.
    More,
    /// Took an exit hook off the innermost frame, to run before the next
    /// step.
    Hook(Hook),
    /// Took the target's frame off: done.
    Left,
    /// The target is the innermost checkpoint: done, nothing taken off.
    Reached,
    /// The target checkpoint is not on this stack: nothing changed.
    Missing,
}

/// Runs `step` until it is done and returns how many frames the steps took
/// off.
///
/// `step` takes one step with the stack borrowed, then drops the values it
/// took off with nothing borrowed. Exit hooks a step hands out run, told
/// `outcome` (or [`Outcome::Unwound`] while a panic unwinds), before the
/// next step, with nothing borrowed either. A hook or destructor that
/// panics stops neither the others nor the leaving; the first such panic is
/// resumed once the steps are over, unless the thread is already unwinding.
#[inline]
pub(crate) fn leave_by_steps<E>(
    outcome: Outcome,
    mut step: impl FnMut(&mut Panics) -> Result<Step, E>,
) -> Result<usize, E> {
    let mut panics = Panics::default();
    let mut left = 0;
    let result = loop {
        match step(&mut panics) {
            Ok(Step::Hook(hook)) => panics.catch(move || hook(Outcome::now(outcome))),
            Ok(Step::More) => left += 1,
            Ok(Step::Left) => break Ok(left + 1),
            Ok(Step::Reached | Step::Missing) => break Ok(left),
            Err(err) => break Err(err),
        }
    };
    panics.resume();
    result
}

/// What leaving every checkpoint of a stack at once would run: see
/// [`Stack::clearing`].
pub(crate) enum Clearing {
    /// Exit hooks: the checkpoints are left one by one instead.
    Hooks,
    /// Destructors of values, and no exit hook.
    Values,
    /// No user code at all.
    Nothing,
}

impl Stack {
    /// Takes one exit hook or one frame off the stack on the way to
    /// `until`, the values taken off kept for
    /// [`take_removed`](Self::take_removed).
    pub(crate) fn step(&mut self, until: Until) -> Step {
        let top = self.top_id();
        let (target, last) = match until {
            Until::Left(id) => (Some(id), top == Some(id)),
            Until::Top(target) if top == target => return Step::Reached,
            Until::Top(target) => (target, false),
        };
        if !last && target.is_some_and(|id| !self.contains(id)) {
            return Step::Missing;
        }
        if self.top_has_hooks() {
            if let Some((_, hook)) = self.hooks.pop() {
                return Step::Hook(hook);
            }
        }
        self.pop_top();
        if last {
            Step::Left
        } else {
            Step::More
        }
    }

    /// Whether the checkpoint `id` is active.
    fn contains(&self, id: FrameId) -> bool {
        self.frames.iter().rev().any(|frame| frame.id == id)
    }

    /// Leaves the checkpoint `id` of an owned stack, and any still active
    /// inside it, one step at a time: it has exit hooks, or is not the
    /// innermost one.
    #[inline(never)]
    pub(super) fn leave_stepwise(&mut self, id: FrameId) {
        let left = leave_by_steps(Outcome::Left, |panics| {
            let step = self.step(Until::Left(id));
            self.removed.drop_all(panics);
            Ok::<_, Infallible>(step)
        });
        let Ok(_) = left;
    }

    /// What [`clear`](Self::clear) would run.
    pub(crate) fn clearing(&self) -> Clearing {
        if !self.hooks.is_empty() {
            Clearing::Hooks
        } else if self.settings.iter().any(|setting| setting.drops()) {
            Clearing::Values
        } else {
            Clearing::Nothing
        }
    }

    /// Leaves every checkpoint at once, innermost first, each value last
    /// set first, with none of the step by step machinery of leaving: what
    /// ends a scope whose checkpoints have no exit hooks. A destructor that
    /// panics does not stop the others; its panic is kept in `panics`.
    ///
    /// The values are dropped here, with the stack borrowed: call it on a
    /// stack no storage holds, with no exit hook (see
    /// [`clearing`](Self::clearing)).
    pub(crate) fn clear(&mut self, panics: &mut Panics) {
        debug_assert!(self.hooks.is_empty(), "hooks are run by leaving");
        self.frames.clear();
        while let Some(setting) = self.settings.pop() {
            let slot = self.slots.at_mut(setting);
            if setting.drops() {
                panics.catch(|| slot.drop_top());
            } else {
                slot.drop_top();
            }
        }
    }

    /// Whether the stack is small enough to keep for reuse: no checkpoint
    /// active, at most `frames` of room for checkpoints and `keys` slots.
    pub(crate) fn reusable(&self, frames: usize, keys: usize) -> bool {
        self.frames.is_empty() && self.frames.capacity() <= frames && self.slots.len() <= keys
    }

    /// How many keys the stack holds a slot for.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.slots.len()
    }
}
