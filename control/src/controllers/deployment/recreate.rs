//! Kubernetes' `recreate.go`: scale every old ReplicaSet to zero, wait
//! until none of their pods runs, then create and scale up the new one.

use std::collections::BTreeSet;

use super::sync::all_of;
use super::util;
use super::{Halt, Planner};

impl Planner<'_, '_> {
    /// Kubernetes' `rolloutRecreate`.
    pub(super) fn rollout_recreate(&mut self) -> Result<(), Halt> {
        // The new ReplicaSet is not created yet, so that nothing scales up
        // before the old pods are gone.
        let (mut new, mut old) = self.get_all_replica_sets_and_sync_revision(false)?;
        let mut all = all_of(&old, new);

        let mut scaled_down = false;
        for &index in &old {
            if util::is_active(self.rs(index)) {
                scaled_down |= self.scale_replica_set_and_record_event(index, 0);
            }
        }
        if scaled_down || self.old_pods_running(new, &old) {
            self.sync_rollout_status(&all, new);
            return Ok(());
        }

        if new.is_none() {
            (new, old) = self.get_all_replica_sets_and_sync_revision(true)?;
            all = all_of(&old, new);
        }
        if let Some(index) = new {
            self.scale_replica_set_and_record_event(index, self.settings.replicas);
        }
        if util::deployment_complete(&self.d, &self.settings, self.status()) {
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status(&all, new);
        Ok(())
    }

    /// Kubernetes' `oldPodsRunning`: an old ReplicaSet still counts pods,
    /// or a pod of a ReplicaSet other than the new one is not yet Failed
    /// or Succeeded (terminating pods count as running).
    fn old_pods_running(&self, new: Option<usize>, old: &[usize]) -> bool {
        if old.iter().any(|&i| util::status_replicas(self.rs(i)) > 0) {
            return true;
        }
        let new_uid = new.and_then(|i| self.rs(i).metadata.uid.as_deref());
        let known: BTreeSet<&str> = self
            .rss
            .iter()
            .filter_map(|w| w.rs.metadata.uid.as_deref())
            .collect();
        self.observed.pods.iter().any(|pod| {
            let controller = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|owner| owner.controller == Some(true))
                .map(|owner| owner.uid.as_str());
            let Some(controller) = controller.filter(|uid| known.contains(uid)) else {
                return false;
            };
            if Some(controller) == new_uid {
                return false;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Failed" | "Succeeded"))
        })
    }
}
