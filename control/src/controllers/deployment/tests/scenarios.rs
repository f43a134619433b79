//! Whole rollouts through the simulator: each scenario drives a
//! Deployment through spec changes while `sim` checks the bounds at every
//! step (surge, availability, Recreate ordering, one write per ReplicaSet
//! per plan, plans converging), then checks the settled state exactly.

use k8s_openapi::api::apps::v1::DeploymentCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::super::{
    Action, CONDITION_PROGRESSING, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    pod_template_hash,
};
use super::sim::{
    ALL_AT_ONCE, World, annotation, condition, deployment, image_of, int, pct, recreate, revision,
    rolling, template,
};

#[test]
fn fresh_deployment_rolls_out_and_settles() {
    let mut world = World::new(deployment(3, rolling(pct("25%"), pct("25%")), "app:v1"));
    world.run();
    world.assert_settled_on("app:v1");
    let rs = world.rs_by_image("app:v1");
    assert_eq!(revision(rs), "1");
    let hash = pod_template_hash(&template("app:v1"), None);
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
}

#[test]
fn rolling_updates_stay_within_max_surge_and_max_unavailable() {
    // (replicas, maxSurge, maxUnavailable, new pods available per tick)
    let cases = [
        (10, pct("25%"), pct("25%"), 1),
        (10, pct("25%"), pct("25%"), ALL_AT_ONCE),
        (10, int(0), int(1), 1),
        (10, int(3), int(2), 2),
        (3, int(1), int(0), 1),
        (5, pct("0%"), pct("0%"), 1),
        (4, pct("50%"), pct("50%"), 4),
        (1, pct("0%"), pct("1%"), 1),
        (2, pct("1%"), pct("25%"), 1),
        (10, pct("100%"), int(0), 3),
        (7, int(2), pct("30%"), 1),
        (6, int(0), pct("100%"), 2),
    ];
    for (replicas, surge, unavailable, rate) in cases {
        let mut world = World::new(deployment(
            replicas,
            rolling(surge.clone(), unavailable.clone()),
            "app:v1",
        ));
        world.label = format!(
            "{replicas} replicas, maxSurge {surge:?}, maxUnavailable {unavailable:?}, rate {rate}"
        );
        world.run();
        world.assert_settled_on("app:v1");
        world.rates.insert("app:v2".into(), rate);
        world.set_image("app:v2");
        world.run();
        world.assert_settled_on("app:v2");
        assert_eq!(
            revision(world.rs_by_image("app:v1")),
            "1",
            "{}",
            world.label
        );
        assert_eq!(
            revision(world.rs_by_image("app:v2")),
            "2",
            "{}",
            world.label
        );
    }
}

#[test]
fn rolling_update_takes_one_phase_per_plan() {
    // 10 replicas, maxSurge 3, maxUnavailable 2, new pods crashlooping:
    // Kubernetes' example in reconcileOldReplicaSets. The first plan
    // creates the new ReplicaSet with 3 and scales the old one to 8, the
    // next scales the new one to 5, then nothing can move.
    let mut world = World::new(deployment(10, rolling(int(3), int(2)), "app:v1"));
    world.run();
    world.rates.insert("app:v2".into(), 0);
    world.set_image("app:v2");
    let specs = |world: &World| {
        world
            .sizes()
            .into_iter()
            .map(|(image, spec, _)| (image, spec))
            .collect::<Vec<_>>()
    };
    let plan = world.plan();
    world.apply(&plan);
    assert_eq!(
        specs(&world),
        [("app:v1".to_owned(), 8), ("app:v2".to_owned(), 3)]
    );
    let plan = world.plan();
    world.apply(&plan);
    assert_eq!(
        specs(&world),
        [("app:v1".to_owned(), 8), ("app:v2".to_owned(), 5)]
    );
    for _ in 0..3 {
        world.step();
    }
    assert_eq!(
        specs(&world),
        [("app:v1".to_owned(), 8), ("app:v2".to_owned(), 5)]
    );
}

#[test]
fn recreate_waits_for_old_pods_to_go_before_starting_new_ones() {
    let mut world = World::new(deployment(3, recreate(), "app:v1"));
    world.run();
    world.assert_settled_on("app:v1");
    world.set_image("app:v2");

    // The old ReplicaSet goes to zero; nothing is created yet.
    let plan = world.plan();
    assert!(
        matches!(&plan.actions[..], [Action::UpdateReplicaSet(u), Action::UpdateDeploymentStatus(_)] if u.replicas == 0),
        "{plan:#?}"
    );
    world.apply(&plan);
    world.tick();

    // Its pods are terminating: still wait.
    assert_eq!(world.terminating.values().sum::<i32>(), 3);
    let plan = world.plan();
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_))),
        "{plan:#?}"
    );
    world.apply(&plan);
    world.tick();

    // They are gone: the new ReplicaSet is created at full size.
    let plan = world.plan();
    let created = plan.actions.iter().find_map(|a| match a {
        Action::CreateReplicaSet(rs) => Some(rs),
        _ => None,
    });
    assert_eq!(
        created.map(|rs| rs.spec.replicas),
        Some(Some(3)),
        "{plan:#?}"
    );
    world.run();
    world.assert_settled_on("app:v2");
}

#[test]
fn paused_deployment_scales_but_does_not_roll_out_until_resumed() {
    let mut world = World::new(deployment(3, rolling(pct("25%"), pct("25%")), "app:v1"));
    world.run();
    world.edit(|spec| spec.paused = Some(true));
    world.set_image("app:v2");
    world.run();
    assert!(
        world.rss.iter().all(|rs| image_of(rs) == "app:v1"),
        "paused, yet rolled out"
    );
    let status = world.deployment.status.clone().unwrap_or_default();
    assert_eq!(
        status.observed_generation,
        world.deployment.metadata.generation
    );
    assert_eq!(status.updated_replicas, None);
    let progressing = condition(&world.deployment, CONDITION_PROGRESSING).expect("Progressing");
    assert_eq!(
        (
            progressing.status.as_deref(),
            progressing.reason.as_deref(),
            progressing.message.as_deref()
        ),
        (
            Some("Unknown"),
            Some("DeploymentPaused"),
            Some("Deployment is paused")
        )
    );

    // Scaling still works while paused.
    world.edit(|spec| spec.replicas = Some(5));
    world.run();
    assert_eq!(world.rs_by_image("app:v1").spec.replicas, Some(5));

    // Resuming records it and rolls out.
    world.edit(|spec| spec.paused = Some(false));
    let plan = world.plan();
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_))),
        "{plan:#?}"
    );
    world.run();
    world.assert_settled_on("app:v2");
}

#[test]
fn pausing_mid_rollout_stops_progress_and_resuming_continues() {
    let mut world = World::new(deployment(10, rolling(int(3), int(2)), "app:v1"));
    world.run();
    world.rates.insert("app:v2".into(), 1);
    world.set_image("app:v2");
    for _ in 0..3 {
        world.step();
    }
    world.edit(|spec| spec.paused = Some(true));
    world.step();
    let frozen = world.sizes();
    for _ in 0..5 {
        world.step();
    }
    let specs = |sizes: &[(String, i32, i32)]| {
        sizes
            .iter()
            .map(|(i, s, _)| (i.clone(), *s))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        specs(&world.sizes()),
        specs(&frozen),
        "paused, yet progressed"
    );
    let progressing = condition(&world.deployment, CONDITION_PROGRESSING).expect("Progressing");
    assert_eq!(progressing.reason.as_deref(), Some("DeploymentPaused"));

    world.edit(|spec| spec.paused = Some(false));
    let plan = world.plan();
    let status = plan.actions.iter().find_map(|a| match a {
        Action::UpdateDeploymentStatus(status) => Some(status),
        _ => None,
    });
    let resumed = status.and_then(|s| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
    });
    assert_eq!(
        resumed.map(|c| (
            c.status.as_deref(),
            c.reason.as_deref(),
            c.message.as_deref()
        )),
        Some((
            Some("Unknown"),
            Some("DeploymentResumed"),
            Some("Deployment is resumed")
        )),
        "{plan:#?}"
    );
    world.run();
    world.assert_settled_on("app:v2");
}

#[test]
fn scaling_mid_rollout_scales_every_replica_set_in_proportion() {
    let mut world = World::new(deployment(10, rolling(int(3), int(2)), "app:v1"));
    world.run();
    world.rates.insert("app:v2".into(), 1);
    world.set_image("app:v2");
    for _ in 0..3 {
        world.step();
    }
    let before: Vec<i32> = world.sizes().iter().map(|(_, spec, _)| *spec).collect();
    assert_eq!(
        before.iter().sum::<i32>(),
        13,
        "mid-rollout at full surge: {:?}",
        world.sizes()
    );
    assert!(
        before.iter().all(|size| *size > 0),
        "both ReplicaSets active: {:?}",
        world.sizes()
    );

    world.edit(|spec| spec.replicas = Some(20));
    let plan = world.plan();
    world.apply(&plan);
    let after: Vec<i32> = world.sizes().iter().map(|(_, spec, _)| *spec).collect();
    assert_eq!(after.iter().sum::<i32>(), 23);
    for (old, new) in before.iter().zip(&after) {
        let exact = f64::from(*old) * 23.0 / 13.0;
        assert!(
            (f64::from(*new) - exact).abs() <= 1.0,
            "{before:?} -> {after:?}"
        );
    }
    world.run();
    world.assert_settled_on("app:v2");

    // And down, in the middle of the next rollout.
    world.rates.insert("app:v3".into(), 2);
    world.set_image("app:v3");
    for _ in 0..2 {
        world.step();
    }
    world.edit(|spec| spec.replicas = Some(4));
    world.run();
    world.assert_settled_on("app:v3");
}

#[test]
fn rollback_reuses_the_old_replica_set_with_the_next_revision() {
    let mut world = World::new(deployment(3, rolling(pct("25%"), pct("25%")), "app:v1"));
    world.annotate("kubernetes.io/change-cause", "v1");
    world.run();
    world.annotate("kubernetes.io/change-cause", "v2");
    world.set_image("app:v2");
    world.run();
    world.assert_settled_on("app:v2");
    let v1_name = world.rs_by_image("app:v1").metadata.name.clone();

    // kubectl rollout undo: the old template comes back.
    world.undo_to("app:v1");
    let plan = world.plan();
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_))),
        "{plan:#?}"
    );
    let update = plan.actions.iter().find_map(|a| match a {
        Action::UpdateReplicaSet(u) if Some(&u.name) == v1_name.as_ref() => Some(u),
        _ => None,
    });
    let update = update.unwrap_or_else(|| panic!("old ReplicaSet not updated: {plan:#?}"));
    assert_eq!(
        update
            .annotations
            .get(REVISION_ANNOTATION)
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        update
            .annotations
            .get(REVISION_HISTORY_ANNOTATION)
            .map(String::as_str),
        Some("1")
    );
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::UpdateDeploymentAnnotations(a)
            if a.get(REVISION_ANNOTATION).map(String::as_str) == Some("3"))),
        "{plan:#?}"
    );
    world.run();
    world.assert_settled_on("app:v1");
    assert_eq!(world.rs_by_image("app:v1").metadata.name, v1_name);
    assert_eq!(revision(world.rs_by_image("app:v2")), "2");
    // kubectl rollout history: each revision with its change-cause.
    assert_eq!(
        annotation(world.rs_by_image("app:v1"), "kubernetes.io/change-cause"),
        Some("v1")
    );
    assert_eq!(
        annotation(world.rs_by_image("app:v2"), "kubernetes.io/change-cause"),
        Some("v2")
    );

    world.undo_to("app:v2");
    world.run();
    world.assert_settled_on("app:v2");
    assert_eq!(revision(world.rs_by_image("app:v2")), "4");
    assert_eq!(
        annotation(world.rs_by_image("app:v2"), REVISION_HISTORY_ANNOTATION),
        Some("2")
    );

    // A plain edit back to the v1 template is a rollback too.
    world.set_image("app:v1");
    world.run();
    world.assert_settled_on("app:v1");
    assert_eq!(revision(world.rs_by_image("app:v1")), "5");
    assert_eq!(
        annotation(world.rs_by_image("app:v1"), REVISION_HISTORY_ANNOTATION),
        Some("1,3")
    );
    assert_eq!(world.rss.len(), 2);
}

#[test]
fn old_replica_sets_beyond_the_history_limit_are_deleted_oldest_revision_first() {
    let mut world = World::new(deployment(2, rolling(int(1), int(0)), "app:v1"));
    world.edit(|spec| spec.revision_history_limit = Some(2));
    world.run();
    let mut names = vec![world.rs_by_image("app:v1").metadata.name.clone()];
    for version in 2..=5 {
        let image = format!("app:v{version}");
        world.set_image(&image);
        world.run();
        world.assert_settled_on(&image);
        names.push(world.rs_by_image(&image).metadata.name.clone());
    }
    let mut images: Vec<&str> = world.rss.iter().map(image_of).collect();
    images.sort();
    assert_eq!(images, ["app:v3", "app:v4", "app:v5"]);
    let deleted: Vec<Option<String>> = world
        .history
        .iter()
        .flat_map(|plan| &plan.actions)
        .filter_map(|a| match a {
            Action::DeleteReplicaSet {
                name,
                uid,
                resource_version,
            } => {
                assert!(
                    uid.is_some() && resource_version.is_some(),
                    "delete without preconditions"
                );
                Some(Some(name.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(deleted, names[..2]);

    let mut world = World::new(deployment(2, rolling(int(1), int(0)), "app:v1"));
    world.edit(|spec| spec.revision_history_limit = Some(0));
    world.run();
    world.set_image("app:v2");
    world.run();
    world.assert_settled_on("app:v2");
    assert_eq!(world.rss.len(), 1);
}

#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline_and_recovers() {
    let mut world = World::new(deployment(4, rolling(int(1), int(0)), "app:v1"));
    world.edit(|spec| spec.progress_deadline_seconds = Some(30));
    world.run();
    world.rates.insert("app:v2".into(), 0);
    world.set_image("app:v2");
    let v2_name = pod_template_hash(&template("app:v2"), None);

    let mut timed_out_at = None;
    for _ in 0..20 {
        let progressing = condition(&world.deployment, CONDITION_PROGRESSING).cloned();
        if progressing.as_ref().and_then(|c| c.reason.as_deref())
            == Some("ProgressDeadlineExceeded")
        {
            break;
        }
        let plan = world.plan();
        if let Some(last_progress) = progressing
            .as_ref()
            .and_then(|c| c.last_update_time.clone())
            && plan.actions.is_empty()
        {
            // Waiting: look again one second after the deadline.
            let due = last_progress.0 + jiff::SignedDuration::from_secs(31);
            let after = plan
                .requeue_after
                .expect("a requeue while the deadline runs");
            assert_eq!(
                world.now + jiff::SignedDuration::try_from(after).expect("small"),
                due
            );
        }
        timed_out_at = Some(world.now);
        world.step();
    }
    let timed_out_at = Time(timed_out_at.expect("stepped"));
    let progressing = condition(&world.deployment, CONDITION_PROGRESSING)
        .cloned()
        .expect("Progressing");
    assert_eq!(
        progressing,
        DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some(format!(
                "ReplicaSet \"web-{v2_name}\" has timed out progressing."
            )),
            last_update_time: Some(timed_out_at.clone()),
            last_transition_time: Some(timed_out_at),
        }
    );
    let plan = world.plan();
    assert!(
        plan.actions.is_empty() && plan.requeue_after.is_none(),
        "{plan:#?}"
    );
    world.run();

    // Pods start to come up: progress again, then complete.
    world.rates.insert("app:v2".into(), 1);
    world.run();
    world.assert_settled_on("app:v2");
}

#[test]
fn deleted_deployment_only_syncs_its_status() {
    let mut world = World::new(deployment(3, rolling(pct("25%"), pct("25%")), "app:v1"));
    world.run();
    world.deployment.metadata.deletion_timestamp = Some(Time(world.now));
    world.set_image("app:v2");
    let plan = world.plan();
    let [Action::UpdateDeploymentStatus(status)] = &plan.actions[..] else {
        panic!("{plan:#?}")
    };
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.updated_replicas, None);
}

#[test]
fn restart_rolls_out_a_new_replica_set() {
    // kubectl rollout restart stamps a template annotation.
    let mut world = World::new(deployment(3, rolling(pct("25%"), pct("25%")), "app:v1"));
    world.run();
    let first = world.rs_by_image("app:v1").metadata.name.clone();
    world.edit(|spec| {
        let meta = spec.template.metadata.get_or_insert_default();
        meta.annotations.get_or_insert_default().insert(
            "kubectl.kubernetes.io/restartedAt".into(),
            "2026-01-01T00:00:00Z".into(),
        );
    });
    world.run();
    let active: Vec<_> = world
        .rss
        .iter()
        .filter(|rs| rs.spec.replicas != Some(0))
        .collect();
    assert_eq!(active.len(), 1);
    assert_ne!(active[0].metadata.name, first);
    assert_eq!(revision(active[0]), "2");
}
