//! Node agent benchmark (issue 7): how fast a Wasm HTTP pod starts through
//! the whole path, and how many idle ones one agent holds.
//!
//! The cluster is `skiff server --no-agent` (a child process, this binary
//! re-executed, so that its memory and CPU are its own) and a `skiff agent`
//! in this process, joined over HTTPS with the join token, giving pods
//! addresses of their own from 127.2.0.0/16 (`support: agent/cluster.rs`).
//! The workload is examples/hello-http (`make build-examples`), pushed to
//! Debian's `docker-registry` on loopback and run as `runtimeClassName:
//! wasmtime` pods with `containerPort: 8080`. All traffic is on loopback.
//!
//! 1. Pod start: after one warm-up pod (the pull and compile), pods created
//!    one after another through the API (admin kube-rs client over HTTPS);
//!    each is timed from the create call to `Running` seen on a watch
//!    (`agent/observer.rs`, which also notes the binding and the agent's
//!    first status) to the first 200 of `GET /` at `podIP:8080` (connect
//!    retried every 200 µs). The peer, alternating with it in the same
//!    run: the same component started directly through a `WasmRuntime`
//!    of its own (`run_sandbox` with an address of its own, then
//!    `create_container`, `start_container`, first 200).
//! 2. Density, in a fresh child process (so that the pod starts above are
//!    not in its memory; mimalloc returning freed memory at once, as the
//!    Wasm benchmark's memory children do): VmRSS of the agent's process
//!    and of the server's with one pod, then with 1,000 and 5,000 idle pods
//!    (created with bounded concurrency, all Running, each having served
//!    one request), per pod; probe requests (`GET /healthz` on a new
//!    connection, as a kubelet's httpGet probe) to random pods while they
//!    are all deployed, against the same to the one pod alone.
//!
//! `SKIFF_BENCH_QUICK=1` runs a small version (a smoke run);
//! `SKIFF_BENCH_AGENT_PART=start|density` runs one part and prints what it
//! measured. With `SKIFF_BENCH_OUT=FILE` the section is also written into
//! that markdown file between markers. `RUST_LOG` shows the components'
//! logs. Run with `cargo bench --bench agent` (needs `make deps` and
//! `make build-examples`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use rand::{Rng as _, SeedableRng as _};
use skiff_runtime_wasm::oci::{PushOptions, push_wasm};
use skiff_runtime_wasm::{WasmRuntime, WasmRuntimeOptions};
use skiff_sdk::runtime::{
    ContainerConfig, ImageSpec, PullOptions, Runtime, SandboxConfig, SandboxMetadata,
    SandboxNetwork,
};

#[path = "agent/cluster.rs"]
mod cluster;
#[path = "agent/http.rs"]
mod http;
#[path = "../control/benches/support/markdown.rs"]
mod markdown;
#[path = "agent/observer.rs"]
mod observer;
/// runtime-oci's test fixtures: a private containerd, a registry and a
/// busybox image built from Debian's static busybox.
#[path = "../runtime-oci/tests/all/support/mod.rs"]
mod oci_support;
#[path = "../tests/all/registry.rs"]
mod registry;

use cluster::{Cluster, POD_PORT};
use markdown::write_section;
use observer::Observer;

/// The allocator of the `skiff` binary, which hosts the agent.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs one part only (`start` or `density`).
const PART_ENV: &str = "SKIFF_BENCH_AGENT_PART";
/// Makes the binary the density child; the value is the image reference.
const DENSITY_CHILD_ENV: &str = "SKIFF_BENCH_AGENT_DENSITY_CHILD";
/// The two pod counts of the density part (`LOW,HIGH`), e.g. to profile.
const DENSITIES_ENV: &str = "SKIFF_BENCH_AGENT_DENSITIES";
/// The hello-http component, if not where `make build-examples` puts it.
const HELLO_HTTP_ENV: &str = "SKIFF_BENCH_HELLO_HTTP";
/// What the density child prints before each `name=value` it measured.
const RESULT_PREFIX: &str = "density-result ";
/// The namespace of the benchmark's pods.
const NAMESPACE: &str = "default";
/// The agent's `--max-pods`.
const MAX_PODS: u32 = 6000;
/// The peer's pod addresses (the agent's are 127.2.0.0/16).
const RAW_ADDRESS_BASE: Ipv4Addr = Ipv4Addr::new(127, 3, 0, 0);
/// Bound on one pod start (create → first 200).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a density step: this plus [`DEPLOY_TIMEOUT_PER_POD`] per pod.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);
const DEPLOY_TIMEOUT_PER_POD: Duration = Duration::from_millis(150);
/// Creates in flight at once while deploying for density.
const CREATE_CONCURRENCY: usize = 16;
/// Bound on one create call.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Untimed probe requests before each timed series.
const PROBE_WARMUP: usize = 50;
/// How long the density child lets things settle before reading RSS.
const SETTLE: Duration = Duration::from_secs(2);
/// Bound on the density child.
const CHILD_TIMEOUT: Duration = Duration::from_secs(3600);
/// mimalloc: freed memory back to the OS at once, and no transparent huge
/// pages (see the Wasm runtime benchmark), in the density child.
const MIMALLOC_ENV: [(&str, &str); 2] =
    [("MIMALLOC_PURGE_DELAY", "0"), ("MIMALLOC_ALLOW_THP", "0")];
/// The goals.
const START_P99_GOAL_MS: f64 = 50.0;
const KIB_PER_POD_GOAL: f64 = 200.0;
const CONTAINER_RATIO_GOAL: f64 = 1.1;

/// How much of everything to do.
#[derive(Clone, Copy, Debug)]
struct Scale {
    pod_starts: usize,
    container_starts: usize,
    densities: [usize; 2],
    probes: usize,
}

impl Scale {
    fn from_env() -> Scale {
        let mut scale =
            if std::env::var_os("SKIFF_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0") {
                Scale {
                    pod_starts: 20,
                    container_starts: 5,
                    densities: [100, 300],
                    probes: 200,
                }
            } else {
                Scale {
                    pod_starts: 200,
                    container_starts: 50,
                    densities: [1000, 5000],
                    probes: 1000,
                }
            };
        if let Ok(list) = std::env::var(DENSITIES_ENV) {
            let counts: Vec<usize> = list
                .split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .expect("SKIFF_BENCH_AGENT_DENSITIES: pod counts")
                })
                .collect();
            match counts[..] {
                [low, high] if 1 < low && low < high => scale.densities = [low, high],
                _ => panic!("{DENSITIES_ENV}: two increasing pod counts, e.g. 1000,5000"),
            }
        }
        scale
    }
}

fn main() {
    let scale = Scale::from_env();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(data_dir) = std::env::var_os(cluster::SERVE_ENV) {
        let runtime = builder.build().expect("tokio runtime");
        runtime.block_on(cluster::serve_as_child(PathBuf::from(data_dir)));
        return;
    }
    raise_open_files_limit(scale);
    match std::env::var(DENSITY_CHILD_ENV) {
        Ok(reference) => {
            // Idle blocking threads (file IO, the compile, the probes) end
            // before RSS is read rather than 10 s later.
            builder.thread_keep_alive(Duration::from_millis(100));
            let runtime = builder.build().expect("tokio runtime");
            for (name, value) in runtime.block_on(density(scale, &reference)) {
                println!("{RESULT_PREFIX}{name}={value}");
            }
        }
        Err(_) => {
            let runtime = builder.build().expect("tokio runtime");
            runtime.block_on(run(scale));
        }
    }
}

/// Measures, by name.
type Measures = BTreeMap<String, f64>;

async fn run(scale: Scale) {
    let registry = tokio::task::spawn_blocking(registry::Registry::start)
        .await
        .expect("start the registry")
        .expect("/usr/bin/docker-registry is missing: run `make deps`");
    let reference = registry.reference("bench/hello-http:v1");
    push_hello_http(&reference).await;

    let part = std::env::var(PART_ENV).ok();
    let wants = |name: &str| part.as_deref().is_none_or(|p| p == name);
    let mut measures = Measures::new();
    if wants("start") {
        measures.extend(pod_starts(scale, &reference).await);
    }
    if wants("density") {
        measures.extend(density_in_child(&reference).await);
    }
    if wants("containers") {
        measures.extend(container_starts(scale).await);
    }
    if part.is_some() {
        for (name, value) in &measures {
            println!("{name}: {value:.3}");
        }
        return;
    }
    report(&measures, scale);
}

/// Pushes examples/hello-http as a Wasm OCI artifact, as `skiff push` does.
async fn push_hello_http(reference: &str) {
    let path = std::env::var_os(HELLO_HTTP_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("examples/target/wasm32-wasip2/release/hello_http.wasm")
        });
    let wasm = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run `make build-examples` first (or set {HELLO_HTTP_ENV})",
            path.display()
        )
    });
    push_wasm(
        &wasm,
        reference,
        &PushOptions::default().insecure(true),
        &mut |_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("push {reference}: {e}"));
}

/// The registry part of an image reference (`127.0.0.1:PORT`).
fn registry_of(reference: &str) -> &str {
    reference.split('/').next().unwrap_or(reference)
}

/// A `wasmtime` pod running `image` on port 8080.
fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "bench" } },
        "spec": {
            "runtimeClassName": "wasmtime",
            "containers": [{
                "name": "hello",
                "image": image,
                "ports": [{ "containerPort": POD_PORT }],
            }],
        },
    }))
    .expect("a pod")
}

/// When a pod reached each stage, in seconds from its create call.
struct PodStart {
    created: f64,
    bound: f64,
    reported: f64,
    running: f64,
    answered: f64,
}

/// Creates pod `name` and waits for its first 200.
async fn start_pod(pods: &Api<Pod>, observer: &Observer, name: &str, image: &str) -> PodStart {
    let running = observer.expect(name);
    let begun = Instant::now();
    tokio::time::timeout(
        CREATE_TIMEOUT,
        pods.create(&PostParams::default(), &pod(name, image)),
    )
    .await
    .unwrap_or_else(|_| panic!("creating {name} took over {CREATE_TIMEOUT:?}"))
    .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let created = begun.elapsed().as_secs_f64();
    let stages = tokio::time::timeout(START_TIMEOUT, running)
        .await
        .unwrap_or_else(|_| panic!("{name} was not seen Running within {START_TIMEOUT:?}"))
        .expect("the pod watch");
    let ip = stages.ip.expect("a running pod has an IP");
    let deadline = begun + START_TIMEOUT;
    let answered = tokio::task::spawn_blocking(move || {
        http::first_200(SocketAddr::new(ip, POD_PORT), deadline)
    })
    .await
    .expect("the HTTP client")
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let since = |at: Option<Instant>| at.map_or(f64::NAN, |at| (at - begun).as_secs_f64());
    PodStart {
        created,
        bound: since(stages.bound),
        reported: since(stages.reported),
        running: since(stages.running),
        answered: since(Some(answered)),
    }
}

/// The peer: a `WasmRuntime` of its own, driven directly.
struct RawRuntime {
    dir: tempfile::TempDir,
    runtime: WasmRuntime,
    image: ImageSpec,
}

impl RawRuntime {
    /// Opens it as the agent's runtime is opened, and pulls `reference`.
    async fn open(reference: &str) -> RawRuntime {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runtime = WasmRuntime::open(
            WasmRuntimeOptions::new(dir.path().join("wasm")).host_ip(cluster::NODE_IP),
        )
        .await
        .unwrap_or_else(|e| panic!("open the peer's runtime: {e}"));
        let image = ImageSpec::new(reference);
        runtime
            .pull_image(&image, &PullOptions::default().insecure(true))
            .await
            .unwrap_or_else(|e| panic!("pull {reference}: {e}"));
        RawRuntime {
            dir,
            runtime,
            image,
        }
    }

    /// Sandbox number `index` with an address of its own, its container
    /// created and started, to the first 200; seconds. It keeps running.
    async fn start(&self, index: u32) -> f64 {
        let ip = IpAddr::V4(Ipv4Addr::from(u32::from(RAW_ADDRESS_BASE) + 1 + index));
        let name = format!("raw-{index}");
        let begun = Instant::now();
        let sandbox = self
            .runtime
            .run_sandbox(
                &SandboxConfig::new(
                    SandboxMetadata::new(NAMESPACE, &name, format!("uid-{name}")),
                    "wasmtime",
                    self.dir.path().join("logs").join(&name),
                )
                .network(SandboxNetwork::HostAddress { ip }),
            )
            .await
            .unwrap_or_else(|e| panic!("run sandbox {name}: {e}"));
        let container = self
            .runtime
            .create_container(
                &sandbox,
                &ContainerConfig::new("hello", 0, self.image.clone()).port(POD_PORT),
            )
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        self.runtime
            .start_container(&container)
            .await
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let deadline = begun + START_TIMEOUT;
        let answered = tokio::task::spawn_blocking(move || {
            http::first_200(SocketAddr::new(ip, POD_PORT), deadline)
        })
        .await
        .expect("the HTTP client")
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        (answered - begun).as_secs_f64()
    }
}

/// Part 1: pod starts through the agent, alternating with the peer's.
async fn pod_starts(scale: Scale, reference: &str) -> Measures {
    let cluster = Cluster::start(registry_of(reference), MAX_PODS).await;
    let observer = Observer::start(cluster.client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let raw = RawRuntime::open(reference).await;
    // Untimed: the agent's pull and compile, the peer's first start.
    start_pod(&pods, &observer, "start-warmup", reference).await;
    raw.start(0).await;

    let mut agent: Vec<PodStart> = Vec::with_capacity(scale.pod_starts);
    let mut peer: Vec<f64> = Vec::with_capacity(scale.pod_starts);
    for index in 0..scale.pod_starts {
        let agent_first = index % 2 == 0;
        for turn in 0..2 {
            if (turn == 0) == agent_first {
                agent.push(start_pod(&pods, &observer, &format!("start-{index}"), reference).await);
            } else {
                peer.push(raw.start(1 + index as u32).await);
            }
        }
    }
    drop(observer);
    cluster.stop().await;

    let mut measures = Measures::new();
    let mut add = |name: &str, seconds: Vec<f64>| {
        record_percentiles(&mut measures, &format!("pod start {name}"), name, seconds);
    };
    let stage = |f: fn(&PodStart) -> f64| agent.iter().map(f).collect::<Vec<_>>();
    add("create call", stage(|s| s.created));
    add("create to bound", stage(|s| s.bound));
    add("create to reported", stage(|s| s.reported));
    add("create to running", stage(|s| s.running));
    add("running to 200", stage(|s| s.answered - s.running));
    add("agent total", stage(|s| s.answered));
    add("raw total", peer);
    measures
}

/// A pod that runs `image` once (`restartPolicy: Never`) under
/// `runtime_class`, with `command` if not empty.
fn task_pod(name: &str, runtime_class: &str, image: &str, command: &[&str]) -> Pod {
    let mut container = serde_json::json!({ "name": "task", "image": image });
    if !command.is_empty() {
        container["command"] = serde_json::json!(command);
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "bench-task" } },
        "spec": {
            "runtimeClassName": runtime_class,
            "restartPolicy": "Never",
            "containers": [container],
        },
    }))
    .expect("a pod")
}

/// Creates a run-once pod and waits until it is seen `Succeeded`: seconds
/// from the create call. The pod is then deleted (untimed).
async fn run_task_pod(pods: &Api<Pod>, observer: &Observer, pod: Pod) -> f64 {
    let name = pod.metadata.name.clone().expect("a name");
    let finished = observer.expect_finished(&name);
    let begun = Instant::now();
    tokio::time::timeout(CREATE_TIMEOUT, pods.create(&PostParams::default(), &pod))
        .await
        .unwrap_or_else(|_| panic!("creating {name} took over {CREATE_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let stages = tokio::time::timeout(START_TIMEOUT, finished)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {START_TIMEOUT:?}"))
        .expect("the pod watch");
    assert!(stages.succeeded, "{name} failed");
    let seconds = (stages.finished.expect("finished") - begun).as_secs_f64();
    let _ = pods
        .delete(&name, &kube::api::DeleteParams::default())
        .await;
    seconds
}

/// Part 3: a container that runs `/bin/true` (busybox) through the API
/// and the agent (create → `Succeeded` seen on the watch) against `ctr run
/// --rm` of the same image on the same containerd, alternating; and a
/// Wasm task pod (examples/hello) the same way, for the ratio.
async fn container_starts(scale: Scale) -> Measures {
    assert!(
        oci_support::busybox::available(),
        "/bin/busybox is missing (Debian package busybox-static): run `make deps`"
    );
    let containerd = oci_support::containerd::TestContainerd::shared()
        .expect("the container part needs root and containerd: run `make deps`");
    let registry = oci_support::registry::TestRegistry::start()
        .expect("/usr/bin/docker-registry is missing: run `make deps`");
    let busybox = oci_support::busybox::push_busybox(
        &registry,
        "bench/busybox:v1",
        oci_support::busybox::Layout::SinglePlatform,
        None,
    )
    .await
    .reference;
    let hello = registry.reference("bench/hello:v1");
    let wasm = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("examples/target/wasm32-wasip2/release/hello.wasm"),
    )
    .expect("examples/hello: run `make build-examples`");
    push_wasm(
        &wasm,
        &hello,
        &PushOptions::default().insecure(true),
        &mut |_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("push {hello}: {e}"));

    let socket = containerd.socket().to_owned();
    let ctr = |args: Vec<String>| {
        let socket = socket.clone();
        async move {
            let output = tokio::process::Command::new("ctr")
                .arg("-a")
                .arg(&socket)
                .args(["-n", "skiff-bench-ctr"])
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .await
                .expect("run ctr");
            assert!(
                output.status.success(),
                "ctr {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    ctr(vec![
        "images".into(),
        "pull".into(),
        "--plain-http".into(),
        busybox.clone(),
    ])
    .await;

    let cluster = Cluster::start_with(&registry.address(), MAX_PODS, Some(&socket)).await;
    let observer = Observer::start(cluster.client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let container = |name: &str| task_pod(name, "runc", &busybox, &["/bin/true"]);
    let wasm_task = |name: &str| task_pod(name, "wasmtime", &hello, &[]);
    // Untimed: the pulls (and the Wasm compile), a first run of each.
    run_task_pod(&pods, &observer, container("container-warmup")).await;
    run_task_pod(&pods, &observer, wasm_task("wasm-warmup")).await;
    ctr(vec![
        "run".into(),
        "--rm".into(),
        busybox.clone(),
        "bench-warmup".into(),
        "/bin/true".into(),
    ])
    .await;

    let (mut agent, mut peer, mut wasm_runs) = (Vec::new(), Vec::new(), Vec::new());
    for index in 0..scale.container_starts {
        let run_peer = || async {
            let begun = Instant::now();
            ctr(vec![
                "run".into(),
                "--rm".into(),
                busybox.clone(),
                format!("bench-{index}"),
                "/bin/true".into(),
            ])
            .await;
            begun.elapsed().as_secs_f64()
        };
        if index % 2 == 0 {
            agent.push(
                run_task_pod(&pods, &observer, container(&format!("container-{index}"))).await,
            );
            peer.push(run_peer().await);
        } else {
            peer.push(run_peer().await);
            agent.push(
                run_task_pod(&pods, &observer, container(&format!("container-{index}"))).await,
            );
        }
        wasm_runs.push(run_task_pod(&pods, &observer, wasm_task(&format!("wasm-{index}"))).await);
    }
    drop(observer);
    cluster.stop().await;

    let mut measures = Measures::new();
    let mut add = |name: &str, seconds: Vec<f64>| {
        record_percentiles(&mut measures, name, name, seconds);
    };
    add("container task", agent);
    add("ctr run", peer);
    add("wasm task", wasm_runs);
    measures
}

/// Part 2, run in a fresh child process with mimalloc returning memory at
/// once; its measures.
async fn density_in_child(reference: &str) -> Measures {
    let mut command = tokio::process::Command::new(std::env::current_exe().expect("own path"));
    command
        .env(DENSITY_CHILD_ENV, reference)
        .env_remove(PART_ENV)
        .env_remove("SKIFF_BENCH_OUT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (name, value) in MIMALLOC_ENV {
        command.env(name, value);
    }
    let child = command.spawn().expect("start the density child");
    let output = tokio::time::timeout(CHILD_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the density child took over {CHILD_TIMEOUT:?}"))
        .expect("wait for the density child");
    assert!(
        output.status.success(),
        "the density child failed: {}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix(RESULT_PREFIX)?.split_once('='))
        .map(|(name, value)| {
            let value = value.parse().expect("a measure");
            (name.to_owned(), value)
        })
        .collect()
}

/// The density child: one pod, then `densities` pods in all.
async fn density(scale: Scale, reference: &str) -> Measures {
    let cluster = Cluster::start(registry_of(reference), MAX_PODS).await;
    let server = cluster.server_pid();
    let me = std::process::id();
    let observer = Observer::start(cluster.client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let mut measures = Measures::new();
    tokio::time::sleep(SETTLE).await;
    let rss = rss_kib;
    eprintln!(
        "density: zero pods: agent process {:.0} KiB, server {:.0} KiB",
        rss(me),
        rss(server)
    );
    measures.insert("agent rss0 kib".into(), rss(me));
    measures.insert("server rss0 kib".into(), rss(server));

    let only = start_pod(&pods, &observer, "density-0", reference).await;
    eprintln!(
        "density: the first pod answered after {:.1} ms",
        only.answered * 1e3
    );
    let ip = observer.running_pods()[0].1;
    tokio::time::sleep(SETTLE).await;
    let single = probe(vec![ip], scale.probes).await;
    measures.insert("single probe p50 us".into(), single[0]);
    measures.insert("single probe p99 us".into(), single[1]);
    tokio::time::sleep(SETTLE).await;
    let (agent_base, server_base) = (rss(me), rss(server));
    eprintln!("density: one pod: agent process {agent_base:.0} KiB, server {server_base:.0} KiB");
    measures.insert("agent rss1 kib".into(), agent_base);
    measures.insert("server rss1 kib".into(), server_base);

    let mut deployed = 1;
    for target in scale.densities {
        let names: Vec<String> = (deployed..target).map(|i| format!("density-{i}")).collect();
        let cpu_before = [cpu_seconds(me), cpu_seconds(server)];
        let begun = Instant::now();
        futures::stream::iter(names.iter())
            .map(|name| {
                let pods = pods.clone();
                let pod = pod(name, reference);
                async move {
                    tokio::time::timeout(CREATE_TIMEOUT, pods.create(&PostParams::default(), &pod))
                        .await
                        .unwrap_or_else(|_| panic!("creating a pod took over {CREATE_TIMEOUT:?}"))
                        .unwrap_or_else(|e| panic!("create a pod: {e}"));
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .collect::<()>()
            .await;
        let created = begun.elapsed().as_secs_f64();
        let timeout = DEPLOY_TIMEOUT + DEPLOY_TIMEOUT_PER_POD * names.len() as u32;
        if !observer.wait_running(target, timeout).await {
            // Reported as measured: what did run is still measured below.
            eprintln!(
                "density: only {} of {target} pods were Running after {timeout:?}",
                observer.running_count()
            );
        }
        let running = observer.running_count();
        measures.insert(format!("running {target}"), running as f64);
        let seconds = begun.elapsed().as_secs_f64();
        let cpu = [
            cpu_seconds(me) - cpu_before[0],
            cpu_seconds(server) - cpu_before[1],
        ];
        let added = (running - deployed) as f64;
        eprintln!(
            "density: {running} of {target} pods Running: {} created in {created:.1} s, {added} \
             more Running after {seconds:.1} s ({:.1} pods/s); CPU per pod: agent process {:.0} \
             µs, server {:.0} µs",
            names.len(),
            added / seconds,
            cpu[0] / added * 1e6,
            cpu[1] / added * 1e6
        );
        measures.insert(format!("deploy {target} pods per s"), added / seconds);
        measures.insert(format!("agent cpu {target} us"), cpu[0] / added * 1e6);
        measures.insert(format!("server cpu {target} us"), cpu[1] / added * 1e6);

        // Every pod serves once (as a probe would have by now), untimed.
        let addresses: Vec<IpAddr> = observer
            .running_pods()
            .into_iter()
            .map(|(_, ip)| ip)
            .collect();
        let served = addresses.clone();
        tokio::task::spawn_blocking(move || {
            for ip in served {
                let deadline = Instant::now() + START_TIMEOUT;
                http::first_200(SocketAddr::new(ip, POD_PORT), deadline)
                    .unwrap_or_else(|e| panic!("a deployed pod: {e}"));
            }
        })
        .await
        .expect("the HTTP client");
        tokio::time::sleep(SETTLE).await;
        let (agent_rss, server_rss) = (rss(me), rss(server));
        let pods_added = (running - 1) as f64;
        let agent_kib = (agent_rss - agent_base) / pods_added;
        let server_kib = (server_rss - server_base) / pods_added;
        eprintln!(
            "density: {target} pods: agent process {agent_rss:.0} KiB ({agent_kib:.1} KiB per \
             pod), server {server_rss:.0} KiB ({server_kib:.1} KiB per pod)"
        );
        measures.insert(format!("agent kib {target}"), agent_kib);
        measures.insert(format!("server kib {target}"), server_kib);
        let latencies = probe(addresses, scale.probes).await;
        measures.insert(format!("probe {target} p50 us"), latencies[0]);
        measures.insert(format!("probe {target} p99 us"), latencies[1]);
        if running < target {
            break;
        }
        deployed = target;
    }
    drop(observer);
    cluster.stop().await;
    measures
}

/// `count` probe requests (`GET /healthz`, new connection each) to pods
/// picked at random (a fixed seed) among `addresses`, after
/// [`PROBE_WARMUP`] untimed ones: [p50, p99] in µs.
async fn probe(addresses: Vec<IpAddr>, count: usize) -> [f64; 2] {
    let mut latencies = tokio::task::spawn_blocking(move || {
        let mut random = rand::rngs::StdRng::seed_from_u64(7);
        let mut next = || {
            let ip = addresses[random.random_range(0..addresses.len())];
            http::timed_get(SocketAddr::new(ip, POD_PORT), "/healthz")
        };
        for _ in 0..PROBE_WARMUP {
            next();
        }
        (0..count).map(|_| next()).collect::<Vec<_>>()
    })
    .await
    .expect("the probes");
    latencies.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies, 0.5) * 1e6;
    let p99 = percentile(&latencies, 0.99) * 1e6;
    eprintln!("probes: p50 {p50:.0} µs, p99 {p99:.0} µs ({count} requests)");
    [p50, p99]
}

/// The nearest-rank `q` quantile of sorted values.
/// Records the p50 and p99 (ms) of `seconds` as `NAME p50 ms` and `NAME
/// p99 ms`, and prints them with the maximum under `label`.
fn record_percentiles(measures: &mut Measures, label: &str, name: &str, mut seconds: Vec<f64>) {
    seconds.sort_by(f64::total_cmp);
    let p50 = percentile(&seconds, 0.5) * 1e3;
    let p99 = percentile(&seconds, 0.99) * 1e3;
    eprintln!(
        "{label}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms ({} samples)",
        seconds[seconds.len() - 1] * 1e3,
        seconds.len()
    );
    measures.insert(format!("{name} p50 ms"), p50);
    measures.insert(format!("{name} p99 ms"), p99);
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

/// The resident set of process `pid` in KiB.
fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// User + system CPU time of process `pid` (`/proc/PID/stat`, USER_HZ =
/// 100).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// Each idle pod holds a listener and a log file; the peer's too; probe
/// connections are short-lived. Raises the soft limit as far as the hard
/// one allows and fails early if that is not enough.
fn raise_open_files_limit(scale: Scale) {
    let needed = 3 * scale.densities[1].max(2 * scale.pod_starts) as u64 + 1024;
    let limit = rlimit::increase_nofile_limit(needed)
        .unwrap_or_else(|e| panic!("raise the open files limit: {e}"));
    assert!(
        limit >= needed,
        "the open files limit ({limit}) is too low (needs {needed}): raise the hard limit \
         (`ulimit -Hn`)"
    );
}

fn report(measures: &Measures, scale: Scale) {
    let m = |name: &str| {
        *measures
            .get(name)
            .unwrap_or_else(|| panic!("nothing measured for {name}"))
    };
    let [low, high] = scale.densities;
    let mut rows: Vec<(String, f64, Option<f64>)> = Vec::new();
    let mut row = |label: String, value: f64, peer: Option<f64>| rows.push((label, value, peer));
    for q in ["p50", "p99"] {
        row(
            format!(
                "pod start {q}, create → first 200, ms (peer: raw `WasmRuntime` sandbox + create + start + first 200)"
            ),
            m(&format!("agent total {q} ms")),
            Some(m(&format!("raw total {q} ms"))),
        );
    }
    for (stage, label) in [
        ("create call", "create call answered"),
        ("create to bound", "create → binding seen on the watch"),
        ("create to reported", "create → agent's first status seen"),
        ("create to running", "create → `Running` seen"),
        ("running to 200", "`Running` seen → first 200"),
    ] {
        for q in ["p50", "p99"] {
            row(
                format!("pod start {q}, {label}, ms"),
                m(&format!("{stage} {q} ms")),
                None,
            );
        }
    }
    for q in ["p50", "p99"] {
        row(
            format!(
                "container run to exit {q}, pod create → `Succeeded` seen, `/bin/true` in busybox, ms (peer: `ctr run --rm` of the same image)"
            ),
            m(&format!("container task {q} ms")),
            Some(m(&format!("ctr run {q} ms"))),
        );
    }
    for q in ["p50", "p99"] {
        row(
            format!(
                "Wasm task pod {q}, create → `Succeeded` seen, examples/hello, ms (peer: the container pod)"
            ),
            m(&format!("wasm task {q} ms")),
            Some(m(&format!("container task {q} ms"))),
        );
    }
    // The density levels measured, with how many pods ran at each: a level
    // whose pods did not all run within the bound is measured over those
    // that did, and the level after it is not tried.
    let levels: Vec<(usize, usize, String)> = [low, high]
        .into_iter()
        .filter_map(|n| {
            let running = *measures.get(&format!("running {n}"))? as usize;
            let at = if running == n {
                format!("{n} pods")
            } else {
                format!("{running} pods (of {n} created; the rest not `Running` in time)")
            };
            Some((n, running, at))
        })
        .collect();
    for (n, _, at) in &levels {
        let agent = m(&format!("agent kib {n}"));
        let server = m(&format!("server kib {n}"));
        row(
            format!("memory per idle pod at {at}, agent process, KiB (peer: goal)"),
            agent,
            Some(KIB_PER_POD_GOAL),
        );
        row(
            format!("memory per idle pod at {at}, server process, KiB"),
            server,
            None,
        );
        row(
            format!("memory per idle pod at {at}, both processes, KiB (peer: goal)"),
            agent + server,
            Some(KIB_PER_POD_GOAL),
        );
    }
    for (n, _, at) in &levels {
        for q in ["p50", "p99"] {
            row(
                format!("probe request {q} to random pods of {at}, µs (peer: the one pod alone)"),
                m(&format!("probe {n} {q} us")),
                Some(m(&format!("single probe {q} us"))),
            );
        }
    }
    let mut from = 1;
    for (n, running, _) in &levels {
        row(
            format!("pods deployed per second, {from} → {running} (create → `Running`)"),
            m(&format!("deploy {n} pods per s")),
            None,
        );
        row(
            format!("CPU per pod deployed, {from} → {running}, agent process / server, µs"),
            m(&format!("agent cpu {n} us")),
            Some(m(&format!("server cpu {n} us"))),
        );
        from = *running;
    }
    let mut table = String::from("| measure | skiff | peer | skiff/peer |\n|---|---:|---:|---:|\n");
    for (label, value, peer) in &rows {
        match peer {
            Some(peer) => table.push_str(&format!(
                "| {label} | {value:.2} | {peer:.2} | {:.2}× |\n",
                value / peer
            )),
            None => table.push_str(&format!("| {label} | {value:.2} | — | — |\n")),
        }
    }
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let start_p99 = m("agent total p99 ms");
    let density = match levels.last() {
        Some((n, running, _)) if *n == high && *running == high => {
            let agent_kib = m(&format!("agent kib {high}"));
            let both_kib = agent_kib + m(&format!("server kib {high}"));
            format!(
                "agent process {} ({agent_kib:.2} KiB), agent and server together {} \
                 ({both_kib:.2} KiB)",
                met(agent_kib < KIB_PER_POD_GOAL),
                met(both_kib < KIB_PER_POD_GOAL),
            )
        }
        Some((n, running, _)) => format!(
            "NOT met: only {running} of {n} pods were `Running` within {} s",
            (DEPLOY_TIMEOUT + DEPLOY_TIMEOUT_PER_POD * (*n as u32)).as_secs()
        ),
        None => "not measured".to_owned(),
    };
    let container_ratio = m("container task p50 ms") / m("ctr run p50 ms");
    let verdict = format!(
        "Goals: pod start p99 < {START_P99_GOAL_MS} ms (create → first 200): {} ({start_p99:.2} \
         ms); < {KIB_PER_POD_GOAL} KiB per idle pod at {high} pods: {density}; container run to \
         exit through the agent ≤ {CONTAINER_RATIO_GOAL}× `ctr run --rm` (p50): {} \
         ({container_ratio:.2}×).",
        met(start_p99 < START_P99_GOAL_MS),
        met(container_ratio <= CONTAINER_RATIO_GOAL),
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
            pod_starts,
            probes,
            container_starts,
            ..
        } = scale;
        let mib = |name: &str| m(name) / 1024.0;
        let section = format!(
            "## Node agent\n\n\
             Command: `make bench` (runs `cargo bench --bench agent`).\n\
             One run on {cpus} CPUs ({model}), everything on loopback. The cluster is \
             `skiff server --no-agent` in a child process (embedded store, scheduler and \
             controllers) and `skiff agent` in the benchmark's process, joined over HTTPS with \
             the join token, pod addresses from `127.2.0.0/16`, pulling from Debian's \
             `docker-registry`. The workload is examples/hello-http, `runtimeClassName: \
             wasmtime`, `containerPort: 8080`. Pod start: after one warm-up pod (pull and \
             compile), {pod_starts} pods created one after another by an admin kube-rs client \
             over HTTPS, each timed from the create call to `Running` seen on a pod watch of \
             that client to the first 200 of `GET /` at `podIP:8080` (new connection, connect \
             retried every 200 µs); the watch also shows when the binding and the agent's first \
             status arrived. The peer, alternating with each pod: the same component started \
             through a `WasmRuntime` of its own (`run_sandbox` with an address of its own, \
             `create_container`, `start_container`, first 200); pods and the peer's sandboxes \
             stay deployed. Density: a fresh child process (mimalloc with \
             `MIMALLOC_PURGE_DELAY=0` and `MIMALLOC_ALLOW_THP=0` there and in its server, idle \
             blocking threads ending after 100 ms) deploys one pod, then {low} and {high} pods \
             in all ({CREATE_CONCURRENCY} creates in flight), waits until all are `Running` and \
             each has served one request, and reads VmRSS of the agent's process (agent, Wasm \
             runtime, and the benchmark's client and watch) and of the server after a \
             {settle} s pause: growth over the one-pod reading (agent process {agent1:.1} MiB, \
             server {server1:.1} MiB; with no pod {agent0:.1} and {server0:.1} MiB) divided by \
             the pods added. CPU per pod is user+system time over the deployment. Probe \
             requests: {probes} `GET /healthz` (after {PROBE_WARMUP} untimed), each on a new \
             connection with `Connection: close` (as a kubelet's httpGet probe), to pods picked \
             at random, against the same to the one pod when it was alone. Containers: a \
             private containerd (runtime-oci's test fixture) and a busybox image built from \
             Debian's static busybox; {container_starts} run-once pods (`runtimeClassName: \
             runc`, `restartPolicy: Never`, `command: [/bin/true]`) timed from the create call to \
             `Succeeded` seen on the watch, alternating with `ctr run --rm` of the same image on \
             the same containerd (timed around the `ctr` process), each followed by a Wasm task \
             pod (examples/hello, `runtimeClassName: wasmtime`) timed the same way.\n\n\
             {table}\n{verdict}\n",
            settle = SETTLE.as_secs(),
            agent1 = mib("agent rss1 kib"),
            server1 = mib("server rss1 kib"),
            agent0 = mib("agent rss0 kib"),
            server0 = mib("server rss0 kib"),
        );
        write_section(&out, "agent", &section);
        eprintln!("wrote the results to {out}");
    }
}
