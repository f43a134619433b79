//! The helpers on their own: fenceposts, the resolved spec, revision and
//! annotation bookkeeping, template equality, the hash, conditions and
//! status comparison.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::util::{self, Settings};
use super::super::{
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, pod_template_hash,
};
use super::sim::{at, deployment, int, pct, recreate, replica_set, rolling, template};

#[test]
fn fenceposts_round_surge_up_and_unavailability_down() {
    // The examples in Kubernetes' ResolveFenceposts comment, and more.
    let cases = [
        (pct("0%"), pct("1%"), 2, (0, 1)),
        (pct("0%"), pct("1%"), 1, (0, 1)),
        (pct("1%"), pct("25%"), 2, (1, 0)),
        (pct("1%"), pct("25%"), 1, (1, 0)),
        (pct("1%"), pct("0%"), 2, (1, 0)),
        (pct("25%"), pct("25%"), 10, (3, 2)),
        (pct("50%"), pct("50%"), 5, (3, 2)),
        (int(0), int(0), 5, (0, 1)),
        (int(3), int(2), 10, (3, 2)),
        (pct("100%"), pct("0%"), 7, (7, 0)),
    ];
    for (surge, unavailable, desired, expect) in cases {
        assert_eq!(
            util::resolve_fenceposts(&surge, &unavailable, desired),
            Ok(expect),
            "{surge:?} {unavailable:?} of {desired}"
        );
    }
}

#[test]
fn settings_default_and_clamp_like_kubernetes() {
    let settings = |d| Settings::from_deployment(&d).expect("valid");
    let s = settings(deployment(3, rolling(int(1), int(5)), "app"));
    assert_eq!(
        (s.max_surge, s.max_unavailable),
        (1, 3),
        "maxUnavailable is at most replicas"
    );
    let s = settings(deployment(0, rolling(int(1), int(1)), "app"));
    assert_eq!(
        (s.max_surge, s.max_unavailable),
        (1, 0),
        "no unavailability of nothing"
    );
    let s = settings(deployment(4, recreate(), "app"));
    assert_eq!((s.max_surge, s.max_unavailable), (0, 0));

    let mut bare = deployment(4, recreate(), "app");
    bare.spec.strategy = None;
    bare.spec.replicas = None;
    bare.spec.revision_history_limit = None;
    bare.spec.progress_deadline_seconds = None;
    let s = settings(bare);
    assert_eq!(
        (
            s.replicas,
            s.strategy,
            s.max_surge,
            s.max_unavailable,
            s.revision_history_limit,
            s.progress_deadline_seconds
        ),
        (1, util::Strategy::RollingUpdate, 1, 0, Some(10), Some(600))
    );
}

#[test]
fn new_replica_set_annotations_track_revisions_like_kubernetes() {
    let mut d = deployment(3, rolling(int(1), int(0)), "app:v1");
    d.metadata.annotations = Some(
        [
            (
                "kubernetes.io/change-cause".to_owned(),
                "deploy v1".to_owned(),
            ),
            (
                "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                "{}".to_owned(),
            ),
            (REVISION_ANNOTATION.to_owned(), "7".to_owned()),
            ("team".to_owned(), "web".to_owned()),
        ]
        .into(),
    );
    let settings = Settings::from_deployment(&d).expect("valid");
    let annotations = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    // (existing annotations, new revision, exists, history limit, changed, expected annotations)
    let copied = [("kubernetes.io/change-cause", "deploy v1"), ("team", "web")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut all = copied.to_vec();
        all.extend_from_slice(extra);
        annotations(&all)
    };
    let cases = [
        // Being created: revision and the replicas annotations.
        (
            annotations(&[]),
            1,
            false,
            2000,
            true,
            with(&[
                (REVISION_ANNOTATION, "1"),
                (DESIRED_REPLICAS_ANNOTATION, "3"),
                (MAX_REPLICAS_ANNOTATION, "4"),
            ]),
        ),
        // Already current: nothing changes.
        (
            with(&[(REVISION_ANNOTATION, "4")]),
            4,
            true,
            2000,
            false,
            with(&[(REVISION_ANNOTATION, "4")]),
        ),
        // Ahead of max(old)+1 (old ones deleted): keeps its revision.
        (
            with(&[(REVISION_ANNOTATION, "9")]),
            4,
            true,
            2000,
            false,
            with(&[(REVISION_ANNOTATION, "9")]),
        ),
        // Rolled back to: next revision, the old one into the history.
        (
            with(&[(REVISION_ANNOTATION, "1")]),
            3,
            true,
            2000,
            true,
            with(&[
                (REVISION_ANNOTATION, "3"),
                (REVISION_HISTORY_ANNOTATION, "1"),
            ]),
        ),
        (
            with(&[
                (REVISION_ANNOTATION, "4"),
                (REVISION_HISTORY_ANNOTATION, "1,3"),
            ]),
            6,
            true,
            2000,
            true,
            with(&[
                (REVISION_ANNOTATION, "6"),
                (REVISION_HISTORY_ANNOTATION, "1,3,4"),
            ]),
        ),
        // The history drops its oldest entries to stay under the limit.
        (
            with(&[
                (REVISION_ANNOTATION, "40"),
                (REVISION_HISTORY_ANNOTATION, "10,20,30"),
            ]),
            50,
            true,
            8,
            true,
            with(&[
                (REVISION_ANNOTATION, "50"),
                (REVISION_HISTORY_ANNOTATION, "20,30,40"),
            ]),
        ),
        // A garbled revision: Kubernetes gives up (after copying).
        (
            annotations(&[(REVISION_ANNOTATION, "x")]),
            2,
            true,
            2000,
            false,
            with(&[(REVISION_ANNOTATION, "x")]),
        ),
        // The ReplicaSet's own annotations stay.
        (
            annotations(&[("owner", "rs"), (REVISION_ANNOTATION, "2")]),
            2,
            true,
            2000,
            true,
            with(&[("owner", "rs"), (REVISION_ANNOTATION, "2")]),
        ),
    ];
    for (existing, revision, exists, limit, changed, expect) in cases {
        let mut rs = replica_set("web-1", "app:v1", 3, 3, 0);
        rs.metadata.annotations = Some(existing.clone());
        let got =
            util::set_new_replica_set_annotations(&d, &settings, &mut rs, revision, exists, limit);
        assert_eq!(
            (got, rs.metadata.annotations.unwrap_or_default()),
            (changed, expect),
            "{existing:?} -> {revision}"
        );
    }
}

#[test]
fn templates_compare_without_the_hash_label_and_empty_values() {
    let base = template("app:v1");
    let mut hashed = base.clone();
    hashed
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .expect("labels")
        .insert(POD_TEMPLATE_HASH_LABEL.into(), "x".into());
    assert!(util::equal_ignore_hash(&base, &hashed));

    let mut empty_annotations = base.clone();
    empty_annotations
        .metadata
        .as_mut()
        .expect("metadata")
        .annotations = Some(BTreeMap::new());
    assert!(
        util::equal_ignore_hash(&base, &empty_annotations),
        "nil and empty maps are equal"
    );

    let mut only_hash = template("app:v1");
    only_hash.metadata = Some(ObjectMeta {
        labels: Some([(POD_TEMPLATE_HASH_LABEL.to_owned(), "y".to_owned())].into()),
        ..ObjectMeta::default()
    });
    let mut no_labels = template("app:v1");
    no_labels.metadata = None;
    assert!(util::equal_ignore_hash(&only_hash, &no_labels));

    assert!(!util::equal_ignore_hash(&base, &template("app:v2")));
    let mut relabelled = base.clone();
    relabelled
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .expect("labels")
        .insert("tier".into(), "web".into());
    assert!(!util::equal_ignore_hash(&base, &relabelled));
}

#[test]
fn pod_template_hash_is_stable_and_safe() {
    let hash = pod_template_hash(&template("app:v1"), None);
    // Pinned: a change here renames every ReplicaSet skiff ever made.
    assert_eq!(hash, "6c586d8d9d");
    assert_eq!(pod_template_hash(&template("app:v1"), None), hash);
    assert!(
        hash.chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{hash}"
    );
    assert!((1..=10).contains(&hash.len()));

    let others = [
        pod_template_hash(&template("app:v2"), None),
        pod_template_hash(&template("app:v1"), Some(0)),
        pod_template_hash(&template("app:v1"), Some(1)),
    ];
    for other in &others {
        assert_ne!(other, &hash);
    }
    assert_ne!(others[1], others[2]);
}

#[test]
fn conditions_change_like_kubernetes_set_deployment_condition() {
    let condition = |type_: &str, status: &str, reason: &str, second: i64| {
        let mut c = util::new_condition(
            type_,
            status,
            reason,
            format!("{reason} message"),
            &at(second),
        );
        c.message = Some(format!("{reason} at {second}"));
        c
    };
    let mut status = DeploymentStatus {
        conditions: Some(vec![
            condition("Progressing", "True", "A", 0),
            condition("Available", "True", "X", 0),
        ]),
        ..DeploymentStatus::default()
    };

    // Same status and reason: untouched (times and message kept).
    util::set_condition(&mut status, condition("Progressing", "True", "A", 10));
    assert_eq!(
        status.conditions.as_ref().expect("conditions")[0],
        condition("Progressing", "True", "A", 0)
    );

    // New reason, same status: lastTransitionTime kept, moved to the end.
    util::set_condition(&mut status, condition("Progressing", "True", "B", 20));
    let conditions = status.conditions.clone().expect("conditions");
    assert_eq!(conditions[0].type_.as_deref(), Some("Available"));
    assert_eq!(
        conditions[1],
        DeploymentCondition {
            last_transition_time: Some(at(0)),
            ..condition("Progressing", "True", "B", 20)
        }
    );

    // New status: both times new.
    util::set_condition(&mut status, condition("Progressing", "False", "C", 30));
    assert_eq!(
        status.conditions.as_ref().expect("conditions")[1],
        condition("Progressing", "False", "C", 30)
    );

    util::remove_condition(&mut status, "Progressing");
    assert_eq!(status.conditions.as_ref().map(Vec::len), Some(1));
}

#[test]
fn statuses_compare_as_the_wire_form() {
    let zeroes = DeploymentStatus {
        observed_generation: Some(0),
        replicas: Some(0),
        updated_replicas: Some(0),
        ready_replicas: Some(0),
        available_replicas: Some(0),
        unavailable_replicas: Some(0),
        conditions: Some(Vec::new()),
        ..DeploymentStatus::default()
    };
    assert!(util::status_equal(&zeroes, &DeploymentStatus::default()));
    assert_eq!(util::normalize_status(&zeroes), DeploymentStatus::default());
    // Pointers in Go: 0 is not unset.
    let counted = DeploymentStatus {
        collision_count: Some(0),
        ..DeploymentStatus::default()
    };
    assert!(!util::status_equal(&counted, &DeploymentStatus::default()));
    let differs = DeploymentStatus {
        replicas: Some(1),
        ..DeploymentStatus::default()
    };
    assert!(!util::status_equal(&differs, &zeroes));
}

#[test]
fn new_replica_set_growth_respects_surge_and_strategy() {
    let settings = |d| Settings::from_deployment(&d).expect("valid");
    let rolling_settings = settings(deployment(10, rolling(int(2), int(0)), "app"));
    // (all replicas, new replicas, expected)
    for (all, new, expect) in [(10, 0, 2), (5, 0, 7), (12, 2, 2), (8, 0, 4), (11, 9, 10)] {
        assert_eq!(
            util::new_rs_new_replicas(&rolling_settings, all, new),
            expect,
            "{all} {new}"
        );
    }
    let recreate_settings = settings(deployment(10, recreate(), "app"));
    assert_eq!(util::new_rs_new_replicas(&recreate_settings, 10, 0), 10);
}
