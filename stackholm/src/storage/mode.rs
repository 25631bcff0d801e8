//! Which stack a storage handle reaches.

use std::marker::PhantomData;

mod sealed {
    pub trait Sealed {}
}

/// Which stack a [`Storage`](crate::Storage) handle reaches; sealed.
///
/// - [`Ambient`]: the task's stack inside a task-local scope, the thread's
///   otherwise. Its guards are `!Send`, as they may refer to the thread.
/// - [`TaskOnly`]: the task's stack, or an error outside any scope. Its guards are `Send`, so they can be held across
///   `.await` in a spawned task.
pub trait Mode: sealed::Sealed + Copy + Send + Sync + 'static {
    #[doc(hidden)]
    const TASK_ONLY: bool;
    /// Makes the mode's guards `Send` or not.
    #[doc(hidden)]
    type GuardMarker: Copy + 'static;
}

/// The mode of a storage that uses the task's stack inside a task-local
/// scope and the thread's stack outside; see [`Mode`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Ambient;

impl sealed::Sealed for Ambient {}

impl Mode for Ambient {
    const TASK_ONLY: bool = false;
    type GuardMarker = PhantomData<*const ()>;
}

/// The mode of a storage handle that only reaches the task's stack; see
/// [`Mode`] and [`Storage::task`](crate::Storage::task).
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskOnly;

impl sealed::Sealed for TaskOnly {}

impl Mode for TaskOnly {
    const TASK_ONLY: bool = true;
    type GuardMarker = PhantomData<()>;
}
