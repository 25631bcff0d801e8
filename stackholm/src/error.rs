//! The error types of fallible stack operations.

use std::fmt;

/// Why a stack operation could not be carried out.
///
/// None of these leaves the stack changed: an operation that fails does
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The operation needs a checkpoint, and none is active.
    ///
    /// Setting a value (or registering an exit hook) writes into a
    /// checkpoint, so there has to be one: enter a checkpoint first (for
    /// example
    /// [`Stack::enter`](crate::Stack::enter) or
    /// [`Storage::enter`](crate::Storage::enter)).
    #[non_exhaustive]
    NoCheckpoint {
        /// What was attempted.
        operation: Operation,
        /// The name of the key it was attempted on, if any.
        key: Option<&'static str>,
    },
    /// The storage is lent to a [`with`](crate::Storage::with) closure
    /// further up the call stack on this thread.
    ///
    /// The closure holds a reference into the stack while it runs; changing
    /// the same storage from inside it is refused rather than allowed to
    /// invalidate that reference. Reads nest freely.
    #[non_exhaustive]
    Busy {
        /// What was attempted.
        operation: Operation,
    },
    /// The operation needs the current task's stack, and no task-local scope
    /// of the storage is active.
    ///
    /// Only handles that reach the task's stack alone
    /// ([`Storage::task`](crate::Storage::task)) report this; run the code
    /// inside a scope ([`Storage::scope`](crate::Storage::scope)), or behind
    /// a layer that opens one for every request.
    #[non_exhaustive]
    NoScope {
        /// What was attempted.
        operation: Operation,
    },
    /// The thread's storage has already been destroyed, which happens only
    /// while the thread is exiting (from inside another thread-local's
    /// destructor).
    Destroyed,
}

impl Error {
    /// The operation that failed, where the error records one.
    #[must_use]
    pub fn operation(&self) -> Option<Operation> {
        match *self {
            Self::NoCheckpoint { operation, .. }
            | Self::Busy { operation }
            | Self::NoScope { operation } => Some(operation),
            Self::Destroyed => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCheckpoint { operation, key } => {
                match key {
                    Some(key) => write!(f, "cannot {operation} `{key}`")?,
                    None => write!(f, "cannot {operation}")?,
                }
                f.write_str(": no checkpoint is active; enter a checkpoint first")
            }
            Self::Busy { operation } => write!(
                f,
                concat!(
                    "cannot {}: the storage is lent to a `with` closure further up ",
                    "this call stack; read the value out of it first (for example with `get`)",
                ),
                operation
            ),
            Self::NoScope { operation } => write!(
                f,
                concat!(
                    "cannot {}: no task-local scope is active; run this code ",
                    "inside `Storage::scope` (or behind a layer that opens one per request)",
                ),
                operation
            ),
            Self::Destroyed => f.write_str(
                "the thread's checkpoint storage has been destroyed: the thread is exiting",
            ),
        }
    }
}

impl std::error::Error for Error {}

/// What was attempted when an [`Error`] occurred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Entering a checkpoint.
    Enter,
    /// Setting a checkpoint value.
    Set,
    /// Setting a value in the outermost checkpoint.
    SetRoot,
    /// Removing the nearest setting of a checkpoint value.
    Remove,
    /// Removing every setting of a checkpoint value.
    Reset,
    /// Taking a snapshot of the visible values.
    Snapshot,
    /// Running code inside a task-local scope.
    RunScope,
    /// Registering an exit hook.
    OnExit,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enter => "enter a checkpoint",
            Self::Set => "set",
            Self::SetRoot => "set in the root checkpoint",
            Self::Remove => "remove",
            Self::Reset => "reset",
            Self::Snapshot => "take a snapshot",
            Self::RunScope => "run a scope",
            Self::OnExit => "register an exit hook",
        })
    }
}

/// A value that could not be set, handed back with the reason.
///
/// Like `std::sync::mpsc::SendError`, it gives the value back so that a
/// failed `set` does not lose it. It converts into [`Error`], so `?` works in
/// functions returning `Result<_, stackholm::Error>`.
///
/// ```
/// use stackholm::{Error, Key, Stack};
///
/// static BUFFER: Key<Vec<u8>> = Key::new("buffer");
///
/// let mut stack = Stack::new();
/// let err = stack.set(&BUFFER, vec![1, 2, 3]).unwrap_err();
/// assert!(matches!(err.error(), Error::NoCheckpoint { .. }));
/// let buffer = err.into_value();
/// assert_eq!(buffer, [1, 2, 3]);
/// ```
pub struct SetError<T> {
    value: T,
    error: Error,
}

impl<T> SetError<T> {
    pub(crate) fn new(value: T, error: Error) -> Self {
        Self { value, error }
    }

    /// Why the value could not be set.
    #[must_use]
    pub fn error(&self) -> Error {
        self.error
    }

    /// The value that could not be set, handed back.
    #[must_use]
    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T> From<SetError<T>> for Error {
    fn from(err: SetError<T>) -> Self {
        err.error
    }
}

impl<T> fmt::Debug for SetError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetError")
            .field("error", &self.error)
            .field("value", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> fmt::Display for SetError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for SetError<T> {}

impl<T> PartialEq<Error> for SetError<T> {
    fn eq(&self, other: &Error) -> bool {
        self.error == *other
    }
}

/// The error of a set with no checkpoint active, handing `value` back; out
/// of line, so that a set stays small.
#[cold]
#[inline(never)]
pub(crate) fn no_checkpoint<T>(
    operation: Operation,
    key: &'static crate::Key<T>,
    value: T,
) -> SetError<T> {
    let err = Error::NoCheckpoint {
        operation,
        key: Some(key.name()),
    };
    SetError::new(value, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_operation_and_key() {
        let err = Error::NoCheckpoint {
            operation: Operation::Set,
            key: Some("request_id"),
        };
        let shown = err.to_string();
        assert!(shown.contains("cannot set `request_id`"), "{shown}");
        assert!(shown.contains("enter a checkpoint"), "{shown}");
    }

    #[test]
    fn busy_explains_the_way_out() {
        let shown = Error::Busy {
            operation: Operation::Enter,
        }
        .to_string();
        assert!(shown.starts_with("cannot enter a checkpoint"), "{shown}");
        assert!(shown.contains("`with` closure"), "{shown}");
    }

    #[test]
    fn set_error_shows_the_cause_and_hands_the_value_back() {
        let err = SetError::new(
            String::from("kept"),
            Error::NoScope {
                operation: Operation::Set,
            },
        );
        assert!(err.to_string().starts_with("cannot set"), "{err}");
        assert!(format!("{err:?}").contains("String"), "{err:?}");
        assert_eq!(err.error().operation(), Some(Operation::Set));
        assert_eq!(err.into_value(), "kept");
    }
}
