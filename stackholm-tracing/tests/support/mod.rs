//! What the tests of this crate share: an output captured in memory, and
//! subscribers writing into it.

use std::io;
use std::sync::{Arc, Mutex};

use stackholm_tracing::LogContext;
use tracing_subscriber::fmt::format;

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The lines written since the last call, taken out.
    pub(crate) fn lines(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A text `fmt` subscriber with `context`, writing here.
    pub(crate) fn text_subscriber(
        &self,
        context: &LogContext,
    ) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .event_format(context.text(format().without_time().with_target(false)))
            .with_writer(move || writer.clone())
            .finish()
    }

    /// A JSON `fmt` subscriber with `context`, writing here.
    pub(crate) fn json_subscriber(
        &self,
        context: &LogContext,
    ) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .event_format(context.json(format().json().without_time()))
            .with_writer(move || writer.clone())
            .finish()
    }
}
