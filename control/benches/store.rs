//! Store benchmark: the embedded store against etcd, same machine, same run,
//! fsync on for both, through the same `Store` trait the API server uses.
//!
//! Measures puts/s of 1 KiB values with 1 and 64 concurrent writers and the
//! write-to-watch delivery latency (p50/p99), three rounds each, and reports
//! medians and embedded/etcd ratios. With `SKIFF_BENCH_OUT=FILE` it also
//! writes the table into that markdown file between markers.
//!
//! Run with `make bench` (or `cargo bench -p skiff-control --bench store`);
//! needs Debian's `etcd` on PATH.

#[path = "../tests/all/support/etcd.rs"]
#[allow(dead_code)]
mod etcd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use skiff_control::store::{EmbeddedConfig, EmbeddedStore, EtcdConfig, EtcdStore, Store};

const ROUNDS: usize = 3;
const SINGLE_WRITER_OPS: usize = 500;
const MANY_WRITERS: usize = 64;
const MANY_WRITER_OPS: usize = 10_000;
const WATCH_SAMPLES: usize = 500;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

#[derive(Default)]
struct Samples {
    single: Vec<f64>,
    many: Vec<f64>,
    watch_p50: Vec<f64>,
    watch_p99: Vec<f64>,
}

async fn run() {
    let etcd_process = etcd::EtcdProcess::start();
    let etcd: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(EtcdConfig::default().endpoints([etcd_process.endpoint()]))
            .await
            .expect("connect to etcd"),
    );
    let dir = tempfile::TempDir::new().expect("temp dir");
    let embedded: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("bench.redb"))).expect("open"),
    );
    let value = Bytes::from(vec![b'v'; 1024]);

    let mut results = [Samples::default(), Samples::default()];
    for round in 0..ROUNDS {
        for (i, (name, store)) in [("embedded", &embedded), ("etcd", &etcd)]
            .iter()
            .enumerate()
        {
            let prefix = format!("/bench/{round}/");
            let single =
                puts_per_second(store, &format!("{prefix}1/"), 1, SINGLE_WRITER_OPS, &value).await;
            let many = puts_per_second(
                store,
                &format!("{prefix}64/"),
                MANY_WRITERS,
                MANY_WRITER_OPS,
                &value,
            )
            .await;
            let (p50, p99) = watch_latency(store, &format!("{prefix}w/"), &value).await;
            eprintln!(
                "round {round} {name:8}: 1 writer {single:8.0} puts/s, 64 writers {many:8.0} puts/s, watch p50 {p50:.2} ms p99 {p99:.2} ms"
            );
            let r = &mut results[i];
            r.single.push(single);
            r.many.push(many);
            r.watch_p50.push(p50);
            r.watch_p99.push(p99);
        }
    }
    embedded.close().await.expect("close");
    etcd.close().await.expect("close");

    let [e, d] = &mut results;
    let rows = [
        (
            "puts/s, 1 writer (1 KiB)",
            median(&mut e.single),
            median(&mut d.single),
            true,
        ),
        (
            "puts/s, 64 writers (1 KiB)",
            median(&mut e.many),
            median(&mut d.many),
            true,
        ),
        (
            "watch latency p50 (ms)",
            median(&mut e.watch_p50),
            median(&mut d.watch_p50),
            false,
        ),
        (
            "watch latency p99 (ms)",
            median(&mut e.watch_p99),
            median(&mut d.watch_p99),
            false,
        ),
    ];
    let mut table =
        String::from("| measure | embedded | etcd | embedded/etcd |\n|---|---:|---:|---:|\n");
    for (name, embedded, etcd, _) in &rows {
        table.push_str(&format!(
            "| {name} | {embedded:.2} | {etcd:.2} | {:.2}× |\n",
            embedded / etcd
        ));
    }
    let single_ratio = rows[0].1 / rows[0].2;
    let many_ratio = rows[1].1 / rows[1].2;
    let verdict = format!(
        "Goals: embedded ≥ 2× etcd at 64 writers: {} ({many_ratio:.2}×); embedded within 1.5× of etcd at 1 writer: {} ({single_ratio:.2}×).",
        if many_ratio >= 2.0 { "met" } else { "NOT met" },
        if single_ratio >= 1.0 / 1.5 {
            "met"
        } else {
            "NOT met"
        },
    );
    println!("\n{table}\n{verdict}");

    if let Ok(out) = std::env::var("SKIFF_BENCH_OUT") {
        let etcd_version = std::process::Command::new("etcd")
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default();
        let section = format!(
            "## Store: embedded vs etcd\n\n\
             Command: `make bench` (runs `cargo bench -p skiff-control --bench store`).\n\
             Medians of {ROUNDS} rounds; each round: {SINGLE_WRITER_OPS} puts from 1 writer, \
             {MANY_WRITER_OPS} puts from {MANY_WRITERS} writers, {WATCH_SAMPLES} sequential puts \
             timed from the put call to the watcher receiving the event. Both stores fsync every \
             commit; both are driven through skiff's `Store` trait; etcd is Debian's \
             ({etcd_version}), single member, on loopback, data dir on the same disk.\n\n\
             {table}\n{verdict}\n"
        );
        write_section(&out, "store", &section);
        eprintln!("wrote the results to {out}");
    }
}

/// Creates `ops` fresh 1 KiB keys from `writers` concurrent tasks.
async fn puts_per_second(
    store: &Arc<dyn Store>,
    prefix: &str,
    writers: usize,
    ops: usize,
    value: &Bytes,
) -> f64 {
    let per_writer = ops / writers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    store
                        .create(&format!("{prefix}{w}/{i}"), value.clone(), None)
                        .await
                        .expect("put");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    (per_writer * writers) as f64 / started.elapsed().as_secs_f64()
}

/// Time from a put call to the watcher receiving its event, p50 and p99 in ms.
async fn watch_latency(store: &Arc<dyn Store>, prefix: &str, value: &Bytes) -> (f64, f64) {
    let mut watch = store.watch(prefix, 0).await.expect("watch");
    let mut latencies = Vec::with_capacity(WATCH_SAMPLES);
    for i in 0..WATCH_SAMPLES {
        let key = format!("{prefix}{i}");
        let started = Instant::now();
        let put = store.create(&key, value.clone(), None);
        let seen = async {
            loop {
                let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
                    .await
                    .expect("watch stalled")
                    .expect("watch ended")
                    .expect("watch failed");
                if event.kv.key == key {
                    return started.elapsed();
                }
            }
        };
        let (put, seen) = tokio::join!(put, seen);
        put.expect("put");
        latencies.push(seen.as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    (percentile(&latencies, 0.50), percentile(&latencies, 0.99))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Replaces (or appends) the section between `<!-- NAME:start -->` and
/// `<!-- NAME:end -->` in a markdown file.
fn write_section(path: &str, name: &str, body: &str) {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nNumbers from `make bench`, newest run of each benchmark.\n".into()
    });
    let block = format!("{start}\n{body}{end}");
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            format!("{}{block}{}", &existing[..s], &existing[e + end.len()..])
        }
        _ => format!("{}\n{block}\n", existing.trim_end()),
    };
    std::fs::write(path, updated).expect("write benchmark results");
}
