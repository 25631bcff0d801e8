//! Spans created inside a checkpoint carry the context's values, as an
//! exporting layer (`tracing-opentelemetry`) sees them: a layer here records
//! what every span was created with and what was recorded into it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use stackholm::{Key, DEFAULT};
use stackholm_tracing::{LogContext, SpanFields};
use tracing::field::{Empty, Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

static REQUEST_ID: Key<String> = Key::new("request_id");
static USER: Key<&'static str> = Key::new("user");

/// Each span's fields, by span name.
type Spans = BTreeMap<String, BTreeMap<String, String>>;

/// Every span's fields as an exporter would turn them into attributes.
#[derive(Clone, Default)]
struct Exporter(Arc<Mutex<Spans>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Exporter {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        let fields = spans.entry(attrs.metadata().name().to_owned()).or_default();
        attrs.record(&mut Fields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let name = ctx.metadata(id).expect("a live span").name();
        let mut spans = self.0.lock().unwrap();
        values.record(&mut Fields(spans.entry(name.to_owned()).or_default()));
    }
}

#[test]
fn spans_created_in_a_checkpoint_record_the_context() {
    let exporter = Exporter::default();
    let context = LogContext::new()
        .display("request_id", &REQUEST_ID)
        .debug("user", &USER);
    // The exporter inside: it sees the span created, then the record.
    let subscriber = tracing_subscriber::registry()
        .with(exporter.clone())
        .with(context.spans());
    tracing::subscriber::with_default(subscriber, || {
        let _outside = tracing::info_span!("outside", request_id = Empty);
        let _request = DEFAULT.enter();
        DEFAULT.set(&REQUEST_ID, "r-9".to_owned()).unwrap();
        DEFAULT.set(&USER, "dora").unwrap();
        let _query =
            tracing::info_span!("query", table = "notes", request_id = Empty, user = Empty);
        // A span that does not declare a field does not get it.
        let _other = tracing::info_span!("undeclared", table = "notes");
        // A value the span sets itself is replaced by the context's.
        let _own = tracing::info_span!("own", request_id = "mine");
    });
    let spans = exporter.0.lock().unwrap();
    assert_eq!(
        spans["outside"].get("request_id"),
        None,
        "no checkpoint, no value"
    );
    assert_eq!(spans["query"]["request_id"], "r-9");
    assert_eq!(spans["query"]["user"], "\"dora\"");
    assert_eq!(spans["query"]["table"], "notes");
    assert_eq!(spans["undeclared"].get("request_id"), None);
    assert_eq!(spans["own"]["request_id"], "r-9");
}

/// Creates a span `first` under `one`, then, with `one` still in use, a
/// span `second` under `two`, each in a checkpoint of its own; what each
/// exporter saw.
fn in_two(one: &Dispatch, first: &Exporter, two: &Dispatch, second: &Exporter) -> (Spans, Spans) {
    tracing::dispatcher::with_default(one, || {
        let _request = DEFAULT.enter();
        DEFAULT.set(&REQUEST_ID, "r-1".to_owned()).unwrap();
        let _first = tracing::info_span!("first", request_id = Empty);
        // Both subscribers are alive, and each one's first span has the same
        // id: a record sent to the wrong subscriber lands in a live span of
        // it instead of going nowhere.
        tracing::dispatcher::with_default(two, || {
            let _request = DEFAULT.enter();
            DEFAULT.set(&REQUEST_ID, "r-2".to_owned()).unwrap();
            let _second = tracing::info_span!("second", request_id = Empty);
        });
    });
    let first = first.0.lock().unwrap().clone();
    let second = second.0.lock().unwrap().clone();
    (first, second)
}

fn spans(name: &str, request_id: &str) -> Spans {
    let fields = BTreeMap::from([("request_id".to_owned(), request_id.to_owned())]);
    BTreeMap::from([(name.to_owned(), fields)])
}

#[test]
fn clones_in_two_subscribers_record_each_into_its_own() {
    let context = LogContext::new().display("request_id", &REQUEST_ID);
    let layer = context.spans();
    let (first, second) = (Exporter::default(), Exporter::default());
    let one = Dispatch::new(
        tracing_subscriber::registry()
            .with(first.clone())
            .with(layer.clone()),
    );
    let two = Dispatch::new(
        tracing_subscriber::registry()
            .with(second.clone())
            .with(layer.clone()),
    );
    let (first, second) = in_two(&one, &first, &two, &second);
    assert_eq!(first, spans("first", "r-1"));
    assert_eq!(second, spans("second", "r-2"));
}

#[test]
fn a_clone_of_a_registered_layer_records_into_its_own_subscriber() {
    let context = LogContext::new().display("request_id", &REQUEST_ID);
    let (first, second) = (Exporter::default(), Exporter::default());
    let one = Dispatch::new(
        tracing_subscriber::registry()
            .with(first.clone())
            .with(context.spans()),
    );
    // Cloned once it knows its subscriber: the clone must not inherit it.
    let registered = one.downcast_ref::<SpanFields>().expect("the layer").clone();
    let two = Dispatch::new(
        tracing_subscriber::registry()
            .with(second.clone())
            .with(registered),
    );
    let (first, second) = in_two(&one, &first, &two, &second);
    assert_eq!(first, spans("first", "r-1"));
    assert_eq!(second, spans("second", "r-2"));
}
