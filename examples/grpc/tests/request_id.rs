//! Request ids over gRPC, through a real tonic server and client on
//! loopback: the id in the call's `x-request-id` metadata, or a fresh one,
//! the same in the front handler, at the back service and in the
//! response's metadata, also of a call that fails.

use std::collections::HashSet;

use grpc::{call, Front, FrontClient, FrontServer, GreetRequest, Greeting, REQUEST_ID};
use stackholm::DEFAULT;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

async fn client() -> FrontClient<Channel> {
    let front = grpc::start().await.unwrap();
    connect(front).await
}

async fn connect(addr: std::net::SocketAddr) -> FrontClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    FrontClient::new(channel)
}

fn echoed(metadata: &tonic::metadata::MetadataMap) -> String {
    let id = metadata.get("x-request-id").expect("the id is echoed");
    id.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_callers_id_is_read_passed_on_and_echoed() {
    let mut client = client().await;
    let request = call(GreetRequest::default(), "g-1", "acme").unwrap();
    let response = client.greet(request).await.unwrap();
    assert_eq!(echoed(response.metadata()), "g-1");
    let greeting = response.into_inner();
    assert_eq!(greeting.front.unwrap().request_id.as_deref(), Some("g-1"));
    assert_eq!(greeting.back.unwrap().request_id.as_deref(), Some("g-1"));
}

#[tokio::test]
async fn a_call_without_an_id_gets_a_fresh_one_everywhere() {
    let mut client = client().await;
    let mut ids = HashSet::new();
    for _ in 0..20 {
        let response = client.greet(GreetRequest::default()).await.unwrap();
        let id = echoed(response.metadata());
        let greeting = response.into_inner();
        assert_eq!(greeting.front.unwrap().request_id.as_ref(), Some(&id));
        assert_eq!(greeting.spawned.unwrap().request_id.as_ref(), Some(&id));
        // Passed on to the back service, which takes it as it came.
        assert_eq!(greeting.back.unwrap().request_id.as_ref(), Some(&id));
        assert!(ids.insert(id));
    }
}

/// Fails every call, saying the id it saw.
struct Failing;

#[tonic::async_trait]
impl Front for Failing {
    async fn greet(&self, _: Request<GreetRequest>) -> Result<Response<Greeting>, Status> {
        Err(Status::internal(
            DEFAULT.get(&REQUEST_ID).unwrap_or_default(),
        ))
    }

    type CountStream = futures_util::stream::Empty<Result<grpc::Tick, Status>>;

    async fn count(
        &self,
        _: Request<grpc::CountRequest>,
    ) -> Result<Response<Self::CountStream>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

#[tokio::test]
async fn a_failed_call_echoes_its_id_too() {
    let addr = grpc::serve(FrontServer::new(Failing)).await.unwrap();
    let mut client = connect(addr).await;
    let status = client.greet(GreetRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    let id = echoed(status.metadata());
    assert_eq!(status.message(), id);
}
