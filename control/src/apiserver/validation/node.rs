//! Nodes: taints, pod CIDRs, reported capacity, and what an update may not
//! change (pod CIDRs and provider ID once set).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};

use super::field::{self, BadValue, FieldPath, Json, Rendered, go_quote};
use super::meta::{NameRule, validate_object_meta, validate_object_meta_update};
use super::pod::validate_taint_effect;
use super::resources::validate_resource_quantity;
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;

impl Validate for Node {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, false, NameRule::Dns1123Subdomain);
        let default_spec = NodeSpec::default();
        let spec = self.spec.as_ref().unwrap_or(&default_spec);
        // Kubernetes reports taints under `metadata.taints`.
        causes.extend(validate_taints(
            spec.taints.as_deref().unwrap_or_default(),
            &FieldPath::new("metadata").child("taints"),
        ));
        causes.extend(validate_capacity(self));
        causes.extend(validate_pod_cidrs(
            spec.pod_cidrs.as_deref().unwrap_or_default(),
        ));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        causes.extend(self.validate_create());
        let mut addresses = BTreeSet::new();
        for (i, address) in self
            .status
            .iter()
            .flat_map(|s| s.addresses.iter().flatten())
            .enumerate()
        {
            if !addresses.insert((&address.type_, &address.address)) {
                let rendered = format!(
                    "{{\"Type\":{},\"Address\":{}}}",
                    go_quote(&address.type_),
                    go_quote(&address.address)
                );
                causes.push(field::duplicate(
                    &FieldPath::new("status").child("addresses").index(i),
                    &Rendered(rendered),
                ));
            }
        }
        let default_spec = NodeSpec::default();
        let new = self.spec.as_ref().unwrap_or(&default_spec);
        let old = old.spec.as_ref().unwrap_or(&default_spec);
        let spec_path = FieldPath::new("spec");
        let old_cidrs = old.pod_cidrs.as_deref().unwrap_or_default();
        let new_cidrs = new.pod_cidrs.as_deref().unwrap_or_default();
        let cidr_message = "node updates may not change podCIDR except from \"\" to valid";
        if !old_cidrs.is_empty() {
            if old_cidrs.len() != new_cidrs.len() {
                causes.push(field::forbidden(&spec_path.child("podCIDRs"), cidr_message));
            } else {
                for _ in old_cidrs.iter().zip(new_cidrs).filter(|(a, b)| a != b) {
                    causes.push(field::forbidden(&spec_path.child("podCIDRs"), cidr_message));
                }
            }
        }
        let old_provider = old.provider_id.as_deref().unwrap_or_default();
        if !old_provider.is_empty() && Some(old_provider) != new.provider_id.as_deref() {
            causes.push(field::forbidden(
                &spec_path.child("providerID"),
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        if new.external_id != old.external_id {
            causes.push(field::forbidden(
                &spec_path.child("externalID"),
                "may not be updated",
            ));
        }
        dedup(causes)
    }
}

/// Kubernetes' `validateNodeTaints`: keys qualified, values label values,
/// effects required, each (key, effect) once.
fn validate_taints(taints: &[Taint], path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, taint) in taints.iter().enumerate() {
        let path = path.index(i);
        causes.extend(field::invalid_each(
            &path.child("key"),
            &taint.key,
            rules::qualified_name(&taint.key),
        ));
        let value = taint.value.as_deref().unwrap_or_default();
        let errors = rules::label_value(value);
        if !errors.is_empty() {
            causes.push(field::invalid(
                &path.child("value"),
                &value,
                &errors.join(";"),
            ));
        }
        causes.extend(validate_taint_effect(&taint.effect, &path.child("effect")));
        if !seen.insert((taint.effect.as_str(), taint.key.as_str())) {
            let rendered = format!(
                "{{\"Key\":{},\"Value\":{},\"Effect\":{},\"TimeAdded\":{}}}",
                go_quote(&taint.key),
                go_quote(value),
                go_quote(&taint.effect),
                Json(&taint.time_added).render()
            );
            causes.push(Cause::new(
                crate::apiserver::error::CauseType::Duplicate,
                &path,
                &format!("{rendered}: taints must be unique by key and effect pair"),
            ));
        }
    }
    causes
}

fn validate_capacity(node: &Node) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(status) = &node.status else {
        return causes;
    };
    for (name, list) in [
        ("capacity", &status.capacity),
        ("allocatable", &status.allocatable),
    ] {
        for (resource, quantity) in list.iter().flatten() {
            let path = FieldPath::new("status").child(name).child(resource);
            causes.extend(validate_resource_quantity(resource, quantity, &path).1);
        }
    }
    causes
}

fn validate_pod_cidrs(cidrs: &[String]) -> Vec<Cause> {
    let mut causes = Vec::new();
    let path = FieldPath::new("spec").child("podCIDRs");
    let mut parsed = Vec::new();
    for (i, cidr) in cidrs.iter().enumerate() {
        match rules::parse_cidr(cidr) {
            Some((ip, _)) => parsed.push(ip),
            None => causes.push(field::invalid(&path.index(i), cidr, rules::INVALID_CIDR)),
        }
    }
    if cidrs.len() > 1 {
        let dual = parsed.len() == cidrs.len() && rules::is_dual_stack(parsed[0], parsed[1]);
        if !dual || cidrs.len() > 2 {
            causes.push(field::invalid(
                &path,
                &Json(cidrs),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, cidr) in cidrs.iter().enumerate() {
            if !seen.insert(cidr) {
                causes.push(field::duplicate(&path.index(i), cidr));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::error::CauseType::{self, *};
    use crate::apiserver::validation::testing::summary;

    fn node(value: Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    /// A node is rejected for exactly `expected`.
    fn check(value: Value, expected: &[(CauseType, &str)]) {
        let causes = node(value.clone()).validate_create();
        assert_eq!(summary(&causes), expected, "{value}\n{causes:#?}");
    }

    #[test]
    fn nodes() {
        check(
            json!({"metadata": {"name": "node-1.example.com", "labels": {"skiff.dev/wasm-enabled": "true", "kubernetes.io/os": "linux"}},
                   "spec": {"podCIDRs": ["10.244.1.0/24", "fd00:1::/64"], "taints": [{"key": "skiff.dev/gpu", "effect": "NoSchedule"}]},
                   "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
            &[],
        );
        check(
            json!({"metadata": {"name": "Node_1"}}),
            &[(Invalid, "metadata.name")],
        );
        check(
            json!({"metadata": {"name": "n", "namespace": "default"}}),
            &[(Forbidden, "metadata.namespace")],
        );
        check(
            json!({"metadata": {"name": "n"}, "spec": {"taints": [
                {"key": "", "effect": "NoSchedule"}, {"key": "k", "value": "-v", "effect": ""},
                {"key": "k", "effect": "Sometimes"}, {"key": "a", "effect": "NoExecute"}, {"key": "a", "effect": "NoExecute"}]}}),
            &[
                (Invalid, "metadata.taints[0].key"),
                (Invalid, "metadata.taints[0].key"),
                (Invalid, "metadata.taints[1].value"),
                (Required, "metadata.taints[1].effect"),
                (NotSupported, "metadata.taints[2].effect"),
                (Duplicate, "metadata.taints[4]"),
            ],
        );
        check(
            json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.0.0.0/33"]}}),
            &[(Invalid, "spec.podCIDRs[0]")],
        );
        check(
            json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.0.0.0/24", "10.1.0.0/24"]}}),
            &[(Invalid, "spec.podCIDRs")],
        );
        check(
            json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "-1"}}}),
            &[(Invalid, "status.capacity.cpu")],
        );
        check(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": {"example.com/gpu": "0.5"}}}),
            &[(Invalid, "status.allocatable.example.com/gpu")],
        );
    }

    #[test]
    fn node_updates() {
        let check = |old: Value, new: Value, expected: &[(CauseType, &str)]| {
            let causes = node(new.clone()).validate_update(&node(old));
            assert_eq!(summary(&causes), expected, "{new}\n{causes:#?}");
        };
        let old = json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.244.1.0/24"], "providerID": "skiff://n"}});
        check(
            old.clone(),
            json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.244.1.0/24"], "providerID": "skiff://n", "unschedulable": true}}),
            &[],
        );
        check(
            json!({"metadata": {"name": "n"}}),
            json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.244.1.0/24"]}}),
            &[],
        );
        check(
            old.clone(),
            json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.244.2.0/24"], "providerID": "skiff://n"}}),
            &[(Forbidden, "spec.podCIDRs")],
        );
        check(
            old.clone(),
            json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.244.1.0/24"], "providerID": "other://n"}}),
            &[(Forbidden, "spec.providerID")],
        );
        check(
            json!({"metadata": {"name": "n"}}),
            json!({"metadata": {"name": "n"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "InternalIP", "address": "10.0.0.1"}]}}),
            &[(Duplicate, "status.addresses[1]")],
        );
    }
}
