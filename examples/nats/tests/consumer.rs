//! The consumer of `src/lib.rs` against a `nats-server` of each test's
//! own: every message handled in its own context under concurrency, the
//! bills carrying it on, none lost; a handler that fails or panics gets
//! its message again, and the exit hook sees how each delivery ended.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::{Client, HeaderMap, Subscriber};
use futures_util::StreamExt;
use nats_consumer::server::NatsServer;
use nats_consumer::{bill, billing, consume, propagation, Bill, BoxError, Delivery, Settled};
use nats_consumer::{BILLED, PLACED, REQUEST_ID, TENANT};
use stackholm::{Outcome, DEFAULT};
use tokio::task::JoinHandle;

/// Generous: a bound on a broken run, never a measure of a working one.
const WITHIN: Duration = Duration::from_secs(120);

const TENANTS: usize = 7;

/// The request id and the tenant order `n` is published with.
fn context_of(n: usize) -> (String, String) {
    // A space, to be percent-encoded in baggage and decoded again.
    (format!("m-{n}"), format!("tenant {}", n % TENANTS))
}

/// What a handler saw of the context, at its top, on each delivery: the
/// broker's count of deliveries, the request id, the tenant.
type Seen = Arc<Mutex<HashMap<String, Vec<(u64, Option<String>, Option<String>)>>>>;

/// How each delivery was settled, as the exit hooks told it.
type Settlements = Arc<Mutex<Vec<Settled>>>;

struct Broker {
    // Dropped last: stops the server.
    _server: NatsServer,
    client: Client,
    jetstream: async_nats::jetstream::Context,
    consumer: PullConsumer,
    bills: Subscriber,
}

async fn broker() -> Broker {
    let server = NatsServer::start().unwrap_or_else(|err| panic!("{err}"));
    let client = async_nats::connect(server.url())
        .await
        .expect("the server accepts a client");
    let jetstream = async_nats::jetstream::new(client.clone());
    let consumer = billing(&jetstream).await.expect("JetStream is enabled");
    let bills = client.subscribe(BILLED).await.expect("a subscription");
    Broker {
        _server: server,
        client,
        jetstream,
        consumer,
        bills,
    }
}

impl Broker {
    /// Publishes order `n`, its headers written by hand as another
    /// client's would be: a name in capitals, and a baggage member this
    /// service does not declare, which it must not pass on.
    async fn publish(&self, n: usize) {
        let (id, tenant) = context_of(n);
        let mut headers = HeaderMap::new();
        headers.insert("X-Request-Id", id.as_str());
        let tenant = tenant.replace(' ', "%20");
        headers.insert("baggage", format!("tenant={tenant},role=admin").as_str());
        self.jetstream
            .publish_with_headers(PLACED, headers, format!("order {n}").into())
            .await
            .expect("the order is sent")
            .await
            .expect("the stream stores the order");
    }

    /// Consumes in a task of its own, `concurrency` messages at once: each
    /// delivery is recorded in `seen`, then `fault` may fail or panic it,
    /// and the order is billed. Every settlement goes to the returned list.
    fn consume<F>(
        &self,
        concurrency: usize,
        seen: Seen,
        fault: fn(usize, u64) -> F,
    ) -> (JoinHandle<Result<(), BoxError>>, Settlements)
    where
        F: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let settled = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&settled);
        let (consumer, client) = (self.consumer.clone(), self.client.clone());
        let consuming = tokio::spawn(async move {
            let propagation = propagation();
            let (client, propagation, seen) = (&client, &propagation, &seen);
            let handler = |delivery: Delivery| async move {
                let order = std::str::from_utf8(&delivery.message.payload)?.to_owned();
                let n: usize = order.trim_start_matches("order ").parse()?;
                seen.lock().unwrap().entry(order).or_default().push((
                    delivery.attempt,
                    DEFAULT.get(&REQUEST_ID),
                    DEFAULT.get(&TENANT),
                ));
                fault(n, delivery.attempt).await?;
                bill(client, propagation, &delivery.message).await
            };
            let on_settled = move |settled| sink.lock().unwrap().push(settled);
            consume(&consumer, propagation, concurrency, handler, on_settled).await
        });
        (consuming, settled)
    }

    /// The next `count` bills, each with the request id and the baggage
    /// its message went out with.
    async fn bills(&mut self, count: usize) -> Vec<(Bill, String, String)> {
        let mut bills = Vec::with_capacity(count);
        while bills.len() < count {
            let message = tokio::time::timeout(WITHIN, self.bills.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{} of {count} bills arrived: none more within {WITHIN:?}",
                        bills.len()
                    )
                })
                .expect("the subscription goes on");
            let bill: Bill = serde_json::from_slice(&message.payload).expect("a bill");
            let headers = message.headers.expect("the bill has headers");
            let header = |name| headers.get(name).map(|v| v.as_str().to_owned());
            let id = header("x-request-id").expect("the request id goes on");
            let baggage = header("baggage").expect("the tenant goes on");
            bills.push((bill, id, baggage));
        }
        bills
    }
}

/// Waits until `count` deliveries are settled: the last hooks run after
/// their bills are sent.
async fn settled(settled: &Mutex<Vec<Settled>>, count: usize) {
    let wait = async {
        while settled.lock().unwrap().len() < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(WITHIN, wait).await.is_err() {
        let now = settled.lock().unwrap().len();
        panic!("{now} of {count} deliveries settled within {WITHIN:?}");
    }
}

async fn no_fault(_: usize, _: u64) -> Result<(), BoxError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_message_is_handled_in_its_own_context_and_none_is_lost() {
    const ORDERS: usize = 1000;
    let mut broker = broker().await;
    let seen = Seen::default();
    let (consuming, settlements) = broker.consume(32, Arc::clone(&seen), no_fault);
    for n in 0..ORDERS {
        broker.publish(n).await;
    }
    let bills = broker.bills(ORDERS).await;
    settled(&settlements, ORDERS).await;
    consuming.abort();
    let _ = consuming.await;

    let mut billed = HashMap::new();
    for (bill, id, baggage) in bills {
        let n: usize = bill.order["order ".len()..].parse().expect("an order");
        let (want_id, want_tenant) = context_of(n);
        let want = (Some(want_id.clone()), Some(want_tenant.clone()));
        assert_eq!(
            (bill.request_id.clone(), bill.tenant.clone()),
            want,
            "{bill:?}"
        );
        assert_eq!(bill.audited, want, "spawned work of {bill:?}");
        assert_eq!(id, want_id, "{bill:?}");
        assert_eq!(
            baggage,
            format!("tenant={}", want_tenant.replace(' ', "%20"))
        );
        assert!(billed.insert(n, bill).is_none(), "order {n} billed twice");
    }
    assert_eq!(billed.len(), ORDERS);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), ORDERS);
    for (order, deliveries) in seen.iter() {
        let (id, tenant) = context_of(order["order ".len()..].parse().unwrap());
        assert_eq!(*deliveries, [(1, Some(id), Some(tenant))], "{order}");
    }
    let settlements = settlements.lock().unwrap();
    assert_eq!(settlements.len(), ORDERS);
    let mut ids: Vec<&str> = settlements
        .iter()
        .map(|settled| {
            assert_eq!((settled.outcome, settled.acked), (Outcome::Left, true));
            settled.request_id.as_deref().expect("the hook sees the id")
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), ORDERS, "each message's hook sees its own id");
}

/// Orders 1, 4, 7, ... fail on their first delivery, 2, 5, 8, ... panic.
async fn fail_or_panic_once(n: usize, attempt: u64) -> Result<(), BoxError> {
    match (n % 3, attempt) {
        (1, 1) => Err(format!("order {n} failed").into()),
        (2, 1) => std::panic::panic_any(Planned),
        _ => Ok(()),
    }
}

/// The payload of a panic the test makes: not reported, unlike any other.
struct Planned;

fn quiet_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Planned>() {
                report(info);
            }
        }));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_whose_handler_fails_or_panics_is_delivered_again() {
    const ORDERS: usize = 60;
    // Each order that fails or panics once is delivered twice.
    const DELIVERIES: usize = ORDERS + ORDERS / 3 * 2;
    quiet_planned_panics();
    let mut broker = broker().await;
    let seen = Seen::default();
    let (consuming, settlements) = broker.consume(8, Arc::clone(&seen), fail_or_panic_once);
    for n in 0..ORDERS {
        broker.publish(n).await;
    }
    let bills = broker.bills(ORDERS).await;
    settled(&settlements, DELIVERIES).await;
    consuming.abort();
    let _ = consuming.await;

    let mut billed: Vec<&str> = bills.iter().map(|(bill, ..)| bill.order.as_str()).collect();
    billed.sort_unstable();
    billed.dedup();
    assert_eq!(billed.len(), ORDERS, "every order is billed once");

    let seen = seen.lock().unwrap();
    let mut settlements = settlements.lock().unwrap().clone();
    assert_eq!(settlements.len(), DELIVERIES);
    settlements.sort_by_key(|settled| (settled.request_id.clone(), settled.attempt));
    for n in 0..ORDERS {
        let (id, tenant) = context_of(n);
        let context = (Some(id.clone()), Some(tenant.clone()));
        let deliveries = &seen[&format!("order {n}")];
        let hooks: Vec<_> = settlements
            .iter()
            .filter(|settled| settled.request_id.as_deref() == Some(&id))
            .map(|settled| {
                assert_eq!(settled.tenant, context.1, "{settled:?}");
                (
                    settled.attempt,
                    settled.outcome,
                    settled.failure.clone(),
                    settled.acked,
                )
            })
            .collect();
        let acked = (2, Outcome::Left, None, true);
        let want = match n % 3 {
            1 => vec![
                (1, Outcome::Left, Some(format!("order {n} failed")), false),
                acked,
            ],
            2 => vec![(1, Outcome::Unwound, None, false), acked],
            _ => vec![(1, Outcome::Left, None, true)],
        };
        assert_eq!(hooks, want, "order {n}");
        let want: Vec<_> = (1..=want.len() as u64)
            .map(|attempt| (attempt, context.0.clone(), context.1.clone()))
            .collect();
        assert_eq!(*deliveries, want, "order {n}");
    }
}
