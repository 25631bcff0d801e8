//! Leaving checkpoints: the one loop that runs exit hooks, drops values and
//! keeps going past panics, for every kind of stack.
//!
//! Leaving a checkpoint runs user code twice: its exit hooks, while it is
//! still on the stack, then its values' destructors, once it is off. Neither
//! may run while a storage is borrowed, so leaving goes in steps. A step,
//! with the stack borrowed, either takes one exit hook off the innermost
//! checkpoint or takes the checkpoint itself off, handing its values to a
//! `Removed`; between steps, with nothing borrowed, [`leave_by_steps`]
//! runs the hook or drops the values. How the stack is reached for a step
//! is up to the caller: the owned [`Stack`](super::Stack) directly, an
//! ambient storage through its cell, trying the stacks set aside by running
//! scopes too.

use super::frames::Step;
use super::panics::Panics;
use crate::exit::Outcome;

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
