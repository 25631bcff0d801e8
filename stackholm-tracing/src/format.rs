//! The event formatter that adds the context's fields to each line.

use std::cell::RefCell;
use std::fmt::{self, Write};

use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::context::{LogContext, Sink};
use crate::value::Recorded;

/// Event formatter made by [`LogContext::text`] and [`LogContext::json`].
///
/// A `tracing-subscriber` event formatter that writes what `F` writes, with
/// the declared context fields added.
#[derive(Debug, Clone)]
pub struct WithContext<F> {
    inner: F,
    context: LogContext,
    json: bool,
}

// Beside the type it makes, so that `context` need not import this module.
impl LogContext {
    /// Wraps a text formatter (`tracing_subscriber::fmt::format()`, or its
    /// `compact()` form): the context's fields follow the event's own.
    #[must_use]
    pub fn text<F>(&self, inner: F) -> WithContext<F> {
        WithContext::new(inner, self.clone(), false)
    }

    /// Wraps the JSON formatter (`tracing_subscriber::fmt::format().json()`):
    /// the context's fields are top-level members of each line's object.
    #[must_use]
    pub fn json<F>(&self, inner: F) -> WithContext<F> {
        WithContext::new(inner, self.clone(), true)
    }
}

impl<F> WithContext<F> {
    fn new(inner: F, context: LogContext, json: bool) -> Self {
        Self {
            inner,
            context,
            json,
        }
    }

    /// Formats `event` into `line`, with the context's fields.
    fn line<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        line: &mut String,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        F: FormatEvent<S, N>,
    {
        self.inner.format_event(ctx, Writer::new(line), event)?;
        if self.json {
            add_to_json(line, &self.context);
        } else {
            add_to_text(line, &self.context);
        }
        Ok(())
    }
}

/// The largest line buffer kept for the thread's next event, as for the
/// propagation buffers of `stackholm-tower`.
const KEEP: usize = 16 * 1024;

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
            let written = self
                .line(ctx, line, event)
                .and_then(|()| writer.write_str(line));
            // A huge line once must not stay with the thread, written or
            // not: only a buffer of a usual size is kept, so usual lines
            // still reuse it.
            if line.capacity() > KEEP {
                *line = String::new();
            }
            written
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

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format;

    use super::*;

    /// The capacity and address of the line buffer this thread keeps.
    fn kept() -> (usize, *const u8) {
        LINE.with(|line| {
            let line = line.borrow();
            (line.capacity(), line.as_ptr())
        })
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_long_line_does_not_stay_with_the_thread() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(LogContext::new().text(format().without_time()))
            .with_writer(move || writer.clone())
            .finish();
        let long = "x".repeat(4 * KEEP);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("short");
            let warm = kept();
            tracing::info!("short");
            assert_eq!(kept(), warm, "a usual line reuses the buffer");
            tracing::info!("{long}");
            let (capacity, _) = kept();
            assert!(capacity <= KEEP, "{capacity} bytes kept after a long line");
            tracing::info!("short");
            let (capacity, _) = kept();
            assert!(capacity > 0, "a usual line's buffer is kept again");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[2].ends_with(&long), "the long line is written whole");
    }
}
