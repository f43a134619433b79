//! Namespaces: a DNS-label name and well-formed `spec.finalizers`.

use k8s_openapi::api::core::v1::Namespace;

use super::field::{self, FieldPath};
use super::meta::{
    NameRule, validate_kube_finalizer_name, validate_object_meta, validate_object_meta_update,
};
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;

impl Validate for Namespace {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, false, NameRule::Dns1123Label);
        let path = FieldPath::new("spec").child("finalizers");
        for finalizer in self.spec.iter().flat_map(|s| s.finalizers.iter().flatten()) {
            causes.extend(field::invalid_each(
                &path,
                finalizer,
                rules::qualified_name(finalizer),
            ));
            causes.extend(validate_kube_finalizer_name(finalizer, &path));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        causes.extend(self.validate_create());
        dedup(causes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::error::CauseType::{self, *};
    use crate::apiserver::validation::testing::summary;

    fn check(value: Value, expected: &[(CauseType, &str)]) {
        let namespace: Namespace = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(summary(&namespace.validate_create()), expected, "{value}");
    }

    #[test]
    fn namespaces() {
        check(
            json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["kubernetes", "example.com/cleanup"]}}),
            &[],
        );
        check(
            json!({"metadata": {"name": "team.a"}}),
            &[(Invalid, "metadata.name")],
        );
        check(
            json!({"metadata": {"name": "Team"}}),
            &[(Invalid, "metadata.name")],
        );
        check(
            json!({"metadata": {"name": "a".repeat(64)}}),
            &[(Invalid, "metadata.name")],
        );
        check(json!({"metadata": {}}), &[(Required, "metadata.name")]);
        check(
            json!({"metadata": {"name": "a", "namespace": "b"}}),
            &[(Forbidden, "metadata.namespace")],
        );
        check(
            json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["cleanup"]}}),
            &[(Invalid, "spec.finalizers")],
        );
        check(
            json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["bad finalizer"]}}),
            &[(Invalid, "spec.finalizers"), (Invalid, "spec.finalizers")],
        );

        let old: Namespace = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
        let renamed: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap();
        assert_eq!(
            summary(&renamed.validate_update(&old)),
            [(Invalid, "metadata.name")]
        );
    }
}
