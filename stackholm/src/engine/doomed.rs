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
#[derive(Default)]
pub(crate) struct Doomed {
    /// Indexed by key index and kind, like a frame's settings.
    carriers: Vec<Option<Box<dyn Carrier>>>,
    /// The places of `carriers` holding a value, in the order they were
    /// filled; they are dropped last filled first.
    filled: Vec<usize>,
}

impl Doomed {
    pub(crate) const fn new() -> Self {
        Self {
            carriers: Vec::new(),
            filled: Vec::new(),
        }
    }

    /// Keeps `value` to be dropped by [`drop_values`](Self::drop_values).
    ///
    /// Values without drop glue run no code when dropped, so they are
    /// dropped at once instead.
    pub(crate) fn keep<T: Send + Sync + 'static>(
        &mut self,
        key: &'static Key<T>,
        kind: Kind,
        value: Value<T>,
    ) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        let place = key.index() * 2 + kind as usize;
        if self.carriers.len() <= place {
            self.carriers.resize_with(place + 1, || None);
        }
        let carrier =
            self.carriers[place].get_or_insert_with(|| Box::new(Carried::<T>::empty(key, kind)));
        let carried: &mut Carried<T> = (carrier.as_mut() as &mut dyn Any)
            .downcast_mut()
            .expect("stackholm: a doomed carrier holds the value type of its key");
        // A place is filled at most once between two drops: one step takes
        // one frame off, and a frame holds one setting per key and kind.
        debug_assert!(carried.value().is_none(), "a doomed place is filled twice");
        carried.replace(value);
        self.filled.push(place);
    }

    /// Drops every value kept, last kept first. A destructor that panics
    /// does not stop the others: the first panic is kept in `panics`.
    ///
    /// Call it with no storage borrowed.
    pub(crate) fn drop_values(&mut self, panics: &mut Panics) {
        while !self.filled.is_empty() {
            panics.catch(|| {
                while let Some(place) = self.filled.pop() {
                    if let Some(carrier) = &mut self.carriers[place] {
                        carrier.clear();
                    }
                }
            });
        }
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
    pub(crate) fn resume(self) {
        if let Some(panic) = self.0 {
            if !std::thread::panicking() {
                panic::resume_unwind(panic);
            }
        }
    }
}
