//! The workloads of the benchmarks, and the alternatives users would pick
//! instead of stackholm, each given its best shot.
//!
//! Every implementation answers the same [`Context`] trait, so each workload
//! is written once and runs unchanged on all of them; the tests at the
//! bottom check that they all compute the same results, so that no
//! implementation is fast because it is wrong.

mod carry;
pub mod floor;
pub mod logging;

pub use carry::{context_apps, CARRIED, REQUEST_ID_HEADER, USER_HEADER};
pub use floor::{FloorOwned, FloorThread};

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use opentelemetry::Context as OtelContext;
use rustc_hash::FxHashMap;
use stackholm::{Key, Stack, DEFAULT};

/// How many distinct keys the workloads use.
pub const KEYS: usize = 64;

macro_rules! keys {
    ($($n:literal)*) => {
        /// The stackholm keys, one per workload key.
        pub static STACKHOLM_KEYS: [Key<u64>; KEYS] = [$(Key::new(concat!("k", $n))),*];

        /// OpenTelemetry keys values by type: one type per workload key.
        #[derive(Debug, Clone, Copy)]
        pub struct OtelKey<const N: usize>(pub u64);

        fn otel_with(cx: &OtelContext, key: usize, value: u64) -> OtelContext {
            match key {
                $($n => cx.with_value(OtelKey::<$n>(value)),)*
                _ => unreachable!("keys are below {KEYS}"),
            }
        }

        fn otel_get(cx: &OtelContext, key: usize) -> Option<u64> {
            match key {
                $($n => cx.get::<OtelKey<$n>>().map(|k| k.0),)*
                _ => unreachable!("keys are below {KEYS}"),
            }
        }
    };
}

keys!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
      32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);

/// What every implementation offers: nested scopes, and values set in the
/// current scope, read from the nearest scope that set them.
pub trait Context {
    /// Runs `f` inside a new nested scope.
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R;
    /// Enters a scope with nothing in it and leaves it.
    #[inline]
    fn enter_empty(&mut self) {
        self.scope(|_| ());
    }
    /// Sets `key` in the current scope.
    fn set(&mut self, key: usize, value: u64);
    /// The value of `key` from the nearest scope that set it.
    fn get(&mut self, key: usize) -> Option<u64>;
}

/// Removing the nearest setting: not every alternative can.
pub trait Remove: Context {
    /// Removes the nearest setting of `key`.
    fn remove(&mut self, key: usize);
}

// ---------------------------------------------------------------- stackholm

impl Context for Stack {
    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let mut guard = self.enter();
        f(&mut guard)
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        Stack::set(self, &STACKHOLM_KEYS[key], value).expect("inside a checkpoint");
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        Stack::get(self, &STACKHOLM_KEYS[key]).copied()
    }
}

impl Remove for Stack {
    #[inline]
    fn remove(&mut self, key: usize) {
        let removed = Stack::remove(self, &STACKHOLM_KEYS[key]);
        assert!(removed, "a setting to remove, inside a checkpoint");
    }
}

/// stackholm's ambient storage: the thread's stack outside a task-local
/// scope, the task's inside one (run the workload inside a `Scope`).
#[derive(Debug, Default)]
pub struct Ambient;

impl Context for Ambient {
    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let _guard = DEFAULT.enter();
        f(self)
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        DEFAULT
            .set(&STACKHOLM_KEYS[key], value)
            .expect("inside a checkpoint");
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        DEFAULT.get(&STACKHOLM_KEYS[key])
    }
}

impl Remove for Ambient {
    #[inline]
    fn remove(&mut self, key: usize) {
        let removed = DEFAULT
            .remove(&STACKHOLM_KEYS[key])
            .expect("the stack can be changed");
        assert!(removed, "a setting to remove, inside a checkpoint");
    }
}

// ------------------------------------------------------------- naive stack

/// A `Vec` of maps, walked from the top on every read; maps of left scopes
/// are kept for reuse so that scopes do not allocate.
#[derive(Debug, Default)]
pub struct NaiveStack {
    frames: Vec<FxHashMap<usize, u64>>,
    spare: Vec<FxHashMap<usize, u64>>,
}

impl Context for NaiveStack {
    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let frame = self.spare.pop().unwrap_or_default();
        self.frames.push(frame);
        let output = f(self);
        let mut frame = self.frames.pop().expect("pushed above");
        frame.clear();
        self.spare.push(frame);
        output
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        self.frames
            .last_mut()
            .expect("inside a scope")
            .insert(key, value);
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        self.frames
            .iter()
            .rev()
            .find_map(|frame| frame.get(&key).copied())
    }
}

impl Remove for NaiveStack {
    #[inline]
    fn remove(&mut self, key: usize) {
        if let Some(frame) = self.frames.iter_mut().rev().find(|f| f.contains_key(&key)) {
            frame.remove(&key);
        }
    }
}

/// The naive stack as it must be written for values of many types (a user
/// id, a tenant, a transaction): each value boxed as `dyn Any` and
/// downcast on read. The other alternatives here hold `u64`s unboxed, which
/// only works while every value has one type.
#[derive(Default)]
pub struct NaiveDynStack {
    frames: Vec<FxHashMap<usize, Box<dyn Any + Send + Sync>>>,
    spare: Vec<FxHashMap<usize, Box<dyn Any + Send + Sync>>>,
}

impl fmt::Debug for NaiveDynStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NaiveDynStack")
            .field("depth", &self.frames.len())
            .finish_non_exhaustive()
    }
}

impl Context for NaiveDynStack {
    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let frame = self.spare.pop().unwrap_or_default();
        self.frames.push(frame);
        let output = f(self);
        let mut frame = self.frames.pop().expect("pushed above");
        frame.clear();
        self.spare.push(frame);
        output
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        self.frames
            .last_mut()
            .expect("inside a scope")
            .insert(key, Box::new(value));
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        self.frames
            .iter()
            .rev()
            .find_map(|frame| frame.get(&key))
            .and_then(|value| value.downcast_ref().copied())
    }
}

// ------------------------------------------------------ clone the map

/// One map of everything visible, shared by reference count and copied on
/// the first set in each nested scope (copy-on-write).
#[derive(Debug, Default)]
pub struct CloneMap {
    current: Arc<FxHashMap<usize, u64>>,
}

impl Context for CloneMap {
    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let saved = Arc::clone(&self.current);
        let output = f(self);
        self.current = saved;
        output
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        Arc::make_mut(&mut self.current).insert(key, value);
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        self.current.get(&key).copied()
    }
}

// ------------------------------------------------------------ OpenTelemetry

/// `opentelemetry::Context`: every set attaches a new context holding the
/// value (`Context::current_with_value(..).attach()`), kept attached until
/// the scope ends; reads go through `Context::map_current`.
#[derive(Debug, Default)]
pub struct Otel {
    guards: Vec<opentelemetry::ContextGuard>,
}

impl Context for Otel {
    /// Entering a scope with nothing to set: attach the current context.
    #[inline]
    fn enter_empty(&mut self) {
        let _guard = OtelContext::current().attach();
    }

    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let mark = self.guards.len();
        let output = f(self);
        while self.guards.len() > mark {
            self.guards.pop();
        }
        output
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        let cx = OtelContext::map_current(|cx| otel_with(cx, key, value));
        self.guards.push(cx.attach());
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        OtelContext::map_current(|cx| otel_get(cx, key))
    }
}

// ------------------------------------------- hand-rolled task-local map

/// What a hand-rolled `tokio::task_local!` holds: one map of everything
/// visible, and an undo log that restores shadowed values per scope.
#[derive(Debug, Default)]
pub struct UndoMap {
    map: FxHashMap<usize, u64>,
    undo: Vec<(usize, Option<u64>)>,
    marks: Vec<usize>,
}

tokio::task_local! {
    /// The hand-rolled task-local map.
    pub static TASK_MAP: RefCell<UndoMap>;
}

/// The hand-rolled task-local map, used from inside a `TASK_MAP` scope.
#[derive(Debug, Default)]
pub struct HandRolledTaskLocal;

impl Context for HandRolledTaskLocal {
    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        TASK_MAP.with(|state| {
            let mut state = state.borrow_mut();
            let mark = state.undo.len();
            state.marks.push(mark);
        });
        let output = f(self);
        TASK_MAP.with(|state| {
            let state = &mut *state.borrow_mut();
            let mark = state.marks.pop().expect("pushed above");
            for (key, previous) in state.undo.drain(mark..).rev() {
                match previous {
                    Some(value) => state.map.insert(key, value),
                    None => state.map.remove(&key),
                };
            }
        });
        output
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        TASK_MAP.with(|state| {
            let state = &mut *state.borrow_mut();
            let previous = state.map.insert(key, value);
            state.undo.push((key, previous));
        });
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        TASK_MAP.with(|state| state.borrow().map.get(&key).copied())
    }
}

// ------------------------------------------------------------------ floors

thread_local! {
    static FLOOR: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// The cheapest possible read of ambient state: index a thread-local
/// `RefCell<Vec>`.
#[inline]
pub fn floor_read(index: usize) -> Option<u64> {
    FLOOR.with(|values| values.borrow().get(index).copied())
}

/// The cheapest possible enter + set + leave: push and pop a thread-local
/// `RefCell<Vec>`.
#[inline]
pub fn floor_push_pop(value: u64) -> Option<u64> {
    FLOOR.with(|values| {
        let mut values = values.borrow_mut();
        values.push(value);
        values.pop()
    })
}

/// Fills the floor's vector, so reads have something to find.
pub fn fill_floor(len: usize) {
    FLOOR.with(|values| values.borrow_mut().resize(len, 1));
}

// --------------------------------------------------------------- workloads

/// Enters an empty scope and leaves it.
#[inline]
pub fn enter_leave<C: Context>(cx: &mut C) {
    cx.enter_empty();
}

/// Enters a scope, sets one key in it, leaves it.
#[inline]
pub fn enter_set_leave<C: Context>(cx: &mut C) {
    cx.scope(|cx| cx.set(0, 1));
}

/// Sets the key in the current scope, then removes it again (uncovering
/// the outer setting).
#[inline]
pub fn set_remove<C: Remove>(cx: &mut C) {
    cx.set(0, 2);
    cx.remove(0);
}

/// Runs `f` at `depth` nested scopes below a root that sets key 0, with
/// `others` other keys (1 to `others`) set across the scopes.
pub fn at_depth<C: Context, R>(
    cx: &mut C,
    depth: usize,
    others: usize,
    f: impl FnOnce(&mut C) -> R,
) -> R {
    fn nest<C: Context, R>(
        cx: &mut C,
        level: usize,
        depth: usize,
        others: usize,
        f: impl FnOnce(&mut C) -> R,
    ) -> R {
        cx.scope(|cx| {
            if level == 0 {
                cx.set(0, 7);
            }
            for key in (1..=others).filter(|key| key % depth == level) {
                cx.set(key, key as u64);
            }
            if level + 1 == depth {
                f(cx)
            } else {
                nest(cx, level + 1, depth, others, f)
            }
        })
    }
    nest(cx, 0, depth.max(1), others, f)
}

/// `n` keys of their own, leaked as statics are, for the workloads on a
/// stack or a thread that has gone through many keys.
pub fn leaked_keys(n: usize) -> Vec<&'static Key<u64>> {
    (0..n)
        .map(|_| &*Box::leak(Box::new(Key::new("used once"))))
        .collect()
}

/// `others` keys set in the root scope, for workloads that run with values
/// present; `f` runs inside it.
pub fn with_values<C: Context, R>(cx: &mut C, others: usize, f: impl FnOnce(&mut C) -> R) -> R {
    cx.scope(|cx| {
        for key in 1..=others {
            cx.set(key, key as u64);
        }
        f(cx)
    })
}

/// A request: a root with 5 values, 3 nested scopes each shadowing one of
/// them and reading all 5, then leaving all. Returns the sum of the reads.
#[inline]
pub fn request_like<C: Context>(cx: &mut C) -> u64 {
    cx.scope(|cx| {
        for key in 0..5 {
            cx.set(key, key as u64);
        }
        cx.scope(|cx| {
            cx.set(0, 10);
            let mut sum = read_five(cx);
            sum += cx.scope(|cx| {
                cx.set(1, 11);
                let mut sum = read_five(cx);
                sum += cx.scope(|cx| {
                    cx.set(2, 12);
                    read_five(cx)
                });
                sum
            });
            sum
        })
    })
}

#[inline]
fn read_five<C: Context>(cx: &mut C) -> u64 {
    (0..5).map(|key| cx.get(key).unwrap_or(0)).sum()
}

/// What [`request_like`] returns on a correct implementation.
pub const REQUEST_LIKE_SUM: u64 =
    (10 + 1 + 2 + 3 + 4) + (10 + 11 + 2 + 3 + 4) + (10 + 11 + 12 + 3 + 4);

// -------------------------------------------------------------- the layer

/// The axum hello-worlds the layer is measured on, by name: without the
/// layer (`plain`), with it (`layer`), with it and the request-like
/// workload in the handler (`layer+workload`), and with it giving each
/// request an id echoed on the response and an end hook told how the
/// request ended (`layer+id+end`; the load test's client sends no id, so
/// each is made, the dearer way).
pub fn apps() -> [(&'static str, axum::Router); 4] {
    use axum::routing::get;
    use stackholm_tower::{RequestEnd, StackholmLayer};

    static REQUEST_ID: Key<String> = Key::new("request_id");
    // Counted for the hook to do something, as a real one would; not read.
    static SUCCEEDED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    async fn hello() -> &'static str {
        "hello"
    }
    async fn hello_with_workload() -> &'static str {
        assert_eq!(request_like(&mut Ambient), REQUEST_LIKE_SUM);
        "hello"
    }
    let layered = |router: axum::Router| router.layer(StackholmLayer::new());
    [
        ("plain", axum::Router::new().route("/", get(hello))),
        ("layer", layered(axum::Router::new().route("/", get(hello)))),
        (
            "layer+workload",
            layered(axum::Router::new().route("/", get(hello_with_workload))),
        ),
        (
            "layer+id+end",
            axum::Router::new().route("/", get(hello)).layer(
                StackholmLayer::new()
                    .request_id(REQUEST_ID_HEADER, &REQUEST_ID)
                    .on_end(|_, end: RequestEnd| {
                        if end.succeeded() {
                            SUCCEEDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }),
            ),
        ),
    ]
}

/// The hello-world of [`apps`] behind the least a response-wrapping tower
/// layer can do under axum: wrap the body in one that passes every frame
/// through. What it costs over `plain` is axum's price of any such layer
/// (the layered route's future and the wrapped body boxed, the service
/// cloned per request), the floor for `StackholmLayer`'s.
pub fn pass_through_app() -> axum::Router {
    use axum::response::Response;
    use axum::routing::get;
    use tower::util::MapResponseLayer;

    async fn hello() -> &'static str {
        "hello"
    }
    axum::Router::new()
        .route("/", get(hello))
        .layer(MapResponseLayer::new(|response: Response| {
            response.map(PassThrough)
        }))
}

/// A body passing every frame of the one it wraps through.
#[derive(Debug)]
pub struct PassThrough<B>(B);

impl<B: axum::body::HttpBody + Unpin> axum::body::HttpBody for PassThrough<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// The `layer` hello-world of [`apps`] with request ids on: the id the
/// request carries in `x-request-id` taken and echoed (`request-id`), or,
/// read from a header the request does not carry, a fresh one made, put in
/// the request and echoed (`request-id-made`). The handler reads nothing,
/// as `layer`'s: what they cost over it is the request id's.
///
/// `request-id-tower-http` and `request-id-made-tower-http` do the same job
/// the way users did it before `.request_id(..)`: tower-http's
/// `SetRequestIdLayer` (with ids made from a counter, the cheapest
/// `MakeRequestId`) and `PropagateRequestIdLayer` around the layer, and a
/// seed copying the id into the root.
///
/// `request-id-floor` is less than any of them does, a bound from below on
/// what a made id costs: a seed setting a `String` made from a counter in
/// the root, and a constant header value put on the response; no header
/// read, no header value made, nothing put in the request.
pub fn request_id_apps() -> [(&'static str, axum::Router); 5] {
    async fn hello() -> &'static str {
        "hello"
    }
    request_id_apps_around(|| axum::Router::new().route("/", axum::routing::get(hello)))
}

/// The key the apps of [`request_id_apps`] put the id in.
static REQUEST_ID: Key<String> = Key::new("request_id");

/// The apps of [`request_id_apps`], around the routes `routes` makes.
fn request_id_apps_around(routes: impl Fn() -> axum::Router) -> [(&'static str, axum::Router); 5] {
    use stackholm_tower::StackholmLayer;
    use tower_http::request_id::{
        MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
    };

    #[derive(Clone, Default)]
    struct Counter(std::sync::Arc<std::sync::atomic::AtomicU64>);

    impl MakeRequestId for Counter {
        fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(RequestId::new(n.to_string().parse().ok()?))
        }
    }

    let with = |header| routes().layer(StackholmLayer::new().request_id(header, &REQUEST_ID));
    let tower_http = |header: &'static str| {
        let header = axum::http::HeaderName::from_static(header);
        let seed = StackholmLayer::new().seed({
            let header = header.clone();
            move |parts: &axum::http::request::Parts, root: &mut stackholm_tower::Root<'_>| {
                if let Some(id) = parts.headers.get(&header).and_then(|id| id.to_str().ok()) {
                    root.set(&REQUEST_ID, id.to_owned());
                }
            }
        });
        routes().layer(
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(header.clone(), Counter::default()))
                .layer(PropagateRequestIdLayer::new(header))
                .layer(seed),
        )
    };
    let floor = {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seed = StackholmLayer::new().seed(
            |_: &axum::http::request::Parts, root: &mut stackholm_tower::Root<'_>| {
                let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                root.set(&REQUEST_ID, n.to_string());
            },
        );
        let echo = tower::util::MapResponseLayer::new(|mut response: axum::response::Response| {
            response.headers_mut().insert(
                axum::http::HeaderName::from_static(REQUEST_ID_HEADER),
                axum::http::HeaderValue::from_static("made"),
            );
            response
        });
        routes().layer(tower::ServiceBuilder::new().layer(seed).layer(echo))
    };
    [
        ("request-id", with(REQUEST_ID_HEADER)),
        ("request-id-made", with("x-made-request-id")),
        ("request-id-tower-http", tower_http(REQUEST_ID_HEADER)),
        (
            "request-id-made-tower-http",
            tower_http("x-made-request-id"),
        ),
        ("request-id-floor", floor),
    ]
}

/// Every app of the in-process figures, by name: the hello-worlds of
/// [`apps`], the `pass-through` floor of [`pass_through_app`], the apps of
/// [`request_id_apps`] and those of [`context_apps`].
pub fn in_process_apps() -> Vec<(&'static str, axum::Router)> {
    let mut all = Vec::from(apps());
    all.push(("pass-through", pass_through_app()));
    all.extend(request_id_apps());
    all.extend(context_apps());
    all
}

/// The app of [`in_process_apps`] called `name`.
///
/// # Panics
///
/// If there is no app of that name.
pub fn app(name: &str) -> axum::Router {
    in_process_apps()
        .into_iter()
        .find_map(|(n, app)| (n == name).then_some(app))
        .unwrap_or_else(|| {
            let names: Vec<_> = in_process_apps().into_iter().map(|(n, _)| n).collect();
            panic!("no app `{name}`: {}", names.join(", "))
        })
}

/// A `GET /` carrying a request id and a user in the headers the apps of
/// [`context_apps`] read them from (the other apps ignore them).
pub fn request(request_id: &str, user: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get("/")
        .header(REQUEST_ID_HEADER, request_id)
        .header(USER_HEADER, user)
        .body(axum::body::Body::empty())
        .expect("a valid request")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<C: Context>(mut cx: C) -> C {
        assert_eq!(request_like(&mut cx), REQUEST_LIKE_SUM);
        for depth in [1, 10, 100] {
            for others in [0, 50] {
                let (nearest, other) =
                    at_depth(&mut cx, depth, others, |cx| (cx.get(0), cx.get(others)));
                assert_eq!(nearest, Some(7), "depth {depth}, {others} others");
                assert_eq!(
                    other,
                    if others == 0 {
                        Some(7)
                    } else {
                        Some(others as u64)
                    }
                );
            }
        }
        let shadowed = cx.scope(|cx| {
            cx.set(0, 1);
            enter_set_leave(cx);
            cx.get(0)
        });
        assert_eq!(shadowed, Some(1));
        assert_eq!(cx.get(0), None);
        cx
    }

    fn check_remove<C: Remove>(mut cx: C) {
        let seen = at_depth(&mut cx, 10, 0, |cx| {
            set_remove(cx);
            cx.get(0)
        });
        assert_eq!(seen, Some(7));
    }

    #[test]
    fn every_implementation_computes_the_same() {
        check_remove(check(Stack::new()));
        check_remove(check(Ambient));
        check_remove(check(NaiveStack::default()));
        check(NaiveDynStack::default());
        check(FloorOwned::new());
        check(FloorThread);
        check(CloneMap::default());
        check(Otel::default());
        TASK_MAP.sync_scope(RefCell::default(), || check(HandRolledTaskLocal));
        let mut scope = stackholm::Scope::new(DEFAULT, stackholm::Checkpoint::new());
        scope.run(|| check_remove(check(Ambient)));
        fill_floor(4);
        assert_eq!(floor_read(3), Some(1));
        assert_eq!(floor_push_pop(9), Some(9));
    }

    /// Both ways of giving a request an id do the whole job: the id sent is
    /// the one in the root and on the response, and one is made, put in
    /// the root and echoed when none is sent. (The same apps, around a
    /// handler that answers the root's id.)
    #[test]
    fn every_request_id_app_echoes_the_id_in_the_root() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        async fn root_id() -> String {
            DEFAULT.get(&REQUEST_ID).unwrap_or_default()
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let apps =
            request_id_apps_around(|| axum::Router::new().route("/", axum::routing::get(root_id)));
        for (name, app) in apps {
            if name == "request-id-floor" {
                // Less than the job, by design: a constant on the response.
                continue;
            }
            let header = if name.contains("made") {
                "x-made-request-id"
            } else {
                REQUEST_ID_HEADER
            };
            let (echoed, in_root) = runtime.block_on(async {
                let response = app
                    .oneshot(request(carry::CARRIED.0, carry::CARRIED.1))
                    .await
                    .expect("infallible");
                let echoed = response.headers().get(header).cloned();
                let body = response.into_body().collect().await.expect("a body");
                (echoed, body.to_bytes())
            });
            let echoed = echoed.unwrap_or_else(|| panic!("{name} echoed no id"));
            assert!(!in_root.is_empty(), "{name} put no id in the root");
            assert_eq!(echoed.as_bytes(), in_root, "{name}");
            if !name.contains("made") {
                assert_eq!(echoed, carry::CARRIED.0, "{name}");
            }
        }
    }

    /// Every app answers the same, so that none is cheaper for doing less;
    /// a context app sent another context than [`carry::CARRIED`] says it
    /// read that one, so that none passes by answering one it did not
    /// carry.
    #[test]
    fn every_app_says_hello() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        for (name, app) in in_process_apps() {
            for (request_id, user) in [carry::CARRIED, ("r-2", "bob")] {
                let (status, body) = runtime.block_on(async {
                    let response = app
                        .clone()
                        .oneshot(request(request_id, user))
                        .await
                        .expect("infallible");
                    let status = response.status();
                    let body = response.into_body().collect().await.expect("a body");
                    (status, body.to_bytes())
                });
                let carries = carry::context_apps().iter().any(|(app, _)| *app == name);
                if carries && (request_id, user) != carry::CARRIED {
                    let read = format!("{:?}", (Some(request_id), Some(user)));
                    assert_eq!(status, http::StatusCode::INTERNAL_SERVER_ERROR, "{name}");
                    assert!(
                        String::from_utf8_lossy(&body).contains(&read),
                        "{name} read the context its request carried: {body:?}"
                    );
                } else {
                    assert_eq!(
                        (status, &*body),
                        (http::StatusCode::OK, &b"hello"[..]),
                        "{name}: {body:?}"
                    );
                }
            }
        }
    }
}
