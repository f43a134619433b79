//! End-to-end scheduling: 10,000 pods created through the API onto 1,000
//! and 5,000 fake nodes (Node objects only) on the embedded store, with the
//! scheduler and every controller running as `skiff server` runs them,
//! timed from the first create to the last binding seen by a watcher.
//! The peer in the same run is the same 10,000 creates for a scheduler
//! that does not exist (`schedulerName: none`), so the ratio says what
//! scheduling costs on top of creating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_control::apiserver::auth::{Identity, in_process_service};
use skiff_control::apiserver::handlers::Api as SkiffApi;
use skiff_control::controllers::{self, ControllerOptions};
use skiff_control::store::{EmbeddedConfig, EmbeddedStore};

/// Pods per round.
const PODS: usize = 10_000;
/// Concurrent creators.
const CREATORS: usize = 64;
/// Rounds per node count; the median is reported.
const ROUNDS: usize = 3;
/// Bound on every wait.
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// One measured round.
struct Round {
    pods_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    create_only_per_second: f64,
}

/// Runs the rounds for each node count and returns the markdown table.
pub async fn end_to_end(node_counts: &[usize]) -> String {
    let mut table = String::from(
        "| nodes | pods | scheduled pods/s (median) | create-only pods/s (peer) | ratio | per-pod p50 | per-pod p99 |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for &nodes in node_counts {
        let mut rounds = Vec::new();
        let cluster = Cluster::start(nodes).await;
        for round in 0..ROUNDS {
            let measured = cluster.round(round).await;
            eprintln!(
                "{nodes} nodes, round {round}: {:.0} pods/s scheduled, {:.0} pods/s create-only, p99 {:.1} ms",
                measured.pods_per_second, measured.create_only_per_second, measured.p99_ms
            );
            rounds.push(measured);
        }
        cluster.stop().await;
        let median = |f: &dyn Fn(&Round) -> f64| {
            let mut values: Vec<f64> = rounds.iter().map(f).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let scheduled = median(&|r| r.pods_per_second);
        let create_only = median(&|r| r.create_only_per_second);
        table.push_str(&format!(
            "| {nodes} | {PODS} | {scheduled:.0} | {create_only:.0} | {:.2}× | {:.1} ms | {:.1} ms |\n",
            scheduled / create_only,
            median(&|r| r.p50_ms),
            median(&|r| r.p99_ms),
        ));
    }
    table
}

struct Cluster {
    client: kube::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    controllers: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(nodes: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("store.redb")))
            .expect("open the store");
        let api = SkiffApi::new(Arc::new(store));
        api.bootstrap().await.expect("bootstrap");
        let client = skiff_sdk::client::in_process(
            in_process_service(api.router(), Identity::Admin),
            "default",
        );
        register_nodes(&client, nodes).await;
        let controller_client = skiff_sdk::client::in_process(
            in_process_service(api.router(), Identity::Component("controller-manager")),
            "default",
        );
        let options = ControllerOptions {
            identity: "bench".into(),
            // Fake nodes never renew a lease: keep them Ready for the run.
            node_monitor_grace_period: Duration::from_secs(24 * 3600),
            ..ControllerOptions::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controllers = tokio::spawn(controllers::run(controller_client, options, async move {
            let _ = stopped.await;
        }));
        let cluster = Self {
            client,
            stop,
            controllers,
            _dir: dir,
        };
        // The scheduler is up (leader, caches synced) once a probe binds.
        cluster.probe().await;
        cluster
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(STEP_TIMEOUT, self.controllers).await;
    }

    async fn probe(&self) {
        let namespace = "probe";
        create_namespace(&self.client, namespace).await;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        pods.create(&PostParams::default(), &bench_pod("probe", None))
            .await
            .expect("create the probe");
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let pod = pods.get("probe").await.expect("get the probe");
            if pod.spec.and_then(|s| s.node_name).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the scheduler never bound the probe"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn round(&self, round: usize) -> Round {
        // The peer: creates nobody schedules.
        let peer_ns = format!("peer-{round}");
        create_namespace(&self.client, &peer_ns).await;
        let peer_start = Instant::now();
        create_pods(&self.client, &peer_ns, Some("none")).await;
        let create_only_per_second = PODS as f64 / peer_start.elapsed().as_secs_f64();

        let namespace = format!("round-{round}");
        create_namespace(&self.client, &namespace).await;
        let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let watcher = tokio::spawn(watch_bindings(
            Api::namespaced(self.client.clone(), &namespace),
            bound.clone(),
        ));
        // Let the watch start before the first create.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        let created = create_pods(&self.client, &namespace, None).await;
        let deadline = Instant::now() + STEP_TIMEOUT;
        while bound.lock().expect("never poisoned").len() < PODS {
            assert!(Instant::now() < deadline, "not every pod was bound in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watcher.abort();
        let bound = bound.lock().expect("never poisoned");
        let last = bound.values().max().copied().expect("pods were bound");
        let mut latencies: Vec<f64> = created
            .iter()
            .map(|(name, at)| bound[name].duration_since(*at).as_secs_f64() * 1e3)
            .collect();
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        Round {
            pods_per_second: PODS as f64 / last.duration_since(start).as_secs_f64(),
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            create_only_per_second,
        }
    }
}

/// Ready nodes across three zones, a third of them Wasm-enabled, each with
/// room for 110 pods.
async fn register_nodes(client: &kube::Client, count: usize) {
    let nodes: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..count)
        .for_each_concurrent(CREATORS, |i| {
            let nodes = nodes.clone();
            async move {
                let name = format!("node-{i:05}");
                let mut labels = json!({
                    "kubernetes.io/hostname": name,
                    "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
                });
                if i % 3 == 0 {
                    labels["skiff.dev/wasm-enabled"] = json!("true");
                }
                let node: Node = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": labels},
                }))
                .expect("a node");
                nodes
                    .create(&PostParams::default(), &node)
                    .await
                    .expect("create a node");
                let status = json!({"status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                }});
                nodes
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .expect("node status");
            }
        })
        .await;
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("a namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create a namespace");
}

fn bench_pod(name: &str, scheduler: Option<&str>) -> Pod {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{
            "name": "app", "image": "registry.local/app:1",
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        }]},
    });
    if let Some(scheduler) = scheduler {
        pod["spec"]["schedulerName"] = json!(scheduler);
    }
    serde_json::from_value(pod).expect("a pod")
}

/// Creates [`PODS`] pods from [`CREATORS`] concurrent callers; returns when
/// each create was called.
async fn create_pods(
    client: &kube::Client,
    namespace: &str,
    scheduler: Option<&str>,
) -> Vec<(String, Instant)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let per_creator = PODS / CREATORS + 1;
    let tasks: Vec<_> = (0..CREATORS)
        .map(|creator| {
            let pods = pods.clone();
            let scheduler = scheduler.map(str::to_owned);
            tokio::spawn(async move {
                let mut created = Vec::new();
                for i in 0..per_creator {
                    let index = creator * per_creator + i;
                    if index >= PODS {
                        break;
                    }
                    let name = format!("pod-{index:05}");
                    let pod = bench_pod(&name, scheduler.as_deref());
                    let at = Instant::now();
                    pods.create(&PostParams::default(), &pod)
                        .await
                        .expect("create a pod");
                    created.push((name, at));
                }
                created
            })
        })
        .collect();
    let mut created = Vec::with_capacity(PODS);
    for task in tasks {
        created.extend(task.await.expect("creator task"));
    }
    created
}

/// Records when each pod of `pods` is first seen bound.
async fn watch_bindings(pods: Api<Pod>, bound: Arc<Mutex<HashMap<String, Instant>>>) {
    let stream = kube::runtime::watcher(pods, kube::runtime::watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(kube::runtime::watcher::Event::Apply(pod))
            | Ok(kube::runtime::watcher::Event::InitApply(pod)) => pod,
            _ => continue,
        };
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some()
        {
            let name = pod.metadata.name.unwrap_or_default();
            bound
                .lock()
                .expect("never poisoned")
                .entry(name)
                .or_insert_with(Instant::now);
        }
    }
}
