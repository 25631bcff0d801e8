//! Typed keys: the names under which values are stored.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A value shared between a stack and the snapshots taken of it.
///
/// Type-erased so that a `Value<T>` is `Send` whenever `T` is: values of
/// keys that are not inherited need not be `Sync`, and only inherited ones,
/// which are, are ever shared.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

/// How an [inherited](crate::Key::inherited) key turns its values into
/// shared ones; only a `Sync` value type has one.
pub(crate) type Share<T> = fn(T) -> Shared;

/// Moves `value` into a shared allocation: the [`Share`] of an inherited
/// key.
pub(crate) fn share<T: Send + Sync + 'static>(value: T) -> Shared {
    Arc::new(value)
}

/// The next free key tag, less one; tags are never reused.
static NEXT_TAG: AtomicU32 = AtomicU32::new(0);

/// A typed key under which a value of type `T` is stored in a checkpoint.
///
/// A key is declared once, as a `static`, the way `thread_local!` and
/// `tokio::task_local!` declare theirs. Its type parameter fixes the type of
/// the values stored under it, so reading a key with the wrong type does not
/// compile, and two distinct statics never collide, even when they share a
/// name and a type.
///
/// ```
/// use stackholm::{Key, Stack};
///
/// static REQUEST_ID: Key<String> = Key::new("request_id");
/// static ATTEMPT: Key<u32> = Key::new("attempt");
///
/// let mut stack = Stack::new();
/// let mut root = stack.enter();
/// root.set(&REQUEST_ID, "req-7".to_owned())?;
/// root.set(&ATTEMPT, 1)?;
/// assert_eq!(root.get(&REQUEST_ID).map(String::as_str), Some("req-7"));
/// assert_eq!(root.get(&ATTEMPT), Some(&1));
/// # Ok::<(), stackholm::Error>(())
/// ```
///
/// Every method that uses a key takes it as `&'static Key<T>`. A key's
/// identity is its place in memory, which only a `static` pins down; a `const`
/// key would be a fresh copy at every use, so it is rejected at compile time:
///
/// ```compile_fail
/// use stackholm::{Key, Stack};
///
/// const NOT_A_KEY: Key<u32> = Key::new("copied at every use");
///
/// let mut stack = Stack::new();
/// let mut root = stack.enter();
/// root.set(&NOT_A_KEY, 1).unwrap();
/// ```
///
/// A value of the wrong type is a type error, not a runtime failure:
///
/// ```compile_fail
/// use stackholm::{Key, Stack};
///
/// static ATTEMPT: Key<u32> = Key::new("attempt");
///
/// let mut stack = Stack::new();
/// let mut root = stack.enter();
/// root.set(&ATTEMPT, "three").unwrap();
/// ```
pub struct Key<T: 'static> {
    name: &'static str,
    // 0 while unassigned, the tag afterwards. Interior mutability is also
    // what keeps a `const` key from being promoted to a `'static` borrow.
    tag: AtomicU32,
    /// Set for inherited keys only: a snapshot shares nothing else.
    share: Option<Share<T>>,
    /// Whether values are visible only in the checkpoint that set them.
    private: bool,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> Key<T> {
    /// Declares a key; `name` is shown by `Debug` and in error messages.
    ///
    /// Use it to initialise a `static`:
    ///
    /// ```
    /// # use stackholm::Key;
    /// static TENANT: Key<u64> = Key::new("tenant");
    /// assert_eq!(TENANT.name(), "tenant");
    /// ```
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            tag: AtomicU32::new(0),
            share: None,
            private: false,
            _value: PhantomData,
        }
    }

    /// Makes the key's values private to the checkpoint that set them:
    /// nested checkpoints do not see them, and an outer checkpoint's value
    /// does not show through in a nested one. A flag for the checkpoint's
    /// own code, say "this level has opened a savepoint", that must not
    /// leak into the levels inside it.
    ///
    /// ```
    /// use stackholm::{Key, DEFAULT};
    ///
    /// static SAVEPOINT: Key<u32> = Key::new("savepoint").private();
    ///
    /// let _level = DEFAULT.enter();
    /// DEFAULT.set(&SAVEPOINT, 1)?;
    /// {
    ///     let _nested = DEFAULT.enter();
    ///     assert_eq!(DEFAULT.get(&SAVEPOINT), None);
    /// }
    /// assert_eq!(DEFAULT.get(&SAVEPOINT), Some(1));
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// In the `static`'s initialiser, so at compile time, if the key is
    /// [inherited](Self::inherited): a value no nested checkpoint sees
    /// cannot follow spawned work either.
    #[must_use]
    pub const fn private(self) -> Self {
        assert!(
            self.share.is_none(),
            "a private key cannot be inherited: spawned work is nested in the checkpoint"
        );
        Self {
            private: true,
            ..self
        }
    }

    /// Whether the key's values are visible in the checkpoint that set
    /// them only.
    #[inline]
    pub(crate) const fn is_private(&self) -> bool {
        self.private
    }

    /// How values are shared with snapshots, for an inherited key.
    pub(crate) fn sharing(&self) -> Option<Share<T>> {
        self.share
    }

    /// The name the key was declared with.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The key's tag: a number of its own, assigned on first use, never 0
    /// (the tag of a key not used yet). Tables of slots find a key's slot by
    /// it.
    #[inline]
    pub(crate) fn tag(&'static self) -> u32 {
        match self.tag.load(Ordering::Acquire) {
            0 => self.assign_tag(),
            stored => stored,
        }
    }

    /// The key's tag if it has one, 0 if it was never used: what a read
    /// looks for, which need not assign one.
    #[inline]
    pub(crate) fn peek_tag(&self) -> u32 {
        self.tag.load(Ordering::Acquire)
    }

    #[cold]
    fn assign_tag(&'static self) -> u32 {
        let fresh = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        assert!(fresh < u32::MAX - 1, "stackholm: too many keys declared");
        match self
            .tag
            .compare_exchange(0, fresh + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => fresh + 1,
            // Another thread assigned this key first; its tag wins and ours
            // is left unused.
            Err(stored) => stored,
        }
    }
}

impl<T: Send + Sync + 'static> Key<T> {
    /// Makes the key's values follow the work a checkpoint spawns:
    /// [snapshots](crate::Storage::snapshot), and so
    /// [`inherit`](crate::Storage::inherit), carry its nearest value into
    /// the child, shared rather than copied.
    ///
    /// Keys are not inherited unless they say so: a value crosses into
    /// other tasks and threads only where its key was declared for it. A
    /// request id, the acting user or a tenant should follow the request
    /// into the work it spawns; a database transaction, a per-request
    /// buffer, a session or a connection must not be used from two tasks at
    /// once, and stays in the task that set it. Values of inherited keys
    /// are shared between tasks, so they must be `Sync`; values of other
    /// keys need only be `Send`, so a buffer touched by one task can be a
    /// `RefCell` rather than a `Mutex`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stackholm::Error> {
    /// use std::cell::RefCell;
    /// use stackholm::{Checkpoint, Key, DEFAULT};
    ///
    /// static REQUEST_ID: Key<u64> = Key::new("request_id").inherited();
    /// static BUFFER: Key<RefCell<Vec<String>>> = Key::new("buffer");
    ///
    /// DEFAULT
    ///     .scope(Checkpoint::new(), async {
    ///         DEFAULT.set(&REQUEST_ID, 7)?;
    ///         DEFAULT.set(&BUFFER, RefCell::new(Vec::new()))?;
    ///         let child = DEFAULT.inherit(async {
    ///             (DEFAULT.get(&REQUEST_ID), DEFAULT.with(&BUFFER, |b| b.is_some()))
    ///         });
    ///         let seen = tokio::spawn(child).await.unwrap();
    ///         assert_eq!(seen, (Some(7), false));
    ///         DEFAULT.with(&BUFFER, |buffer| buffer.unwrap().borrow_mut().push("kept".into()));
    ///         Ok(())
    ///     })
    ///     .await
    /// # }
    /// ```
    ///
    /// A value that is not `Sync` cannot be inherited:
    ///
    /// ```compile_fail
    /// use std::cell::RefCell;
    /// use stackholm::Key;
    ///
    /// static SHARED_BUFFER: Key<RefCell<Vec<u8>>> = Key::new("buffer").inherited();
    /// ```
    ///
    /// # Panics
    ///
    /// In the `static`'s initialiser, so at compile time, if the key is
    /// [private](Key::private).
    ///
    /// ```compile_fail
    /// use stackholm::Key;
    ///
    /// static BOTH: Key<u32> = Key::new("both").private().inherited();
    /// ```
    #[must_use]
    pub const fn inherited(self) -> Self {
        assert!(
            !self.private,
            "a private key cannot be inherited: spawned work is nested in the checkpoint"
        );
        Self {
            share: Some(share::<T>),
            ..self
        }
    }
}

impl<T: 'static> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("type", &std::any::type_name::<T>())
            .field("inherited", &self.share.is_some())
            .field("private", &self.private)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: Key<u32> = Key::new("same");
    static B: Key<u32> = Key::new("same");

    #[test]
    fn distinct_statics_get_distinct_tags() {
        assert_ne!(A.tag(), B.tag());
        assert_eq!(A.tag(), A.tag());
    }

    #[test]
    fn debug_shows_name_and_type() {
        let shown = format!("{A:?}");
        assert!(shown.contains("\"same\""), "{shown}");
        assert!(shown.contains("u32"), "{shown}");
    }

    #[test]
    fn concurrent_first_use_agrees_on_one_tag() {
        static RACED: Key<u8> = Key::new("raced");
        let seen: Vec<u32> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| RACED.tag())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(seen.iter().all(|&i| i == seen[0]));
    }
}
