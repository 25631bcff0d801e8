//! What fills a request's root checkpoint: the [`SeedRoot`] trait beside
//! its implementations, and the [`Root`] it fills.

use std::fmt;
use std::marker::PhantomData;

use http::request::Parts;
use stackholm::{Key, Storage};

/// What fills a request's root checkpoint; see [`StackholmLayer::seed`](crate::StackholmLayer::seed)
/// and [`StackholmLayer::seed_with`](crate::StackholmLayer::seed_with).
///
/// Implemented for every `Fn(&Parts, &mut Root<'_>)`, by [`EmptyRoot`],
/// by [`Propagation`](crate::propagation::Propagation) (declared headers
/// and baggage members), and by pairs of seeds. Implement it on a type of your own to name the layer's
/// type, as tower-http's `MakeRequestId` allows:
///
/// ```
/// use http::request::Parts;
/// use stackholm::Key;
/// use stackholm_tower::{Root, SeedRoot, StackholmLayer};
///
/// static TENANT: Key<String> = Key::new("tenant");
///
/// #[derive(Clone)]
/// struct TenantFromHost;
///
/// impl SeedRoot for TenantFromHost {
///     fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
///         if let Some(host) = parts.uri.host() {
///             root.set(&TENANT, host.to_owned());
///         }
///     }
/// }
///
/// // The layer's type can be written down, in a struct field or a signature.
/// fn context_layer() -> StackholmLayer<TenantFromHost> {
///     StackholmLayer::new().seed_with(TenantFromHost)
/// }
/// # let _ = context_layer();
/// ```
pub trait SeedRoot {
    /// Sets the root checkpoint's values for a request with this head.
    fn seed(&self, parts: &Parts, root: &mut Root<'_>);
}

impl<F> SeedRoot for F
where
    F: Fn(&Parts, &mut Root<'_>),
{
    fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
        self(parts, root);
    }
}

/// Two seeds, the first then the second: what
/// [`StackholmLayer::seed`](crate::StackholmLayer::seed) makes when it adds
/// a closure after the seed before it (a
/// [`Propagation`](crate::propagation::Propagation), say).
impl<A: SeedRoot, B: SeedRoot> SeedRoot for (A, B) {
    fn seed(&self, parts: &Parts, root: &mut Root<'_>) {
        self.0.seed(parts, root);
        self.1.seed(parts, root);
    }
}

/// Leaves every root checkpoint empty: the default [`SeedRoot`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyRoot;

impl SeedRoot for EmptyRoot {
    fn seed(&self, _parts: &Parts, _root: &mut Root<'_>) {}
}

/// A request's root checkpoint, as a [`SeedRoot`] fills it.
///
/// The seed runs inside the request's scope, before the inner service is
/// called: its values go straight into the request's task-local stack,
/// which is reused from an earlier request on the same worker thread, so
/// seeding allocates nothing of its own once the worker is warm (the values
/// may, a `String` say).
pub struct Root<'a> {
    storage: Storage,
    _seeding: PhantomData<&'a mut ()>,
}

impl Root<'_> {
    pub(crate) fn new(storage: Storage) -> Self {
        debug_assert_eq!(storage.depth(), 1, "the root is the stack's one checkpoint");
        Self {
            storage,
            _seeding: PhantomData,
        }
    }

    /// The layer's storage, whose current stack's outermost checkpoint
    /// this is.
    pub(crate) fn storage(&self) -> Storage {
        self.storage
    }

    /// Sets a value in the root: visible to the whole request (or, for a
    /// [private](stackholm::Key::private) key, to the root checkpoint only),
    /// also from inside a checkpoint the seed entered.
    ///
    /// # Panics
    ///
    /// If called inside a [`with`](stackholm::Storage::with) closure of the
    /// layer's storage, where the stack cannot be changed: read the value
    /// out first.
    #[track_caller]
    pub fn set<T: Send + 'static>(&mut self, key: &'static Key<T>, value: T) {
        // The root is there: the seed runs in the request's scope.
        if let Err(refused) = self.storage.set_root(key, value) {
            panic!(
                "stackholm-tower: a seed cannot set `{}`: {refused}",
                key.name()
            );
        }
    }

    /// A clone of the nearest value of `key`, if set: the root's, unless
    /// the seed entered a checkpoint of its own.
    #[must_use]
    pub fn get<T: Clone + Send + 'static>(&self, key: &'static Key<T>) -> Option<T> {
        self.storage.get(key)
    }
}

impl fmt::Debug for Root<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Root")
            .field("storage", &self.storage)
            .finish()
    }
}
