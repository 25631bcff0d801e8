//! The error types of fallible stack operations.

use std::fmt;

/// Why a stack operation could not be carried out.
///
/// None of these leaves the stack changed: an operation that fails does
/// nothing.
///
/// `Display` says what went wrong and what to do; `Debug` gives the
/// variant and its fields with that text as a `message`, as
/// `std::io::Error`'s does, so that `unwrap` and `expect`, which print
/// `Debug`, say what to do too.
///
/// ```
/// use stackholm::{Key, Stack};
///
/// static USER: Key<&'static str> = Key::new("user");
///
/// let err = Stack::new().set(&USER, "alice").unwrap_err().error();
/// assert_eq!(
///     format!("{err:?}"),
///     "NoCheckpoint { operation: Set, key: Some(\"user\"), outside_scope: false, \
///      message: \"cannot set `user`: no checkpoint is active; enter a checkpoint first\" }",
/// );
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The operation needs a checkpoint, and none is active.
    ///
    /// Setting a value (or registering an exit hook) writes into a
    /// checkpoint, so there has to be one: enter a checkpoint first (for
    /// example
    /// [`Stack::enter`](crate::Stack::enter) or
    /// [`Storage::enter`](crate::Storage::enter)).
    ///
    /// On an ambient [`Storage`](crate::Storage) outside any task-local
    /// scope, the stack is the calling thread's own (`outside_scope`). In
    /// a tower or axum service that is code running outside
    /// `stackholm_tower::StackholmLayer`, a middleware added after it with
    /// `Router::layer` say, and the message says to make the layer
    /// outermost.
    #[non_exhaustive]
    NoCheckpoint {
        /// What was attempted.
        operation: Operation,
        /// The name of the key it was attempted on, if any.
        key: Option<&'static str>,
        /// Whether an ambient storage reached the thread's own stack, no
        /// task-local scope of it running; `false` inside a scope and on a
        /// [`Stack`](crate::Stack).
        outside_scope: bool,
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
            Self::NoCheckpoint {
                operation,
                key,
                outside_scope,
            } => {
                match key {
                    Some(key) => write!(f, "cannot {operation} `{key}`")?,
                    None => write!(f, "cannot {operation}")?,
                }
                if *outside_scope {
                    // Where a request's code meets this: a middleware that
                    // runs before the layer opened the request's scope.
                    f.write_str(concat!(
                        ": no checkpoint is active, and no task-local scope; ",
                        "enter a checkpoint first, or, in a tower or axum service, ",
                        "run this code inside `StackholmLayer`: add the layer outermost ",
                        "(last with `Router::layer`, first in `ServiceBuilder`)",
                    ))
                } else {
                    f.write_str(": no checkpoint is active; enter a checkpoint first")
                }
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

/// The variant and its fields, and the `Display` text as `message`.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.to_string();
        match self {
            Self::NoCheckpoint {
                operation,
                key,
                outside_scope,
            } => f
                .debug_struct("NoCheckpoint")
                .field("operation", operation)
                .field("key", key)
                .field("outside_scope", outside_scope)
                .field("message", &message)
                .finish(),
            Self::Busy { operation } => f
                .debug_struct("Busy")
                .field("operation", operation)
                .field("message", &message)
                .finish(),
            Self::NoScope { operation } => f
                .debug_struct("NoScope")
                .field("operation", operation)
                .field("message", &message)
                .finish(),
            Self::Destroyed => f
                .debug_struct("Destroyed")
                .field("message", &message)
                .finish(),
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
    outside_scope: bool,
) -> SetError<T> {
    let err = Error::NoCheckpoint {
        operation,
        key: Some(key.name()),
        outside_scope,
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
            outside_scope: false,
        };
        let shown = err.to_string();
        assert!(shown.contains("cannot set `request_id`"), "{shown}");
        assert!(shown.contains("enter a checkpoint"), "{shown}");
        assert!(!shown.contains("StackholmLayer"), "{shown}");
    }

    #[test]
    fn outside_any_scope_the_layer_order_is_named() {
        let err = Error::NoCheckpoint {
            operation: Operation::OnExit,
            key: None,
            outside_scope: true,
        };
        assert_eq!(
            err.to_string(),
            concat!(
                "cannot register an exit hook: no checkpoint is active, and no ",
                "task-local scope; enter a checkpoint first, or, in a tower or axum ",
                "service, run this code inside `StackholmLayer`: add the layer ",
                "outermost (last with `Router::layer`, first in `ServiceBuilder`)",
            )
        );
    }

    #[test]
    fn debug_gives_the_fields_and_what_to_do() {
        let busy = Error::Busy {
            operation: Operation::Enter,
        };
        assert_eq!(
            format!("{busy:?}"),
            concat!(
                "Busy { operation: Enter, message: \"cannot enter a checkpoint: the ",
                "storage is lent to a `with` closure further up this call stack; read ",
                "the value out of it first (for example with `get`)\" }",
            )
        );
        let no_scope = Error::NoScope {
            operation: Operation::Snapshot,
        };
        assert_eq!(
            format!("{no_scope:?}"),
            concat!(
                "NoScope { operation: Snapshot, message: \"cannot take a snapshot: no ",
                "task-local scope is active; run this code inside `Storage::scope` (or ",
                "behind a layer that opens one per request)\" }",
            )
        );
        assert_eq!(
            format!("{:?}", Error::Destroyed),
            concat!(
                "Destroyed { message: \"the thread's checkpoint storage has been ",
                "destroyed: the thread is exiting\" }",
            )
        );
    }

    #[test]
    fn set_errors_debug_nests_the_causes() {
        let err = SetError::new(
            7_u8,
            Error::NoCheckpoint {
                operation: Operation::SetRoot,
                key: Some("tenant"),
                outside_scope: false,
            },
        );
        assert_eq!(
            format!("{err:?}"),
            concat!(
                "SetError { error: NoCheckpoint { operation: SetRoot, key: Some(\"tenant\"), ",
                "outside_scope: false, message: \"cannot set in the root checkpoint ",
                "`tenant`: no checkpoint is active; enter a checkpoint first\" }, ",
                "value: \"u8\" }",
            )
        );
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
