//! API benchmark: pod creates through the API server against raw store puts
//! of the same bytes, and watch fan-out to 1,000 watchers, same machine,
//! same run.
//!
//! The server runs in a child process (this binary re-executed, serving
//! with `control::server::start` as `skiff server --no-agent` does:
//! embedded store with fsync, HTTPS or `--insecure-http`), so that its CPU
//! time and memory are its own. It runs the API alone, without the
//! scheduler and controllers: what is measured is the API server, as
//! kube-apiserver is benchmarked (with them, the scheduler would write an
//! Unschedulable condition into every pod created without nodes, a second
//! write per create). Clients talk to it over loopback:
//!
//! 1. Pod creates/s from 1 and 64 concurrent kube-rs clients (one
//!    `kube::Client` per caller, built from the server's kubeconfig, warmed
//!    up before timing), over HTTPS and plain HTTP, against puts of the
//!    stored pod JSON into an embedded store of this process at the same
//!    concurrency; create latency p50/p99 at 64 clients; CPU per create.
//! 2. Watch fan-out: 1,000 pod watchers held open as raw HTTP streams; the
//!    server's RSS before and after opening them gives the memory per idle
//!    watcher; then a writer creates pods one at a time and each event's
//!    delivery latency (create call to a watcher reading it) is recorded
//!    for every watcher, with the server's CPU per delivery. Watchers hold
//!    one HTTP/1.1 connection each (as kube-rs does) over HTTPS and plain
//!    HTTP, or share HTTP/2 connections over HTTPS (as client-go does).
//!
//! Five rounds of creates and three of fan-out, medians reported;
//! throughput ratios are the medians of each round's own ratio. With
//! `SKIFF_BENCH_OUT=FILE` the table is also written into that markdown file
//! between markers. Run with
//! `make bench` (or `cargo bench -p skiff-control --bench api`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use skiff_control::server::{LocalAgent, ServerOptions, Transport};
use skiff_control::store::{EmbeddedConfig, EmbeddedStore, Store};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

#[path = "support/markdown.rs"]
mod markdown;
use markdown::write_section;

/// The allocator of the `skiff` binary, so the child server runs as it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rounds of creates: the machine's noise moves single rounds a lot.
const CREATE_ROUNDS: usize = 5;
const FANOUT_ROUNDS: usize = 3;
const SINGLE_CLIENT_CREATES: usize = 500;
const MANY_CLIENTS: usize = 64;
const MANY_CLIENT_CREATES: usize = 10_000;
const WATCHERS: usize = 1_000;
/// Watches multiplexed on one HTTP/2 connection (hyper's server allows 200).
const WATCHES_PER_H2_CONNECTION: usize = 100;
/// Pods created one at a time, each delivered to every watcher.
const FANOUT_EVENTS: usize = 100;
/// Watchers connecting at the same time.
const CONNECT_CONCURRENCY: usize = 32;
/// Setting this makes the binary serve as the child server, with state in
/// the directory it names.
const SERVE_ENV: &str = "SKIFF_BENCH_API_SERVE";
/// `https` or `http`, for the child server.
const TRANSPORT_ENV: &str = "SKIFF_BENCH_API_TRANSPORT";
/// mimalloc's delay (ms) before freed memory goes back to the OS.
const PURGE_ENV: &str = "MIMALLOC_PURGE_DELAY";
/// Bound on every wait, so that a stuck server fails the run.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match std::env::var_os(SERVE_ENV) {
        Some(data_dir) => runtime.block_on(serve_as_child(PathBuf::from(data_dir))),
        None => runtime.block_on(run()),
    }
}

/// The child: `skiff server --no-agent`'s API alone (no scheduler or
/// controllers) on a free loopback port; prints the
/// address, serves until stdin closes, then shuts down cleanly.
async fn serve_as_child(data_dir: PathBuf) {
    let transport = match std::env::var(TRANSPORT_ENV).as_deref() {
        Ok("http") => Transport::InsecureHttp,
        _ => Transport::Https,
    };
    let server = skiff_control::server::start(
        ServerOptions::default()
            .data_dir(data_dir)
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .transport(transport)
            .local_agent(LocalAgent::Disabled)
            .controllers(None),
    )
    .await
    .expect("start the server");
    println!("{}", server.local_addr());
    let _ = tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await;
    server.stop().await.expect("stop the server");
}

/// A server in a child process over a temporary data dir.
struct ChildServer {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    https: bool,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChildServer {
    async fn start(https: bool) -> Self {
        Self::start_with(https, &[]).await
    }

    /// A server with extra environment variables.
    async fn start_with(https: bool, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let data_dir = dir.path().join("data");
        let mut child = tokio::process::Command::new(std::env::current_exe().expect("own path"))
            .envs(env.iter().copied())
            .env(SERVE_ENV, &data_dir)
            .env(TRANSPORT_ENV, if https { "https" } else { "http" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the server process");
        let pid = child.id().expect("server pid");
        let mut stdout = BufReader::new(child.stdout.take().expect("server stdout"));
        let addr = tokio::time::timeout(STEP_TIMEOUT, async {
            let mut line = String::new();
            loop {
                line.clear();
                let read = stdout
                    .read_line(&mut line)
                    .await
                    .expect("read the server address");
                assert!(read > 0, "the server exited before printing its address");
                if let Ok(addr) = line.trim().parse::<SocketAddr>() {
                    return addr;
                }
            }
        })
        .await
        .expect("the server did not start in time");
        Self {
            child,
            pid,
            addr,
            https,
            data_dir,
            _dir: dir,
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    async fn client(&self) -> kube::Client {
        skiff_sdk::client::from_kubeconfig(&self.kubeconfig())
            .await
            .expect("client from the kubeconfig")
    }

    fn rss_kib(&self) -> f64 {
        rss_kib(&format!("/proc/{}/status", self.pid))
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    /// Closes stdin (the child's signal to shut down) and waits for it.
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        match tokio::time::timeout(STEP_TIMEOUT, self.child.wait()).await {
            Ok(status) => assert!(status.expect("wait").success(), "server exit"),
            Err(_) => {
                eprintln!("the server did not stop in time: killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}

fn rss_kib(status_path: &str) -> f64 {
    let status = std::fs::read_to_string(status_path).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// User + system CPU time of a process (`/proc/PID/stat`, USER_HZ = 100).
fn cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).expect("read /proc stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// One timed batch of creates or puts.
struct Batch {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU of the server (API) or of the store's process (raw), per op.
    cpu_us: f64,
    /// CPU of the clients' process per op (API only).
    client_cpu_us: f64,
}

/// Median of three rounds of everything the table shows.
#[derive(Default)]
struct Samples {
    values: std::collections::BTreeMap<String, Vec<f64>>,
}

impl Samples {
    fn push(&mut self, name: impl Into<String>, value: f64) {
        self.values.entry(name.into()).or_default().push(value);
    }

    fn median(&self, name: &str) -> f64 {
        let mut values = self.values.get(name).cloned().unwrap_or_default();
        assert!(!values.is_empty(), "no samples for {name}");
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }
}

async fn run() {
    check_open_files_limit();
    let mut samples = Samples::default();
    // `SKIFF_BENCH_API_PART=creates|fanout` runs one part and prints its
    // rounds only (for profiling); the table needs both.
    match std::env::var("SKIFF_BENCH_API_PART").as_deref() {
        Ok("creates") => {
            creates(&mut samples).await;
        }
        Ok("fanout") => fanout(&mut samples).await,
        _ => {
            let stored_bytes = creates(&mut samples).await;
            fanout(&mut samples).await;
            report(&samples, stored_bytes);
        }
    }
}

/// Part 1: pod creates through the API against raw store puts.
async fn creates(samples: &mut Samples) -> usize {
    let https = ChildServer::start(true).await;
    let http = ChildServer::start(false).await;
    let kube_clients = clients(&https, MANY_CLIENTS).await;
    let http_setup = http.client().await;
    let https_endpoint = Endpoint::new(&https, b"http/1.1");
    let http_endpoint = Endpoint::new(&http, b"http/1.1");

    // What a pod create stores, byte for byte, is what the raw store puts.
    let stored = stored_pod_json(&kube_clients[0]).await;
    let stored_bytes = stored.len();
    let raw_dir = tempfile::TempDir::new().expect("temp dir");
    let raw: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(EmbeddedConfig::new(raw_dir.path().join("raw.redb"))).expect("open"),
    );

    for round in 0..CREATE_ROUNDS {
        for (concurrency, total) in [
            (1, SINGLE_CLIENT_CREATES),
            (MANY_CLIENTS, MANY_CLIENT_CREATES),
        ] {
            let ns = format!("bench-{round}-{concurrency}");
            let puts = raw_puts(&raw, &ns, concurrency, total, &stored).await;
            create_namespace(&kube_clients[0], &ns).await;
            create_namespace(&http_setup, &ns).await;
            let over_https =
                lean_creates(&https, &https_endpoint, &ns, "https", concurrency, total).await;
            let over_http =
                lean_creates(&http, &http_endpoint, &ns, "http", concurrency, total).await;
            let with_kube =
                kube_creates(&https, &kube_clients, &ns, "kube", concurrency, total).await;
            eprintln!(
                "round {round} {concurrency:2} clients: raw {:7.0}/s (p99 {:.2} ms, {:.0} µs CPU), \
                 HTTPS {:7.0}/s (p50 {:.2} p99 {:.2} ms, server {:.0} µs + client {:.0} µs CPU), \
                 HTTP {:7.0}/s (p50 {:.2} p99 {:.2} ms, server {:.0} µs CPU), \
                 kube-rs HTTPS {:7.0}/s (p99 {:.2} ms, server {:.0} µs + client {:.0} µs CPU)",
                puts.per_second,
                puts.p99_ms,
                puts.cpu_us,
                over_https.per_second,
                over_https.p50_ms,
                over_https.p99_ms,
                over_https.cpu_us,
                over_https.client_cpu_us,
                over_http.per_second,
                over_http.p50_ms,
                over_http.p99_ms,
                over_http.cpu_us,
                with_kube.per_second,
                with_kube.p99_ms,
                with_kube.cpu_us,
                with_kube.client_cpu_us,
            );
            for (name, batch) in [
                ("raw", &puts),
                ("https", &over_https),
                ("http", &over_http),
                ("kube", &with_kube),
            ] {
                let n = concurrency;
                samples.push(format!("{name} {n}"), batch.per_second);
                samples.push(format!("{name} p50 {n}"), batch.p50_ms);
                samples.push(format!("{name} p99 {n}"), batch.p99_ms);
                samples.push(format!("{name} cpu {n}"), batch.cpu_us);
                samples.push(format!("{name} client cpu {n}"), batch.client_cpu_us);
                // Paired with the raw puts of the same round, run just
                // before: the ratio moves less with the machine's noise
                // than either rate.
                samples.push(
                    format!("{name} ratio {n}"),
                    batch.per_second / puts.per_second,
                );
            }
        }
    }
    raw.close().await.expect("close the raw store");
    drop(kube_clients);
    drop(http_setup);
    https.stop().await;
    http.stop().await;
    stored_bytes
}

async fn clients(server: &ChildServer, count: usize) -> Vec<kube::Client> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(server.client().await);
    }
    clients
}

/// A pod like a small real workload: labels, an annotation, one container
/// with args, env, a port, resources and a probe.
fn bench_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "hello-http",
                "app.kubernetes.io/part-of": "skiff-bench",
                "tier": "frontend",
                "version": "v1.4.2",
            },
            "annotations": {
                "skiff.dev/description": "a pod of the API benchmark, sized like a small real workload",
            },
        },
        "spec": {
            "runtimeClassName": "wasmtime",
            "nodeSelector": {"skiff.dev/wasm-enabled": "true"},
            "containers": [{
                "name": "app",
                "image": "ghcr.io/skiff-dev/examples/hello-http:0.1.0",
                "args": ["--listen", "0.0.0.0:8080", "--log-format", "json"],
                "env": [
                    {"name": "RUST_LOG", "value": "info"},
                    {"name": "GREETING", "value": "hello from skiff"},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                ],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "resources": {
                    "requests": {"cpu": "50m", "memory": "32Mi"},
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                },
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
            }],
        },
    }))
    .expect("a valid pod")
}

/// Creates one pod and reads it back raw: the stored JSON is the object
/// the server returns without its resourceVersion.
async fn stored_pod_json(client: &kube::Client) -> Bytes {
    create_namespace(client, "bench-sample").await;
    Api::<Pod>::namespaced(client.clone(), "bench-sample")
        .create(&PostParams::default(), &bench_pod("sample"))
        .await
        .expect("create the sample pod");
    let request = http::Request::get("/api/v1/namespaces/bench-sample/pods/sample")
        .body(Vec::new())
        .expect("request");
    let text = client
        .request_text(request)
        .await
        .expect("get the sample pod");
    let mut object: Value = serde_json::from_str(&text).expect("pod JSON");
    object["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("resourceVersion");
    Bytes::from(serde_json::to_vec(&object).expect("encode"))
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the namespace");
}

/// `total` pod creates in the namespace `ns` from `concurrency` kube-rs
/// clients, each warmed up (connected) before the clock starts; pods are
/// named `{prefix}-{client}-{i}`.
async fn kube_creates(
    server: &ChildServer,
    clients: &[kube::Client],
    ns: &str,
    prefix: &str,
    concurrency: usize,
    total: usize,
) -> Batch {
    let clients = &clients[..concurrency];
    futures::future::join_all(clients.iter().map(|c| c.apiserver_version()))
        .await
        .into_iter()
        .for_each(|r| {
            r.expect("warm-up request");
        });
    let per_client = total / concurrency;
    let server_cpu = server.cpu_seconds();
    let client_cpu = cpu_seconds("/proc/self/stat");
    let started = Instant::now();
    let tasks: Vec<JoinHandle<Vec<f64>>> = clients
        .iter()
        .enumerate()
        .map(|(c, client)| {
            let pods = Api::<Pod>::namespaced(client.clone(), ns);
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let params = PostParams::default();
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let pod = bench_pod(&format!("{prefix}-{c}-{i}"));
                    let sent = Instant::now();
                    tokio::time::timeout(STEP_TIMEOUT, pods.create(&params, &pod))
                        .await
                        .expect("create timed out")
                        .expect("create");
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    batch(server, server_cpu, client_cpu, started, tasks).await
}

/// `total` pod creates in the namespace `ns` from `concurrency` lean
/// clients: one HTTP/1.1 keep-alive connection each, connected before the
/// clock starts, sending the pod JSON as kubectl would and reading the
/// whole response, with no client library around it (what a load
/// generator measures: the server, not the client's own costs).
async fn lean_creates(
    server: &ChildServer,
    endpoint: &Endpoint,
    ns: &str,
    prefix: &str,
    concurrency: usize,
    total: usize,
) -> Batch {
    let template = serde_json::to_string(&bench_pod("NAME")).expect("encode the pod");
    let path = format!("/api/v1/namespaces/{ns}/pods");
    let mut connection_tasks = Vec::new();
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        senders.push(endpoint.http1::<Full<Bytes>>(&mut connection_tasks).await);
    }
    let per_client = total / concurrency;
    let server_cpu = server.cpu_seconds();
    let client_cpu = cpu_seconds("/proc/self/stat");
    let started = Instant::now();
    let tasks: Vec<JoinHandle<Vec<f64>>> = senders
        .into_iter()
        .enumerate()
        .map(|(c, mut sender)| {
            let (template, path, prefix) = (template.clone(), path.clone(), prefix.to_owned());
            let (host, auth) = (
                endpoint.addr.to_string(),
                format!("Bearer {}", endpoint.token),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let body = template.replace(
                        "\"name\":\"NAME\"",
                        &format!("\"name\":\"{prefix}-{c}-{i}\""),
                    );
                    let request = http::Request::post(&path)
                        .header(http::header::HOST, &host)
                        .header(http::header::AUTHORIZATION, &auth)
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .header(http::header::ACCEPT, "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .expect("create request");
                    let sent = Instant::now();
                    let response = tokio::time::timeout(STEP_TIMEOUT, async {
                        sender.ready().await.expect("connection ready");
                        let response = sender.send_request(request).await.expect("create");
                        let status = response.status();
                        let body = response.into_body().collect().await.expect("body");
                        (status, body.to_bytes())
                    })
                    .await
                    .expect("create timed out");
                    assert_eq!(
                        response.0,
                        http::StatusCode::CREATED,
                        "create: {}",
                        String::from_utf8_lossy(&response.1)
                    );
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let result = batch(server, server_cpu, client_cpu, started, tasks).await;
    for task in connection_tasks {
        task.abort();
    }
    result
}

/// The numbers of a batch of timed client tasks.
async fn batch(
    server: &ChildServer,
    server_cpu: f64,
    client_cpu: f64,
    started: Instant,
    tasks: Vec<JoinHandle<Vec<f64>>>,
) -> Batch {
    let latencies = join_latencies(tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    let ops = latencies.len() as f64;
    Batch {
        per_second: ops / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_us: (server.cpu_seconds() - server_cpu) / ops * 1e6,
        client_cpu_us: (cpu_seconds("/proc/self/stat") - client_cpu) / ops * 1e6,
    }
}

/// `total` creates of `value` under fresh pod keys of `ns` from
/// `concurrency` writers, through the `Store` trait.
async fn raw_puts(
    store: &Arc<dyn Store>,
    ns: &str,
    concurrency: usize,
    total: usize,
    value: &Bytes,
) -> Batch {
    let per_writer = total / concurrency;
    let cpu = cpu_seconds("/proc/self/stat");
    let started = Instant::now();
    let tasks: Vec<JoinHandle<Vec<f64>>> = (0..concurrency)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            let prefix = format!("/registry/pods/{ns}/pod-{w}-");
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let sent = Instant::now();
                    store
                        .create(&format!("{prefix}{i}"), value.clone(), None)
                        .await
                        .expect("put");
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let latencies = join_latencies(tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    let ops = latencies.len() as f64;
    Batch {
        per_second: ops / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_us: (cpu_seconds("/proc/self/stat") - cpu) / ops * 1e6,
        client_cpu_us: 0.0,
    }
}

async fn join_latencies(tasks: Vec<JoinHandle<Vec<f64>>>) -> Vec<f64> {
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// How the watchers reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WatchTransport {
    /// HTTPS, one HTTP/1.1 connection per watch (kube-rs, which speaks only
    /// HTTP/1.1, holds each watch on its own connection).
    Https1,
    /// Plain HTTP (`--insecure-http`), one connection per watch.
    Http1,
    /// HTTPS, HTTP/2, watches multiplexed (client-go's way).
    Https2,
}

impl WatchTransport {
    const ALL: [Self; 3] = [Self::Https1, Self::Http1, Self::Https2];

    fn key(self) -> &'static str {
        match self {
            Self::Https1 => "https1",
            Self::Http1 => "http1",
            Self::Https2 => "https2",
        }
    }
}

/// Part 2: memory per idle watcher and delivery latency to all of them,
/// a fresh server per round and transport.
async fn fanout(samples: &mut Samples) {
    for round in 0..FANOUT_ROUNDS {
        for transport in WatchTransport::ALL {
            let result = fanout_round(transport).await;
            eprintln!(
                "round {round} fan-out {transport:?}: {:.2} KiB per idle watcher, \
                 delivery to {WATCHERS} watchers p50 {:.2} ms p99 {:.2} ms, \
                 server CPU {:.1} µs per delivery",
                result.kib_per_watcher, result.p50_ms, result.p99_ms, result.cpu_us_per_delivery,
            );
            let key = transport.key();
            samples.push(format!("{key} kib"), result.kib_per_watcher);
            samples.push(format!("{key} delivery p50"), result.p50_ms);
            samples.push(format!("{key} delivery p99"), result.p99_ms);
            samples.push(format!("{key} delivery cpu"), result.cpu_us_per_delivery);
        }
    }
}

/// Where and how watchers connect.
#[derive(Clone)]
struct Endpoint {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
    token: String,
}

impl Endpoint {
    fn new(server: &ChildServer, alpn: &[u8]) -> Self {
        let tls = server.https.then(|| {
            let ca = CertificateDer::from_pem_file(server.data_dir.join("tls/ca.crt"))
                .expect("the cluster CA");
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).expect("add the CA");
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            TlsConnector::from(Arc::new(config))
        });
        let token = std::fs::read_to_string(server.data_dir.join("token"))
            .expect("the admin token")
            .trim()
            .to_owned();
        Self {
            addr: server.addr,
            tls,
            token,
        }
    }

    fn watch_request(&self, absolute: bool, resource_version: &str) -> http::Request<Empty<Bytes>> {
        let path =
            format!("/api/v1/namespaces/fanout/pods?watch=true&resourceVersion={resource_version}");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let builder = if absolute {
            http::Request::get(format!("{scheme}://{}{path}", self.addr))
        } else {
            http::Request::get(path).header(http::header::HOST, self.addr.to_string())
        };
        builder
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .body(Empty::new())
            .expect("watch request")
    }

    async fn tcp(&self) -> TcpStream {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        tcp
    }

    /// An HTTP/1.1 connection; its driver task is pushed to `tasks`.
    async fn http1<B>(&self, tasks: &mut Vec<JoinHandle<()>>) -> http1::SendRequest<B>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tcp = self.tcp().await;
        match &self.tls {
            Some(tls) => {
                let stream = tls
                    .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
                    .await
                    .expect("TLS handshake");
                let (sender, connection) = http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("HTTP/1.1");
                tasks.push(tokio::spawn(async move {
                    let _ = connection.await;
                }));
                sender
            }
            None => {
                let (sender, connection) =
                    http1::handshake(TokioIo::new(tcp)).await.expect("HTTP/1.1");
                tasks.push(tokio::spawn(async move {
                    let _ = connection.await;
                }));
                sender
            }
        }
    }

    /// An HTTP/2 connection over TLS; its driver task is pushed to `tasks`.
    async fn http2(&self, tasks: &mut Vec<JoinHandle<()>>) -> http2::SendRequest<Empty<Bytes>> {
        let tls = self.tls.as_ref().expect("h2 is negotiated over TLS");
        let stream = tls
            .connect(
                ServerName::try_from("127.0.0.1").expect("name"),
                self.tcp().await,
            )
            .await
            .expect("TLS handshake");
        assert_eq!(
            stream.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "ALPN h2"
        );
        let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2");
        tasks.push(tokio::spawn(async move {
            let _ = connection.await;
        }));
        sender
    }
}

/// Pod names in the fan-out namespace carry their event index.
const FANOUT_NAME: &str = "fanout-";

/// Reads a watch's events; for each pod event, reports its index and how
/// long after the create call it arrived.
async fn read_events(
    mut body: hyper::body::Incoming,
    sent_at: Arc<Vec<OnceLock<Instant>>>,
    seen: mpsc::UnboundedSender<(usize, Duration)>,
) {
    let needle = format!("\"name\":\"{FANOUT_NAME}");
    let mut pending: Vec<u8> = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Some(index) = event_index(&line, needle.as_bytes()) else {
                continue;
            };
            if let Some(sent) = sent_at.get(index).and_then(OnceLock::get) {
                let _ = seen.send((index, sent.elapsed()));
            }
        }
    }
}

fn event_index(line: &[u8], needle: &[u8]) -> Option<usize> {
    let at = line.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let digits = &line[at..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..len]).ok()?.parse().ok()
}

/// One watcher's response, after its headers arrived.
async fn expect_ok(
    response: Result<http::Response<hyper::body::Incoming>, hyper::Error>,
) -> hyper::body::Incoming {
    let response = response.expect("watch request");
    assert_eq!(response.status(), http::StatusCode::OK, "watch status");
    response.into_body()
}

/// What one round of part 2 measured.
struct FanOut {
    kib_per_watcher: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Server CPU over the delivery phase per event per watcher.
    cpu_us_per_delivery: f64,
}

/// One round of part 2 over a fresh server.
async fn fanout_round(transport: WatchTransport) -> FanOut {
    // mimalloc returns freed pages to the OS only after a delay, and only
    // when it allocates again; without a delay, RSS growth is the live
    // memory of the watchers rather than what set-up freed.
    let server =
        ChildServer::start_with(transport != WatchTransport::Http1, &[(PURGE_ENV, "0")]).await;
    let client = server.client().await;
    create_namespace(&client, "fanout").await;
    let pods = Api::<Pod>::namespaced(client.clone(), "fanout");
    let alpn: &[u8] = if transport == WatchTransport::Https2 {
        b"h2"
    } else {
        b"http/1.1"
    };
    let endpoint = Endpoint::new(&server, alpn);
    let sent_at: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..=FANOUT_EVENTS).map(|_| OnceLock::new()).collect());
    let (seen, mut receipts) = mpsc::unbounded_channel();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut h2_senders: Vec<http2::SendRequest<Empty<Bytes>>> = Vec::new();

    // The first watcher starts the pods' watch cache; one event warms the
    // path. Later watchers start after it, so that they get no initial
    // events.
    let first = match transport {
        WatchTransport::Https2 => {
            let mut sender = endpoint.http2(&mut tasks).await;
            let body = expect_ok(sender.send_request(endpoint.watch_request(true, "")).await).await;
            h2_senders.push(sender);
            body
        }
        _ => {
            let mut sender = endpoint.http1(&mut tasks).await;
            expect_ok(sender.send_request(endpoint.watch_request(false, "")).await).await
        }
    };
    tasks.push(tokio::spawn(read_events(
        first,
        sent_at.clone(),
        seen.clone(),
    )));
    sent_at[0].set(Instant::now()).expect("fresh");
    let warm = pods
        .create(
            &PostParams::default(),
            &bench_pod(&format!("{FANOUT_NAME}0")),
        )
        .await
        .expect("create the warm-up pod");
    let (index, _) = tokio::time::timeout(STEP_TIMEOUT, receipts.recv())
        .await
        .expect("the first watcher got nothing")
        .expect("receipts");
    assert_eq!(index, 0);
    let after = warm.metadata.resource_version.expect("a resourceVersion");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss_kib();
    let others = WATCHERS - 1;
    match transport {
        WatchTransport::Https2 => {
            // The first connection carries the first watch and more.
            let connections = WATCHERS.div_ceil(WATCHES_PER_H2_CONNECTION);
            for _ in 1..connections {
                h2_senders.push(endpoint.http2(&mut tasks).await);
            }
            let requests = (1..WATCHERS).map(|i| {
                let mut sender = h2_senders[i / WATCHES_PER_H2_CONNECTION].clone();
                let request = endpoint.watch_request(true, &after);
                async move { expect_ok(sender.send_request(request).await).await }
            });
            let bodies: Vec<_> = tokio::time::timeout(
                STEP_TIMEOUT,
                futures::stream::iter(requests)
                    .buffer_unordered(CONNECT_CONCURRENCY)
                    .collect::<Vec<_>>(),
            )
            .await
            .expect("opening the watchers timed out");
            for body in bodies {
                tasks.push(tokio::spawn(read_events(
                    body,
                    sent_at.clone(),
                    seen.clone(),
                )));
            }
        }
        _ => {
            let opens = (0..others).map(|_| {
                let endpoint = endpoint.clone();
                let after = after.clone();
                async move {
                    let mut tasks = Vec::new();
                    let mut sender = endpoint.http1(&mut tasks).await;
                    let body = expect_ok(
                        sender
                            .send_request(endpoint.watch_request(false, &after))
                            .await,
                    )
                    .await;
                    (tasks, body)
                }
            });
            let opened: Vec<_> = tokio::time::timeout(
                STEP_TIMEOUT,
                futures::stream::iter(opens)
                    .buffer_unordered(CONNECT_CONCURRENCY)
                    .collect::<Vec<_>>(),
            )
            .await
            .expect("opening the watchers timed out");
            for (connection_tasks, body) in opened {
                tasks.extend(connection_tasks);
                tasks.push(tokio::spawn(read_events(
                    body,
                    sent_at.clone(),
                    seen.clone(),
                )));
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = server.rss_kib();
    let kib_per_watcher = (rss_after - rss_before) / others as f64;

    // Delivery: one create at a time, each awaited at every watcher.
    let mut latencies = Vec::with_capacity(FANOUT_EVENTS * WATCHERS);
    let cpu_before = server.cpu_seconds();
    for index in 1..=FANOUT_EVENTS {
        sent_at[index].set(Instant::now()).expect("fresh");
        pods.create(
            &PostParams::default(),
            &bench_pod(&format!("{FANOUT_NAME}{index}")),
        )
        .await
        .expect("create");
        let mut received = 0;
        while received < WATCHERS {
            let (seen_index, latency) = tokio::time::timeout(STEP_TIMEOUT, receipts.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("event {index} reached only {received} of {WATCHERS} watchers")
                })
                .expect("receipts");
            if seen_index == index {
                received += 1;
                latencies.push(latency.as_secs_f64() * 1000.0);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let cpu_us_per_delivery =
        (server.cpu_seconds() - cpu_before) / (FANOUT_EVENTS * WATCHERS) as f64 * 1e6;

    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    drop(h2_senders);
    drop(pods);
    drop(client);
    server.stop().await;
    FanOut {
        kib_per_watcher,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_us_per_delivery,
    }
}

/// 1,000 watchers need about as many descriptors in each process.
fn check_open_files_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft: Option<usize> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    if let Some(soft) = soft {
        assert!(
            soft >= WATCHERS + 200,
            "the open files limit ({soft}) is too low for {WATCHERS} watchers: run `ulimit -n 4096` first"
        );
    }
}

fn report(samples: &Samples, stored_bytes: usize) {
    let m = |name: &str| samples.median(name);
    // (measure, skiff, peer, samples of the ratio); the ratio is
    // skiff / peer unless the rounds measured their own.
    let rows: Vec<(String, f64, Option<f64>, Option<&str>)> = vec![
        (
            "pod creates/s, 1 client, HTTPS (peer: raw store puts)".into(),
            m("https 1"),
            Some(m("raw 1")),
            Some("https ratio 1"),
        ),
        (
            "pod creates/s, 64 clients, HTTPS (peer: raw store puts)".into(),
            m("https 64"),
            Some(m("raw 64")),
            Some("https ratio 64"),
        ),
        (
            "pod creates/s, 64 clients, plain HTTP (peer: raw store puts)".into(),
            m("http 64"),
            Some(m("raw 64")),
            Some("http ratio 64"),
        ),
        (
            "pod creates/s, 64 kube-rs clients, HTTPS (peer: raw store puts)".into(),
            m("kube 64"),
            Some(m("raw 64")),
            Some("kube ratio 64"),
        ),
        (
            "create latency p50 at 64 clients, HTTPS, ms (peer: raw put)".into(),
            m("https p50 64"),
            Some(m("raw p50 64")),
            None,
        ),
        (
            "create latency p99 at 64 clients, HTTPS, ms (peer: raw put)".into(),
            m("https p99 64"),
            Some(m("raw p99 64")),
            None,
        ),
        (
            "create latency p99 at 64 kube-rs clients, HTTPS, ms (peer: raw put)".into(),
            m("kube p99 64"),
            Some(m("raw p99 64")),
            None,
        ),
        (
            "server CPU per create at 64 clients, HTTPS, µs (peer: raw put)".into(),
            m("https cpu 64"),
            Some(m("raw cpu 64")),
            None,
        ),
        (
            "server CPU per create at 64 clients, plain HTTP, µs (peer: raw put)".into(),
            m("http cpu 64"),
            Some(m("raw cpu 64")),
            None,
        ),
        (
            "client CPU per create at 64 clients, HTTPS, lean / kube-rs, µs".into(),
            m("https client cpu 64"),
            Some(m("kube client cpu 64")),
            None,
        ),
        (
            "server memory per idle watcher, HTTPS HTTP/1.1, KiB (peer: goal)".to_string(),
            m("https1 kib"),
            Some(4.0),
            None,
        ),
        (
            "server memory per idle watcher, plain HTTP/1.1, KiB (peer: goal)".to_string(),
            m("http1 kib"),
            Some(4.0),
            None,
        ),
        (
            format!(
                "server memory per idle watcher, HTTPS h2 ({WATCHES_PER_H2_CONNECTION}/connection), KiB (peer: goal)"
            ),
            m("https2 kib"),
            Some(4.0),
            None,
        ),
        (
            format!("watch delivery p50 to {WATCHERS} watchers, HTTPS HTTP/1.1, ms"),
            m("https1 delivery p50"),
            None,
            None,
        ),
        (
            format!("watch delivery p99 to {WATCHERS} watchers, HTTPS HTTP/1.1, ms"),
            m("https1 delivery p99"),
            None,
            None,
        ),
        (
            format!("watch delivery p99 to {WATCHERS} watchers, plain HTTP/1.1, ms"),
            m("http1 delivery p99"),
            None,
            None,
        ),
        (
            format!("watch delivery p99 to {WATCHERS} watchers, HTTPS h2, ms"),
            m("https2 delivery p99"),
            None,
            None,
        ),
        (
            "server CPU per event per watcher, HTTPS HTTP/1.1, µs".into(),
            m("https1 delivery cpu"),
            None,
            None,
        ),
        (
            "server CPU per event per watcher, plain HTTP/1.1, µs".into(),
            m("http1 delivery cpu"),
            None,
            None,
        ),
        (
            "server CPU per event per watcher, HTTPS h2, µs".into(),
            m("https2 delivery cpu"),
            None,
            None,
        ),
    ];
    let mut table = String::from("| measure | skiff | peer | skiff/peer |\n|---|---:|---:|---:|\n");
    for (name, skiff, peer, paired) in &rows {
        match peer {
            Some(peer) => table.push_str(&format!(
                "| {name} | {skiff:.2} | {peer:.2} | {:.2}× |\n",
                paired.map_or(skiff / peer, m)
            )),
            None => table.push_str(&format!("| {name} | {skiff:.2} | — | — |\n")),
        }
    }
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let single_ratio = m("https ratio 1");
    let many_ratio = m("https ratio 64");
    let p99 = m("https p99 64");
    let kib_h2 = m("https2 kib");
    let kib_h1 = m("https1 kib");
    let verdict = format!(
        "Goals (HTTPS, as users run it): API ≥ 50% of raw store throughput at 1 client: {} ({:.0}%), \
         at 64 clients: {} ({:.0}%); p99 create < 10 ms at 64 clients: {} ({p99:.2} ms); \
         < 4 KiB server memory per idle watcher: with watches multiplexed over HTTP/2 \
         (client-go's way) {} ({kib_h2:.2} KiB), with one HTTP/1.1 connection per watch \
         (kube-rs's way) {} ({kib_h1:.2} KiB, mostly the connection's own buffers).",
        met(single_ratio >= 0.5),
        single_ratio * 100.0,
        met(many_ratio >= 0.5),
        many_ratio * 100.0,
        met(p99 < 10.0),
        met(kib_h2 < 4.0),
        met(kib_h1 < 4.0),
    );
    println!("\n{table}\n{verdict}");

    if let Ok(out) = std::env::var("SKIFF_BENCH_OUT") {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_default();
        let section = format!(
            "## API: pod creates and watch fan-out\n\n\
             Command: `make bench` (runs `cargo bench -p skiff-control --bench api`).\n\
             Medians of {CREATE_ROUNDS} rounds of creates and {FANOUT_ROUNDS} of fan-out on {cpus} CPUs ({model}); \
             clients and server share them. Throughput ratios are the medians of each round's own \
             ratio (the API's rate over the raw store's, measured back to back in that round). \
             The server runs in a child process as `skiff server --no-agent` does \
             (`control::server::start`, embedded store, fsync on every commit) on loopback, \
             the API alone: without the scheduler and controllers (which would write an \
             Unschedulable condition into each pod created with no node to run it). \
             Creates: lean clients (one HTTP/1.1 keep-alive connection each, the pod JSON sent \
             as kubectl sends it, the whole response read; no client library, so that the \
             clients' own CPU leaves the server the cores), and for reference kube-rs clients \
             built from the server's kubeconfig, one per concurrent caller; all connected before \
             timing; each round creates {SINGLE_CLIENT_CREATES} pods from 1 client and {MANY_CLIENT_CREATES} from \
             {MANY_CLIENTS} clients in fresh namespaces. The peer is the same stored pod JSON \
             ({stored_bytes} bytes) created under fresh keys in an embedded store of the \
             benchmark process through the `Store` trait, at the same concurrency. CPU per create \
             is the process's user+system time over the batch. Fan-out: a fresh server per round \
             and transport; {WATCHERS} pod watches held open as raw HTTP streams; memory per idle \
             watcher is the server's VmRSS growth while opening all but the first, divided by \
             their number (the fan-out servers run with `MIMALLOC_PURGE_DELAY=0`, so that RSS \
             is live memory, not pages mimalloc keeps after set-up freed them; with the default \
             delay the h2 figure read 6.2 KiB on this machine); delivery is timed from the create call to each watcher reading the \
             event, for {FANOUT_EVENTS} pods created one at a time, each awaited at every \
             watcher before the next; server CPU per delivery is its CPU time over that phase \
             divided by events × watchers.\n\n\
             {table}\n{verdict}\n"
        );
        write_section(&out, "api", &section);
        eprintln!("wrote the results to {out}");
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}
