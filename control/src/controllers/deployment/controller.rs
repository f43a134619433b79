//! The Deployment controller's reconcile: claim ReplicaSets (adopt the
//! orphans the selector matches, release the owned ones it no longer
//! matches), [`plan`](super::plan) from the caches, apply the actions in
//! order, and record events for the ReplicaSets it scales.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::{Selector, SelectorExt as _};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt as _};
use serde_json::json;

use super::{Action, Observed, plan, resolve_create_conflict};
use crate::controllers::ControllerError;
use crate::controllers::events::Recorder;
use crate::controllers::informer::Informer;
use crate::controllers::pods::{controller_of, landed, owner_reference, set_owner_references};

/// Re-check after an error.
const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// What the controller shares between reconciles.
pub struct Context {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    recorder: Recorder,
}

/// Runs the controller until the informers end.
pub async fn run(
    client: Client,
    deployments: Arc<Informer<Deployment>>,
    replica_sets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    recorder: Recorder,
) {
    let context = Arc::new(Context {
        client,
        replica_sets: replica_sets.store(),
        pods: pods.store(),
        recorder,
    });
    let sets = replica_sets.store();
    let deployment_store = deployments.store();
    Controller::for_shared_stream(deployments.triggers(), deployments.store())
        // Owned ReplicaSets, and orphans a selector may adopt.
        .watches_shared_stream(replica_sets.triggers(), move |rs| {
            interested(&deployment_store, &rs)
        })
        // Recreate waits for old pods to go: their changes matter.
        .watches_shared_stream(pods.triggers(), move |pod| {
            let owner = controller_of(&pod.metadata)?;
            let namespace = pod.namespace().unwrap_or_default();
            let rs = sets.get(&ObjectRef::new(&owner.name).within(&namespace))?;
            let deployment = controller_of(&rs.metadata)?;
            (deployment.kind == "Deployment")
                .then(|| ObjectRef::new(&deployment.name).within(&namespace))
        })
        .run(reconcile, error_policy, context)
        .for_each(|_| async {})
        .await;
}

fn selector(deployment: &Deployment) -> Option<Selector> {
    Selector::try_from(deployment.spec.selector.clone())
        .ok()
        .filter(|s| !s.selects_all())
}

/// The Deployments a ReplicaSet change concerns.
fn interested(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let namespace = rs.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&rs.metadata) {
        return if owner.kind == "Deployment" {
            vec![ObjectRef::new(&owner.name).within(&namespace)]
        } else {
            Vec::new()
        };
    }
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|d| selector(d).is_some_and(|s| s.matches(rs.labels())))
        .map(|d| ObjectRef::from_obj(&**d))
        .collect()
}

/// Moves one Deployment a step towards its spec.
pub async fn reconcile(
    deployment: Arc<Deployment>,
    context: Arc<Context>,
) -> Result<Requeue, ControllerError> {
    let namespace = deployment.namespace().unwrap_or_default();
    let name = deployment.name_any();
    let uid = deployment.uid().unwrap_or_default();
    let sets_api: Api<ReplicaSet> = Api::namespaced(context.client.clone(), &namespace);

    // Claim ReplicaSets (Kubernetes' ClaimReplicaSets).
    let selector = selector(&deployment);
    let mut owned: Vec<Arc<ReplicaSet>> = Vec::new();
    for rs in context
        .replica_sets
        .state()
        .into_iter()
        .filter(|rs| rs.namespace().as_deref() == Some(namespace.as_str()))
    {
        let matches = selector.as_ref().is_some_and(|s| s.matches(rs.labels()));
        match controller_of(&rs.metadata) {
            Some(owner) if owner.uid == uid => {
                if matches {
                    owned.push(rs);
                } else if rs.metadata.deletion_timestamp.is_none() {
                    let kept: Vec<_> = rs
                        .owner_references()
                        .iter()
                        .filter(|o| o.uid != uid)
                        .collect();
                    set_owner_references(&sets_api, &*rs, &kept).await?;
                }
            }
            Some(_) => {}
            None if matches
                && deployment.metadata.deletion_timestamp.is_none()
                && rs.metadata.deletion_timestamp.is_none() =>
            {
                let owner = owner_reference(&*deployment);
                let mut references: Vec<_> = rs.owner_references().iter().collect();
                references.push(&owner);
                if set_owner_references(&sets_api, &*rs, &references).await? {
                    owned.push(rs);
                }
            }
            None => {}
        }
    }
    let owned_uids: Vec<String> = owned.iter().filter_map(|rs| rs.uid()).collect();
    let pods: Vec<Arc<Pod>> = context
        .pods
        .state()
        .into_iter()
        .filter(|pod| pod.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|pod| controller_of(&pod.metadata).is_some_and(|o| owned_uids.contains(&o.uid)))
        .collect();

    let observed = Observed {
        deployment: &deployment,
        replica_sets: owned.iter().map(|rs| &**rs).collect(),
        pods: pods.iter().map(|pod| &**pod).collect(),
        now: jiff::Timestamp::now(),
    };
    let plan = match plan(&observed) {
        Ok(plan) => plan,
        Err(error) => {
            context
                .recorder
                .warning(&*deployment, "InvalidSpec", error.to_string());
            return Ok(Requeue::await_change());
        }
    };

    let deployments_api: Api<Deployment> = Api::namespaced(context.client.clone(), &namespace);
    let mut resource_version = deployment.metadata.resource_version.clone();
    for action in plan.actions {
        match action {
            Action::CreateReplicaSet(rs) => {
                match sets_api.create(&PostParams::default(), &rs).await {
                    Ok(created) => {
                        let replicas = created.spec.replicas.unwrap_or(0);
                        context.recorder.normal(
                            &*deployment,
                            "ScalingReplicaSet",
                            format!(
                                "Scaled up replica set {} from 0 to {replicas}",
                                created.name_any()
                            ),
                        );
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        let existing = sets_api.get(&rs.name_any()).await?;
                        if let Some(action) = resolve_create_conflict(&deployment, &existing)
                            && let Action::UpdateDeploymentStatus(status) = action
                        {
                            let patch =
                                json!({ "status": { "collisionCount": status.collision_count } });
                            deployments_api
                                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                                .await?;
                        }
                        return Ok(Requeue::requeue(Duration::from_secs(1)));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Action::UpdateReplicaSet(update) => {
                let before = owned
                    .iter()
                    .find(|rs| rs.name_any() == update.name)
                    .and_then(|rs| rs.spec.replicas)
                    .unwrap_or(0);
                let patch = json!({
                    "metadata": {
                        "annotations": update.annotations,
                        "resourceVersion": update.resource_version,
                    },
                    "spec": {
                        "replicas": update.replicas,
                        "minReadySeconds": update.min_ready_seconds,
                    },
                });
                match sets_api
                    .patch(&update.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {}
                    // Stale cache: the write's own event brings a reconcile.
                    Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {
                        return Ok(Requeue::await_change());
                    }
                    Err(error) => return Err(error.into()),
                }
                if before != update.replicas {
                    let direction = if update.replicas > before {
                        "up"
                    } else {
                        "down"
                    };
                    context.recorder.normal(
                        &*deployment,
                        "ScalingReplicaSet",
                        format!(
                            "Scaled {direction} replica set {} from {before} to {}",
                            update.name, update.replicas
                        ),
                    );
                }
            }
            Action::DeleteReplicaSet {
                name: rs_name,
                uid,
                resource_version,
            } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid,
                        resource_version,
                    }),
                    ..DeleteParams::default()
                };
                match sets_api.delete(&rs_name, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Action::UpdateDeploymentAnnotations(annotations) => {
                let patch = json!({ "metadata": { "annotations": annotations } });
                let patched = deployments_api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                resource_version = patched.metadata.resource_version;
            }
            Action::UpdateDeploymentStatus(status) => {
                // The whole status, guarded by the resourceVersion this
                // reconcile read or last wrote: a replace, so that counts
                // that dropped to zero disappear.
                let mut updated = Deployment {
                    status: Some(*status),
                    ..(*deployment).clone()
                };
                updated.metadata.resource_version = resource_version.clone();
                let replaced = deployments_api
                    .replace_status(&name, &PostParams::default(), &updated)
                    .await;
                if !landed(replaced)? {
                    return Ok(Requeue::requeue(Duration::from_millis(200)));
                }
            }
        }
    }
    Ok(plan
        .requeue_after
        .map_or_else(Requeue::await_change, Requeue::requeue))
}

/// Requeues a failed reconcile after a pause.
pub fn error_policy(
    deployment: Arc<Deployment>,
    error: &ControllerError,
    _: Arc<Context>,
) -> Requeue {
    tracing::debug!(deployment = %deployment.name_any(), %error, "deployment sync failed");
    Requeue::requeue(ERROR_REQUEUE)
}
