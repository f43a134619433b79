//! Pods and pod specs (also inside Deployment and ReplicaSet templates):
//! containers, ports, environment, volumes and mounts, resources, probes,
//! tolerations and the pod-level fields, then what a pod update may change.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, HTTPGetAction, LifecycleHandler, Pod, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::field::{self, FieldPath, Json};
use super::meta::{self, IS_NEGATIVE, NameRule, validate_annotations, validate_labels};
use super::quantity::ParsedQuantity;
use super::resources::validate_resource_requirements;
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;

const MAX_INT32: i64 = i32::MAX as i64;
const MAX_UNIX_ID: i64 = 0xffff_ffff;
const PORT_PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Where a pod spec sits: Kubernetes checks a few things only on pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SpecOwner {
    /// A Pod object.
    Pod,
    /// The template of a Deployment or ReplicaSet.
    Template,
}

/// A string field Kubernetes always defaults: absent or empty reads as unset.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl Validate for Pod {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_pod_metadata_and_spec(self);
        let spec_path = FieldPath::new("spec");
        let default_spec = PodSpec::default();
        let spec = self.spec.as_ref().unwrap_or(&default_spec);
        if spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|c| !c.is_empty())
        {
            causes.push(field::forbidden(
                &spec_path.child("ephemeralContainers"),
                "cannot be set on create",
            ));
        }
        if set(&spec.node_name).is_some()
            && spec
                .scheduling_gates
                .as_ref()
                .is_some_and(|g| !g.is_empty())
        {
            causes.push(field::forbidden(
                &spec_path.child("nodeName"),
                "cannot be set until all schedulingGates have been cleared",
            ));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = meta::validate_object_meta_update(&self.metadata, &old.metadata);
        causes.extend(validate_pod_metadata_and_spec(self));
        let default_spec = PodSpec::default();
        causes.extend(validate_pod_spec_update(
            self.spec.as_ref().unwrap_or(&default_spec),
            old.spec.as_ref().unwrap_or(&default_spec),
        ));
        dedup(causes)
    }
}

fn validate_pod_metadata_and_spec(pod: &Pod) -> Vec<Cause> {
    let mut causes = meta::validate_object_meta(&pod.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = PodSpec::default();
    causes.extend(validate_pod_spec(
        pod.spec.as_ref().unwrap_or(&default_spec),
        &FieldPath::new("spec"),
        SpecOwner::Pod,
    ));
    causes
}

/// A pod template: its labels and annotations, then its spec, which may
/// not have ephemeral containers.
pub(super) fn validate_pod_template(template: &PodTemplateSpec, path: &FieldPath) -> Vec<Cause> {
    let default_meta = Default::default();
    let metadata = template.metadata.as_ref().unwrap_or(&default_meta);
    let mut causes = validate_labels(metadata.labels.as_ref(), &path.child("labels"));
    causes.extend(validate_annotations(
        metadata.annotations.as_ref(),
        &path.child("annotations"),
    ));
    let default_spec = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&default_spec);
    causes.extend(validate_pod_spec(
        spec,
        &path.child("spec"),
        SpecOwner::Template,
    ));
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        causes.push(field::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    causes
}

/// Kubernetes' `ValidatePodSpec`.
pub(super) fn validate_pod_spec(spec: &PodSpec, path: &FieldPath, owner: SpecOwner) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (volumes, volume_causes) = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
    );
    causes.extend(volume_causes);
    let containers = spec.containers.as_slice();
    let init_containers = spec.init_containers.as_deref().unwrap_or_default();
    causes.extend(validate_containers(
        containers,
        &volumes,
        &path.child("containers"),
        owner,
    ));
    causes.extend(validate_init_containers(
        init_containers,
        containers,
        &volumes,
        &path.child("initContainers"),
        owner,
    ));
    causes.extend(validate_host_network_ports(spec, path));

    if let Some(policy) = set(&spec.restart_policy)
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        causes.push(field::not_supported(
            &path.child("restartPolicy"),
            &policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(policy) = set(&spec.dns_policy)
        && !matches!(
            policy,
            "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None"
        )
    {
        causes.push(field::not_supported(
            &path.child("dnsPolicy"),
            &policy,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    causes.extend(validate_labels(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
    ));
    causes.extend(validate_pod_security_context(
        spec,
        &path.child("securityContext"),
    ));
    causes.extend(validate_dns_config(spec, &path.child("dnsConfig")));
    for (i, gate) in spec.readiness_gates.iter().flatten().enumerate() {
        let gate_path = path.child("readinessGates").index(i).child("conditionType");
        causes.extend(field::invalid_each(
            &gate_path,
            &gate.condition_type,
            rules::qualified_name(&gate.condition_type),
        ));
    }
    let mut gates = BTreeSet::new();
    for (i, gate) in spec.scheduling_gates.iter().flatten().enumerate() {
        let gate_path = path.child("schedulingGates").index(i);
        causes.extend(field::invalid_each(
            &gate_path,
            &gate.name,
            rules::qualified_name(&gate.name),
        ));
        if !gates.insert(gate.name.as_str()) {
            causes.push(field::duplicate(&gate_path, &gate.name));
        }
    }
    if let Some(account) = set(&spec.service_account_name) {
        causes.extend(field::invalid_each(
            &path.child("serviceAccountName"),
            account,
            rules::dns1123_subdomain(account),
        ));
    }
    if let Some(node) = set(&spec.node_name) {
        causes.extend(field::invalid_each(
            &path.child("nodeName"),
            node,
            rules::dns1123_subdomain(node),
        ));
    }
    if let Some(deadline) = spec.active_deadline_seconds
        && !(1..=MAX_INT32).contains(&deadline)
    {
        causes.push(field::invalid(
            &path.child("activeDeadlineSeconds"),
            &deadline,
            &rules::inclusive_range_error(1, MAX_INT32),
        ));
    }
    if let Some(grace) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
        causes.push(field::invalid(
            &path.child("terminationGracePeriodSeconds"),
            &grace,
            IS_NEGATIVE,
        ));
    }
    if let Some(hostname) = set(&spec.hostname) {
        causes.extend(field::invalid_each(
            &path.child("hostname"),
            hostname,
            rules::dns1123_label(hostname),
        ));
    }
    if let Some(subdomain) = set(&spec.subdomain) {
        causes.extend(field::invalid_each(
            &path.child("subdomain"),
            subdomain,
            rules::dns1123_label(subdomain),
        ));
    }
    causes.extend(validate_tolerations(
        spec.tolerations.as_deref().unwrap_or_default(),
        &path.child("tolerations"),
    ));
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let alias_path = path.child("hostAliases").index(i);
        if rules::parse_ip(&alias.ip).is_none() {
            causes.push(field::invalid(
                &alias_path.child("ip"),
                &alias.ip,
                rules::INVALID_IP,
            ));
        }
        for (j, hostname) in alias.hostnames.iter().flatten().enumerate() {
            causes.extend(field::invalid_each(
                &alias_path.child("hostnames").index(j),
                hostname,
                rules::dns1123_subdomain(hostname),
            ));
        }
    }
    if let Some(class) = set(&spec.priority_class_name) {
        causes.extend(field::invalid_each(
            &path.child("priorityClassName"),
            class,
            rules::dns1123_subdomain(class),
        ));
    }
    if let Some(class) = &spec.runtime_class_name {
        causes.extend(field::invalid_each(
            &path.child("runtimeClassName"),
            class,
            rules::dns1123_subdomain(class),
        ));
    }
    if let Some(policy) = set(&spec.preemption_policy)
        && !matches!(policy, "PreemptLowerPriority" | "Never")
    {
        causes.push(field::not_supported(
            &path.child("preemptionPolicy"),
            &policy,
            &["PreemptLowerPriority", "Never"],
        ));
    }
    if let Some(overhead) = &spec.overhead {
        let requirements = ResourceRequirements {
            limits: Some(overhead.clone()),
            ..Default::default()
        };
        causes.extend(validate_resource_requirements(
            &requirements,
            &path.child("overhead"),
        ));
    }
    causes
}

/// Volumes: names unique DNS labels, at most one source each. Returns the
/// names of the valid ones (mounts may refer only to those).
fn validate_volumes(volumes: &[Volume], path: &FieldPath) -> (BTreeSet<String>, Vec<Cause>) {
    let mut names = BTreeSet::new();
    let mut causes = Vec::new();
    for (i, volume) in volumes.iter().enumerate() {
        let path = path.index(i);
        let mut own = validate_volume_source(volume, &path);
        if volume.name.is_empty() {
            own.push(field::required(&path.child("name"), ""));
        } else {
            own.extend(field::invalid_each(
                &path.child("name"),
                &volume.name,
                rules::dns1123_label(&volume.name),
            ));
        }
        if names.contains(&volume.name) {
            own.push(field::duplicate(&path.child("name"), &volume.name));
        }
        if own.is_empty() {
            names.insert(volume.name.clone());
        }
        causes.extend(own);
    }
    (names, causes)
}

/// Volume sources in the order Kubernetes checks them, with the field name
/// it reports when one is too many.
const VOLUME_SOURCES: [(&str, &str); 30] = [
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

fn validate_volume_source(volume: &Volume, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    // A volume without a source is defaulted to emptyDir, as Kubernetes does.
    let json = serde_json::to_value(volume).unwrap_or(Value::Null);
    let mut count = 0;
    for (key, reported) in VOLUME_SOURCES {
        if json.get(key).is_some_and(|v| !v.is_null()) {
            if count > 0 {
                causes.push(field::forbidden(
                    &path.child(reported),
                    "may not specify more than 1 volume type",
                ));
            }
            count += 1;
        }
    }
    if let Some(source) = &volume.host_path {
        if source.path.is_empty() {
            causes.push(field::required(&path.child("hostPath").child("path"), ""));
        } else {
            causes.extend(path_no_backsteps(
                &source.path,
                &path.child("hostPath").child("path"),
            ));
        }
    }
    if let Some(source) = &volume.secret
        && set(&source.secret_name).is_none()
    {
        causes.push(field::required(
            &path.child("secret").child("secretName"),
            "",
        ));
    }
    if let Some(source) = &volume.config_map
        && source.name.is_empty()
    {
        causes.push(field::required(&path.child("configMap").child("name"), ""));
    }
    if let Some(source) = &volume.persistent_volume_claim
        && source.claim_name.is_empty()
    {
        causes.push(field::required(
            &path.child("persistentVolumeClaim").child("claimName"),
            "",
        ));
    }
    if let Some(limit) = volume
        .empty_dir
        .as_ref()
        .and_then(|e| e.size_limit.as_ref())
        && !ParsedQuantity::parse(&limit.0).is_ok_and(|q| !q.is_negative())
    {
        causes.push(field::forbidden(
            &path.child("emptyDir").child("sizeLimit"),
            "SizeLimit field must be a valid resource quantity",
        ));
    }
    causes
}

fn path_no_backsteps(target: &str, path: &FieldPath) -> Vec<Cause> {
    if target.split('/').any(|part| part == "..") {
        vec![field::invalid(path, &target, "must not contain '..'")]
    } else {
        Vec::new()
    }
}

fn local_descending_path(target: &str, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if target.starts_with('/') {
        causes.push(field::invalid(path, &target, "must be a relative path"));
    }
    causes.extend(path_no_backsteps(target, path));
    causes
}

fn validate_containers(
    containers: &[Container],
    volumes: &BTreeSet<String>,
    path: &FieldPath,
    owner: SpecOwner,
) -> Vec<Cause> {
    if containers.is_empty() {
        return vec![field::required(path, "")];
    }
    let mut causes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        let path = path.index(i);
        causes.extend(validate_container_common(container, volumes, &path, owner));
        if !names.insert(container.name.as_str()) {
            causes.push(field::duplicate(&path.child("name"), &container.name));
        }
        causes.extend(validate_probes_and_lifecycle(container, &path));
        if container.restart_policy.is_some() {
            causes.push(field::forbidden(
                &path.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    causes.extend(host_port_conflicts(containers, path));
    causes
}

fn validate_init_containers(
    containers: &[Container],
    regular: &[Container],
    volumes: &BTreeSet<String>,
    path: &FieldPath,
    owner: SpecOwner,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut names: BTreeSet<&str> = regular.iter().map(|c| c.name.as_str()).collect();
    for (i, container) in containers.iter().enumerate() {
        let container_path = path.index(i);
        causes.extend(validate_container_common(
            container,
            volumes,
            &container_path,
            owner,
        ));
        let restart_always = match container.restart_policy.as_deref() {
            None => false,
            Some("Always") => true,
            Some(other) => {
                causes.push(field::not_supported(
                    &container_path.child("restartPolicy"),
                    &other,
                    &["Always"],
                ));
                false
            }
        };
        if names.contains(container.name.as_str()) {
            causes.push(field::duplicate(
                &container_path.child("name"),
                &container.name,
            ));
        } else if !container.name.is_empty() {
            names.insert(container.name.as_str());
        }
        causes.extend(host_port_conflicts(std::slice::from_ref(container), path));
        if restart_always {
            causes.extend(validate_probes_and_lifecycle(container, &container_path));
        } else {
            let forbidden = "may not be set for init containers without restartPolicy=Always";
            let set_fields = [
                ("lifecycle", container.lifecycle.is_some()),
                ("livenessProbe", container.liveness_probe.is_some()),
                ("readinessProbe", container.readiness_probe.is_some()),
                ("startupProbe", container.startup_probe.is_some()),
            ];
            for (name, _) in set_fields.iter().filter(|(_, is_set)| *is_set) {
                causes.push(field::forbidden(&container_path.child(name), forbidden));
            }
        }
    }
    causes
}

/// Kubernetes' `validateContainerCommon`.
fn validate_container_common(
    container: &Container,
    volumes: &BTreeSet<String>,
    path: &FieldPath,
    owner: SpecOwner,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    if container.name.is_empty() {
        causes.push(field::required(&path.child("name"), ""));
    } else {
        causes.extend(field::invalid_each(
            &path.child("name"),
            &container.name,
            rules::dns1123_label(&container.name),
        ));
    }
    let image = container.image.as_deref().unwrap_or_default();
    if image.is_empty() {
        causes.push(field::required(&path.child("image"), ""));
    } else if owner == SpecOwner::Pod && image.trim() != image {
        causes.push(field::invalid(
            &path.child("image"),
            &image,
            "must not have leading or trailing whitespace",
        ));
    }
    if let Some(policy) = set(&container.termination_message_policy)
        && !matches!(policy, "File" | "FallbackToLogsOnError")
    {
        causes.push(field::not_supported(
            &path.child("terminationMessagePolicy"),
            &policy,
            &["File", "FallbackToLogsOnError"],
        ));
    }
    causes.extend(validate_container_ports(
        container.ports.as_deref().unwrap_or_default(),
        &path.child("ports"),
    ));
    causes.extend(validate_env(
        container.env.as_deref().unwrap_or_default(),
        &path.child("env"),
    ));
    causes.extend(validate_env_from(
        container.env_from.as_deref().unwrap_or_default(),
        &path.child("envFrom"),
    ));
    causes.extend(validate_volume_mounts(
        container.volume_mounts.as_deref().unwrap_or_default(),
        volumes,
        &path.child("volumeMounts"),
    ));
    if let Some(policy) = set(&container.image_pull_policy)
        && !matches!(policy, "Always" | "IfNotPresent" | "Never")
    {
        causes.push(field::not_supported(
            &path.child("imagePullPolicy"),
            &policy,
            &["Always", "IfNotPresent", "Never"],
        ));
    }
    if let Some(resources) = &container.resources {
        causes.extend(validate_resource_requirements(
            resources,
            &path.child("resources"),
        ));
    }
    if let Some(context) = &container.security_context {
        let path = path.child("securityContext");
        for (name, id) in [
            ("runAsUser", context.run_as_user),
            ("runAsGroup", context.run_as_group),
        ] {
            if let Some(id) = id.filter(|id| !(0..=MAX_UNIX_ID).contains(id)) {
                causes.push(field::invalid(
                    &path.child(name),
                    &id,
                    &rules::inclusive_range_error(0, MAX_UNIX_ID),
                ));
            }
        }
        if context.allow_privilege_escalation == Some(false) && context.privileged == Some(true) {
            causes.push(field::invalid(
                &path,
                &Json(context),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
    }
    causes
}

fn validate_container_ports(ports: &[ContainerPort], path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = path.index(i);
        if let Some(name) = set(&port.name) {
            let errors = rules::port_name(name);
            if !errors.is_empty() {
                causes.extend(field::invalid_each(&path.child("name"), name, errors));
            } else if !names.insert(name) {
                causes.push(field::duplicate(&path.child("name"), &name));
            }
        }
        if port.container_port == 0 {
            causes.push(field::required(&path.child("containerPort"), ""));
        } else {
            for message in rules::port_number(i64::from(port.container_port)) {
                causes.push(field::invalid(
                    &path.child("containerPort"),
                    &port.container_port,
                    &message,
                ));
            }
        }
        if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
            for message in rules::port_number(i64::from(host_port)) {
                causes.push(field::invalid(
                    &path.child("hostPort"),
                    &host_port,
                    &message,
                ));
            }
        }
        if let Some(protocol) = set(&port.protocol)
            && !PORT_PROTOCOLS.contains(&protocol)
        {
            causes.push(field::not_supported(
                &path.child("protocol"),
                &protocol,
                &PORT_PROTOCOLS,
            ));
        }
    }
    causes
}

/// Host ports must not collide (per protocol and host IP) across `containers`.
fn host_port_conflicts(containers: &[Container], path: &FieldPath) -> Vec<Cause> {
    let mut seen = BTreeSet::new();
    let mut causes = Vec::new();
    for (i, container) in containers.iter().enumerate() {
        for (j, port) in container.ports.iter().flatten().enumerate() {
            let Some(host_port) = port.host_port.filter(|p| *p != 0) else {
                continue;
            };
            let protocol = set(&port.protocol).unwrap_or("TCP");
            let key = format!(
                "{protocol}/{}/{host_port}",
                port.host_ip.as_deref().unwrap_or_default()
            );
            if !seen.insert(key.clone()) {
                causes.push(field::duplicate(
                    &path.index(i).child("ports").index(j).child("hostPort"),
                    &key,
                ));
            }
        }
    }
    causes
}

/// With `hostNetwork`, a host port must equal its container port.
fn validate_host_network_ports(spec: &PodSpec, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if spec.host_network != Some(true) {
        return causes;
    }
    for (i, container) in spec.containers.iter().enumerate() {
        for (j, port) in container.ports.iter().flatten().enumerate() {
            if let Some(host_port) = port
                .host_port
                .filter(|p| *p != 0 && *p != port.container_port)
            {
                let port_path = path
                    .child("containers")
                    .index(i)
                    .child("ports")
                    .index(j)
                    .child("hostPort");
                causes.push(field::invalid(
                    &port_path,
                    &host_port,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
    causes
}

const DOWNWARD_API_ENV_FIELDS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

const DOWNWARD_API_RESOURCE_FIELDS: [&str; 6] = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn validate_env(vars: &[EnvVar], path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, var) in vars.iter().enumerate() {
        let path = path.index(i);
        if var.name.is_empty() {
            causes.push(field::required(&path.child("name"), ""));
        } else {
            causes.extend(field::invalid_each(
                &path.child("name"),
                &var.name,
                rules::env_var_name(&var.name),
            ));
        }
        let Some(source) = &var.value_from else {
            continue;
        };
        let path = path.child("valueFrom");
        let mut sources = 0;
        if let Some(field_ref) = &source.field_ref {
            sources += 1;
            let path = path.child("fieldRef");
            if field_ref.field_path.is_empty() {
                causes.push(field::required(&path.child("fieldPath"), ""));
            } else if !is_downward_api_env_field(&field_ref.field_path) {
                causes.push(field::not_supported(
                    &path.child("fieldPath"),
                    &field_ref.field_path,
                    &DOWNWARD_API_ENV_FIELDS,
                ));
            }
        }
        if let Some(resource_ref) = &source.resource_field_ref {
            sources += 1;
            let path = path.child("resourceFieldRef");
            let resource = resource_ref.resource.as_str();
            if resource.is_empty() {
                causes.push(field::required(&path.child("resource"), ""));
            } else if !DOWNWARD_API_RESOURCE_FIELDS.contains(&resource)
                && !resource.starts_with("requests.hugepages-")
                && !resource.starts_with("limits.hugepages-")
            {
                causes.push(field::not_supported(
                    &path.child("resource"),
                    &resource,
                    &DOWNWARD_API_RESOURCE_FIELDS,
                ));
            }
        }
        for (name, key_ref) in [
            (
                "configMapKeyRef",
                source
                    .config_map_key_ref
                    .as_ref()
                    .map(|r| (&r.name, &r.key)),
            ),
            (
                "secretKeyRef",
                source.secret_key_ref.as_ref().map(|r| (&r.name, &r.key)),
            ),
        ] {
            let Some((ref_name, key)) = key_ref else {
                continue;
            };
            sources += 1;
            let path = path.child(name);
            causes.extend(field::invalid_each(
                &path.child("name"),
                ref_name,
                rules::dns1123_subdomain(ref_name),
            ));
            if key.is_empty() {
                causes.push(field::required(&path.child("key"), ""));
            } else {
                causes.extend(field::invalid_each(
                    &path.child("key"),
                    key,
                    rules::config_map_key(key),
                ));
            }
        }
        if source.file_key_ref.is_some() {
            sources += 1;
        }
        if sources == 0 {
            causes.push(field::invalid(&path, &"", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
        } else if var.value.as_ref().is_some_and(|v| !v.is_empty()) {
            causes.push(field::invalid(
                &path,
                &"",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            causes.push(field::invalid(
                &path,
                &"",
                "may not have more than one field specified at a time",
            ));
        }
    }
    causes
}

fn is_downward_api_env_field(path: &str) -> bool {
    if DOWNWARD_API_ENV_FIELDS.contains(&path) {
        return true;
    }
    ["metadata.labels['", "metadata.annotations['"]
        .iter()
        .any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.len() > 2 && rest.ends_with("']"))
        })
}

fn validate_env_from(sources: &[EnvFromSource], path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let item = path.index(i);
        if let Some(prefix) = set(&source.prefix) {
            causes.extend(field::invalid_each(
                &item.child("prefix"),
                prefix,
                rules::env_var_name(prefix),
            ));
        }
        let refs = [
            (
                "configMapRef",
                source.config_map_ref.as_ref().map(|r| &r.name),
            ),
            ("secretRef", source.secret_ref.as_ref().map(|r| &r.name)),
        ];
        for (name, reference) in refs {
            let Some(reference) = reference else { continue };
            if reference.is_empty() {
                causes.push(field::required(&item.child(name).child("name"), ""));
            } else {
                causes.extend(field::invalid_each(
                    &item.child(name).child("name"),
                    reference,
                    NameRule::Dns1123Subdomain.check(reference, true),
                ));
            }
        }
        match refs.iter().filter(|(_, r)| r.is_some()).count() {
            0 => causes.push(field::invalid(
                path,
                &"",
                "must specify one of: `configMapRef` or `secretRef`",
            )),
            1 => {}
            _ => causes.push(field::invalid(
                path,
                &"",
                "may not have more than one field specified at a time",
            )),
        }
    }
    causes
}

fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeSet<String>,
    path: &FieldPath,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut mount_points = BTreeSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let item = path.index(i);
        if mount.name.is_empty() {
            causes.push(field::required(&item.child("name"), ""));
        }
        if !volumes.contains(&mount.name) {
            causes.push(field::not_found(&item.child("name"), &mount.name));
        }
        if mount.mount_path.is_empty() {
            causes.push(field::required(&item.child("mountPath"), ""));
        }
        if !mount_points.insert(mount.mount_path.as_str()) {
            causes.push(field::invalid(
                &item.child("mountPath"),
                &mount.mount_path,
                "must be unique",
            ));
        }
        let sub_path = set(&mount.sub_path);
        if let Some(sub_path) = sub_path {
            causes.extend(local_descending_path(sub_path, &path.child("subPath")));
        }
        if let Some(expression) = set(&mount.sub_path_expr) {
            if sub_path.is_some() {
                causes.push(field::invalid(
                    &item.child("subPathExpr"),
                    &expression,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            causes.extend(local_descending_path(
                expression,
                &path.child("subPathExpr"),
            ));
        }
    }
    causes
}

fn validate_probes_and_lifecycle(container: &Container, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(lifecycle) = &container.lifecycle {
        for (name, handler) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(handler) = handler {
                causes.extend(validate_lifecycle_handler(
                    handler,
                    &path.child("lifecycle").child(name),
                ));
            }
        }
    }
    for (name, probe) in [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ] {
        let Some(probe) = probe else { continue };
        let path = path.child(name);
        causes.extend(validate_probe(probe, &path));
        if name == "readinessProbe" {
            if let Some(grace) = probe.termination_grace_period_seconds {
                causes.push(field::invalid(
                    &path.child("terminationGracePeriodSeconds"),
                    &grace,
                    "must not be set for readinessProbes",
                ));
            }
        } else if let Some(threshold) = probe.success_threshold.filter(|t| *t != 1) {
            causes.push(field::invalid(
                &path.child("successThreshold"),
                &threshold,
                "must be 1",
            ));
        }
    }
    causes
}

fn validate_probe(probe: &Probe, path: &FieldPath) -> Vec<Cause> {
    let mut handlers = Vec::new();
    if let Some(exec) = &probe.exec {
        handlers.push((
            "exec",
            exec_causes(exec.command.as_deref(), &path.child("exec")),
        ));
    }
    if let Some(http) = &probe.http_get {
        handlers.push(("httpGet", http_get_causes(http, &path.child("httpGet"))));
    }
    if let Some(tcp) = &probe.tcp_socket {
        handlers.push((
            "tcpSocket",
            port_num_or_name(&tcp.port, &path.child("tcpSocket").child("port")),
        ));
    }
    if let Some(grpc) = &probe.grpc {
        handlers.push((
            "grpc",
            port_num_or_name(
                &IntOrString::Int(grpc.port),
                &path.child("grpc").child("port"),
            ),
        ));
    }
    let mut causes = one_handler(handlers, path);
    for (name, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if let Some(value) = value.filter(|v| *v < 0) {
            causes.push(field::invalid(&path.child(name), &value, IS_NEGATIVE));
        }
    }
    if let Some(grace) = probe.termination_grace_period_seconds.filter(|g| *g <= 0) {
        causes.push(field::invalid(
            &path.child("terminationGracePeriodSeconds"),
            &grace,
            "must be greater than 0",
        ));
    }
    causes
}

fn validate_lifecycle_handler(handler: &LifecycleHandler, path: &FieldPath) -> Vec<Cause> {
    let mut handlers = Vec::new();
    if let Some(exec) = &handler.exec {
        handlers.push((
            "exec",
            exec_causes(exec.command.as_deref(), &path.child("exec")),
        ));
    }
    if let Some(http) = &handler.http_get {
        handlers.push(("httpGet", http_get_causes(http, &path.child("httpGet"))));
    }
    if let Some(tcp) = &handler.tcp_socket {
        handlers.push((
            "tcpSocket",
            port_num_or_name(&tcp.port, &path.child("tcpSocket").child("port")),
        ));
    }
    if let Some(sleep) = &handler.sleep {
        let mut causes = Vec::new();
        if sleep.seconds < 0 {
            causes.push(field::invalid(
                &path.child("sleep"),
                &sleep.seconds,
                "must be non-negative",
            ));
        }
        handlers.push(("sleep", causes));
    }
    one_handler(handlers, path)
}

/// Exactly one handler type; the causes of the first one set.
fn one_handler(handlers: Vec<(&str, Vec<Cause>)>, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if handlers.is_empty() {
        causes.push(field::required(path, "must specify a handler type"));
    }
    for (i, (name, own)) in handlers.into_iter().enumerate() {
        if i == 0 {
            causes.extend(own);
        } else {
            causes.push(field::forbidden(
                &path.child(name),
                "may not specify more than 1 handler type",
            ));
        }
    }
    causes
}

fn exec_causes(command: Option<&[String]>, path: &FieldPath) -> Vec<Cause> {
    if command.unwrap_or_default().is_empty() {
        vec![field::required(&path.child("command"), "")]
    } else {
        Vec::new()
    }
}

fn http_get_causes(http: &HTTPGetAction, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if http.path.as_deref() == Some("") {
        causes.push(field::required(&path.child("path"), ""));
    }
    causes.extend(port_num_or_name(&http.port, &path.child("port")));
    if let Some(scheme) = set(&http.scheme)
        && !matches!(scheme, "HTTP" | "HTTPS")
    {
        causes.push(field::not_supported(
            &path.child("scheme"),
            &scheme,
            &["HTTP", "HTTPS"],
        ));
    }
    causes
}

/// An `IntOrString` port: a number 1–65535 or an IANA service name.
pub(super) fn port_num_or_name(port: &IntOrString, path: &FieldPath) -> Vec<Cause> {
    match port {
        IntOrString::Int(number) => rules::port_number(i64::from(*number))
            .into_iter()
            .map(|m| field::invalid(path, number, &m))
            .collect(),
        IntOrString::String(name) => field::invalid_each(path, name, rules::port_name(name)),
    }
}

fn validate_pod_security_context(spec: &PodSpec, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(context) = &spec.security_context else {
        return causes;
    };
    for (name, id) in [
        ("fsGroup", context.fs_group),
        ("runAsUser", context.run_as_user),
        ("runAsGroup", context.run_as_group),
    ] {
        if let Some(id) = id.filter(|id| !(0..=MAX_UNIX_ID).contains(id)) {
            causes.push(field::invalid(
                &path.child(name),
                &id,
                &rules::inclusive_range_error(0, MAX_UNIX_ID),
            ));
        }
    }
    for (i, group) in context.supplemental_groups.iter().flatten().enumerate() {
        if !(0..=MAX_UNIX_ID).contains(group) {
            causes.push(field::invalid(
                &path.child("supplementalGroups").index(i),
                group,
                &rules::inclusive_range_error(0, MAX_UNIX_ID),
            ));
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        causes.push(field::invalid(
            &path.child("shareProcessNamespace"),
            &true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    causes
}

fn validate_dns_config(spec: &PodSpec, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if spec.dns_policy.as_deref() == Some("None") {
        let Some(config) = &spec.dns_config else {
            return vec![field::required(
                path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )];
        };
        if config.nameservers.as_ref().is_none_or(Vec::is_empty) {
            return vec![field::required(
                &path.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            )];
        }
    }
    let Some(config) = &spec.dns_config else {
        return causes;
    };
    let nameservers = config.nameservers.as_deref().unwrap_or_default();
    if nameservers.len() > 3 {
        causes.push(field::invalid(
            &path.child("nameservers"),
            &Json(nameservers),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, nameserver) in nameservers.iter().enumerate() {
        if rules::parse_ip(nameserver).is_none() {
            causes.push(field::invalid(
                &path.child("nameservers").index(i),
                nameserver,
                rules::INVALID_IP,
            ));
        }
    }
    let searches = config.searches.as_deref().unwrap_or_default();
    if searches.len() > 32 {
        causes.push(field::invalid(
            &path.child("searches"),
            &Json(searches),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        causes.push(field::invalid(
            &path.child("searches"),
            &Json(searches),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        let search = search.strip_suffix('.').unwrap_or(search);
        causes.extend(field::invalid_each(
            &path.child("searches").index(i),
            search,
            rules::dns1123_subdomain(search),
        ));
    }
    for (i, option) in config.options.iter().flatten().enumerate() {
        if option.name.as_deref().unwrap_or_default().is_empty() {
            causes.push(field::required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    causes
}

/// Kubernetes' `ValidateTolerations`.
pub(super) fn validate_tolerations(tolerations: &[Toleration], path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, toleration) in tolerations.iter().enumerate() {
        let path = path.index(i);
        let key = toleration.key.as_deref().unwrap_or_default();
        let operator = toleration.operator.as_deref().unwrap_or_default();
        let effect = toleration.effect.as_deref().unwrap_or_default();
        let value = toleration.value.as_deref().unwrap_or_default();
        if !key.is_empty() {
            causes.extend(field::invalid_each(
                &path.child("key"),
                key,
                rules::qualified_name(key),
            ));
        }
        if key.is_empty() && operator != "Exists" {
            causes.push(field::invalid(
                &path.child("operator"),
                &operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if toleration.toleration_seconds.is_some() && effect != "NoExecute" {
            causes.push(field::invalid(
                &path.child("effect"),
                &effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "Equal" | "" => {
                let errors = rules::label_value(value);
                if !errors.is_empty() {
                    causes.push(field::invalid(
                        &path.child("operator"),
                        &value,
                        &errors.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    causes.push(field::invalid(
                        &path.child("operator"),
                        &value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => causes.push(field::not_supported(
                &path.child("operator"),
                &other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            causes.push(field::not_supported(
                &path.child("effect"),
                &effect,
                &TAINT_EFFECTS,
            ));
        }
    }
    causes
}

/// A taint or toleration effect.
pub(super) fn validate_taint_effect(effect: &str, path: &FieldPath) -> Vec<Cause> {
    if effect.is_empty() {
        vec![field::required(path, "")]
    } else if !TAINT_EFFECTS.contains(&effect) {
        vec![field::not_supported(path, &effect, &TAINT_EFFECTS)]
    } else {
        Vec::new()
    }
}

const UPDATABLE_POD_SPEC_FIELDS: [&str; 5] = [
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

/// What a pod update may change: images, `activeDeadlineSeconds` (set, or
/// lowered), tolerations (added), scheduling gates (removed); nothing else.
fn validate_pod_spec_update(new: &PodSpec, old: &PodSpec) -> Vec<Cause> {
    let path = FieldPath::new("spec");
    let mut causes = Vec::new();
    let init = |spec: &PodSpec| spec.init_containers.clone().unwrap_or_default();
    for (name, new_containers, old_containers) in [
        ("containers", new.containers.clone(), old.containers.clone()),
        ("initContainers", init(new), init(old)),
    ] {
        if new_containers.len() != old_containers.len() {
            causes.push(field::forbidden(
                &path.child(name),
                "pod updates may not add or remove containers",
            ));
            return causes;
        }
    }
    match (new.active_deadline_seconds, old.active_deadline_seconds) {
        (Some(deadline), _) if !(0..=MAX_INT32).contains(&deadline) => {
            causes.push(field::invalid(
                &path.child("activeDeadlineSeconds"),
                &deadline,
                &rules::inclusive_range_error(0, MAX_INT32),
            ));
            return causes;
        }
        (Some(deadline), Some(previous)) if deadline > previous => {
            causes.push(field::invalid(
                &path.child("activeDeadlineSeconds"),
                &deadline,
                "must be less than or equal to previous value",
            ));
            return causes;
        }
        (None, Some(_)) => causes.push(field::invalid(
            &path.child("activeDeadlineSeconds"),
            &field::Rendered("null".to_owned()),
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    let new_tolerations = new.tolerations.as_deref().unwrap_or_default();
    for existing in old.tolerations.iter().flatten() {
        let kept = new_tolerations.iter().any(|t| {
            Toleration {
                toleration_seconds: t.toleration_seconds,
                ..existing.clone()
            } == *t
        });
        if !kept {
            causes.push(field::forbidden(
                &path.child("tolerations"),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    let old_gates: BTreeSet<&str> = old
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, gate) in new.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(gate.name.as_str()) {
            causes.push(field::forbidden(
                &path.child("schedulingGates").index(i).child("name"),
                &format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    gate.name
                ),
            ));
        }
    }

    // Everything else must be unchanged: copy the mutable fields from the
    // old spec and compare what remains.
    let mut munged = new.clone();
    for (container, previous) in munged.containers.iter_mut().zip(&old.containers) {
        container.image.clone_from(&previous.image);
    }
    for (container, previous) in munged
        .init_containers
        .iter_mut()
        .flatten()
        .zip(old.init_containers.iter().flatten())
    {
        container.image.clone_from(&previous.image);
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.tolerations.clone_from(&old.tolerations);
    munged.scheduling_gates.clone_from(&old.scheduling_gates);
    if old.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    let (old_json, new_json) = (semantic(old), semantic(&munged));
    if old_json != new_json {
        let mut differences = Vec::new();
        diff_paths("spec", &old_json, &new_json, &mut differences);
        causes.push(field::forbidden(
            &path,
            &format!(
                "pod updates may not change fields other than {}\n{}",
                UPDATABLE_POD_SPEC_FIELDS.join(","),
                differences.join("\n")
            ),
        ));
    }
    causes
}

/// A spec as JSON with empty lists, maps and strings dropped, so that
/// `[]`, `{}`, `""` and absent compare equal, as Kubernetes' semantic
/// equality has it.
fn semantic(spec: &PodSpec) -> Value {
    fn prune(value: Value) -> Option<Value> {
        match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::Array(items) => {
                let items: Vec<Value> = items
                    .into_iter()
                    .map(|v| prune(v).unwrap_or(Value::Null))
                    .collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            Value::Object(map) => {
                let map: serde_json::Map<String, Value> = map
                    .into_iter()
                    .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                    .collect();
                (!map.is_empty()).then_some(Value::Object(map))
            }
            other => Some(other),
        }
    }
    prune(serde_json::to_value(spec).unwrap_or(Value::Null)).unwrap_or(Value::Null)
}

/// `path: old -> new` for every leaf that differs.
fn diff_paths(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                if x != y {
                    diff_paths(&format!("{path}.{key}"), x, y, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    diff_paths(&format!("{path}[{i}]"), x, y, out);
                }
            }
        }
        _ => out.push(format!("  {path}: {old} -> {new}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::error::CauseType::{self, *};
    use crate::apiserver::validation::testing::summary;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    fn web() -> Value {
        json!({"containers": [{"name": "web", "image": "nginx:1.27"}]})
    }

    /// A pod with `spec` is rejected for exactly `expected`.
    fn check(spec: Value, expected: &[(CauseType, &str)]) {
        let causes = pod(spec.clone()).validate_create();
        assert_eq!(summary(&causes), expected, "{spec}\n{causes:#?}");
    }

    #[test]
    fn valid_pods() {
        check(web(), &[]);
        check(
            json!({
                "restartPolicy": "OnFailure", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30,
                "activeDeadlineSeconds": 60, "nodeSelector": {"skiff.dev/wasm-enabled": "true"}, "runtimeClassName": "wasmtime",
                "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}, {"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "scratch"}],
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{
                    "name": "web", "image": "ghcr.io/skiff/web:1", "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9090, "hostPort": 9090}],
                    "env": [{"name": "MY_ENV.name-1", "value": "x"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                    "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi", "example.com/gpu": "1"},
                                  "limits": {"cpu": "1", "memory": "128Mi", "example.com/gpu": "1"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "web"}, {"name": "cfg", "mountPath": "/etc/cfg"}],
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                    "readinessProbe": {"tcpSocket": {"port": 8080}},
                    "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}
                }],
                "tolerations": [{"key": "skiff.dev/gpu", "operator": "Exists", "effect": "NoSchedule"},
                                {"operator": "Exists"},
                                {"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30}]
            }),
            &[],
        );
    }

    #[test]
    fn containers_and_ports() {
        check(json!({"containers": []}), &[(Required, "spec.containers")]);
        check(json!({}), &[(Required, "spec.containers")]);
        check(
            json!({"containers": [{"name": "Web", "image": "x"}]}),
            &[(Invalid, "spec.containers[0].name")],
        );
        check(
            json!({"containers": [{"name": "", "image": "x"}]}),
            &[(Required, "spec.containers[0].name")],
        );
        check(
            json!({"containers": [{"name": "web"}]}),
            &[(Required, "spec.containers[0].image")],
        );
        check(
            json!({"containers": [{"name": "web", "image": " x "}]}),
            &[(Invalid, "spec.containers[0].image")],
        );
        check(
            json!({"containers": [{"name": "web", "image": "x"}, {"name": "web", "image": "y"}]}),
            &[(Duplicate, "spec.containers[1].name")],
        );
        check(
            json!({"initContainers": [{"name": "web", "image": "x"}], "containers": [{"name": "web", "image": "y"}]}),
            &[(Duplicate, "spec.initContainers[0].name")],
        );
        check(
            json!({"containers": [{"name": "web", "image": "x", "ports": [
                {"containerPort": 0}, {"containerPort": 70000}, {"containerPort": 80, "protocol": "HTTP"},
                {"containerPort": 81, "name": "HTTP"}, {"containerPort": 82, "name": "web"}, {"containerPort": 83, "name": "web"},
                {"containerPort": 84, "hostPort": 70000}, {"containerPort": 85, "name": "this-name-is-too-long"}]}]}),
            &[
                (Required, "spec.containers[0].ports[0].containerPort"),
                (Invalid, "spec.containers[0].ports[1].containerPort"),
                (NotSupported, "spec.containers[0].ports[2].protocol"),
                (Invalid, "spec.containers[0].ports[3].name"),
                (Invalid, "spec.containers[0].ports[3].name"),
                (Duplicate, "spec.containers[0].ports[5].name"),
                (Invalid, "spec.containers[0].ports[6].hostPort"),
                (Invalid, "spec.containers[0].ports[7].name"),
            ],
        );
        check(
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]},
                                  {"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]}]}),
            &[(Duplicate, "spec.containers[1].ports[0].hostPort")],
        );
        check(
            json!({"hostNetwork": true, "containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 81}]}]}),
            &[(Invalid, "spec.containers[0].ports[0].hostPort")],
        );
        check(
            json!({"containers": [{"name": "web", "image": "x", "restartPolicy": "Always"}]}),
            &[(Forbidden, "spec.containers[0].restartPolicy")],
        );
        check(
            json!({"initContainers": [{"name": "i", "image": "x", "restartPolicy": "Never", "livenessProbe": {"exec": {"command": ["true"]}}}],
                   "containers": [{"name": "web", "image": "x"}]}),
            &[
                (NotSupported, "spec.initContainers[0].restartPolicy"),
                (Forbidden, "spec.initContainers[0].livenessProbe"),
            ],
        );
        check(
            json!({"containers": [{"name": "web", "image": "x", "imagePullPolicy": "Sometimes", "terminationMessagePolicy": "Log"}]}),
            &[
                (NotSupported, "spec.containers[0].terminationMessagePolicy"),
                (NotSupported, "spec.containers[0].imagePullPolicy"),
            ],
        );
    }

    #[test]
    fn env_volumes_and_mounts() {
        check(
            json!({"containers": [{"name": "web", "image": "x", "env": [
                {"name": ""}, {"name": "1BAD"}, {"name": "A", "valueFrom": {}},
                {"name": "B", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}},
                {"name": "D", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a/b"}}}]}]}),
            &[
                (Required, "spec.containers[0].env[0].name"),
                (Invalid, "spec.containers[0].env[1].name"),
                (Invalid, "spec.containers[0].env[2].valueFrom"),
                (Invalid, "spec.containers[0].env[3].valueFrom"),
                (
                    NotSupported,
                    "spec.containers[0].env[4].valueFrom.fieldRef.fieldPath",
                ),
                (
                    Invalid,
                    "spec.containers[0].env[5].valueFrom.secretKeyRef.key",
                ),
            ],
        );
        check(
            json!({"containers": [{"name": "web", "image": "x", "envFrom": [{"prefix": "1X"}]}]}),
            &[
                (Invalid, "spec.containers[0].envFrom[0].prefix"),
                (Invalid, "spec.containers[0].envFrom"),
            ],
        );
        check(
            json!({"volumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}, {"name": "B", "emptyDir": {}},
                               {"name": "c", "emptyDir": {}, "hostPath": {"path": "/x"}}, {"name": "d", "hostPath": {"path": ""}},
                               {"name": "e", "secret": {}}],
                   "containers": [{"name": "web", "image": "x"}]}),
            &[
                (Duplicate, "spec.volumes[1].name"),
                (Invalid, "spec.volumes[2].name"),
                (Forbidden, "spec.volumes[3].hostPath"),
                (Required, "spec.volumes[4].hostPath.path"),
                (Required, "spec.volumes[5].secret.secretName"),
            ],
        );
        check(
            json!({"volumes": [{"name": "data", "emptyDir": {}}],
                   "containers": [{"name": "web", "image": "x", "volumeMounts": [
                       {"name": "data", "mountPath": "/data"}, {"name": "missing", "mountPath": "/m"},
                       {"name": "data", "mountPath": "/data"}, {"name": "data", "mountPath": "/s", "subPath": "../etc"},
                       {"name": "data", "mountPath": ""}]}]}),
            &[
                (Invalid, "spec.containers[0].volumeMounts[1].name"),
                (Invalid, "spec.containers[0].volumeMounts[2].mountPath"),
                (Invalid, "spec.containers[0].volumeMounts.subPath"),
                (Required, "spec.containers[0].volumeMounts[4].mountPath"),
            ],
        );
        let causes = pod(json!({"containers": [{"name": "web", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]})).validate_create();
        assert_eq!(causes[0].message, "Not found: \"data\"");
    }

    #[test]
    fn resources() {
        let with = |resources: Value| json!({"containers": [{"name": "web", "image": "x", "resources": resources}]});
        check(
            with(json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})),
            &[(Invalid, "spec.containers[0].resources.requests")],
        );
        check(
            with(json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "0.5"}})),
            &[],
        );
        check(
            with(json!({"requests": {"memory": "1Gi"}, "limits": {"memory": "1G"}})),
            &[(Invalid, "spec.containers[0].resources.requests")],
        );
        check(
            with(json!({"limits": {"cpu": "-1"}})),
            &[(Invalid, "spec.containers[0].resources.limits[cpu]")],
        );
        check(
            with(json!({"limits": {"cpu": "one"}})),
            &[(Invalid, "spec.containers[0].resources.limits[cpu]")],
        );
        check(
            with(json!({"requests": {"gpu": "1"}})),
            &[
                (Invalid, "spec.containers[0].resources.requests[gpu]"),
                (Invalid, "spec.containers[0].resources.requests[gpu]"),
            ],
        );
        check(
            with(json!({"requests": {"example.com/gpu": "1"}})),
            &[(Required, "spec.containers[0].resources.limits")],
        );
        check(
            with(json!({"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "2"}})),
            &[(Invalid, "spec.containers[0].resources.requests")],
        );
        check(
            with(json!({"limits": {"example.com/gpu": "500m"}})),
            &[(
                Invalid,
                "spec.containers[0].resources.limits[example.com/gpu]",
            )],
        );
        check(
            with(json!({"limits": {"hugepages-2Mi": "2Mi"}})),
            &[(Forbidden, "spec.containers[0].resources")],
        );

        let causes = pod(with(
            json!({"requests": {"cpu": "2000m"}, "limits": {"cpu": "1"}}),
        ))
        .validate_create();
        assert_eq!(
            causes[0].message,
            "Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        );
        let causes = pod(with(json!({"limits": {"cpu": "one"}}))).validate_create();
        assert_eq!(
            causes[0].message,
            "Invalid value: \"one\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn pod_level_fields() {
        let with = |extra: Value| {
            let mut spec = web();
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            spec
        };
        check(
            with(json!({"restartPolicy": "Sometimes"})),
            &[(NotSupported, "spec.restartPolicy")],
        );
        check(
            with(json!({"dnsPolicy": "Google"})),
            &[(NotSupported, "spec.dnsPolicy")],
        );
        check(
            with(json!({"terminationGracePeriodSeconds": -1})),
            &[(Invalid, "spec.terminationGracePeriodSeconds")],
        );
        check(
            with(json!({"activeDeadlineSeconds": 0})),
            &[(Invalid, "spec.activeDeadlineSeconds")],
        );
        check(
            with(json!({"nodeName": "Node_1"})),
            &[(Invalid, "spec.nodeName")],
        );
        check(
            with(json!({"nodeSelector": {"a": "b c"}})),
            &[(Invalid, "spec.nodeSelector")],
        );
        check(
            with(json!({"hostname": "a.b"})),
            &[(Invalid, "spec.hostname")],
        );
        check(
            with(json!({"runtimeClassName": "Wasm"})),
            &[(Invalid, "spec.runtimeClassName")],
        );
        check(
            with(json!({"serviceAccountName": "-sa"})),
            &[(Invalid, "spec.serviceAccountName")],
        );
        check(
            with(json!({"securityContext": {"runAsUser": -1}})),
            &[(Invalid, "spec.securityContext.runAsUser")],
        );
        check(
            with(json!({"hostAliases": [{"ip": "not-ip", "hostnames": ["ok"]}]})),
            &[(Invalid, "spec.hostAliases[0].ip")],
        );
        check(
            with(json!({"dnsPolicy": "None"})),
            &[(Required, "spec.dnsConfig")],
        );
        check(
            with(json!({"schedulingGates": [{"name": "a.io/g"}, {"name": "a.io/g"}]})),
            &[(Duplicate, "spec.schedulingGates[1]")],
        );
        check(
            with(json!({"nodeName": "n1", "schedulingGates": [{"name": "a.io/g"}]})),
            &[(Forbidden, "spec.nodeName")],
        );
        check(
            with(json!({"tolerations": [
                {"key": "k", "operator": "Exists", "value": "v"}, {"operator": "Equal", "value": "v"},
                {"key": "k", "operator": "Like"}, {"key": "k", "effect": "Sometimes"},
                {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]})),
            &[
                (Invalid, "spec.tolerations[0].operator"),
                (Invalid, "spec.tolerations[1].operator"),
                (NotSupported, "spec.tolerations[2].operator"),
                (NotSupported, "spec.tolerations[3].effect"),
                (Invalid, "spec.tolerations[4].effect"),
            ],
        );
        check(
            with(
                json!({"containers": [{"name": "web", "image": "x", "livenessProbe": {"periodSeconds": -1, "successThreshold": 2}}]}),
            ),
            &[
                (Required, "spec.containers[0].livenessProbe"),
                (Invalid, "spec.containers[0].livenessProbe.periodSeconds"),
                (Invalid, "spec.containers[0].livenessProbe.successThreshold"),
            ],
        );
        check(
            with(
                json!({"containers": [{"name": "web", "image": "x", "readinessProbe": {"exec": {"command": ["a"]}, "tcpSocket": {"port": 0}}}]}),
            ),
            &[(Forbidden, "spec.containers[0].readinessProbe.tcpSocket")],
        );
        check(
            with(json!({"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]})),
            &[(Forbidden, "spec.ephemeralContainers")],
        );
    }

    /// Updating `old` to `new` is rejected for exactly `expected`.
    fn check_update(old: Value, new: Value, expected: &[(CauseType, &str)]) {
        let causes = pod(new.clone()).validate_update(&pod(old));
        assert_eq!(summary(&causes), expected, "{new}\n{causes:#?}");
    }

    #[test]
    fn pod_updates() {
        let base = json!({"containers": [{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}],
                          "activeDeadlineSeconds": 100,
                          "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]});
        let changed = |patch: Value| {
            let mut spec = base.clone();
            json_patch::merge(&mut spec, &patch);
            spec
        };
        check_update(base.clone(), base.clone(), &[]);
        check_update(
            base.clone(),
            changed(
                json!({"containers": [{"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}]}]}),
            ),
            &[],
        );
        check_update(
            base.clone(),
            changed(json!({"activeDeadlineSeconds": 50})),
            &[],
        );
        check_update(
            base.clone(),
            changed(json!({"activeDeadlineSeconds": 200})),
            &[(Invalid, "spec.activeDeadlineSeconds")],
        );
        check_update(
            base.clone(),
            changed(json!({"activeDeadlineSeconds": null})),
            &[(Invalid, "spec.activeDeadlineSeconds")],
        );
        check_update(
            base.clone(),
            changed(
                json!({"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
                                            {"key": "new", "operator": "Exists"}]}),
            ),
            &[],
        );
        check_update(
            base.clone(),
            changed(json!({"tolerations": []})),
            &[(Forbidden, "spec.tolerations")],
        );
        check_update(
            base.clone(),
            changed(
                json!({"containers": [{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 8080}]}]}),
            ),
            &[(Forbidden, "spec")],
        );
        check_update(
            base.clone(),
            changed(
                json!({"containers": [{"name": "web", "image": "x"}, {"name": "side", "image": "y"}]}),
            ),
            &[(Forbidden, "spec.containers")],
        );
        check_update(
            base.clone(),
            changed(json!({"schedulingGates": [{"name": "a.io/g"}]})),
            &[(Forbidden, "spec.schedulingGates[0].name")],
        );
        check_update(
            base.clone(),
            changed(
                json!({"containers": [{"name": "web", "image": "", "ports": [{"containerPort": 80}]}]}),
            ),
            &[(Required, "spec.containers[0].image")],
        );

        let causes = pod(changed(json!({"nodeName": "n2"}))).validate_update(&pod(base.clone()));
        assert!(causes[0].message.starts_with(
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
        ));
        assert!(
            causes[0].message.contains("spec.nodeName: null -> \"n2\""),
            "{}",
            causes[0].message
        );
    }
}
