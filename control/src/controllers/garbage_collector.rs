//! The garbage collector: deletes objects whose owners are gone, and
//! finishes foreground and orphan deletions, as Kubernetes'
//! `pkg/controller/garbagecollector` does.
//!
//! It keeps a graph of every watched object's ownerReferences (uid →
//! owners, owner uid → dependents), fed by the informers, and works a queue
//! of uids:
//!
//! - **attempt to delete** a dependent: an object whose owners are all gone
//!   (absence confirmed by a live read, since another kind's watch may lag)
//!   is deleted in the background; an object whose remaining owners are
//!   being deleted in the foreground is deleted in the foreground itself;
//!   references to gone owners are removed while a live owner remains.
//!   An owner waiting for its dependents (`foregroundDeletion`) loses that
//!   finalizer once no dependent blocks it.
//! - **orphan**: an owner deleted with `propagationPolicy=Orphan` (finalizer
//!   `orphan`) has its reference removed from every dependent, then the
//!   finalizer removed.
//!
//! A background deletion is the API server's part (the owner goes at once);
//! the collector then deletes the dependents, which cascades further down.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt as _};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::Notify;

use super::ControllerError;
use super::informer::Change;
use super::pods::{landed, owner_references_patch};

/// Items worked on at once.
const WORKERS: usize = 4;
/// Pause before retrying an item that failed.
const RETRY: Duration = Duration::from_secs(1);

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

/// What the collector knows of one object.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphObject {
    /// `apiVersion` of the kind.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// uid.
    pub uid: String,
    /// ownerReferences.
    pub owners: Vec<OwnerReference>,
    /// `deletionTimestamp` is set.
    pub deleting: bool,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
}

impl GraphObject {
    /// The graph's view of a typed object.
    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        let meta = object.meta();
        Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        }
    }

    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    fn waiting_for_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }
}

/// The kinds the collector watches, for API calls on them.
#[derive(Clone, Default)]
pub struct Kinds {
    resources: HashMap<(String, String), ApiResource>,
}

impl Kinds {
    /// Adds kind `K`.
    pub fn add<K: Resource<DynamicType = ()>>(&mut self) {
        let resource = ApiResource::erase::<K>(&());
        self.resources.insert(
            (resource.api_version.clone(), resource.kind.clone()),
            resource,
        );
    }

    fn api(
        &self,
        client: &Client,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Option<Api<DynamicObject>> {
        let resource = self
            .resources
            .get(&(api_version.to_owned(), kind.to_owned()))?;
        Some(if namespace.is_empty() {
            Api::all_with(client.clone(), resource)
        } else {
            Api::namespaced_with(client.clone(), namespace, resource)
        })
    }
}

/// A typed change stream turned into graph changes.
pub fn changes<K: Resource<DynamicType = ()> + Send + Sync + 'static>(
    stream: impl Stream<Item = Change<K>> + Send + 'static,
) -> BoxStream<'static, GraphChange> {
    stream
        .map(|change| match change {
            Change::Applied(object) => GraphChange::Applied(GraphObject::of(&*object)),
            Change::Deleted(object) => GraphChange::Deleted(GraphObject::of(&*object)),
        })
        .boxed()
}

/// A change to the graph.
#[derive(Debug)]
pub enum GraphChange {
    /// Created, updated or listed.
    Applied(GraphObject),
    /// Gone.
    Deleted(GraphObject),
}

#[derive(Default)]
struct Graph {
    objects: HashMap<String, GraphObject>,
    dependents: HashMap<String, HashSet<String>>,
    queue: VecDeque<String>,
    queued: HashSet<String>,
}

impl Graph {
    fn enqueue(&mut self, uid: &str) {
        if self.queued.insert(uid.to_owned()) {
            self.queue.push_back(uid.to_owned());
        }
    }

    fn unlink(&mut self, object: &GraphObject) {
        for owner in &object.owners {
            if let Some(dependents) = self.dependents.get_mut(&owner.uid) {
                dependents.remove(&object.uid);
                if dependents.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
    }

    /// Applies a change; `synced` tells whether every informer has listed
    /// (before that, an unknown owner may simply not be listed yet).
    fn apply(&mut self, change: GraphChange, synced: bool) {
        match change {
            GraphChange::Applied(object) => {
                if let Some(old) = self.objects.remove(&object.uid) {
                    self.unlink(&old);
                }
                for owner in &object.owners {
                    self.dependents
                        .entry(owner.uid.clone())
                        .or_default()
                        .insert(object.uid.clone());
                }
                let uid = object.uid.clone();
                let dangling = synced
                    && object.owners.iter().any(|owner| {
                        self.objects
                            .get(&owner.uid)
                            .is_none_or(|o| o.waiting_for_dependents())
                    });
                let orphaning = object.deleting && object.has_finalizer(ORPHAN);
                let waiting = object.waiting_for_dependents();
                self.objects.insert(uid.clone(), object);
                if dangling || orphaning || waiting {
                    self.enqueue(&uid);
                }
                if waiting {
                    let dependents: Vec<String> = self
                        .dependents
                        .get(&uid)
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect();
                    for dependent in dependents {
                        self.enqueue(&dependent);
                    }
                }
            }
            GraphChange::Deleted(object) => {
                let Some(old) = self.objects.remove(&object.uid) else {
                    return;
                };
                self.unlink(&old);
                let dependents: Vec<String> = self
                    .dependents
                    .get(&old.uid)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                for dependent in dependents {
                    self.enqueue(&dependent);
                }
                // An owner waiting for its dependents may now be free.
                for owner in &old.owners {
                    if self
                        .objects
                        .get(&owner.uid)
                        .is_some_and(GraphObject::waiting_for_dependents)
                    {
                        self.enqueue(&owner.uid);
                    }
                }
            }
        }
    }

    /// Every object with owners, to find dangling references after the
    /// first sync.
    fn enqueue_owned(&mut self) {
        let uids: Vec<String> = self
            .objects
            .values()
            .filter(|object| !object.owners.is_empty() || object.deleting)
            .map(|object| object.uid.clone())
            .collect();
        for uid in uids {
            self.enqueue(&uid);
        }
    }
}

struct Collector {
    client: Client,
    kinds: Kinds,
    graph: Mutex<Graph>,
    work: Notify,
}

/// Runs the collector over `changes` (from every watched kind) until they
/// end; `synced` resolves once every informer has listed.
pub async fn run(
    client: Client,
    kinds: Kinds,
    changes: Vec<BoxStream<'static, GraphChange>>,
    synced: impl Future<Output = ()> + Send,
) {
    let collector = Arc::new(Collector {
        client,
        kinds,
        graph: Mutex::new(Graph::default()),
        work: Notify::new(),
    });
    let ingest = {
        let collector = collector.clone();
        async move {
            let mut changes = stream::select_all(changes);
            let mut synced = std::pin::pin!(synced);
            let mut is_synced = false;
            loop {
                tokio::select! {
                    () = &mut synced, if !is_synced => {
                        is_synced = true;
                        collector.graph.lock().expect("never poisoned").enqueue_owned();
                        collector.work.notify_waiters();
                    }
                    change = changes.next() => {
                        let Some(change) = change else { return };
                        let queued = {
                            let mut graph = collector.graph.lock().expect("never poisoned");
                            graph.apply(change, is_synced);
                            !graph.queue.is_empty()
                        };
                        if queued {
                            collector.work.notify_waiters();
                        }
                    }
                }
            }
        }
    };
    let workers = futures::future::join_all((0..WORKERS).map(|_| collector.clone().work_loop()));
    futures::future::join(ingest, workers).await;
}

/// What to do with an item, decided under the graph lock.
enum Step {
    Nothing,
    Orphan {
        owner: GraphObject,
        dependents: Vec<GraphObject>,
    },
    RemoveForegroundFinalizer(GraphObject),
    /// Attempt to delete a dependent: its owners to classify.
    Dependent {
        object: GraphObject,
        owners: Vec<(OwnerReference, Option<GraphObject>)>,
        has_dependents: bool,
    },
}

impl Collector {
    async fn work_loop(self: Arc<Self>) {
        loop {
            let next = {
                let mut graph = self.graph.lock().expect("never poisoned");
                let next = graph.queue.pop_front();
                if let Some(uid) = &next {
                    graph.queued.remove(uid);
                }
                next
            };
            let Some(uid) = next else {
                let notified = self.work.notified();
                if !self.graph.lock().expect("never poisoned").queue.is_empty() {
                    continue;
                }
                notified.await;
                continue;
            };
            if let Err(error) = self.process(&uid).await {
                tracing::debug!(%uid, %error, "garbage collection of an object failed; retrying");
                tokio::time::sleep(RETRY).await;
                self.graph.lock().expect("never poisoned").enqueue(&uid);
            }
        }
    }

    fn step(&self, uid: &str) -> Step {
        let graph = self.graph.lock().expect("never poisoned");
        let Some(object) = graph.objects.get(uid).cloned() else {
            return Step::Nothing;
        };
        let dependents: Vec<GraphObject> = graph
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| graph.objects.get(d).cloned())
            .collect();
        if object.deleting && object.has_finalizer(ORPHAN) {
            return Step::Orphan {
                owner: object,
                dependents,
            };
        }
        if object.waiting_for_dependents() {
            let blocked = dependents.iter().any(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
            });
            if !blocked {
                return Step::RemoveForegroundFinalizer(object);
            }
            // Dependents are deleted through their own items.
            return Step::Nothing;
        }
        if object.owners.is_empty() || object.deleting {
            return Step::Nothing;
        }
        let owners = object
            .owners
            .iter()
            .map(|o| (o.clone(), graph.objects.get(&o.uid).cloned()))
            .collect();
        Step::Dependent {
            object,
            owners,
            has_dependents: !dependents.is_empty(),
        }
    }

    async fn process(&self, uid: &str) -> Result<(), ControllerError> {
        match self.step(uid) {
            Step::Nothing => Ok(()),
            Step::Orphan { owner, dependents } => {
                for dependent in dependents {
                    let kept: Vec<&OwnerReference> = dependent
                        .owners
                        .iter()
                        .filter(|o| o.uid != owner.uid)
                        .collect();
                    self.patch_owners(&dependent, &kept).await?;
                }
                self.remove_finalizer(&owner, ORPHAN).await
            }
            Step::RemoveForegroundFinalizer(object) => {
                self.remove_finalizer(&object, FOREGROUND).await
            }
            Step::Dependent {
                object,
                owners,
                has_dependents,
            } => {
                let mut solid = Vec::new();
                let mut dangling = Vec::new();
                let mut waiting = Vec::new();
                for (reference, known) in owners {
                    match self.owner_state(&object, &reference, known).await? {
                        OwnerState::Solid => solid.push(reference),
                        OwnerState::Dangling => dangling.push(reference),
                        OwnerState::Waiting => waiting.push(reference),
                    }
                }
                if !solid.is_empty() {
                    if dangling.is_empty() && waiting.is_empty() {
                        return Ok(());
                    }
                    // Keep only live owners (Kubernetes also drops the
                    // references to owners deleting in the foreground).
                    let kept: Vec<&OwnerReference> = solid.iter().collect();
                    return self.patch_owners(&object, &kept).await;
                }
                let policy = if !waiting.is_empty() && has_dependents {
                    PropagationPolicy::Foreground
                } else if object.has_finalizer(ORPHAN) {
                    PropagationPolicy::Orphan
                } else if object.has_finalizer(FOREGROUND) {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                };
                self.delete(&object, policy).await
            }
        }
    }

    /// Classifies an owner; absence is confirmed with a live read.
    async fn owner_state(
        &self,
        dependent: &GraphObject,
        reference: &OwnerReference,
        known: Option<GraphObject>,
    ) -> Result<OwnerState, ControllerError> {
        if let Some(owner) = known {
            return Ok(if owner.waiting_for_dependents() {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            });
        }
        let Some(api) = self.kinds.api(
            &self.client,
            &reference.api_version,
            &reference.kind,
            &owner_namespace(dependent, reference),
        ) else {
            // A kind nobody serves here cannot own anything that exists.
            return Ok(OwnerState::Dangling);
        };
        match api.get_opt(&reference.name).await? {
            Some(owner) if owner.metadata.uid.as_deref() == Some(reference.uid.as_str()) => {
                let deleting = owner.metadata.deletion_timestamp.is_some();
                let foreground = owner
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FOREGROUND);
                Ok(if deleting && foreground {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                })
            }
            _ => Ok(OwnerState::Dangling),
        }
    }

    async fn patch_owners(
        &self,
        object: &GraphObject,
        kept: &[&OwnerReference],
    ) -> Result<(), ControllerError> {
        let Some(api) = self.kinds.api(
            &self.client,
            &object.api_version,
            &object.kind,
            &object.namespace,
        ) else {
            return Ok(());
        };
        let patch = json!({ "metadata": { "ownerReferences": owner_references_patch(kept), "uid": object.uid } });
        landed(
            api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )
        .map(drop)
    }

    async fn remove_finalizer(
        &self,
        object: &GraphObject,
        finalizer: &str,
    ) -> Result<(), ControllerError> {
        let Some(api) = self.kinds.api(
            &self.client,
            &object.api_version,
            &object.kind,
            &object.namespace,
        ) else {
            return Ok(());
        };
        // Read-modify-write with the resourceVersion, so that finalizers
        // added meanwhile by others are kept.
        let Some(current) = api.get_opt(&object.name).await? else {
            return Ok(());
        };
        if current.metadata.uid.as_deref() != Some(object.uid.as_str()) {
            return Ok(());
        }
        let finalizers: Vec<&String> = current
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .collect();
        let patch = json!({ "metadata": {
            "finalizers": finalizers,
            "resourceVersion": current.metadata.resource_version,
        }});
        landed(
            api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )
        .map(drop)
    }

    async fn delete(
        &self,
        object: &GraphObject,
        policy: PropagationPolicy,
    ) -> Result<(), ControllerError> {
        let Some(api) = self.kinds.api(
            &self.client,
            &object.api_version,
            &object.kind,
            &object.namespace,
        ) else {
            return Ok(());
        };
        tracing::debug!(kind = %object.kind, namespace = %object.namespace, name = %object.name, ?policy, "deleting an object whose owners are gone");
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(object.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        landed(api.delete(&object.name, &params).await).map(drop)
    }
}

enum OwnerState {
    /// Exists and is not waiting for its dependents.
    Solid,
    /// Gone, or replaced by an object with another uid.
    Dangling,
    /// Being deleted in the foreground.
    Waiting,
}

/// Owners live in the dependent's namespace, or are cluster-scoped.
fn owner_namespace(dependent: &GraphObject, reference: &OwnerReference) -> String {
    const CLUSTER_SCOPED: [&str; 4] = ["Node", "Namespace", "RuntimeClass", "PersistentVolume"];
    if CLUSTER_SCOPED.contains(&reference.kind.as_str()) {
        String::new()
    } else {
        dependent.namespace.clone()
    }
}
