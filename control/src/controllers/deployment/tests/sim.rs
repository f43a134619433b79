//! A small world to run plans against: the Deployment, its ReplicaSets
//! and their pods; plan actions applied as the API server would; a
//! ReplicaSet controller and kubelet that create, remove and ready pods as
//! a script says; and the rollout invariants checked at every step.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStrategy, ReplicaSet,
    ReplicaSetSpec, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::{
    Action, CONDITION_AVAILABLE, CONDITION_PROGRESSING, Observed, POD_TEMPLATE_HASH_LABEL, Plan,
    REVISION_ANNOTATION, plan,
};

/// 2026-01-01T00:00:00Z, when every world starts.
pub(super) const START_SECOND: i64 = 1_767_225_600;
/// How far the clock moves per tick.
pub(super) const TICK: Duration = Duration::from_secs(5);
/// A rate at which all pods become available at once.
pub(super) const ALL_AT_ONCE: i32 = i32::MAX;

/// The world's start time.
pub(super) fn start() -> jiff::Timestamp {
    jiff::Timestamp::from_second(START_SECOND).expect("valid")
}

/// `start()` plus `seconds`, as an API time.
pub(super) fn at(seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(START_SECOND + seconds).expect("valid"))
}

/// An integer maxSurge/maxUnavailable.
pub(super) fn int(value: i32) -> IntOrString {
    IntOrString::Int(value)
}

/// A percentage maxSurge/maxUnavailable.
pub(super) fn pct(value: &str) -> IntOrString {
    IntOrString::String(value.into())
}

/// A RollingUpdate strategy.
pub(super) fn rolling(max_surge: IntOrString, max_unavailable: IntOrString) -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(max_surge),
            max_unavailable: Some(max_unavailable),
        }),
    }
}

/// A Recreate strategy.
pub(super) fn recreate() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    }
}

/// The pod template of the `web` Deployment running `image`.
pub(super) fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
    }
}

/// The `web` Deployment as the API server stores it (defaults applied,
/// generation 1, no status yet).
pub(super) fn deployment(replicas: i32, strategy: DeploymentStrategy, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("deployment-uid".into()),
            generation: Some(1),
            creation_timestamp: Some(at(0)),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                match_expressions: None,
            },
            template: template(image),
            strategy: Some(strategy),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            min_ready_seconds: Some(0),
            paused: None,
        },
        status: None,
    }
}

/// A ReplicaSet of the `web` Deployment as if an earlier plan had created
/// it `created` seconds after the start: `replicas` wanted and running,
/// `available` of them available.
pub(super) fn replica_set(
    name: &str,
    image: &str,
    replicas: i32,
    available: i32,
    created: i64,
) -> ReplicaSet {
    let mut template = template(image);
    let labels = template
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .expect("labels");
    labels.insert(POD_TEMPLATE_HASH_LABEL.into(), name.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("{name}-uid")),
            resource_version: Some("1".into()),
            generation: Some(1),
            creation_timestamp: Some(at(created)),
            owner_references: Some(vec![controller_ref("Deployment", "web", "deployment-uid")]),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(0),
            selector: LabelSelector::default(),
            template: Some(template),
        },
        status: Some(ReplicaSetStatus {
            replicas,
            available_replicas: Some(available),
            ready_replicas: Some(available),
            observed_generation: Some(1),
            ..ReplicaSetStatus::default()
        }),
    }
}

fn controller_ref(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The image a ReplicaSet runs.
pub(super) fn image_of(rs: &ReplicaSet) -> &str {
    rs.spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers[0].image.as_deref())
        .unwrap_or("")
}

/// A ReplicaSet's revision annotation.
pub(super) fn revision(rs: &ReplicaSet) -> &str {
    annotation(rs, REVISION_ANNOTATION).unwrap_or("")
}

/// One annotation of a ReplicaSet.
pub(super) fn annotation<'r>(rs: &'r ReplicaSet, key: &str) -> Option<&'r str> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// A Deployment's condition of the given type.
pub(super) fn condition<'d>(d: &'d Deployment, type_: &str) -> Option<&'d DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// The world: what the API server stores, the pods, and the clock.
pub(super) struct World {
    /// Named in every failure message.
    pub(super) label: String,
    pub(super) now: jiff::Timestamp,
    pub(super) deployment: Deployment,
    pub(super) rss: Vec<ReplicaSet>,
    /// Pods of a ReplicaSet (by uid) scaled away and still terminating;
    /// gone after the next tick.
    pub(super) terminating: BTreeMap<String, i32>,
    /// Pods of ReplicaSets running this image become available at most
    /// this many per tick; other images use `default_rate`.
    pub(super) rates: BTreeMap<String, i32>,
    pub(super) default_rate: i32,
    /// Every non-empty plan applied, in order.
    pub(super) history: Vec<Plan>,
    next_id: u64,
    /// Set once availability first reached the rolling minimum; from then
    /// on it must not drop below it (until the Deployment is resized).
    armed: bool,
}

impl World {
    /// A world where `deployment` was just created.
    pub(super) fn new(deployment: Deployment) -> Self {
        World {
            label: String::new(),
            now: start(),
            deployment,
            rss: Vec::new(),
            terminating: BTreeMap::new(),
            rates: BTreeMap::new(),
            default_rate: ALL_AT_ONCE,
            history: Vec::new(),
            next_id: 0,
            armed: false,
        }
    }

    /// The pods: each ReplicaSet's running ones, then its terminating ones.
    pub(super) fn pods(&self) -> Vec<Pod> {
        let mut pods = Vec::new();
        for rs in &self.rss {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            let running = rs.status.as_ref().map_or(0, |s| s.replicas);
            let terminating = self.terminating.get(&uid).copied().unwrap_or(0);
            for i in 0..running + terminating {
                pods.push(Pod {
                    metadata: ObjectMeta {
                        name: Some(format!("{name}-{i}")),
                        namespace: Some("default".into()),
                        owner_references: Some(vec![controller_ref("ReplicaSet", &name, &uid)]),
                        deletion_timestamp: (i >= running).then_some(Time(self.now)),
                        ..ObjectMeta::default()
                    },
                    spec: None,
                    status: Some(PodStatus {
                        phase: Some("Running".into()),
                        ..PodStatus::default()
                    }),
                });
            }
        }
        pods
    }

    /// The plan for what the world looks like now.
    pub(super) fn plan(&self) -> Plan {
        let pods = self.pods();
        let observed = Observed {
            deployment: &self.deployment,
            replica_sets: self.rss.iter().collect(),
            pods: pods.iter().collect(),
            now: self.now,
        };
        plan(&observed).unwrap_or_else(|e| panic!("{}: plan failed: {e}", self.label))
    }

    /// Changes the Deployment's spec as a user would (generation + 1).
    pub(super) fn edit(&mut self, change: impl FnOnce(&mut DeploymentSpec)) {
        let before = self.deployment.spec.clone();
        change(&mut self.deployment.spec);
        if self.deployment.spec != before {
            let generation = self.deployment.metadata.generation.get_or_insert(0);
            *generation += 1;
        }
        if self.deployment.spec.replicas != before.replicas
            || self.deployment.spec.strategy != before.strategy
        {
            self.armed = false;
        }
    }

    /// Rolls out another image.
    pub(super) fn set_image(&mut self, image: &str) {
        self.edit(|spec| spec.template = template(image));
    }

    /// Sets an annotation on the Deployment, as `kubectl annotate` would.
    pub(super) fn annotate(&mut self, key: &str, value: &str) {
        self.deployment
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }

    /// `kubectl rollout undo --to-revision`: the template of the
    /// ReplicaSet running `image`, without its pod-template-hash label, and
    /// that ReplicaSet's annotations (but the controller's own ones) on the
    /// Deployment.
    pub(super) fn undo_to(&mut self, image: &str) {
        let rs = self.rs_by_image(image);
        let mut template = rs.spec.template.clone().expect("template");
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        let skipped = |key: &str| {
            key.starts_with("deployment.kubernetes.io/")
                || key == "kubectl.kubernetes.io/last-applied-configuration"
                || key == "deprecated.deployment.rollback.to"
        };
        let mut annotations: BTreeMap<String, String> = self
            .deployment
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| skipped(k))
            .collect();
        for (key, value) in rs.metadata.annotations.iter().flatten() {
            if !skipped(key) {
                annotations.insert(key.clone(), value.clone());
            }
        }
        self.deployment.metadata.annotations = Some(annotations);
        self.edit(|spec| spec.template = template);
    }

    /// The one ReplicaSet running `image`.
    pub(super) fn rs_by_image(&self, image: &str) -> &ReplicaSet {
        let mut matching = self.rss.iter().filter(|rs| image_of(rs) == image);
        let rs = matching
            .next()
            .unwrap_or_else(|| panic!("{}: no ReplicaSet runs {image}", self.label));
        assert!(
            matching.next().is_none(),
            "{}: several ReplicaSets run {image}",
            self.label
        );
        rs
    }

    /// `(image, spec replicas, available)` of every ReplicaSet, oldest first.
    pub(super) fn sizes(&self) -> Vec<(String, i32, i32)> {
        self.rss
            .iter()
            .map(|rs| {
                let available = rs
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                (
                    image_of(rs).to_owned(),
                    rs.spec.replicas.unwrap_or(1),
                    available,
                )
            })
            .collect()
    }

    fn total_spec(&self) -> i32 {
        self.rss
            .iter()
            .map(|rs| rs.spec.replicas.unwrap_or(1))
            .sum()
    }

    fn total_available(&self) -> i32 {
        self.rss
            .iter()
            .map(|rs| {
                rs.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
            })
            .sum()
    }

    /// maxSurge and maxUnavailable of a RollingUpdate Deployment, resolved
    /// here independently of the code under test.
    fn rolling_bounds(&self) -> Option<(i32, i32)> {
        let strategy = self.deployment.spec.strategy.as_ref()?;
        if strategy.type_.as_deref() != Some("RollingUpdate") {
            return None;
        }
        let replicas = self.deployment.spec.replicas.unwrap_or(1);
        let rolling = strategy.rolling_update.as_ref()?;
        let resolve = |value: &IntOrString, round_up: bool| match value {
            IntOrString::Int(value) => *value,
            IntOrString::String(text) => {
                let percent: i32 = text.trim_end_matches('%').parse().expect("percent");
                let scaled = percent * replicas;
                if round_up {
                    (scaled + 99) / 100
                } else {
                    scaled / 100
                }
            }
        };
        let surge = resolve(rolling.max_surge.as_ref()?, true);
        let mut unavailable = resolve(rolling.max_unavailable.as_ref()?, false);
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        Some((surge, unavailable.min(replicas)))
    }

    /// Applies a plan's actions in order, as the caller would, checking the
    /// bounds after each.
    pub(super) fn apply(&mut self, plan: &Plan) {
        let replicas = self.deployment.spec.replicas.unwrap_or(1);
        let max_total = self.rolling_bounds().map(|(surge, _)| replicas + surge);
        let within_before = max_total.is_some_and(|max| self.total_spec() <= max);
        let mut updated = Vec::new();
        for action in &plan.actions {
            if let Action::UpdateReplicaSet(update) = action {
                assert!(
                    !updated.contains(&update.name),
                    "{}: two updates of {} in one plan",
                    self.label,
                    update.name
                );
                updated.push(update.name.clone());
            }
            self.check_recreate_order(action);
            self.apply_action(action);
            if let Some(max) = max_total
                && within_before
            {
                assert!(
                    self.total_spec() <= max,
                    "{}: {} replicas wanted, more than {max} (surge) after {action:?}; sizes {:?}",
                    self.label,
                    self.total_spec(),
                    self.sizes(),
                );
            }
        }
        if let Some(max) = max_total
            && !self.deployment.spec.paused.unwrap_or(false)
        {
            assert!(
                self.total_spec() <= max,
                "{}: {} replicas wanted after a plan, more than {max}; sizes {:?}",
                self.label,
                self.total_spec(),
                self.sizes(),
            );
        }
    }

    /// Under Recreate, a ReplicaSet of the current template may only get
    /// replicas once no old pod runs or terminates.
    fn check_recreate_order(&self, action: &Action) {
        let recreate = self
            .deployment
            .spec
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        if !recreate {
            return;
        }
        let current = self
            .deployment
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].image.clone());
        let scales_up_new = match action {
            Action::CreateReplicaSet(rs) => {
                Some(image_of(rs).to_owned()) == current && rs.spec.replicas.unwrap_or(1) > 0
            }
            Action::UpdateReplicaSet(update) => {
                let rs = self
                    .rss
                    .iter()
                    .find(|rs| rs.metadata.name.as_deref() == Some(update.name.as_str()));
                rs.is_some_and(|rs| Some(image_of(rs).to_owned()) == current) && update.replicas > 0
            }
            _ => false,
        };
        if !scales_up_new {
            return;
        }
        for rs in &self.rss {
            if Some(image_of(rs).to_owned()) == current {
                continue;
            }
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            let running = rs.status.as_ref().map_or(0, |s| s.replicas);
            let terminating = self.terminating.get(&uid).copied().unwrap_or(0);
            assert!(
                running == 0 && terminating == 0,
                "{}: Recreate started new pods while {} old ones remain: {action:?}",
                self.label,
                running + terminating,
            );
        }
    }

    fn apply_action(&mut self, action: &Action) {
        self.next_id += 1;
        let id = self.next_id;
        match action {
            Action::CreateReplicaSet(rs) => {
                let mut rs = (**rs).clone();
                assert!(
                    !self.rss.iter().any(|r| r.metadata.name == rs.metadata.name),
                    "{}: create of an existing name {:?}",
                    self.label,
                    rs.metadata.name,
                );
                assert!(rs.metadata.uid.is_none() && rs.metadata.resource_version.is_none());
                rs.metadata.uid = Some(format!("rs-uid-{id}"));
                rs.metadata.resource_version = Some(id.to_string());
                rs.metadata.creation_timestamp = Some(Time(self.now));
                rs.metadata.generation = Some(1);
                self.rss.push(rs);
            }
            Action::UpdateReplicaSet(update) => {
                let label = self.label.clone();
                let rs = self
                    .rss
                    .iter_mut()
                    .find(|rs| rs.metadata.name.as_deref() == Some(update.name.as_str()))
                    .unwrap_or_else(|| panic!("{label}: update of missing {}", update.name));
                assert_eq!(
                    rs.metadata.resource_version, update.resource_version,
                    "{label}: stale update"
                );
                let spec_changed = rs.spec.replicas != Some(update.replicas)
                    || rs.spec.min_ready_seconds.unwrap_or(0) != update.min_ready_seconds;
                rs.spec.replicas = Some(update.replicas);
                rs.spec.min_ready_seconds = Some(update.min_ready_seconds);
                rs.metadata.annotations = Some(update.annotations.clone());
                if spec_changed {
                    *rs.metadata.generation.get_or_insert(0) += 1;
                }
                rs.metadata.resource_version = Some(id.to_string());
            }
            Action::DeleteReplicaSet {
                name,
                uid,
                resource_version,
            } => {
                let index = self
                    .rss
                    .iter()
                    .position(|rs| rs.metadata.name.as_ref() == Some(name))
                    .unwrap_or_else(|| panic!("{}: delete of missing {name}", self.label));
                let rs = &self.rss[index];
                assert_eq!(&rs.metadata.uid, uid, "{}: delete precondition", self.label);
                assert_eq!(
                    &rs.metadata.resource_version, resource_version,
                    "{}: delete precondition",
                    self.label
                );
                assert_eq!(
                    rs.spec.replicas,
                    Some(0),
                    "{}: deleted a ReplicaSet with replicas",
                    self.label
                );
                assert_eq!(
                    rs.status.as_ref().map_or(0, |s| s.replicas),
                    0,
                    "{}: deleted with pods",
                    self.label
                );
                let rs = self.rss.remove(index);
                self.terminating
                    .remove(rs.metadata.uid.as_deref().unwrap_or(""));
            }
            Action::UpdateDeploymentAnnotations(annotations) => {
                self.deployment
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .extend(annotations.clone());
            }
            Action::UpdateDeploymentStatus(status) => {
                self.deployment.status = Some((**status).clone());
            }
        }
    }

    /// The ReplicaSet controller and the kubelets: pods follow each
    /// ReplicaSet's spec (unavailable ones removed first), removed pods
    /// terminate for one tick, pods from earlier ticks become available at
    /// the image's rate; then the clock moves on.
    pub(super) fn tick(&mut self) {
        self.now += TICK;
        self.terminating.clear();
        for rs in &mut self.rss {
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            let wanted = rs.spec.replicas.unwrap_or(1);
            let rate = self
                .rates
                .get(image_of(rs))
                .copied()
                .unwrap_or(self.default_rate);
            let status = rs.status.get_or_insert_with(ReplicaSetStatus::default);
            status.observed_generation = rs.metadata.generation;
            let mut available = status.available_replicas.unwrap_or(0);
            if status.replicas > wanted {
                *self.terminating.entry(uid).or_default() += status.replicas - wanted;
                available = available.min(wanted);
            }
            // Pods created in this tick become available in a later one.
            let existing = status.replicas.min(wanted);
            status.replicas = wanted;
            available = available.saturating_add(rate).min(existing);
            status.available_replicas = Some(available);
            status.ready_replicas = Some(available);
            status.fully_labeled_replicas = Some(wanted);
        }
        self.check_availability();
    }

    /// During a RollingUpdate, once availability reached replicas minus
    /// maxUnavailable it never drops below again.
    fn check_availability(&mut self) {
        let Some((_, max_unavailable)) = self.rolling_bounds() else {
            return;
        };
        let minimum = self.deployment.spec.replicas.unwrap_or(1) - max_unavailable;
        let available = self.total_available();
        if available >= minimum {
            self.armed = true;
        } else {
            assert!(
                !self.armed,
                "{}: {available} available, fewer than {minimum}; sizes {:?}",
                self.label,
                self.sizes()
            );
        }
    }

    /// One reconcile round: plan and apply until a plan is empty (a few
    /// reconciles in a row must converge without the world moving), then
    /// one tick. True if nothing at all happened.
    pub(super) fn step(&mut self) -> bool {
        let mut acted = false;
        for round in 0.. {
            let plan = self.plan();
            assert_eq!(
                plan,
                self.plan(),
                "{}: the same observation gave another plan",
                self.label
            );
            if plan.actions.is_empty() {
                break;
            }
            assert!(
                round < 4,
                "{}: plans keep coming without the world changing: {plan:#?}",
                self.label
            );
            acted = true;
            self.apply(&plan);
            self.history.push(plan);
        }
        let before = (self.rss.clone(), self.terminating.clone());
        self.tick();
        !acted && before == (self.rss.clone(), self.terminating.clone())
    }

    /// Steps until nothing happens; returns the number of steps.
    pub(super) fn run(&mut self) -> usize {
        for steps in 1..=400 {
            if self.step() {
                return steps;
            }
        }
        panic!("{}: did not settle; sizes {:?}", self.label, self.sizes());
    }

    /// The world has settled on `image`: only its ReplicaSet has pods, all
    /// wanted and available; the status and conditions are Kubernetes'
    /// for a complete rollout; planning again does nothing.
    pub(super) fn assert_settled_on(&self, image: &str) {
        let label = &self.label;
        let replicas = self.deployment.spec.replicas.unwrap_or(1);
        for rs in &self.rss {
            let status = rs.status.clone().unwrap_or_default();
            let expect = if image_of(rs) == image { replicas } else { 0 };
            assert_eq!(
                rs.spec.replicas,
                Some(expect),
                "{label}: {} spec; sizes {:?}",
                image_of(rs),
                self.sizes()
            );
            assert_eq!(status.replicas, expect, "{label}: {} pods", image_of(rs));
            assert_eq!(
                status.available_replicas.unwrap_or(0),
                expect,
                "{label}: {} available",
                image_of(rs)
            );
        }
        let new = self.rs_by_image(image);
        let status = self.deployment.status.clone().unwrap_or_default();
        let count = (replicas != 0).then_some(replicas);
        assert_eq!(
            status.observed_generation, self.deployment.metadata.generation,
            "{label}"
        );
        assert_eq!(
            (
                status.replicas,
                status.updated_replicas,
                status.ready_replicas,
                status.available_replicas
            ),
            (count, count, count, count),
            "{label}: status counts"
        );
        assert_eq!(status.unavailable_replicas, None, "{label}");
        let available = condition(&self.deployment, CONDITION_AVAILABLE).expect("Available");
        assert_eq!(
            (
                available.status.as_deref(),
                available.reason.as_deref(),
                available.message.as_deref()
            ),
            (
                Some("True"),
                Some("MinimumReplicasAvailable"),
                Some("Deployment has minimum availability.")
            ),
            "{label}"
        );
        let progressing = condition(&self.deployment, CONDITION_PROGRESSING).expect("Progressing");
        let message = format!(
            "ReplicaSet \"{}\" has successfully progressed.",
            new.metadata.name.as_deref().unwrap_or("")
        );
        assert_eq!(
            (
                progressing.status.as_deref(),
                progressing.reason.as_deref(),
                progressing.message.as_deref()
            ),
            (
                Some("True"),
                Some("NewReplicaSetAvailable"),
                Some(message.as_str())
            ),
            "{label}"
        );
        let deployment_revision = self
            .deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .map(String::as_str);
        assert_eq!(
            deployment_revision,
            Some(revision(new)),
            "{label}: Deployment revision"
        );
        let plan = self.plan();
        assert_eq!(
            plan,
            Plan::default(),
            "{label}: a settled world still plans"
        );
    }
}
