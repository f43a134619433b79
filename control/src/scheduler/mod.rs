//! The scheduler: places each new pod on a node. [`placement`] is the pure
//! decision (pod, node snapshot) → node or reasons; [`run`] is the loop
//! around it, a client of the API like any other: it follows pods, nodes
//! and RuntimeClasses through informers, keeps the snapshot current, and
//! binds through `pods/binding`.
//!
//! Like kube-scheduler, a decision is *assumed* into the snapshot at once
//! and the binding is sent in the background (up to [`MAX_BINDINGS`] at a
//! time), so the next pod sees the resources the previous one took before
//! its binding is confirmed. A failed binding forgets the assumption and
//! retries the pod after a back-off.
//!
//! A pod that fits nowhere gets `PodScheduled=False`, reason
//! `Unschedulable`, with the placement's message, and a `FailedScheduling`
//! event; it waits among the unschedulable pods until something that could
//! make room happens (a node added or changed in a way that matters, a pod
//! deleted), then retries after its back-off (1 s doubling to 10 s), and in
//! any case every minute: never a hot loop.

pub mod placement;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::time::Instant;

use crate::controllers::events::Recorder;
use crate::controllers::informer::{Change, Informer};
use placement::{Requirements, Snapshot};

/// The `spec.schedulerName` this scheduler serves.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Bindings in flight at once.
pub const MAX_BINDINGS: usize = 64;
/// Pods decided per turn of the loop before events are taken in again.
const BATCH: usize = 256;
/// First retry delay of a pod; doubles per attempt.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often.
const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(60);
/// How often back-offs and the unschedulable flush are checked.
const TICK: Duration = Duration::from_millis(200);

type PodKey = ObjectRef<Pod>;

/// A pod waiting for something to change.
struct Waiting {
    since: Instant,
    /// What of the pod matters for placement, to tell its own updates
    /// (e.g. the status this scheduler writes) from real changes.
    fingerprint: String,
}

/// Per-pod retry state.
#[derive(Default)]
struct Attempts {
    count: u32,
    last: Option<Instant>,
}

impl Attempts {
    fn backoff(&self) -> Duration {
        let doublings = self.count.saturating_sub(1).min(10);
        (INITIAL_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
    }

    fn ready_at(&self) -> Instant {
        self.last
            .map_or_else(Instant::now, |last| last + self.backoff())
    }
}

struct Scheduler {
    client: Client,
    pods: Store<Pod>,
    runtime_classes: Store<RuntimeClass>,
    recorder: Recorder,
    snapshot: Snapshot,
    start: usize,
    active: VecDeque<PodKey>,
    queued: HashSet<PodKey>,
    backoff: HashMap<PodKey, Instant>,
    unschedulable: HashMap<PodKey, Waiting>,
    attempts: HashMap<PodKey, Attempts>,
    binding: HashSet<PodKey>,
    /// Node fields that matter for placement, to ignore heartbeats.
    node_fingerprints: HashMap<String, String>,
}

enum Bound {
    Done(PodKey),
    /// The binding failed: forget the assumption and retry.
    Retry(PodKey, Arc<Pod>),
    /// The pod went or was bound by someone else.
    Dropped(PodKey, Arc<Pod>),
}

/// Runs the scheduler until the informers end.
pub async fn run(
    client: Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    runtime_classes: Arc<Informer<RuntimeClass>>,
    recorder: Recorder,
) {
    let mut scheduler = Scheduler {
        client,
        pods: pods.store(),
        runtime_classes: runtime_classes.store(),
        recorder,
        snapshot: Snapshot::default(),
        start: 0,
        active: VecDeque::new(),
        queued: HashSet::new(),
        backoff: HashMap::new(),
        unschedulable: HashMap::new(),
        attempts: HashMap::new(),
        binding: HashSet::new(),
        node_fingerprints: HashMap::new(),
    };
    // Nodes first, so that the first pods placed see them all.
    let mut node_changes = nodes.subscribe().boxed();
    for node in nodes.store().state() {
        scheduler.node_changed(Change::Applied(node));
    }
    let mut pod_changes = pods.subscribe().boxed();
    let mut bindings = FuturesUnordered::new();
    let mut ticks = tokio::time::interval(TICK);
    loop {
        let room = MAX_BINDINGS.saturating_sub(bindings.len());
        if room > 0 && !scheduler.active.is_empty() {
            for (key, pod, node) in scheduler.decide(room.min(BATCH)) {
                bindings.push(bind(scheduler.client.clone(), key, pod, node));
            }
            // Take events in before deciding more.
            tokio::task::yield_now().await;
        }
        tokio::select! {
            biased;
            change = node_changes.next() => match change {
                Some(change) => scheduler.node_changed(change),
                None => return,
            },
            change = pod_changes.next() => match change {
                Some(change) => scheduler.pod_changed(change),
                None => return,
            },
            Some(result) = bindings.next(), if !bindings.is_empty() => scheduler.bound(result),
            _ = ticks.tick() => scheduler.flush(),
            // Decide more when there is room and work.
            () = std::future::ready(()), if bindings.len() < MAX_BINDINGS && !scheduler.active.is_empty() => {}
        }
    }
}

fn owner_fingerprint(pod: &Pod) -> String {
    let spec = serde_json::to_string(&pod.spec).unwrap_or_default();
    format!(
        "{spec}|{:?}|{:?}",
        pod.metadata.labels, pod.metadata.annotations
    )
}

fn node_fingerprint(node: &Node) -> String {
    let spec = node.spec.as_ref();
    let status = node.status.as_ref();
    let conditions: Vec<(&str, &str)> = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        node.metadata.labels,
        spec.and_then(|s| s.taints.as_ref()),
        spec.and_then(|s| s.unschedulable),
        status.and_then(|s| s.allocatable.as_ref()),
        conditions,
        status.and_then(|s| s.images.as_ref()).map(Vec::len),
    )
}

fn is_bound(pod: &Pod) -> bool {
    crate::controllers::pods::node_of(pod).is_some()
}

fn is_ours(pod: &Pod) -> bool {
    let name = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref());
    name.is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
}

fn wants_scheduling(pod: &Pod) -> bool {
    !is_bound(pod)
        && is_ours(pod)
        && pod.metadata.deletion_timestamp.is_none()
        && !crate::controllers::pods::is_terminated(pod)
}

impl Scheduler {
    fn enqueue(&mut self, key: PodKey) {
        if self.binding.contains(&key) {
            return;
        }
        self.unschedulable.remove(&key);
        let ready_at = self.attempts.get(&key).map(Attempts::ready_at);
        match ready_at {
            Some(at) if at > Instant::now() => {
                self.backoff.insert(key, at);
            }
            _ => {
                if self.queued.insert(key.clone()) {
                    self.active.push_back(key);
                }
            }
        }
    }

    fn forget(&mut self, key: &PodKey) {
        self.queued.remove(key);
        self.backoff.remove(key);
        self.unschedulable.remove(key);
        self.attempts.remove(key);
    }

    /// Something that may make room happened: unschedulable pods retry.
    fn move_all_unschedulable(&mut self) {
        let keys: Vec<PodKey> = self.unschedulable.keys().cloned().collect();
        for key in keys {
            self.enqueue(key);
        }
    }

    fn node_changed(&mut self, change: Change<Node>) {
        match change {
            Change::Applied(node) => {
                let name = node.name_any();
                let fingerprint = node_fingerprint(&node);
                let changed = self.node_fingerprints.get(&name) != Some(&fingerprint);
                self.snapshot.upsert_node(&node);
                if changed {
                    self.node_fingerprints.insert(name, fingerprint);
                    self.move_all_unschedulable();
                }
            }
            Change::Deleted(node) => {
                self.node_fingerprints.remove(&node.name_any());
                self.snapshot.remove_node(&node.name_any());
            }
        }
    }

    fn pod_changed(&mut self, change: Change<Pod>) {
        match change {
            Change::Applied(pod) => {
                let key = ObjectRef::from_obj(&*pod);
                if is_bound(&pod) {
                    self.snapshot.add_pod(&pod);
                    self.forget(&key);
                    return;
                }
                if !wants_scheduling(&pod) {
                    self.forget(&key);
                    return;
                }
                if let Some(waiting) = self.unschedulable.get(&key) {
                    // Its own status update (or a label change that does
                    // not matter) leaves it waiting.
                    if waiting.fingerprint == owner_fingerprint(&pod) {
                        return;
                    }
                }
                if !self.backoff.contains_key(&key) {
                    self.enqueue(key);
                }
            }
            Change::Deleted(pod) => {
                let key = ObjectRef::from_obj(&*pod);
                self.forget(&key);
                if is_bound(&pod) {
                    self.snapshot.remove_pod(&pod);
                    self.move_all_unschedulable();
                }
            }
        }
    }

    fn bound(&mut self, result: Bound) {
        match result {
            Bound::Done(key) => {
                self.binding.remove(&key);
                self.attempts.remove(&key);
            }
            Bound::Retry(key, pod) => {
                self.binding.remove(&key);
                self.snapshot.remove_pod(&pod);
                let attempts = self.attempts.entry(key.clone()).or_default();
                attempts.count += 1;
                attempts.last = Some(Instant::now());
                self.enqueue(key);
            }
            Bound::Dropped(key, pod) => {
                self.binding.remove(&key);
                self.attempts.remove(&key);
                // If someone else bound it, its event re-adds it.
                self.snapshot.remove_pod(&pod);
            }
        }
    }

    fn flush(&mut self) {
        let now = Instant::now();
        let due: Vec<PodKey> = self
            .backoff
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            self.backoff.remove(&key);
            if self.queued.insert(key.clone()) {
                self.active.push_back(key);
            }
        }
        let stale: Vec<PodKey> = self
            .unschedulable
            .iter()
            .filter(|(_, waiting)| waiting.since.elapsed() >= UNSCHEDULABLE_FLUSH)
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            self.enqueue(key);
        }
    }

    /// Decides up to `limit` pods from the active queue; returns the
    /// bindings to send.
    fn decide(&mut self, limit: usize) -> Vec<(PodKey, Arc<Pod>, String)> {
        let mut decided = Vec::new();
        while decided.len() < limit {
            let Some(key) = self.active.pop_front() else {
                break;
            };
            self.queued.remove(&key);
            let Some(pod) = self.pods.get(&key) else {
                continue;
            };
            if !wants_scheduling(&pod) {
                continue;
            }
            let runtime_class = pod
                .spec
                .as_ref()
                .and_then(|s| s.runtime_class_name.as_deref())
                .and_then(|name| self.runtime_classes.get(&ObjectRef::new(name)));
            if let Some(name) = pod
                .spec
                .as_ref()
                .and_then(|s| s.runtime_class_name.as_deref())
                && runtime_class.is_none()
            {
                let message = format!("pod has runtimeClassName {name:?}, which does not exist");
                self.mark_unschedulable(key, &pod, message);
                continue;
            }
            let requirements = Requirements::new(&pod, runtime_class.as_deref());
            match placement::place(&requirements, &self.snapshot, self.start) {
                Ok(placed) => {
                    self.start = placed.next_start;
                    self.snapshot.assume(&pod, &placed.node);
                    self.binding.insert(key.clone());
                    self.recorder.normal(
                        &*pod,
                        "Scheduled",
                        format!(
                            "Successfully assigned {}/{} to {}",
                            pod.namespace().unwrap_or_default(),
                            pod.name_any(),
                            placed.node
                        ),
                    );
                    decided.push((key, pod, placed.node));
                }
                Err(unschedulable) => {
                    self.mark_unschedulable(key, &pod, unschedulable.to_string());
                }
            }
        }
        decided
    }

    fn mark_unschedulable(&mut self, key: PodKey, pod: &Arc<Pod>, message: String) {
        let attempts = self.attempts.entry(key.clone()).or_default();
        attempts.count += 1;
        attempts.last = Some(Instant::now());
        self.unschedulable.insert(
            key,
            Waiting {
                since: Instant::now(),
                fingerprint: owner_fingerprint(pod),
            },
        );
        self.recorder
            .warning(&**pod, "FailedScheduling", message.clone());
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        if current
            .is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message.as_str()))
        {
            return;
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let name = pod.name_any();
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
            "lastProbeTime": null,
        }]}});
        tokio::spawn(async move {
            if let Err(error) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::debug!(pod = %name, %error, "recording Unschedulable failed");
            }
        });
    }
}

async fn bind(client: Client, key: PodKey, pod: Arc<Pod>, node: String) -> Bound {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": pod.uid()},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => Bound::Done(key),
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {
            tracing::debug!(pod = %name, message = %status.message, "binding dropped");
            Bound::Dropped(key, pod)
        }
        Err(error) => {
            tracing::debug!(pod = %name, %error, "binding failed; retrying");
            Bound::Retry(key, pod)
        }
    }
}
