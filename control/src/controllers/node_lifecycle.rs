//! Node lifecycle, as Kubernetes' node lifecycle, taint-eviction, pod GC
//! and node IPAM controllers do it:
//!
//! - **Health**: a node whose heartbeat (its Lease in `kube-node-lease`, or
//!   the Ready condition's `lastHeartbeatTime`) has not moved for the grace
//!   period (40 s) goes `Ready=Unknown` and gets the
//!   `node.kubernetes.io/unreachable` taints (NoSchedule and NoExecute); a
//!   node reporting `Ready=False` gets `node.kubernetes.io/not-ready`; both
//!   go when it is Ready again. Pods on an unreachable node are marked not
//!   ready, so Services stop sending them traffic.
//! - **Eviction**: a pod on a node with NoExecute taints it does not
//!   tolerate is deleted at once; one that tolerates them for
//!   `tolerationSeconds` is deleted when that time has passed since the
//!   taint was added (the API server gives every pod 300 s for not-ready
//!   and unreachable unless it says otherwise).
//! - **Pod GC**: pods bound to a node that no longer exists are deleted.
//! - **IPAM**: each node gets a pod CIDR (`spec.podCIDR`) from the cluster
//!   CIDR.
//!
//! Heartbeats are judged by the local clock from when this controller saw
//! them change, so clock skew between nodes and server does not matter; a
//! node gets a full grace period from when the controller starts watching.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::time::Instant;

use super::events::Recorder;
use super::informer::{Change, Informer};
use super::pods::node_of;
use super::{ControllerError, ControllerOptions};
use crate::apiserver::defaults::{TAINT_NOT_READY, TAINT_UNREACHABLE};

/// How often node health is checked (Kubernetes' node monitor period).
const MONITOR_PERIOD: Duration = Duration::from_secs(5);
/// How often due evictions are carried out.
const EVICTION_TICK: Duration = Duration::from_secs(1);
/// How often pods of vanished nodes are looked for.
const POD_GC_PERIOD: Duration = Duration::from_secs(20);

/// Runs every part until the informers end.
pub async fn run(
    client: Client,
    nodes: Arc<Informer<Node>>,
    leases: Arc<Informer<Lease>>,
    pods: Arc<Informer<Pod>>,
    recorder: Recorder,
    options: ControllerOptions,
) {
    let health = monitor(
        client.clone(),
        nodes.store(),
        leases.store(),
        pods.store(),
        recorder.clone(),
        options.node_monitor_grace_period,
    );
    let eviction = evict(
        client.clone(),
        nodes.clone(),
        pods.clone(),
        recorder.clone(),
    );
    let gc = collect_orphans(client.clone(), nodes.store(), pods.store());
    let ipam = allocate_cidrs(client, nodes, recorder, options);
    futures::future::join4(health, eviction, gc, ipam).await;
}

// ---------------------------------------------------------------- health

/// The Ready condition's status, if reported.
fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// A node's heartbeats: the Ready condition's and the lease's.
type Heartbeat = (Option<String>, Option<String>);

/// The latest heartbeat the node or its lease carry, as text (compared
/// for change only).
fn heartbeat(node: &Node, lease: Option<&Lease>) -> Heartbeat {
    let condition = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string());
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.to_string());
    (condition, renewed)
}

/// The taints a node should carry for its readiness: `(key, effect)`.
fn health_taints(ready: Option<&str>, stale: bool) -> Vec<&'static str> {
    if stale || ready == Some("Unknown") {
        vec![TAINT_UNREACHABLE]
    } else if ready == Some("False") {
        vec![TAINT_NOT_READY]
    } else {
        Vec::new()
    }
}

/// The node's taints with the health taints set to `wanted` (keys), others
/// kept; `None` if nothing changes.
fn retaint(current: &[Taint], wanted: &[&str], now: jiff::Timestamp) -> Option<Vec<Taint>> {
    let managed = [TAINT_NOT_READY, TAINT_UNREACHABLE];
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !managed.contains(&t.key.as_str())
                || (wanted.contains(&t.key.as_str())
                    && matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
        })
        .cloned()
        .collect();
    for key in wanted {
        for effect in ["NoSchedule", "NoExecute"] {
            if !taints.iter().any(|t| t.key == *key && t.effect == effect) {
                taints.push(Taint {
                    key: (*key).to_owned(),
                    effect: effect.to_owned(),
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    (taints != current).then_some(taints)
}

async fn monitor(
    client: Client,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    recorder: Recorder,
    grace: Duration,
) {
    // Per node: the last heartbeat seen and when it was first seen.
    let mut seen: HashMap<String, (Heartbeat, Instant)> = HashMap::new();
    let mut ticks = tokio::time::interval(MONITOR_PERIOD);
    loop {
        ticks.tick().await;
        let current = nodes.state();
        let names: HashSet<String> = current.iter().map(|n| n.name_any()).collect();
        seen.retain(|name, _| names.contains(name));
        for node in current {
            let name = node.name_any();
            let lease = leases.get(&ObjectRef::new(&name).within("kube-node-lease"));
            let beat = heartbeat(&node, lease.as_deref());
            let entry = seen
                .entry(name.clone())
                .or_insert_with(|| (beat.clone(), Instant::now()));
            if entry.0 != beat {
                *entry = (beat, Instant::now());
            }
            let stale = entry.1.elapsed() >= grace;
            if let Err(error) = check_node(&client, &node, stale, &pods, &recorder).await {
                tracing::debug!(node = %name, %error, "node health update failed");
            }
        }
    }
}

async fn check_node(
    client: &Client,
    node: &Node,
    stale: bool,
    pods: &Store<Pod>,
    recorder: &Recorder,
) -> Result<(), ControllerError> {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.name_any();
    let mut ready = ready_status(node).map(str::to_owned);
    if stale && ready.as_deref() != Some("Unknown") {
        let now = Time(jiff::Timestamp::now());
        let conditions: Vec<_> = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]
            .into_iter()
            .filter(|kind| {
                *kind == "Ready"
                    || node
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == *kind))
            })
            .map(|kind| {
                json!({
                    "type": kind,
                    "status": "Unknown",
                    "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                    "lastTransitionTime": now,
                })
            })
            .collect();
        let patch = json!({ "status": { "conditions": conditions } });
        api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await?;
        recorder.normal(
            node,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        );
        tracing::info!(node = %name, "node stopped posting status: Ready=Unknown");
        ready = Some("Unknown".to_owned());
        mark_pods_not_ready(client, &name, pods).await;
    }
    let wanted = health_taints(ready.as_deref(), stale);
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if let Some(taints) = retaint(&current, &wanted, jiff::Timestamp::now()) {
        let patch = json!({
            "metadata": { "resourceVersion": node.resource_version() },
            "spec": { "taints": taints },
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // Changed meanwhile: the next pass sees the new state.
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Sets `Ready=False` on the pods of an unreachable node.
async fn mark_pods_not_ready(client: &Client, node: &str, pods: &Store<Pod>) {
    let now = Time(jiff::Timestamp::now());
    for pod in pods
        .state()
        .into_iter()
        .filter(|p| node_of(p) == Some(node))
    {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        if !ready {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({ "status": { "conditions": [{
            "type": "Ready",
            "status": "False",
            "lastTransitionTime": now,
        }]}});
        if let Err(error) = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            tracing::debug!(pod = %pod.name_any(), %error, "marking a pod not ready failed");
        }
    }
}

// ---------------------------------------------------------------- eviction

/// When a pod must leave a node with `taints`: `None` if it may stay,
/// otherwise the time (Kubernetes' NoExecute taint manager: the smallest
/// `tolerationSeconds` among the tolerations that match, counted from when
/// the taint was added; at once if a NoExecute taint is not tolerated).
pub fn eviction_time(pod: &Pod, taints: &[Taint]) -> Option<jiff::Timestamp> {
    let tolerations: &[Toleration] = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let mut due: Option<jiff::Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let added = taint
            .time_added
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(jiff::Timestamp::UNIX_EPOCH);
        }
        // A matching toleration without seconds tolerates forever.
        if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let seconds = matching
            .iter()
            .filter_map(|t| t.toleration_seconds)
            .min()
            .unwrap_or(0)
            .max(0);
        let at = added + jiff::SignedDuration::from_secs(seconds);
        due = Some(due.map_or(at, |d| d.min(at)));
    }
    due
}

/// Whether `toleration` tolerates `taint` (Kubernetes' `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

async fn evict(
    client: Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    recorder: Recorder,
) {
    let node_store = nodes.store();
    let pod_store = pods.store();
    let mut node_changes = nodes.subscribe().boxed();
    let mut pod_changes = pods.subscribe().boxed();
    // Pods to evict at a time: (due, namespace, name, uid).
    let mut due: BTreeMap<(jiff::Timestamp, String, String), String> = BTreeMap::new();
    let mut ticks = tokio::time::interval(EVICTION_TICK);
    let taints_of = |node: &str| -> Vec<Taint> {
        node_store
            .get(&ObjectRef::new(node))
            .and_then(|n| n.spec.as_ref().and_then(|s| s.taints.clone()))
            .unwrap_or_default()
    };
    let schedule = |pod: &Pod, due: &mut BTreeMap<(jiff::Timestamp, String, String), String>| {
        let key_of = |p: &Pod| (p.namespace().unwrap_or_default(), p.name_any());
        let (namespace, name) = key_of(pod);
        due.retain(|(_, ns, n), _| !(ns == &namespace && n == &name));
        let Some(node) = node_of(pod) else { return };
        if pod.metadata.deletion_timestamp.is_some() {
            return;
        }
        if let Some(at) = eviction_time(pod, &taints_of(node)) {
            due.insert((at, namespace, name), pod.uid().unwrap_or_default());
        }
    };
    loop {
        tokio::select! {
            change = node_changes.next() => {
                let Some(change) = change else { return };
                if let Change::Applied(node) = change {
                    let name = node.name_any();
                    for pod in pod_store.state().iter().filter(|p| node_of(p) == Some(name.as_str())) {
                        schedule(pod, &mut due);
                    }
                }
            }
            change = pod_changes.next() => {
                let Some(change) = change else { return };
                match change {
                    Change::Applied(pod) => schedule(&pod, &mut due),
                    Change::Deleted(pod) => {
                        let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
                        due.retain(|(_, ns, n), _| !(ns == &namespace && n == &name));
                    }
                }
            }
            _ = ticks.tick() => {
                let now = jiff::Timestamp::now();
                while let Some(entry) = due.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let ((_, namespace, name), uid) = entry.remove_entry();
                    let Some(pod) = pod_store
                        .get(&ObjectRef::new(&name).within(&namespace))
                        .filter(|p| p.uid().as_deref() == Some(uid.as_str()))
                    else {
                        continue;
                    };
                    recorder.normal(&*pod, "TaintManagerEviction", format!("Marking for deletion Pod {namespace}/{name}"));
                    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
                    let params = DeleteParams {
                        preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                        ..DeleteParams::default()
                    };
                    match api.delete(&name, &params).await {
                        Ok(_) => tracing::info!(pod = %format!("{namespace}/{name}"), "evicted from a tainted node"),
                        Err(error) => tracing::debug!(pod = %name, %error, "eviction failed"),
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- pod GC

/// Deletes pods bound to nodes that do not exist, once they have been seen
/// so for two passes in a row (a node created a moment ago may not be in
/// the cache yet).
async fn collect_orphans(client: Client, nodes: Store<Node>, pods: Store<Pod>) {
    let mut suspects: HashSet<String> = HashSet::new();
    let mut ticks = tokio::time::interval(POD_GC_PERIOD);
    loop {
        ticks.tick().await;
        let known: HashSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
        let mut now_suspect = HashSet::new();
        for pod in pods.state() {
            let Some(node) = node_of(&pod) else { continue };
            if known.contains(node) {
                continue;
            }
            let uid = pod.uid().unwrap_or_default();
            if !suspects.contains(&uid) {
                now_suspect.insert(uid);
                continue;
            }
            let api: Api<Pod> =
                Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&pod.name_any(), &params).await {
                Ok(_) => {
                    tracing::info!(pod = %pod.name_any(), node, "deleted a pod of a node that no longer exists")
                }
                Err(error) => {
                    tracing::debug!(pod = %pod.name_any(), %error, "pod GC delete failed")
                }
            }
        }
        suspects = now_suspect;
    }
}

// ---------------------------------------------------------------- IPAM

/// An IPv4 cluster CIDR cut into equal node subnets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrAllocator {
    base: u32,
    prefix: u8,
    node_prefix: u8,
}

/// Why a cluster CIDR cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `a.b.c.d/n`.
    #[error("invalid cluster CIDR {0:?}: expected an IPv4 a.b.c.d/n")]
    Invalid(String),
    /// The node prefix is not longer than the cluster prefix, or too long.
    #[error("node CIDR mask size /{node} does not fit in cluster CIDR /{cluster}")]
    MaskSize {
        /// The cluster prefix length.
        cluster: u8,
        /// The node prefix length.
        node: u8,
    },
}

impl CidrAllocator {
    /// `cluster` like `10.42.0.0/16`, nodes get `/node_prefix`.
    pub fn new(cluster: &str, node_prefix: u8) -> Result<Self, CidrError> {
        let invalid = || CidrError::Invalid(cluster.to_owned());
        let (address, prefix) = cluster.split_once('/').ok_or_else(invalid)?;
        let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if prefix > 32 {
            return Err(invalid());
        }
        if node_prefix <= prefix || node_prefix > 32 || node_prefix - prefix > 24 {
            return Err(CidrError::MaskSize {
                cluster: prefix,
                node: node_prefix,
            });
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Self {
            base: u32::from(address) & mask,
            prefix,
            node_prefix,
        })
    }

    fn subnets(&self) -> u32 {
        1 << (self.node_prefix - self.prefix)
    }

    fn subnet(&self, index: u32) -> String {
        let address = Ipv4Addr::from(self.base + (index << (32 - self.node_prefix)));
        format!("{address}/{}", self.node_prefix)
    }

    /// The first subnet not in `used`.
    pub fn next_free(&self, used: &HashSet<String>) -> Option<String> {
        (0..self.subnets())
            .map(|i| self.subnet(i))
            .find(|s| !used.contains(s))
    }
}

async fn allocate_cidrs(
    client: Client,
    nodes: Arc<Informer<Node>>,
    recorder: Recorder,
    options: ControllerOptions,
) {
    let allocator = match CidrAllocator::new(&options.cluster_cidr, options.node_cidr_mask_size) {
        Ok(allocator) => allocator,
        Err(error) => {
            tracing::error!(%error, "node IPAM disabled");
            return;
        }
    };
    let store = nodes.store();
    let mut changes = nodes.subscribe().boxed();
    // Assigned by this controller but maybe not in the cache yet.
    let mut assigned: HashMap<String, String> = HashMap::new();
    while let Some(change) = changes.next().await {
        let Change::Applied(node) = change else {
            continue;
        };
        let name = node.name_any();
        if node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .is_some_and(|c| !c.is_empty())
        {
            assigned.remove(&name);
            continue;
        }
        if assigned.contains_key(&name) {
            continue;
        }
        let mut used: HashSet<String> = store
            .state()
            .iter()
            .filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
            .collect();
        used.extend(assigned.values().cloned());
        let Some(cidr) = allocator.next_free(&used) else {
            recorder.warning(
                &*node,
                "CIDRNotAvailable",
                format!("Node {name} status is now: CIDRNotAvailable"),
            );
            continue;
        };
        let api: Api<Node> = Api::all(client.clone());
        let patch = json!({ "spec": { "podCIDR": cidr, "podCIDRs": [cidr] } });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                recorder.normal(
                    &*node,
                    "CIDRAssignmentSucceeded",
                    format!("Node {name} got pod CIDR {cidr}"),
                );
                assigned.insert(name, cidr);
            }
            Err(error) => tracing::warn!(node = %name, %error, "assigning a pod CIDR failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn taint(key: &str, effect: &str, added: i64) -> Taint {
        Taint {
            key: key.to_owned(),
            effect: effect.to_owned(),
            time_added: Some(Time(jiff::Timestamp::from_second(added).unwrap())),
            value: None,
        }
    }

    fn toleration(
        key: Option<&str>,
        operator: &str,
        effect: Option<&str>,
        seconds: Option<i64>,
    ) -> Toleration {
        Toleration {
            key: key.map(str::to_owned),
            operator: Some(operator.to_owned()),
            effect: effect.map(str::to_owned),
            toleration_seconds: seconds,
            value: None,
        }
    }

    fn pod(tolerations: Vec<Toleration>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                tolerations: Some(tolerations),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn eviction_times_follow_tolerations() {
        let at = |s| Some(jiff::Timestamp::from_second(s).unwrap());
        let unreachable = [taint(TAINT_UNREACHABLE, "NoExecute", 1000)];
        let cases = [
            ("no toleration: at once", vec![], at(0)),
            (
                "default 300 s",
                vec![toleration(
                    Some(TAINT_UNREACHABLE),
                    "Exists",
                    Some("NoExecute"),
                    Some(300),
                )],
                at(1300),
            ),
            (
                "forever",
                vec![toleration(
                    Some(TAINT_UNREACHABLE),
                    "Exists",
                    Some("NoExecute"),
                    None,
                )],
                None,
            ),
            (
                "wildcard",
                vec![toleration(None, "Exists", None, None)],
                None,
            ),
            (
                "other key",
                vec![toleration(Some("other"), "Exists", None, None)],
                at(0),
            ),
            (
                "smallest seconds",
                vec![
                    toleration(Some(TAINT_UNREACHABLE), "Exists", None, Some(60)),
                    toleration(None, "Exists", Some("NoExecute"), Some(30)),
                ],
                at(1030),
            ),
        ];
        for (name, tolerations, expected) in cases {
            assert_eq!(
                eviction_time(&pod(tolerations), &unreachable),
                expected,
                "{name}"
            );
        }
        // NoSchedule taints never evict.
        assert_eq!(
            eviction_time(&pod(vec![]), &[taint("x", "NoSchedule", 0)]),
            None
        );
    }

    #[test]
    fn health_taints_follow_readiness() {
        let now = jiff::Timestamp::from_second(5).unwrap();
        let unknown = retaint(&[], &health_taints(Some("True"), true), now).unwrap();
        let keys: Vec<_> = unknown
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                (TAINT_UNREACHABLE, "NoSchedule"),
                (TAINT_UNREACHABLE, "NoExecute")
            ]
        );
        assert!(unknown[1].time_added.is_some());
        // Unchanged: nothing to write.
        assert_eq!(
            retaint(&unknown, &health_taints(Some("Unknown"), true), now),
            None
        );
        // Ready again: the health taints go, others stay.
        let mut with_user = unknown.clone();
        with_user.push(taint("dedicated", "NoSchedule", 1));
        let cleared = retaint(&with_user, &health_taints(Some("True"), false), now).unwrap();
        assert_eq!(cleared, vec![taint("dedicated", "NoSchedule", 1)]);
        // Not ready: swap unreachable for not-ready.
        let not_ready = retaint(&unknown, &health_taints(Some("False"), false), now).unwrap();
        assert!(not_ready.iter().all(|t| t.key == TAINT_NOT_READY));
    }

    #[test]
    fn cidrs_are_carved_in_order_and_checked() {
        let allocator = CidrAllocator::new("10.42.0.0/16", 24).unwrap();
        let mut used = HashSet::new();
        assert_eq!(allocator.next_free(&used).as_deref(), Some("10.42.0.0/24"));
        used.insert("10.42.0.0/24".to_owned());
        used.insert("10.42.2.0/24".to_owned());
        assert_eq!(allocator.next_free(&used).as_deref(), Some("10.42.1.0/24"));
        let tiny = CidrAllocator::new("10.0.0.0/30", 31).unwrap();
        let all: HashSet<String> = ["10.0.0.0/31", "10.0.0.2/31"].map(str::to_owned).into();
        assert_eq!(tiny.next_free(&all), None);
        assert!(matches!(
            CidrAllocator::new("10.42.0.0/16", 16),
            Err(CidrError::MaskSize { .. })
        ));
        assert!(matches!(
            CidrAllocator::new("nope", 24),
            Err(CidrError::Invalid(_))
        ));
        assert_eq!(
            CidrAllocator::new("10.42.7.9/16", 24)
                .unwrap()
                .next_free(&HashSet::new())
                .as_deref(),
            Some("10.42.0.0/24")
        );
    }
}
