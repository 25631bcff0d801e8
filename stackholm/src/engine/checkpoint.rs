//! A checkpoint's values while it is not on a stack.

use std::fmt;

use super::slots::Slots;
use crate::exit::Hook;
use crate::Key;

/// A checkpoint that is not on a stack: the values it brings when entered.
///
/// Build one to pre-load values before entering it (Python's
/// `checkpoint_data[...] = ...` before `with ctx:`); they become visible when
/// it is entered and vanish when it is left. [`Stack::pop`](crate::Stack::pop)
/// gives the innermost checkpoint back as a `Checkpoint` holding every value
/// set in it, ready to be entered again; [`Storage::snapshot`] gives one
/// holding the inherited values visible at the call site.
///
/// [`Storage::snapshot`]: crate::Storage::snapshot
///
/// Entering takes the checkpoint by value, so the same checkpoint cannot be
/// active twice at once.
///
/// ```
/// use stackholm::{Checkpoint, Key, Stack};
///
/// static ACTOR: Key<&'static str> = Key::new("actor");
///
/// let mut stack = Stack::new();
/// let mut root = stack.enter();
/// root.set(&ACTOR, "system")?;
/// {
///     let as_alice = Checkpoint::new().with_value(&ACTOR, "alice");
///     let inner = root.enter_with(as_alice);
///     assert_eq!(inner.get(&ACTOR), Some(&"alice"));
/// }
/// assert_eq!(root.get(&ACTOR), Some(&"system"));
/// # Ok::<(), stackholm::Error>(())
/// ```
#[derive(Default)]
pub struct Checkpoint {
    /// One setting per key at most, at depth 0.
    pub(super) slots: Slots,
    pub(super) name: Option<&'static str>,
    /// Exit hooks registered while it was entered, kept while it is off the
    /// stack (a checkpointed future between polls).
    pub(super) hooks: Vec<Hook>,
}

impl Checkpoint {
    /// An empty checkpoint.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            slots: Slots::new(),
            name: None,
            hooks: Vec::new(),
        }
    }

    /// An empty checkpoint named `name`: the names of the active
    /// checkpoints, outermost first, are read with
    /// [`Storage::names`](crate::Storage::names) (and
    /// [`Stack::names`](crate::Stack::names)), for logs and errors that say
    /// where they happened.
    ///
    /// ```
    /// use stackholm::{Checkpoint, DEFAULT};
    ///
    /// let _request = DEFAULT.enter_with(Checkpoint::named("request"));
    /// let _unnamed = DEFAULT.enter();
    /// let _tx = DEFAULT.enter_with(Checkpoint::named("transaction"));
    /// assert_eq!(DEFAULT.names(), ["request", "transaction"]);
    /// ```
    #[must_use]
    pub const fn named(name: &'static str) -> Self {
        let mut checkpoint = Self::new();
        checkpoint.name = Some(name);
        checkpoint
    }

    /// Pre-loads a value for `key`, visible once the checkpoint is entered
    /// (in nested checkpoints too, unless the key is
    /// [private](Key::private)). Replaces a value pre-loaded for the same
    /// key.
    #[must_use]
    pub fn with_value<T: Send + 'static>(mut self, key: &'static Key<T>, value: T) -> Self {
        let (_, slot) = self.slots.typed_or_insert(key);
        drop(slot.set(0, value));
        self
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |private| {
            self.slots
                .iter()
                .filter(move |slot| slot.len() > 0 && slot.private() == private)
                .map(|slot| slot.key_name())
                .collect::<Vec<_>>()
        };
        f.debug_struct("Checkpoint")
            .field("name", &self.name)
            .field("values", &names(false))
            .field("private_values", &names(true))
            .finish()
    }
}
