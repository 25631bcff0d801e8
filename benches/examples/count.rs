//! Runs one workload a given number of times, for `benches/instructions.sh`
//! to count the instructions it takes under callgrind.
//!
//! Wall-clock figures on a shared machine drift by tens of percent between
//! runs; instruction counts do not. Counting a run of `n` and one of `2n`
//! and taking the difference leaves the cost of `n` workloads, without
//! start-up.
//!
//! ```sh
//! cargo run --release -p stackholm-benches --example count -- request_like/naive-stack 1000
//! ```

use std::cell::RefCell;
use std::hint::black_box;

use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use stackholm::{Checkpoint, Scope, Stack, DEFAULT};
use stackholm_benches::floor::{task, FloorTask};
use stackholm_benches::{
    app, at_depth, enter_leave, enter_set_leave, leaked_keys, request, request_like, with_values,
    Ambient, CloneMap, Context, FloorOwned, FloorThread, HandRolledTaskLocal, NaiveDynStack,
    NaiveStack, Otel, CARRIED, STACKHOLM_KEYS, TASK_MAP,
};
use tower::ServiceExt;

/// Runs `workload` on the implementation named `name`, inside whatever
/// scope that implementation needs.
fn on<W: Workload>(name: &str, workload: W) {
    match name {
        "stackholm-owned" => workload.run(&mut Stack::new()),
        "stackholm-thread" => workload.run(&mut Ambient),
        "stackholm-task" => {
            Scope::new(DEFAULT, Checkpoint::new()).run(|| workload.run(&mut Ambient))
        }
        "floor-owned" => workload.run(&mut FloorOwned::new()),
        "floor-thread" => workload.run(&mut FloorThread),
        "floor-task" => task::scope_run(|| workload.run(&mut FloorTask)),
        "naive-stack" => workload.run(&mut NaiveStack::default()),
        "naive-dyn-stack" => workload.run(&mut NaiveDynStack::default()),
        "clone-map" => workload.run(&mut CloneMap::default()),
        "opentelemetry" => workload.run(&mut Otel::default()),
        "task-local-map" => TASK_MAP.sync_scope(RefCell::default(), || {
            workload.run(&mut HandRolledTaskLocal)
        }),
        other => panic!("unknown implementation `{other}`"),
    }
}

trait Workload {
    fn run<C: Context>(&self, cx: &mut C);
}

struct RequestLike(usize);

impl Workload for RequestLike {
    fn run<C: Context>(&self, cx: &mut C) {
        for _ in 0..self.0 {
            black_box(request_like(black_box(&mut *cx)));
        }
    }
}

struct EnterSetLeave(usize);

impl Workload for EnterSetLeave {
    fn run<C: Context>(&self, cx: &mut C) {
        with_values(cx, 50, |cx| {
            for _ in 0..self.0 {
                enter_set_leave(black_box(&mut *cx));
            }
        });
    }
}

struct EnterLeave(usize);

impl Workload for EnterLeave {
    fn run<C: Context>(&self, cx: &mut C) {
        with_values(cx, 50, |cx| {
            for _ in 0..self.0 {
                enter_leave(black_box(&mut *cx));
            }
        });
    }
}

struct ReadDeep(usize);

impl Workload for ReadDeep {
    fn run<C: Context>(&self, cx: &mut C) {
        at_depth(cx, 100, 50, |cx| {
            for _ in 0..self.0 {
                black_box(black_box(&mut *cx).get(black_box(0)));
            }
        });
    }
}

/// `count` sequential requests from a real HTTP client to an axum
/// hello-world on 127.0.0.1, both on one current-thread runtime so that
/// the count does not depend on scheduling.
fn loopback(app: Router, count: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("an ephemeral port of 127.0.0.1 is free");
        let addr = listener.local_addr().expect("a bound address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let uri: http::Uri = format!("http://{addr}/").parse().expect("a valid uri");
        for _ in 0..count {
            let response = client.get(uri.clone()).await.expect("the server answers");
            let body = response.into_body().collect().await.expect("a whole body");
            assert_eq!(body.to_bytes(), "hello");
        }
    });
}

/// `count` requests to an axum app called in process through `oneshot`,
/// each carrying a request id and a user (for the apps that carry a
/// context), its body read to the end: the layer's own cost, no network.
fn in_process(app: Router, count: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        for _ in 0..count {
            let request = request(CARRIED.0, CARRIED.1);
            let response = app.clone().oneshot(request).await.expect("infallible");
            let body = response.into_body().collect().await.expect("a whole body");
            assert_eq!(body.to_bytes(), "hello");
        }
    });
}

/// `count` requests logging an event per poll, the context carried by
/// stackholm-tracing or by a span per request.
fn log_requests(name: &str, count: usize) {
    use stackholm_benches::logging::{
        span_request, span_subscriber, stackholm_request, stackholm_subscriber,
    };
    let (dispatch, request): (_, fn()) = match name {
        "stackholm-tracing" => (stackholm_subscriber(), stackholm_request),
        "span" => (span_subscriber(), span_request),
        other => panic!("unknown implementation `{other}`"),
    };
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..count {
            request();
        }
    });
}

static INHERITED: stackholm::Key<u64> = stackholm::Key::new("inherited").inherited();

/// Snapshots of one inherited value, on an owned stack that has used
/// `seen` other keys once each before.
fn snapshots(seen: usize, count: usize) {
    let mut stack = Stack::new();
    for key in leaked_keys(seen) {
        let mut once = stack.enter();
        once.set(key, 0).expect("inside a checkpoint");
    }
    let mut root = stack.enter();
    root.set(&INHERITED, 1).expect("inside a checkpoint");
    for _ in 0..count {
        black_box(root.snapshot());
    }
}

/// Reads of a checkpoint off the stack holding five values (of
/// `STACKHOLM_KEYS`, as `read_nearest` reads them): `get` of the last one
/// pre-loaded, found after a look at every tag (`what` is `get`), or
/// `len`.
fn checkpoint_reads(what: &str, count: usize) {
    let checkpoint = (0..5).fold(Checkpoint::new(), |checkpoint, k| {
        checkpoint.with_value(&STACKHOLM_KEYS[k], k as u64)
    });
    match what {
        "get" => {
            for _ in 0..count {
                let key = &STACKHOLM_KEYS[black_box(4)];
                black_box(black_box(&checkpoint).get(key).copied());
            }
        }
        "len" => {
            for _ in 0..count {
                black_box(black_box(&checkpoint).len());
            }
        }
        other => panic!("unknown checkpoint read `{other}`"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(what), Some(count)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: count WORKLOAD/IMPLEMENTATION COUNT, or count in_process|loopback/APP COUNT"
        );
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let (workload, name) = what.split_once('/').expect("WORKLOAD/IMPLEMENTATION");
    match workload {
        "request_like" => on(name, RequestLike(count)),
        "enter_set_leave" => on(name, EnterSetLeave(count)),
        "enter_leave" => on(name, EnterLeave(count)),
        "read_nearest" => on(name, ReadDeep(count)),
        "log_request" => log_requests(name, count),
        "checkpoint_get" | "checkpoint_len" if name == "stackholm" => {
            checkpoint_reads(&workload["checkpoint_".len()..], count)
        }
        "snapshot" => snapshots(name.parse().expect("KEYS-SEEN is a number"), count),
        "in_process" => in_process(app(name), count),
        "loopback" => loopback(app(name), count),
        other => panic!("unknown workload `{other}`"),
    }
}
