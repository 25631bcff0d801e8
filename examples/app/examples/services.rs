//! Context across services: a gateway, orders and billing, each its own
//! axum server, passing the request id, tenant and user along.
//!
//! `cargo run --example services` starts the three on ephemeral ports of
//! 127.0.0.1, sends the gateway a few requests, prints what each service
//! saw (billing's view last), and exits.
//!
//! Between the services the request id travels in `x-request-id`, the
//! tenant and the user in the W3C `baggage` header. The gateway sets the
//! user from the client's token: a `user` member in the client's baggage is
//! dropped, and so is any member the gateway does not declare (it is the
//! edge, not a relay).
//!
//! Each service's log lines (on stderr) carry the request's id, tenant and
//! user, read from its own context: the gateway's values, at every hop.
//!
//! The services are in `src/services.rs`.

use http::{Method, StatusCode};
use stackholm_examples::client::{Client, Error};
use stackholm_examples::services::{self, Hop, ACCOUNTS};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .event_format(
            services::log_context().text(tracing_subscriber::fmt::format().without_time()),
        )
        .with_writer(std::io::stderr)
        .init();
    let chain = services::start().await?;
    println!("gateway on http://{}\n", chain.gateway);
    let client = Client::new(chain.gateway);
    let bearer = |user: &str| {
        let (token, _) = ACCOUNTS.iter().find(|(_, name)| *name == user).unwrap();
        format!("Bearer {token}")
    };

    println!("== alice orders for acme, with a request id");
    let alice = bearer("alice");
    order(
        &client,
        1,
        &[
            ("authorization", &alice),
            ("x-request-id", "r-1"),
            ("x-tenant", "acme"),
        ],
    )
    .await?;

    println!("\n== bob orders for globex corp, with no request id: the gateway assigns one");
    let bob = bearer("bob");
    order(
        &client,
        2,
        &[("authorization", &bob), ("x-tenant", "globex corp")],
    )
    .await?;

    println!("\n== carol's client sends baggage naming another user and a role of its own");
    let carol = bearer("carol");
    order(
        &client,
        3,
        &[
            ("authorization", &carol),
            ("x-request-id", "r-3"),
            ("x-tenant", "initech"),
            ("baggage", "user=mallory,role=admin"),
        ],
    )
    .await?;

    println!("\n== no token");
    let (status, body) = client
        .send(Method::POST, "/orders/4", &[("x-tenant", "acme")])
        .await?;
    print!("{status}  {body}");
    Ok(())
}

/// Places order `id` through the gateway and prints every hop's view.
async fn order(client: &Client, id: u32, headers: &[(&str, &str)]) -> Result<(), Error> {
    let (status, body) = client
        .send(Method::POST, &format!("/orders/{id}"), headers)
        .await?;
    if status != StatusCode::OK {
        return Err(format!("order {id}: {status} {body}").into());
    }
    let hop: Hop = serde_json::from_str(&body)?;
    for hop in hop.hops() {
        println!("{hop}");
    }
    Ok(())
}
