//! The event formatter that adds the context's fields to each line.

use std::cell::RefCell;
use std::fmt::{self, Write};

use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::context::{LogContext, Sink};
use crate::value::Recorded;

/// A `tracing-subscriber` event formatter that writes what `F` writes, with
/// the declared context fields added; made by [`LogContext::text`] and
/// [`LogContext::json`].
#[derive(Debug, Clone)]
pub struct WithContext<F> {
    inner: F,
    context: LogContext,
    json: bool,
}

impl<F> WithContext<F> {
    pub(crate) fn new(inner: F, context: LogContext, json: bool) -> Self {
        Self {
            inner,
            context,
            json,
        }
    }
}

thread_local! {
    /// The line being formatted, kept for the next event on this thread.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N, F> FormatEvent<S, N> for WithContext<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // An event logged while one is being formatted (by a value's `Debug`,
        // say) gets a line of its own.
        let mut spare = String::new();
        LINE.with(|line| {
            let mut borrowed = line.try_borrow_mut();
            let line = match &mut borrowed {
                Ok(line) => &mut **line,
                Err(_) => &mut spare,
            };
            line.clear();
            self.inner.format_event(ctx, Writer::new(line), event)?;
            if self.json {
                add_to_json(line, &self.context);
            } else {
                add_to_text(line, &self.context);
            }
            writer.write_str(line)
        })
    }
}

/// Adds the fields before the line's end: `name=value`, as `tracing` shows
/// an event's own fields.
fn add_to_text(line: &mut String, context: &LogContext) {
    struct Text<'a>(&'a mut String);
    impl Sink for Text<'_> {
        fn field(&mut self, name: &str, value: &dyn fmt::Display) {
            let _ = write!(self.0, " {name}={value}");
        }
    }
    let newline = line.ends_with('\n');
    if newline {
        line.pop();
    }
    context.render(&mut Text(line));
    if newline {
        line.push('\n');
    }
}

/// Adds the fields as members of the line's object, before its closing
/// brace; values are JSON strings.
fn add_to_json(line: &mut String, context: &LogContext) {
    struct Members {
        members: String,
        scratch: String,
    }
    impl Sink for Members {
        fn field(&mut self, name: &str, value: &dyn fmt::Display) {
            self.scratch.clear();
            let _ = write!(self.scratch, "{value}");
            let (Ok(name), Ok(value)) = (
                serde_json::to_string(name),
                serde_json::to_string(&self.scratch),
            ) else {
                return;
            };
            let _ = write!(self.members, ",{name}:{value}");
        }

        fn recorded(&mut self, name: &str, value: &Recorded) {
            if let Ok(name) = serde_json::to_string(name) {
                let _ = write!(self.members, ",{name}:{}", value.to_json());
            }
        }
    }
    let mut members = Members {
        members: String::new(),
        scratch: String::new(),
    };
    context.render(&mut members);
    let Some(close) = line.rfind('}') else {
        return;
    };
    let mut added = members.members.as_str();
    if line[..close].trim_end().ends_with('{') {
        // An empty object takes no leading comma.
        added = added.strip_prefix(',').unwrap_or(added);
    }
    line.insert_str(close, added);
}
