//! Kubernetes' `syncDeployment` and `sync.go`: finding the new and old
//! ReplicaSets and syncing revisions, creating the new ReplicaSet, scaling
//! (proportionally on scaling events and while paused), history cleanup
//! and the status.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::util::{self, Strategy};
use super::{
    CONDITION_AVAILABLE, CONDITION_PROGRESSING, Halt, POD_TEMPLATE_HASH_LABEL, Planner,
    REASON_DEPLOYMENT_PAUSED, REASON_DEPLOYMENT_RESUMED, REASON_FOUND_NEW_REPLICA_SET,
    REASON_MINIMUM_REPLICAS_AVAILABLE, REASON_MINIMUM_REPLICAS_UNAVAILABLE,
    REASON_NEW_REPLICA_SET_CREATED, REASON_PROGRESS_DEADLINE_EXCEEDED, REVISION_ANNOTATION,
    pod_template_hash,
};

impl Planner<'_, '_> {
    /// Kubernetes' `syncDeployment`, from the point where the ReplicaSets
    /// have been listed.
    pub(super) fn sync_deployment(&mut self) -> Result<(), Halt> {
        let selector = &self.d.spec.selector;
        let selects_everything = selector
            .match_labels
            .as_ref()
            .is_none_or(BTreeMap::is_empty)
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(Vec::is_empty);
        if selects_everything {
            // Kubernetes refuses to act on it and only records the generation.
            let generation = self.d.metadata.generation.unwrap_or(0);
            if self.status().observed_generation.unwrap_or(0) < generation {
                self.status_mut().observed_generation = Some(generation);
            }
            return Ok(());
        }
        if self.d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only();
        }
        self.check_paused_conditions();
        if self.settings.paused {
            return self.sync();
        }
        if self.is_scaling_event()? {
            return self.sync();
        }
        match self.settings.strategy {
            Strategy::Recreate => self.rollout_recreate(),
            Strategy::RollingUpdate => self.rollout_rolling(),
        }
    }

    /// Kubernetes' `syncStatusOnly`: for a Deployment being deleted.
    fn sync_status_only(&mut self) -> Result<(), Halt> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        let all = all_of(&old, new);
        self.sync_deployment_status(&all, new);
        Ok(())
    }

    /// Kubernetes' `sync`: scaling events and paused Deployments.
    fn sync(&mut self) -> Result<(), Halt> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        self.scale(new, &old);
        if self.settings.paused {
            self.cleanup_deployment(&old);
        }
        let all = all_of(&old, new);
        self.sync_deployment_status(&all, new);
        Ok(())
    }

    /// Kubernetes' `checkPausedConditions`: marks pausing and resuming in
    /// the Progressing condition so a long pause does not count against
    /// the progress deadline.
    fn check_paused_conditions(&mut self) {
        if self.settings.progress_deadline_seconds.is_none() {
            return;
        }
        let reason =
            util::condition(self.status(), CONDITION_PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(REASON_PROGRESS_DEADLINE_EXCEEDED) {
            return;
        }
        let paused_recorded = reason.as_deref() == Some(REASON_DEPLOYMENT_PAUSED);
        let condition = if self.settings.paused && !paused_recorded {
            (REASON_DEPLOYMENT_PAUSED, "Deployment is paused")
        } else if !self.settings.paused && paused_recorded {
            (REASON_DEPLOYMENT_RESUMED, "Deployment is resumed")
        } else {
            return;
        };
        let condition = util::new_condition(
            CONDITION_PROGRESSING,
            "Unknown",
            condition.0,
            condition.1.into(),
            &self.stamp,
        );
        util::set_condition(self.status_mut(), condition);
    }

    /// Kubernetes' `isScalingEvent`: an active ReplicaSet was sized for a
    /// different number of replicas than the Deployment now wants.
    fn is_scaling_event(&mut self) -> Result<bool, Halt> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        Ok(all_of(&old, new).into_iter().map(|i| self.rs(i)).any(|rs| {
            util::is_active(rs)
                && util::desired_replicas_annotation(rs)
                    .is_some_and(|desired| desired != self.settings.replicas)
        }))
    }

    /// Kubernetes' `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet
    /// (created if `create_if_missing`) and all old ones, oldest first,
    /// with the new one's revision and annotations brought up to date.
    pub(super) fn get_all_replica_sets_and_sync_revision(
        &mut self,
        create_if_missing: bool,
    ) -> Result<(Option<usize>, Vec<usize>), Halt> {
        let existing = self.find_new_replica_set();
        let old: Vec<usize> = (0..self.rss.len())
            .filter(|i| Some(*i) != existing)
            .collect();
        let new = self.get_new_replica_set(existing, &old, create_if_missing)?;
        Ok((new, old))
    }

    /// Kubernetes' `FindNewReplicaSet`: the oldest ReplicaSet whose
    /// template equals the Deployment's, pod-template-hash aside.
    fn find_new_replica_set(&self) -> Option<usize> {
        let template = &self.d.spec.template;
        self.rss.iter().position(|working| {
            let theirs = working.rs.spec.template.clone().unwrap_or_default();
            util::equal_ignore_hash(&theirs, template)
        })
    }

    /// Kubernetes' `getNewReplicaSet`. An existing new ReplicaSet gets
    /// revision max(old)+1 if it is behind (a rollback), the Deployment's
    /// annotations and minReadySeconds; otherwise one is created if asked.
    /// Unlike Kubernetes, the Deployment's revision is synced in the same
    /// plan as the ReplicaSet's.
    fn get_new_replica_set(
        &mut self,
        existing: Option<usize>,
        old: &[usize],
        create_if_missing: bool,
    ) -> Result<Option<usize>, Halt> {
        let new_revision = util::max_revision(old.iter().map(|&i| self.rs(i))) + 1;
        let has_deadline = self.settings.progress_deadline_seconds.is_some();

        if let Some(index) = existing {
            let mut copy = self.rs(index).clone();
            let annotations_updated = util::set_new_replica_set_annotations(
                &self.d,
                &self.settings,
                &mut copy,
                new_revision,
                true,
                util::MAX_REVISION_HISTORY_CHARS,
            );
            let min_ready_outdated =
                copy.spec.min_ready_seconds.unwrap_or(0) != self.settings.min_ready_seconds;
            if annotations_updated || min_ready_outdated {
                copy.spec.min_ready_seconds = Some(self.settings.min_ready_seconds);
                self.rss[index].rs = copy;
                self.record_replica_set_write(index);
            }
            let revision = self
                .rs(index)
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            self.set_deployment_revision(revision);
            if has_deadline && util::condition(self.status(), CONDITION_PROGRESSING).is_none() {
                let name = self.rs(index).metadata.name.clone().unwrap_or_default();
                let condition = util::new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    REASON_FOUND_NEW_REPLICA_SET,
                    format!("Found new replica set \"{name}\""),
                    &self.stamp,
                );
                util::set_condition(self.status_mut(), condition);
            }
            return Ok(Some(index));
        }

        if !create_if_missing {
            return Ok(None);
        }

        let hash = pod_template_hash(&self.d.spec.template, self.status().collision_count);
        let deployment_name = self.d.metadata.name.clone().unwrap_or_default();
        let name = format!("{deployment_name}-{hash}");
        if self
            .rss
            .iter()
            .any(|w| w.rs.metadata.name.as_deref() == Some(name.as_str()))
        {
            // One of our ReplicaSets has the name but not the template: a
            // hash collision. Bump collisionCount (so the next plan hashes
            // differently) and stop, as Kubernetes does on AlreadyExists.
            let status = self.status_mut();
            status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
            return Err(Halt);
        }

        let mut template = self.d.spec.template.clone();
        let template_labels = template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        template_labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let labels = Some(template_labels.clone());
        let mut selector = self.d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels,
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: deployment_name,
                    uid: self.d.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(self.settings.min_ready_seconds),
                selector,
                template: Some(template),
            },
            status: None,
        };
        let old_replicas: i32 = old.iter().map(|&i| util::spec_replicas(self.rs(i))).sum();
        rs.spec.replicas = Some(util::new_rs_new_replicas(&self.settings, old_replicas, 0));
        util::set_new_replica_set_annotations(
            &self.d,
            &self.settings,
            &mut rs,
            new_revision,
            false,
            util::MAX_REVISION_HISTORY_CHARS,
        );
        let index = self.record_replica_set_create(rs);
        self.set_deployment_revision(new_revision.to_string());
        if has_deadline {
            let condition = util::new_condition(
                CONDITION_PROGRESSING,
                "True",
                REASON_NEW_REPLICA_SET_CREATED,
                format!("Created new replica set \"{name}\""),
                &self.stamp,
            );
            util::set_condition(self.status_mut(), condition);
        }
        Ok(Some(index))
    }

    /// Kubernetes' `SetDeploymentRevision`.
    fn set_deployment_revision(&mut self, revision: String) {
        let annotations = self
            .d
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        if annotations.get(REVISION_ANNOTATION) != Some(&revision) {
            annotations.insert(REVISION_ANNOTATION.into(), revision);
        }
    }

    /// Kubernetes' `scale`: on scaling events and while paused. A single
    /// active ReplicaSet takes the whole count; a saturated new one makes
    /// the old ones go; otherwise (RollingUpdate) the difference is spread
    /// over the active ReplicaSets in proportion to their size.
    pub(super) fn scale(&mut self, new: Option<usize>, old: &[usize]) {
        let replicas = self.settings.replicas;
        if let Some(index) = self.find_active_or_latest(new, old) {
            if util::spec_replicas(self.rs(index)) != replicas {
                self.scale_replica_set_and_record_event(index, replicas);
            }
            return;
        }
        if util::is_saturated(&self.settings, new.map(|i| self.rs(i))) {
            for &index in old {
                if util::is_active(self.rs(index)) {
                    self.scale_replica_set_and_record_event(index, 0);
                }
            }
            return;
        }
        if self.settings.strategy != Strategy::RollingUpdate {
            return;
        }
        let mut active: Vec<usize> = all_of(old, new)
            .into_iter()
            .filter(|&i| util::is_active(self.rs(i)))
            .collect();
        let active_replicas: i32 = active
            .iter()
            .map(|&i| util::spec_replicas(self.rs(i)))
            .sum();
        let allowed = if replicas > 0 {
            replicas + self.settings.max_surge
        } else {
            0
        };
        let to_add = allowed - active_replicas;
        if to_add > 0 {
            active.sort_by(|&a, &b| util::by_size_newer(self.rs(a), self.rs(b)));
        } else if to_add < 0 {
            active.sort_by(|&a, &b| util::by_size_older(self.rs(a), self.rs(b)));
        }
        let status_replicas = self.status().replicas.unwrap_or(0);
        let mut added = 0;
        let mut sizes = Vec::with_capacity(active.len());
        for &index in &active {
            let rs = self.rs(index);
            let proportion = util::proportion(rs, &self.settings, status_replicas, to_add, added);
            sizes.push(util::spec_replicas(rs) + proportion);
            added += proportion;
        }
        for (position, &index) in active.iter().enumerate() {
            let mut size = sizes[position];
            // Leftovers go to the largest ReplicaSet.
            if position == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_replica_set(index, size);
        }
    }

    /// Kubernetes' `FindActiveOrLatest`: the only active ReplicaSet, or the
    /// newest one if none is active; `None` if several are active.
    fn find_active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        let mut newest_first = old.to_vec();
        newest_first.sort_by(|&a, &b| util::by_creation_timestamp(self.rs(b), self.rs(a)));
        let active: Vec<usize> = newest_first
            .iter()
            .copied()
            .chain(new)
            .filter(|&i| util::is_active(self.rs(i)))
            .collect();
        match active.as_slice() {
            [] => new.or_else(|| newest_first.first().copied()),
            [only] => Some(*only),
            _ => None,
        }
    }

    /// Kubernetes' `scaleReplicaSetAndRecordEvent`: scales only if the size
    /// differs. True if it scaled.
    pub(super) fn scale_replica_set_and_record_event(
        &mut self,
        index: usize,
        replicas: i32,
    ) -> bool {
        if util::spec_replicas(self.rs(index)) == replicas {
            return false;
        }
        self.scale_replica_set(index, replicas)
    }

    /// Kubernetes' `scaleReplicaSet`: writes the size and the replicas
    /// annotations if either is out of date. True if the size changed.
    pub(super) fn scale_replica_set(&mut self, index: usize, replicas: i32) -> bool {
        let desired = self.settings.replicas;
        let max = desired + self.settings.max_surge;
        let rs = self.rs(index);
        let size_changes = util::spec_replicas(rs) != replicas;
        if size_changes || util::replicas_annotations_need_update(rs, desired, max) {
            let rs = &mut self.rss[index].rs;
            rs.spec.replicas = Some(replicas);
            util::set_replicas_annotations(rs, desired, max);
            self.record_replica_set_write(index);
        }
        size_changes
    }

    /// Kubernetes' `cleanupDeployment`: deletes the oldest revisions beyond
    /// revisionHistoryLimit, sparing any with replicas, not yet observed by
    /// the ReplicaSet controller, being deleted, or written by this plan.
    pub(super) fn cleanup_deployment(&mut self, old: &[usize]) {
        let Some(limit) = self.settings.revision_history_limit else {
            return;
        };
        let mut cleanable: Vec<usize> = old
            .iter()
            .copied()
            .filter(|&i| self.rs(i).metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return;
        }
        cleanable.sort_by(|&a, &b| util::by_revision(self.rs(a), self.rs(b)));
        for &index in cleanable.iter().take(excess as usize) {
            let working = &self.rss[index];
            let rs = &working.rs;
            let observed_generation = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if util::status_replicas(rs) != 0
                || util::spec_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed_generation
                || working.written
            {
                continue;
            }
            self.record_replica_set_delete(index);
        }
    }

    /// Kubernetes' `syncDeploymentStatus`: the status from the ReplicaSets;
    /// written at the end of the plan if it differs.
    pub(super) fn sync_deployment_status(&mut self, all: &[usize], new: Option<usize>) {
        let status = self.calculate_status(all, new);
        self.d.status = Some(status);
    }

    /// Kubernetes' `calculateStatus`: counts summed over the ReplicaSets,
    /// the Available condition, other conditions kept.
    pub(super) fn calculate_status(&self, all: &[usize], new: Option<usize>) -> DeploymentStatus {
        let sum =
            |count: fn(&ReplicaSet) -> i32| all.iter().map(|&i| count(self.rs(i))).sum::<i32>();
        let available = sum(util::available_replicas);
        let unavailable = (sum(util::spec_replicas) - available).max(0);
        let terminating: Option<Vec<i32>> = all
            .iter()
            .map(|&i| {
                self.rs(i)
                    .status
                    .as_ref()
                    .and_then(|s| s.terminating_replicas)
            })
            .collect();
        let current = self.status();
        let mut status = DeploymentStatus {
            observed_generation: Some(self.d.metadata.generation.unwrap_or(0)),
            replicas: Some(sum(util::status_replicas)),
            updated_replicas: Some(new.map_or(0, |i| util::status_replicas(self.rs(i)))),
            ready_replicas: Some(sum(util::ready_replicas)),
            available_replicas: Some(available),
            unavailable_replicas: Some(unavailable),
            terminating_replicas: terminating
                .filter(|t| !t.is_empty())
                .map(|t| t.iter().sum()),
            collision_count: current.collision_count,
            conditions: current.conditions.clone(),
        };
        let condition = if available >= self.settings.replicas - self.settings.max_unavailable {
            util::new_condition(
                CONDITION_AVAILABLE,
                "True",
                REASON_MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".into(),
                &self.stamp,
            )
        } else {
            util::new_condition(
                CONDITION_AVAILABLE,
                "False",
                REASON_MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                &self.stamp,
            )
        };
        util::set_condition(&mut status, condition);
        status
    }
}

/// Kubernetes' `append(oldRSs, newRS)`.
pub(super) fn all_of(old: &[usize], new: Option<usize>) -> Vec<usize> {
    old.iter().copied().chain(new).collect()
}
