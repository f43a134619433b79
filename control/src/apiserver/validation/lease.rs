//! Leases: positive durations, non-negative transition counts, and a known
//! coordination strategy.

use k8s_openapi::api::coordination::v1::Lease;

use super::field::{self, FieldPath};
use super::meta::{NameRule, validate_object_meta, validate_object_meta_update};
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;

/// Strategies Kubernetes defines without a domain prefix.
const LEASE_STRATEGIES: [&str; 1] = ["OldestEmulationVersion"];

impl Validate for Lease {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, true, NameRule::Dns1123Subdomain);
        let Some(spec) = &self.spec else {
            return causes;
        };
        let path = FieldPath::new("spec");
        if let Some(duration) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
            causes.push(field::invalid(
                &path.child("leaseDurationSeconds"),
                &duration,
                "must be greater than 0",
            ));
        }
        if let Some(transitions) = spec.lease_transitions.filter(|t| *t < 0) {
            causes.push(field::invalid(
                &path.child("leaseTransitions"),
                &transitions,
                "must be greater than or equal to 0",
            ));
        }
        let strategy = spec.strategy.as_deref().filter(|s| !s.is_empty());
        if let Some(strategy) = strategy {
            let strategy_path = path.child("strategy");
            if !strategy.contains('/') {
                if !LEASE_STRATEGIES.contains(&strategy) {
                    causes.push(field::not_supported(
                        &strategy_path,
                        &strategy,
                        &LEASE_STRATEGIES,
                    ));
                }
            } else {
                causes.extend(field::invalid_each(
                    &strategy_path,
                    strategy,
                    rules::qualified_name(strategy),
                ));
            }
        }
        if spec
            .preferred_holder
            .as_deref()
            .is_some_and(|h| !h.is_empty())
            && strategy.is_none()
        {
            causes.push(field::forbidden(
                &path.child("preferredHolder"),
                "may only be specified if `strategy` is defined",
            ));
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

    fn check(spec: Value, expected: &[(CauseType, &str)]) {
        let lease: Lease =
            serde_json::from_value(json!({"metadata": {"name": "skiff-scheduler", "namespace": "kube-system"}, "spec": spec})).unwrap();
        assert_eq!(summary(&lease.validate_create()), expected, "{spec}");
    }

    #[test]
    fn leases() {
        check(
            json!({"holderIdentity": "control-1", "leaseDurationSeconds": 15, "leaseTransitions": 3}),
            &[],
        );
        check(
            json!({"strategy": "OldestEmulationVersion", "preferredHolder": "control-2"}),
            &[],
        );
        check(json!({"strategy": "example.com/custom"}), &[]);
        check(
            json!({"leaseDurationSeconds": 0}),
            &[(Invalid, "spec.leaseDurationSeconds")],
        );
        check(
            json!({"leaseDurationSeconds": -5}),
            &[(Invalid, "spec.leaseDurationSeconds")],
        );
        check(
            json!({"leaseTransitions": -1}),
            &[(Invalid, "spec.leaseTransitions")],
        );
        check(
            json!({"strategy": "Newest"}),
            &[(NotSupported, "spec.strategy")],
        );
        check(
            json!({"strategy": "example.com/"}),
            &[(Invalid, "spec.strategy"), (Invalid, "spec.strategy")],
        );
        check(
            json!({"preferredHolder": "control-2"}),
            &[(Forbidden, "spec.preferredHolder")],
        );

        let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0}})).unwrap();
        assert_eq!(
            lease.validate_create()[0].message,
            "Invalid value: 0: must be greater than 0"
        );
    }
}
