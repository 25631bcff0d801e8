//! Values taken off a stack, dropped only once the stack is free again.
//!
//! A value's destructor is user code: it may log, read the storage, or
//! enter checkpoints. It must not run while the storage's stack is borrowed,
//! or it would find the storage busy and the stack half-changed. Values that
//! leave a stack (their checkpoint ended) are moved into [`Doomed`] under the
//! borrow, and dropped after it is released, with the stack consistent.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use super::carrier::{Carried, Carrier};
use super::slot::Kind;
use super::value::Value;
use crate::Key;

/// Values waiting to be dropped, in typed carriers kept for reuse: one per
/// key and kind, so that dropping values allocates nothing once warm.
///
/// One word until a value with drop glue is first kept: every stack holds
/// one, and stacks move on every run of a task-local scope.
#[derive(Default)]
pub(crate) struct Doomed(Option<Box<Places>>);

#[derive(Default)]
struct Places {
    /// Indexed by key index and kind, like a frame's settings.
    carriers: Vec<Option<Box<dyn Carrier>>>,
    /// The places of `carriers` holding a value, in the order they were
    /// filled, which is the order they are dropped in.
    filled: Vec<usize>,
}

impl Doomed {
    pub(crate) const fn new() -> Self {
        Self(None)
    }

    /// Keeps `value` to be dropped by [`drop_values`](Self::drop_values).
    ///
    /// Values without drop glue run no code when dropped, so they are
    /// dropped at once instead.
    pub(crate) fn keep<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        kind: Kind,
        value: Value<T>,
    ) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        let places = self.0.get_or_insert_with(Box::default);
        let place = key.index() * 2 + kind as usize;
        if places.carriers.len() <= place {
            places.carriers.resize_with(place + 1, || None);
        }
        let carrier =
            places.carriers[place].get_or_insert_with(|| Box::new(Carried::<T>::empty(key, kind)));
        let carried: &mut Carried<T> = (carrier.as_mut() as &mut dyn Any)
            .downcast_mut()
            .expect("stackholm: a doomed carrier holds the value type of its key");
        // A place is filled at most once between two drops: one step takes
        // one frame off, and a frame holds one setting per key and kind.
        debug_assert!(carried.value().is_none(), "a doomed place is filled twice");
        carried.replace(value);
        places.filled.push(place);
    }

    /// Whether no value waits to be dropped.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|places| places.filled.is_empty())
    }

    /// Drops every value kept, first kept first. A destructor that panics
    /// does not stop the others: the first panic is kept in `panics`.
    ///
    /// Call it with no storage borrowed.
    #[inline]
    pub(crate) fn drop_values(&mut self, panics: &mut Panics) {
        if !self.is_empty() {
            self.drop_kept(panics);
        }
    }

    #[cold]
    #[inline(never)]
    fn drop_kept(&mut self, panics: &mut Panics) {
        let Some(places) = &mut self.0 else {
            return;
        };
        let mut next = 0;
        while next < places.filled.len() {
            panics.catch(|| {
                while let Some(&place) = places.filled.get(next) {
                    // Counted first, so that a panic moves on past it.
                    next += 1;
                    if let Some(carrier) = &mut places.carriers[place] {
                        carrier.clear();
                    }
                }
            });
        }
        places.filled.clear();
    }
}

/// The first panic of the user code run while carrying out one operation,
/// kept until the operation has finished.
#[derive(Default)]
pub(crate) struct Panics(Option<Box<dyn Any + Send>>);

impl Panics {
    /// Runs `f`, keeping its panic if it is the first.
    pub(crate) fn catch(&mut self, f: impl FnOnce()) {
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(f)) {
            self.0.get_or_insert(panic);
        }
    }

    /// Resumes the first panic kept, unless the thread is already
    /// unwinding: a second panic would abort the process, and the panic hook
    /// has already reported this one, as it does for every panic.
    #[inline]
    pub(crate) fn resume(self) {
        if let Some(panic) = self.0 {
            resume_unless_unwinding(panic);
        }
    }
}

#[cold]
#[inline(never)]
fn resume_unless_unwinding(panic: Box<dyn Any + Send>) {
    if !std::thread::panicking() {
        panic::resume_unwind(panic);
    }
}
