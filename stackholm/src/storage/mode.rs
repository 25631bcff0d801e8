//! Which stack a storage handle reaches.

mod sealed {
    pub trait Sealed {}
}

/// Which stack a [`Storage`](crate::Storage) handle reaches; sealed.
///
/// - [`Ambient`]: the task's stack inside a task-local scope, the thread's
///   otherwise.
/// - [`TaskOnly`]: the task's stack, or [`Error::NoScope`](crate::Error::NoScope)
///   outside any scope.
pub trait Mode: sealed::Sealed + Copy + Send + Sync + 'static {
    #[doc(hidden)]
    const TASK_ONLY: bool;
}

/// The mode of a storage that uses the task's stack inside a task-local
/// scope and the thread's stack outside; see [`Mode`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Ambient;

impl sealed::Sealed for Ambient {}

impl Mode for Ambient {
    const TASK_ONLY: bool = false;
}

/// The mode of a storage handle that only reaches the task's stack; see
/// [`Mode`] and [`Storage::task`](crate::Storage::task).
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskOnly;

impl sealed::Sealed for TaskOnly {}

impl Mode for TaskOnly {
    const TASK_ONLY: bool = true;
}
