//! The request transaction over HTTP on 127.0.0.1: committed only when the
//! request succeeded, rolled back on every other ending.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use revisions::request_tx::{router, Endings, NotesDb};
use rusqlite::Connection;
use stackholm::Outcome;
use stackholm_examples::client::Client;
use tokio::io::AsyncWriteExt;

struct App {
    client: Client,
    addr: SocketAddr,
    db: NotesDb,
    endings: Endings,
}

async fn start() -> App {
    let db = NotesDb::new(Connection::open_in_memory().unwrap()).unwrap();
    let endings = Endings::default();
    let app = router(db.clone(), endings.clone());
    let (addr, _server) = stackholm_examples::serve(app, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("an ephemeral port of 127.0.0.1 is free");
    App {
        client: Client::new(addr),
        addr,
        db,
        endings,
    }
}

impl App {
    async fn post(&self, then: &str, text: &str) -> StatusCode {
        let body = serde_json::json!({ "text": text }).to_string();
        let (status, _) = self
            .client
            .send_json(Method::POST, &format!("/notes?then={then}"), &[], &body)
            .await
            .expect("the request goes through");
        status
    }

    /// Waits for the next transaction to end; how it ended.
    async fn ending(&self) -> (Outcome, bool) {
        for _ in 0..500 {
            if let Some(ending) = self.endings.lock().unwrap().pop() {
                return ending;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no transaction ended");
    }
}

#[tokio::test]
async fn a_successful_request_commits() {
    let app = start().await;
    assert_eq!(app.post("ok", "kept").await, StatusCode::CREATED);
    assert_eq!(app.ending().await, (Outcome::Left, true));
    assert_eq!(app.db.committed().await, ["kept"]);
}

#[tokio::test]
async fn an_error_status_rolls_back() {
    let app = start().await;
    assert_eq!(
        app.post("fail", "refused").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.ending().await, (Outcome::Left, false));
    assert!(app.db.committed().await.is_empty());
}

#[tokio::test]
async fn a_panicking_handler_rolls_back_and_the_server_goes_on() {
    let app = start().await;
    assert_eq!(
        app.post("panic", "lost").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(app.ending().await, (Outcome::Unwound, false));
    assert_eq!(app.post("ok", "after").await, StatusCode::CREATED);
    assert_eq!(app.ending().await, (Outcome::Left, true));
    assert_eq!(app.db.committed().await, ["after"]);
}

#[tokio::test]
async fn a_client_that_goes_away_rolls_back() {
    let app = start().await;
    let body = r#"{"text":"abandoned"}"#;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "POST /notes?then=hang HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The handler writes, then waits forever; the client gives up.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    assert_eq!(app.ending().await, (Outcome::Cancelled, false));
    assert!(app.db.committed().await.is_empty());
}

#[tokio::test]
async fn concurrent_requests_each_commit_their_own_work() {
    let app = start().await;
    let posts = (0..16).map(|i| {
        let then = if i % 2 == 0 { "ok" } else { "fail" };
        let text = format!("note {i}");
        let app = &app;
        async move { app.post(then, &text).await }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        8
    );
    let mut committed = app.db.committed().await;
    committed.sort();
    let mut expected: Vec<String> = (0..16).step_by(2).map(|i| format!("note {i}")).collect();
    expected.sort();
    assert_eq!(committed, expected);
}
