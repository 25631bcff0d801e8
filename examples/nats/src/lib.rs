//! A message consumer on NATS JetStream: each message is handled in a root
//! checkpoint seeded from its headers, and acked or naked by how that
//! checkpoint ended.
//!
//! Orders are published on [`PLACED`] with a request id (`x-request-id`)
//! and a tenant (in the W3C `baggage` header). The [`billing`] consumer,
//! durable, with explicit acks, hands each to [`consume`], which runs the
//! handler in a root checkpoint read from the message's headers, several
//! messages at once. Code anywhere inside reads the request id and the
//! tenant, work it spawns with [`DEFAULT.inherit`](stackholm::Storage::inherit)
//! too, and the message it publishes carries them on. The root's exit hook
//! settles the message: acked if the handler returned `Ok`, naked (so
//! JetStream delivers it again) if it returned an error, panicked
//! ([`Outcome::Unwound`]) or was dropped unfinished ([`Outcome::Cancelled`]).
//!
//! JetStream rather than core NATS, because a core subscription loses a
//! message whose handler fails: the broker has forgotten it by then.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use nats_consumer::{bill, billing, consume, propagation, server::NatsServer, Delivery};
//!
//! let server = NatsServer::start()?;
//! let client = async_nats::connect(server.url()).await?;
//! let consumer = billing(&async_nats::jetstream::new(client.clone())).await?;
//! let propagation = propagation();
//! let (client, propagation) = (&client, &propagation);
//! let handler = |delivery: Delivery| async move {
//!     bill(client, propagation, &delivery.message).await
//! };
//! consume(&consumer, propagation, 8, handler, |settled| println!("{settled:?}")).await?;
//! # Ok(())
//! # }
//! ```

pub mod server;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer};
use async_nats::jetstream::message::{AckKind, Acker};
use async_nats::jetstream::{self, stream};
use async_nats::{Client, HeaderMap, Message};
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use stackholm::{Key, Outcome, DEFAULT};
use stackholm_propagation::{Direction, Propagation};

/// A boxed error, as handlers return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request id a message came with.
pub static REQUEST_ID: Key<String> = Key::new("request_id").inherited();
/// The tenant a message is for.
pub static TENANT: Key<String> = Key::new("tenant").inherited();
/// Why the handler failed: set in the message's root for its exit hook.
static FAILURE: Key<String> = Key::new("failure");

/// The stream the orders are kept in.
pub const STREAM: &str = "ORDERS";
/// The subject orders are published on.
pub const PLACED: &str = "orders.placed";
/// The subject bills are published on.
pub const BILLED: &str = "orders.billed";
/// The durable consumer that bills orders.
pub const CONSUMER: &str = "billing";
/// How long a naked message waits before JetStream delivers it again: a
/// handler that failed is given a moment before its next try.
pub const REDELIVER_AFTER: Duration = Duration::from_millis(100);
/// How many times a message is delivered before JetStream gives up on it.
pub const MAX_DELIVER: i64 = 5;

/// What crosses this service's boundary: the request id in a header of its
/// own, the tenant in W3C Baggage, both in and out.
#[must_use]
pub fn propagation() -> Propagation {
    Propagation::new()
        .header("x-request-id", &REQUEST_ID, Direction::Both)
        .member("tenant", &TENANT, Direction::Both)
}

/// The [`STREAM`] of orders and its durable [`CONSUMER`], with explicit
/// acks, created if they do not exist.
///
/// # Errors
///
/// If JetStream refuses either.
pub async fn billing(jetstream: &jetstream::Context) -> Result<PullConsumer, BoxError> {
    let stream = jetstream
        .get_or_create_stream(stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![PLACED.to_owned()],
            ..Default::default()
        })
        .await?;
    let consumer = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                ack_policy: AckPolicy::Explicit,
                max_deliver: MAX_DELIVER,
                ..Default::default()
            },
        )
        .await?;
    Ok(consumer)
}

/// A message as a handler is given it.
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub message: Message,
    /// How many times JetStream has delivered it, this time included (0 if
    /// its reply subject does not say).
    pub attempt: u64,
}

/// How a message's handling ended, as its root's exit hook saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The request id in the message's context.
    pub request_id: Option<String>,
    /// The tenant in the message's context.
    pub tenant: Option<String>,
    /// Which delivery of the message this was, the first being 1.
    pub attempt: u64,
    /// How the message's root checkpoint ended.
    pub outcome: Outcome,
    /// The handler's error, if it returned one.
    pub failure: Option<String>,
    /// Whether the message was acked; naked otherwise, to be delivered
    /// again.
    pub acked: bool,
}

/// Handles the messages of `consumer` with `handler`, up to `concurrency`
/// at once, each in a root checkpoint read from its headers through
/// `propagation`; acks a message whose handler returned `Ok` and naks the
/// others, telling `on_settled` either way. A handler that panics is
/// naked as one that fails, and the consumer goes on.
///
/// Runs until the consumer's messages end; to stop it, drop the future
/// (the messages being handled are naked then).
///
/// # Errors
///
/// If the consumer's messages cannot be had, or they end with an error
/// other than a missed heartbeat (which the client recovers from).
pub async fn consume<H, F>(
    consumer: &PullConsumer,
    propagation: &Propagation,
    concurrency: usize,
    handler: H,
    on_settled: impl Fn(Settled) + Send + Sync + 'static,
) -> Result<(), BoxError>
where
    H: Fn(Delivery) -> F,
    F: Future<Output = Result<(), BoxError>>,
{
    let on_settled = Arc::new(on_settled);
    let handler = &handler;
    consumer
        .messages()
        .await?
        .filter(|message| {
            let recovered =
                matches!(message, Err(err) if err.kind() == MessagesErrorKind::MissingHeartbeat);
            async move { !recovered }
        })
        .map_err(BoxError::from)
        .try_for_each_concurrent(concurrency, |message| {
            let attempt = message
                .info()
                .map_or(0, |info| u64::try_from(info.delivered).unwrap_or(0));
            let (message, acker) = message.split();
            let on_settled = Arc::clone(&on_settled);
            let headers = message.headers.as_ref();
            let handled = DEFAULT.scope(
                propagation.extract(headers.unwrap_or(&HeaderMap::new())),
                async move {
                    DEFAULT
                        .on_root_exit(move |outcome| settle(acker, attempt, outcome, &*on_settled))
                        .expect("the message's root is active");
                    if let Err(err) = handler(Delivery { message, attempt }).await {
                        DEFAULT
                            .set_root(&FAILURE, err.to_string())
                            .expect("the message's root is active");
                    }
                },
            );
            async move {
                // The panic is the handler's: the exit hook was told
                // (`Unwound`) and naked the message.
                let _ = AssertUnwindSafe(handled).catch_unwind().await;
                Ok(())
            }
        })
        .await
}

/// The exit hook of a message's root: acks or naks the message by how the
/// root ended, read while its values are still there.
fn settle(acker: Acker, attempt: u64, outcome: Outcome, on_settled: &dyn Fn(Settled)) {
    let failure = DEFAULT.get(&FAILURE);
    let acked = outcome == Outcome::Left && failure.is_none();
    let kind = if acked {
        AckKind::Ack
    } else {
        AckKind::Nak(Some(REDELIVER_AFTER))
    };
    // A hook cannot await: a task sends the ack. One that is lost, or
    // that no runtime is left to send (a consumer dropped at shutdown),
    // costs a redelivery once the ack wait is over: JetStream's
    // at-least-once, which a handler has to allow for anyway.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move { acker.ack_with(kind).await });
    }
    on_settled(Settled {
        request_id: DEFAULT.get(&REQUEST_ID),
        tenant: DEFAULT.get(&TENANT),
        attempt,
        outcome,
        failure,
        acked,
    });
}

/// What billing an order gave, published on [`BILLED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    /// The order, as its message held it.
    pub order: String,
    /// The request id the handler saw.
    pub request_id: Option<String>,
    /// The tenant the handler saw.
    pub tenant: Option<String>,
    /// The request id and the tenant that work the handler spawned saw.
    pub audited: (Option<String>, Option<String>),
}

/// The example's handler: bills the order `message` holds and publishes the
/// [`Bill`] on [`BILLED`], its headers carrying the context on.
///
/// # Errors
///
/// If the order is not text, or the bill cannot be published.
pub async fn bill(
    client: &Client,
    propagation: &Propagation,
    message: &Message,
) -> Result<(), BoxError> {
    let order = std::str::from_utf8(&message.payload)?.to_owned();
    let bill = Bill::for_order(order).await?;
    let mut headers = HeaderMap::new();
    propagation.inject(&mut headers);
    let payload = serde_json::to_vec(&bill)?;
    client
        .publish_with_headers(BILLED, headers, payload.into())
        .await?;
    Ok(())
}

impl Bill {
    /// Nested code, with no context passed to it.
    async fn for_order(order: String) -> Result<Self, BoxError> {
        let audit = tokio::spawn(DEFAULT.inherit(async {
            // Awaits between reads, so that other messages run meanwhile.
            tokio::task::yield_now().await;
            (DEFAULT.get(&REQUEST_ID), DEFAULT.get(&TENANT))
        }));
        tokio::task::yield_now().await;
        Ok(Self {
            order,
            request_id: DEFAULT.get(&REQUEST_ID),
            tenant: DEFAULT.get(&TENANT),
            audited: audit.await?,
        })
    }
}
