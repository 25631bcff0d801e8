//! Two tonic services on loopback, front and back, passing a call's
//! request id and tenant along, for `src/main.rs` and the tests.
//!
//! A client calls the front service with a request id in its
//! `x-request-id` metadata and a tenant in its W3C `baggage`. Each server
//! is built with `Server::builder().layer(layer())`: every call gets its
//! own root checkpoint, seeded from the declared metadata, for its handler
//! and for every item of a stream it answers with, and its request id,
//! made where the client sent none, echoed in the response's metadata. The front service calls the back one through a tonic [`Channel`]
//! wrapped in [`PropagateLayer`], which writes the caller's context into
//! each outgoing call's metadata. No handler reads or writes metadata
//! itself.
//!
//! Each answer carries what the services saw ([`Seen`]): the front handler,
//! the work it spawned, each streamed item, and the back service.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;

use futures_util::{stream, Stream};
use stackholm::{Key, DEFAULT};
use stackholm_tower::propagation::{Direction, Propagate, PropagateLayer, Propagation};
use stackholm_tower::{RequestIds, StackholmLayer};
use tonic::body::Body;
use tonic::metadata::errors::InvalidMetadataValue;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};
use tower::ServiceBuilder;

pub use proto::back_client::BackClient;
pub use proto::back_server::{Back, BackServer};
pub use proto::front_client::FrontClient;
pub use proto::front_server::{Front, FrontServer};
pub use proto::{CountRequest, GreetRequest, Greeting, LookRequest, Seen, Tick};

/// The messages and services of `proto/chain.proto`, as tonic's build crate
/// generates them.
#[allow(missing_docs, reason = "generated; the proto documents its services")]
pub mod proto {
    tonic::include_proto!("chain");
}

/// The call's request id, from the client's `x-request-id`.
pub static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
/// The tenant the call is made for, from the client's `baggage`.
pub static TENANT: Key<String> = Key::new("tenant").inherited();

/// The error of the example's set-up and calls.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What crosses into and out of each service: the tenant as a W3C Baggage
/// member, and the request id, which [`layer`] reads, in its own metadata
/// entry on the way out.
pub fn propagation() -> Propagation {
    Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Outbound)
        .member("tenant", &TENANT, Direction::Both)
}

/// Each server's layer: the call's request id from its `x-request-id`
/// metadata, made where it has none and echoed on the response, and the
/// tenant from its baggage.
pub fn layer() -> StackholmLayer<Propagation, RequestIds> {
    StackholmLayer::new()
        .seed_with(propagation())
        .request_id("x-request-id", &REQUEST_ID)
}

/// A call to the front service as any gRPC client makes it, with the
/// request id and tenant in its metadata. `tenant` goes into `baggage` as
/// it is: percent-encode it where W3C Baggage asks (`acme%20inc`).
///
/// # Errors
///
/// If either is not a valid metadata value.
pub fn call<T>(
    message: T,
    request_id: &str,
    tenant: &str,
) -> Result<Request<T>, InvalidMetadataValue> {
    let mut request = Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("x-request-id", request_id.parse()?);
    metadata.insert("baggage", format!("tenant={tenant}").parse()?);
    Ok(request)
}

impl Seen {
    /// The current context, read at `at`.
    fn here(at: &str) -> Self {
        Self {
            at: at.to_owned(),
            request_id: DEFAULT.get(&REQUEST_ID),
            tenant: DEFAULT.get(&TENANT),
        }
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_none = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        write!(
            f,
            "{:<8} request_id={:<6} tenant={}",
            self.at,
            or_none(&self.request_id),
            or_none(&self.tenant)
        )
    }
}

/// The back service: tells what it saw of each call.
#[derive(Debug, Default)]
pub struct BackService;

#[tonic::async_trait]
impl Back for BackService {
    async fn look(&self, _: Request<LookRequest>) -> Result<Response<Seen>, Status> {
        Ok(Response::new(Seen::here("back")))
    }
}

/// A client of the back service that writes the caller's context into
/// each call's metadata.
pub type Backend = BackClient<Propagate<Channel>>;

/// The front service: answers with what it saw, and what the back service
/// saw when called from inside the call.
#[derive(Debug, Clone)]
pub struct FrontService {
    back: Backend,
}

impl FrontService {
    /// Connects to the back service at `back`.
    ///
    /// # Errors
    ///
    /// If it cannot connect.
    pub async fn connect(back: SocketAddr) -> Result<Self, Error> {
        let channel = Channel::from_shared(format!("http://{back}"))?
            .connect()
            .await?;
        let channel = ServiceBuilder::new()
            .layer(PropagateLayer::new(propagation()))
            .service(channel);
        Ok(Self {
            back: BackClient::new(channel),
        })
    }
}

#[tonic::async_trait]
impl Front for FrontService {
    async fn greet(&self, request: Request<GreetRequest>) -> Result<Response<Greeting>, Status> {
        let front = Seen::here("front");
        let mut back = self.back.clone();
        // Spawned work sees the call's inherited keys, and calls the back
        // service with them.
        let spawned = tokio::spawn(DEFAULT.inherit(async move {
            let spawned = Seen::here("spawned");
            let back = back.look(LookRequest {}).await?;
            Ok::<_, Status>((spawned, back.into_inner()))
        }));
        let (spawned, back) = spawned
            .await
            .map_err(|err| Status::internal(err.to_string()))??;
        Ok(Response::new(Greeting {
            message: format!("hello, {}", request.into_inner().name),
            front: Some(front),
            spawned: Some(spawned),
            back: Some(back),
        }))
    }

    type CountStream = Pin<Box<dyn Stream<Item = Result<Tick, Status>> + Send>>;

    async fn count(
        &self,
        request: Request<CountRequest>,
    ) -> Result<Response<Self::CountStream>, Status> {
        let count = request.into_inner().count;
        // Each tick is made as the server polls the response body: inside
        // the call's scope, long after this handler has returned.
        let ticks = stream::unfold((0, self.back.clone()), move |(n, mut back)| async move {
            if n == count {
                return None;
            }
            let front = Seen::here("stream");
            let tick = back.look(LookRequest {}).await.map(|back| Tick {
                n,
                front: Some(front),
                back: Some(back.into_inner()),
            });
            Some((tick, (n + 1, back)))
        });
        Ok(Response::new(Box::pin(ticks)))
    }
}

/// Serves `service` on an ephemeral port of 127.0.0.1 in a background task,
/// behind [`layer`]; returns the address.
///
/// # Errors
///
/// If no port can be bound.
pub async fn serve<S>(service: S) -> std::io::Result<SocketAddr>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let server = Server::builder()
        .layer(layer())
        .add_service(service)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(async move {
        if let Err(err) = server.await {
            eprintln!("the server on {addr} stopped: {err}");
        }
    });
    Ok(addr)
}

/// Starts the back service, then the front service calling it; returns the
/// front service's address.
///
/// # Errors
///
/// If a port cannot be bound, or the front service cannot reach the back.
pub async fn start() -> Result<SocketAddr, Error> {
    let back = serve(BackServer::new(BackService)).await?;
    let front = FrontService::connect(back).await?;
    Ok(serve(FrontServer::new(front)).await?)
}
