//! The ReplicaSet controller: keeps `spec.replicas` pods matching the
//! template alive, adopts orphans its selector matches, releases pods it
//! owns that no longer match, and reports counts in the status, as
//! Kubernetes' `pkg/controller/replicaset` does.
//!
//! The pod cache may lag behind the pods this controller just created or
//! deleted; "expectations" (the names it created, the uids it deleted)
//! keep it from acting again on a stale view until the cache has caught
//! up, or a timeout passed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::{Selector, SelectorExt as _};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::time::Instant;

use super::ControllerError;
use super::events::Recorder;
use super::informer::Informer;
use super::pods::{self, controller_of, owner_reference};

/// How long unmet expectations hold a ReplicaSet back.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many pods created or deleted per sync (Kubernetes' burst).
const BURST: usize = 500;
/// Re-check after an error.
const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// What the controller shares between reconciles.
pub struct Context {
    client: Client,
    pods: Store<Pod>,
    replica_sets: Store<ReplicaSet>,
    recorder: Recorder,
    expectations: Mutex<HashMap<ObjectRef<ReplicaSet>, Expectations>>,
}

/// Creates and deletions this controller made that the cache has not
/// shown yet.
struct Expectations {
    created: HashSet<String>,
    /// Names and uids of deleted pods.
    deleted: HashSet<(String, String)>,
    since: Instant,
}

impl Expectations {
    fn met(&self, namespace: &str, pods: &Store<Pod>) -> bool {
        if self.since.elapsed() >= EXPECTATIONS_TIMEOUT {
            return true;
        }
        let created = self
            .created
            .iter()
            .all(|name| pods.get(&ObjectRef::new(name).within(namespace)).is_some());
        let deleted = self.deleted.iter().all(|(name, uid)| {
            pods.get(&ObjectRef::new(name).within(namespace))
                .is_none_or(|pod| {
                    pod.metadata.uid.as_deref() != Some(uid.as_str())
                        || pod.metadata.deletion_timestamp.is_some()
                })
        });
        created && deleted
    }
}

/// Runs the controller until the informers end.
pub async fn run(
    client: Client,
    pods: Arc<Informer<Pod>>,
    replica_sets: Arc<Informer<ReplicaSet>>,
    recorder: Recorder,
) {
    let context = Arc::new(Context {
        client,
        pods: pods.store(),
        replica_sets: replica_sets.store(),
        recorder,
        expectations: Mutex::new(HashMap::new()),
    });
    let sets = context.replica_sets.clone();
    Controller::for_shared_stream(replica_sets.triggers(), replica_sets.store())
        .watches_shared_stream(pods.triggers(), move |pod| interested(&sets, &pod))
        .run(reconcile, error_policy, context)
        .for_each(|_| async {})
        .await;
}

/// The ReplicaSets a pod change concerns: its controller if it has one,
/// else every ReplicaSet whose selector matches it (it may be adopted).
fn interested(sets: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let namespace = pod.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&pod.metadata) {
        if owner.kind == "ReplicaSet" && owner.api_version == "apps/v1" {
            return vec![ObjectRef::new(&owner.name).within(&namespace)];
        }
        return Vec::new();
    }
    sets.state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|rs| selects(rs, pod))
        .map(|rs| ObjectRef::from_obj(&**rs))
        .collect()
}

fn selector(rs: &ReplicaSet) -> Option<Selector> {
    Selector::try_from(rs.spec.selector.clone()).ok()
}

fn selects(rs: &ReplicaSet, pod: &Pod) -> bool {
    match selector(rs) {
        // An empty selector selects nothing here (validation forbids it).
        Some(selector) if !selector.selects_all() => selector.matches(pod.labels()),
        _ => false,
    }
}

/// Brings one ReplicaSet's pods and status in line with its spec.
pub async fn reconcile(
    rs: Arc<ReplicaSet>,
    context: Arc<Context>,
) -> Result<Action, ControllerError> {
    let namespace = rs.namespace().unwrap_or_default();
    let key = ObjectRef::from_obj(&*rs);
    let uid = rs.uid().unwrap_or_default();

    let owned = claim_pods(&rs, &context).await?;
    let active: Vec<&Arc<Pod>> = owned.iter().filter(|pod| pods::is_active(pod)).collect();

    let met = context
        .expectations
        .lock()
        .expect("never poisoned")
        .get(&key)
        .is_none_or(|e| e.met(&namespace, &context.pods));
    let mut requeue = None;
    if met && rs.metadata.deletion_timestamp.is_none() {
        context
            .expectations
            .lock()
            .expect("never poisoned")
            .remove(&key);
        let want = rs.spec.replicas.unwrap_or(1).max(0) as usize;
        manage_replicas(&rs, &uid, &active, want, &context).await?;
    } else if !met {
        requeue = Some(EXPECTATIONS_TIMEOUT);
    }

    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    let now = jiff::Timestamp::now();
    let status = status_patch(&rs, &active, min_ready, now);
    if let Some(patch) = status {
        let api: Api<ReplicaSet> = Api::namespaced(context.client.clone(), &namespace);
        match api
            .patch_status(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Ok(Action::await_change());
            }
            Err(error) => return Err(error.into()),
        }
    }
    // Pods that are ready but not yet available for minReadySeconds become
    // available by time alone.
    if min_ready > 0
        && active
            .iter()
            .any(|pod| pods::is_ready(pod) && !pods::is_available(pod, min_ready, now))
    {
        let wait = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0) + 1);
        requeue = Some(requeue.map_or(wait, |r: Duration| r.min(wait)));
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Requeues a failed reconcile after a pause.
pub fn error_policy(rs: Arc<ReplicaSet>, error: &ControllerError, _: Arc<Context>) -> Action {
    tracing::debug!(replicaset = %rs.name_any(), %error, "replicaset sync failed");
    Action::requeue(ERROR_REQUEUE)
}

/// The pods this ReplicaSet controls after adopting matching orphans and
/// releasing owned pods its selector no longer matches (Kubernetes'
/// `ClaimPods`). A ReplicaSet being deleted adopts nothing.
async fn claim_pods(rs: &ReplicaSet, context: &Context) -> Result<Vec<Arc<Pod>>, ControllerError> {
    let namespace = rs.namespace().unwrap_or_default();
    let uid = rs.uid().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    let mut owned = Vec::new();
    let candidates = context
        .pods
        .state()
        .into_iter()
        .filter(|pod| pod.namespace().as_deref() == Some(namespace.as_str()));
    for pod in candidates {
        let matches = selects(rs, &pod);
        match controller_of(&pod.metadata) {
            Some(owner) if owner.uid == uid => {
                if matches {
                    owned.push(pod);
                } else if pod.metadata.deletion_timestamp.is_none() {
                    release(&api, &pod, &uid).await?;
                }
            }
            Some(_) => {}
            None => {
                if matches
                    && rs.metadata.deletion_timestamp.is_none()
                    && pod.metadata.deletion_timestamp.is_none()
                    && pods::is_active(&pod)
                    && adopt(&api, rs, &pod).await?
                {
                    owned.push(pod);
                }
            }
        }
    }
    Ok(owned)
}

/// Makes `rs` the controller of `pod`; false if the pod changed meanwhile.
async fn adopt(api: &Api<Pod>, rs: &ReplicaSet, pod: &Pod) -> Result<bool, ControllerError> {
    let owner = owner_reference(rs);
    let mut references: Vec<_> = pod.owner_references().iter().collect();
    references.push(&owner);
    pods::set_owner_references(api, pod, &references).await
}

/// Removes `uid`'s ownerReference from `pod`.
async fn release(api: &Api<Pod>, pod: &Pod, uid: &str) -> Result<(), ControllerError> {
    let kept: Vec<_> = pod
        .owner_references()
        .iter()
        .filter(|o| o.uid != uid)
        .collect();
    pods::set_owner_references(api, pod, &kept).await.map(drop)
}

/// Creates or deletes pods so that `want` are active.
async fn manage_replicas(
    rs: &ReplicaSet,
    uid: &str,
    active: &[&Arc<Pod>],
    want: usize,
    context: &Context,
) -> Result<(), ControllerError> {
    let namespace = rs.namespace().unwrap_or_default();
    let key = ObjectRef::from_obj(rs);
    let api: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    if active.len() < want {
        let missing = (want - active.len()).min(BURST);
        let template = pods::from_template(rs, uid)?;
        let mut created = HashSet::new();
        let mut failure = None;
        // Slow start (1, 2, 4, ...), as Kubernetes does: a template the API
        // refuses fails once, not `missing` times.
        let mut batch = 1;
        let mut remaining = missing;
        while remaining > 0 && failure.is_none() {
            let size = batch.min(remaining);
            let params = PostParams::default();
            let results =
                futures::future::join_all((0..size).map(|_| api.create(&params, &template))).await;
            for result in results {
                match result {
                    Ok(pod) => {
                        context.recorder.normal(
                            rs,
                            "SuccessfulCreate",
                            format!("Created pod: {}", pod.name_any()),
                        );
                        created.insert(pod.name_any());
                    }
                    Err(error) => {
                        context.recorder.warning(
                            rs,
                            "FailedCreate",
                            format!("Error creating: {error}"),
                        );
                        failure = Some(error);
                    }
                }
            }
            remaining -= size;
            batch *= 2;
        }
        if !created.is_empty() {
            context.expectations.lock().expect("never poisoned").insert(
                key,
                Expectations {
                    created,
                    deleted: HashSet::new(),
                    since: Instant::now(),
                },
            );
        }
        if let Some(error) = failure {
            return Err(error.into());
        }
    } else if active.len() > want {
        let mut victims: Vec<&Arc<Pod>> = active.to_vec();
        victims.sort_by(|a, b| pods::deletion_order(a, b));
        victims.truncate((active.len() - want).min(BURST));
        let results = futures::future::join_all(victims.iter().map(|pod| {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let name = pod.name_any();
            let api = api.clone();
            async move { (name, api.delete(&pod.name_any(), &params).await) }
        }))
        .await;
        let mut deleted = HashSet::new();
        let mut failure = None;
        for ((name, result), pod) in results.into_iter().zip(&victims) {
            match result {
                Ok(_) => {
                    context
                        .recorder
                        .normal(rs, "SuccessfulDelete", format!("Deleted pod: {name}"));
                    deleted.insert((name, pod.uid().unwrap_or_default()));
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => {
                    context.recorder.warning(
                        rs,
                        "FailedDelete",
                        format!("Error deleting: {error}"),
                    );
                    failure = Some(error);
                }
            }
        }
        if !deleted.is_empty() {
            context.expectations.lock().expect("never poisoned").insert(
                key,
                Expectations {
                    created: HashSet::new(),
                    deleted,
                    since: Instant::now(),
                },
            );
        }
        if let Some(error) = failure {
            return Err(error.into());
        }
    }
    Ok(())
}

/// The status as a merge patch, or `None` if it is already current.
fn status_patch(
    rs: &ReplicaSet,
    active: &[&Arc<Pod>],
    min_ready_seconds: i32,
    now: jiff::Timestamp,
) -> Option<serde_json::Value> {
    let template_labels: BTreeMap<String, String> = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|pod| f(pod)).count() as i32;
    let replicas = active.len() as i32;
    let fully_labeled = count(&|pod: &Pod| {
        template_labels
            .iter()
            .all(|(k, v)| pod.labels().get(k) == Some(v))
    });
    let ready = count(&pods::is_ready);
    let available = count(&|pod: &Pod| pods::is_available(pod, min_ready_seconds, now));
    let generation = rs.metadata.generation.unwrap_or(0);
    let current = rs.status.clone().unwrap_or_default();
    let unchanged = current.replicas == replicas
        && current.fully_labeled_replicas.unwrap_or(0) == fully_labeled
        && current.ready_replicas.unwrap_or(0) == ready
        && current.available_replicas.unwrap_or(0) == available
        && current.observed_generation.unwrap_or(0) == generation;
    if unchanged {
        return None;
    }
    Some(json!({
        "status": {
            "replicas": replicas,
            "fullyLabeledReplicas": fully_labeled,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": generation,
        }
    }))
}
