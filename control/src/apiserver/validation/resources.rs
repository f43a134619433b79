//! Compute resources: resource names a container may ask for, quantities
//! of them, and requests against limits (`ValidateResourceRequirements`),
//! shared by pods, RuntimeClass overhead and node capacity.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::field::{self, FieldPath};
use super::meta::IS_NEGATIVE;
use super::quantity::ParsedQuantity;
use super::rules;
use crate::apiserver::error::Cause;

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_huge_page(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && rules::qualified_name(&format!("requests.{name}")).is_empty()
}

fn is_overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_huge_page(name)
}

const STANDARD_RESOURCES: [&str; 20] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

/// A resource name a container may request: qualified, and standard
/// (`cpu`, `memory`, `ephemeral-storage`, `hugepages-*`) or extended.
fn validate_container_resource_name(name: &str, path: &FieldPath) -> Vec<Cause> {
    let errors = rules::qualified_name(name);
    if !errors.is_empty() {
        return field::invalid_each(path, name, errors);
    }
    let mut causes = Vec::new();
    if !name.contains('/') {
        if !STANDARD_RESOURCES.contains(&name)
            && !is_huge_page(name)
            && !name.starts_with("requests.hugepages-")
        {
            causes.push(field::invalid(
                path,
                &name,
                "must be a standard resource type or fully qualified",
            ));
        }
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_huge_page(name) {
            causes.push(field::invalid(
                path,
                &name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && !is_extended_resource(name) {
        causes.push(field::invalid(
            path,
            &name,
            "doesn't follow extended resource name standard",
        ));
    }
    causes
}

/// A quantity of a resource: parseable, not negative, whole for resources
/// counted in units (extended resources).
pub(super) fn validate_resource_quantity(
    name: &str,
    quantity: &Quantity,
    path: &FieldPath,
) -> (Option<ParsedQuantity>, Vec<Cause>) {
    let parsed = match ParsedQuantity::parse(&quantity.0) {
        Ok(parsed) => parsed,
        Err(error) => {
            return (
                None,
                vec![field::invalid(path, &quantity.0, &error.to_string())],
            );
        }
    };
    let mut causes = Vec::new();
    if parsed.is_negative() {
        causes.push(field::invalid(path, &parsed.canonical(), IS_NEGATIVE));
    }
    if is_extended_resource(name) && !parsed.is_integer() {
        causes.push(field::invalid(
            path,
            &parsed.canonical(),
            "must be an integer",
        ));
    }
    (Some(parsed), causes)
}

/// Kubernetes' `ValidateResourceRequirements` for containers: names and
/// quantities valid, each request at most its limit (equal to it for
/// resources that cannot be overcommitted).
pub(super) fn validate_resource_requirements(
    requirements: &ResourceRequirements,
    path: &FieldPath,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let limits_path = path.child("limits");
    let requests_path = path.child("requests");
    let empty = BTreeMap::new();
    let mut limits = BTreeMap::new();
    let mut has_cpu_or_memory = false;
    let mut has_huge_pages = false;
    for (name, quantity) in requirements.limits.as_ref().unwrap_or(&empty) {
        let path = limits_path.key(name);
        causes.extend(validate_container_resource_name(name, &path));
        let (parsed, quantity_causes) = validate_resource_quantity(name, quantity, &path);
        causes.extend(quantity_causes);
        if let Some(parsed) = parsed {
            limits.insert(name.as_str(), parsed);
        }
        has_cpu_or_memory |= matches!(name.as_str(), "cpu" | "memory");
        has_huge_pages |= is_huge_page(name);
    }
    for (name, quantity) in requirements.requests.as_ref().unwrap_or(&empty) {
        let path = requests_path.key(name);
        causes.extend(validate_container_resource_name(name, &path));
        let (parsed, quantity_causes) = validate_resource_quantity(name, quantity, &path);
        causes.extend(quantity_causes);
        let raw_limit = requirements.limits.as_ref().and_then(|l| l.get(name));
        match (parsed, limits.get(name.as_str())) {
            (Some(request), Some(limit)) => {
                if request != *limit && !is_overcommit_allowed(name) {
                    causes.push(field::invalid(
                        &requests_path,
                        &request.canonical(),
                        &format!("must be equal to {name} limit of {limit}"),
                    ));
                } else if request > *limit {
                    causes.push(field::invalid(
                        &requests_path,
                        &request.canonical(),
                        &format!("must be less than or equal to {name} limit of {limit}"),
                    ));
                }
            }
            _ if raw_limit.is_none() && !is_overcommit_allowed(name) => {
                causes.push(field::required(
                    &limits_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            _ => {}
        }
        has_cpu_or_memory |= matches!(name.as_str(), "cpu" | "memory");
        has_huge_pages |= is_huge_page(name);
    }
    if has_huge_pages && !has_cpu_or_memory {
        causes.push(field::forbidden(path, "HugePages require cpu or memory"));
    }
    causes
}
