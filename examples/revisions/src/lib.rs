//! Per-request change tracking with nested transactions, on SQLite: the
//! job the original stackholm was made for, done with stackholm for Rust.
//!
//! Every request gets a root checkpoint from
//! [`StackholmLayer`](stackholm_tower::StackholmLayer); a middleware sets the
//! acting user and the revision in it; the request's first use of the
//! database opens its transaction, kept in the root; every write records its
//! field-level deltas into the nearest open transaction level as it
//! happens; savepoints map to nested checkpoints, so a rolled-back savepoint
//! discards exactly its own deltas; and a root exit hook writes the revision
//! with its deltas and commits, in the same database transaction, only if
//! the request succeeded. See [`tracking`] for the mechanism.
//!
//! [`request_tx`] is the same pattern on its own, the one `axum-sqlx-tx`
//! users reach for: a database transaction opened lazily at any depth and
//! committed only if the request succeeded.

pub mod accounts;
pub mod api;
pub mod request_tx;
pub mod tracking;

pub use api::{router, ApiError, Db};

/// Serves the app over `db` on `addr` (port 0 for an ephemeral one) in a
/// background task; returns the address it listens on and the server's
/// task.
///
/// # Errors
///
/// If the address cannot be bound.
pub async fn spawn_server(
    db: Db,
    addr: std::net::SocketAddr,
) -> std::io::Result<(
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    stackholm_examples::serve(router(db), addr).await
}
