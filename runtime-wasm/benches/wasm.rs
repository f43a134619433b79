//! Wasm runtime benchmark: the hello route of the test guests' HTTP
//! component served by `WasmRuntime` against the same component served by a
//! plain wasmtime + hyper harness (`support/raw.rs`: same engine
//! configuration, per-request store and `ProxyPre::instantiate_async`),
//! same machine, same run, same load generator (`support/load.rs`).
//!
//! 1. Latency: sequential GET `/` on one keep-alive connection, every
//!    request a fresh instance; p50 and p99 of each.
//! 2. Throughput: requests/s from 16 and 64 keep-alive connections, each
//!    issuing sequential GET `/` for a fixed time.
//! 3. Cold start: `create_container` → `start_container` → first 200 from
//!    an artifact pulled (and compiled) once before, each a new container on
//!    a new port, removed after; the peer's is `ProxyPre` + bind + first
//!    200.
//! 4. Memory: VmRSS growth per idle deployed HTTP container (each on its
//!    own port, having served one request), and per in-flight instance
//!    (concurrent `/sleep/MS` requests against one container), each measured
//!    in a fresh child process of this binary.
//!
//! Runtime and raw runs alternate, rounds are repeated and medians reported,
//! since the machine is noisy. Images come from a real registry (Debian's
//! `docker-registry` on loopback, `make deps`). `SKIFF_BENCH_QUICK=1` runs a
//! small version of everything (a smoke run); `SKIFF_BENCH_WASM_PART=latency|
//! throughput|cold|memory` runs one part and prints its rounds (for
//! profiling). With `SKIFF_BENCH_OUT=FILE` the table is also written into
//! that markdown file between markers. Run with `make bench` (or
//! `cargo bench -p skiff-runtime-wasm --bench wasm`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use skiff_runtime_wasm::{WasmRuntime, WasmRuntimeOptions};
use skiff_sdk::runtime::{
    ContainerConfig, ContainerId, ImageSpec, PullOptions, Runtime, RuntimeError, SandboxConfig,
    SandboxId, SandboxMetadata,
};

#[path = "support/load.rs"]
mod load;
#[path = "../../control/benches/support/markdown.rs"]
mod markdown;
#[path = "support/raw.rs"]
mod raw;
#[path = "../tests/all/support/registry.rs"]
mod registry;

use load::{Connection, free_port};
use markdown::write_section;
use raw::{RawHarness, RawServer};
use registry::{TestRegistry, chain};

/// The allocator of the `skiff` binary, whose agent hosts the runtime.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs one part only.
const PART_ENV: &str = "SKIFF_BENCH_WASM_PART";
/// Makes the binary a memory-measuring child: the value names the
/// measurement ([`MemoryMeasure`]).
const MEMORY_CHILD_ENV: &str = "SKIFF_BENCH_WASM_MEMORY_CHILD";
/// The image reference the memory child pulls.
const IMAGE_ENV: &str = "SKIFF_BENCH_WASM_IMAGE";
/// What the memory child prints before its result (KiB per unit).
const RESULT_PREFIX: &str = "kib-per-unit ";
/// mimalloc's delay (ms) before freed memory goes back to the OS; 0 in the
/// memory children, so that RSS is live memory.
const PURGE_ENV: &str = "MIMALLOC_PURGE_DELAY";
/// Whether mimalloc asks for transparent huge pages; off in the memory
/// children: with them, RSS jumped and dropped by megabytes as the kernel
/// built and split huge pages, moving the figures by several KiB per unit
/// either way.
const THP_ENV: &str = "MIMALLOC_ALLOW_THP";
/// How long a memory child lets its set-up settle before reading RSS.
const SETTLE: Duration = Duration::from_millis(400);
/// Bound on a memory child.
const CHILD_TIMEOUT: Duration = Duration::from_secs(600);
/// The hello route's repository in the test registry.
const REPOSITORY_TAG: &str = "bench/hello-http:v1";
/// The runtime's goals (the words).
const LATENCY_GOAL: f64 = 1.2;
const THROUGHPUT_GOAL: f64 = 0.9;
const COLD_P50_GOAL_MS: f64 = 5.0;
const COLD_P99_GOAL_MS: f64 = 20.0;

/// How much of everything to do.
#[derive(Clone, Copy, Debug)]
struct Scale {
    rounds: usize,
    latency_warmup: usize,
    latency_requests: usize,
    throughput_duration: Duration,
    concurrencies: [usize; 2],
    cold_starts: usize,
    idle_containers: usize,
    in_flight: usize,
    sleep_ms: u64,
}

impl Scale {
    fn from_env() -> Scale {
        if std::env::var_os("SKIFF_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0") {
            Scale {
                rounds: 1,
                latency_warmup: 20,
                latency_requests: 200,
                throughput_duration: Duration::from_millis(300),
                concurrencies: [16, 64],
                cold_starts: 20,
                idle_containers: 20,
                in_flight: 20,
                sleep_ms: 1000,
            }
        } else {
            Scale {
                rounds: 3,
                latency_warmup: 200,
                latency_requests: 2000,
                throughput_duration: Duration::from_secs(3),
                concurrencies: [16, 64],
                cold_starts: 200,
                idle_containers: 500,
                in_flight: 200,
                sleep_ms: 2000,
            }
        }
    }
}

impl Scale {
    /// Idle deployments made before the baseline is read: the first ones
    /// pay for one-time set-up (the artifact's linking, tables that grow,
    /// the allocator's first pages), and RSS moves by a megabyte or two
    /// on its own early on.
    fn idle_warmup(&self) -> usize {
        (self.idle_containers / 5).max(1)
    }
}

/// Which of the two servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    Runtime,
    Raw,
}

impl Peer {
    fn as_str(self) -> &'static str {
        match self {
            Peer::Runtime => "runtime",
            Peer::Raw => "raw",
        }
    }

    /// Where the peer's value goes in a pair `[runtime, raw]`.
    fn index(self) -> usize {
        match self {
            Peer::Runtime => 0,
            Peer::Raw => 1,
        }
    }

    /// Both, the runtime first in even rounds and the raw harness first in
    /// odd ones.
    fn alternating(round: usize) -> [Peer; 2] {
        if round.is_multiple_of(2) {
            [Peer::Runtime, Peer::Raw]
        } else {
            [Peer::Raw, Peer::Runtime]
        }
    }
}

/// The memory measurements, each made in a child process of its own.
#[derive(Clone, Copy, Debug)]
enum MemoryMeasure {
    Idle(Peer),
    InFlight(Peer),
}

impl MemoryMeasure {
    const ALL: [MemoryMeasure; 4] = [
        MemoryMeasure::Idle(Peer::Runtime),
        MemoryMeasure::Idle(Peer::Raw),
        MemoryMeasure::InFlight(Peer::Runtime),
        MemoryMeasure::InFlight(Peer::Raw),
    ];

    fn name(self) -> String {
        match self {
            MemoryMeasure::Idle(peer) => format!("{} idle", peer.as_str()),
            MemoryMeasure::InFlight(peer) => format!("{} in-flight", peer.as_str()),
        }
    }

    fn parse(name: &str) -> MemoryMeasure {
        MemoryMeasure::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("{MEMORY_CHILD_ENV}: unknown measure {name:?}"))
    }
}

/// Every sample of a run, by name; the table shows medians.
#[derive(Default)]
struct Samples {
    values: BTreeMap<String, Vec<f64>>,
}

impl Samples {
    fn push(&mut self, name: impl Into<String>, value: f64) {
        self.values.entry(name.into()).or_default().push(value);
    }

    /// A measure of both peers from the same round, and their ratio: the
    /// median of per-round ratios is what the table reports, since runs
    /// paired in time share the machine's noise.
    fn push_paired(&mut self, name: &str, [runtime, raw]: [f64; 2]) {
        self.push(format!("runtime {name}"), runtime);
        self.push(format!("raw {name}"), raw);
        self.push(format!("ratio {name}"), runtime / raw);
    }

    fn median(&self, name: &str) -> f64 {
        let mut values = self.values.get(name).cloned().unwrap_or_default();
        assert!(!values.is_empty(), "no samples for {name}");
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }
}

fn main() {
    let scale = Scale::from_env();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    match std::env::var(MEMORY_CHILD_ENV) {
        Ok(measure) => {
            // Idle blocking threads (the compile's, the pull's) end before
            // the baseline is read, rather than 10 s later, in the middle
            // of the measurement, taking their stacks out of RSS.
            builder.thread_keep_alive(SETTLE / 4);
            let runtime = builder.build().expect("tokio runtime");
            let kib = runtime.block_on(memory_child(MemoryMeasure::parse(&measure), scale));
            println!("{RESULT_PREFIX}{kib}");
        }
        Err(_) => {
            let runtime = builder.build().expect("tokio runtime");
            runtime.block_on(run(scale));
        }
    }
}

async fn run(scale: Scale) {
    check_open_files_limit(scale);
    let registry = TestRegistry::start().await;
    let reference = registry
        .push(
            REPOSITORY_TAG,
            &skiff_test_guests::bytes(skiff_test_guests::HTTP),
        )
        .await;
    let mut samples = Samples::default();
    let part = std::env::var(PART_ENV).ok();
    let wants = |name: &str| part.as_deref().is_none_or(|p| p == name);

    if wants("latency") || wants("throughput") || wants("cold") {
        let node = Node::open(&reference, |options| options).await;
        let raw = RawHarness::new(skiff_test_guests::HTTP, &node.options);
        let (_container, runtime_address) = node.deploy("served").await;
        let raw_address = loopback(free_port());
        let _raw_server = RawHarness::serve(raw.pre(), raw_address).expect("serve the raw harness");
        let address = |peer| match peer {
            Peer::Runtime => runtime_address,
            Peer::Raw => raw_address,
        };
        if wants("latency") {
            latency(&mut samples, scale, address).await;
        }
        if wants("throughput") {
            throughput(&mut samples, scale, address).await;
        }
        if wants("cold") {
            cold_starts(&mut samples, scale, &node, &raw).await;
        }
    }
    if wants("memory") {
        memory(&mut samples, scale, &reference).await;
    }
    if part.is_none() {
        report(&samples, scale);
    }
}

/// Part 1: sequential requests on one connection.
async fn latency(samples: &mut Samples, scale: Scale, address: impl Fn(Peer) -> SocketAddr) {
    for round in 0..scale.rounds {
        let mut p50s = [0.0; 2];
        let mut p99s = [0.0; 2];
        for peer in Peer::alternating(round) {
            let mut latencies = load::sequential_latencies(
                address(peer),
                scale.latency_warmup,
                scale.latency_requests,
            )
            .await;
            latencies.sort_by(f64::total_cmp);
            let p50 = percentile(&latencies, 0.5) * 1e6;
            let p99 = percentile(&latencies, 0.99) * 1e6;
            eprintln!(
                "round {round} latency {:7}: p50 {p50:8.1} µs, p99 {p99:8.1} µs",
                peer.as_str()
            );
            p50s[peer.index()] = p50;
            p99s[peer.index()] = p99;
        }
        samples.push_paired("latency p50", p50s);
        samples.push_paired("latency p99", p99s);
    }
}

/// Part 2: requests/s at two concurrencies, with the process's CPU time per
/// request (servers and load generator together).
async fn throughput(samples: &mut Samples, scale: Scale, address: impl Fn(Peer) -> SocketAddr) {
    for round in 0..scale.rounds {
        for connections in scale.concurrencies {
            let mut rates = [0.0; 2];
            let mut cpus = [0.0; 2];
            for peer in Peer::alternating(round) {
                let cpu_before = cpu_seconds();
                let run =
                    load::throughput(address(peer), connections, scale.throughput_duration).await;
                let cpu_us = (cpu_seconds() - cpu_before) / run.requests as f64 * 1e6;
                eprintln!(
                    "round {round} throughput {:7} {connections:2} connections: {:8.0} requests/s \
                     ({} requests, {cpu_us:.0} µs CPU each)",
                    peer.as_str(),
                    run.per_second(),
                    run.requests
                );
                rates[peer.index()] = run.per_second();
                cpus[peer.index()] = cpu_us;
            }
            samples.push_paired(&format!("rps {connections}"), rates);
            samples.push_paired(&format!("cpu {connections}"), cpus);
        }
    }
}

/// Part 3: cold starts, runtime and raw alternating, every sample kept.
async fn cold_starts(samples: &mut Samples, scale: Scale, node: &Node, raw: &RawHarness) {
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for start in 0..scale.cold_starts {
        for peer in Peer::alternating(start) {
            let milliseconds = match peer {
                Peer::Runtime => node.cold_start(&format!("cold-{start}")).await,
                Peer::Raw => raw_cold_start(raw).await,
            };
            times.entry(peer.as_str()).or_default().push(milliseconds);
        }
    }
    for (peer, mut times) in times {
        times.sort_by(f64::total_cmp);
        let p50 = percentile(&times, 0.5);
        let p99 = percentile(&times, 0.99);
        eprintln!(
            "cold start {peer:7}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms ({} starts)",
            times[times.len() - 1],
            times.len()
        );
        samples.push(format!("{peer} cold p50"), p50);
        samples.push(format!("{peer} cold p99"), p99);
    }
}

/// The raw harness's cold start: `ProxyPre`, bind, serve, first 200.
async fn raw_cold_start(raw: &RawHarness) -> f64 {
    let mut last_error = None;
    for _attempt in 0..5 {
        let address = loopback(free_port());
        let begun = Instant::now();
        let pre = raw.pre();
        let server = match RawHarness::serve(pre, address) {
            Ok(server) => server,
            Err(error) => {
                // The port was taken since it was found free: another try.
                last_error = Some(error);
                continue;
            }
        };
        let mut connection = Connection::open(address).await;
        connection.hello().await;
        let elapsed = begun.elapsed();
        drop(connection);
        drop(server);
        return elapsed.as_secs_f64() * 1e3;
    }
    panic!("raw cold start: {last_error:?}");
}

/// Part 4: each measure in a fresh child process, `rounds` times.
async fn memory(samples: &mut Samples, scale: Scale, reference: &str) {
    for round in 0..scale.rounds {
        for measure in MemoryMeasure::ALL {
            let kib = memory_in_child(measure, reference).await;
            eprintln!("round {round} memory {}: {kib:.1} KiB each", measure.name());
            samples.push(format!("{} kib", measure.name()), kib);
        }
    }
}

/// Runs this binary as a memory child for `measure` and reads its result.
async fn memory_in_child(measure: MemoryMeasure, reference: &str) -> f64 {
    let child = tokio::process::Command::new(std::env::current_exe().expect("own path"))
        .env(MEMORY_CHILD_ENV, measure.name())
        .env(IMAGE_ENV, reference)
        .env(PURGE_ENV, "0")
        .env(THP_ENV, "0")
        .env_remove(PART_ENV)
        .env_remove("SKIFF_BENCH_OUT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start a memory child");
    let output = tokio::time::timeout(CHILD_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the memory child for {} took too long", measure.name()))
        .expect("wait for the memory child");
    assert!(
        output.status.success(),
        "the memory child for {} failed: {}",
        measure.name(),
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("the memory child for {} printed no result", measure.name()))
}

/// A memory child: sets up, takes a baseline RSS, adds the units (idle
/// containers or in-flight requests), reads RSS again; KiB per unit.
async fn memory_child(measure: MemoryMeasure, scale: Scale) -> f64 {
    let reference = std::env::var(IMAGE_ENV).expect("the image reference");
    let count = scale.idle_containers;
    match measure {
        MemoryMeasure::Idle(Peer::Runtime) => {
            let node = Node::open(&reference, |options| options).await;
            // The first container links the artifact (once per node).
            for index in 0..scale.idle_warmup() {
                node.deploy_serving(&format!("idle-warmup-{index}")).await;
            }
            let baseline = settled_rss_kib().await;
            for index in 0..count {
                node.deploy_serving(&format!("idle-{index}")).await;
            }
            let grown = settled_rss_kib().await;
            per_unit(measure, baseline, grown, count)
        }
        MemoryMeasure::Idle(Peer::Raw) => {
            let raw = RawHarness::new(skiff_test_guests::HTTP, &WasmRuntimeOptions::new(""));
            let mut deployed = Vec::with_capacity(scale.idle_warmup() + count);
            for _ in 0..scale.idle_warmup() {
                deployed.push(raw_deploy_serving(&raw).await);
            }
            let baseline = settled_rss_kib().await;
            for _ in 0..count {
                deployed.push(raw_deploy_serving(&raw).await);
            }
            let grown = settled_rss_kib().await;
            per_unit(measure, baseline, grown, count)
        }
        MemoryMeasure::InFlight(peer) => {
            let node;
            let raw;
            let _server;
            let address = match peer {
                Peer::Runtime => {
                    node = Node::open(&reference, |options| {
                        options.max_concurrent_requests(scale.in_flight.max(512))
                    })
                    .await;
                    node.deploy("in-flight").await.1
                }
                Peer::Raw => {
                    raw = RawHarness::new(skiff_test_guests::HTTP, &WasmRuntimeOptions::new(""));
                    let address = loopback(free_port());
                    _server = RawHarness::serve(raw.pre(), address).expect("serve");
                    address
                }
            };
            let (baseline, grown) = in_flight_rss_kib(address, scale).await;
            per_unit(measure, baseline, grown, scale.in_flight)
        }
    }
}

/// Opens `in_flight` connections (each warmed with one request), then
/// sends `/sleep/MS` on all of them at once and reads RSS halfway through
/// the sleep; checks that every request was in flight at that moment.
/// Returns RSS before the requests and during them.
async fn in_flight_rss_kib(address: SocketAddr, scale: Scale) -> (f64, f64) {
    let mut connections = Vec::with_capacity(scale.in_flight);
    for _ in 0..scale.in_flight {
        let mut connection = Connection::open(address).await;
        connection.hello().await;
        connections.push(connection);
    }
    let baseline = settled_rss_kib().await;
    let path = format!("/sleep/{}", scale.sleep_ms);
    let requests: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let path = path.clone();
            tokio::spawn(async move {
                let (status, body) = connection.get(&path).await;
                assert!(
                    status == hyper::StatusCode::OK,
                    "GET {path} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
                Instant::now()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(scale.sleep_ms / 2)).await;
    let measured_at = Instant::now();
    let grown = rss_kib();
    let sleep = Duration::from_millis(scale.sleep_ms);
    for request in requests {
        let answered = request.await.expect("an in-flight request");
        assert!(
            answered > measured_at && answered < measured_at + sleep,
            "a request was not in flight when memory was measured"
        );
    }
    (baseline, grown)
}

/// A raw deployment that has served one request.
async fn raw_deploy_serving(raw: &RawHarness) -> RawServer {
    let mut last_error = None;
    for _attempt in 0..5 {
        let address = loopback(free_port());
        match RawHarness::serve(raw.pre(), address) {
            Ok(server) => {
                Connection::open(address).await.hello().await;
                return server;
            }
            // The port was taken since it was found free: another try.
            Err(error) => last_error = Some(error),
        }
    }
    panic!("raw deployment: {last_error:?}");
}

/// A runtime over a temporary state directory, a sandbox, and the hello
/// image pulled (so compiled) once.
struct Node {
    _dir: tempfile::TempDir,
    options: WasmRuntimeOptions,
    runtime: WasmRuntime,
    sandbox: SandboxId,
    image: ImageSpec,
}

impl Node {
    async fn open(
        reference: &str,
        options: impl FnOnce(WasmRuntimeOptions) -> WasmRuntimeOptions,
    ) -> Node {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options = options(WasmRuntimeOptions::new(dir.path().join("state")));
        let runtime = WasmRuntime::open(options.clone())
            .await
            .unwrap_or_else(|e| panic!("open the runtime: {}", chain(&e)));
        let sandbox = runtime
            .run_sandbox(&SandboxConfig::new(
                SandboxMetadata::new("bench", "wasm", format!("uid-{}", std::process::id())),
                "wasmtime",
                dir.path().join("logs"),
            ))
            .await
            .unwrap_or_else(|e| panic!("run a sandbox: {}", chain(&e)));
        let image = ImageSpec::new(reference);
        runtime
            .pull_image(&image, &PullOptions::default().insecure(true))
            .await
            .unwrap_or_else(|e| panic!("pull {reference}: {}", chain(&e)));
        Node {
            _dir: dir,
            options,
            runtime,
            sandbox,
            image,
        }
    }

    /// Creates and starts a container named `name` on `port`.
    async fn try_deploy(&self, name: &str, port: u16) -> Result<ContainerId, RuntimeError> {
        let config = ContainerConfig::new(name, 0, self.image.clone()).port(port);
        let id = self
            .runtime
            .create_container(&self.sandbox, &config)
            .await?;
        match self.runtime.start_container(&id).await {
            Ok(()) => Ok(id),
            Err(error) => {
                self.remove(&id).await;
                Err(error)
            }
        }
    }

    /// A started container on a free port (trying other ports, under other
    /// attempt names, if one is taken meanwhile).
    async fn deploy(&self, name: &str) -> (ContainerId, SocketAddr) {
        let mut last_error = None;
        for attempt in 0..5 {
            let port = free_port();
            match self.try_deploy(&format!("{name}-{attempt}"), port).await {
                Ok(id) => return (id, loopback(port)),
                Err(error) => last_error = Some(chain(&error)),
            }
        }
        panic!("deploy {name}: {}", last_error.unwrap_or_default());
    }

    /// A started container that has served one request; it runs until
    /// the node is dropped.
    async fn deploy_serving(&self, name: &str) {
        let (_id, address) = self.deploy(name).await;
        Connection::open(address).await.hello().await;
    }

    /// One cold start in milliseconds: create, start, first 200; the
    /// container is removed after (untimed).
    async fn cold_start(&self, name: &str) -> f64 {
        let mut last_error = None;
        for attempt in 0..5 {
            let port = free_port();
            let begun = Instant::now();
            let id = match self.try_deploy(&format!("{name}-{attempt}"), port).await {
                Ok(id) => id,
                Err(error) => {
                    // The port was taken since it was found free: another try.
                    last_error = Some(chain(&error));
                    continue;
                }
            };
            let mut connection = Connection::open(loopback(port)).await;
            connection.hello().await;
            let elapsed = begun.elapsed();
            drop(connection);
            self.remove(&id).await;
            return elapsed.as_secs_f64() * 1e3;
        }
        panic!("cold start {name}: {}", last_error.unwrap_or_default());
    }

    async fn remove(&self, id: &ContainerId) {
        self.runtime
            .stop_container(id, Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("stop {id}: {}", chain(&e)));
        self.runtime
            .remove_container(id)
            .await
            .unwrap_or_else(|e| panic!("remove {id}: {}", chain(&e)));
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The nearest-rank `q` quantile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

/// This process's resident set in KiB.
fn rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(std::env::var("RSSFIELD").as_deref().unwrap_or("VmRSS:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// RSS once connection tasks and idle blocking threads of the set-up
/// have ended.
async fn settled_rss_kib() -> f64 {
    tokio::time::sleep(SETTLE).await;
    rss_kib()
}

/// KiB per unit of the growth from `baseline` to `grown`, shown on stderr
/// with its parts.
fn per_unit(measure: MemoryMeasure, baseline: f64, grown: f64, units: usize) -> f64 {
    let kib = (grown - baseline) / units as f64;
    eprintln!(
        "memory {}: VmRSS {baseline:.0} KiB → {grown:.0} KiB over {units}: {kib:.1} KiB each",
        measure.name()
    );
    kib
}

/// User + system CPU time of this process (`/proc/self/stat`, USER_HZ =
/// 100).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// Idle containers hold a listener and a log file each; connections of the
/// load generator count twice (both ends are in this process).
fn check_open_files_limit(scale: Scale) {
    let needed = 2 * scale.idle_containers.max(scale.in_flight) + 2 * 64 + 200;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft: Option<usize> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    if let Some(soft) = soft {
        assert!(
            soft >= needed,
            "the open files limit ({soft}) is too low (needs {needed}): run `ulimit -n 4096` first"
        );
    }
}

fn report(samples: &Samples, scale: Scale) {
    let m = |name: &str| samples.median(name);
    let [low, high] = scale.concurrencies;
    // (label, runtime, raw, runtime/raw) for the measure `name`: the ratio
    // is the median of per-round ratios where the runs were paired, else
    // the ratio of the medians.
    let row = |label: String, name: &str| {
        let runtime = m(&format!("runtime {name}"));
        let raw = m(&format!("raw {name}"));
        let paired = format!("ratio {name}");
        let ratio = if samples.values.contains_key(&paired) {
            m(&paired)
        } else {
            runtime / raw
        };
        (label, runtime, raw, ratio)
    };
    let rows = [
        row(
            "request latency p50, one keep-alive connection, µs".into(),
            "latency p50",
        ),
        row(
            "request latency p99, one keep-alive connection, µs".into(),
            "latency p99",
        ),
        row(
            format!("requests/s, {low} connections"),
            &format!("rps {low}"),
        ),
        row(
            format!("requests/s, {high} connections"),
            &format!("rps {high}"),
        ),
        row(
            format!("process CPU per request at {high} connections (servers + load generator), µs"),
            &format!("cpu {high}"),
        ),
        row(
            "cold start to first 200 p50, ms (raw: ProxyPre + bind + first 200)".into(),
            "cold p50",
        ),
        row(
            "cold start to first 200 p99, ms (raw: ProxyPre + bind + first 200)".into(),
            "cold p99",
        ),
        row(
            format!(
                "memory per idle deployed HTTP component, KiB (VmRSS growth / {})",
                scale.idle_containers
            ),
            "idle kib",
        ),
        row(
            format!(
                "memory per in-flight instance, KiB (VmRSS growth / {})",
                scale.in_flight
            ),
            "in-flight kib",
        ),
    ];
    let mut table = String::from(
        "| measure | runtime | raw wasmtime + hyper | runtime/raw |\n|---|---:|---:|---:|\n",
    );
    for (label, runtime, raw, ratio) in &rows {
        table.push_str(&format!(
            "| {label} | {runtime:.2} | {raw:.2} | {ratio:.2}× |\n"
        ));
    }
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let p50_ratio = rows[0].3;
    let p99_ratio = rows[1].3;
    let low_ratio = rows[2].3;
    let high_ratio = rows[3].3;
    let cold_p50 = m("runtime cold p50");
    let cold_p99 = m("runtime cold p99");
    let verdict = format!(
        "Goals: instantiate + handle ≤ {LATENCY_GOAL}× the raw harness: p50 {} ({p50_ratio:.2}×), \
         p99 {} ({p99_ratio:.2}×); requests/s ≥ {THROUGHPUT_GOAL}× the raw harness: at {low} \
         connections {} ({low_ratio:.2}×), at {high} {} ({high_ratio:.2}×); cold start p50 < \
         {COLD_P50_GOAL_MS} ms: {} ({cold_p50:.2} ms), p99 < {COLD_P99_GOAL_MS} ms: {} \
         ({cold_p99:.2} ms).",
        met(p50_ratio <= LATENCY_GOAL),
        met(p99_ratio <= LATENCY_GOAL),
        met(low_ratio >= THROUGHPUT_GOAL),
        met(high_ratio >= THROUGHPUT_GOAL),
        met(cold_p50 < COLD_P50_GOAL_MS),
        met(cold_p99 < COLD_P99_GOAL_MS),
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
        let Scale {
            rounds,
            latency_warmup,
            latency_requests,
            throughput_duration,
            cold_starts,
            idle_containers,
            in_flight,
            sleep_ms,
            ..
        } = scale;
        let seconds = throughput_duration.as_secs_f64();
        let idle_warmup = scale.idle_warmup();
        let settle_ms = (SETTLE / 4).as_millis();
        let section = format!(
            "## Wasm runtime: HTTP components\n\n\
             Command: `make bench` (runs `cargo bench -p skiff-runtime-wasm --bench wasm`).\n\
             Medians of {rounds} rounds on {cpus} CPUs ({model}); servers and load generator \
             share them, in one process, over loopback. The component is the test guests' HTTP \
             guest (`skiff_test_guests::HTTP`, route `/`: 200 `hello from skiff`), pushed to \
             Debian's `docker-registry` and pulled once. \"runtime\" serves it as a container of \
             `WasmRuntime` (as the agent does); \"raw\" is the peer measured in the same run: the \
             same component served with the `wasmtime` crates directly (a hyper HTTP/1.1 server; \
             per request a fresh `Store` with a bare WASI context, `ProxyPre::instantiate_async` \
             and `call_handle`) on an engine configured as the runtime's (pooling allocator, \
             epoch interruption with a 10 ms ticker and yield at every tick, component model), \
             without the runtime's container log, memory limiter, request permits, timeout or \
             CPU metering. Every request is a fresh instance. Runtime and raw runs alternate \
             (which goes first changes every round); for latency and requests/s the runtime/raw \
             column is the median of the per-round ratios (the pair of runs in a round shares \
             the machine's noise), elsewhere the ratio of the medians. Latency: {latency_requests} sequential GET `/` on one keep-alive connection (after \
             {latency_warmup} untimed), send to whole body read. Requests/s: each connection a \
             keep-alive HTTP/1.1 client issuing sequential GET `/` for {seconds} s; process CPU \
             is user+system time of the whole process over the run. Cold start: \
             `create_container` → `start_container` → first 200 on a new connection, each a new \
             container on a new port, removed after; {cold_starts} of each, alternating, \
             percentiles over all of them (the artifact was compiled at pull, so no start \
             compiles). Memory: each figure from a fresh child process with \
             `MIMALLOC_PURGE_DELAY=0` (freed memory goes back at once, so RSS is live memory) and \
             `MIMALLOC_ALLOW_THP=0` (with transparent huge pages, RSS jumped and dropped by \
             megabytes as the kernel built and split them, moving the figures by several KiB per \
             unit either way), idle blocking threads ending after {settle_ms} ms (so that the \
             compile's thread is gone before the baseline): after {idle_warmup} deployments that \
             are not counted (one-time costs), VmRSS growth while deploying {idle_containers} \
             more containers (each on its own port, having served one request; raw: `ProxyPre` \
             + listener + accept task each), divided by their number; and VmRSS growth while {in_flight} `/sleep/{sleep_ms}` requests are \
             in flight on as many warmed keep-alive connections to one container, read halfway \
             through the sleep, divided by {in_flight}.\n\n\
             {table}\n{verdict}\n"
        );
        write_section(&out, "wasm", &section);
        eprintln!("wrote the results to {out}");
    }
}
