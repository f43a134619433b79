//! The Deployment controller's decisions, as pure functions.
//!
//! [`plan`] takes what the reconciler observed (a Deployment, the
//! ReplicaSets it controls, their pods and the time) and returns the API
//! writes that move the world one step towards the Deployment's spec. It
//! follows Kubernetes' deployment controller (`pkg/controller/deployment`:
//! `syncDeployment`, `sync.go`, `rolling.go`, `recreate.go`, `progress.go`
//! and `util/deployment_util.go`) function for function, so that kubectl's
//! `rollout status|history|undo|restart|pause|resume` see what they expect.
//!
//! Kubernetes' controller writes through a client as it goes and reads its
//! own writes back; here a private `Planner` keeps working copies of the
//! Deployment and its ReplicaSets, applies each would-be write to them, and
//! records it as an [`Action`]. The caller applies the actions in order with
//! plain API calls and stops at the first error; the next reconcile plans
//! again from what it then observes.
//!
//! Like Kubernetes, one plan does at most one phase of a rollout (scale the
//! new ReplicaSet up, *or* scale old ones down, then wait for the
//! ReplicaSet controller to report availability), so the rolling-update
//! bounds hold whatever happens between reconciles. A plan on a settled
//! state is empty.
//!
//! What differs from Kubernetes, deliberately:
//! - the pod-template-hash is FNV-1a over the template's `serde_json` form
//!   (k8s-openapi's field order, unset fields omitted), not over Go's
//!   `spew` dump, so the hashes differ from a real cluster's (the format,
//!   `SafeEncodeString` of the 32-bit value, is the same);
//! - each ReplicaSet gets at most one update per plan (later writes to the
//!   same ReplicaSet are merged into the first), and the Deployment's
//!   annotations and status are written once, at the end of the plan;
//! - the deprecated `extensions/v1beta1` rollback annotation
//!   (`deprecated.deployment.rollback.to`) is not acted on; `kubectl rollout
//!   undo` patches the template instead, which needs nothing special;
//! - neither the `PodReplacementPolicy` alpha feature nor the special case
//!   some recent versions make for pod anti-affinity deadlocks is
//!   implemented (Recreate waits for old pods, terminating ones included);
//! - unset spec fields take their `apps/v1` defaults (replicas 1,
//!   RollingUpdate 25%/25%, revisionHistoryLimit 10,
//!   progressDeadlineSeconds 600);
//! - a rolled-back ReplicaSet's new revision and the Deployment's revision
//!   annotation are written in the same plan (Kubernetes takes two syncs);
//! - a hash collision with a ReplicaSet the plan can see bumps
//!   `collisionCount` without trying the create; one it cannot see is the
//!   caller's AlreadyExists, see [`resolve_create_conflict`];
//! - the progress-deadline requeue is computed from the status being
//!   written, at least a second away, and not asked for while Progressing
//!   still says NewReplicaSetAvailable;
//! - `terminatingReplicas` is the sum of the ReplicaSets' when all of them
//!   report it, and unset otherwise.
//!
//! As in Kubernetes, a Deployment being deleted still gets its new
//! ReplicaSet's revision annotations synced along with its status.

mod controller;
mod hash;
mod progress;
mod recreate;
mod rolling;
mod sync;
mod util;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use controller::{Context, error_policy, reconcile, run};
pub use hash::pod_template_hash;

use util::Settings;

/// Label added to a ReplicaSet, its selector and its pod template, holding
/// the hash of the Deployment's pod template.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet (and of its Deployment: that of the newest
/// ReplicaSet); `kubectl rollout history` lists it.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The earlier revisions a ReplicaSet served, comma separated, kept when a
/// rollback makes an old ReplicaSet the new one again.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when a ReplicaSet was last scaled; a
/// difference tells a scaling event from a rollout.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when a ReplicaSet was last
/// scaled; the base of proportional scaling.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// The annotation `kubectl rollout history` shows as CHANGE-CAUSE; copied
/// from the Deployment to its new ReplicaSet like every other annotation.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// Condition type: the Deployment has its minimum availability.
pub const CONDITION_AVAILABLE: &str = "Available";
/// Condition type: the rollout is progressing (or done, or stuck).
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: a ReplicaSet failed to create or delete pods.
pub const CONDITION_REPLICA_FAILURE: &str = "ReplicaFailure";

/// Progressing reason: a ReplicaSet was scaled or became more available.
pub const REASON_REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing reason: the plan created the new ReplicaSet.
pub const REASON_NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
/// Progressing reason: an existing ReplicaSet matches the template and no
/// Progressing condition was recorded yet.
pub const REASON_FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
/// Progressing reason: the rollout completed.
pub const REASON_NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing reason: no progress within progressDeadlineSeconds.
pub const REASON_PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// Progressing reason: the Deployment is paused.
pub const REASON_DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
/// Progressing reason: the Deployment was resumed.
pub const REASON_DEPLOYMENT_RESUMED: &str = "DeploymentResumed";
/// Available reason: enough replicas are available.
pub const REASON_MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available reason: too few replicas are available.
pub const REASON_MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// What the reconciler observed, the whole input of [`plan`].
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The Deployment, as read (spec, metadata and status).
    pub deployment: &'a Deployment,
    /// The ReplicaSets whose controller ownerReference is this Deployment's
    /// uid (adoption and orphaning are the caller's business).
    pub replica_sets: Vec<&'a ReplicaSet>,
    /// The pods whose controller ownerReference is one of `replica_sets`.
    /// Only the Recreate strategy reads them, to wait until old pods are
    /// gone (terminating ones included) before starting new ones.
    pub pods: Vec<&'a Pod>,
    /// The current time: progress deadlines are measured against it and it
    /// stamps new conditions (truncated to the second, as the API stores it).
    pub now: jiff::Timestamp,
}

/// The result of [`plan`]: writes to apply in order, and when to look again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// API writes, to apply in order; stop at the first that fails.
    pub actions: Vec<Action>,
    /// Reconcile again after this long even if nothing changes: set while a
    /// rollout may still run into its progress deadline.
    pub requeue_after: Option<Duration>,
}

/// One API write.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this ReplicaSet (complete object: name, labels, selector and
    /// template with the pod-template-hash, the controller ownerReference,
    /// revision and replicas annotations, replicas). On AlreadyExists, see
    /// [`resolve_create_conflict`].
    CreateReplicaSet(Box<ReplicaSet>),
    /// Update an existing ReplicaSet's replicas, minReadySeconds and
    /// annotations.
    UpdateReplicaSet(ReplicaSetUpdate),
    /// Delete an old ReplicaSet beyond revisionHistoryLimit (only ones with
    /// zero replicas in spec and status). Use `uid` and `resource_version`
    /// as delete preconditions.
    DeleteReplicaSet {
        /// The ReplicaSet's name.
        name: String,
        /// Its uid, as observed.
        uid: Option<String>,
        /// Its resourceVersion, as observed.
        resource_version: Option<String>,
    },
    /// Set these annotations on the Deployment (merge-patch semantics: the
    /// keys given are set, others are left alone). Today only
    /// [`REVISION_ANNOTATION`].
    UpdateDeploymentAnnotations(BTreeMap<String, String>),
    /// Replace the Deployment's status (the `status` subresource). Zero
    /// counts are left unset, as Kubernetes' omitempty fields are.
    UpdateDeploymentStatus(Box<DeploymentStatus>),
}

/// The new state of an existing ReplicaSet, see [`Action::UpdateReplicaSet`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaSetUpdate {
    /// The ReplicaSet's name.
    pub name: String,
    /// Its resourceVersion when observed: a precondition for the update, so
    /// that a plan made from a stale cache fails instead of overwriting.
    pub resource_version: Option<String>,
    /// The new `spec.replicas`.
    pub replicas: i32,
    /// The new `spec.minReadySeconds` (the Deployment's).
    pub min_ready_seconds: i32,
    /// The full desired annotation set. Plans never remove annotations, so
    /// a replace and a merge patch with this map have the same effect.
    pub annotations: BTreeMap<String, String>,
}

/// Why a Deployment cannot be planned; validation should have refused it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// `maxSurge` or `maxUnavailable` is neither an integer nor a
    /// percentage.
    #[error("invalid {field} {value:?}: must be an integer or a percentage")]
    InvalidIntOrPercent {
        /// The field: `maxSurge` or `maxUnavailable`.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// The strategy type is neither `RollingUpdate` nor `Recreate`.
    #[error("unexpected deployment strategy type {0:?}")]
    UnknownStrategy(String),
}

/// Plans the writes that move `observed` one step towards the
/// Deployment's spec (Kubernetes' `syncDeployment`).
///
/// The order of precedence is Kubernetes': an empty selector only records
/// the observed generation; a deleted Deployment only syncs its status (and
/// its new ReplicaSet's annotations); a
/// paused one only scales (and records the pause); a scaling event scales
/// proportionally; otherwise the strategy rolls out.
pub fn plan(observed: &Observed<'_>) -> Result<Plan, PlanError> {
    let settings = Settings::from_deployment(observed.deployment)?;
    let mut planner = Planner::new(observed, settings);
    // Halt only stops the plan early; what was recorded still applies.
    let _ = planner.sync_deployment();
    Ok(planner.finish())
}

/// Decides what to do when [`Action::CreateReplicaSet`] failed with
/// AlreadyExists and `existing` is the ReplicaSet of that name.
///
/// If `existing` is this Deployment's and has its template, the cache was
/// just behind: returns `None`, requeue. Otherwise the names collided:
/// returns the status write that bumps `collisionCount`, which changes the
/// hash (and so the name) the next plan uses.
pub fn resolve_create_conflict(deployment: &Deployment, existing: &ReplicaSet) -> Option<Action> {
    let ours = existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| {
            owner.controller == Some(true) && Some(&owner.uid) == deployment.metadata.uid.as_ref()
        });
    let template = existing.spec.template.clone().unwrap_or_default();
    if ours && util::equal_ignore_hash(&template, &deployment.spec.template) {
        return None;
    }
    let mut status = deployment.status.clone().unwrap_or_default();
    status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
    Some(Action::UpdateDeploymentStatus(Box::new(
        util::normalize_status(&status),
    )))
}

/// A ReplicaSet as the plan sees it: the observed one with the plan's own
/// writes applied, or one the plan creates.
#[derive(Clone, Debug)]
struct WorkingReplicaSet {
    rs: ReplicaSet,
    /// Created by this plan: it has no uid, resourceVersion or timestamp.
    created: bool,
    /// Written by this plan (so not to be deleted by it as well).
    written: bool,
}

/// Raised to stop a plan early (Kubernetes returns an error from the sync
/// and requeues); the actions recorded so far still apply.
#[derive(Debug)]
struct Halt;

/// The working state of one plan: Kubernetes' controller with its client
/// replaced by working copies and an action log.
struct Planner<'o, 'a> {
    observed: &'o Observed<'a>,
    settings: Settings,
    /// The Deployment with this plan's annotation and status writes.
    d: Deployment,
    /// All ReplicaSets, oldest first (creation time, then name).
    rss: Vec<WorkingReplicaSet>,
    actions: Vec<Action>,
    requeue_after: Option<Duration>,
    /// `now` truncated to the second: the stamp of new conditions.
    stamp: Time,
}

impl<'o, 'a> Planner<'o, 'a> {
    fn new(observed: &'o Observed<'a>, settings: Settings) -> Self {
        let mut rss: Vec<WorkingReplicaSet> = observed
            .replica_sets
            .iter()
            .map(|rs| WorkingReplicaSet {
                rs: (*rs).clone(),
                created: false,
                written: false,
            })
            .collect();
        rss.sort_by(|a, b| util::by_creation_timestamp(&a.rs, &b.rs));
        let mut d = observed.deployment.clone();
        d.status.get_or_insert_with(DeploymentStatus::default);
        let stamp = jiff::Timestamp::from_second(observed.now.as_second())
            .map(Time)
            .unwrap_or(Time(observed.now));
        Planner {
            observed,
            settings,
            d,
            rss,
            actions: Vec::new(),
            requeue_after: None,
            stamp,
        }
    }

    fn status(&self) -> &DeploymentStatus {
        self.d.status.as_ref().expect("set in Planner::new")
    }

    fn status_mut(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(DeploymentStatus::default)
    }

    fn rs(&self, index: usize) -> &ReplicaSet {
        &self.rss[index].rs
    }

    /// Records an update of ReplicaSet `index` to its working copy, merged
    /// into an earlier write of the same ReplicaSet in this plan if any.
    fn record_replica_set_write(&mut self, index: usize) {
        self.rss[index].written = true;
        let working = &self.rss[index];
        let name = working.rs.metadata.name.clone().unwrap_or_default();
        if working.created {
            for action in &mut self.actions {
                if let Action::CreateReplicaSet(rs) = action
                    && rs.metadata.name.as_deref() == Some(name.as_str())
                {
                    **rs = working.rs.clone();
                    return;
                }
            }
        }
        let update = ReplicaSetUpdate {
            name: name.clone(),
            resource_version: working.rs.metadata.resource_version.clone(),
            replicas: util::spec_replicas(&working.rs),
            min_ready_seconds: working.rs.spec.min_ready_seconds.unwrap_or(0),
            annotations: working.rs.metadata.annotations.clone().unwrap_or_default(),
        };
        for action in &mut self.actions {
            if let Action::UpdateReplicaSet(earlier) = action
                && earlier.name == name
            {
                *earlier = update;
                return;
            }
        }
        self.actions.push(Action::UpdateReplicaSet(update));
    }

    /// Records the creation of `rs` and adds it to the working set.
    fn record_replica_set_create(&mut self, rs: ReplicaSet) -> usize {
        self.actions
            .push(Action::CreateReplicaSet(Box::new(rs.clone())));
        self.rss.push(WorkingReplicaSet {
            rs,
            created: true,
            written: true,
        });
        self.rss.len() - 1
    }

    /// Records the deletion of ReplicaSet `index`.
    fn record_replica_set_delete(&mut self, index: usize) {
        let meta = &self.rss[index].rs.metadata;
        self.actions.push(Action::DeleteReplicaSet {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
        });
    }

    /// Appends the Deployment writes (annotations, then status) and returns
    /// the plan.
    fn finish(mut self) -> Plan {
        let before = self
            .observed
            .deployment
            .metadata
            .annotations
            .clone()
            .unwrap_or_default();
        let changed: BTreeMap<String, String> = self
            .d
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, value)| before.get(key) != Some(value))
            .collect();
        if !changed.is_empty() {
            self.actions
                .push(Action::UpdateDeploymentAnnotations(changed));
        }
        let observed_status = self.observed.deployment.status.clone().unwrap_or_default();
        if !util::status_equal(&observed_status, self.status()) {
            let status = util::normalize_status(self.status());
            self.actions
                .push(Action::UpdateDeploymentStatus(Box::new(status)));
        }
        Plan {
            actions: self.actions,
            requeue_after: self.requeue_after,
        }
    }
}
