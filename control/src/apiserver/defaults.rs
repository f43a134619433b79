//! What the server fills in on create, as Kubernetes' defaulting does for
//! the fields clients rely on, on the typed objects.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Endpoints, Event, Namespace, NamespaceSpec, NamespaceStatus, Node, Pod,
    PodSpec, PodStatus, Secret, Service, Toleration,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Create-time behaviour of a kind.
pub trait Defaults {
    /// Drops the status, which only the status subresource writes.
    fn clear_status(&mut self) {}

    /// Fills the fields Kubernetes defaults when absent; runs on every
    /// create, update and patch (Kubernetes defaults on every decode), so
    /// it only fills what is missing.
    fn apply_defaults(&mut self) {}

    /// What only a new object gets (Kubernetes' `PrepareForCreate`), such
    /// as its initial status.
    fn prepare_for_create(&mut self) {}

    /// What admission adds to a new object beyond its kind's defaults
    /// (Kubernetes' admission plugins), with the server's settings.
    fn admit(&mut self, _admission: &Admission) {}
}

/// Server settings that admission applies to new objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// `tolerationSeconds` of the `node.kubernetes.io/not-ready:NoExecute`
    /// toleration added to pods without one (Kubernetes'
    /// DefaultTolerationSeconds, `--default-not-ready-toleration-seconds`).
    pub not_ready_toleration_seconds: i64,
    /// The same for `node.kubernetes.io/unreachable:NoExecute`.
    pub unreachable_toleration_seconds: i64,
}

impl Default for Admission {
    /// 300 s each, Kubernetes' defaults.
    fn default() -> Self {
        Self {
            not_ready_toleration_seconds: 300,
            unreachable_toleration_seconds: 300,
        }
    }
}

/// Taint a node gets when its Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint a node gets when its status is Unknown (no heartbeat).
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

macro_rules! no_status_no_defaults {
    ($($kind:ty),*) => {$(impl Defaults for $kind {})*};
}

no_status_no_defaults!(
    ConfigMap,
    Endpoints,
    EndpointSlice,
    Event,
    Lease,
    RuntimeClass
);

impl Defaults for Pod {
    fn clear_status(&mut self) {
        self.status = None;
    }

    /// DefaultTolerationSeconds: pods tolerate a not-ready or unreachable
    /// node for a while before they are evicted, unless they say otherwise.
    fn admit(&mut self, admission: &Admission) {
        let Some(spec) = &mut self.spec else {
            return;
        };
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        for (key, seconds) in [
            (TAINT_NOT_READY, admission.not_ready_toleration_seconds),
            (TAINT_UNREACHABLE, admission.unreachable_toleration_seconds),
        ] {
            // Kubernetes: any toleration that could match the taint
            // (same key or no key, NoExecute or any effect) counts.
            let covered = tolerations.iter().any(|t| {
                let key_matches = t.key.as_deref().is_none_or(|k| k.is_empty() || k == key);
                let effect_matches = t
                    .effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "NoExecute");
                key_matches && effect_matches
            });
            if !covered {
                tolerations.push(Toleration {
                    key: Some(key.to_owned()),
                    operator: Some("Exists".to_owned()),
                    effect: Some("NoExecute".to_owned()),
                    toleration_seconds: Some(seconds),
                    value: None,
                });
            }
        }
    }

    fn apply_defaults(&mut self) {
        if let Some(spec) = &mut self.spec {
            default_pod_spec(spec);
        }
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        });
    }
}

impl Defaults for Node {
    fn clear_status(&mut self) {
        self.status = None;
    }
}

impl Defaults for Namespace {
    fn clear_status(&mut self) {
        self.status = None;
    }

    fn prepare_for_create(&mut self) {
        self.spec
            .get_or_insert_with(NamespaceSpec::default)
            .finalizers
            .get_or_insert_with(|| vec!["kubernetes".into()]);
        self.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..NamespaceStatus::default()
        });
    }
}

impl Defaults for Secret {
    fn apply_defaults(&mut self) {
        self.type_.get_or_insert_with(|| "Opaque".into());
    }
}

impl Defaults for Service {
    fn clear_status(&mut self) {
        self.status = None;
    }

    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.type_.get_or_insert_with(|| "ClusterIP".into());
        spec.session_affinity.get_or_insert_with(|| "None".into());
        for port in spec.ports.iter_mut().flatten() {
            port.protocol.get_or_insert_with(|| "TCP".into());
            port.target_port.get_or_insert(IntOrString::Int(port.port));
        }
    }
}

impl Defaults for Deployment {
    fn clear_status(&mut self) {
        self.status = None;
    }

    fn apply_defaults(&mut self) {
        let spec = &mut self.spec;
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        spec.min_ready_seconds.get_or_insert(0);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if kind == "RollingUpdate" {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            rolling
                .max_surge
                .get_or_insert_with(|| IntOrString::String("25%".into()));
            rolling
                .max_unavailable
                .get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        if let Some(pod) = &mut spec.template.spec {
            default_pod_spec(pod);
        }
    }
}

impl Defaults for ReplicaSet {
    fn clear_status(&mut self) {
        self.status = None;
    }

    fn apply_defaults(&mut self) {
        let spec = &mut self.spec;
        spec.replicas.get_or_insert(1);
        if let Some(pod) = spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
            default_pod_spec(pod);
        }
    }
}

fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.security_context.get_or_insert_with(Default::default);
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(container);
    }
}

fn default_container(container: &mut Container) {
    if container.image_pull_policy.is_none() {
        let image = container.image.as_deref().unwrap_or("");
        let last = image.rsplit('/').next().unwrap_or("");
        let tagged = last.contains(':') && !last.ends_with(":latest");
        let policy = if tagged || image.contains('@') {
            "IfNotPresent"
        } else {
            "Always"
        };
        container.image_pull_policy = Some(policy.into());
    }
    container
        .termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    container
        .termination_message_policy
        .get_or_insert_with(|| "File".into());
    for port in container.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn defaulted<K: Defaults + serde::Serialize + serde::de::DeserializeOwned>(
        value: serde_json::Value,
    ) -> serde_json::Value {
        let mut object: K = serde_json::from_value(value).expect("decodes");
        object.apply_defaults();
        object.prepare_for_create();
        serde_json::to_value(&object).expect("encodes")
    }

    #[test]
    fn pod_defaults() {
        let pod = defaulted::<Pod>(json!({"spec": {"containers": [
            {"name": "a", "image": "busybox", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "r/x:1.2"},
        ]}}));
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["securityContext"], json!({}));
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["status"], json!({"phase": "Pending"}));
    }

    #[test]
    fn deployment_defaults_keep_what_is_set() {
        let deployment = defaulted::<Deployment>(json!({"spec": {
            "replicas": 3,
            "selector": {},
            "strategy": {"type": "Recreate"},
            "template": {"spec": {"containers": [{"name": "a", "image": "x@sha256:00"}]}},
        }}));
        assert_eq!(deployment["spec"]["replicas"], 3);
        assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(deployment["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn rolling_update_fills_what_is_missing() {
        let deployment = defaulted::<Deployment>(json!({"spec": {
            "selector": {},
            "template": {},
            "strategy": {"rollingUpdate": {"maxSurge": 2}},
        }}));
        assert_eq!(
            deployment["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "25%"}})
        );
    }

    #[test]
    fn service_ports_target_their_port() {
        let service = defaulted::<Service>(json!({"spec": {"ports": [{"port": 80}]}}));
        assert_eq!(
            service["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(service["spec"]["type"], "ClusterIP");
    }

    #[test]
    fn namespaces_start_active_with_the_kubernetes_finalizer() {
        let namespace = defaulted::<Namespace>(json!({"metadata": {"name": "a"}}));
        assert_eq!(namespace["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(namespace["status"], json!({"phase": "Active"}));
    }
}
