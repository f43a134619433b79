//! What controllers ask of pods and owners: controller references, pod
//! readiness and availability, which pod to delete first, and pods made
//! from a template. Pure functions.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use super::ControllerError;

/// The ownerReference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|reference| reference.controller == Some(true))
}

/// A controller reference to `owner` (`controller` and
/// `blockOwnerDeletion` set, as Kubernetes' controllers write them).
pub fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether a write landed: `Ok(false)` when the object is gone (404) or
/// changed meanwhile (409) — the change's own event brings another
/// reconcile, so neither is a failure.
pub fn landed<T>(result: Result<T, kube::Error>) -> Result<bool, ControllerError> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Replaces `object`'s ownerReferences with `references`, guarded by the
/// uid and resourceVersion it was read with; `Ok(false)` if it changed or
/// went meanwhile.
pub async fn set_owner_references<K>(
    api: &Api<K>,
    object: &K,
    references: &[&OwnerReference],
) -> Result<bool, ControllerError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let meta = object.meta();
    let patch = serde_json::json!({
        "metadata": {
            "ownerReferences": owner_references_patch(references),
            "uid": meta.uid,
            "resourceVersion": meta.resource_version,
        }
    });
    let name = meta.name.clone().unwrap_or_default();
    landed(
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    )
}

/// The node a pod is bound to, if any.
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

/// ownerReferences as a merge-patch value: `null` (removed) when empty,
/// as Kubernetes omits an empty list.
pub fn owner_references_patch<T: serde::Serialize>(references: &[T]) -> serde_json::Value {
    if references.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(references)
    }
}

/// Not finished and not being deleted (Kubernetes' `IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// Whether the pod has finished (`Succeeded` or `Failed`).
pub fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When the pod became ready, if it is.
pub fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    )
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    let Some(since) = ready_since(pod) else {
        return false;
    };
    min_ready_seconds <= 0
        || since + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|statuses| statuses.iter().map(|s| s.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Orders pods so that the ones to delete first come first (Kubernetes'
/// `ActivePods` ranking): unscheduled before scheduled, pending before
/// unknown before running, not ready before ready, ready for less time
/// first, more restarts first, newer first.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |pod: &Pod| {
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase_rank = |pod: &Pod| match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        Some(_) => 3,
    };
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        // Ready more recently first.
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        // Newer first.
        .then_with(|| {
            let created = |pod: &Pod| pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

/// A new pod from `rs`'s template: labels and annotations of the template,
/// `generateName` `<rs>-`, and `rs` as its controller.
pub fn from_template(rs: &ReplicaSet, _uid: &str) -> Result<Pod, ControllerError> {
    let template = rs
        .spec
        .template
        .clone()
        .ok_or_else(|| ControllerError::NoTemplate(rs.name_any()))?;
    let template_meta = template.metadata.unwrap_or_default();
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner_reference(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready_at: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(100).unwrap())),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_owned),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.to_owned()),
                conditions: ready_at.map(|at| {
                    vec![PodCondition {
                        type_: "Ready".to_owned(),
                        status: "True".to_owned(),
                        last_transition_time: Some(Time(jiff::Timestamp::from_second(at).unwrap())),
                        ..PodCondition::default()
                    }]
                }),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn deletion_prefers_unscheduled_then_pending_then_not_ready_then_newest_ready() {
        let mut pods = [
            pod("ready-old", Some("n"), "Running", Some(1000)),
            pod("ready-new", Some("n"), "Running", Some(2000)),
            pod("running-not-ready", Some("n"), "Running", None),
            pod("pending", Some("n"), "Pending", None),
            pod("unscheduled", None, "Pending", None),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods.iter().map(|p| p.name_any()).collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "running-not-ready",
                "ready-new",
                "ready-old"
            ]
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let ready = pod("p", Some("n"), "Running", Some(1000));
        let at = |s| jiff::Timestamp::from_second(s).unwrap();
        assert!(is_available(&ready, 0, at(1000)));
        assert!(!is_available(&ready, 10, at(1009)));
        assert!(is_available(&ready, 10, at(1010)));
        assert!(!is_available(
            &pod("q", Some("n"), "Running", None),
            0,
            at(1)
        ));
    }

    #[test]
    fn active_excludes_finished_and_deleting_pods() {
        assert!(is_active(&pod("p", None, "Pending", None)));
        assert!(!is_active(&pod("p", None, "Succeeded", None)));
        assert!(!is_active(&pod("p", None, "Failed", None)));
        let mut deleting = pod("p", None, "Running", None);
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(!is_active(&deleting));
    }
}
