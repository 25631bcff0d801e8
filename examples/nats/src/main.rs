//! `cargo run -p nats-consumer` starts a `nats-server` of its own (installed
//! with Debian's package if it is missing), publishes ten orders, each with
//! a request id and a tenant in its headers, and bills them with the
//! consumer of `src/lib.rs`. Order 3's handler fails on its first delivery
//! and order 7's panics; both are naked, delivered again and billed. It
//! prints how each delivery was settled and each bill with the headers it
//! went out with, then stops the server and exits.

use std::time::Duration;

use async_nats::HeaderMap;
use futures_util::StreamExt;
use nats_consumer::server::NatsServer;
use nats_consumer::{bill, billing, consume, propagation, Bill, BoxError, Settled};
use nats_consumer::{BILLED, PLACED, REQUEST_ID, TENANT};
use stackholm::{Checkpoint, DEFAULT};

const ORDERS: usize = 10;
const TENANTS: [&str; 3] = ["acme inc", "globex", "initech"];

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // Order 7's panic is part of the demo: a line for it, not a backtrace.
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    let server = NatsServer::start()?;
    let client = async_nats::connect(server.url()).await?;
    let jetstream = async_nats::jetstream::new(client.clone());
    let consumer = billing(&jetstream).await?;
    let mut bills = client.subscribe(BILLED).await?;
    let propagation = propagation();

    let consuming = tokio::spawn({
        let (client, propagation) = (client.clone(), propagation.clone());
        async move {
            let (client, propagation) = (&client, &propagation);
            let handler = |delivery: nats_consumer::Delivery| async move {
                match (&delivery.message.payload[..], delivery.attempt) {
                    (b"order 3", 1) => Err("the ledger was busy".into()),
                    (b"order 7", 1) => panic!("order 7 ran into a bug on its first delivery"),
                    _ => bill(client, propagation, &delivery.message).await,
                }
            };
            consume(&consumer, propagation, 4, handler, print_settled).await
        }
    });

    for n in 1..=ORDERS {
        let root = Checkpoint::new()
            .with_value(&REQUEST_ID, format!("r-{n}"))
            .with_value(&TENANT, TENANTS[n % TENANTS.len()].to_owned());
        let mut headers = HeaderMap::new();
        // A producer writes its context into the message as the handler does.
        DEFAULT.sync_scope(root, || propagation.inject(&mut headers));
        jetstream
            .publish_with_headers(PLACED, headers, format!("order {n}").into())
            .await?
            .await?;
    }

    for _ in 0..ORDERS {
        let message = tokio::time::timeout(Duration::from_secs(30), bills.next())
            .await
            .map_err(|_| "no bill within 30 seconds")?
            .ok_or("the subscription to bills ended")?;
        let bill: Bill = serde_json::from_slice(&message.payload)?;
        let header = |name| {
            let headers = message.headers.as_ref();
            let value = headers.and_then(|headers| headers.get(name));
            value.map_or("-", |value| value.as_str()).to_owned()
        };
        println!(
            "billed {}: the handler saw {} for {}, its spawned work {} for {}; \
             sent with x-request-id: {}, baggage: {}",
            bill.order,
            shown(&bill.request_id),
            shown(&bill.tenant),
            shown(&bill.audited.0),
            shown(&bill.audited.1),
            header("x-request-id"),
            header("baggage"),
        );
    }
    consuming.abort();
    let _ = consuming.await;
    Ok(())
}

fn print_settled(settled: Settled) {
    let failure = settled
        .failure
        .map(|err| format!(" ({err})"))
        .unwrap_or_default();
    println!(
        "{} for {}, delivery {}: {}{failure}, {}",
        shown(&settled.request_id),
        shown(&settled.tenant),
        settled.attempt,
        settled.outcome,
        if settled.acked { "acked" } else { "naked" },
    );
}

fn shown(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}
