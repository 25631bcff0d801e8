//! What the tests of this crate that go through a real server share.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;

/// Serves `app` on 127.0.0.1, on a port of its own, for the rest of the
/// test's runtime.
pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
