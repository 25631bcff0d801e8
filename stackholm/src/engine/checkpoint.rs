//! A checkpoint's values while it is not on a stack.

use std::any::Any;
use std::fmt;

use super::erased::Carried;
use super::slots::{downcast, Erased};
use crate::exit::Hook;
use crate::Key;

/// A checkpoint that is not on a stack: the values it brings when entered.
///
/// Build one to pre-load values before entering it; they become visible
/// when it is entered and vanish when it is left. [`Stack::pop`](crate::Stack::pop)
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
    /// A place per key, with the key's tag, in the order first used.
    pub(super) values: Vec<(u32, Box<dyn Erased>)>,
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
            values: Vec::new(),
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
        let tag = key.tag();
        match self.values.iter_mut().find(|(at, _)| *at == tag) {
            Some((_, place)) => {
                let place: &mut Carried<T> =
                    downcast((&mut **place as &mut dyn Any).downcast_mut());
                drop(place.replace(value));
            }
            None => {
                let mut place = Carried::new(key);
                place.replace(value);
                self.values.push((tag, Box::new(place)));
            }
        }
        self
    }

    /// The value it holds for `key`: what a read of `key` gives once it is
    /// entered as the only checkpoint on a stack, read without entering it.
    /// A checkpoint is one frame, so the value of a [private](Key::private)
    /// key is there too.
    ///
    /// A look at the tag of each value it holds, then the value's type
    /// checked once: linear in its values, and about a read on a stack at
    /// the few a checkpoint mostly holds (`benches/instructions.sh`).
    ///
    /// ```
    /// use stackholm::{Checkpoint, Key};
    ///
    /// static ACTOR: Key<&'static str> = Key::new("actor");
    /// static DRY_RUN: Key<bool> = Key::new("dry_run").private();
    /// static TENANT: Key<u32> = Key::new("tenant");
    ///
    /// let checkpoint = Checkpoint::new()
    ///     .with_value(&ACTOR, "alice")
    ///     .with_value(&DRY_RUN, true);
    /// assert_eq!(checkpoint.get(&ACTOR), Some(&"alice"));
    /// assert_eq!(checkpoint.get(&DRY_RUN), Some(&true));
    /// assert_eq!(checkpoint.get(&TENANT), None);
    /// assert_eq!(checkpoint.len(), 2);
    /// ```
    #[inline]
    #[must_use]
    pub fn get<T: Send + 'static>(&self, key: &'static Key<T>) -> Option<&T> {
        // A key never used has tag 0, which no place has: found nothing,
        // with no tag assigned for it.
        let tag = key.peek_tag();
        let (_, place) = self.values.iter().find(|(at, _)| *at == tag)?;
        let place: &Carried<T> = downcast((&**place as &dyn Any).downcast_ref());
        place.get()
    }

    /// How many values it holds: one a key, of private keys too.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        // A place is empty only while its checkpoint is entered (its value
        // on the stack), and only a checkpointed future keeps a checkpoint
        // it enters: every checkpoint a user holds has a value in each.
        debug_assert!(
            self.values.iter().all(|(_, place)| place.len() == 1),
            "a checkpoint off the stack has a value in every place"
        );
        self.values.len()
    }

    /// Whether it holds no value (it may still have a
    /// [name](Self::named)).
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it brings nothing when entered: no value, name or hook.
    #[inline]
    pub(super) fn brings_nothing(&self) -> bool {
        self.values.is_empty() && self.name.is_none() && self.hooks.is_empty()
    }

    /// Whether it owns no allocation and nothing to drop.
    #[inline]
    pub(super) fn holds_nothing(&self) -> bool {
        self.values.capacity() == 0 && self.hooks.capacity() == 0
    }

    /// The place for the key tagged `tag`, made with `make` if there is
    /// none: where a value taken off the stack goes back.
    pub(super) fn place(
        &mut self,
        tag: u32,
        make: impl FnOnce() -> Box<dyn Erased>,
    ) -> &mut dyn Erased {
        let at = match self.values.iter().position(|(at, _)| *at == tag) {
            Some(at) => at,
            None => {
                self.values.push((tag, make()));
                self.values.len() - 1
            }
        };
        &mut *self.values[at].1
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |private| {
            self.values
                .iter()
                .filter(move |(_, place)| place.len() > 0 && place.private() == private)
                .map(|(_, place)| place.key_name())
                .collect::<Vec<_>>()
        };
        f.debug_struct("Checkpoint")
            .field("name", &self.name)
            .field("values", &names(false))
            .field("private_values", &names(true))
            .finish()
    }
}
