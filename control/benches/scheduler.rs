//! Scheduler benchmark.
//!
//! Placement: the pure decision (`control::scheduler::placement`) on
//! snapshots of 1,000 and 5,000 realistic nodes (three zones; most
//! wasm-enabled, some OCI-enabled; some tainted, some with GPUs; 4 cpu /
//! 16Gi / 110 pods each) with two pods already on every node. Each round
//! places 10,000 pending pods (plain, with a node selector, with node
//! affinity, and `wasmtime` pods) one after the other, computing each pod's
//! requirements, placing it and assuming it, as the scheduler loop does,
//! and reports the median decisions/s over 5 rounds. The peer, in the same
//! run, is the same work with a full scan (every node evaluated, no
//! sampling).
//!
//! Run with `cargo bench -p skiff-control --bench scheduler`;
//! `SKIFF_BENCH_NODES=1000` (a comma-separated list) picks the node counts,
//! e.g. to profile one of them; `SKIFF_BENCH_SCHEDULER_PART=placement` runs
//! the placement part only.

use std::time::Instant;

#[path = "support/markdown.rs"]
mod markdown;
#[path = "support/scheduling.rs"]
mod scheduling;
use markdown::write_section;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use serde_json::json;
use skiff_control::scheduler::placement::{NodesToScore, Requirements, Snapshot, place_with};
use skiff_sdk::labels::{ARCH, GPU_ENABLED, HOSTNAME, OCI_ENABLED, OS, WASM_ENABLED};

/// The allocator of the `skiff` binary, so allocation costs as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 5;
const NODE_COUNTS: [usize; 2] = [1_000, 5_000];
const PENDING_PODS: usize = 10_000;
const ZONES: usize = 3;
/// Distinct images across nodes and pods.
const IMAGES: usize = 40;

fn main() {
    let placement = placement_bench();
    if std::env::var("SKIFF_BENCH_SCHEDULER_PART").as_deref() == Ok("placement") {
        println!("{placement}");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let end_to_end = runtime.block_on(scheduling::end_to_end(&node_counts()));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let body = format!(
        "{placement}\n\n### End to end\n\n\
         10,000 pods created through the API (64 concurrent in-process clients) onto fake \
         Ready nodes on the embedded store, with the scheduler and every controller running; \
         first create → last binding seen by a watcher, median of 3 rounds on {cpus} CPUs. \
         The peer is the same creates for a scheduler that does not exist.\n\n{end_to_end}\n\
         Goal: ≥ 1,000 pods/s end to end at 5,000 nodes.\n"
    );
    println!("{body}");
    if let Ok(path) = std::env::var("SKIFF_BENCH_OUT") {
        write_section(
            &path,
            "scheduler",
            &format!(
                "\n## Scheduler\n\n`make bench` (`cargo bench -p skiff-control --bench scheduler`).\n\n{body}\n"
            ),
        );
    }
}

fn node_counts() -> Vec<usize> {
    match std::env::var("SKIFF_BENCH_NODES") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse().expect("SKIFF_BENCH_NODES: node counts"))
            .collect(),
        Err(_) => NODE_COUNTS.to_vec(),
    }
}

/// Medians of one configuration.
struct Measure {
    decisions_per_second: f64,
    nodes_visited_per_decision: f64,
    unschedulable: usize,
}

/// Times placement at each node count, sampled and full scan, and prints
/// a markdown table.
fn placement_bench() -> String {
    let wasmtime = wasmtime_class();
    let pods: Vec<Pod> = (0..PENDING_PODS).map(pending_pod).collect();
    let mut rows = Vec::new();
    for nodes in node_counts() {
        let snapshot = cluster(nodes);
        let sampled = measure(&snapshot, &pods, &wasmtime, NodesToScore::Adaptive);
        let full = measure(&snapshot, &pods, &wasmtime, NodesToScore::Percentage(100));
        eprintln!(
            "{nodes} nodes: sampled {:.0}/s, full scan {:.0}/s",
            sampled.decisions_per_second, full.decisions_per_second
        );
        rows.push((nodes, sampled, full));
    }

    let mut table = String::from(
        "| nodes | decisions/s (sampled) | µs/decision | nodes visited/decision | \
         decisions/s (full scan) | nodes visited/decision | sampled/full | unschedulable |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (nodes, sampled, full) in &rows {
        table.push_str(&format!(
            "| {nodes} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.2}× | {} / {} |\n",
            sampled.decisions_per_second,
            1e6 / sampled.decisions_per_second,
            sampled.nodes_visited_per_decision,
            full.decisions_per_second,
            full.nodes_visited_per_decision,
            sampled.decisions_per_second / full.decisions_per_second,
            sampled.unschedulable,
            full.unschedulable,
        ));
    }
    let at_1000 = rows
        .iter()
        .find(|(nodes, ..)| *nodes == 1_000)
        .map_or(0.0, |(_, sampled, _)| sampled.decisions_per_second);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "### Placement\n\n\
         Medians of {ROUNDS} rounds on {cpus} CPUs, one thread; each round places \
         {PENDING_PODS} pods (requirements, place, assume) on a fresh copy of a snapshot \
         with 2 pods per node.\n\n{table}\n\
         Goal: ≥ 20,000 decisions/s at 1,000 nodes: {} ({at_1000:.0}).",
        if at_1000 >= 20_000.0 {
            "met"
        } else {
            "not met"
        },
    )
}

fn measure(
    base: &Snapshot,
    pods: &[Pod],
    wasmtime: &RuntimeClass,
    nodes_to_score: NodesToScore,
) -> Measure {
    let mut rates = Vec::with_capacity(ROUNDS);
    let mut visited_per_decision = Vec::with_capacity(ROUNDS);
    let mut unschedulable = 0;
    for _ in 0..ROUNDS {
        let mut snapshot = base.clone();
        let (mut start, mut visited) = (0, 0);
        unschedulable = 0;
        let began = Instant::now();
        for pod in pods {
            let class = pod
                .spec
                .as_ref()
                .and_then(|spec| spec.runtime_class_name.as_deref())
                .filter(|name| *name == "wasmtime")
                .map(|_| wasmtime);
            let requirements = Requirements::new(pod, class);
            match place_with(&requirements, &snapshot, start, nodes_to_score) {
                Ok(placement) => {
                    snapshot.assume(pod, &placement.node);
                    start = placement.next_start;
                    visited += placement.nodes_visited;
                }
                Err(_) => unschedulable += 1,
            }
        }
        let elapsed = began.elapsed().as_secs_f64();
        rates.push(pods.len() as f64 / elapsed);
        visited_per_decision.push(visited as f64 / pods.len() as f64);
    }
    Measure {
        decisions_per_second: median(rates),
        nodes_visited_per_decision: median(visited_per_decision),
        unschedulable,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `nodes` Ready nodes with 2 pods each: a node-exporter-like pod with a
/// host port and an application pod.
fn cluster(nodes: usize) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for i in 0..nodes {
        let node = cluster_node(i);
        snapshot.upsert_node(&node);
        let name = node.metadata.name.as_deref().expect("name");
        snapshot.add_pod(&bound_pod(format!("exporter-{i}"), "exporters", name, true));
        snapshot.add_pod(&bound_pod(
            format!("app-{i}"),
            &format!("rs-{}", i % 200),
            name,
            false,
        ));
    }
    snapshot
}

/// Node `i`: zone `i % 3`; wasm-enabled unless i is a multiple of 5; OCI-enabled
/// on 3 in 5; 1 in 20 has 4 GPUs (and the usual `nvidia.com/gpu` taint);
/// 1 in 10 is dedicated (NoSchedule taint); 1 in 20 is spot
/// (PreferNoSchedule); 1 in 10 is arm64; 8 images from a pool of 40.
fn cluster_node(i: usize) -> Node {
    let name = format!("node-{i:05}");
    let gpu = i % 20 == 7;
    let mut labels = json!({
        HOSTNAME: name,
        OS: "linux",
        ARCH: if i % 10 == 3 { "arm64" } else { "amd64" },
        "topology.kubernetes.io/region": "region-1",
        "topology.kubernetes.io/zone": format!("zone-{}", i % ZONES),
        "node.kubernetes.io/instance-type": "m5.xlarge",
        "skiff.dev/pool": format!("pool-{}", i % 4),
        WASM_ENABLED: if i.is_multiple_of(5) { "false" } else { "true" },
        OCI_ENABLED: if i % 5 < 3 { "true" } else { "false" },
    });
    let mut allocatable = json!({
        "cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi",
    });
    let mut taints = Vec::new();
    if gpu {
        labels[GPU_ENABLED] = json!("true");
        allocatable["nvidia.com/gpu"] = json!("4");
        taints.push(json!({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}));
    }
    if i % 10 == 5 {
        taints.push(json!({"key": "dedicated", "value": "batch", "effect": "NoSchedule"}));
    }
    if i % 20 == 11 {
        taints.push(json!({"key": "spot", "effect": "PreferNoSchedule"}));
    }
    let images: Vec<_> = (0..8)
        .map(|k| {
            let image = (i + k * 5) % IMAGES;
            json!({"names": [format!("registry.local/app-{image}@sha256:{image:064x}"),
                             format!("registry.local/app-{image}:1")],
                   "sizeBytes": 50_000_000})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "allocatable": allocatable,
            "capacity": allocatable,
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "PIDPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "images": images,
        },
    }))
    .expect("node")
}

fn bound_pod(name: String, owner: &str, node: &str, exporter: bool) -> Pod {
    let (cpu, memory) = if exporter {
        ("50m", "64Mi")
    } else {
        ("250m", "512Mi")
    };
    let ports = if exporter {
        json!([{"containerPort": 9100, "hostPort": 9100}])
    } else {
        json!([{"containerPort": 8080}])
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                "uid": format!("uid-{owner}"), "controller": true}]},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "registry.local/app-1:1", "ports": ports,
                "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
        },
        "status": {"phase": "Running"},
    }))
    .expect("pod")
}

/// Pending pod `i`: 4 in 10 plain, 2 in 10 with a node selector (a zone and
/// OCI), 2 in 10 with node affinity (required: two zones and amd64;
/// preferred: no GPU, zone-0), 2 in 10 `wasmtime` pods; owned by 100
/// ReplicaSets.
fn pending_pod(i: usize) -> Pod {
    let owner = format!("deploy-{}", i % 100);
    let image = format!("registry.local/app-{}:1", i % IMAGES);
    let mut spec = json!({
        "containers": [{"name": "main", "image": image,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
    });
    match i % 10 {
        0..=3 => {}
        4 | 5 => {
            spec["nodeSelector"] = json!({
                "topology.kubernetes.io/zone": format!("zone-{}", i % ZONES),
                OCI_ENABLED: "true",
            });
        }
        6 | 7 => {
            spec["affinity"] = json!({"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [
                        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-0", "zone-1"]},
                        {"key": ARCH, "operator": "In", "values": ["amd64"]},
                    ]},
                ]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 50, "preference": {"matchExpressions": [
                        {"key": GPU_ENABLED, "operator": "DoesNotExist"}]}},
                    {"weight": 20, "preference": {"matchExpressions": [
                        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-0"]}]}},
                ],
            }});
        }
        _ => {
            spec["runtimeClassName"] = json!("wasmtime");
            spec["containers"][0]["image"] = json!(format!("registry.local/wasm-{}:1", i % 10));
            spec["containers"][0]["resources"]["requests"] =
                json!({"cpu": "50m", "memory": "64Mi"});
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("pending-{i}"), "namespace": "default",
            "uid": format!("uid-pending-{i}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                "uid": format!("uid-{owner}"), "controller": true}]},
        "spec": spec,
        "status": {"phase": "Pending"},
    }))
    .expect("pod")
}

/// skiff's default `wasmtime` RuntimeClass.
fn wasmtime_class() -> RuntimeClass {
    serde_json::from_value(json!({
        "metadata": {"name": "wasmtime"},
        "handler": "wasmtime",
        "scheduling": {"nodeSelector": {WASM_ENABLED: "true"}},
    }))
    .expect("runtime class")
}
