//! Single decisions as tables, most of them ported from Kubernetes' own
//! tests (`rolling_test.go`, `sync_test.go`, `progress_test.go`): one plan
//! (or one planner step) on a hand-built state, checked exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::util::Settings;
use super::super::{
    Action, DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, Observed,
    POD_TEMPLATE_HASH_LABEL, Plan, PlanError, Planner, REVISION_ANNOTATION, plan,
    pod_template_hash, resolve_create_conflict,
};
use super::sim::{
    World, at, deployment, image_of, int, pct, recreate, replica_set, rolling, start, template,
};

/// Runs `step` on a planner over `deployment` and `rss` at `now`.
fn with_planner<R>(
    deployment: &k8s_openapi::api::apps::v1::Deployment,
    rss: &[ReplicaSet],
    now: jiff::Timestamp,
    step: impl FnOnce(&mut Planner<'_, '_>) -> R,
) -> R {
    let observed = Observed {
        deployment,
        replica_sets: rss.iter().collect(),
        pods: Vec::new(),
        now,
    };
    let settings = Settings::from_deployment(deployment).expect("valid");
    let mut planner = Planner::new(&observed, settings);
    step(&mut planner)
}

fn annotate(mut rs: ReplicaSet, pairs: &[(&str, String)]) -> ReplicaSet {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (key, value) in pairs {
        annotations.insert((*key).to_owned(), value.clone());
    }
    rs
}

/// A RollingUpdate world mid-rollout from `app:v1` (revision 1) to
/// `app:v2` (revision 2, the template), both sized for `replicas`, given
/// `(spec, available)` of each.
fn mid_rollout(
    replicas: i32,
    surge: i32,
    unavailable: i32,
    old: (i32, i32),
    new: (i32, i32),
) -> World {
    let mut d = deployment(replicas, rolling(int(surge), int(unavailable)), "app:v2");
    d.metadata.annotations = Some([(REVISION_ANNOTATION.to_owned(), "2".to_owned())].into());
    let sized = |rs, revision: &str| {
        annotate(
            rs,
            &[
                (REVISION_ANNOTATION, revision.to_owned()),
                (DESIRED_REPLICAS_ANNOTATION, replicas.to_string()),
                (MAX_REPLICAS_ANNOTATION, (replicas + surge).to_string()),
            ],
        )
    };
    let mut world = World::new(d);
    world.rss = vec![
        sized(replica_set("web-old", "app:v1", old.0, old.1, 0), "1"),
        sized(replica_set("web-new", "app:v2", new.0, new.1, 60), "2"),
    ];
    world.now = at(120).0;
    world
}

fn spec_of(world: &World, image: &str) -> i32 {
    world.rs_by_image(image).spec.replicas.unwrap_or(1)
}

#[test]
fn first_plan_of_a_new_deployment() {
    let mut d = deployment(3, rolling(pct("25%"), pct("25%")), "app:v1");
    d.metadata.annotations = Some(
        [
            (
                "kubernetes.io/change-cause".to_owned(),
                "kubectl create".to_owned(),
            ),
            (
                "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                "{}".to_owned(),
            ),
        ]
        .into(),
    );
    let now = start();
    let plan = plan(&Observed {
        deployment: &d,
        replica_sets: Vec::new(),
        pods: Vec::new(),
        now,
    })
    .expect("plan");

    let hash = pod_template_hash(&template("app:v1"), None);
    let name = format!("web-{hash}");
    let labels: BTreeMap<String, String> = [
        ("app".to_owned(), "web".to_owned()),
        (POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone()),
    ]
    .into();
    let mut rs_template = template("app:v1");
    rs_template.metadata.as_mut().expect("metadata").labels = Some(labels.clone());
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some("default".into()),
            labels: Some(labels.clone()),
            annotations: Some(
                [
                    (
                        "kubernetes.io/change-cause".to_owned(),
                        "kubectl create".to_owned(),
                    ),
                    (REVISION_ANNOTATION.to_owned(), "1".to_owned()),
                    (DESIRED_REPLICAS_ANNOTATION.to_owned(), "3".to_owned()),
                    (MAX_REPLICAS_ANNOTATION.to_owned(), "4".to_owned()),
                ]
                .into(),
            ),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
                uid: "deployment-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(3),
            min_ready_seconds: Some(0),
            selector: LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            },
            template: Some(rs_template),
        },
        status: None,
    };
    let t0 = Time(now);
    let status = DeploymentStatus {
        observed_generation: Some(1),
        unavailable_replicas: Some(3),
        conditions: Some(vec![
            DeploymentCondition {
                type_: Some("Progressing".into()),
                status: Some("True".into()),
                reason: Some("NewReplicaSetCreated".into()),
                message: Some(format!("Created new replica set \"{name}\"")),
                last_update_time: Some(t0.clone()),
                last_transition_time: Some(t0.clone()),
            },
            DeploymentCondition {
                type_: Some("Available".into()),
                status: Some("False".into()),
                reason: Some("MinimumReplicasUnavailable".into()),
                message: Some("Deployment does not have minimum availability.".into()),
                last_update_time: Some(t0.clone()),
                last_transition_time: Some(t0),
            },
        ]),
        ..DeploymentStatus::default()
    };
    assert_eq!(
        plan,
        Plan {
            actions: vec![
                Action::CreateReplicaSet(Box::new(rs)),
                Action::UpdateDeploymentAnnotations(
                    [(REVISION_ANNOTATION.to_owned(), "1".to_owned())].into()
                ),
                Action::UpdateDeploymentStatus(Box::new(status)),
            ],
            requeue_after: Some(Duration::from_secs(601)),
        }
    );
}

#[test]
fn reconcile_new_replica_set_grows_within_max_surge() {
    // Kubernetes' TestDeploymentController_reconcileNewReplicaSet:
    // (replicas, maxSurge, old spec, new spec, expected new spec)
    let cases = [
        (10, 0, 10, 0, 0),
        (10, 2, 10, 0, 2),
        (10, 2, 5, 0, 7),
        (10, 2, 10, 2, 2),
        (10, 2, 2, 11, 10),
    ];
    for (replicas, surge, old, new, expect) in cases {
        let mut world = mid_rollout(replicas, surge, 0, (old, old), (new, 0));
        world.label = format!("{replicas} replicas, maxSurge {surge}, old {old}, new {new}");
        let plan = world.plan();
        world.apply(&plan);
        assert_eq!(spec_of(&world, "app:v2"), expect, "{}", world.label);
    }
}

#[test]
fn reconcile_old_replica_sets_shrink_within_max_unavailable() {
    // Kubernetes' TestDeploymentController_reconcileOldReplicaSets and the
    // examples in reconcileOldReplicaSets' comment: (replicas, maxSurge,
    // maxUnavailable, old (spec, available), new (spec, available),
    // expected old spec, expected new spec)
    let cases = [
        (10, 0, 0, (10, 10), (0, 0), 9, 0),
        (10, 0, 2, (10, 10), (0, 0), 8, 0),
        // Unhealthy old replicas go first.
        (10, 0, 2, (10, 8), (0, 0), 8, 0),
        (10, 0, 2, (10, 9), (0, 0), 8, 0),
        // The new ReplicaSet's unavailable pods count against the budget.
        (10, 0, 2, (8, 8), (2, 0), 8, 2),
        // Crashlooping new pods and a failed node: nothing can go.
        (10, 3, 2, (8, 7), (5, 0), 8, 5),
        // Stale status (more available than wanted): wait for it.
        (10, 0, 2, (8, 10), (2, 2), 8, 2),
    ];
    for (replicas, surge, unavailable, old, new, expect_old, expect_new) in cases {
        let mut world = mid_rollout(replicas, surge, unavailable, old, new);
        world.label = format!(
            "{replicas} replicas, surge {surge}, unavailable {unavailable}, old {old:?}, new {new:?}"
        );
        let plan = world.plan();
        world.apply(&plan);
        assert_eq!(
            (spec_of(&world, "app:v1"), spec_of(&world, "app:v2")),
            (expect_old, expect_new),
            "{}",
            world.label
        );
    }
}

#[test]
fn rollback_over_crashlooping_pods_scales_them_down_first() {
    // reconcileOldReplicaSets' comment, case 1 after `kubectl rollout
    // undo`: the good ReplicaSet (8, 7 available) is new again, the
    // crashlooping one (5, none available) is old: 13 - 8 - 1 = 4 of the
    // crashlooping pods go.
    let mut world = mid_rollout(10, 3, 2, (5, 0), (8, 7));
    world.label = "rollback over crashloop".into();
    let plan = world.plan();
    world.apply(&plan);
    assert_eq!(
        (spec_of(&world, "app:v1"), spec_of(&world, "app:v2")),
        (1, 8)
    );
}

struct ScaleCase {
    name: &'static str,
    replicas: i32,
    surge: i32,
    unavailable: i32,
    old_replicas: i32,
    old_surge: i32,
    /// (name, size, created); the first is the new ReplicaSet if `has_new`.
    rss: &'static [(&'static str, i32, i64)],
    has_new: bool,
    expect: &'static [i32],
    desired_override: Option<(&'static str, i32)>,
    broken_new: bool,
}

#[test]
fn scaling_events_scale_proportionally() {
    // Kubernetes' TestScale (newTimestamp 7200, old 3600, older 0).
    let case = |name, replicas, old_replicas, rss, has_new, expect| ScaleCase {
        name,
        replicas,
        surge: 0,
        unavailable: 0,
        old_replicas,
        old_surge: 0,
        rss,
        has_new,
        expect,
        desired_override: None,
        broken_new: false,
    };
    let cases = [
        case(
            "normal scaling event: 10 -> 12",
            12,
            10,
            &[("foo-v1", 10, 7200)],
            true,
            &[12],
        ),
        case(
            "normal scaling event: 10 -> 5",
            5,
            10,
            &[("foo-v1", 10, 7200)],
            true,
            &[5],
        ),
        case(
            "proportional 5 -> 10",
            10,
            5,
            &[("foo-v2", 2, 7200), ("foo-v1", 3, 3600)],
            true,
            &[4, 6],
        ),
        case(
            "proportional 5 -> 3",
            3,
            5,
            &[("foo-v2", 2, 7200), ("foo-v1", 3, 3600)],
            true,
            &[1, 2],
        ),
        case(
            "proportional 9 -> 4",
            4,
            9,
            &[("foo-v2", 8, 7200), ("foo-v1", 1, 3600)],
            true,
            &[4, 0],
        ),
        case(
            "proportional 7 -> 10",
            10,
            7,
            &[("foo-v3", 2, 7200), ("foo-v2", 3, 3600), ("foo-v1", 2, 0)],
            true,
            &[3, 4, 3],
        ),
        case(
            "proportional 13 -> 8",
            8,
            13,
            &[("foo-v3", 2, 7200), ("foo-v2", 8, 3600), ("foo-v1", 3, 0)],
            true,
            &[1, 5, 2],
        ),
        case(
            "leftover 3 -> 4",
            4,
            3,
            &[("foo-v3", 1, 7200), ("foo-v2", 1, 3600), ("foo-v1", 1, 0)],
            true,
            &[2, 1, 1],
        ),
        case(
            "leftover 3 -> 2",
            2,
            3,
            &[("foo-v3", 1, 7200), ("foo-v2", 1, 3600), ("foo-v1", 1, 0)],
            true,
            &[1, 1, 0],
        ),
        case(
            "no new rs: 4 -> 5",
            5,
            4,
            &[("foo-v2", 2, 3600), ("foo-v1", 2, 0)],
            false,
            &[3, 2],
        ),
        case(
            "6 -> 0",
            0,
            6,
            &[("foo-v3", 3, 7200), ("foo-v2", 2, 3600), ("foo-v1", 1, 0)],
            true,
            &[0, 0, 0],
        ),
        case(
            "0 -> 6",
            6,
            6,
            &[("foo-v3", 0, 7200), ("foo-v2", 0, 3600), ("foo-v1", 0, 0)],
            true,
            &[6, 0, 0],
        ),
        ScaleCase {
            desired_override: Some(("foo-v2", 3)),
            ..case(
                "failed rs update",
                5,
                5,
                &[("foo-v3", 2, 7200), ("foo-v2", 1, 3600), ("foo-v1", 1, 0)],
                true,
                &[2, 2, 1],
            )
        },
        ScaleCase {
            surge: 2,
            old_surge: 2,
            ..case(
                "surge pods",
                20,
                10,
                &[("foo-v2", 6, 7200), ("foo-v1", 6, 3600)],
                true,
                &[11, 11],
            )
        },
        ScaleCase {
            surge: 6,
            old_surge: 3,
            ..case(
                "surge and size",
                50,
                10,
                &[("foo-v2", 5, 7200), ("foo-v1", 8, 3600)],
                true,
                &[22, 34],
            )
        },
        case(
            "size and template",
            14,
            10,
            &[("foo-v2", 7, 7200), ("foo-v1", 3, 3600)],
            false,
            &[10, 4],
        ),
        ScaleCase {
            surge: 1,
            unavailable: 1,
            old_surge: 1,
            broken_new: true,
            ..case(
                "saturated but broken",
                2,
                2,
                &[("foo-v2", 2, 7200), ("foo-v1", 1, 3600)],
                true,
                &[2, 1],
            )
        },
    ];
    for case in cases {
        let d = deployment(
            case.replicas,
            rolling(int(case.surge), int(case.unavailable)),
            "app:new",
        );
        let rss: Vec<ReplicaSet> = case
            .rss
            .iter()
            .enumerate()
            .map(|(position, (name, size, created))| {
                let is_new = case.has_new && position == 0;
                let image = if is_new { "app:new" } else { *name };
                let mut rs = replica_set(name, image, *size, *size, *created);
                if is_new && case.broken_new {
                    rs.status.as_mut().expect("status").available_replicas = Some(0);
                }
                let desired = match case.desired_override {
                    Some((overridden, desired)) if overridden == *name => desired,
                    _ => case.old_replicas,
                };
                annotate(
                    rs,
                    &[
                        (DESIRED_REPLICAS_ANNOTATION, desired.to_string()),
                        (
                            MAX_REPLICAS_ANNOTATION,
                            (desired + case.old_surge).to_string(),
                        ),
                    ],
                )
            })
            .collect();
        let sizes = with_planner(&d, &rss, at(10_000).0, |planner| {
            let index = |planner: &Planner<'_, '_>, name: &str| {
                planner
                    .rss
                    .iter()
                    .position(|w| w.rs.metadata.name.as_deref() == Some(name))
                    .expect("present")
            };
            let new = case.has_new.then(|| index(planner, case.rss[0].0));
            let old: Vec<usize> = case
                .rss
                .iter()
                .skip(usize::from(case.has_new))
                .map(|(n, _, _)| index(planner, n))
                .collect();
            planner.scale(new, &old);
            let size = |name: &str| planner.rs(index(planner, name)).spec.replicas.unwrap_or(1);
            case.rss
                .iter()
                .map(|(name, _, _)| size(name))
                .collect::<Vec<_>>()
        });
        assert_eq!(sizes, case.expect, "{}", case.name);
    }
}

#[test]
fn cleanup_deletes_only_idle_replica_sets_beyond_the_limit() {
    // Kubernetes' TestDeploymentController_cleanupDeployment:
    // (limit, [(spec, status replicas)], deletions)
    type Sets = &'static [(i32, i32)];
    let cases: [(i32, Sets, usize); 5] = [
        (1, &[(0, 0), (0, 0), (0, 0)], 2),
        (0, &[(0, 0), (0, 1), (1, 0), (1, 1)], 1),
        (0, &[(0, 0), (0, 0)], 2),
        (0, &[(1, 1), (1, 1)], 0),
        (i32::MAX, &[(0, 0), (0, 0), (0, 0)], 0),
    ];
    for (limit, sets, expect) in cases {
        let mut d = deployment(1, rolling(int(1), int(0)), "app:new");
        d.spec.revision_history_limit = Some(limit);
        let rss: Vec<ReplicaSet> = sets
            .iter()
            .enumerate()
            .map(|(i, (spec, status))| {
                let mut rs = replica_set(&format!("foo-{}", i + 1), "app:old", *spec, 0, 0);
                rs.status.as_mut().expect("status").replicas = *status;
                rs
            })
            .collect();
        let deleted = with_planner(&d, &rss, start(), |planner| {
            let old: Vec<usize> = (0..planner.rss.len()).collect();
            planner.cleanup_deployment(&old);
            planner
                .actions
                .iter()
                .filter(|a| matches!(a, Action::DeleteReplicaSet { .. }))
                .count()
        });
        assert_eq!(deleted, expect, "limit {limit}, {sets:?}");
    }

    // Being deleted, or not yet observed by the ReplicaSet controller: kept.
    let d = {
        let mut d = deployment(1, rolling(int(1), int(0)), "app:new");
        d.spec.revision_history_limit = Some(0);
        d
    };
    let mut deleting = replica_set("foo-1", "app:old", 0, 0, 0);
    deleting.metadata.deletion_timestamp = Some(at(1));
    let mut unobserved = replica_set("foo-2", "app:old", 0, 0, 0);
    unobserved.metadata.generation = Some(2);
    let deleted = with_planner(&d, &[deleting, unobserved], start(), |planner| {
        planner.cleanup_deployment(&[0, 1]);
        planner.actions.len()
    });
    assert_eq!(deleted, 0);
}

#[test]
fn requeue_for_the_progress_deadline() {
    // Kubernetes' TestRequeueStuckDeployment, with skiff's requeue: one
    // second after the deadline, and never sooner than in a second.
    let stuck = DeploymentCondition {
        type_: Some("Progressing".into()),
        status: Some("True".into()),
        last_update_time: Some(at(0)),
        ..DeploymentCondition::default()
    };
    let failed = DeploymentCondition {
        type_: Some("Progressing".into()),
        status: Some("False".into()),
        reason: Some("ProgressDeadlineExceeded".into()),
        ..DeploymentCondition::default()
    };
    let done = DeploymentCondition {
        reason: Some("NewReplicaSetAvailable".into()),
        ..stuck.clone()
    };
    let nanos = |n| jiff::SignedDuration::new(59, n);
    // (case, deadline, replicas, (status replicas, updated, available), condition, now - lastUpdate, expected)
    type Case<'c> = (
        &'c str,
        i32,
        i32,
        Counts,
        Option<&'c DeploymentCondition>,
        jiff::SignedDuration,
        Option<u64>,
    );
    type Counts = (i32, i32, i32);
    let cases: [Case<'_>; 10] = [
        (
            "no deadline",
            i32::MAX,
            4,
            (3, 3, 2),
            Some(&stuck),
            nanos(0),
            None,
        ),
        (
            "no progressing condition",
            60,
            4,
            (3, 3, 2),
            None,
            nanos(0),
            None,
        ),
        ("complete", 60, 3, (3, 3, 3), Some(&stuck), nanos(0), None),
        (
            "already failed",
            60,
            3,
            (3, 3, 0),
            Some(&failed),
            nanos(0),
            None,
        ),
        (
            "stuck, 30s left",
            60,
            3,
            (3, 3, 1),
            Some(&stuck),
            jiff::SignedDuration::from_secs(30),
            Some(31_000),
        ),
        (
            "stuck, 1s left",
            60,
            3,
            (3, 3, 1),
            Some(&stuck),
            nanos(0),
            Some(2_000),
        ),
        (
            "less than a second left",
            60,
            3,
            (3, 3, 1),
            Some(&stuck),
            nanos(1),
            Some(1_000),
        ),
        (
            "deadline now",
            60,
            3,
            (3, 3, 1),
            Some(&stuck),
            jiff::SignedDuration::from_secs(60),
            Some(1_000),
        ),
        (
            "60s past",
            60,
            3,
            (3, 3, 1),
            Some(&stuck),
            jiff::SignedDuration::from_secs(120),
            Some(1_000),
        ),
        (
            "complete rollout scaled up",
            60,
            4,
            (3, 3, 3),
            Some(&done),
            nanos(0),
            None,
        ),
    ];
    for (name, deadline, replicas, (current, updated, available), condition, elapsed, expect) in
        cases
    {
        let mut d = deployment(replicas, recreate(), "app:v1");
        d.spec.progress_deadline_seconds = Some(deadline);
        let status = DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(current),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            conditions: condition.map(|c| vec![c.clone()]),
            ..DeploymentStatus::default()
        };
        d.status = Some(status.clone());
        let now = start() + elapsed;
        let requeue = with_planner(&d, &[], now, |planner| {
            planner.requeue_stuck_deployment(&status)
        });
        assert_eq!(requeue, expect.map(Duration::from_millis), "{name}");
    }
}

#[test]
fn hash_collision_bumps_collision_count_then_uses_another_name() {
    let mut world = World::new(deployment(2, rolling(int(1), int(0)), "app:v2"));
    // An old ReplicaSet of ours already has the name the new one would get.
    let taken = format!("web-{}", pod_template_hash(&template("app:v2"), None));
    world.rss = vec![replica_set(&taken, "app:v1", 2, 2, 0)];
    world.now = at(60).0;
    let plan = world.plan();
    let [Action::UpdateDeploymentStatus(status)] = &plan.actions[..] else {
        panic!("{plan:#?}")
    };
    assert_eq!(status.collision_count, Some(1));
    world.apply(&plan);

    let plan = world.plan();
    let created = plan.actions.iter().find_map(|a| match a {
        Action::CreateReplicaSet(rs) => rs.metadata.name.clone(),
        _ => None,
    });
    let hash = pod_template_hash(&template("app:v2"), Some(1));
    assert_eq!(created, Some(format!("web-{hash}")));
    world.apply(&plan);
    world.label = "after a collision".into();
    world.run();
    world.assert_settled_on("app:v2");
}

#[test]
fn create_conflicts_are_collisions_unless_the_replica_set_is_ours() {
    let mut d = deployment(2, rolling(int(1), int(0)), "app:v1");
    let ours = replica_set("web-x", "app:v1", 0, 0, 0);
    assert_eq!(resolve_create_conflict(&d, &ours), None);

    let mut foreign = ours.clone();
    foreign.metadata.owner_references.as_mut().expect("owners")[0].uid = "someone-else".into();
    let Some(Action::UpdateDeploymentStatus(status)) = resolve_create_conflict(&d, &foreign) else {
        panic!()
    };
    assert_eq!(status.collision_count, Some(1));

    let other_template = replica_set("web-x", "app:v0", 0, 0, 0);
    d.status = Some(DeploymentStatus {
        collision_count: Some(1),
        ..DeploymentStatus::default()
    });
    let Some(Action::UpdateDeploymentStatus(status)) = resolve_create_conflict(&d, &other_template)
    else {
        panic!()
    };
    assert_eq!(status.collision_count, Some(2));
}

#[test]
fn a_deployment_selecting_everything_only_records_its_generation() {
    let mut d = deployment(2, rolling(int(1), int(0)), "app:v1");
    d.spec.selector = LabelSelector::default();
    d.metadata.generation = Some(3);
    let plan = plan(&Observed {
        deployment: &d,
        replica_sets: Vec::new(),
        pods: Vec::new(),
        now: start(),
    })
    .expect("plan");
    let expect = DeploymentStatus {
        observed_generation: Some(3),
        ..DeploymentStatus::default()
    };
    assert_eq!(
        plan.actions,
        [Action::UpdateDeploymentStatus(Box::new(expect))]
    );
}

#[test]
fn without_a_progress_deadline_there_is_no_progressing_condition() {
    let mut world = World::new(deployment(2, rolling(int(1), int(0)), "app:v1"));
    world.edit(|spec| spec.progress_deadline_seconds = Some(i32::MAX));
    let plan = world.plan();
    assert_eq!(plan.requeue_after, None);
    world.run();
    let conditions = world
        .deployment
        .status
        .clone()
        .unwrap_or_default()
        .conditions
        .unwrap_or_default();
    let types: Vec<_> = conditions.iter().map(|c| c.type_.as_deref()).collect();
    assert_eq!(types, [Some("Available")]);
}

#[test]
fn scaling_a_settled_deployment_resizes_its_replica_set() {
    let mut world = World::new(deployment(3, rolling(pct("25%"), pct("25%")), "app:v1"));
    world.run();
    world.edit(|spec| spec.replicas = Some(5));
    let plan = world.plan();
    let Action::UpdateReplicaSet(update) = &plan.actions[0] else {
        panic!("{plan:#?}")
    };
    assert_eq!(update.replicas, 5);
    assert_eq!(
        update
            .annotations
            .get(DESIRED_REPLICAS_ANNOTATION)
            .map(String::as_str),
        Some("5")
    );
    assert_eq!(
        update
            .annotations
            .get(MAX_REPLICAS_ANNOTATION)
            .map(String::as_str),
        Some("7")
    );
    world.run();
    world.assert_settled_on("app:v1");
}

#[test]
fn invalid_specs_are_errors() {
    fn check(d: &k8s_openapi::api::apps::v1::Deployment, expect: PlanError) {
        let observed = Observed {
            deployment: d,
            replica_sets: Vec::new(),
            pods: Vec::new(),
            now: start(),
        };
        assert_eq!(plan(&observed), Err(expect));
    }
    let mut d = deployment(2, rolling(pct("abc"), int(0)), "app:v1");
    check(
        &d,
        PlanError::InvalidIntOrPercent {
            field: "maxSurge",
            value: "abc".into(),
        },
    );
    d.spec.strategy = Some(rolling(int(1), IntOrString::String("5".into())));
    check(
        &d,
        PlanError::InvalidIntOrPercent {
            field: "maxUnavailable",
            value: "5".into(),
        },
    );
    d.spec.strategy.as_mut().expect("strategy").type_ = Some("BlueGreen".into());
    check(&d, PlanError::UnknownStrategy("BlueGreen".into()));
}

#[test]
fn recreate_ignores_finished_and_foreign_pods() {
    let d = deployment(2, recreate(), "app:v2");
    let mut old = replica_set("web-old", "app:v1", 0, 0, 0);
    old.status.as_mut().expect("status").replicas = 0;
    let pod = |owner: &str, phase: &str| Pod {
        metadata: ObjectMeta {
            name: Some(format!("{owner}-{phase}")),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: owner.into(),
                uid: format!("{owner}-uid"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..PodStatus::default()
        }),
    };
    let creates = |pods: &[Pod]| {
        let observed = Observed {
            deployment: &d,
            replica_sets: vec![&old],
            pods: pods.iter().collect(),
            now: at(60).0,
        };
        let plan = plan(&observed).expect("plan");
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_)))
    };
    assert!(creates(&[
        pod("web-old", "Succeeded"),
        pod("web-old", "Failed"),
        pod("stranger", "Running")
    ]));
    assert!(!creates(&[pod("web-old", "Running")]));
    assert!(!creates(&[pod("web-old", "Pending")]));
    assert!(!creates(&[pod("web-old", "Unknown")]));
}

#[test]
fn the_new_replica_set_follows_min_ready_seconds_and_reports_failures() {
    let mut world = World::new(deployment(2, rolling(int(1), int(0)), "app:v1"));
    world.run();
    world.edit(|spec| spec.min_ready_seconds = Some(10));
    let plan = world.plan();
    let Action::UpdateReplicaSet(update) = &plan.actions[0] else {
        panic!("{plan:#?}")
    };
    assert_eq!((update.min_ready_seconds, update.replicas), (10, 2));
    world.run();
    world.assert_settled_on("app:v1");

    let failure = ReplicaSetCondition {
        type_: Some("ReplicaFailure".into()),
        status: Some("True".into()),
        reason: Some("FailedCreate".into()),
        message: Some("pods \"web\" is forbidden: exceeded quota".into()),
        last_transition_time: Some(at(7)),
    };
    world.set_image("app:v2");
    world.step();
    let new = world
        .rss
        .iter_mut()
        .find(|rs| image_of(rs) == "app:v2")
        .expect("created");
    new.status.get_or_insert_default().conditions = Some(vec![failure]);
    let plan = world.plan();
    let status = plan.actions.iter().find_map(|a| match a {
        Action::UpdateDeploymentStatus(s) => Some(s),
        _ => None,
    });
    let condition = status.and_then(|s| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some("ReplicaFailure"))
    });
    assert_eq!(
        condition,
        Some(&DeploymentCondition {
            type_: Some("ReplicaFailure".into()),
            status: Some("True".into()),
            reason: Some("FailedCreate".into()),
            message: Some("pods \"web\" is forbidden: exceeded quota".into()),
            last_update_time: Some(at(7)),
            last_transition_time: Some(at(7)),
        })
    );
}
