//! Values declared to render through `tracing::Value`: recorded once into
//! a visitor, to keep their type (a JSON number stays a number).

use std::fmt;

use tracing_core::callsite::Callsite;
use tracing_core::field::{Field, Visit};
use tracing_core::metadata::Kind;
use tracing_core::{Interest, Level, Metadata};

/// A value as `tracing` records it, keeping numbers and booleans apart from
/// text.
#[derive(Debug)]
pub(crate) enum Recorded {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Str(String),
    Debug(String),
}

impl Recorded {
    /// What a `tracing::Value` records itself as.
    pub(crate) fn of(value: &dyn tracing_core::field::Value) -> Option<Self> {
        let mut visitor = Visitor(None);
        value.record(&field(), &mut visitor);
        visitor.0
    }
}

impl Recorded {
    /// As a JSON value: numbers and booleans as themselves.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Self::I64(value) => (*value).into(),
            Self::U64(value) => (*value).into(),
            Self::F64(value) => (*value).into(),
            Self::Bool(value) => (*value).into(),
            Self::Str(value) | Self::Debug(value) => value.as_str().into(),
        }
    }
}

impl fmt::Display for Recorded {
    /// As the text format shows an event's own field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::I64(value) => write!(f, "{value}"),
            Self::U64(value) => write!(f, "{value}"),
            Self::F64(value) => write!(f, "{value}"),
            Self::Bool(value) => write!(f, "{value}"),
            Self::Str(value) => write!(f, "{value:?}"),
            Self::Debug(value) => f.write_str(value),
        }
    }
}

struct Visitor(Option<Recorded>);

impl Visit for Visitor {
    fn record_i64(&mut self, _: &Field, value: i64) {
        self.0 = Some(Recorded::I64(value));
    }
    fn record_u64(&mut self, _: &Field, value: u64) {
        self.0 = Some(Recorded::U64(value));
    }
    fn record_f64(&mut self, _: &Field, value: f64) {
        self.0 = Some(Recorded::F64(value));
    }
    fn record_bool(&mut self, _: &Field, value: bool) {
        self.0 = Some(Recorded::Bool(value));
    }
    fn record_str(&mut self, _: &Field, value: &str) {
        self.0 = Some(Recorded::Str(value.to_owned()));
    }
    fn record_debug(&mut self, _: &Field, value: &dyn fmt::Debug) {
        self.0 = Some(Recorded::Debug(format!("{value:?}")));
    }
}

/// A `Value` records itself against a field, which only a callsite has:
/// this one exists for that alone and is never registered or enabled.
struct ValueCallsite;

static CALLSITE: ValueCallsite = ValueCallsite;

static METADATA: Metadata<'static> = tracing_core::metadata! {
    name: "stackholm_tracing::value",
    target: module_path!(),
    level: Level::TRACE,
    fields: &["value"],
    callsite: &CALLSITE,
    kind: Kind::EVENT,
};

impl Callsite for ValueCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &METADATA
    }
}

fn field() -> Field {
    METADATA
        .fields()
        .field("value")
        .expect("the callsite declares it")
}
