//! Validation of what every object shares: `metadata` (names, namespace,
//! labels, annotations, owner references, finalizers, managed fields) on
//! create and on update, and `metav1.LabelSelector`s.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use super::field::{self, FieldPath, Json, Rendered, go_string_slice};
use super::rules;
use crate::apiserver::error::Cause;

/// Largest total size of an object's annotations (keys plus values).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Kubernetes' message for a changed immutable field.
pub const FIELD_IMMUTABLE: &str = "field is immutable";

/// Kubernetes' message for a negative count.
pub const IS_NEGATIVE: &str = "must be greater than or equal to 0";

/// Finalizers Kubernetes accepts without a domain prefix.
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// The rule an object's name must follow, which depends on its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// `example.com`: most kinds.
    Dns1123Subdomain,
    /// `my-name`: namespaces.
    Dns1123Label,
    /// `my-name`, starting with a letter: services.
    Dns1035Label,
}

impl NameRule {
    /// Failure messages for `name`; a `prefix` (a `generateName`) may end in
    /// `-`, since characters will be appended.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = match name.strip_suffix('-') {
            Some(head) if prefix => {
                masked = format!("{head}a");
                masked.as_str()
            }
            _ => name,
        };
        match self {
            NameRule::Dns1123Subdomain => rules::dns1123_subdomain(name),
            NameRule::Dns1123Label => rules::dns1123_label(name),
            NameRule::Dns1035Label => rules::dns1035_label(name),
        }
    }
}

/// Validates `metadata` of a new object: `name` present and following
/// `name_rule` (the server has already generated it from `generateName`),
/// `namespace` present and a DNS label for namespaced kinds (absent for the
/// others), then labels, annotations, owner references, finalizers and
/// managed fields.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_rule: NameRule,
) -> Vec<Cause> {
    let path = FieldPath::new("metadata");
    let mut causes = Vec::new();
    if let Some(generate_name) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        causes.extend(field::invalid_each(
            &path.child("generateName"),
            generate_name,
            name_rule.check(generate_name, true),
        ));
    }
    match meta.name.as_deref().unwrap_or_default() {
        "" => causes.push(field::required(
            &path.child("name"),
            "name or generateName is required",
        )),
        name => causes.extend(field::invalid_each(
            &path.child("name"),
            name,
            name_rule.check(name, false),
        )),
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    if namespaced {
        if namespace.is_empty() {
            causes.push(field::required(&path.child("namespace"), ""));
        } else {
            causes.extend(field::invalid_each(
                &path.child("namespace"),
                namespace,
                rules::dns1123_label(namespace),
            ));
        }
    } else if !namespace.is_empty() {
        causes.push(field::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(generation) = meta.generation.filter(|g| *g < 0) {
        causes.push(field::invalid(
            &path.child("generation"),
            &generation,
            IS_NEGATIVE,
        ));
    }
    causes.extend(validate_labels(meta.labels.as_ref(), &path.child("labels")));
    causes.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    causes.extend(validate_owner_references(
        meta.owner_references.as_deref().unwrap_or_default(),
        &path.child("ownerReferences"),
    ));
    causes.extend(validate_finalizers(
        meta.finalizers.as_deref().unwrap_or_default(),
        &path.child("finalizers"),
    ));
    causes.extend(validate_managed_fields(meta, &path.child("managedFields")));
    for (i, finalizer) in meta.finalizers.iter().flatten().enumerate() {
        causes.extend(validate_kube_finalizer_name(
            finalizer,
            &path.child("finalizers").index(i),
        ));
    }
    causes
}

/// The extra checks of an update: what may not change in `metadata`.
///
/// The server copies `uid`, `creationTimestamp`, `deletionTimestamp`,
/// `deletionGracePeriodSeconds` and `generation` from the stored object
/// when a request leaves them out (Kubernetes' `BeforeUpdate`), so an
/// absent value here is not a change.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<Cause> {
    let path = FieldPath::new("metadata");
    let mut causes = Vec::new();
    if old.deletion_timestamp.is_some() {
        let old_finalizers: BTreeSet<&String> = old.finalizers.iter().flatten().collect();
        let added: BTreeSet<&String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_finalizers.contains(f))
            .collect();
        if !added.is_empty() {
            let added: Vec<String> = added.into_iter().cloned().collect();
            causes.push(field::forbidden(
                &path.child("finalizers"),
                &format!("no new finalizers can be added if the object is being deleted, found new finalizers {}", go_string_slice(&added)),
            ));
        }
    }
    let old_generation = old.generation.unwrap_or_default();
    let new_generation = new.generation.unwrap_or(old_generation);
    if new_generation < old_generation {
        causes.push(field::invalid(
            &path.child("generation"),
            &new_generation,
            "must not be decremented",
        ));
    }
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    if text(&new.name) != text(&old.name) {
        causes.push(field::invalid(
            &path.child("name"),
            &text(&new.name),
            FIELD_IMMUTABLE,
        ));
    }
    if text(&new.namespace) != text(&old.namespace) {
        causes.push(field::invalid(
            &path.child("namespace"),
            &text(&new.namespace),
            FIELD_IMMUTABLE,
        ));
    }
    if let Some(uid) = new.uid.as_deref().filter(|u| !u.is_empty())
        && Some(uid) != old.uid.as_deref()
    {
        causes.push(field::invalid(&path.child("uid"), &uid, FIELD_IMMUTABLE));
    }
    if let Some(created) = &new.creation_timestamp
        && old.creation_timestamp.is_some()
        && Some(created) != old.creation_timestamp.as_ref()
    {
        causes.push(field::invalid(
            &path.child("creationTimestamp"),
            &Json(created),
            FIELD_IMMUTABLE,
        ));
    }
    if old.deletion_timestamp.is_none()
        && let Some(deleted) = &new.deletion_timestamp
    {
        causes.push(field::invalid(
            &path.child("deletionTimestamp"),
            &Json(deleted),
            FIELD_IMMUTABLE,
        ));
    }
    let new_grace = new
        .deletion_grace_period_seconds
        .or(old.deletion_grace_period_seconds);
    if new_grace != old.deletion_grace_period_seconds {
        let value =
            new_grace.map_or_else(|| Rendered("null".to_owned()), |g| Rendered(g.to_string()));
        causes.push(field::invalid(
            &path.child("deletionGracePeriodSeconds"),
            &value,
            FIELD_IMMUTABLE,
        ));
    }
    causes
}

/// Label keys are qualified names and values label values; causes are on
/// the map's path, as Kubernetes reports them.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (key, value) in labels.into_iter().flatten() {
        causes.extend(field::invalid_each(path, key, rules::qualified_name(key)));
        causes.extend(field::invalid_each(path, value, rules::label_value(value)));
    }
    causes
}

/// Annotation keys are qualified names (case-insensitive); all keys and
/// values together at most 256 KiB.
pub fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &FieldPath,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut total = 0;
    for (key, value) in annotations.into_iter().flatten() {
        causes.extend(field::invalid_each(
            path,
            key,
            rules::qualified_name(&key.to_lowercase()),
        ));
        total += key.len() + value.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        causes.push(field::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    causes
}

/// The version of an `apiVersion` (`v1`, `apps/v1`); empty when malformed.
fn api_version_version(api_version: &str) -> &str {
    match api_version.split_once('/') {
        None => api_version,
        Some((_, version)) if !version.contains('/') => version,
        Some(_) => "",
    }
}

fn validate_owner_references(references: &[OwnerReference], path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut first_controller: Option<String> = None;
    for reference in references {
        let version = api_version_version(&reference.api_version);
        if version.is_empty() {
            causes.push(field::invalid(
                &path.child("apiVersion"),
                &reference.api_version,
                "version must not be empty",
            ));
        }
        if reference.kind.is_empty() {
            causes.push(field::invalid(
                &path.child("kind"),
                &reference.kind,
                "must not be empty",
            ));
        }
        if reference.name.is_empty() {
            causes.push(field::invalid(
                &path.child("name"),
                &reference.name,
                "must not be empty",
            ));
        }
        if reference.uid.is_empty() {
            causes.push(field::invalid(
                &path.child("uid"),
                &reference.uid,
                "must not be empty",
            ));
        }
        if reference.api_version == "v1" && reference.kind == "Event" {
            causes.push(field::invalid(
                path,
                &Json(reference),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if reference.controller == Some(true) {
            let name = format!("{}/{}", reference.kind, reference.name);
            match &first_controller {
                Some(first) => causes.push(field::invalid(
                    path,
                    &Json(references),
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {name}"),
                )),
                None => first_controller = Some(name),
            }
        }
    }
    causes
}

fn validate_finalizers(finalizers: &[String], path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    for finalizer in finalizers {
        causes.extend(field::invalid_each(
            path,
            finalizer,
            rules::qualified_name(finalizer),
        ));
    }
    if finalizers.iter().any(|f| f == "orphan")
        && finalizers.iter().any(|f| f == "foregroundDeletion")
    {
        causes.push(field::invalid(
            path,
            &Json(finalizers),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    causes
}

/// A finalizer without a domain prefix must be one of Kubernetes' own.
pub fn validate_kube_finalizer_name(finalizer: &str, path: &FieldPath) -> Vec<Cause> {
    if !finalizer.contains('/') && !STANDARD_FINALIZERS.contains(&finalizer) {
        vec![field::invalid(
            path,
            &finalizer,
            "name is neither a standard finalizer name nor is it fully qualified",
        )]
    } else {
        Vec::new()
    }
}

fn validate_managed_fields(meta: &ObjectMeta, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, entry) in meta.managed_fields.iter().flatten().enumerate() {
        let path = path.index(i);
        let operation = entry.operation.as_deref().unwrap_or_default();
        if !matches!(operation, "Apply" | "Update") {
            causes.push(field::invalid(
                &path.child("operation"),
                &operation,
                "must be `Apply` or `Update`",
            ));
        }
        let fields_type = entry.fields_type.as_deref().unwrap_or_default();
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            causes.push(field::invalid(
                &path.child("fieldsType"),
                &fields_type,
                "must be `FieldsV1`",
            ));
        }
        let manager = entry.manager.as_deref().unwrap_or_default();
        if manager.len() > 128 {
            causes.push(field::too_long(&path.child("manager"), 128));
        }
        for (position, c) in manager.char_indices().filter(|(_, c)| c.is_control()) {
            causes.push(field::invalid(
                &path.child("manager"),
                &manager,
                &format!(
                    "invalid character U+{:04X} (at position {position})",
                    c as u32
                ),
            ));
        }
        if entry.subresource.as_deref().unwrap_or_default().len() > 256 {
            causes.push(field::too_long(&path.child("subresource"), 256));
        }
    }
    causes
}

/// Validates a `metav1.LabelSelector`: label keys and values, operators
/// and whether they take values.
pub fn validate_label_selector(selector: &LabelSelector, path: &FieldPath) -> Vec<Cause> {
    let mut causes = validate_labels(selector.match_labels.as_ref(), &path.child("matchLabels"));
    for (i, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let path = path.child("matchExpressions").index(i);
        let values = requirement.values.as_deref().unwrap_or_default();
        match requirement.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                causes.push(field::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(field::forbidden(
                &path.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(field::invalid(
                &path.child("operator"),
                &other,
                "not a valid selector operator",
            )),
        }
        causes.extend(field::invalid_each(
            &path.child("key"),
            &requirement.key,
            rules::qualified_name(&requirement.key),
        ));
        for (j, value) in values.iter().enumerate() {
            causes.extend(field::invalid_each(
                &path.child("values").index(j),
                value,
                rules::label_value(value),
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::error::CauseType;
    use crate::apiserver::validation::testing::summary;

    fn meta(value: Value) -> ObjectMeta {
        serde_json::from_value(value).unwrap()
    }

    /// `metadata` validated as a namespaced, subdomain-named kind.
    fn check(value: Value, expected: &[(CauseType, &str)]) {
        let causes = validate_object_meta(&meta(value.clone()), true, NameRule::Dns1123Subdomain);
        assert_eq!(summary(&causes), expected, "{value}");
    }

    #[test]
    fn object_meta_on_create() {
        use CauseType::*;
        check(json!({"name": "web", "namespace": "default"}), &[]);
        check(
            json!({"name": "web", "namespace": "default", "labels": {"app.kubernetes.io/name": "web", "tier": ""},
                   "annotations": {"Example.com/Note": "x"}, "finalizers": ["example.com/cleanup", "kubernetes"],
                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]}),
            &[],
        );
        check(
            json!({"namespace": "default"}),
            &[(Required, "metadata.name")],
        );
        check(
            json!({"generateName": "web-", "namespace": "default"}),
            &[(Required, "metadata.name")],
        );
        check(
            json!({"generateName": "Web-", "name": "web-x1", "namespace": "default"}),
            &[(Invalid, "metadata.generateName")],
        );
        check(
            json!({"name": "Web", "namespace": "default"}),
            &[(Invalid, "metadata.name")],
        );
        check(json!({"name": "web"}), &[(Required, "metadata.namespace")]);
        check(
            json!({"name": "web", "namespace": "Default"}),
            &[(Invalid, "metadata.namespace")],
        );
        check(
            json!({"name": "web", "namespace": "a.b"}),
            &[(Invalid, "metadata.namespace")],
        );
        check(
            json!({"name": "web", "namespace": "d", "generation": -1}),
            &[(Invalid, "metadata.generation")],
        );
        check(
            json!({"name": "web", "namespace": "d", "labels": {"-bad": "ok"}}),
            &[(Invalid, "metadata.labels")],
        );
        check(
            json!({"name": "web", "namespace": "d", "labels": {"ok": "bad value"}}),
            &[(Invalid, "metadata.labels")],
        );
        check(
            json!({"name": "web", "namespace": "d", "labels": {"a/b/c": "-x"}}),
            &[(Invalid, "metadata.labels"), (Invalid, "metadata.labels")],
        );
        check(
            json!({"name": "web", "namespace": "d", "annotations": {"bad key": "v"}}),
            &[(Invalid, "metadata.annotations")],
        );
        check(
            json!({"name": "web", "namespace": "d", "annotations": {"big": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)}}),
            &[(TooLong, "metadata.annotations")],
        );
        check(
            json!({"name": "web", "namespace": "d", "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": ""}]}),
            &[
                (Invalid, "metadata.ownerReferences.apiVersion"),
                (Invalid, "metadata.ownerReferences.kind"),
                (Invalid, "metadata.ownerReferences.name"),
                (Invalid, "metadata.ownerReferences.uid"),
            ],
        );
        check(
            json!({"name": "web", "namespace": "d", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": true}]}),
            &[(Invalid, "metadata.ownerReferences")],
        );
        check(
            json!({"name": "web", "namespace": "d", "ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"}]}),
            &[(Invalid, "metadata.ownerReferences")],
        );
        check(
            json!({"name": "web", "namespace": "d", "finalizers": ["Bad Finalizer"]}),
            &[
                (Invalid, "metadata.finalizers"),
                (Invalid, "metadata.finalizers[0]"),
            ],
        );
        check(
            json!({"name": "web", "namespace": "d", "finalizers": ["cleanup"]}),
            &[(Invalid, "metadata.finalizers[0]")],
        );
        check(
            json!({"name": "web", "namespace": "d", "finalizers": ["orphan", "foregroundDeletion"]}),
            &[(Invalid, "metadata.finalizers")],
        );
        check(
            json!({"name": "web", "namespace": "d", "managedFields": [{"operation": "Patch", "manager": "kubectl"}]}),
            &[(Invalid, "metadata.managedFields[0].operation")],
        );
    }

    #[test]
    fn messages_match_kubernetes() {
        let causes = validate_object_meta(
            &meta(json!({"name": "Web", "namespace": "d"})),
            true,
            NameRule::Dns1123Subdomain,
        );
        assert_eq!(
            causes[0].message,
            "Invalid value: \"Web\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        let causes = validate_object_meta(
            &meta(json!({"namespace": "d"})),
            true,
            NameRule::Dns1123Subdomain,
        );
        assert_eq!(
            causes[0].message,
            "Required value: name or generateName is required"
        );
        let causes = validate_object_meta(
            &meta(json!({"name": "n", "namespace": "d"})),
            false,
            NameRule::Dns1123Label,
        );
        assert_eq!(
            summary(&causes),
            [(CauseType::Forbidden, "metadata.namespace")]
        );
        assert_eq!(causes[0].message, "Forbidden: not allowed on this type");
        assert_eq!(NameRule::Dns1035Label.check("1web", false).len(), 1);
        assert!(NameRule::Dns1123Label.check("web-", true).is_empty());
        assert_eq!(NameRule::Dns1123Label.check("web-", false).len(), 1);
    }

    #[test]
    fn object_meta_on_update() {
        use CauseType::*;
        let old = json!({"name": "web", "namespace": "d", "uid": "u1", "generation": 3,
                         "creationTimestamp": "2024-01-01T00:00:00Z"});
        let check = |new: Value, old: &Value, expected: &[(CauseType, &str)]| {
            let causes = validate_object_meta_update(&meta(new.clone()), &meta(old.clone()));
            assert_eq!(summary(&causes), expected, "{new}");
        };
        check(old.clone(), &old, &[]);
        check(json!({"name": "web", "namespace": "d"}), &old, &[]);
        check(
            json!({"name": "web2", "namespace": "d"}),
            &old,
            &[(Invalid, "metadata.name")],
        );
        check(
            json!({"name": "web", "namespace": "e"}),
            &old,
            &[(Invalid, "metadata.namespace")],
        );
        check(
            json!({"name": "web", "namespace": "d", "uid": "u2"}),
            &old,
            &[(Invalid, "metadata.uid")],
        );
        check(
            json!({"name": "web", "namespace": "d", "generation": 2}),
            &old,
            &[(Invalid, "metadata.generation")],
        );
        check(
            json!({"name": "web", "namespace": "d", "creationTimestamp": "2025-01-01T00:00:00Z"}),
            &old,
            &[(Invalid, "metadata.creationTimestamp")],
        );
        check(
            json!({"name": "web", "namespace": "d", "deletionTimestamp": "2025-01-01T00:00:00Z"}),
            &old,
            &[(Invalid, "metadata.deletionTimestamp")],
        );
        let deleting = json!({"name": "web", "namespace": "d", "deletionTimestamp": "2025-01-01T00:00:00Z", "finalizers": ["a.io/x"]});
        check(
            json!({"name": "web", "namespace": "d", "finalizers": []}),
            &deleting,
            &[],
        );
        check(
            json!({"name": "web", "namespace": "d", "finalizers": ["a.io/x", "b.io/y"]}),
            &deleting,
            &[(Forbidden, "metadata.finalizers")],
        );
        let causes = validate_object_meta_update(
            &meta(json!({"name": "web", "namespace": "d", "finalizers": ["b.io/y"]})),
            &meta(deleting),
        );
        assert_eq!(
            causes[0].message,
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b.io/y\"}"
        );
    }

    #[test]
    fn label_selectors() {
        use CauseType::*;
        let check = |selector: Value, expected: &[(CauseType, &str)]| {
            let causes = validate_label_selector(
                &serde_json::from_value(selector.clone()).unwrap(),
                &FieldPath::new("spec").child("selector"),
            );
            assert_eq!(summary(&causes), expected, "{selector}");
        };
        check(
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}),
            &[],
        );
        check(
            json!({"matchLabels": {"app": "-web"}}),
            &[(Invalid, "spec.selector.matchLabels")],
        );
        check(
            json!({"matchExpressions": [{"key": "tier", "operator": "In"}]}),
            &[(Required, "spec.selector.matchExpressions[0].values")],
        );
        check(
            json!({"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["a"]}]}),
            &[(Forbidden, "spec.selector.matchExpressions[0].values")],
        );
        check(
            json!({"matchExpressions": [{"key": "tier", "operator": "Like"}]}),
            &[(Invalid, "spec.selector.matchExpressions[0].operator")],
        );
        check(
            json!({"matchExpressions": [{"key": "-tier", "operator": "Exists"}]}),
            &[(Invalid, "spec.selector.matchExpressions[0].key")],
        );
        check(
            json!({"matchExpressions": [{"key": "t", "operator": "In", "values": ["-a"]}]}),
            &[(Invalid, "spec.selector.matchExpressions[0].values[0]")],
        );
    }
}
