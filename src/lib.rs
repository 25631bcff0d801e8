//! Examples and cross-crate integration tests for the stackholm workspace.
//!
//! Not published: it holds the axum app that `examples/axum_app.rs` runs
//! and the loopback tests under `tests/` drive, and their HTTP client.

pub mod axum_app;
pub mod client;
