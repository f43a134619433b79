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
    let created = nodes
        .create(&PostParams::default(), &fake_node(name))
        .await
        .unwrap();
    // Status goes through the status subresource.
    nodes
        .replace_status(
            name,
            &PostParams::default(),
            &Node {
                status: fake_node(name).status,
                ..created
            },
        )
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

    // Keep "alive" renewing; "doomed" stops.
    let keeper = {
        let client = client.clone();
        tokio::spawn(async move {
            loop {
                renew_lease(&client, "alive").await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
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
    // The live node keeps no taints.
    let alive = nodes.get("alive").await.unwrap();
    assert!(alive.spec.unwrap().taints.unwrap_or_default().is_empty());
    keeper.abort();
    cluster.stop().await;
}
