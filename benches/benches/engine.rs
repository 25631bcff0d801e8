//! The engine against the alternatives: each workload of the
//! `stackholm-benches` library, on every implementation, in one group.
//!
//! `cargo bench -p stackholm-benches --bench engine`

use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use http_body_util::BodyExt;
use tower::ServiceExt;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, Bencher, BenchmarkGroup, BenchmarkId, Criterion};
use stackholm::{Checkpoint, Scope, Stack, DEFAULT};
use stackholm_benches::{
    at_depth, enter_leave, enter_set_leave, fill_floor, floor_push_pop, floor_read,
    in_process_apps, leaked_keys, request as context_request, request_like, set_remove,
    with_values, Ambient, CloneMap, Context, HandRolledTaskLocal, NaiveDynStack, NaiveStack, Otel,
    Remove, CARRIED, TASK_MAP,
};

/// A workload, runnable on any implementation.
trait Routine {
    fn run<C: Context>(&self, b: &mut Bencher<'_>, cx: &mut C);
}

/// Benches `routine` on every implementation, under `id` in `group`.
fn on_every_context(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, routine: &impl Routine) {
    group.bench_function(BenchmarkId::new("stackholm-owned", id), |b| {
        routine.run(b, &mut Stack::new());
    });
    group.bench_function(BenchmarkId::new("stackholm-thread", id), |b| {
        routine.run(b, &mut Ambient);
    });
    group.bench_function(BenchmarkId::new("stackholm-task", id), |b| {
        Scope::new(DEFAULT, Checkpoint::new()).run(|| routine.run(b, &mut Ambient));
    });
    group.bench_function(BenchmarkId::new("naive-stack", id), |b| {
        routine.run(b, &mut NaiveStack::default());
    });
    group.bench_function(BenchmarkId::new("naive-dyn-stack", id), |b| {
        routine.run(b, &mut NaiveDynStack::default());
    });
    group.bench_function(BenchmarkId::new("clone-map", id), |b| {
        routine.run(b, &mut CloneMap::default());
    });
    group.bench_function(BenchmarkId::new("opentelemetry", id), |b| {
        routine.run(b, &mut Otel::default());
    });
    group.bench_function(BenchmarkId::new("task-local-map", id), |b| {
        TASK_MAP.sync_scope(RefCell::default(), || {
            routine.run(b, &mut HandRolledTaskLocal)
        });
    });
}

struct EnterLeave;

impl Routine for EnterLeave {
    fn run<C: Context>(&self, b: &mut Bencher<'_>, cx: &mut C) {
        b.iter(|| enter_leave(cx));
    }
}

struct EnterSetLeave {
    present: usize,
}

impl Routine for EnterSetLeave {
    fn run<C: Context>(&self, b: &mut Bencher<'_>, cx: &mut C) {
        with_values(cx, self.present, |cx| b.iter(|| enter_set_leave(cx)));
    }
}

struct Read {
    depth: usize,
    others: usize,
}

impl Routine for Read {
    fn run<C: Context>(&self, b: &mut Bencher<'_>, cx: &mut C) {
        at_depth(cx, self.depth, self.others, |cx| {
            b.iter(|| cx.get(black_box(0)));
        });
    }
}

struct RequestLike;

impl Routine for RequestLike {
    fn run<C: Context>(&self, b: &mut Bencher<'_>, cx: &mut C) {
        b.iter(|| request_like(cx));
    }
}

fn enter_and_leave(c: &mut Criterion) {
    let mut group = c.benchmark_group("enter_leave");
    on_every_context(&mut group, "empty", &EnterLeave);
    group.finish();

    let mut group = c.benchmark_group("enter_set_leave");
    for present in [0, 50] {
        on_every_context(
            &mut group,
            &format!("{present}-present"),
            &EnterSetLeave { present },
        );
    }
    // The floor has no values present to vary; measured once, next to the
    // figure the report compares it with.
    group.bench_function(BenchmarkId::new("floor-push-pop", "50-present"), |b| {
        b.iter(|| floor_push_pop(black_box(1)));
    });
    group.finish();
}

fn read_nearest(c: &mut Criterion) {
    fill_floor(64);
    let mut group = c.benchmark_group("read_nearest");
    for others in [0, 50] {
        for depth in [1, 10, 100] {
            let id = format!("depth-{depth}/{others}-others");
            on_every_context(&mut group, &id, &Read { depth, others });
        }
    }
    // The floor has no depth or keys to vary; measured once, next to the
    // figure the report compares it with.
    group.bench_function(
        BenchmarkId::new("floor-vec-index", "depth-100/50-others"),
        |b| b.iter(|| floor_read(black_box(0))),
    );
    group.finish();
}

fn remove_nearest(c: &mut Criterion) {
    fn run<C: Remove>(b: &mut Bencher<'_>, cx: &mut C) {
        at_depth(cx, 10, 0, |cx| b.iter(|| set_remove(cx)));
    }
    let mut group = c.benchmark_group("set_remove_nearest");
    let id = "depth-10";
    group.bench_function(BenchmarkId::new("stackholm-owned", id), |b| {
        run(b, &mut Stack::new())
    });
    group.bench_function(BenchmarkId::new("stackholm-thread", id), |b| {
        run(b, &mut Ambient)
    });
    group.bench_function(BenchmarkId::new("stackholm-task", id), |b| {
        Scope::new(DEFAULT, Checkpoint::new()).run(|| run(b, &mut Ambient));
    });
    group.bench_function(BenchmarkId::new("naive-stack", id), |b| {
        run(b, &mut NaiveStack::default())
    });
    group.finish();
}

fn request(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_like");
    on_every_context(&mut group, "5-values-3-nested", &RequestLike);
    group.finish();
}

/// Polls `future` to completion on this thread; the services measured here
/// never wait on anything, so this is a loop of one poll.
fn run_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// The layer's own cost per request, and the alternatives' for carrying a
/// request's context, without a network: each app of `in_process_apps`
/// called in process with a request id and a user in the headers, its body
/// read to the end.
fn layer_per_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer_per_request");
    for (name, app) in in_process_apps() {
        group.bench_function(BenchmarkId::new(name, "axum-hello-in-process"), |b| {
            b.iter(|| {
                run_now(async {
                    let request = context_request(CARRIED.0, CARRIED.1);
                    let response = app.clone().oneshot(request).await.unwrap();
                    response.into_body().collect().await.unwrap().to_bytes()
                })
            });
        });
    }
    group.finish();
}

/// A value with drop glue: the values dropped after their checkpoint is
/// left and the storage released take this path, which `u64`s skip.
struct Droppy(u64);

impl Drop for Droppy {
    fn drop(&mut self) {
        black_box(self.0);
    }
}

static DROPPY: stackholm::Key<Droppy> = stackholm::Key::new("droppy");

fn enter_set_leave_with_drop_glue(c: &mut Criterion) {
    let mut group = c.benchmark_group("enter_set_leave_drop_glue");
    group.bench_function(BenchmarkId::new("stackholm-owned", "1-value"), |b| {
        let mut stack = Stack::new();
        b.iter(|| {
            let mut guard = stack.enter();
            let _ = guard.set(&DROPPY, Droppy(black_box(1)));
        });
    });
    group.bench_function(BenchmarkId::new("stackholm-thread", "1-value"), |b| {
        b.iter(|| {
            let _guard = DEFAULT.enter();
            let _ = DEFAULT.set(&DROPPY, Droppy(black_box(1)));
        });
    });
    group.finish();
}

static SNAPSHOT_INHERITED: [stackholm::Key<u64>; 5] = [
    stackholm::Key::new("i0").inherited(),
    stackholm::Key::new("i1").inherited(),
    stackholm::Key::new("i2").inherited(),
    stackholm::Key::new("i3").inherited(),
    stackholm::Key::new("i4").inherited(),
];
static SNAPSHOT_LOCAL: [stackholm::Key<u64>; 2] =
    [stackholm::Key::new("l0"), stackholm::Key::new("l1")];

/// A snapshot of 5 visible values: all inherited (what every snapshot took
/// before keys could stay behind), and 3 inherited beside 2 that are not.
fn snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    let cases: [(&str, Vec<&'static stackholm::Key<u64>>); 2] = [
        ("5-inherited", SNAPSHOT_INHERITED.iter().collect()),
        (
            "3-inherited-2-not",
            SNAPSHOT_INHERITED[..3]
                .iter()
                .chain(&SNAPSHOT_LOCAL)
                .collect(),
        ),
    ];
    for (id, keys) in cases {
        group.bench_function(BenchmarkId::new("stackholm-owned", id), |b| {
            let mut stack = Stack::new();
            let mut root = stack.enter();
            for (value, key) in (0..).zip(&keys) {
                root.set(key, value).unwrap();
            }
            b.iter(|| black_box(root.snapshot()));
        });
    }
    // One inherited value, on a stack that has seen 10,000 other keys: a
    // snapshot's cost follows the values it carries, not the keys seen.
    for seen in [0, 10_000] {
        let id = format!("1-inherited-{seen}-keys-seen");
        // Outside the closure, which criterion calls for every sample.
        let mut stack = Stack::new();
        for key in leaked_keys(seen) {
            let mut once = stack.enter();
            once.set(key, 0).unwrap();
        }
        group.bench_function(BenchmarkId::new("stackholm-owned", id), |b| {
            let mut root = stack.enter();
            root.set(&SNAPSHOT_INHERITED[0], 1).unwrap();
            b.iter(|| black_box(root.snapshot()));
        });
    }
    group.finish();
}

/// Registering one exit hook on a checkpoint and running it as the
/// checkpoint is left, beside entering and leaving alone.
fn exit_hook(c: &mut Criterion) {
    let mut group = c.benchmark_group("exit_hook");
    group.bench_function(BenchmarkId::new("stackholm-thread", "none"), |b| {
        b.iter(|| drop(black_box(DEFAULT.enter())));
    });
    group.bench_function(BenchmarkId::new("stackholm-thread", "capture-free"), |b| {
        b.iter(|| {
            let _guard = DEFAULT.enter();
            DEFAULT
                .on_exit(|outcome| {
                    black_box(outcome);
                })
                .unwrap();
        });
    });
    group.bench_function(BenchmarkId::new("stackholm-thread", "capturing"), |b| {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        b.iter(|| {
            let _guard = DEFAULT.enter();
            let seen = std::sync::Arc::clone(&seen);
            DEFAULT
                .on_exit(move |_| {
                    seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .unwrap();
        });
    });
    group.finish();
}

criterion_group! {
    name = engine;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        // Medians are what the report uses; fewer resamples keep the
        // analysis from taking longer than the measurement.
        .nresamples(10_000);
    targets = enter_and_leave, enter_set_leave_with_drop_glue, read_nearest, remove_nearest, request, snapshot, exit_hook, layer_per_request
}
criterion_main!(engine);
