//! What `StackholmLayer` costs a real server: an axum hello-world served on
//! 127.0.0.1 without the layer, with it, with it plus the request-like
//! workload in the handler, and with it giving each request an id and an
//! end hook (`stackholm_benches::apps`), loaded in turn by 64 concurrent
//! HTTP/1 connections, round after round, in one run.
//!
//! `cargo bench -p stackholm-benches --bench layer` prints requests/s,
//! p50 and p99 latency and the ratios to the plain server, and writes them
//! to `target/layer-bench.json`. The throughput ratio is the median over
//! rounds of each round's ratio, so that the machine's drift between rounds
//! cancels out. `LAYER_BENCH_SECS` sets the seconds per round (default 2),
//! `LAYER_BENCH_ROUNDS` the rounds (default 10). Run by
//! `cargo test --benches`, it does one short round as a smoke test and
//! writes nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use stackholm_benches::apps;

const CONCURRENCY: usize = 64;

/// One round against one server: the latency of each request completed.
async fn load(addr: SocketAddr, duration: Duration) -> Vec<Duration> {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENCY)
        .build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("http://{addr}/").parse().expect("a valid uri");
    let deadline = Instant::now() + duration;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, uri) = (client.clone(), uri.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let response = client.get(uri.clone()).await.expect("the server answers");
                    let body = response.into_body().collect().await.expect("a whole body");
                    assert_eq!(body.to_bytes(), "hello");
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("a load worker does not panic"));
    }
    latencies
}

struct Outcome {
    name: &'static str,
    rates: Vec<f64>,
    latencies: Vec<Duration>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

impl Outcome {
    fn median_rate(&self) -> f64 {
        median(self.rates.clone())
    }

    /// The median over rounds of this server's rate over the plain one's.
    fn ratio_to(&self, plain: &Outcome) -> f64 {
        median(
            self.rates
                .iter()
                .zip(&plain.rates)
                .map(|(own, plain)| own / plain)
                .collect(),
        )
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort();
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let benching = std::env::args().any(|arg| arg == "--bench");
    let (secs, rounds) = if benching {
        (
            env_number("LAYER_BENCH_SECS", 2.0),
            env_number("LAYER_BENCH_ROUNDS", 10.0).max(1.0) as usize,
        )
    } else {
        (0.2, 1)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let mut servers = Vec::new();
        for (name, app) in apps() {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .expect("an ephemeral port of 127.0.0.1 is free");
            let addr = listener.local_addr().expect("a bound address");
            tokio::spawn(async move { axum::serve(listener, app).await });
            servers.push((name, addr));
        }
        let mut outcomes: Vec<Outcome> = servers
            .iter()
            .map(|&(name, _)| Outcome {
                name,
                rates: Vec::new(),
                latencies: Vec::new(),
            })
            .collect();
        let duration = Duration::from_secs_f64(secs);
        // Warm every server up once before measuring.
        for &(_, addr) in &servers {
            load(addr, duration / 4).await;
        }
        for round in 0..rounds {
            // Rotate the order, so no server always runs first or last.
            for offset in 0..servers.len() {
                let which = (round + offset) % servers.len();
                let latencies = load(servers[which].1, duration).await;
                outcomes[which].rates.push(latencies.len() as f64 / secs);
                outcomes[which].latencies.extend(latencies);
            }
        }
        let json = report(&mut outcomes, secs, rounds);
        // The smoke run's one short round must not replace measured figures.
        if benching {
            write_json(&json);
        }
    });
}

/// Prints the figures, and returns them as a JSON array.
fn report(outcomes: &mut [Outcome], secs: f64, rounds: usize) -> String {
    let plain_p50 = outcomes[0].percentile(0.50).as_secs_f64();
    let ratios: Vec<f64> = outcomes.iter().map(|o| o.ratio_to(&outcomes[0])).collect();
    println!("layer overhead: {CONCURRENCY} connections, {rounds} rounds of {secs} s per server\n");
    println!(
        "{:<16} {:>12} {:>9} {:>10} {:>10} {:>9}",
        "server", "requests/s", "vs plain", "p50 (µs)", "p99 (µs)", "p50 ratio"
    );
    let mut json = Vec::new();
    for (outcome, ratio) in outcomes.iter_mut().zip(ratios) {
        let rate = outcome.median_rate();
        let p50 = outcome.percentile(0.50);
        let p99 = outcome.percentile(0.99);
        println!(
            "{:<16} {:>12.0} {:>9.3} {:>10.1} {:>10.1} {:>9.3}",
            outcome.name,
            rate,
            ratio,
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            p50.as_secs_f64() / plain_p50,
        );
        json.push(format!(
            r#"{{"server":"{}","requests_per_second":{rate:.1},"throughput_ratio":{:.4},"p50_us":{:.1},"p99_us":{:.1},"rounds":{rounds},"seconds_per_round":{secs},"connections":{CONCURRENCY}}}"#,
            outcome.name,
            ratio,
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
        ));
    }
    format!("[{}]\n", json.join(",\n"))
}

/// Writes the figures to `target/layer-bench.json`, for `benches/report.py`.
fn write_json(json: &str) {
    // Benches run in their package's folder; the workspace's target is above.
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let path = std::path::Path::new(&target).join("layer-bench.json");
    if let Err(err) = std::fs::write(&path, json) {
        eprintln!("could not write {}: {err}", path.display());
    }
}
