//! Controller scenarios against an in-process API server on the embedded
//! store, with fake nodes (Node and Lease objects only; the test plays the
//! node agent where one is needed): ReplicaSets, garbage collection in
//! every mode, endpoints following readiness, node loss through eviction.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Event, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use skiff_control::apiserver::defaults::Admission;
use skiff_control::controllers::{self, ControllerOptions};
use skiff_control::leader::LeaderElection;
use tokio::task::JoinHandle;

use crate::api::{Harness, embedded};

/// How long a test waits for the controllers to reach a state.
const WAIT: Duration = Duration::from_secs(30);

/// An in-process API with the controllers running against it.
pub struct Controlled {
    pub harness: Harness,
    pub client: Client,
    controllers: JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Controlled {
    pub async fn start(options: ControllerOptions) -> Self {
        let harness = embedded().await;
        let client = harness.client.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controllers = tokio::spawn(controllers::run(client.clone(), options, async move {
            let _ = stopped.await;
        }));
        Self {
            harness,
            client,
            controllers,
            stop,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.controllers)
            .await
            .expect("controllers stop")
            .unwrap();
    }
}

/// Options with short timings for tests.
pub fn fast_options() -> ControllerOptions {
    ControllerOptions {
        identity: "test".to_owned(),
        leader_election: LeaderElection {
            lease_duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(3),
            retry_period: Duration::from_millis(500),
        },
        node_monitor_grace_period: Duration::from_secs(3),
        ..ControllerOptions::default()
    }
}

/// Polls `check` until it returns `Some`, panicking with `what` after
/// [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/hello:1"}]},
            },
        },
    }))
    .unwrap()
}

async fn owned_pods(pods: &Api<Pod>, owner: &str) -> Vec<Pod> {
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|pod| {
            pod.owner_references()
                .iter()
                .any(|o| o.name == owner && o.controller == Some(true))
        })
        .collect()
}

fn live(pods: Vec<Pod>) -> Vec<Pod> {
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_sets_create_replace_scale_and_adopt() {
    let cluster = Controlled::start(fast_options()).await;
    let sets: Api<ReplicaSet> = Api::default_namespaced(cluster.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(cluster.client.clone());
    sets.create(&PostParams::default(), &replica_set("web", 3))
        .await
        .unwrap();

    let first = eventually("3 pods", || async {
        let owned = owned_pods(&pods, "web").await;
        (owned.len() == 3).then_some(owned)
    })
    .await;
    for pod in &first {
        assert!(pod.name_any().starts_with("web-"), "{}", pod.name_any());
        assert_eq!(pod.labels()["app"], "web");
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.block_owner_deletion),
            ("ReplicaSet", Some(true))
        );
    }
    eventually("status.replicas = 3", || async {
        let rs = sets.get("web").await.unwrap();
        let status = rs.status?;
        (status.replicas == 3 && status.observed_generation == Some(1)).then_some(())
    })
    .await;

    // A deleted pod is replaced by a new one.
    let victim = first[0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually("a replacement pod", || async {
        let owned = owned_pods(&pods, "web").await;
        (owned.len() == 3 && owned.iter().all(|p| p.name_any() != victim)).then_some(())
    })
    .await;

    // Scale down through the scale subresource.
    sets.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("1 pod", || async {
        (owned_pods(&pods, "web").await.len() == 1).then_some(())
    })
    .await;

    // An orphan with matching labels is adopted; being one too many, it
    // (or another) is then deleted.
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/hello:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    eventually("the orphan adopted or removed, 1 pod left", || async {
        let all = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items;
        let all = live(all);
        let owned = all
            .iter()
            .filter(|p| p.owner_references().iter().any(|o| o.name == "web"))
            .count();
        (all.len() == 1 && owned == 1).then_some(())
    })
    .await;

    // A pod whose labels stop matching is released and replaced.
    let kept = live(owned_pods(&pods, "web").await).remove(0).name_any();
    pods.patch(
        &kept,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    eventually("released pod and a replacement", || async {
        let released = pods.get(&kept).await.ok()?;
        let owned = live(owned_pods(&pods, "web").await);
        (released.owner_references().is_empty() && owned.len() == 1).then_some(())
    })
    .await;

    // Events tell what happened.
    let events: Api<Event> = Api::default_namespaced(cluster.client.clone());
    eventually("SuccessfulCreate events", || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        list.iter()
            .any(|e| {
                e.reason.as_deref() == Some("SuccessfulCreate")
                    && e.involved_object.name.as_deref() == Some("web")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("Created pod: web-"))
            })
            .then_some(())
    })
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_cascades_in_every_mode() {
    let cluster = Controlled::start(fast_options()).await;
    let sets: Api<ReplicaSet> = Api::default_namespaced(cluster.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(cluster.client.clone());
    for name in ["background", "orphan", "foreground"] {
        sets.create(&PostParams::default(), &replica_set(name, 2))
            .await
            .unwrap();
    }
    for name in ["background", "orphan", "foreground"] {
        eventually("2 pods each", || async {
            (owned_pods(&pods, name).await.len() == 2).then_some(())
        })
        .await;
    }

    // Background: the owner goes at once, the collector deletes the pods.
    sets.delete("background", &DeleteParams::background())
        .await
        .unwrap();
    eventually("background dependents deleted", || async {
        let left = pods
            .list(&ListParams::default().labels("app=background"))
            .await
            .unwrap()
            .items;
        left.is_empty().then_some(())
    })
    .await;

    // Orphan: the pods stay, without the reference; then the owner goes.
    sets.delete("orphan", &DeleteParams::orphan())
        .await
        .unwrap();
    eventually("orphaned owner gone", || async {
        sets.get_opt("orphan")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let orphans = pods
        .list(&ListParams::default().labels("app=orphan"))
        .await
        .unwrap()
        .items;
    assert_eq!(orphans.len(), 2);
    assert!(orphans.iter().all(|p| p.owner_references().is_empty()));

    // Foreground: the owner waits (deletionTimestamp, finalizer) until its
    // pods are gone.
    sets.delete("foreground", &DeleteParams::foreground())
        .await
        .unwrap();
    let waiting = sets.get("foreground").await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion")
    );
    eventually("foreground owner gone after its pods", || async {
        let gone = sets.get_opt("foreground").await.unwrap().is_none();
        let left = pods
            .list(&ListParams::default().labels("app=foreground"))
            .await
            .unwrap()
            .items;
        if gone {
            assert!(left.is_empty(), "the owner went before its pods");
        }
        gone.then_some(())
    })
    .await;
    cluster.stop().await;
}

fn bound_pod(name: &str, labels: Value, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "image": "registry.local/hello:1",
                            "ports": [{"name": "http", "containerPort": 8080}]}],
        },
    }))
    .unwrap()
}

/// Plays the node agent: the pod runs at `ip`, ready or not.
async fn report(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": status,
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        }})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_readiness() {
    let cluster = Controlled::start(fast_options()).await;
    let client = cluster.client.clone();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let endpoints: Api<Endpoints> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());

    for (name, ip) in [("api-1", "10.42.0.11"), ("api-2", "10.42.0.12")] {
        pods.create(
            &PostParams::default(),
            &bound_pod(name, json!({"app": "api"}), "node-a"),
        )
        .await
        .unwrap();
        report(&pods, name, ip, true).await;
    }
    pods.create(
        &PostParams::default(),
        &bound_pod("other", json!({"app": "other"}), "node-a"),
    )
    .await
    .unwrap();
    report(&pods, "other", "10.42.0.13", true).await;
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"},
                 "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();

    let addresses = |e: &Endpoints| -> (Vec<String>, Vec<String>) {
        let subsets = e.subsets.clone().unwrap_or_default();
        let ips = |list: Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
            let mut ips: Vec<String> = list.unwrap_or_default().into_iter().map(|a| a.ip).collect();
            ips.sort();
            ips
        };
        let subset = subsets.first().cloned().unwrap_or_default();
        (ips(subset.addresses), ips(subset.not_ready_addresses))
    };
    let ready = eventually("both pods ready in the Endpoints", || async {
        let e = endpoints.get_opt("api").await.unwrap()?;
        (addresses(&e).0 == ["10.42.0.11", "10.42.0.12"]).then_some(e)
    })
    .await;
    let port = &ready.subsets.as_ref().unwrap()[0].ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("web"), 8080));

    // Readiness lost: the address moves to notReadyAddresses, and the
    // slice's condition follows.
    report(&pods, "api-2", "10.42.0.12", false).await;
    eventually("api-2 not ready", || async {
        let e = endpoints.get("api").await.unwrap();
        (addresses(&e) == (vec!["10.42.0.11".to_owned()], vec!["10.42.0.12".to_owned()]))
            .then_some(())
    })
    .await;
    eventually("the slice says api-2 is not ready", || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=api"))
            .await
            .unwrap()
            .items;
        let slice = list.first()?;
        let endpoints = slice.endpoints.as_ref()?;
        let state = |ip: &str| {
            endpoints
                .iter()
                .find(|e| e.addresses == [ip])
                .and_then(|e| e.conditions.as_ref()?.ready)
        };
        (list.len() == 1
            && slice.address_type == "IPv4"
            && state("10.42.0.11") == Some(true)
            && state("10.42.0.12") == Some(false))
        .then_some(())
    })
    .await;

    // A pod whose labels change leaves; a deleted pod leaves.
    pods.patch(
        "api-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "moved"}}})),
    )
    .await
    .unwrap();
    eventually("api-1 removed after relabel", || async {
        let e = endpoints.get("api").await.unwrap();
        (addresses(&e) == (vec![], vec!["10.42.0.12".to_owned()])).then_some(())
    })
    .await;

    // The Service goes, and its Endpoints and slices with it.
    services
        .delete("api", &DeleteParams::default())
        .await
        .unwrap();
    eventually("endpoints and slices collected", || async {
        let e = endpoints.get_opt("api").await.unwrap();
        let s = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=api"))
            .await
            .unwrap()
            .items;
        (e.is_none() && s.is_empty()).then_some(())
    })
    .await;
    cluster.stop().await;
}

pub fn fake_node(name: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True",
                            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
        },
    }))
    .unwrap()
}

/// Creates a node with a Ready status and its lease.
pub async fn register_node(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(&PostParams::default(), &fake_node(name))
        .await
        .unwrap();
    // Status goes through the status subresource.
    let status = json!({"status": fake_node(name).status});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    renew_lease(client, name).await;
}

/// The node agent's heartbeat.
pub async fn renew_lease(client: &Client, name: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = jiff::Timestamp::now().to_string();
    let spec = json!({"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now});
    if leases.get_opt(name).await.unwrap().is_some() {
        leases
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .unwrap();
    } else {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name}, "spec": spec,
        });
        leases
            .create(
                &PostParams::default(),
                &serde_json::from_value(lease).unwrap(),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_nodes_go_unknown_get_tainted_and_their_pods_are_evicted() {
    let cluster = Controlled::start(fast_options()).await;
    // Pods tolerate a lost node for 2 s instead of 300.
    cluster.harness.api.set_admission(Admission {
        not_ready_toleration_seconds: 2,
        unreachable_toleration_seconds: 2,
    });
    let client = cluster.client.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    register_node(&client, "alive").await;
    register_node(&client, "doomed").await;

    // Both renew until "doomed" is told to stop.
    let doomed_beats = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let keeper = {
        let client = client.clone();
        let doomed_beats = doomed_beats.clone();
        tokio::spawn(async move {
            loop {
                renew_lease(&client, "alive").await;
                if doomed_beats.load(std::sync::atomic::Ordering::SeqCst) {
                    renew_lease(&client, "doomed").await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    // IPAM: every node gets its own pod CIDR.
    let cidrs = eventually("pod CIDRs", || async {
        let mut cidrs = Vec::new();
        for name in ["alive", "doomed"] {
            cidrs.push(nodes.get(name).await.unwrap().spec?.pod_cidr?);
        }
        Some(cidrs)
    })
    .await;
    assert_ne!(cidrs[0], cidrs[1]);
    assert!(
        cidrs
            .iter()
            .all(|c| c.starts_with("10.42.") && c.ends_with("/24")),
        "{cidrs:?}"
    );

    // The pod got the default tolerations from admission.
    pods.create(
        &PostParams::default(),
        &bound_pod("victim", json!({"app": "v"}), "doomed"),
    )
    .await
    .unwrap();
    report(&pods, "victim", "10.42.1.5", true).await;
    let victim = pods.get("victim").await.unwrap();
    let tolerations = victim.spec.unwrap().tolerations.unwrap();
    assert!(tolerations.iter().any(
        |t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")
            && t.toleration_seconds == Some(2)
    ));

    // Two replicas, spread over both nodes.
    let sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    sets.create(&PostParams::default(), &replica_set("replicated", 2))
        .await
        .unwrap();
    eventually("one replica on each node", || async {
        let owned = owned_pods(&pods, "replicated").await;
        let mut nodes: Vec<String> = owned
            .iter()
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        nodes.sort();
        (nodes == ["alive", "doomed"]).then_some(())
    })
    .await;

    // "doomed" stops renewing.
    doomed_beats.store(false, std::sync::atomic::Ordering::SeqCst);
    let doomed = eventually("doomed node Unknown and tainted", || async {
        let node = nodes.get("doomed").await.unwrap();
        let ready = node
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        let taints = node.spec.as_ref()?.taints.clone().unwrap_or_default();
        let unreachable = taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
        (ready.status == "Unknown" && unreachable).then_some(ready)
    })
    .await;
    assert_eq!(doomed.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        doomed.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );

    // The pod is marked not ready, then evicted after its 2 s.
    eventually("victim evicted", || async {
        let pod = pods.get_opt("victim").await.unwrap();
        pod.is_none_or(|p| p.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;

    // A ReplicaSet's pod on the lost node is replaced on the live one.
    eventually("both replicas live on the node that is alive", || async {
        let owned = live(owned_pods(&pods, "replicated").await);
        let nodes: Vec<String> = owned
            .iter()
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        (nodes.len() == 2 && nodes.iter().all(|n| n == "alive")).then_some(())
    })
    .await;
    // The live node keeps no taints.
    let alive = nodes.get("alive").await.unwrap();
    assert!(alive.spec.unwrap().taints.unwrap_or_default().is_empty());
    keeper.abort();
    cluster.stop().await;
}

/// A Ready node with `labels`, `cpu` allocatable, and a fresh lease.
pub async fn register_node_with(client: &Client, name: &str, labels: Value, cpu: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut node = fake_node(name);
    let mut all_labels = node.metadata.labels.clone().unwrap_or_default();
    for (k, v) in labels.as_object().unwrap() {
        all_labels.insert(k.clone(), v.as_str().unwrap().to_owned());
    }
    node.metadata.labels = Some(all_labels);
    let status = node.status.as_mut().unwrap();
    for map in [
        status.allocatable.as_mut().unwrap(),
        status.capacity.as_mut().unwrap(),
    ] {
        map.insert(
            "cpu".to_owned(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity(cpu.to_owned()),
        );
    }
    let status = json!({"status": node.status.clone()});
    nodes.create(&PostParams::default(), &node).await.unwrap();
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    renew_lease(client, name).await;
}

fn pod_with(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "app", "image": "registry.local/hello:1",
        "resources": spec.get("cpu").map(|cpu| json!({"requests": {"cpu": cpu}})).unwrap_or(json!({}))}]);
    spec.as_object_mut().unwrap().remove("cpu");
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

async fn node_of(pods: &Api<Pod>, name: &str) -> Option<String> {
    pods.get(name).await.unwrap().spec?.node_name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_binds_by_runtime_class_and_resources_and_retries_unschedulable_pods() {
    let cluster = Controlled::start(fast_options()).await;
    let client = cluster.client.clone();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    register_node_with(
        &client,
        "wasm-1",
        json!({"skiff.dev/wasm-enabled": "true"}),
        "2",
    )
    .await;
    register_node_with(
        &client,
        "oci-1",
        json!({"skiff.dev/oci-enabled": "true"}),
        "2",
    )
    .await;

    pods.create(
        &PostParams::default(),
        &pod_with("w", json!({"runtimeClassName": "wasmtime"})),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod_with("c", json!({"runtimeClassName": "runc"})),
    )
    .await
    .unwrap();
    let placed = eventually("both bound", || async {
        Some((node_of(&pods, "w").await?, node_of(&pods, "c").await?))
    })
    .await;
    assert_eq!(placed, ("wasm-1".to_owned(), "oci-1".to_owned()));
    let w = pods.get("w").await.unwrap();
    let scheduled = w.status.unwrap().conditions.unwrap();
    assert!(
        scheduled
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );

    // Too big for any node: Unschedulable with Kubernetes' message.
    pods.create(
        &PostParams::default(),
        &pod_with("big", json!({"cpu": "3"})),
    )
    .await
    .unwrap();
    let condition = eventually("big Unschedulable", || async {
        let pod = pods.get("big").await.unwrap();
        let condition = pod
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        Some(condition)
    })
    .await;
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(
        condition.message.as_deref(),
        Some("0/2 nodes are available: 2 Insufficient cpu.")
    );
    let events: Api<Event> = Api::default_namespaced(client.clone());
    eventually("a FailedScheduling event", || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        list.iter()
            .any(|e| {
                e.reason.as_deref() == Some("FailedScheduling")
                    && e.involved_object.name.as_deref() == Some("big")
                    && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;

    // A node that fits arrives: the pod is retried and bound there.
    register_node_with(&client, "large", json!({}), "8").await;
    let node = eventually("big bound once a node fits", || async {
        node_of(&pods, "big").await
    })
    .await;
    assert_eq!(node, "large");
    eventually("a Scheduled event", || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        list.iter()
            .any(|e| {
                e.reason.as_deref() == Some("Scheduled")
                    && e.message.as_deref() == Some("Successfully assigned default/big to large")
            })
            .then_some(())
    })
    .await;

    // Pods of one ReplicaSet spread over the nodes that fit them.
    let sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    sets.create(&PostParams::default(), &replica_set("spread", 3))
        .await
        .unwrap();
    let nodes = eventually("3 spread pods bound", || async {
        let owned = owned_pods(&pods, "spread").await;
        let nodes: Option<Vec<String>> = owned
            .iter()
            .map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        nodes.filter(|n| n.len() == 3)
    })
    .await;
    let distinct: std::collections::HashSet<&String> = nodes.iter().collect();
    assert_eq!(distinct.len(), 3, "{nodes:?}");
    cluster.stop().await;
}

/// One "server" of the election test: an API over its own etcd
/// connection, and its controllers (with `identity`).
async fn etcd_member(
    endpoint: &str,
    identity: &str,
) -> (Client, JoinHandle<()>, tokio::sync::oneshot::Sender<()>) {
    let store = skiff_control::store::EtcdStore::connect(
        skiff_control::store::EtcdConfig::default().endpoints([endpoint.to_owned()]),
    )
    .await
    .unwrap();
    let api = skiff_control::apiserver::handlers::Api::new(std::sync::Arc::new(store));
    api.bootstrap().await.unwrap();
    let service = skiff_control::apiserver::auth::in_process_service(
        api.router(),
        skiff_control::apiserver::auth::Identity::Admin,
    );
    let client = skiff_sdk::client::in_process(service, "default");
    let options = ControllerOptions {
        identity: identity.to_owned(),
        ..fast_options()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controllers::run(client.clone(), options, async move {
        let _ = stopped.await;
    }));
    (client, task, stop)
}

async fn holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let lease = leases.get_opt(controllers::LEADER_LEASE).await.ok()??;
    lease.spec?.holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd; run by make test"]
async fn leader_dies_and_the_other_server_takes_over_without_double_binding() {
    let etcd = tokio::task::spawn_blocking(crate::support::etcd::EtcdProcess::start)
        .await
        .unwrap();
    let (client_a, task_a, _stop_a) = etcd_member(&etcd.endpoint(), "server-a").await;
    let (client_b, task_b, stop_b) = etcd_member(&etcd.endpoint(), "server-b").await;
    for name in ["n1", "n2", "n3"] {
        register_node(&client_a, name).await;
    }

    // Exactly one leads.
    let leader = eventually("a leader", || async { holder(&client_a).await }).await;
    assert!(leader == "server-a" || leader == "server-b", "{leader}");
    let (leader_task, survivor, survivor_name) = if leader == "server-a" {
        (task_a, client_b.clone(), "server-b")
    } else {
        (task_b, client_a.clone(), "server-a")
    };

    // Record every nodeName each pod ever shows.
    let pods: Api<Pod> = Api::default_namespaced(survivor.clone());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        std::collections::HashSet<String>,
    >::new()));
    let recorder = {
        let seen = seen.clone();
        let pods = pods.clone();
        tokio::spawn(async move {
            use futures::StreamExt as _;
            let stream = kube::runtime::watcher(pods, kube::runtime::watcher::Config::default());
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(event)) = stream.next().await {
                let objects: Vec<Pod> = match event {
                    kube::runtime::watcher::Event::Apply(p)
                    | kube::runtime::watcher::Event::InitApply(p) => vec![p],
                    _ => vec![],
                };
                for pod in objects {
                    if let Some(node) = pod.spec.and_then(|s| s.node_name) {
                        seen.lock()
                            .unwrap()
                            .entry(pod.metadata.uid.unwrap())
                            .or_default()
                            .insert(node);
                    }
                }
            }
        })
    };
    for i in 0..10 {
        pods.create(
            &PostParams::default(),
            &pod_with(&format!("before-{i}"), json!({})),
        )
        .await
        .unwrap();
    }
    eventually("pods bound by the first leader", || async {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        list.iter()
            .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .then_some(())
    })
    .await;

    // The leader dies without releasing its lease; pods keep coming.
    leader_task.abort();
    let died = tokio::time::Instant::now();
    for i in 0..10 {
        pods.create(
            &PostParams::default(),
            &pod_with(&format!("after-{i}"), json!({})),
        )
        .await
        .unwrap();
    }
    let new_leader = eventually("the survivor leads", || async {
        holder(&survivor).await.filter(|h| h == survivor_name)
    })
    .await;
    let took = died.elapsed();
    // The bound the issue sets: lease duration + 5 s.
    assert!(
        took <= fast_options().leader_election.lease_duration + Duration::from_secs(5),
        "{new_leader} took over after {took:?}"
    );
    eventually("every pod bound by the new leader", || async {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        (list.len() == 20
            && list
                .iter()
                .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    recorder.abort();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 20);
    for (uid, nodes) in seen.iter() {
        assert_eq!(nodes.len(), 1, "pod {uid} was bound to {nodes:?}");
    }
    let _ = stop_b.send(());
}

/// Plays the node agent of every fake node: a pod bound to a node becomes
/// Running and Ready (with an IP) shortly after, and a pod being deleted
/// goes at once. Ends when aborted.
/// `kubectl rollout status` of `target`; if it fails, the deployments,
/// replica sets, pods and events are printed (with the failing test's output)
/// before the caller's assertion fails.
async fn rollout_status(
    cluster: &crate::support::cluster::Cluster,
    target: &str,
) -> crate::support::cluster::Kubectl {
    let status = cluster
        .kubectl(&["rollout", "status", target, "--timeout=60s"])
        .await;
    if !status.success {
        for args in [
            &["get", "deployments,replicasets,pods", "-o", "yaml"][..],
            &["get", "events", "-o", "wide"][..],
        ] {
            let state = cluster.kubectl(args).await;
            println!("{}\n{}", state.stdout, state.stderr);
        }
    }
    status
}

pub fn fake_kubelet(client: Client) -> JoinHandle<()> {
    tokio::spawn(async move {
        use futures::StreamExt as _;
        let api: Api<Pod> = Api::all(client.clone());
        let mut stream = std::pin::pin!(kube::runtime::watcher(
            api,
            kube::runtime::watcher::Config::default()
        ));
        let mut next_ip = 10u32;
        while let Some(event) = stream.next().await {
            let pod = match event {
                Ok(kube::runtime::watcher::Event::Apply(pod))
                | Ok(kube::runtime::watcher::Event::InitApply(pod)) => pod,
                _ => continue,
            };
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap());
            let name = pod.name_any();
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = pods
                    .delete(
                        &name,
                        &DeleteParams {
                            grace_period_seconds: Some(0),
                            ..DeleteParams::default()
                        },
                    )
                    .await;
                continue;
            }
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if running {
                continue;
            }
            next_ip += 1;
            let ip = format!("10.42.{}.{}", next_ip / 250, next_ip % 250 + 2);
            let client = client.clone();
            tokio::spawn(async move {
                // Starting takes a moment, so rollouts have something to wait for.
                tokio::time::sleep(Duration::from_millis(150)).await;
                let pods: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap());
                let now = jiff::Timestamp::now().to_string();
                let patched = pods
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {
                            "phase": "Running", "podIP": ip, "hostIP": "127.0.0.1",
                            "startTime": now,
                            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                        }})),
                    )
                    .await;
                // A pod deleted meanwhile is no news; anything else would
                // leave the pod pending for good, which a stalled rollout
                // should be able to show.
                if let Err(error) = patched
                    && !matches!(&error, kube::Error::Api(status) if status.code == 404)
                {
                    println!("fake kubelet: status of pod {name}: {error}");
                }
                let _ = node;
            });
        }
    })
}

fn web_deployment(image: &str) -> k8s_openapi::api::apps::v1::Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }))
    .unwrap()
}

fn image_of(pod: &Pod) -> String {
    pod.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// Waits until the Deployment's rollout is complete, as `kubectl rollout
/// status` judges it.
async fn rolled_out(deployments: &Api<k8s_openapi::api::apps::v1::Deployment>, name: &str) {
    eventually("rollout complete", || async {
        let d = deployments.get(name).await.unwrap();
        if std::env::var("DEBUG_ROLLOUT").is_ok() {
            eprintln!("{}", serde_json::to_string(&d.status).unwrap());
        }
        let status = d.status?;
        let replicas = d.spec.replicas.unwrap_or(1);
        (status.observed_generation >= d.metadata.generation
            && status.updated_replicas == Some(replicas)
            && status.replicas == Some(replicas)
            && status.available_replicas == Some(replicas))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_updates_keep_within_surge_and_unavailability_and_roll_back() {
    let cluster = Controlled::start(fast_options()).await;
    let client = cluster.client.clone();
    for name in ["n1", "n2", "n3"] {
        register_node(&client, name).await;
    }
    let kubelet = fake_kubelet(client.clone());
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &web_deployment("registry.local/web:1"),
        )
        .await
        .unwrap();
    rolled_out(&deployments, "web").await;
    let first = sets
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(first.len(), 1);
    let first_rs = first[0].name_any();
    assert_eq!(
        first[0].annotations()["deployment.kubernetes.io/revision"],
        "1"
    );

    // Watch every pod change during the update: live pods never exceed
    // 4 + maxSurge, available ones never drop below 4 - maxUnavailable.
    let violations = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let monitor = {
        let violations = violations.clone();
        let pods = pods.clone();
        tokio::spawn(async move {
            use futures::StreamExt as _;
            let mut state: std::collections::HashMap<String, Pod> = Default::default();
            let mut stream = std::pin::pin!(kube::runtime::watcher(
                pods,
                kube::runtime::watcher::Config::default().labels("app=web")
            ));
            let mut listed = false;
            while let Some(Ok(event)) = stream.next().await {
                match event {
                    kube::runtime::watcher::Event::Apply(p)
                    | kube::runtime::watcher::Event::InitApply(p) => {
                        state.insert(p.name_any(), p);
                    }
                    kube::runtime::watcher::Event::Delete(p) => {
                        state.remove(&p.name_any());
                    }
                    kube::runtime::watcher::Event::InitDone => listed = true,
                    kube::runtime::watcher::Event::Init => {}
                }
                if !listed {
                    continue;
                }
                let live: Vec<&Pod> = state
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let available = live
                    .iter()
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count();
                if live.len() > 5 || available < 3 {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("live {}, available {available}", live.len()));
                }
            }
        })
    };

    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry.local/web:2"}]}}}})),
        )
        .await
        .unwrap();
    rolled_out(&deployments, "web").await;
    eventually("only v2 pods left", || async {
        let list = live(
            pods.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .items,
        );
        (list.len() == 4 && list.iter().all(|p| image_of(p) == "registry.local/web:2"))
            .then_some(())
    })
    .await;
    monitor.abort();
    let violations = violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "rolling update bounds broken: {violations:?}"
    );

    let sets_now = sets
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(sets_now.len(), 2);
    let old = sets_now
        .iter()
        .find(|rs| rs.name_any() == first_rs)
        .unwrap();
    assert_eq!(old.spec.replicas, Some(0));
    let d = deployments.get("web").await.unwrap();
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "2");
    let progressing = d
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );

    // Rollback as `kubectl rollout undo` does it: the old ReplicaSet's
    // template (without its hash label) becomes the Deployment's again.
    let mut template = old.spec.template.clone().unwrap();
    template
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove("pod-template-hash");
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(
                    json!([{"op": "replace", "path": "/spec/template", "value": template}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    rolled_out(&deployments, "web").await;
    eventually("v1 pods back from the first ReplicaSet", || async {
        let list = live(
            pods.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .items,
        );
        (list.len() == 4
            && list.iter().all(|p| {
                image_of(p) == "registry.local/web:1" && p.owner_references()[0].name == first_rs
            }))
        .then_some(())
    })
    .await;
    let reused = sets.get(&first_rs).await.unwrap();
    assert_eq!(
        reused.annotations()["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        reused.annotations()["deployment.kubernetes.io/revision-history"],
        "1"
    );
    kubelet.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_history_undo_restart_pause_and_resume() {
    if !crate::support::cluster::kubectl_available() {
        return;
    }
    let cluster = crate::support::cluster::Cluster::start_with(Some(fast_options())).await;
    let client = cluster.client();
    register_node(&client, "n1").await;
    register_node(&client, "n2").await;
    let kubelet = fake_kubelet(client.clone());
    let manifest = cluster.manifest(
        "web.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web:1
",
    );
    cluster.kubectl(&["apply", "-f", &manifest]).await.clean();
    let status = rollout_status(&cluster, "deployment/web").await;
    assert!(
        status
            .clean()
            .contains("deployment \"web\" successfully rolled out"),
        "{status:?}"
    );

    cluster
        .kubectl(&["set", "image", "deployment/web", "web=registry.local/web:2"])
        .await
        .clean();
    cluster
        .kubectl(&[
            "annotate",
            "deployment/web",
            "kubernetes.io/change-cause=to v2",
        ])
        .await
        .clean();
    let status = rollout_status(&cluster, "deployment/web").await;
    assert!(
        status.clean().contains("successfully rolled out"),
        "{status:?}"
    );

    let history = cluster
        .kubectl(&["rollout", "history", "deployment/web"])
        .await;
    let rows: Vec<Vec<String>> = history
        .clean()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .filter(|r: &Vec<String>| !r.is_empty())
        .collect();
    assert_eq!(rows[0][0], "REVISION", "{history:?}");
    assert_eq!(rows[1][0], "1");
    assert_eq!(rows[2][0], "2");
    assert_eq!(rows[2][1..].join(" "), "to v2");
    let revision_two = cluster
        .kubectl(&["rollout", "history", "deployment/web", "--revision=2"])
        .await;
    assert!(
        revision_two.clean().contains("registry.local/web:2"),
        "{revision_two:?}"
    );

    let undo = cluster
        .kubectl(&["rollout", "undo", "deployment/web"])
        .await;
    assert_eq!(undo.clean().trim(), "deployment.apps/web rolled back");
    rollout_status(&cluster, "deployment/web").await.clean();
    let image = cluster
        .kubectl(&["get", "deployment/web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}"])
        .await;
    assert_eq!(image.clean(), "registry.local/web:1 3");

    let restart = cluster
        .kubectl(&["rollout", "restart", "deployment/web"])
        .await;
    assert_eq!(restart.clean().trim(), "deployment.apps/web restarted");
    rollout_status(&cluster, "deployment/web").await.clean();
    let restarted = cluster
        .kubectl(&["get", "deployment/web", "-o", "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}"])
        .await;
    let restarted = restarted.clean().to_owned();
    assert!(
        restarted.ends_with(" 4") && restarted.len() > 10,
        "{restarted}"
    );

    let pause = cluster
        .kubectl(&["rollout", "pause", "deployment/web"])
        .await;
    assert_eq!(pause.clean().trim(), "deployment.apps/web paused");
    cluster
        .kubectl(&["set", "image", "deployment/web", "web=registry.local/web:3"])
        .await
        .clean();
    // Paused: no new ReplicaSet for the new template.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sets = cluster
        .kubectl(&["get", "rs", "-l", "app=web", "-o", "name"])
        .await;
    assert_eq!(sets.clean().lines().count(), 3, "{sets:?}");
    let resume = cluster
        .kubectl(&["rollout", "resume", "deployment/web"])
        .await;
    assert_eq!(resume.clean().trim(), "deployment.apps/web resumed");
    let status = rollout_status(&cluster, "deployment/web").await;
    assert!(
        status.clean().contains("successfully rolled out"),
        "{status:?}"
    );
    let sets = cluster
        .kubectl(&["get", "rs", "-l", "app=web", "-o", "name"])
        .await;
    assert_eq!(sets.clean().lines().count(), 4, "{sets:?}");
    kubelet.abort();
    cluster.stop().await;
}
