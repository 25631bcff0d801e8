//! Makes `N` sequential unary calls to the back service's `Look`, from a
//! tonic client to a tonic server on 127.0.0.1, for
//! `benches/instructions.sh` to count the instructions a call takes under
//! callgrind, with and without stackholm's layers.
//!
//! ```sh
//! cargo run --release -p grpc --example calls -- unary/plain 1000
//! cargo run --release -p grpc --example calls -- unary/stackholm 1000
//! ```
//!
//! Not named `count` like the benches' example: two examples of one name in
//! a workspace would be built to the same file.
//!
//! - `unary/plain`: no stackholm anywhere; the handler reads nothing and
//!   answers what the `stackholm` one answers.
//! - `unary/metadata`: `plain`, with the client setting the same two
//!   metadata entries by hand that `PropagateLayer` writes; nobody reads
//!   them. What separates it from `plain` is their cost on the wire.
//! - `unary/stackholm`: the server behind the example's
//!   [`layer`](grpc::layer) (`StackholmLayer` taking the request id and the
//!   tenant, echoing the id), the client's channel
//!   wrapped in `PropagateLayer`, the calls made inside a checkpoint
//!   holding a request id and a tenant; the handler reads both from
//!   `DEFAULT` ([`BackService`]).
//!
//! Client and server share one current-thread runtime, so that the count
//! does not depend on how threads are scheduled; the calls go over one
//! HTTP/2 connection, set up before the first.

use std::net::SocketAddr;

use grpc::{
    call, propagation, BackClient, BackServer, BackService, Error, LookRequest, Seen, REQUEST_ID,
    TENANT,
};
use stackholm::{Checkpoint, CheckpointExt};
use stackholm_tower::propagation::PropagateLayer;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};
use tower::ServiceBuilder;

/// The request id the `stackholm` client sends.
const ID: &str = "r-1";
/// The tenant the `stackholm` client sends.
const FOR: &str = "acme";

/// What every call is answered with, in every configuration: the same
/// bytes on the wire, so that only the layers and what they carry differ.
fn expected() -> Seen {
    Seen {
        at: "back".to_owned(),
        request_id: Some(ID.to_owned()),
        tenant: Some(FOR.to_owned()),
    }
}

/// The back service of `plain` and `metadata`: reads nothing, answers
/// what [`BackService`] answers behind the layer.
#[derive(Debug)]
struct PlainBack;

#[tonic::async_trait]
impl grpc::Back for PlainBack {
    async fn look(&self, _: Request<LookRequest>) -> Result<Response<Seen>, Status> {
        Ok(Response::new(expected()))
    }
}

/// A listener on an ephemeral port of 127.0.0.1, and its address.
async fn listen() -> Result<(TcpIncoming, SocketAddr), Error> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    Ok((TcpIncoming::from(listener), addr))
}

/// A channel to the server at `addr`, connected.
async fn connect(addr: SocketAddr) -> Result<Channel, Error> {
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

/// `count` calls with no stackholm layer; with `metadata`, each carries
/// the request id and tenant set by hand.
async fn plain(count: usize, metadata: bool) -> Result<(), Error> {
    let (incoming, addr) = listen().await?;
    let server = Server::builder()
        .add_service(BackServer::new(PlainBack))
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    let mut client = BackClient::new(connect(addr).await?);
    let expected = expected();
    for _ in 0..count {
        let request = if metadata {
            call(LookRequest {}, ID, FOR)?
        } else {
            Request::new(LookRequest {})
        };
        assert_eq!(client.look(request).await?.into_inner(), expected);
    }
    Ok(())
}

/// `count` calls through `PropagateLayer` to a server behind
/// `StackholmLayer`, from inside a checkpoint holding the request id and
/// tenant.
async fn stackholm(count: usize) -> Result<(), Error> {
    let (incoming, addr) = listen().await?;
    let server = Server::builder()
        .layer(grpc::layer())
        .add_service(BackServer::new(BackService))
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    let channel = ServiceBuilder::new()
        .layer(PropagateLayer::new(propagation()))
        .service(connect(addr).await?);
    let mut client = BackClient::new(channel);
    let expected = expected();
    // One checkpoint around all the calls, as a service calling another
    // has its context already: what is counted is writing it into each
    // call and reading it out, not making it.
    let checkpoint = Checkpoint::new()
        .with_value(&REQUEST_ID, ID.to_owned())
        .with_value(&TENANT, FOR.to_owned());
    async move {
        for _ in 0..count {
            let seen = client.look(LookRequest {}).await?.into_inner();
            assert_eq!(seen, expected);
        }
        Ok(())
    }
    .in_checkpoint(checkpoint)
    .await
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(what), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: calls unary/plain|unary/metadata|unary/stackholm COUNT");
        std::process::exit(2);
    };
    let count: usize = count.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match what.as_str() {
            "unary/plain" => plain(count, false).await,
            "unary/metadata" => plain(count, true).await,
            "unary/stackholm" => stackholm(count).await,
            other => Err(format!("unknown workload `{other}`").into()),
        }
    })
}
