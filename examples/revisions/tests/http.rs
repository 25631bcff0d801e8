//! The revisions app over HTTP on 127.0.0.1: what gets recorded, under
//! which revision, and what does not.

use std::net::SocketAddr;

use http::{Method, StatusCode};
use revisions::{spawn_server, Db};
use serde_json::{json, Value};
use stackholm_examples::client::Client;

async fn start_with(db: Db) -> Client {
    let (addr, _server) = spawn_server(db, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("an ephemeral port of 127.0.0.1 is free");
    Client::new(addr)
}

async fn start() -> Client {
    start_with(Db::open(None).unwrap()).await
}

async fn call(
    client: &Client,
    actor: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, text) = client
        .send_json(method, path, &[("x-actor", actor)], &body)
        .await
        .expect("the request goes through");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn create(client: &Client, actor: &str, balance: i64) -> i64 {
    let (status, account) = call(
        client,
        actor,
        Method::POST,
        "/accounts",
        json!({"owner": actor, "balance": balance}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    account["id"].as_i64().unwrap()
}

async fn revisions(client: &Client, id: i64) -> Vec<Value> {
    let (status, list) = call(
        client,
        "reader",
        Method::GET,
        &format!("/accounts/{id}/revisions"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    list.as_array().unwrap().clone()
}

/// The deltas of a revision as `(account, field, old, new)`.
fn deltas(revision: &Value) -> Vec<(i64, String, Value, Value)> {
    revision["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["entity_id"].as_i64().unwrap(),
                d["field"].as_str().unwrap().to_owned(),
                d["old"].clone(),
                d["new"].clone(),
            )
        })
        .collect()
}

fn delta(account: i64, field: &str, old: Value, new: Value) -> (i64, String, Value, Value) {
    (account, field.to_owned(), old, new)
}

#[tokio::test]
async fn creating_and_updating_record_field_level_deltas_under_the_actor() {
    let client = start().await;
    let id = create(&client, "alice", 100).await;
    let (status, _) = call(
        &client,
        "bob",
        Method::PATCH,
        &format!("/accounts/{id}"),
        json!({"owner": "alice b.", "balance": 100, "status": "frozen"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let history = revisions(&client, id).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["actor"], "alice");
    assert_eq!(history[0]["description"], "POST /accounts");
    assert_eq!(
        deltas(&history[0]),
        [
            delta(id, "owner", Value::Null, json!("alice")),
            delta(id, "balance", Value::Null, json!(100)),
            delta(id, "status", Value::Null, json!("open")),
        ]
    );
    assert_eq!(history[1]["actor"], "bob");
    assert_eq!(history[1]["description"], "PATCH /accounts/{id}");
    // The balance was given but did not change: no delta for it.
    assert_eq!(
        deltas(&history[1]),
        [
            delta(id, "owner", json!("alice"), json!("alice b.")),
            delta(id, "status", json!("open"), json!("frozen")),
        ]
    );
}

#[tokio::test]
async fn a_rolled_back_savepoint_discards_exactly_its_own_deltas() {
    let client = start().await;
    let (a, b) = (
        create(&client, "alice", 100).await,
        create(&client, "bob", 0).await,
    );
    let (status, receipt) = call(
        &client,
        "alice",
        Method::POST,
        "/transfers",
        json!({"from": a, "to": b, "amount": 30, "fee": {"amount": 2, "fail": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(receipt["fee_charged"], false);
    assert_eq!(
        receipt["from"]["balance"], 70,
        "the fee's write was rolled back"
    );

    let transfer = revisions(&client, a).await.pop().unwrap();
    assert_eq!(transfer["description"], "POST /transfers");
    assert_eq!(
        deltas(&transfer),
        [
            delta(a, "balance", json!(100), json!(70)),
            delta(b, "balance", json!(0), json!(30)),
        ]
    );
}

#[tokio::test]
async fn a_released_savepoint_merges_its_deltas_into_the_revision() {
    let client = start().await;
    let (a, b) = (
        create(&client, "alice", 100).await,
        create(&client, "bob", 0).await,
    );
    let (status, receipt) = call(
        &client,
        "alice",
        Method::POST,
        "/transfers",
        json!({"from": a, "to": b, "amount": 30, "fee": {"amount": 2}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(receipt["from"]["balance"], 68);
    let transfer = revisions(&client, b).await.pop().unwrap();
    assert_eq!(
        deltas(&transfer),
        [
            delta(a, "balance", json!(100), json!(70)),
            delta(b, "balance", json!(0), json!(30)),
            delta(a, "balance", json!(70), json!(68)),
        ]
    );
}

#[tokio::test]
async fn disabled_tracking_changes_the_row_and_records_nothing() {
    let client = start().await;
    let id = create(&client, "alice", 5).await;
    let (status, account) = call(
        &client,
        "ops",
        Method::PATCH,
        &format!("/accounts/{id}?track=false"),
        json!({"status": "audited"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(account["status"], "audited");
    let history = revisions(&client, id).await;
    assert_eq!(history.len(), 1, "only the creation: {history:?}");
    // Tracking is back on for the next request.
    let (status, _) = call(
        &client,
        "ops",
        Method::PATCH,
        &format!("/accounts/{id}"),
        json!({"status": "open"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let history = revisions(&client, id).await;
    assert_eq!(
        deltas(&history[1]),
        [delta(id, "status", json!("audited"), json!("open"))]
    );
}

#[tokio::test]
async fn a_failing_request_records_nothing() {
    let client = start().await;
    let (a, b) = (
        create(&client, "alice", 10).await,
        create(&client, "bob", 0).await,
    );
    let (status, error) = call(
        &client,
        "bob",
        Method::POST,
        "/transfers",
        json!({"from": a, "to": b, "amount": 11}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        error["error"],
        format!("account {a} has insufficient funds")
    );
    assert_eq!(revisions(&client, a).await.len(), 1);
    assert_eq!(revisions(&client, b).await.len(), 1);
    let (_, account) = call(
        &client,
        "bob",
        Method::GET,
        &format!("/accounts/{a}"),
        Value::Null,
    )
    .await;
    assert_eq!(account["balance"], 10, "the debit was rolled back too");
    let (status, _) = call(
        &client,
        "bob",
        Method::PATCH,
        "/accounts/999",
        json!({"status": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_records_every_field_going_to_null() {
    let client = start().await;
    let id = create(&client, "carol", 7).await;
    let (status, _) = call(
        &client,
        "carol",
        Method::DELETE,
        &format!("/accounts/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deleted = revisions(&client, id).await.pop().unwrap();
    assert_eq!(deleted["description"], "DELETE /accounts/{id}");
    assert_eq!(
        deltas(&deleted),
        [
            delta(id, "owner", json!("carol"), Value::Null),
            delta(id, "balance", json!(7), Value::Null),
            delta(id, "status", json!("open"), Value::Null),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_actors_never_get_each_others_deltas() {
    const ACTORS: usize = 8;
    const UPDATES: i64 = 10;
    let client = start().await;
    let workers: Vec<_> = (0..ACTORS)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let actor = format!("actor-{n}");
                let id = create(&client, &actor, 0).await;
                for balance in 1..=UPDATES {
                    let (status, _) = call(
                        &client,
                        &actor,
                        Method::PATCH,
                        &format!("/accounts/{id}"),
                        json!({"balance": balance}),
                    )
                    .await;
                    assert_eq!(status, StatusCode::OK);
                }
                (actor, id)
            })
        })
        .collect();
    for worker in workers {
        let (actor, id) = worker.await.unwrap();
        let history = revisions(&client, id).await;
        assert_eq!(history.len() as i64, 1 + UPDATES);
        for (n, revision) in history.iter().enumerate() {
            assert_eq!(revision["actor"], actor.as_str());
            let recorded = deltas(revision);
            assert!(
                recorded.iter().all(|(account, ..)| *account == id),
                "{recorded:?}"
            );
            if n > 0 {
                assert_eq!(recorded, [delta(id, "balance", json!(n - 1), json!(n))]);
            }
        }
    }
}

#[tokio::test]
async fn a_database_file_keeps_the_history() {
    let path = std::env::temp_dir().join(format!("revisions-test-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let id = {
        let client = start_with(Db::open(Some(&path)).unwrap()).await;
        create(&client, "dora", 1).await
    };
    let client = start_with(Db::open(Some(&path)).unwrap()).await;
    assert_eq!(revisions(&client, id).await[0]["actor"], "dora");
    drop(client);
    let _ = std::fs::remove_file(&path);
}
