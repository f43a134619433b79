//! Kubernetes' `rolling.go`: one step of a RollingUpdate, either scaling
//! the new ReplicaSet up within maxSurge or scaling old ones down within
//! maxUnavailable.

use super::sync::all_of;
use super::util;
use super::{Halt, Planner};

impl Planner<'_, '_> {
    /// Kubernetes' `rolloutRolling`.
    pub(super) fn rollout_rolling(&mut self) -> Result<(), Halt> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(true)?;
        let Some(new_index) = new else { return Ok(()) };
        let all = all_of(&old, new);

        if self.reconcile_new_replica_set(&all, new_index) {
            self.sync_rollout_status(&all, new);
            return Ok(());
        }
        let active_old: Vec<usize> = old
            .iter()
            .copied()
            .filter(|&i| util::is_active(self.rs(i)))
            .collect();
        if self.reconcile_old_replica_sets(&all, &active_old, new_index) {
            self.sync_rollout_status(&all, new);
            return Ok(());
        }
        if util::deployment_complete(&self.d, &self.settings, self.status()) {
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status(&all, new);
        Ok(())
    }

    /// Kubernetes' `reconcileNewReplicaSet`: grow the new ReplicaSet as far
    /// as maxSurge allows (or shrink it to the Deployment's size). True if
    /// it was scaled.
    fn reconcile_new_replica_set(&mut self, all: &[usize], new: usize) -> bool {
        let replicas = self.settings.replicas;
        let current = util::spec_replicas(self.rs(new));
        if current == replicas {
            return false;
        }
        if current > replicas {
            return self.scale_replica_set(new, replicas);
        }
        let all_replicas: i32 = all.iter().map(|&i| util::spec_replicas(self.rs(i))).sum();
        let target = util::new_rs_new_replicas(&self.settings, all_replicas, current);
        self.scale_replica_set(new, target)
    }

    /// Kubernetes' `reconcileOldReplicaSets`: shrink old ReplicaSets, first
    /// their unhealthy replicas, then as far as maxUnavailable allows,
    /// counting the new ReplicaSet's unavailable pods against the budget.
    /// True if anything was scaled down.
    fn reconcile_old_replica_sets(&mut self, all: &[usize], old: &[usize], new: usize) -> bool {
        let old_replicas: i32 = old.iter().map(|&i| util::spec_replicas(self.rs(i))).sum();
        if old_replicas == 0 {
            return false;
        }
        let all_replicas: i32 = all.iter().map(|&i| util::spec_replicas(self.rs(i))).sum();
        let min_available = self.settings.replicas - self.settings.max_unavailable;
        let new_rs = self.rs(new);
        let new_unavailable = util::spec_replicas(new_rs) - util::available_replicas(new_rs);
        let max_scaled_down = all_replicas - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // Unhealthy replicas first: removing them costs no availability,
        // and left alone they would block the rollout.
        let mut old = old.to_vec();
        let Some(cleaned_up) = self.cleanup_unhealthy_replicas(&mut old, max_scaled_down) else {
            return false;
        };
        let all = all_of(&old, Some(new));
        let Some(scaled_down) = self.scale_down_old_replica_sets_for_rolling_update(&all, &mut old)
        else {
            return false;
        };
        cleaned_up + scaled_down > 0
    }

    /// Kubernetes' `cleanupUnhealthyReplicas`: scale old ReplicaSets down
    /// by their unavailable replicas, oldest first, at most `max_cleanup` in
    /// all. `None` where Kubernetes fails (a ReplicaSet reports more
    /// available replicas than it wants, so the step waits for its status).
    fn cleanup_unhealthy_replicas(&mut self, old: &mut [usize], max_cleanup: i32) -> Option<i32> {
        old.sort_by(|&a, &b| util::by_creation_timestamp(self.rs(a), self.rs(b)));
        let mut total = 0;
        for &index in old.iter() {
            if total >= max_cleanup {
                break;
            }
            let rs = self.rs(index);
            let replicas = util::spec_replicas(rs);
            let available = util::available_replicas(rs);
            if replicas == 0 || replicas == available {
                continue;
            }
            let count = (max_cleanup - total).min(replicas - available);
            if count < 0 {
                return None;
            }
            self.scale_replica_set(index, replicas - count);
            total += count;
        }
        Some(total)
    }

    /// Kubernetes' `scaleDownOldReplicaSetsForRollingUpdate`: scale old
    /// ReplicaSets down, oldest first, by as many replicas as are available
    /// beyond the minimum.
    fn scale_down_old_replica_sets_for_rolling_update(
        &mut self,
        all: &[usize],
        old: &mut [usize],
    ) -> Option<i32> {
        let min_available = self.settings.replicas - self.settings.max_unavailable;
        let available: i32 = all
            .iter()
            .map(|&i| util::available_replicas(self.rs(i)))
            .sum();
        if available <= min_available {
            return Some(0);
        }
        old.sort_by(|&a, &b| util::by_creation_timestamp(self.rs(a), self.rs(b)));
        let budget = available - min_available;
        let mut total = 0;
        for &index in old.iter() {
            if total >= budget {
                break;
            }
            let replicas = util::spec_replicas(self.rs(index));
            if replicas == 0 {
                continue;
            }
            let count = replicas.min(budget - total);
            if count < 0 {
                return None;
            }
            self.scale_replica_set(index, replicas - count);
            total += count;
        }
        Some(total)
    }
}
