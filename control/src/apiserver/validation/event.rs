//! Events (core/v1): the checks Kubernetes applies to them ("legacy"
//! validation: the namespace agrees with the involved object's, and events
//! with an `eventTime` carry their reporter, action and reason within the
//! length limits), plus a present involved object.

use k8s_openapi::api::core::v1::{Event, ObjectReference};

use super::field::{self, FieldPath};
use super::meta::{NameRule, validate_object_meta, validate_object_meta_update};
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

impl Validate for Event {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, true, NameRule::Dns1123Subdomain);
        if self.involved_object == ObjectReference::default() {
            causes.push(field::required(&FieldPath::new("involvedObject"), ""));
        }
        causes.extend(legacy_validate_event(self));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        causes.extend(self.validate_create());
        dedup(causes)
    }
}

/// Kubernetes' `legacyValidateEvent`.
fn legacy_validate_event(event: &Event) -> Vec<Cause> {
    let mut causes = Vec::new();
    let namespace = event.metadata.namespace.as_deref().unwrap_or_default();
    let involved_namespace = event
        .involved_object
        .namespace
        .as_deref()
        .unwrap_or_default();
    let namespace_path = FieldPath::new("involvedObject").child("namespace");
    let mismatch = "does not match event.namespace";
    if event.event_time.is_none() {
        let agrees = if involved_namespace.is_empty() {
            matches!(namespace, "" | "default")
        } else {
            namespace == involved_namespace
        };
        if !agrees {
            causes.push(field::invalid(
                &namespace_path,
                &involved_namespace,
                mismatch,
            ));
        }
        return causes;
    }
    if involved_namespace.is_empty() && !matches!(namespace, "default" | "kube-system") {
        causes.push(field::invalid(
            &namespace_path,
            &involved_namespace,
            mismatch,
        ));
    }
    let controller = event.reporting_component.as_deref().unwrap_or_default();
    if controller.is_empty() {
        causes.push(field::required(&FieldPath::new("reportingController"), ""));
    }
    causes.extend(field::invalid_each(
        &FieldPath::new("reportingController"),
        controller,
        rules::qualified_name(controller),
    ));
    for (name, value, limit) in [
        (
            "reportingInstance",
            event.reporting_instance.as_deref(),
            REPORTING_INSTANCE_LIMIT,
        ),
        ("action", event.action.as_deref(), ACTION_LIMIT),
        ("reason", event.reason.as_deref(), REASON_LIMIT),
    ] {
        let value = value.unwrap_or_default();
        if value.is_empty() {
            causes.push(field::required(&FieldPath::new(name), ""));
        }
        if value.len() > limit {
            causes.push(field::invalid(
                &FieldPath::new(name),
                &"",
                &format!("can have at most {limit} characters"),
            ));
        }
    }
    if event.message.as_deref().unwrap_or_default().len() > NOTE_LIMIT {
        causes.push(field::invalid(
            &FieldPath::new("message"),
            &"",
            &format!("can have at most {NOTE_LIMIT} characters"),
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::error::CauseType::{self, *};
    use crate::apiserver::validation::testing::summary;

    fn event(extra: Value) -> Event {
        let mut value = json!({
            "metadata": {"name": "web-0.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default"},
            "reason": "Started", "message": "Started container web", "type": "Normal"
        });
        json_patch::merge(&mut value, &extra);
        serde_json::from_value(value).unwrap()
    }

    fn check(extra: Value, expected: &[(CauseType, &str)]) {
        assert_eq!(
            summary(&event(extra.clone()).validate_create()),
            expected,
            "{extra}"
        );
    }

    #[test]
    fn events() {
        check(json!({}), &[]);
        check(
            json!({"involvedObject": {"kind": "Node", "name": "n1", "namespace": null}}),
            &[],
        );
        check(json!({"message": "x".repeat(2000)}), &[]);
        check(
            json!({"eventTime": "2025-01-01T00:00:00.000000Z", "reportingComponent": "skiff.dev/kubelet", "reportingInstance": "n1", "action": "Pull"}),
            &[],
        );
        check(
            json!({"involvedObject": null}),
            &[(Required, "involvedObject")],
        );
        check(
            json!({"involvedObject": {"namespace": "other"}}),
            &[(Invalid, "involvedObject.namespace")],
        );
        check(
            json!({"metadata": {"name": null}}),
            &[(Required, "metadata.name")],
        );
        check(
            json!({"eventTime": "2025-01-01T00:00:00.000000Z", "reason": "x".repeat(200), "message": "x".repeat(2000)}),
            &[
                (Required, "reportingController"),
                (Invalid, "reportingController"),
                (Invalid, "reportingController"),
                (Required, "reportingInstance"),
                (Required, "action"),
                (Invalid, "reason"),
                (Invalid, "message"),
            ],
        );
    }
}
