//! The apps whose requests carry a context: a request id and a user, built
//! from the request's headers by a middleware and read by the handler, each
//! way of carrying it written as a user would write it by hand.
//!
//! Every handler answers "hello" only if it read the context of the
//! requests the benchmarks send ([`CARRIED`]), and says what it read
//! otherwise, so that no app is cheaper for carrying nothing; a test sends
//! another context to see that each carries what the headers say.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::extract::{Extension, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http_body::{Body, Frame, SizeHint};
use opentelemetry::context::FutureExt as _;
use opentelemetry::context::WithContext;
use opentelemetry::Context as OtelContext;
use pin_project_lite::pin_project;
use stackholm::{Key, Outcome, DEFAULT};
use stackholm_tower::{RequestEnd, StackholmLayer};
use tokio::task::futures::TaskLocalFuture;
use tower::layer::layer_fn;
use tower::Service;

/// The header the request id comes in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The header the user comes in.
pub const USER_HEADER: &str = "x-user";

/// A header's value, empty where the request has none: what every
/// middleware here puts in the context.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

type Answer = Result<&'static str, (StatusCode, String)>;

/// The request id and the user of the requests the benchmarks send.
pub const CARRIED: (&str, &str) = ("r-1", "alice");

/// The handlers' answer: "hello" if the context they read is [`CARRIED`],
/// a 500 saying what they read otherwise. Compared with constants rather
/// than with the request's headers read again, so that the handler adds
/// no header lookups of its own to what each app is measured for.
fn answer(request_id: Option<&str>, user: Option<&str>) -> Answer {
    match (request_id, user) {
        (Some(request_id), Some(user)) if (request_id, user) == CARRIED => Ok("hello"),
        read => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the handler read {read:?}, not {CARRIED:?}"),
        )),
    }
}

/// The apps whose requests carry a context, by name: a request id and a
/// user from the headers [`REQUEST_ID_HEADER`] and [`USER_HEADER`], put by
/// a middleware where the handler reads them: in a `tokio::task_local!`
/// for the call, the response future and the body (`task-local`) or
/// without the body (`task-local-no-body`), in an `opentelemetry::Context`
/// (`opentelemetry`), in the request's extensions (`extensions`), in the
/// root of `StackholmLayer` (`stackholm-seeded`, and `stackholm-end-hook`
/// with an `on_end` hook that takes what it is told). Each handler answers
/// "hello" only if it read what the request's headers carry, a 500
/// otherwise.
pub fn context_apps() -> [(&'static str, Router); 6] {
    let stackholm_seeded = StackholmLayer::new().seed(|parts, root| {
        root.set(
            &REQUEST_ID,
            header(&parts.headers, REQUEST_ID_HEADER).to_owned(),
        );
        root.set(&USER, header(&parts.headers, USER_HEADER).to_owned());
    });
    let stackholm_end_hook =
        stackholm_seeded
            .clone()
            .on_end(|outcome: Outcome, end: RequestEnd| {
                std::hint::black_box((outcome, end));
            });
    [
        (
            "task-local",
            route(task_local_hello).layer(layer_fn(|inner| TaskLocal { inner })),
        ),
        (
            "task-local-no-body",
            route(task_local_hello).layer(layer_fn(|inner| TaskLocalNoBody { inner })),
        ),
        (
            "opentelemetry",
            route(otel_hello).layer(layer_fn(|inner| Otel { inner })),
        ),
        (
            "extensions",
            route(extensions_hello).layer(layer_fn(|inner| Extensions { inner })),
        ),
        (
            "stackholm-seeded",
            route(stackholm_hello).layer(stackholm_seeded),
        ),
        (
            "stackholm-end-hook",
            route(stackholm_hello).layer(stackholm_end_hook),
        ),
    ]
}

fn route<H: axum::handler::Handler<T, ()>, T: 'static>(handler: H) -> Router {
    Router::new().route("/", get(handler))
}

// --------------------------------------------------------------- task-local

/// The context the task-local layers carry, shared by the call, the
/// response future and the body.
#[derive(Debug)]
struct Ctx {
    request_id: String,
    user: String,
}

impl Ctx {
    fn new(headers: &HeaderMap) -> Arc<Self> {
        Arc::new(Self {
            request_id: header(headers, REQUEST_ID_HEADER).to_owned(),
            user: header(headers, USER_HEADER).to_owned(),
        })
    }
}

tokio::task_local! {
    static CTX: Arc<Ctx>;
}

async fn task_local_hello() -> Answer {
    let read = CTX.try_with(|ctx| answer(Some(&ctx.request_id), Some(&ctx.user)));
    read.unwrap_or_else(|_| answer(None, None))
}

/// The context in `CTX` for the inner service's `call`, every poll of its
/// response future and every poll of the response body, as
/// `StackholmLayer` gives its own.
#[derive(Debug, Clone)]
struct TaskLocal<S> {
    inner: S,
}

impl<S, B> Service<Request> for TaskLocal<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = Response<TaskLocalBody<B>>;
    type Error = S::Error;
    type Future = TaskLocalResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let ctx = Ctx::new(request.headers());
        let inner = CTX.sync_scope(Arc::clone(&ctx), || self.inner.call(request));
        TaskLocalResponse {
            inner: CTX.scope(ctx, inner),
        }
    }
}

pin_project! {
    /// The inner response future in `CTX`'s scope, whose body goes on in it.
    struct TaskLocalResponse<F> {
        #[pin]
        inner: TaskLocalFuture<Arc<Ctx>, F>,
    }
}

impl<F, B, E> Future for TaskLocalResponse<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TaskLocalBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.project().inner;
        let result = ready!(inner.as_mut().poll(cx));
        // Taken back from the finished scope rather than cloned: the body
        // is the context's last holder.
        let ctx = inner
            .take_value()
            .expect("the scope keeps the context until it is taken");
        Poll::Ready(result.map(|response| response.map(|body| TaskLocalBody { body, ctx })))
    }
}

pin_project! {
    /// A response body polled in `CTX`'s scope, so that a streaming body
    /// reads the context as the handler did.
    struct TaskLocalBody<B> {
        #[pin]
        body: B,
        ctx: Arc<Ctx>,
    }
}

impl<B: Body> Body for TaskLocalBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        CTX.sync_scope(Arc::clone(this.ctx), || this.body.poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// [`TaskLocal`] without the body: enough for handlers that answer in one
/// piece.
#[derive(Debug, Clone)]
struct TaskLocalNoBody<S> {
    inner: S,
}

impl<S: Service<Request>> Service<Request> for TaskLocalNoBody<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Arc<Ctx>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let ctx = Ctx::new(request.headers());
        let inner = CTX.sync_scope(Arc::clone(&ctx), || self.inner.call(request));
        CTX.scope(ctx, inner)
    }
}

// ------------------------------------------------------------ OpenTelemetry

/// The request id, as a value of an `opentelemetry::Context` or of the
/// request's extensions.
#[derive(Debug, Clone)]
struct RequestId(String);

/// The user, as a value of an `opentelemetry::Context` or of the request's
/// extensions.
#[derive(Debug, Clone)]
struct User(String);

async fn otel_hello() -> Answer {
    let cx = OtelContext::current();
    let request_id = cx.get::<RequestId>().map(|id| id.0.as_str());
    let user = cx.get::<User>().map(|user| user.0.as_str());
    answer(request_id, user)
}

/// The context attached while the inner response future is polled, as
/// OpenTelemetry's instrumentation does.
#[derive(Debug, Clone)]
struct Otel<S> {
    inner: S,
}

impl<S: Service<Request>> Service<Request> for Otel<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = WithContext<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let headers = request.headers();
        let cx = OtelContext::current()
            .with_value(RequestId(header(headers, REQUEST_ID_HEADER).to_owned()))
            .with_value(User(header(headers, USER_HEADER).to_owned()));
        self.inner.call(request).with_context(cx)
    }
}

// --------------------------------------------------------------- extensions

async fn extensions_hello(
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(User(user)): Extension<User>,
) -> Answer {
    answer(Some(&request_id), Some(&user))
}

/// The context put in the request's extensions, for the handler to
/// extract; a tower service rather than `axum::middleware::from_fn`, which
/// boxes the inner future.
#[derive(Debug, Clone)]
struct Extensions<S> {
    inner: S,
}

impl<S: Service<Request>> Service<Request> for Extensions<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let request_id = RequestId(header(request.headers(), REQUEST_ID_HEADER).to_owned());
        let user = User(header(request.headers(), USER_HEADER).to_owned());
        request.extensions_mut().insert(request_id);
        request.extensions_mut().insert(user);
        self.inner.call(request)
    }
}

// ---------------------------------------------------------------- stackholm

static REQUEST_ID: Key<String> = Key::new("request_id");
static USER: Key<String> = Key::new("user");

async fn stackholm_hello() -> Answer {
    DEFAULT.with(&REQUEST_ID, |request_id| {
        DEFAULT.with(&USER, |user| {
            answer(request_id.map(String::as_str), user.map(String::as_str))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// Served without its middleware, or under a `StackholmLayer` that
    /// seeds nothing, every handler has no context to read and says so:
    /// what "hello" from the apps proves is that the context was carried.
    #[test]
    fn handlers_fail_without_their_context() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let apps = [
            ("task-local", route(task_local_hello)),
            ("opentelemetry", route(otel_hello)),
            ("extensions", route(extensions_hello)),
            ("stackholm", route(stackholm_hello)),
            (
                "stackholm, empty root",
                route(stackholm_hello).layer(StackholmLayer::new()),
            ),
        ];
        for (name, app) in apps {
            let request = crate::request(CARRIED.0, CARRIED.1);
            let response = runtime.block_on(app.oneshot(request)).expect("infallible");
            assert_eq!(
                response.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{name}"
            );
        }
    }
}
