//! Deployments and ReplicaSets: replicas, the selector and whether it
//! selects the template, the template as a pod spec, the rollout strategy,
//! and the selector's immutability.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::field::{self, BadValue, FieldPath, Json, Rendered};
use super::meta::{
    FIELD_IMMUTABLE, IS_NEGATIVE, NameRule, validate_label_selector, validate_object_meta,
    validate_object_meta_update,
};
use super::pod::validate_pod_template;
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;
use crate::apiserver::selector::LabelSelector;

/// Kubernetes' default `maxSurge` and `maxUnavailable`.
const DEFAULT_ROLLING: &str = "25%";
/// Kubernetes' default `progressDeadlineSeconds`.
const DEFAULT_PROGRESS_DEADLINE: i32 = 600;

impl Validate for Deployment {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, true, NameRule::Dns1123Subdomain);
        causes.extend(validate_deployment_spec(
            &self.spec,
            &FieldPath::new("spec"),
        ));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        causes.extend(self.validate_create());
        causes.extend(selector_immutable(&self.spec.selector, &old.spec.selector));
        dedup(causes)
    }
}

impl Validate for ReplicaSet {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, true, NameRule::Dns1123Subdomain);
        causes.extend(validate_replica_set_spec(
            &self.spec,
            &FieldPath::new("spec"),
        ));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        causes.extend(self.validate_create());
        causes.extend(selector_immutable(&self.spec.selector, &old.spec.selector));
        dedup(causes)
    }
}

fn validate_deployment_spec(spec: &DeploymentSpec, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(replicas) = spec.replicas.filter(|r| *r < 0) {
        causes.push(field::invalid(
            &path.child("replicas"),
            &replicas,
            IS_NEGATIVE,
        ));
    }
    causes.extend(validate_selector_and_template(
        &spec.selector,
        &spec.template,
        path,
    ));
    causes.extend(validate_strategy(spec, &path.child("strategy")));
    let min_ready = spec.min_ready_seconds.unwrap_or_default();
    if min_ready < 0 {
        causes.push(field::invalid(
            &path.child("minReadySeconds"),
            &min_ready,
            IS_NEGATIVE,
        ));
    }
    if let Some(limit) = spec.revision_history_limit.filter(|l| *l < 0) {
        causes.push(field::invalid(
            &path.child("revisionHistoryLimit"),
            &limit,
            IS_NEGATIVE,
        ));
    }
    let progress = spec
        .progress_deadline_seconds
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
    if progress < 0 {
        causes.push(field::invalid(
            &path.child("progressDeadlineSeconds"),
            &progress,
            IS_NEGATIVE,
        ));
    }
    if progress <= min_ready {
        causes.push(field::invalid(
            &path.child("progressDeadlineSeconds"),
            &progress,
            "must be greater than minReadySeconds",
        ));
    }
    causes
}

fn validate_replica_set_spec(spec: &ReplicaSetSpec, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(replicas) = spec.replicas.filter(|r| *r < 0) {
        causes.push(field::invalid(
            &path.child("replicas"),
            &replicas,
            IS_NEGATIVE,
        ));
    }
    if let Some(min_ready) = spec.min_ready_seconds.filter(|m| *m < 0) {
        causes.push(field::invalid(
            &path.child("minReadySeconds"),
            &min_ready,
            IS_NEGATIVE,
        ));
    }
    let default_template = PodTemplateSpec::default();
    causes.extend(validate_selector_and_template(
        &spec.selector,
        spec.template.as_ref().unwrap_or(&default_template),
        path,
    ));
    causes
}

/// The selector is required (an empty one reads as absent, since the typed
/// object cannot tell them apart) and valid; it must select the template's
/// labels; the template is a pod template whose pods restart `Always` and
/// have no active deadline.
fn validate_selector_and_template(
    selector: &MetaLabelSelector,
    template: &PodTemplateSpec,
    path: &FieldPath,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let selector_path = path.child("selector");
    let template_path = path.child("template");
    let is_empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    let parsed = if is_empty {
        causes.push(field::required(&selector_path, ""));
        Ok(LabelSelector::nothing())
    } else {
        causes.extend(validate_label_selector(selector, &selector_path));
        LabelSelector::from_k8s(selector)
    };
    let Ok(parsed) = parsed else {
        causes.push(field::invalid(
            &selector_path,
            &Json(selector),
            "invalid label selector",
        ));
        return causes;
    };
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    if !parsed.is_empty() && !parsed.matches(&labels.clone().unwrap_or_default()) {
        causes.push(field::invalid(
            &template_path.child("metadata").child("labels"),
            &Json(&labels),
            "`selector` does not match template `labels`",
        ));
    }
    causes.extend(validate_pod_template(template, &template_path));
    if let Some(spec) = &template.spec {
        if let Some(policy) = spec
            .restart_policy
            .as_deref()
            .filter(|p| !p.is_empty() && *p != "Always")
        {
            causes.push(field::not_supported(
                &template_path.child("spec").child("restartPolicy"),
                &policy,
                &["Always"],
            ));
        }
        if spec.active_deadline_seconds.is_some() {
            causes.push(field::forbidden(
                &template_path.child("spec").child("activeDeadlineSeconds"),
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            ));
        }
    }
    causes
}

/// `{"Type":...,"RollingUpdate":...}`, how Kubernetes renders the strategy
/// it rejects (its internal type has no JSON tags).
fn render_strategy(
    strategy_type: &str,
    max_unavailable: Option<&IntOrString>,
    max_surge: Option<&IntOrString>,
    rolling: bool,
) -> Rendered {
    let json = |v: Option<&IntOrString>| v.map_or_else(|| "null".to_owned(), |v| Json(v).render());
    let rolling = if rolling {
        format!(
            "{{\"MaxUnavailable\":{},\"MaxSurge\":{}}}",
            json(max_unavailable),
            json(max_surge)
        )
    } else {
        "null".to_owned()
    };
    Rendered(format!(
        "{{\"Type\":{},\"RollingUpdate\":{rolling}}}",
        field::go_quote(strategy_type)
    ))
}

fn validate_strategy(spec: &DeploymentSpec, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(strategy) = &spec.strategy else {
        return causes;
    };
    let rolling = strategy.rolling_update.as_ref();
    let max_unavailable = rolling.and_then(|r| r.max_unavailable.as_ref());
    let max_surge = rolling.and_then(|r| r.max_surge.as_ref());
    match strategy
        .type_
        .as_deref()
        .filter(|t| !t.is_empty())
        .unwrap_or("RollingUpdate")
    {
        "Recreate" => {
            if rolling.is_some() {
                causes.push(field::forbidden(
                    &path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            let default = IntOrString::String(DEFAULT_ROLLING.to_owned());
            let path = path.child("rollingUpdate");
            let max_unavailable = max_unavailable.unwrap_or(&default);
            let max_surge = max_surge.unwrap_or(&default);
            causes.extend(positive_int_or_percent(
                max_unavailable,
                &path.child("maxUnavailable"),
            ));
            causes.extend(positive_int_or_percent(max_surge, &path.child("maxSurge")));
            if int_or_percent_value(max_unavailable) == 0 && int_or_percent_value(max_surge) == 0 {
                causes.push(field::invalid(
                    &path.child("maxUnavailable"),
                    &Json(max_unavailable),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            if percent_value(max_unavailable).is_some_and(|p| p > 100) {
                causes.push(field::invalid(
                    &path.child("maxUnavailable"),
                    &Json(max_unavailable),
                    "must not be greater than 100%",
                ));
            }
        }
        other => causes.push(field::not_supported(
            path,
            &render_strategy(other, max_unavailable, max_surge, rolling.is_some()),
            &["Recreate", "RollingUpdate"],
        )),
    }
    causes
}

fn positive_int_or_percent(value: &IntOrString, path: &FieldPath) -> Vec<Cause> {
    match value {
        IntOrString::String(text) => rules::percent(text)
            .into_iter()
            .map(|m| field::invalid(path, &Json(value), &m))
            .collect(),
        IntOrString::Int(number) if *number < 0 => {
            vec![field::invalid(path, &i64::from(*number), IS_NEGATIVE)]
        }
        IntOrString::Int(_) => Vec::new(),
    }
}

fn percent_value(value: &IntOrString) -> Option<i64> {
    match value {
        IntOrString::String(text) if rules::percent(text).is_empty() => {
            text.trim_end_matches('%').parse().ok()
        }
        _ => None,
    }
}

/// Kubernetes' `getIntOrPercentValue`: a percentage's number, an int, or a
/// numeric string; anything else counts as 0.
fn int_or_percent_value(value: &IntOrString) -> i64 {
    match value {
        IntOrString::Int(number) => i64::from(*number),
        IntOrString::String(text) => {
            percent_value(value).unwrap_or_else(|| text.parse().unwrap_or(0))
        }
    }
}

/// `spec.selector` may not change once set.
fn selector_immutable(new: &MetaLabelSelector, old: &MetaLabelSelector) -> Vec<Cause> {
    let normalize = |s: &MetaLabelSelector| {
        (
            s.match_labels.clone().unwrap_or_default(),
            s.match_expressions
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.key, e.operator, e.values.unwrap_or_default()))
                .collect::<Vec<_>>(),
        )
    };
    if normalize(new) == normalize(old) {
        Vec::new()
    } else {
        vec![field::invalid(
            &FieldPath::new("spec").child("selector"),
            &Json(new),
            FIELD_IMMUTABLE,
        )]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::error::CauseType::{self, *};
    use crate::apiserver::validation::testing::summary;

    fn deployment(spec: Value) -> Deployment {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    fn spec() -> Value {
        json!({
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
        })
    }

    fn with(patch: Value) -> Value {
        let mut spec = spec();
        json_patch::merge(&mut spec, &patch);
        spec
    }

    /// A deployment with `spec` is rejected for exactly `expected`.
    fn check(spec: Value, expected: &[(CauseType, &str)]) {
        let causes = deployment(spec.clone()).validate_create();
        assert_eq!(summary(&causes), expected, "{spec}\n{causes:#?}");
    }

    #[test]
    fn deployments() {
        check(spec(), &[]);
        check(
            with(
                json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "50%"}},
                        "revisionHistoryLimit": 0, "minReadySeconds": 5, "progressDeadlineSeconds": 60,
                        "selector": {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}}),
            ),
            &[],
        );
        check(with(json!({"strategy": {"type": "Recreate"}})), &[]);
        check(with(json!({"replicas": -1})), &[(Invalid, "spec.replicas")]);
        check(
            with(json!({"selector": null})),
            &[
                (Required, "spec.selector"),
                (Invalid, "spec.template.metadata.labels"),
            ],
        );
        check(
            with(json!({"selector": {"matchLabels": {"app": "db"}}})),
            &[(Invalid, "spec.template.metadata.labels")],
        );
        check(
            with(json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}})),
            &[
                (Required, "spec.selector.matchExpressions[0].values"),
                (Invalid, "spec.selector"),
            ],
        );
        check(
            with(json!({"template": {"metadata": {"labels": {"app": "web", "bad": "-x"}}}})),
            &[(Invalid, "spec.template.labels")],
        );
        check(
            with(
                json!({"template": {"spec": {"containers": [{"name": "web"}], "restartPolicy": "Never", "activeDeadlineSeconds": 5}}}),
            ),
            &[
                (Required, "spec.template.spec.containers[0].image"),
                (NotSupported, "spec.template.spec.restartPolicy"),
                (Forbidden, "spec.template.spec.activeDeadlineSeconds"),
            ],
        );
        check(
            with(json!({"strategy": {"type": "BlueGreen"}})),
            &[(NotSupported, "spec.strategy")],
        );
        check(
            with(json!({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}})),
            &[(Forbidden, "spec.strategy.rollingUpdate")],
        );
        check(
            with(json!({"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}})),
            &[(Invalid, "spec.strategy.rollingUpdate.maxUnavailable")],
        );
        check(
            with(
                json!({"strategy": {"rollingUpdate": {"maxSurge": -1, "maxUnavailable": "half"}}}),
            ),
            &[
                (Invalid, "spec.strategy.rollingUpdate.maxUnavailable"),
                (Invalid, "spec.strategy.rollingUpdate.maxSurge"),
            ],
        );
        check(
            with(json!({"strategy": {"rollingUpdate": {"maxUnavailable": "150%"}}})),
            &[(Invalid, "spec.strategy.rollingUpdate.maxUnavailable")],
        );
        check(
            with(json!({"revisionHistoryLimit": -1})),
            &[(Invalid, "spec.revisionHistoryLimit")],
        );
        check(
            with(json!({"minReadySeconds": 10, "progressDeadlineSeconds": 10})),
            &[(Invalid, "spec.progressDeadlineSeconds")],
        );
        check(
            with(json!({"minReadySeconds": 700})),
            &[(Invalid, "spec.progressDeadlineSeconds")],
        );
    }

    #[test]
    fn messages_match_kubernetes() {
        let causes =
            deployment(with(json!({"selector": {"matchLabels": {"app": "db"}}}))).validate_create();
        assert_eq!(
            causes[0].message,
            "Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"
        );
        let causes = deployment(with(json!({"strategy": {"type": "BlueGreen"}}))).validate_create();
        assert_eq!(
            causes[0].message,
            "Unsupported value: {\"Type\":\"BlueGreen\",\"RollingUpdate\":null}: supported values: \"Recreate\", \"RollingUpdate\""
        );
        let causes = deployment(with(
            json!({"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
        ))
        .validate_create();
        assert_eq!(
            causes[0].message,
            "Invalid value: 0: may not be 0 when `maxSurge` is 0"
        );
        let causes = deployment(with(
            json!({"strategy": {"rollingUpdate": {"maxUnavailable": "half"}}}),
        ))
        .validate_create();
        assert_eq!(
            causes[0].message,
            "Invalid value: \"half\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
        );
    }

    #[test]
    fn deployment_updates() {
        let old = deployment(spec());
        assert_eq!(
            summary(&deployment(with(json!({"replicas": 5}))).validate_update(&old)),
            []
        );
        let changed = deployment(with(json!({
            "selector": {"matchLabels": {"app": "web", "v": "2"}},
            "template": {"metadata": {"labels": {"app": "web", "v": "2"}}}
        })));
        let causes = changed.validate_update(&old);
        assert_eq!(summary(&causes), [(Invalid, "spec.selector")]);
        assert_eq!(
            causes[0].message,
            "Invalid value: {\"matchLabels\":{\"app\":\"web\",\"v\":\"2\"}}: field is immutable"
        );
        let renamed: Deployment = serde_json::from_value(
            json!({"metadata": {"name": "web2", "namespace": "default"}, "spec": spec()}),
        )
        .unwrap();
        assert_eq!(
            summary(&renamed.validate_update(&old)),
            [(Invalid, "metadata.name")]
        );
    }

    fn replica_set(spec: Value) -> ReplicaSet {
        serde_json::from_value(
            json!({"metadata": {"name": "web-1", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn replica_sets() {
        let check = |spec: Value, expected: &[(CauseType, &str)]| {
            let causes = replica_set(spec.clone()).validate_create();
            assert_eq!(summary(&causes), expected, "{spec}\n{causes:#?}");
        };
        check(spec(), &[]);
        check(with(json!({"replicas": -2})), &[(Invalid, "spec.replicas")]);
        check(
            with(json!({"minReadySeconds": -1})),
            &[(Invalid, "spec.minReadySeconds")],
        );
        check(
            with(json!({"selector": {"matchLabels": {"app": "db"}}})),
            &[(Invalid, "spec.template.metadata.labels")],
        );
        check(
            json!({"selector": {"matchLabels": {"app": "web"}}}),
            &[
                (Invalid, "spec.template.metadata.labels"),
                (Required, "spec.template.spec.containers"),
            ],
        );
        check(
            with(
                json!({"template": {"spec": {"containers": [{"name": "web", "image": "x", "ports": [{"containerPort": 0}]}]}}}),
            ),
            &[(
                Required,
                "spec.template.spec.containers[0].ports[0].containerPort",
            )],
        );

        let old = replica_set(spec());
        let moved = replica_set(with(
            json!({"selector": {"matchLabels": {"app": "web", "x": "y"}}, "template": {"metadata": {"labels": {"x": "y"}}}}),
        ));
        assert_eq!(
            summary(&moved.validate_update(&old)),
            [(Invalid, "spec.selector")]
        );
        assert_eq!(
            summary(&replica_set(with(json!({"replicas": 0}))).validate_update(&old)),
            []
        );
    }
}
