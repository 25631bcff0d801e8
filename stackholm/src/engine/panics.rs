//! Panics of user code, caught while the stack is being changed and
//! resumed once it is consistent again.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

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
