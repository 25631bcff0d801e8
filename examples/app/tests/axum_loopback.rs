//! The example's axum app on a real socket of 127.0.0.1, driven through a
//! real HTTP client: isolation under concurrency, streaming bodies, panics
//! and cancelled requests.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use stackholm_examples::axum_app::{spawn_server, wait_for_no_live_requests};
use stackholm_examples::client::Client;

/// The tests share the app's count of live request contexts, so they run
/// one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start() -> Client {
    let (addr, _server) = spawn_server(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("an ephemeral port of 127.0.0.1 is free");
    Client::new(addr)
}

/// Waits (boundedly) for every request context to be dropped.
async fn assert_no_live_requests() {
    let alive = wait_for_no_live_requests(Duration::from_secs(5)).await;
    assert_eq!(alive, 0, "request contexts are still alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_requests_never_see_each_other() {
    let _serial = SERIAL.lock().await;
    const CONCURRENCY: usize = 64;
    const PER_CLIENT: usize = 32;
    const _: () = assert!(CONCURRENCY * PER_CLIENT >= 2000);
    let client = start().await;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|worker| {
            let client = client.clone();
            tokio::spawn(async move {
                for n in 0..PER_CLIENT {
                    let id = format!("w{worker}-r{n}");
                    let user = format!("user{worker}");
                    let (status, body) = client
                        .send(
                            Method::GET,
                            "/echo",
                            &[("x-request-id", &id), ("x-user", &user)],
                        )
                        .await
                        .expect("the request goes through");
                    assert_eq!(status, StatusCode::OK);
                    // Before, innermost, after; depth of the request's stack
                    // after its nested checkpoints; the worker thread's own.
                    assert_eq!(body, format!("{id} {user} {id}/2 {id} 1 0"), "request {id}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    assert_no_live_requests().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_bodies_read_their_own_request_while_polled() {
    let _serial = SERIAL.lock().await;
    let client = start().await;
    let streams: Vec<_> = (0..8)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let id = format!("stream-{n}");
                let chunks = client
                    .chunks("/events", &[("x-request-id", &id), ("x-user", "viewer")])
                    .await
                    .expect("the stream goes through");
                (id, chunks.concat())
            })
        })
        .collect();
    for stream in streams {
        let (id, text) = stream.await.unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        for (n, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("event {n}: {id} /events user=viewer step=-"));
        }
    }
    assert_no_live_requests().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_leaves_the_following_requests_unaffected() {
    let _serial = SERIAL.lock().await;
    let client = start().await;
    for round in 0..20 {
        let (status, _) = client
            .send(Method::GET, "/panic", &[("x-user", "eve")])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let id = format!("after-{round}");
        let (status, body) = client
            .send(
                Method::GET,
                "/echo",
                &[("x-request-id", &id), ("x-user", "frank")],
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("{id} frank {id}/2 {id} 1 0"));
    }
    assert_no_live_requests().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_leaves_nothing_behind() {
    let _serial = SERIAL.lock().await;
    let client = start().await;
    for _ in 0..5 {
        let gave_up = tokio::time::timeout(
            Duration::from_millis(50),
            client.send(Method::GET, "/slow", &[("x-user", "impatient")]),
        )
        .await;
        assert!(gave_up.is_err(), "the client gives up first");
    }
    // Closing the connections makes the server drop the handlers, and
    // with them their request contexts.
    drop(client);
    assert_no_live_requests().await;
}
