//! Log lines that carry the request's [`stackholm`] context.
//!
//! The application declares, where it sets up its subscriber, which keys
//! are logged and under which field names; every event then carries the
//! current values of those keys as ordinary fields, in the plain text and
//! the JSON formats of `tracing-subscriber`, read when the event is
//! formatted: in a handler, in nested checkpoints, in spawned work (for
//! inherited keys), in a blocking job, while a streaming body is polled, in
//! a value's destructor or an exit hook. A value set after the first line of
//! a request shows on the later ones, which span fields cannot do. Nothing
//! is logged that was not declared, and events outside any checkpoint are
//! unchanged.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use stackholm::{Key, DEFAULT};
//! use stackholm_tracing::LogContext;
//!
//! static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
//! static USER: Key<String> = Key::new("user");
//! static PASSWORD: Key<String> = Key::new("password"); // never declared, never logged
//!
//! let context = LogContext::new()
//!     .display("request_id", &REQUEST_ID)
//!     .debug("user", &USER);
//! # let lines = Arc::new(Mutex::new(Vec::new()));
//! # let sink = Arc::clone(&lines);
//! # let writer = move || Capture(Arc::clone(&sink));
//! # struct Capture(Arc<Mutex<Vec<u8>>>);
//! # impl std::io::Write for Capture {
//! #     fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().extend_from_slice(buf); Ok(buf.len()) }
//! #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! # }
//! let subscriber = tracing_subscriber::fmt()
//!     .event_format(context.text(tracing_subscriber::fmt::format().without_time()))
//! #   .with_writer(writer)
//!     .finish();
//!
//! tracing::subscriber::with_default(subscriber, || {
//!     let _request = DEFAULT.enter();
//!     DEFAULT.set(&REQUEST_ID, "r-1".to_owned())?;
//!     DEFAULT.set(&PASSWORD, "hunter2".to_owned())?;
//!     tracing::info!("before login");
//!     DEFAULT.set(&USER, "alice".to_owned())?;
//!     tracing::info!("after login");
//!     Ok::<_, stackholm::Error>(())
//! })?;
//! # let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
//! # let lines: Vec<&str> = text.lines().collect();
//! # assert!(lines[0].ends_with("before login request_id=r-1"), "{}", lines[0]);
//! # assert!(lines[1].ends_with(r#"after login request_id=r-1 user="alice""#), "{}", lines[1]);
//! # assert!(!text.contains("hunter2"));
//! # Ok::<(), stackholm::Error>(())
//! ```
//!
//! # Formats
//!
//! [`LogContext::text`] wraps a text formatter (`Full`, `Compact`): the
//! fields follow the event's own, as `name=value`. [`LogContext::json`]
//! wraps the JSON formatter: the fields are top-level members of each
//! line's object. The wrapped formatter writes into a buffer first, so its
//! output has no ANSI colours.
//!
//! # Spans
//!
//! [`LogContext::spans`] is a layer that fills the context fields a span
//! declares empty as the span is created inside a checkpoint, so that the
//! layers exporting spans (`tracing-opentelemetry`) record them as
//! attributes.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod context;
mod format;
mod spans;
mod value;

pub use context::LogContext;
pub use format::WithContext;
pub use spans::SpanFields;

// The crate's README is what crates.io shows; its examples are doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
