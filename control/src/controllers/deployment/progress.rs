//! Kubernetes' `progress.go`: the status during a rollout, with the
//! Progressing condition (progressing, complete, timed out), ReplicaSet
//! failures, and when to look again for the progress deadline.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

use super::util;
use super::{
    CONDITION_PROGRESSING, CONDITION_REPLICA_FAILURE, Planner, REASON_NEW_REPLICA_SET_AVAILABLE,
    REASON_PROGRESS_DEADLINE_EXCEEDED, REASON_REPLICA_SET_UPDATED,
};

impl Planner<'_, '_> {
    /// Kubernetes' `syncRolloutStatus`: the status of a rolling-out
    /// Deployment, written at the end of the plan if it differs, and the
    /// requeue for the progress deadline.
    pub(super) fn sync_rollout_status(&mut self, all: &[usize], new: Option<usize>) {
        let mut status = self.calculate_status(all, new);
        let deadline = self.settings.progress_deadline_seconds;
        if deadline.is_none() {
            util::remove_condition(&mut status, CONDITION_PROGRESSING);
        }

        // A resync of a finished rollout estimates no progress.
        let current = util::condition(self.status(), CONDITION_PROGRESSING).cloned();
        let rollout_complete = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref())
                == Some(REASON_NEW_REPLICA_SET_AVAILABLE);
        if let Some(deadline) = deadline
            && !rollout_complete
        {
            let subject = match new {
                Some(index) => format!(
                    "ReplicaSet \"{}\"",
                    self.rs(index).metadata.name.as_deref().unwrap_or("")
                ),
                None => format!(
                    "Deployment \"{}\"",
                    self.d.metadata.name.as_deref().unwrap_or("")
                ),
            };
            if util::deployment_complete(&self.d, &self.settings, &status) {
                let condition = util::new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    REASON_NEW_REPLICA_SET_AVAILABLE,
                    format!("{subject} has successfully progressed."),
                    &self.stamp,
                );
                util::set_condition(&mut status, condition);
            } else if util::deployment_progressing(self.status(), &status) {
                // Unlike other conditions, progress refreshes
                // lastUpdateTime even when the reason stays the same.
                let mut condition = util::new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    REASON_REPLICA_SET_UPDATED,
                    format!("{subject} is progressing."),
                    &self.stamp,
                );
                if let Some(current) = &current {
                    if current.status.as_deref() == Some("True") {
                        condition.last_transition_time = current.last_transition_time.clone();
                    }
                    util::remove_condition(&mut status, CONDITION_PROGRESSING);
                }
                util::set_condition(&mut status, condition);
            } else if self.deployment_timed_out(&status, deadline) {
                let condition = util::new_condition(
                    CONDITION_PROGRESSING,
                    "False",
                    REASON_PROGRESS_DEADLINE_EXCEEDED,
                    format!("{subject} has timed out progressing."),
                    &self.stamp,
                );
                util::set_condition(&mut status, condition);
            }
        }

        match self.replica_failure(all, new) {
            Some(failure) => util::set_condition(&mut status, failure),
            None => util::remove_condition(&mut status, CONDITION_REPLICA_FAILURE),
        }

        self.requeue_after = self.requeue_stuck_deployment(&status);
        self.d.status = Some(status);
    }

    /// Kubernetes' `DeploymentTimedOut`: the Progressing condition was last
    /// updated more than `deadline` seconds ago (or already says so).
    fn deployment_timed_out(&self, status: &DeploymentStatus, deadline: i32) -> bool {
        let Some(condition) = util::condition(status, CONDITION_PROGRESSING) else {
            return false;
        };
        match condition.reason.as_deref() {
            Some(REASON_NEW_REPLICA_SET_AVAILABLE) => return false,
            Some(REASON_PROGRESS_DEADLINE_EXCEEDED) => return true,
            _ => {}
        }
        // Go's zero time, long past, stands in for a missing timestamp.
        let Some(from) = &condition.last_update_time else {
            return true;
        };
        let deadline = jiff::SignedDuration::from_secs(i64::from(deadline));
        from.0
            .checked_add(deadline)
            .is_ok_and(|due| due < self.observed.now)
    }

    /// Kubernetes' `requeueStuckDeployment`: while a rollout is neither
    /// complete nor timed out, look again one second after its deadline
    /// would pass. Unlike Kubernetes, this reads the status being written
    /// (so a plan that changes the status also gets its requeue), asks for
    /// no requeue while Progressing still says NewReplicaSetAvailable (it
    /// cannot time out then), and waits at least a second.
    pub(super) fn requeue_stuck_deployment(&self, status: &DeploymentStatus) -> Option<Duration> {
        let deadline = self.settings.progress_deadline_seconds?;
        let condition = util::condition(status, CONDITION_PROGRESSING)?;
        if util::deployment_complete(&self.d, &self.settings, status)
            || matches!(
                condition.reason.as_deref(),
                Some(REASON_PROGRESS_DEADLINE_EXCEEDED | REASON_NEW_REPLICA_SET_AVAILABLE)
            )
        {
            return None;
        }
        let second = Duration::from_secs(1);
        let Some(from) = &condition.last_update_time else {
            return Some(second);
        };
        let due = from
            .0
            .checked_add(jiff::SignedDuration::from_secs(i64::from(deadline)))
            .ok()?;
        let after = self.observed.now.duration_until(due);
        let after = Duration::try_from(after).unwrap_or(Duration::ZERO);
        if after < second {
            Some(second)
        } else {
            Some(after + second)
        }
    }

    /// Kubernetes' `getReplicaFailures`: the new ReplicaSet's ReplicaFailure
    /// condition, else an old one's, as a Deployment condition.
    fn replica_failure(&self, all: &[usize], new: Option<usize>) -> Option<DeploymentCondition> {
        let failure_of = |index: usize| {
            let rs = self.rs(index);
            rs.status
                .as_ref()?
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_.as_deref() == Some(CONDITION_REPLICA_FAILURE))
        };
        let failure = new
            .and_then(failure_of)
            .or_else(|| all.iter().find_map(|&i| failure_of(i)))?;
        Some(DeploymentCondition {
            type_: failure.type_.clone(),
            status: failure.status.clone(),
            reason: failure.reason.clone(),
            message: failure.message.clone(),
            last_transition_time: failure.last_transition_time.clone(),
            last_update_time: failure.last_transition_time.clone(),
        })
    }
}
