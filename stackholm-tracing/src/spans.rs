//! Spans that record the context's values as fields.

use std::fmt;
use std::sync::OnceLock;

use tracing_core::dispatcher::WeakDispatch;
use tracing_core::field::{display, Value};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Dispatch, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::context::{LogContext, Sink};

/// Span layer made by [`LogContext::spans`].
///
/// A `tracing-subscriber` layer that fills the declared context fields of
/// every span created inside a checkpoint, so that the layers that export
/// spans (`tracing-opentelemetry`, say) see them as span attributes.
///
/// A span records only the fields it declares, so a span that should carry
/// the context declares them empty, under the names the context logs them
/// with; the layer fills those it finds a value for, as the span is
/// created:
///
/// ```
/// use stackholm::{Key, DEFAULT};
/// use stackholm_tracing::LogContext;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// static REQUEST_ID: Key<String> = Key::new("request_id");
///
/// let context = LogContext::new().display("request_id", &REQUEST_ID);
/// let subscriber = tracing_subscriber::registry()
///     // .with(tracing_opentelemetry::layer()) – inside, so it sees the record
///     .with(context.spans());
/// tracing::subscriber::with_default(subscriber, || {
///     let _request = DEFAULT.enter();
///     DEFAULT.set(&REQUEST_ID, "r-1".to_owned())?;
///     let _span = tracing::info_span!("query", request_id = tracing::field::Empty);
///     Ok::<_, stackholm::Error>(())
/// })?;
/// # Ok::<(), stackholm::Error>(())
/// ```
///
/// Add it after (outside) the layers that should see the values: a layer
/// sees the record only if it has seen the span created, and layers see a
/// span created innermost first.
///
/// A clone is a layer of its own, for another subscriber: it shares the
/// declarations, not the subscriber it records into.
#[derive(Debug)]
pub struct SpanFields {
    context: LogContext,
    /// The subscriber this layer is part of, to record into: from inside a
    /// subscriber's call, the thread's default dispatcher is not reachable.
    /// Each layer has its own, as a layer is part of one subscriber only.
    subscriber: OnceLock<WeakDispatch>,
}

// Beside the type it makes, so that `context` need not import this module.
impl LogContext {
    /// A layer that fills the declared fields of each span created inside a
    /// checkpoint; see [`SpanFields`].
    #[must_use]
    pub fn spans(&self) -> SpanFields {
        SpanFields::new(self.clone())
    }
}

impl SpanFields {
    fn new(context: LogContext) -> Self {
        Self {
            context,
            subscriber: OnceLock::new(),
        }
    }
}

impl Clone for SpanFields {
    /// Clones the declarations only: a clone of a layer already part of a
    /// subscriber is added to another one, and records into that one.
    fn clone(&self) -> Self {
        Self::new(self.context.clone())
    }
}

impl<S: Subscriber> Layer<S> for SpanFields {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.subscriber.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        struct Fill<'a> {
            attrs: &'a Attributes<'a>,
            id: &'a Id,
            subscriber: &'a Dispatch,
        }
        impl Sink for Fill<'_> {
            fn field(&mut self, name: &str, value: &dyn fmt::Display) {
                let fields = self.attrs.metadata().fields();
                let Some(field) = fields.field(name) else {
                    return;
                };
                let rendered = value.to_string();
                let value = display(&rendered);
                let values = [(&field, Some(&value as &dyn Value))];
                let values = fields.value_set(&values);
                self.subscriber.record(self.id, &Record::new(&values));
            }
        }
        let Some(subscriber) = self.subscriber.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        self.context.render(&mut Fill {
            attrs,
            id,
            subscriber: &subscriber,
        });
    }
}
