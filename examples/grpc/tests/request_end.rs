//! How a gRPC call ended, as a root exit hook of the front server reads it
//! with `RequestEnd::current`: one call per case, through a real tonic
//! server and client on loopback.

use std::pin::Pin;

use futures_util::{stream, Stream, StreamExt};
use grpc::{CountRequest, Front, FrontClient, FrontServer, GreetRequest, Greeting, Tick};
use stackholm::{Outcome, DEFAULT};
use stackholm_tower::RequestEnd;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

/// How the probe's calls end.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Ok,
    /// The handler returns an error: a trailers-only response.
    Fails,
    /// The stream fails after two items: the status in its trailers.
    FailsMidStream,
    /// The stream sends one item, then nothing until the client goes away.
    Hangs,
}

/// A front service whose calls end as told, each registering a root exit
/// hook that sends what it saw.
struct Probe {
    ending: Ending,
    ends: UnboundedSender<(Outcome, Option<RequestEnd>)>,
}

impl Probe {
    fn hook(&self) {
        let ends = self.ends.clone();
        DEFAULT
            .on_root_exit(move |outcome| {
                let _ = ends.send((outcome, RequestEnd::current(DEFAULT)));
            })
            .expect("inside the call's root checkpoint");
    }
}

fn tick(n: u32) -> Result<Tick, Status> {
    Ok(Tick {
        n,
        front: None,
        back: None,
    })
}

#[tonic::async_trait]
impl Front for Probe {
    async fn greet(&self, _: Request<GreetRequest>) -> Result<Response<Greeting>, Status> {
        self.hook();
        match self.ending {
            Ending::Fails => Err(Status::internal("the probe failed")),
            _ => Ok(Response::new(Greeting::default())),
        }
    }

    type CountStream = Pin<Box<dyn Stream<Item = Result<Tick, Status>> + Send>>;

    async fn count(&self, _: Request<CountRequest>) -> Result<Response<Self::CountStream>, Status> {
        self.hook();
        let ticks: Self::CountStream = match self.ending {
            Ending::Ok => Box::pin(stream::iter([tick(0), tick(1)])),
            Ending::Fails => return Err(Status::internal("the probe failed")),
            Ending::FailsMidStream => Box::pin(stream::iter([
                tick(0),
                tick(1),
                Err(Status::data_loss("the probe lost the rest")),
            ])),
            Ending::Hangs => Box::pin(stream::iter([tick(0)]).chain(stream::pending())),
        };
        Ok(Response::new(ticks))
    }
}

/// Serves a probe ending as told; returns a client of it and what its
/// calls' root exit hooks see.
async fn probe(
    ending: Ending,
) -> (
    FrontClient<Channel>,
    UnboundedReceiver<(Outcome, Option<RequestEnd>)>,
) {
    let (ends, seen) = unbounded_channel();
    let addr = grpc::serve(FrontServer::new(Probe { ending, ends }))
        .await
        .unwrap();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (FrontClient::new(channel), seen)
}

/// What the root exit hook of the one call made saw.
async fn ended(
    seen: &mut UnboundedReceiver<(Outcome, Option<RequestEnd>)>,
) -> (Outcome, RequestEnd) {
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), seen.recv()).await;
    let (outcome, end) = seen
        .expect("the call's root exit hook ran in time")
        .expect("the hook's sender is alive");
    (outcome, end.expect("the hook ran inside the call's end"))
}

#[tokio::test]
async fn a_unary_call_answered_ok_succeeded_with_grpc_status_0() {
    let (mut client, mut seen) = probe(Ending::Ok).await;
    client.greet(GreetRequest::default()).await.unwrap();
    let (outcome, end) = ended(&mut seen).await;
    assert_eq!(outcome, Outcome::Left);
    assert_eq!(end.status(), Some(http::StatusCode::OK));
    assert_eq!(end.grpc_status(), Some(Code::Ok as i32));
    assert!(end.body_complete());
    assert!(end.succeeded());
}

#[tokio::test]
async fn a_unary_call_failing_with_internal_has_not_succeeded() {
    let (mut client, mut seen) = probe(Ending::Fails).await;
    let status = client.greet(GreetRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    let (outcome, end) = ended(&mut seen).await;
    assert_eq!(outcome, Outcome::Left);
    // Answered 200 OK, trailers-only: the gRPC status is in the head.
    assert_eq!(end.status(), Some(http::StatusCode::OK));
    assert_eq!(end.grpc_status(), Some(Code::Internal as i32));
    assert!(end.body_complete());
    assert!(!end.succeeded());
}

#[tokio::test]
async fn a_stream_failing_after_items_has_not_succeeded() {
    let (mut client, mut seen) = probe(Ending::FailsMidStream).await;
    let mut ticks = client
        .count(CountRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticks.message().await.unwrap().map(|tick| tick.n), Some(0));
    assert_eq!(ticks.message().await.unwrap().map(|tick| tick.n), Some(1));
    assert_eq!(ticks.message().await.unwrap_err().code(), Code::DataLoss);
    let (outcome, end) = ended(&mut seen).await;
    assert_eq!(outcome, Outcome::Left);
    // The gRPC status is in the trailers, after the items.
    assert_eq!(end.status(), Some(http::StatusCode::OK));
    assert_eq!(end.grpc_status(), Some(Code::DataLoss as i32));
    assert!(end.body_complete());
    assert!(!end.succeeded());
}

#[tokio::test]
async fn a_stream_the_client_cancels_midway_is_cancelled() {
    let (mut client, mut seen) = probe(Ending::Hangs).await;
    let mut ticks = client
        .count(CountRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticks.message().await.unwrap().map(|tick| tick.n), Some(0));
    drop(ticks);
    let (outcome, end) = ended(&mut seen).await;
    assert_eq!(outcome, Outcome::Cancelled);
    assert_eq!(end.status(), Some(http::StatusCode::OK));
    assert_eq!(end.grpc_status(), None);
    assert!(!end.body_complete());
    assert!(!end.succeeded());
}
