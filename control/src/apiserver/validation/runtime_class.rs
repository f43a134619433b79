//! RuntimeClasses: a DNS-label handler that never changes, pod overhead
//! quantities, and the scheduling constraints pods of the class get.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::api::node::v1::RuntimeClass;

use super::field::{self, FieldPath, Json};
use super::meta::{
    FIELD_IMMUTABLE, NameRule, validate_labels, validate_object_meta, validate_object_meta_update,
};
use super::pod::validate_tolerations;
use super::resources::validate_resource_requirements;
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;

impl Validate for RuntimeClass {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, false, NameRule::Dns1123Subdomain);
        let handler_path = FieldPath::new("handler");
        if self.handler.is_empty() {
            causes.push(field::required(&handler_path, ""));
        } else {
            causes.extend(field::invalid_each(
                &handler_path,
                &self.handler,
                rules::dns1123_label(&self.handler),
            ));
        }
        if let Some(overhead) = &self.overhead {
            let requirements = ResourceRequirements {
                limits: overhead.pod_fixed.clone(),
                ..Default::default()
            };
            causes.extend(validate_resource_requirements(
                &requirements,
                &FieldPath::new("overhead"),
            ));
        }
        if let Some(scheduling) = &self.scheduling {
            let path = FieldPath::new("scheduling");
            causes.extend(validate_labels(
                scheduling.node_selector.as_ref(),
                &path.child("nodeSelector"),
            ));
            let tolerations = scheduling.tolerations.as_deref().unwrap_or_default();
            causes.extend(validate_tolerations(
                tolerations,
                &path.child("tolerations"),
            ));
            let mut seen = BTreeSet::new();
            for (i, toleration) in tolerations.iter().enumerate() {
                let key = (
                    &toleration.key,
                    &toleration.operator,
                    &toleration.value,
                    &toleration.effect,
                );
                if !seen.insert(key) {
                    causes.push(field::duplicate(
                        &path.child("tolerations").index(i),
                        &Json(toleration),
                    ));
                }
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        causes.extend(self.validate_create());
        if self.handler != old.handler {
            causes.push(field::invalid(
                &FieldPath::new("handler"),
                &self.handler,
                FIELD_IMMUTABLE,
            ));
        }
        dedup(causes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::error::CauseType::{self, *};
    use crate::apiserver::validation::testing::summary;

    fn runtime_class(value: Value) -> RuntimeClass {
        let mut value = value;
        if value.get("metadata").is_none() {
            value["metadata"] = json!({"name": "wasmtime"});
        }
        serde_json::from_value(value).unwrap()
    }

    fn check(value: Value, expected: &[(CauseType, &str)]) {
        assert_eq!(
            summary(&runtime_class(value.clone()).validate_create()),
            expected,
            "{value}"
        );
    }

    #[test]
    fn runtime_classes() {
        check(
            json!({"handler": "wasmtime", "overhead": {"podFixed": {"memory": "16Mi"}},
                   "scheduling": {"nodeSelector": {"skiff.dev/wasm-enabled": "true"},
                                  "tolerations": [{"key": "skiff.dev/wasm", "operator": "Exists"}]}}),
            &[],
        );
        check(json!({"handler": ""}), &[(Required, "handler")]);
        check(json!({}), &[(Required, "handler")]);
        check(json!({"handler": "Wasm.Time"}), &[(Invalid, "handler")]);
        check(
            json!({"metadata": {"name": "Wasm"}, "handler": "wasmtime"}),
            &[(Invalid, "metadata.name")],
        );
        check(
            json!({"metadata": {"name": "w", "namespace": "d"}, "handler": "wasmtime"}),
            &[(Forbidden, "metadata.namespace")],
        );
        check(
            json!({"handler": "runc", "overhead": {"podFixed": {"cpu": "-1"}}}),
            &[(Invalid, "overhead.limits[cpu]")],
        );
        check(
            json!({"handler": "runc", "scheduling": {"nodeSelector": {"a": "b c"}}}),
            &[(Invalid, "scheduling.nodeSelector")],
        );
        check(
            json!({"handler": "runc", "scheduling": {"tolerations": [{"key": "k", "operator": "Exists"}, {"key": "k", "operator": "Exists"}]}}),
            &[(Duplicate, "scheduling.tolerations[1]")],
        );

        let old = runtime_class(json!({"handler": "wasmtime"}));
        let changed = runtime_class(json!({"handler": "runc"}));
        let causes = changed.validate_update(&old);
        assert_eq!(summary(&causes), [(Invalid, "handler")]);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"runc\": field is immutable"
        );
    }
}
