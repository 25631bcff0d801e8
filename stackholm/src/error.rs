//! The error type of fallible stack operations.

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
    /// Setting or removing a value writes into the innermost checkpoint, so
    /// there has to be one: enter a checkpoint first (for example
    /// [`Stack::enter`](crate::Stack::enter) or
    /// [`Storage::enter`](crate::Storage::enter)).
    NoCheckpoint {
        /// What was attempted, such as `"set"`.
        operation: &'static str,
        /// The name of the key it was attempted on, if any.
        key: Option<&'static str>,
    },
    /// The storage is already in use further up the call stack on this
    /// thread: by a closure passed to one of its `with` methods, or by the
    /// destructor of a value the storage is dropping (as a checkpoint is
    /// left, or a value replaced or removed).
    ///
    /// A read closure holds the stack borrowed while it runs, and so does a
    /// change while it drops values; touching the same storage from inside
    /// either is refused rather than allowed to invalidate the stack.
    Busy {
        /// What was attempted, such as `"set"`.
        operation: &'static str,
    },
    /// The operation needs the current task's stack, and no task-local scope
    /// of the storage is active.
    ///
    /// Only handles that reach the task's stack alone
    /// ([`Storage::task`](crate::Storage::task)) report this; run the code
    /// inside a scope ([`Storage::scope`](crate::Storage::scope)), or behind
    /// a layer that opens one for every request.
    NoScope {
        /// What was attempted, such as `"set"`.
        operation: &'static str,
    },
    /// The thread's storage has already been destroyed, which happens only
    /// while the thread is exiting (from inside another thread-local's
    /// destructor).
    Destroyed,
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
                "cannot {operation}: the storage is in use further up this call \
                 stack, by a `with` closure (read the value out of it first, for \
                 example with `get`) or by the destructor of a value it is dropping \
                 (do this outside that destructor)"
            ),
            Self::NoScope { operation } => write!(
                f,
                "cannot {operation}: no task-local scope is active; run this code \
                 inside `Storage::scope` (or behind a layer that opens one per request)"
            ),
            Self::Destroyed => f.write_str(
                "the thread's checkpoint storage has been destroyed: \
                 the thread is exiting",
            ),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_operation_and_key() {
        let err = Error::NoCheckpoint {
            operation: "set",
            key: Some("request_id"),
        };
        let shown = err.to_string();
        assert!(shown.contains("cannot set `request_id`"), "{shown}");
        assert!(shown.contains("enter a checkpoint"), "{shown}");
    }

    #[test]
    fn busy_explains_the_way_out() {
        let shown = Error::Busy { operation: "enter" }.to_string();
        assert!(shown.starts_with("cannot enter"), "{shown}");
        assert!(shown.contains("`with` closure"), "{shown}");
    }
}
