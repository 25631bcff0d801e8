//! `cargo run -p revisions` starts the revisions app on an ephemeral port
//! of 127.0.0.1 over an in-memory SQLite database, runs a short scripted
//! session against it through a real HTTP client (creates, updates,
//! transfers with a fee that is charged and one that is rejected, an
//! untracked change, a failing transfer), prints each account's revision
//! history as JSON, and exits.
//!
//! Options:
//!
//! - `--db PATH` keeps the database in a file instead of in memory;
//! - `--serve` keeps serving on 127.0.0.1:3001 and prints `curl` commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use revisions::{spawn_server, Db};
use stackholm_examples::client::{Client, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let db_path = args
        .iter()
        .position(|arg| arg == "--db")
        .map(|i| PathBuf::from(args.get(i + 1).expect("--db takes a path")));
    let db = Db::open(db_path.as_deref())?;
    if args.iter().any(|arg| arg == "--serve") {
        let (addr, server) = spawn_server(db, SocketAddr::from(([127, 0, 0, 1], 3001))).await?;
        println!("serving on http://{addr}; try:");
        println!(
            r#"  curl -H 'x-actor: alice' -H 'content-type: application/json' -d '{{"owner":"alice","balance":100}}' http://{addr}/accounts"#
        );
        println!(
            r#"  curl -X PATCH -H 'x-actor: bob' -H 'content-type: application/json' -d '{{"status":"frozen"}}' http://{addr}/accounts/1"#
        );
        println!("  curl http://{addr}/accounts/1/revisions");
        server.await??;
        return Ok(());
    }

    let (addr, _server) = spawn_server(db, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let client = Client::new(addr);
    use http::Method;
    let steps: [(&str, Method, &str, &str); 8] = [
        (
            "alice",
            Method::POST,
            "/accounts",
            r#"{"owner":"alice","balance":1000}"#,
        ),
        (
            "bob",
            Method::POST,
            "/accounts",
            r#"{"owner":"bob","balance":50}"#,
        ),
        (
            "alice",
            Method::PATCH,
            "/accounts/1",
            r#"{"owner":"alice smith","status":"verified"}"#,
        ),
        (
            "alice",
            Method::POST,
            "/transfers",
            r#"{"from":1,"to":2,"amount":300,"fee":{"amount":5}}"#,
        ),
        (
            "alice",
            Method::POST,
            "/transfers",
            r#"{"from":1,"to":2,"amount":100,"fee":{"amount":5,"fail":true}}"#,
        ),
        (
            "ops",
            Method::PATCH,
            "/accounts/2?track=false",
            r#"{"status":"audited"}"#,
        ),
        (
            "bob",
            Method::POST,
            "/transfers",
            r#"{"from":2,"to":1,"amount":9999}"#,
        ),
        ("bob", Method::DELETE, "/accounts/2", ""),
    ];
    for (actor, method, path, body) in steps {
        let (status, response) = client
            .send_json(method.clone(), path, &[("x-actor", actor)], body)
            .await?;
        println!("{actor:>5} {method} {path} {body}\n      -> {status} {response}");
    }
    for account in [1, 2] {
        let (_, history) = client
            .send(Method::GET, &format!("/accounts/{account}/revisions"), &[])
            .await?;
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&history)?)?;
        println!("\nrevisions of account {account}:\n{pretty}");
    }
    Ok(())
}
