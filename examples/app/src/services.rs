//! Three services in a chain — gateway, orders, billing — passing the
//! request id, tenant and acting user along, for `examples/services.rs` and
//! the chain test.
//!
//! A client calls the gateway with a request id (`x-request-id`), a tenant
//! (`x-tenant`) and a bearer token. The gateway sets the acting user from
//! the token itself, and calls orders; orders calls billing from spawned
//! work. Between the services the request id travels in `x-request-id`,
//! the tenant and the user in the W3C `baggage` header, declared once per
//! service with a [`Propagation`]: it seeds each request's root checkpoint
//! through [`StackholmLayer`] and fills each outgoing request through
//! [`PropagateLayer`]. No handler reads or writes those headers itself.
//!
//! Each service answers with a [`Hop`]: what it saw, and the hop of the
//! service it called, so the client sees billing's view.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http::request::Parts;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use stackholm::{Key, DEFAULT};
use stackholm_tower::propagation::{Direction, Propagate, PropagateLayer, Propagation, BAGGAGE};
use stackholm_tower::{Root, StackholmLayer};
use tokio::task::JoinHandle;
use tower::{ServiceBuilder, ServiceExt};

/// The request id: given by the client, or assigned by the gateway.
pub static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
/// The tenant the client acts for.
pub static TENANT: Key<String> = Key::new("tenant").inherited();
/// The acting user, as the gateway verified it.
pub static USER: Key<String> = Key::new("user").inherited();

/// The gateway's accounts: a bearer token, then the user it stands for.
///
/// A real gateway verifies a signed token; what matters here is that the
/// user comes from the gateway, never from anything the client names.
pub const ACCOUNTS: [(&str, &str); 3] = [
    ("tok-7f3a", "alice"),
    ("tok-c41e", "bob"),
    ("tok-09d2", "carol"),
];

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// What one service saw of a request, and what the service it called saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// `gateway`, `orders` or `billing`.
    pub service: String,
    /// The request id in the service's context.
    pub request_id: Option<String>,
    /// The tenant in the service's context.
    pub tenant: Option<String>,
    /// The acting user in the service's context.
    pub user: Option<String>,
    /// The `baggage` header as the service received it.
    pub baggage: Option<String>,
    /// The hop of the service this one called.
    pub next: Option<Box<Hop>>,
}

impl Hop {
    /// This service's view, read from the request's context.
    fn here(service: &str, headers: &HeaderMap, next: Option<Hop>) -> Self {
        let baggage: Vec<&str> = headers
            .get_all(BAGGAGE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        Self {
            service: service.to_owned(),
            request_id: DEFAULT.get(&REQUEST_ID),
            tenant: DEFAULT.get(&TENANT),
            user: DEFAULT.get(&USER),
            baggage: (!baggage.is_empty()).then(|| baggage.join(",")),
            next: next.map(Box::new),
        }
    }

    /// This hop, then the hops of the services behind it, in call order:
    /// the last is billing's.
    pub fn hops(&self) -> impl Iterator<Item = &Hop> {
        std::iter::successors(Some(self), |hop| hop.next.as_deref())
    }
}

/// One line: the service, then what it saw, quoted (`-` for nothing).
impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted =
            |value: &Option<String>| value.as_ref().map_or("-".to_owned(), |v| format!("{v:?}"));
        write!(
            f,
            "{:<8} request_id={} tenant={} user={} baggage={}",
            self.service,
            quoted(&self.request_id),
            quoted(&self.tenant),
            quoted(&self.user),
            quoted(&self.baggage),
        )
    }
}

/// The running chain. Its services stop when it is dropped.
#[derive(Debug)]
pub struct Chain {
    /// Where clients send their requests.
    pub gateway: SocketAddr,
    /// The orders service, which the gateway calls.
    pub orders: SocketAddr,
    /// The billing service, which orders calls.
    pub billing: SocketAddr,
    servers: [JoinHandle<std::io::Result<()>>; 3],
}

impl Drop for Chain {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

/// Starts billing, orders and the gateway on ephemeral ports of 127.0.0.1.
///
/// Send requests to `POST /orders/{id}` of [`Chain::gateway`] with an
/// `authorization: Bearer <token>` header (one of [`ACCOUNTS`]), and
/// `x-tenant` and `x-request-id` headers; the answer is a JSON [`Hop`].
///
/// # Errors
///
/// If a port cannot be bound.
pub async fn start() -> std::io::Result<Chain> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (billing, billing_server) = crate::serve(billing(), loopback).await?;
    let (orders, orders_server) = crate::serve(orders(billing), loopback).await?;
    let (gateway, gateway_server) = crate::serve(gateway(orders), loopback).await?;
    Ok(Chain {
        gateway,
        orders,
        billing,
        servers: [gateway_server, orders_server, billing_server],
    })
}

/// What every service's log lines carry.
pub fn log_context() -> stackholm_tracing::LogContext {
    stackholm_tracing::LogContext::new()
        .display("request_id", &REQUEST_ID)
        .display("tenant", &TENANT)
        .display("user", &USER)
}

/// An HTTP client that writes the caller's context into every request.
type Downstream = Propagate<Client<HttpConnector, Full<Bytes>>>;

fn downstream(propagation: Propagation) -> Downstream {
    ServiceBuilder::new()
        .layer(PropagateLayer::new(propagation))
        .service(Client::builder(TokioExecutor::new()).build_http())
}

/// Sends an empty `POST` to `url` and reads the [`Hop`] it answers with.
async fn call(client: &Downstream, url: String) -> Result<Hop, Response> {
    let bad_gateway = |err: &dyn fmt::Display| {
        (StatusCode::BAD_GATEWAY, format!("{url}: {err}\n")).into_response()
    };
    let request = http::Request::post(&url)
        .body(Full::new(Bytes::new()))
        .map_err(|err| bad_gateway(&err))?;
    // `oneshot` calls the client, and so reads the context, when this
    // future is first polled: in the handler's scope, or in the spawned
    // task's copy of it.
    let response = client
        .clone()
        .oneshot(request)
        .await
        .map_err(|err| bad_gateway(&err))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| bad_gateway(&err))?
        .to_bytes();
    if !status.is_success() {
        return Err(bad_gateway(&format!(
            "{status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    serde_json::from_slice(&body).map_err(|err| bad_gateway(&err))
}

/// The gateway: the client's request id and tenant come in, the user is
/// its own.
fn gateway(orders: SocketAddr) -> Router {
    let propagation = Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        // Clients name the tenant in a header of the public API; inside
        // the chain it travels in baggage, and a client's `tenant` member
        // is dropped.
        .header("x-tenant", &TENANT, Direction::Inbound)
        .member("tenant", &TENANT, Direction::Outbound)
        // Sent to the services behind the gateway, never taken from a
        // client: a `user` member in the client's baggage is dropped.
        .member("user", &USER, Direction::Outbound)
        // No `.relay()`: the gateway is the edge, and a member a client
        // made up (`role=admin`, say) stops here.
        .on_reject(|rejection| tracing::warn!(target: "gateway", %rejection));
    Router::new()
        .route("/orders/{id}", post(gateway_order))
        .with_state((downstream(propagation.clone()), orders))
        .layer(middleware::from_fn(authenticate))
        .layer(StackholmLayer::new().seed_with((propagation, assign_request_id)))
}

/// Numbers requests that came without an id, after the propagation seed
/// has taken the client's.
fn assign_request_id(_parts: &Parts, root: &mut Root<'_>) {
    if root.get(&REQUEST_ID).is_none() {
        let n = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
        root.set(&REQUEST_ID, format!("gw-{n}"));
    }
}

/// Sets the acting user from the bearer token, or turns the request away.
async fn authenticate(request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(user) = ACCOUNTS
        .iter()
        .find(|(known, _)| Some(*known) == token)
        .map(|(_, user)| *user)
    else {
        tracing::warn!(target: "gateway", "no valid bearer token");
        return (StatusCode::UNAUTHORIZED, "no valid bearer token\n").into_response();
    };
    DEFAULT
        .set(&USER, user.to_owned())
        .expect("StackholmLayer opened the root checkpoint");
    next.run(request).await
}

async fn gateway_order(
    State((client, orders)): State<(Downstream, SocketAddr)>,
    Path(id): Path<u32>,
    headers: HeaderMap,
) -> Result<Json<Hop>, Response> {
    tracing::info!(target: "gateway", "order {id}: to orders");
    let next = call(&client, format!("http://{orders}/orders/{id}")).await?;
    Ok(Json(Hop::here("gateway", &headers, Some(next))))
}

/// Orders: takes the gateway's values in and passes them on to billing.
fn orders(billing: SocketAddr) -> Router {
    let propagation = Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .member("tenant", &TENANT, Direction::Both)
        .member("user", &USER, Direction::Both)
        // Inside the chain, behind the gateway: what the services around
        // it declare and it does not (none here, yet) gets through.
        .relay()
        .on_reject(|rejection| tracing::warn!(target: "orders", %rejection));
    Router::new()
        .route("/orders/{id}", post(place_order))
        .with_state((downstream(propagation.clone()), billing))
        .layer(StackholmLayer::new().seed_with(propagation))
}

async fn place_order(
    State((client, billing)): State<(Downstream, SocketAddr)>,
    Path(id): Path<u32>,
    headers: HeaderMap,
) -> Result<Json<Hop>, Response> {
    tracing::info!(target: "orders", "order {id}: to billing");
    // Spawned work starts with the request's inherited keys, and with the
    // baggage it passes on: the call from there carries them all.
    let url = format!("http://{billing}/charges/{id}");
    let charge = tokio::spawn(DEFAULT.inherit(async move { call(&client, url).await }));
    let next = charge
        .await
        .map_err(|err| (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response())??;
    Ok(Json(Hop::here("orders", &headers, Some(next))))
}

/// Billing: the end of the chain, answering with what reached it.
fn billing() -> Router {
    let propagation = Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Inbound)
        .member("tenant", &TENANT, Direction::Inbound)
        .member("user", &USER, Direction::Inbound)
        .on_reject(|rejection| tracing::warn!(target: "billing", %rejection));
    Router::new()
        .route("/charges/{id}", post(charge))
        .layer(StackholmLayer::new().seed_with(propagation))
}

async fn charge(Path(id): Path<u32>, headers: HeaderMap) -> Json<Hop> {
    tracing::info!(target: "billing", "order {id}: charged");
    Json(Hop::here("billing", &headers, None))
}
