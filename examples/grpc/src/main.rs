//! `cargo run -p grpc` starts two tonic services, front and back, on
//! ephemeral ports of 127.0.0.1, makes a few calls to the front one as any
//! gRPC client would (a request id in `x-request-id`, a tenant in
//! `baggage`), prints what each place saw of each call, and exits.
//!
//! The front service answers a unary call from its handler and from work
//! the handler spawned, which calls the back service; and a
//! server-streaming call whose every item is made as the stream is read,
//! each calling the back service. The services are in `src/lib.rs`.

use grpc::{call, CountRequest, Error, FrontClient, GreetRequest};
use tonic::transport::Channel;
use tonic::Request;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let front = grpc::start().await?;
    println!("front service on http://{front}\n");
    let channel = Channel::from_shared(format!("http://{front}"))?
        .connect()
        .await?;
    let mut client = FrontClient::new(channel);

    println!("== Greet, request r-1 for acme");
    let greeting = client
        .greet(call(
            GreetRequest {
                name: "ada".to_owned(),
            },
            "r-1",
            "acme",
        )?)
        .await?
        .into_inner();
    println!("{}", greeting.message);
    for seen in [greeting.front, greeting.spawned, greeting.back]
        .into_iter()
        .flatten()
    {
        println!("  {seen}");
    }

    println!("\n== Count to 3, request r-2 for initech corp (percent-encoded in baggage)");
    let mut ticks = client
        .count(call(CountRequest { count: 3 }, "r-2", "initech%20corp")?)
        .await?
        .into_inner();
    while let Some(tick) = ticks.message().await? {
        for seen in [tick.front, tick.back].into_iter().flatten() {
            println!("  tick {}: {seen}", tick.n);
        }
    }

    println!("\n== Greet with no metadata: nothing of the calls before");
    let greeting = client
        .greet(Request::new(GreetRequest {
            name: "anonymous".to_owned(),
        }))
        .await?
        .into_inner();
    for seen in [greeting.front, greeting.back].into_iter().flatten() {
        println!("  {seen}");
    }
    Ok(())
}
