//! A checkpoint's values while it is not on a stack.

use std::any::Any;
use std::fmt;

use super::carrier::{Carried, Carrier};
use super::slot::Kind;
use super::value::Value;
use crate::exit::Hooks;
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
    pub(super) carriers: Vec<Box<dyn Carrier>>,
    pub(super) name: Option<&'static str>,
    /// Exit hooks registered while it was entered, kept while it is off the
    /// stack (a checkpointed future between polls).
    pub(super) hooks: Hooks,
}

impl Checkpoint {
    /// An empty checkpoint.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            carriers: Vec::new(),
            name: None,
            hooks: Hooks::new(),
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
        self.insert(key, key.kind(), value);
        self
    }

    fn insert<T: Send + 'static>(&mut self, key: &'static Key<T>, kind: Kind, value: T) {
        let value = Value::Owned(value);
        match self.find_mut(key, kind) {
            Some(carried) => carried.replace(value),
            None => self.carriers.push(Box::new(Carried::new(key, kind, value))),
        }
    }

    fn find_mut<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        kind: Kind,
    ) -> Option<&mut Carried<T>> {
        let position = self.position(key.index(), kind)?;
        (self.carriers[position].as_mut() as &mut dyn Any).downcast_mut()
    }

    /// The carrier for the given key index and kind, to move a value back
    /// into when the checkpoint is popped.
    pub(super) fn carrier_mut(&mut self, index: usize, kind: Kind) -> Option<&mut dyn Carrier> {
        let position = self.position(index, kind)?;
        Some(self.carriers[position].as_mut())
    }

    fn position(&self, index: usize, kind: Kind) -> Option<usize> {
        self.carriers
            .iter()
            .position(|c| c.key_index() == index && c.kind() == kind)
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |kind| {
            self.carriers
                .iter()
                .filter(move |c| c.kind() == kind && !c.is_empty())
                .map(|c| c.key_name())
        };
        f.debug_struct("Checkpoint")
            .field("name", &self.name)
            .field("values", &names(Kind::Checkpoint).collect::<Vec<_>>())
            .field("private_values", &names(Kind::Block).collect::<Vec<_>>())
            .finish()
    }
}
