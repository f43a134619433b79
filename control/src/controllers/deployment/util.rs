//! Pure helpers after Kubernetes' `deployment/util/deployment_util.go` and
//! `controller_utils.go`: the resolved spec, fenceposts, revisions and
//! annotations, conditions, template equality, orderings and the replica
//! arithmetic.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::{
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, POD_TEMPLATE_HASH_LABEL, PlanError,
    REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
};

/// kubectl's `kubectl.kubernetes.io/last-applied-configuration`.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The `extensions/v1beta1` rollback request, never copied.
const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Kubernetes keeps `revision-history` under about 2000 characters.
pub(super) const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// The strategy of a Deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Strategy {
    /// Kill all old pods before creating new ones.
    Recreate,
    /// Replace pods gradually within maxSurge and maxUnavailable.
    RollingUpdate,
}

/// The Deployment's spec with `apps/v1` defaults applied and its fenceposts
/// resolved, read once per plan.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Settings {
    pub(super) replicas: i32,
    pub(super) strategy: Strategy,
    /// Kubernetes' `MaxSurge(d)`: 0 unless RollingUpdate.
    pub(super) max_surge: i32,
    /// Kubernetes' `MaxUnavailable(d)`: 0 unless RollingUpdate, at most
    /// `replicas`.
    pub(super) max_unavailable: i32,
    /// `None`: keep every old ReplicaSet (unset would default to 10;
    /// MaxInt32 means unlimited).
    pub(super) revision_history_limit: Option<i32>,
    /// `None`: no deadline (MaxInt32).
    pub(super) progress_deadline_seconds: Option<i32>,
    pub(super) min_ready_seconds: i32,
    pub(super) paused: bool,
}

impl Settings {
    pub(super) fn from_deployment(d: &Deployment) -> Result<Self, PlanError> {
        let spec = &d.spec;
        let replicas = spec.replicas.unwrap_or(1);
        let strategy_spec = spec.strategy.as_ref();
        let strategy = match strategy_spec
            .and_then(|s| s.type_.as_deref())
            .unwrap_or("RollingUpdate")
        {
            "RollingUpdate" => Strategy::RollingUpdate,
            "Recreate" => Strategy::Recreate,
            other => return Err(PlanError::UnknownStrategy(other.to_owned())),
        };
        let (max_surge, max_unavailable) = match strategy {
            Strategy::Recreate => (0, 0),
            Strategy::RollingUpdate => {
                let rolling = strategy_spec.and_then(|s| s.rolling_update.as_ref());
                let default = IntOrString::String("25%".into());
                let surge = rolling
                    .and_then(|r| r.max_surge.as_ref())
                    .unwrap_or(&default);
                let unavailable = rolling
                    .and_then(|r| r.max_unavailable.as_ref())
                    .unwrap_or(&default);
                let (surge, unavailable) = resolve_fenceposts(surge, unavailable, replicas)?;
                let unavailable = if replicas == 0 {
                    0
                } else {
                    unavailable.min(replicas)
                };
                (surge, unavailable)
            }
        };
        let unlimited = |value: i32| (value != i32::MAX).then_some(value);
        Ok(Settings {
            replicas,
            strategy,
            max_surge,
            max_unavailable,
            revision_history_limit: unlimited(spec.revision_history_limit.unwrap_or(10)),
            progress_deadline_seconds: unlimited(spec.progress_deadline_seconds.unwrap_or(600)),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            paused: spec.paused.unwrap_or(false),
        })
    }
}

/// Kubernetes' `GetScaledValueFromIntOrPercent`: an integer as is, a
/// percentage of `total` rounded up or down.
pub(super) fn scaled_value(
    value: &IntOrString,
    total: i32,
    round_up: bool,
    field: &'static str,
) -> Result<i32, PlanError> {
    match value {
        IntOrString::Int(value) => Ok(*value),
        IntOrString::String(text) => {
            let invalid = || PlanError::InvalidIntOrPercent {
                field,
                value: text.clone(),
            };
            let percent: i64 = text
                .strip_suffix('%')
                .ok_or_else(invalid)?
                .parse()
                .map_err(|_| invalid())?;
            let exact = percent as f64 * f64::from(total) / 100.0;
            let rounded = if round_up {
                exact.ceil()
            } else {
                exact.floor()
            };
            Ok(rounded as i32)
        }
    }
}

/// Kubernetes' `ResolveFenceposts`: maxSurge rounds up, maxUnavailable
/// down, and if both come to zero maxUnavailable is 1.
pub(super) fn resolve_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    desired: i32,
) -> Result<(i32, i32), PlanError> {
    let surge = scaled_value(max_surge, desired, true, "maxSurge")?;
    let mut unavailable = scaled_value(max_unavailable, desired, false, "maxUnavailable")?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// `spec.replicas`, defaulted to 1 as the API does.
pub(super) fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

/// `status.replicas`.
pub(super) fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// `status.availableReplicas`.
pub(super) fn available_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// `status.readyReplicas`.
pub(super) fn ready_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// Kubernetes' `FilterActiveReplicaSets` predicate.
pub(super) fn is_active(rs: &ReplicaSet) -> bool {
    spec_replicas(rs) > 0
}

/// Kubernetes' `ReplicaSetsByCreationTimestamp`: oldest first, then by
/// name. A ReplicaSet without a timestamp (created by this plan) is newest.
pub(super) fn by_creation_timestamp(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let time = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let order = match (time(a), time(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
    };
    order.then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Kubernetes' `ReplicaSetsBySizeNewer`: largest first, newest first.
pub(super) fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b)
        .cmp(&spec_replicas(a))
        .then_with(|| by_creation_timestamp(b, a))
}

/// Kubernetes' `ReplicaSetsBySizeOlder`: largest first, oldest first.
pub(super) fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b)
        .cmp(&spec_replicas(a))
        .then_with(|| by_creation_timestamp(a, b))
}

/// Kubernetes' `ReplicaSetsByRevision`: lowest revision first (unparsable
/// counts as 0), then oldest.
pub(super) fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let revision = |rs: &ReplicaSet| revision(rs).unwrap_or(0);
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation_timestamp(a, b))
}

fn annotation<'r>(rs: &'r ReplicaSet, key: &str) -> Option<&'r str> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Kubernetes' `Revision`: the revision annotation, 0 when missing, `None`
/// when it does not parse.
pub(super) fn revision(rs: &ReplicaSet) -> Option<i64> {
    match annotation(rs, REVISION_ANNOTATION) {
        None => Some(0),
        Some(text) => text.parse().ok(),
    }
}

/// Kubernetes' `MaxRevision`, skipping unparsable revisions.
pub(super) fn max_revision<'r>(rss: impl IntoIterator<Item = &'r ReplicaSet>) -> i64 {
    rss.into_iter().filter_map(revision).fold(0, i64::max)
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(rs, key)?.parse().ok()
}

/// The desired-replicas annotation, if present and numeric.
pub(super) fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

/// The max-replicas annotation, if present and numeric.
pub(super) fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS_ANNOTATION)
}

/// Kubernetes' `SetReplicasAnnotations`; true if anything changed.
pub(super) fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut updated = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_owned(), value);
            updated = true;
        }
    }
    updated
}

/// Kubernetes' `ReplicasAnnotationsNeedUpdate`.
pub(super) fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS_ANNOTATION) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str())
}

/// Kubernetes' `skipCopyAnnotation`: annotations of the Deployment that are
/// not copied to its ReplicaSets.
fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | DEPRECATED_ROLLBACK_TO
    )
}

/// Kubernetes' `copyDeploymentAnnotationsToReplicaSet`: adds or overwrites,
/// never removes; true if anything changed.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(key) || annotations.get(key) == Some(value) {
            continue;
        }
        annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    changed
}

/// Kubernetes' `SetNewReplicaSetAnnotations`: copies the Deployment's
/// annotations, raises the revision to `new_revision` (keeping the old one
/// in `revision-history` on a rollback), and on a ReplicaSet about to be
/// created (`exists` false) sets the replicas annotations. True if the
/// annotations changed.
pub(super) fn set_new_replica_set_annotations(
    d: &Deployment,
    settings: &Settings,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    history_limit_chars: usize,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let had_revision = annotations.contains_key(REVISION_ANNOTATION);
    let old_revision = annotations
        .get(REVISION_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let old_revision_number = match old_revision.parse::<i64>() {
        Ok(number) => number,
        // Kubernetes gives up on a ReplicaSet with a garbled revision.
        Err(_) if !old_revision.is_empty() => return false,
        Err(_) => 0,
    };
    if old_revision_number < new_revision {
        annotations.insert(REVISION_ANNOTATION.to_owned(), new_revision.to_string());
        changed = true;
        if had_revision {
            let history = annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            let old_revisions: Vec<&str> = history.split(',').collect();
            if old_revisions[0].is_empty() {
                annotations.insert(REVISION_HISTORY_ANNOTATION.to_owned(), old_revision.clone());
            } else {
                let mut total = history.len() + old_revision.len() + 1;
                let mut start = 0;
                while total > history_limit_chars && start < old_revisions.len() {
                    total -= old_revisions[start].len() + 1;
                    start += 1;
                }
                if total <= history_limit_chars {
                    let mut kept = old_revisions[start..].to_vec();
                    kept.push(&old_revision);
                    annotations.insert(REVISION_HISTORY_ANNOTATION.to_owned(), kept.join(","));
                }
            }
        }
    }
    if !exists
        && set_replicas_annotations(
            rs,
            settings.replicas,
            settings.replicas + settings.max_surge,
        )
    {
        changed = true;
    }
    changed
}

/// Kubernetes' `EqualIgnoreHash` (with `Semantic.DeepEqual`): templates equal
/// once the pod-template-hash label is dropped, unset and empty values
/// (null, `[]`, `{}`) counting as equal.
pub(super) fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    comparable_template(a) == comparable_template(b)
}

fn comparable_template(template: &PodTemplateSpec) -> Value {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    let mut value = serde_json::to_value(&template).unwrap_or(Value::Null);
    prune_empty(&mut value);
    value
}

/// Drops nulls, empty arrays and empty objects, recursively.
fn prune_empty(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune_empty(child);
            }
            map.retain(|_, child| !is_empty(child));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Kubernetes' `GetDeploymentCondition`.
pub(super) fn condition<'s>(
    status: &'s DeploymentStatus,
    type_: &str,
) -> Option<&'s DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// Kubernetes' `NewDeploymentCondition`, stamped with `now`.
pub(super) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: &Time,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.to_owned()),
        status: Some(status.to_owned()),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

fn same(a: &Option<String>, b: &Option<String>) -> bool {
    a.as_deref().unwrap_or("") == b.as_deref().unwrap_or("")
}

/// Kubernetes' `SetDeploymentCondition`: no change if status and reason are
/// the same; keeps lastTransitionTime if only the reason changes; the
/// condition moves to the end of the list.
pub(super) fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    let type_ = new.type_.clone().unwrap_or_default();
    if let Some(current) = condition(status, &type_) {
        if same(&current.status, &new.status) && same(&current.reason, &new.reason) {
            return;
        }
        if same(&current.status, &new.status) {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &type_);
    status.conditions.get_or_insert_with(Vec::new).push(new);
}

/// Kubernetes' `RemoveDeploymentCondition`.
pub(super) fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = &mut status.conditions {
        conditions.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

/// A status as Kubernetes writes it: zero counts and empty conditions
/// unset (Go's omitempty); collisionCount and terminatingReplicas, which
/// are pointers, as they are.
pub(super) fn normalize_status(status: &DeploymentStatus) -> DeploymentStatus {
    let nonzero = |value: Option<i32>| value.filter(|v| *v != 0);
    DeploymentStatus {
        observed_generation: status.observed_generation.filter(|g| *g != 0),
        replicas: nonzero(status.replicas),
        updated_replicas: nonzero(status.updated_replicas),
        ready_replicas: nonzero(status.ready_replicas),
        available_replicas: nonzero(status.available_replicas),
        unavailable_replicas: nonzero(status.unavailable_replicas),
        terminating_replicas: status.terminating_replicas,
        collision_count: status.collision_count,
        conditions: status.conditions.clone().filter(|c| !c.is_empty()),
    }
}

/// Kubernetes' `reflect.DeepEqual` of two statuses, read through the wire
/// form (an unset count is zero).
pub(super) fn status_equal(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    normalize_status(a) == normalize_status(b)
}

/// Kubernetes' `DeploymentComplete`: all desired replicas updated and
/// available, no old ones left, and the latest generation observed.
pub(super) fn deployment_complete(
    d: &Deployment,
    settings: &Settings,
    status: &DeploymentStatus,
) -> bool {
    let replicas = settings.replicas;
    status.updated_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Kubernetes' `DeploymentProgressing`: new pods were added or became
/// ready or available, or old ones went away, since `old`.
pub(super) fn deployment_progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old_replicas = n(old.replicas) - n(old.updated_replicas);
    let new_old_replicas = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old_replicas < old_old_replicas
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Kubernetes' `NewRSNewReplicas`: how far the new ReplicaSet may grow
/// given `all_replicas`, the spec replicas of all ReplicaSets.
pub(super) fn new_rs_new_replicas(
    settings: &Settings,
    all_replicas: i32,
    new_replicas: i32,
) -> i32 {
    match settings.strategy {
        Strategy::Recreate => settings.replicas,
        Strategy::RollingUpdate => {
            let max_total = settings.replicas + settings.max_surge;
            if all_replicas >= max_total {
                return new_replicas;
            }
            let scale_up = (max_total - all_replicas).min(settings.replicas - new_replicas);
            new_replicas + scale_up
        }
    }
}

/// Kubernetes' `IsSaturated`: the new ReplicaSet has all desired replicas,
/// agrees about how many that is, and all are available.
pub(super) fn is_saturated(settings: &Settings, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) = desired_replicas_annotation(rs) else {
        return false;
    };
    spec_replicas(rs) == settings.replicas
        && desired == settings.replicas
        && available_replicas(rs) == settings.replicas
}

/// Kubernetes' `GetProportion`: this ReplicaSet's share of `to_add`, given
/// what was already `added` to others.
pub(super) fn proportion(
    rs: &ReplicaSet,
    settings: &Settings,
    status_replicas: i32,
    to_add: i32,
    added: i32,
) -> i32 {
    if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, settings, status_replicas);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Kubernetes' `getReplicaSetFraction`: the ReplicaSet's size scaled from
/// the max-replicas it was annotated with to the Deployment's new maximum,
/// minus its size. Without the annotation the Deployment's
/// `status.replicas` stands in; a zero base yields 0 (Kubernetes would
/// divide by zero).
fn replica_set_fraction(rs: &ReplicaSet, settings: &Settings, status_replicas: i32) -> i32 {
    let replicas = spec_replicas(rs);
    if settings.replicas == 0 {
        return -replicas;
    }
    let deployment_replicas = settings.replicas + settings.max_surge;
    let annotated = max_replicas_annotation(rs).unwrap_or(status_replicas);
    if annotated == 0 {
        return 0;
    }
    let size = (i64::from(replicas) * i64::from(deployment_replicas)) as f64 / f64::from(annotated);
    size.round() as i32 - replicas
}
