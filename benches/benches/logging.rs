//! A request's context in its log lines: stackholm-tracing against a span
//! per request. `cargo bench -p stackholm-benches --bench logging`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use stackholm_benches::logging::{
    event, in_stackholm_request, request_span, span_request, span_subscriber, stackholm_request,
    stackholm_subscriber, POLLS,
};

fn per_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_event");
    let id = "3-context-fields";
    group.bench_function(BenchmarkId::new("stackholm-tracing", id), |b| {
        tracing::dispatcher::with_default(&stackholm_subscriber(), || {
            in_stackholm_request(|| b.iter(event));
        });
    });
    group.bench_function(BenchmarkId::new("span", id), |b| {
        tracing::dispatcher::with_default(&span_subscriber(), || {
            let span = request_span();
            let _entered = span.enter();
            b.iter(event);
        });
    });
    group.finish();
}

fn per_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_request");
    let id = format!("{POLLS}-polls-an-event-each");
    group.bench_function(BenchmarkId::new("stackholm-tracing", &id), |b| {
        tracing::dispatcher::with_default(&stackholm_subscriber(), || b.iter(stackholm_request));
    });
    group.bench_function(BenchmarkId::new("span", &id), |b| {
        tracing::dispatcher::with_default(&span_subscriber(), || b.iter(span_request));
    });
    group.finish();
}

criterion_group! {
    name = logging;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .nresamples(10_000);
    targets = per_event, per_request
}
criterion_main!(logging);
