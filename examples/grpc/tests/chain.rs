//! The front and back services on loopback under concurrent calls: each
//! call's request id and tenant, sent in its metadata, are its own in the
//! front handler, in the work it spawned, on every streamed item, and at
//! the back service.

use futures_util::{stream, StreamExt};
use grpc::{call, CountRequest, FrontClient, GreetRequest, Seen};
use tonic::transport::Channel;

async fn client() -> FrontClient<Channel> {
    let front = grpc::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{front}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    FrontClient::new(channel)
}

/// Asserts that `seen` was read at `at` and saw the call's own values.
fn assert_seen(seen: Option<Seen>, at: &str, request_id: &str, tenant: &str) {
    let seen = seen.unwrap_or_else(|| panic!("{request_id}: nothing from {at}"));
    assert_eq!(seen.at, at);
    assert_eq!(seen.request_id.as_deref(), Some(request_id), "{seen}");
    assert_eq!(seen.tenant.as_deref(), Some(tenant), "{seen}");
}

fn tenant(i: usize) -> String {
    format!("tenant-{}", i % 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_unary_calls_at_64_at_once_each_keep_their_id_everywhere() {
    let client = client().await;
    let checked = stream::iter(0..1000)
        .map(|i| {
            let mut client = client.clone();
            async move {
                let (id, tenant) = (format!("u-{i}"), tenant(i));
                let name = format!("caller {i}");
                let request = call(GreetRequest { name: name.clone() }, &id, &tenant).unwrap();
                let greeting = client.greet(request).await.unwrap().into_inner();
                assert_eq!(greeting.message, format!("hello, {name}"));
                assert_seen(greeting.front, "front", &id, &tenant);
                assert_seen(greeting.spawned, "spawned", &id, &tenant);
                assert_seen(greeting.back, "back", &id, &tenant);
            }
        })
        .buffer_unordered(64)
        .count()
        .await;
    assert_eq!(checked, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_streams_keep_their_id_on_every_item() {
    const TICKS: u32 = 5;
    let client = client().await;
    let checked = stream::iter(0..200)
        .map(|i| {
            let mut client = client.clone();
            async move {
                let (id, tenant) = (format!("s-{i}"), tenant(i));
                let request = call(CountRequest { count: TICKS }, &id, &tenant).unwrap();
                let mut ticks = client.count(request).await.unwrap().into_inner();
                let mut n = 0;
                while let Some(tick) = ticks.message().await.unwrap() {
                    assert_eq!(tick.n, n);
                    assert_seen(tick.front, "stream", &id, &tenant);
                    assert_seen(tick.back, "back", &id, &tenant);
                    n += 1;
                }
                assert_eq!(n, TICKS);
            }
        })
        .buffer_unordered(64)
        .count()
        .await;
    assert_eq!(checked, 200);
}
