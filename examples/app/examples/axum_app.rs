//! The main example: an axum app where every request has its own stack.
//!
//! `cargo run --example axum_app` starts the app on an ephemeral port of
//! 127.0.0.1, sends it a few concurrent requests through a real HTTP client,
//! prints what each request saw, and exits.
//!
//! `cargo run --example axum_app -- --serve` keeps it running on
//! 127.0.0.1:3000 and prints `curl` commands to try instead.
//!
//! Its log lines (on stderr) each carry the request's id, user and step,
//! from `stackholm-tracing`.
//!
//! The app itself is in `src/axum_app.rs`.

use std::net::SocketAddr;

use http::Method;
use stackholm_examples::axum_app::{spawn_server, wait_for_no_live_requests};
use stackholm_examples::client::{Client, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Every log line of the app carries its request's id, user and step,
    // with no per-call-site work: see `log_context`.
    tracing_subscriber::fmt()
        .event_format(
            stackholm_examples::axum_app::log_context().text(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_target(false),
            ),
        )
        .with_writer(std::io::stderr)
        .init();
    if std::env::args().any(|arg| arg == "--serve") {
        return serve().await;
    }
    let (addr, _server) = spawn_server(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    println!("serving on http://{addr}\n");
    let client = Client::new(addr);

    println!("== GET /hello, as three users at once");
    let hellos = ["alice", "bob", "carol"].map(|user| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .send(
                    Method::GET,
                    "/hello",
                    &[("x-user", user), ("x-request-id", user)],
                )
                .await
        })
    });
    for hello in hellos {
        let (status, body) = hello.await??;
        print!("{status}  {body}");
    }

    println!(
        "\n== POST /orders/{{id}}: nested checkpoints, an instrumented future, a spawned task"
    );
    let (first, second) = tokio::join!(
        client.send(Method::POST, "/orders/1", &[("x-user", "alice")]),
        client.send(Method::POST, "/orders/2", &[("x-user", "bob")]),
    );
    for (status, body) in [first?, second?] {
        print!("{status}  {body}");
    }

    println!("\n== GET /events: a streaming body reads the request's context as it is polled");
    for chunk in client.chunks("/events", &[("x-user", "dave")]).await? {
        print!("chunk  {chunk}");
    }

    println!("\n== GET /panic: a handler panics inside a nested checkpoint");
    // The panic is expected: report it in one line instead of a backtrace.
    std::panic::set_hook(Box::new(|info| println!("(handler panicked: {info})")));
    let (status, _) = client
        .send(Method::GET, "/panic", &[("x-user", "eve")])
        .await?;
    println!("{status}");
    let (status, body) = client
        .send(Method::GET, "/hello", &[("x-user", "frank")])
        .await?;
    print!("then {status}  {body}");

    // Every request's root checkpoint is dropped with its response.
    let alive = wait_for_no_live_requests(std::time::Duration::from_secs(1)).await;
    println!("\nrequest contexts still alive: {alive}");
    Ok(())
}

async fn serve() -> Result<(), Error> {
    let (addr, server) = spawn_server(SocketAddr::from(([127, 0, 0, 1], 3000))).await?;
    println!("serving on http://{addr}; try:");
    println!("  curl -H 'x-user: alice' http://{addr}/hello");
    println!("  curl -X POST -H 'x-user: bob' http://{addr}/orders/7");
    println!("  curl -N -H 'x-request-id: my-id' http://{addr}/events");
    println!("  curl -i http://{addr}/panic");
    println!("stop with Ctrl-C");
    server.await??;
    Ok(())
}
