//! Examples and cross-crate integration tests for the stackholm workspace.
//!
//! Not published: it holds the axum app that `examples/axum_app.rs` runs
//! and the loopback tests under `tests/` drive, and their HTTP client.

pub mod axum_app;
pub mod client;
pub mod services;

use std::net::SocketAddr;

use tokio::task::JoinHandle;

/// Serves `app` on `addr` (port 0 for an ephemeral one) in a background
/// task; returns the address it listens on and the server's task.
///
/// # Errors
///
/// If the address cannot be bound.
pub async fn serve(
    app: axum::Router,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((local, server))
}
