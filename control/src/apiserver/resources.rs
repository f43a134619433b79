//! The resources the API serves: a static table of [`ResourceDef`]s, each
//! with a [`KindHandler`] that knows its typed form (decoding with unknown
//! field detection, validation).

use std::marker::PhantomData;

use bytes::Bytes;
use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::node::v1::RuntimeClass;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::body::{FieldValidation, ParsedBody, decode_body, decode_typed};
use super::defaults::{Admission, Defaults};
use super::error::{ApiError, Cause};
use super::patch::decode_patched;
use super::plain_json;
use super::validation::Validate;

/// Decoding and validation of one kind, behind a trait object so the
/// handlers stay generic.
pub trait KindHandler: Send + Sync {
    /// Decodes a request body into the kind's typed form and back, so that
    /// the stored JSON is normalized; returns unknown-field warnings (an
    /// error under `Strict`).
    fn normalize(
        &self,
        value: Value,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError>;

    /// As [`KindHandler::normalize`] for a create or update body, also
    /// reporting duplicate keys, with kube-apiserver's wording (400).
    fn normalize_body(
        &self,
        parsed: ParsedBody,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError>;

    /// As [`KindHandler::normalize`] for the result of a patch: failures are
    /// 422 on the field `patch`, as kube-apiserver answers.
    fn normalize_patched(
        &self,
        value: Value,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError>;

    /// Decodes a create body into a new object of the kind, decoded once
    /// for everything create does with it; returns unknown-field warnings
    /// (an error under `Strict`).
    fn decode_new(
        &self,
        parsed: ParsedBody,
        validation: FieldValidation,
    ) -> Result<(Box<dyn NewObject>, Vec<String>), ApiError>;

    /// As [`KindHandler::decode_new`] for a JSON body that decodes the
    /// plain way (see [`plain_json`]); `None` for any other body.
    fn decode_new_plain(&self, json: &[u8]) -> Option<Box<dyn NewObject>>;

    /// As [`KindHandler::normalize_body`] for a JSON body that decodes the
    /// plain way (see [`plain_json`]); `None` for any other body.
    fn normalize_plain(&self, json: &[u8]) -> Option<Value>;

    /// As [`KindHandler::decode_new`] for an object built by the server.
    fn decode_new_value(
        &self,
        value: Value,
        validation: FieldValidation,
    ) -> Result<(Box<dyn NewObject>, Vec<String>), ApiError>;

    /// Validation causes for an update from `old` to `new`.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause>;
}

/// A new object on its way to the store, in its typed form.
pub trait NewObject: Send {
    /// Its metadata.
    fn meta(&self) -> &ObjectMeta;

    /// Its metadata, to set what the server sets.
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    /// Drops the status (written only through the status subresource).
    fn clear_status(&mut self);

    /// Fills the kind's defaults and what a new object starts with.
    fn apply_defaults(&mut self);

    /// Applies admission (see [`Defaults::admit`]).
    fn admit(&mut self, admission: &Admission);

    /// Validation causes, as for a new object.
    fn validate_create(&self) -> Vec<Cause>;

    /// The object as JSON.
    fn to_json(&self) -> Bytes;
}

impl<K> NewObject for K
where
    K: Metadata<Ty = ObjectMeta> + Defaults + Validate + Serialize + Send,
{
    fn meta(&self) -> &ObjectMeta {
        self.metadata()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.metadata_mut()
    }

    fn clear_status(&mut self) {
        Defaults::clear_status(self);
    }

    fn apply_defaults(&mut self) {
        Defaults::apply_defaults(self);
        Defaults::prepare_for_create(self);
    }

    fn admit(&mut self, admission: &Admission) {
        Defaults::admit(self, admission);
    }

    fn validate_create(&self) -> Vec<Cause> {
        Validate::validate_create(self)
    }

    fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a typed object serializes"))
    }
}

struct Typed<K>(PhantomData<fn() -> K>);

/// A decoded object as a new object.
fn boxed<K: NewObject + 'static>(
    decoded: Result<(K, Vec<String>), ApiError>,
) -> Result<(Box<dyn NewObject>, Vec<String>), ApiError> {
    let (typed, warnings) = decoded?;
    Ok((Box::new(typed), warnings))
}

/// A decoded object of an update or patch with its kind's defaults filled
/// in, as Kubernetes defaults every object it decodes.
fn defaulted<K: Defaults>(
    decoded: Result<(K, Vec<String>), ApiError>,
) -> Result<(K, Vec<String>), ApiError> {
    let (mut typed, warnings) = decoded?;
    typed.apply_defaults();
    Ok((typed, warnings))
}

/// A decoded object back as its normalized JSON value.
fn untyped<K: Serialize>(
    decoded: Result<(K, Vec<String>), ApiError>,
) -> Result<(Value, Vec<String>), ApiError> {
    let (typed, warnings) = decoded?;
    let value = serde_json::to_value(&typed).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((value, warnings))
}

impl<K> KindHandler for Typed<K>
where
    K: Metadata<Ty = ObjectMeta>
        + Defaults
        + Validate
        + Serialize
        + DeserializeOwned
        + Send
        + 'static,
{
    fn normalize(
        &self,
        value: Value,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError> {
        untyped(defaulted(decode_typed::<K>(value, validation)))
    }

    fn normalize_body(
        &self,
        parsed: ParsedBody,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError> {
        untyped(defaulted(decode_body::<K>(parsed, validation)))
    }

    fn normalize_patched(
        &self,
        value: Value,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError> {
        untyped(defaulted(decode_patched::<K>(value, validation)))
    }

    fn decode_new(
        &self,
        parsed: ParsedBody,
        validation: FieldValidation,
    ) -> Result<(Box<dyn NewObject>, Vec<String>), ApiError> {
        boxed(decode_body::<K>(parsed, validation))
    }

    fn decode_new_plain(&self, json: &[u8]) -> Option<Box<dyn NewObject>> {
        plain_json::decode::<K>(json).map(|typed| Box::new(typed) as Box<dyn NewObject>)
    }

    fn normalize_plain(&self, json: &[u8]) -> Option<Value> {
        let decoded = Ok((plain_json::decode::<K>(json)?, Vec::new()));
        untyped(defaulted(decoded)).ok().map(|(value, _)| value)
    }

    fn decode_new_value(
        &self,
        value: Value,
        validation: FieldValidation,
    ) -> Result<(Box<dyn NewObject>, Vec<String>), ApiError> {
        boxed(decode_typed::<K>(value, validation))
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        match (
            serde_json::from_value::<K>(new.clone()),
            serde_json::from_value::<K>(old.clone()),
        ) {
            (Ok(new), Ok(old)) => new.validate_update(&old),
            (Err(error), _) | (_, Err(error)) => vec![Cause::invalid("", "", &error.to_string())],
        }
    }
}

/// A subresource a resource serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: only the status changes through it, and only through it.
    Status,
    /// `/scale`: an autoscaling/v1 Scale view of `spec.replicas`.
    Scale,
    /// `/binding`: pods only, assigns the pod to a node.
    Binding,
    /// `/finalize`: namespaces only, updates `spec.finalizers`.
    Finalize,
    /// `/log`: pods only, the container's log from the pod's node.
    Log,
    /// `/exec`: pods only, a command in a container, over a WebSocket
    /// relayed to the pod's node.
    Exec,
}

impl Subresource {
    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Finalize => "finalize",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
        }
    }
}

/// One served resource.
pub struct ResourceDef {
    /// API group, "" for core.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind, e.g. `Pod`.
    pub kind: &'static str,
    /// Plural, e.g. `pods`: the path segment and the store key segment.
    pub plural: &'static str,
    /// Singular, e.g. `pod`.
    pub singular: &'static str,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Subresources served.
    pub subresources: &'static [Subresource],
    /// Typed behaviour.
    pub handler: &'static dyn KindHandler,
}

impl ResourceDef {
    /// `apiVersion` of the kind, e.g. `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group-qualified resource used in messages, e.g. `deployments.apps`.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether the resource serves `sub`.
    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// The store key prefix of the resource, in a namespace or across all.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.plural),
            _ => format!("/registry/{}/", self.plural),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.prefix(namespace))
    }
}

macro_rules! typed {
    ($kind:ty) => {
        &Typed::<$kind>(PhantomData)
    };
}

use Subresource::{Binding, Exec, Finalize, Log, Scale, Status};

/// Every resource the API serves.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        categories: &[],
        namespaced: false,
        subresources: &[Status, Finalize],
        handler: typed!(Namespace),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        categories: &["all"],
        namespaced: true,
        subresources: &[Status, Binding, Log, Exec],
        handler: typed!(Pod),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        short_names: &["no"],
        categories: &[],
        namespaced: false,
        subresources: &[Status],
        handler: typed!(Node),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
        categories: &["all"],
        namespaced: true,
        subresources: &[Status],
        handler: typed!(Service),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        short_names: &["ep"],
        categories: &[],
        namespaced: true,
        subresources: &[],
        handler: typed!(Endpoints),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        short_names: &["cm"],
        categories: &[],
        namespaced: true,
        subresources: &[],
        handler: typed!(ConfigMap),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        short_names: &[],
        categories: &[],
        namespaced: true,
        subresources: &[],
        handler: typed!(Secret),
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        categories: &[],
        namespaced: true,
        subresources: &[],
        handler: typed!(Event),
    },
    ResourceDef {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        short_names: &[],
        categories: &[],
        namespaced: true,
        subresources: &[],
        handler: typed!(EndpointSlice),
    },
    ResourceDef {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        short_names: &[],
        categories: &[],
        namespaced: true,
        subresources: &[],
        handler: typed!(Lease),
    },
    ResourceDef {
        group: "node.k8s.io",
        version: "v1",
        kind: "RuntimeClass",
        plural: "runtimeclasses",
        singular: "runtimeclass",
        short_names: &[],
        categories: &[],
        namespaced: false,
        subresources: &[],
        handler: typed!(RuntimeClass),
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        short_names: &["deploy"],
        categories: &["all"],
        namespaced: true,
        subresources: &[Status, Scale],
        handler: typed!(Deployment),
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        short_names: &["rs"],
        categories: &["all"],
        namespaced: true,
        subresources: &[Status, Scale],
        handler: typed!(ReplicaSet),
    },
];

/// The resource served at `group/version/plural`, if any.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind, if served.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::body::BodyFormat;

    #[test]
    fn plurals_are_unique_and_found() {
        for def in RESOURCES {
            assert!(std::ptr::eq(
                lookup(def.group, def.version, def.plural).unwrap(),
                def
            ));
            assert_eq!(
                RESOURCES.iter().filter(|r| r.plural == def.plural).count(),
                1
            );
        }
        assert!(lookup("", "v1", "widgets").is_none());
        assert!(lookup("apps", "v1", "pods").is_none());
    }

    #[test]
    fn keys_follow_the_registry_layout() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(pods.prefix(None), "/registry/pods/");
        let nodes = lookup("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/nodes/n1");
        assert_eq!(
            lookup("apps", "v1", "deployments")
                .unwrap()
                .group_resource(),
            "deployments.apps"
        );
    }

    #[test]
    fn plain_bodies_normalize_and_decode_as_careful_ones() {
        // An update of a running pod: its status must come through as sent
        // (what a new pod starts with is for creates only).
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
            "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5"}
        });
        let text = pod.to_string();
        let careful =
            || crate::apiserver::body::parse_body(text.as_bytes(), BodyFormat::Json).unwrap();
        let pods = lookup("", "v1", "pods").unwrap();
        let (normalized, warnings) = pods
            .handler
            .normalize_body(careful(), FieldValidation::Strict)
            .unwrap();
        assert!(warnings.is_empty());
        assert_eq!(normalized["status"]["phase"], "Running");
        assert_eq!(
            pods.handler.normalize_plain(text.as_bytes()),
            Some(normalized)
        );
        let (careful_new, _) = pods
            .handler
            .decode_new(careful(), FieldValidation::Strict)
            .unwrap();
        let plain_new = pods.handler.decode_new_plain(text.as_bytes()).unwrap();
        assert_eq!(plain_new.to_json(), careful_new.to_json());
    }
}
