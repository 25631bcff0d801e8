//! Which keys are logged, under which names, and how they render.
//!
//! The methods that make a `LogContext` into a formatter or a span layer
//! are written beside those types, in `format` and `spans`: both use this
//! module, so this one uses neither.

use std::fmt;
use std::sync::Arc;

use stackholm::{Key, Storage, DEFAULT};

use crate::value::Recorded;

/// The keys whose values every log line carries, under their field names:
/// declared once, where the subscriber is set up.
///
/// Values render through `Display` ([`display`](Self::display)), `Debug`
/// ([`debug`](Self::debug)) or `tracing::Value` ([`value`](Self::value)), as
/// declared; a key with no value visible where
/// the event happens is left out of that line. Nothing that was not
/// declared is ever logged. Cloning is cheap: the declarations are shared.
#[derive(Clone)]
pub struct LogContext {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    storage: Storage,
    fields: Vec<Field>,
    chain: Option<&'static str>,
}

/// Finds a declared key's value in a storage and writes it, under the
/// given name, into a sink.
type Render = dyn Fn(Storage, &'static str, &mut dyn Sink) + Send + Sync;

/// One declared field: its name, and how to find and render its value.
#[derive(Clone)]
struct Field {
    name: &'static str,
    render: Arc<Render>,
}

/// Where rendered fields go: a text line or a JSON object.
pub(crate) trait Sink {
    /// Writes one field.
    fn field(&mut self, name: &str, value: &dyn fmt::Display);

    /// Writes one field recorded as `tracing` records values, keeping its
    /// type where the format can.
    fn recorded(&mut self, name: &str, value: &Recorded) {
        self.field(name, value);
    }
}

impl LogContext {
    /// No fields yet, read from [`DEFAULT`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                storage: DEFAULT,
                fields: Vec::new(),
                chain: None,
            }),
        }
    }

    /// Reads the fields from `storage` instead of [`DEFAULT`].
    #[must_use]
    pub fn storage(mut self, storage: Storage) -> Self {
        self.inner_mut().storage = storage;
        self
    }

    /// Logs the nearest value of `key` as the field `name`, through its
    /// `Display` implementation.
    #[must_use]
    pub fn display<T: fmt::Display + Send + 'static>(
        self,
        name: &'static str,
        key: &'static Key<T>,
    ) -> Self {
        self.key(name, key, |value, name, sink| sink.field(name, value))
    }

    /// Logs the nearest value of `key` as the field `name`, through its
    /// `Debug` implementation.
    #[must_use]
    pub fn debug<T: fmt::Debug + Send + 'static>(
        self,
        name: &'static str,
        key: &'static Key<T>,
    ) -> Self {
        self.key(name, key, |value, name, sink| {
            sink.field(name, &AsDebug(value))
        })
    }

    /// Logs the nearest value of `key` as the field `name`, as `tracing`
    /// records it: numbers and booleans stay numbers and booleans in JSON.
    #[must_use]
    pub fn value<T: tracing_core::field::Value + Send + 'static>(
        self,
        name: &'static str,
        key: &'static Key<T>,
    ) -> Self {
        self.key(name, key, |value, name, sink| {
            if let Some(recorded) = Recorded::of(value) {
                sink.recorded(name, &recorded);
            }
        })
    }

    /// Logs the names of the active checkpoints, outermost first and joined
    /// by `/`, as the field `name`; see
    /// [`Checkpoint::named`](stackholm::Checkpoint::named).
    #[must_use]
    pub fn chain(mut self, name: &'static str) -> Self {
        self.inner_mut().chain = Some(name);
        self
    }

    /// Writes the declared fields that have a value here into `sink`.
    pub(crate) fn render(&self, sink: &mut dyn Sink) {
        let inner = &*self.inner;
        for field in &inner.fields {
            (field.render)(inner.storage, field.name, sink);
        }
        if let Some(name) = inner.chain {
            let names = inner.storage.names();
            if !names.is_empty() {
                sink.field(name, &names.join("/"));
            }
        }
    }

    /// Declares a field for `key`, written by `write` where the key has a
    /// value.
    fn key<T: Send + 'static>(
        self,
        name: &'static str,
        key: &'static Key<T>,
        write: fn(&T, &'static str, &mut dyn Sink),
    ) -> Self {
        self.field(name, move |storage, name, sink| {
            storage.with(key, |value| {
                if let Some(value) = value {
                    write(value, name, sink);
                }
            });
        })
    }

    fn field(
        mut self,
        name: &'static str,
        render: impl Fn(Storage, &'static str, &mut dyn Sink) + Send + Sync + 'static,
    ) -> Self {
        self.inner_mut().fields.push(Field {
            name,
            render: Arc::new(render),
        });
        self
    }

    /// The declarations, to add to while building: copied first only if a
    /// clone of this context shares them.
    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }
}

impl Default for LogContext {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LogContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.inner.fields.iter().map(|field| field.name).collect();
        f.debug_struct("LogContext")
            .field("storage", &self.inner.storage)
            .field("fields", &names)
            .field("chain", &self.inner.chain)
            .finish()
    }
}

/// Shows a value's `Debug` form where a `Display` is expected.
struct AsDebug<'a, T>(&'a T);

impl<T: fmt::Debug> fmt::Display for AsDebug<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}
