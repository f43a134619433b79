//! Patch metadata of the built-in types: which lists merge by which key,
//! which fields retain keys, and which definition a field holds.
//!
//! The table covers every definition reachable from the roots that
//! [`root`] names (core/v1 Namespace, Pod, Node, Service, Endpoints,
//! ConfigMap, Secret and Event; discovery.k8s.io/v1 EndpointSlice;
//! coordination.k8s.io/v1 Lease; node.k8s.io/v1 RuntimeClass; apps/v1
//! Deployment and ReplicaSet). A field is listed when it holds an object
//! definition (so strategic merge can walk into it) or has patch metadata;
//! fields of primitives, quantities, timestamps and free-form maps without
//! patch metadata are absent, and [`field`] answers `None` for them.
//!
//! Field names and child definitions are those of the Kubernetes 1.37
//! OpenAPI documents (as k8s-openapi 0.29 generates its `v1_37` types from
//! them); strategies and merge keys are Kubernetes' `patchStrategy` /
//! `patchMergeKey` tags, i.e. its `x-kubernetes-patch-strategy` /
//! `x-kubernetes-patch-merge-key` extensions, and must stay exactly those.
//! Architecture invariant: this module is a table of facts and does no
//! merging; `super::apply` is the only reader that interprets it.

/// How a field is patched, as Kubernetes' `patchStrategy` tag and the
/// OpenAPI extensions `x-kubernetes-patch-strategy` /
/// `x-kubernetes-patch-merge-key` describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldMeta {
    /// The OpenAPI definition the field holds (for a list: of its items),
    /// e.g. `io.k8s.api.core.v1.Container`; `None` for primitives and
    /// free-form maps.
    pub definition: Option<&'static str>,
    /// `x-kubernetes-patch-strategy`: `"merge"`, `"retainKeys"`,
    /// `"merge,retainKeys"` or `"replace"`; `None` when the field has none.
    pub strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`, for lists merged by a key.
    pub merge_key: Option<&'static str>,
}

/// The patch metadata of `field` of the OpenAPI definition `definition`
/// (e.g. `("io.k8s.api.core.v1.PodSpec", "containers")`), if it has any.
pub fn field(definition: &str, field: &str) -> Option<FieldMeta> {
    let fields = DEFINITIONS
        .binary_search_by(|(name, _)| (*name).cmp(definition))
        .ok()
        .map(|index| DEFINITIONS[index].1)?;
    fields
        .binary_search_by(|(name, _)| (*name).cmp(field))
        .ok()
        .map(|index| fields[index].1)
}

/// The OpenAPI definition of the kind `kind` served at `api_version`
/// (e.g. `("v1", "Pod")` → `io.k8s.api.core.v1.Pod`), for the kinds whose
/// definitions [`field`] covers.
pub fn root(api_version: &str, kind: &str) -> Option<&'static str> {
    ROOTS
        .iter()
        .find(|(version, name, _)| *version == api_version && *name == kind)
        .map(|(_, _, definition)| *definition)
}

/// `(apiVersion, kind, definition)` of the kinds the table starts from.
const ROOTS: &[(&str, &str, &str)] = &[
    ("v1", "Namespace", "io.k8s.api.core.v1.Namespace"),
    ("v1", "Pod", "io.k8s.api.core.v1.Pod"),
    ("v1", "Node", "io.k8s.api.core.v1.Node"),
    ("v1", "Service", "io.k8s.api.core.v1.Service"),
    ("v1", "Endpoints", "io.k8s.api.core.v1.Endpoints"),
    ("v1", "ConfigMap", "io.k8s.api.core.v1.ConfigMap"),
    ("v1", "Secret", "io.k8s.api.core.v1.Secret"),
    ("v1", "Event", "io.k8s.api.core.v1.Event"),
    (
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "io.k8s.api.discovery.v1.EndpointSlice",
    ),
    (
        "coordination.k8s.io/v1",
        "Lease",
        "io.k8s.api.coordination.v1.Lease",
    ),
    (
        "node.k8s.io/v1",
        "RuntimeClass",
        "io.k8s.api.node.v1.RuntimeClass",
    ),
    ("apps/v1", "Deployment", "io.k8s.api.apps.v1.Deployment"),
    ("apps/v1", "ReplicaSet", "io.k8s.api.apps.v1.ReplicaSet"),
];

/// A field holding an object (or a list of objects) without patch
/// metadata: objects merge, lists are replaced.
const fn child(definition: &'static str) -> FieldMeta {
    FieldMeta {
        definition: Some(definition),
        strategy: None,
        merge_key: None,
    }
}

/// A list of objects merged item by item on `merge_key`.
const fn merge_by(definition: &'static str, merge_key: &'static str) -> FieldMeta {
    FieldMeta {
        definition: Some(definition),
        strategy: Some("merge"),
        merge_key: Some(merge_key),
    }
}

/// A list of objects merged on `merge_key` whose items also honour
/// `$retainKeys` (one-of unions such as a volume's source).
const fn merge_retaining_keys_by(definition: &'static str, merge_key: &'static str) -> FieldMeta {
    FieldMeta {
        definition: Some(definition),
        strategy: Some("merge,retainKeys"),
        merge_key: Some(merge_key),
    }
}

/// A list of primitives merged as an ordered set (e.g. finalizers).
const fn merge_primitives() -> FieldMeta {
    FieldMeta {
        definition: None,
        strategy: Some("merge"),
        merge_key: None,
    }
}

/// An object (a one-of union) that honours `$retainKeys`.
const fn retain_keys(definition: &'static str) -> FieldMeta {
    FieldMeta {
        definition: Some(definition),
        strategy: Some("retainKeys"),
        merge_key: None,
    }
}

/// Fields of each definition, both sorted by name for binary search.
///
/// Lists that Kubernetes declares `x-kubernetes-list-type: map` without a
/// patch strategy (e.g. `ResourceRequirements.claims`,
/// `PodStatus.volumeHealth`, `PodStatus.nodeAllocatableResourceClaimStatuses`)
/// are deliberately plain: strategic merge replaces them.
#[rustfmt::skip]
static DEFINITIONS: &[(&str, &[(&str, FieldMeta)])] = &[
    (
        "io.k8s.api.apps.v1.Deployment",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("spec", child("io.k8s.api.apps.v1.DeploymentSpec")),
            ("status", child("io.k8s.api.apps.v1.DeploymentStatus")),
        ],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        &[
            ("selector", child("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")),
            ("strategy", retain_keys("io.k8s.api.apps.v1.DeploymentStrategy")),
            ("template", child("io.k8s.api.core.v1.PodTemplateSpec")),
        ],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        &[
            ("conditions", merge_by("io.k8s.api.apps.v1.DeploymentCondition", "type")),
        ],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStrategy",
        &[
            ("rollingUpdate", child("io.k8s.api.apps.v1.RollingUpdateDeployment")),
        ],
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSet",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("spec", child("io.k8s.api.apps.v1.ReplicaSetSpec")),
            ("status", child("io.k8s.api.apps.v1.ReplicaSetStatus")),
        ],
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetSpec",
        &[
            ("selector", child("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")),
            ("template", child("io.k8s.api.core.v1.PodTemplateSpec")),
        ],
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        &[
            ("conditions", merge_by("io.k8s.api.apps.v1.ReplicaSetCondition", "type")),
        ],
    ),
    (
        "io.k8s.api.coordination.v1.Lease",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("spec", child("io.k8s.api.coordination.v1.LeaseSpec")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Affinity",
        &[
            ("nodeAffinity", child("io.k8s.api.core.v1.NodeAffinity")),
            ("podAffinity", child("io.k8s.api.core.v1.PodAffinity")),
            ("podAntiAffinity", child("io.k8s.api.core.v1.PodAntiAffinity")),
        ],
    ),
    (
        "io.k8s.api.core.v1.CSIVolumeSource",
        &[
            ("nodePublishSecretRef", child("io.k8s.api.core.v1.LocalObjectReference")),
        ],
    ),
    (
        "io.k8s.api.core.v1.CephFSVolumeSource",
        &[
            ("secretRef", child("io.k8s.api.core.v1.LocalObjectReference")),
        ],
    ),
    (
        "io.k8s.api.core.v1.CinderVolumeSource",
        &[
            ("secretRef", child("io.k8s.api.core.v1.LocalObjectReference")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ClusterTrustBundleProjection",
        &[
            ("labelSelector", child("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ConfigMap",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ConfigMapProjection",
        &[
            ("items", child("io.k8s.api.core.v1.KeyToPath")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ConfigMapVolumeSource",
        &[
            ("items", child("io.k8s.api.core.v1.KeyToPath")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Container",
        &[
            ("env", merge_by("io.k8s.api.core.v1.EnvVar", "name")),
            ("envFrom", child("io.k8s.api.core.v1.EnvFromSource")),
            ("lifecycle", child("io.k8s.api.core.v1.Lifecycle")),
            ("livenessProbe", child("io.k8s.api.core.v1.Probe")),
            ("ports", merge_by("io.k8s.api.core.v1.ContainerPort", "containerPort")),
            ("readinessProbe", child("io.k8s.api.core.v1.Probe")),
            ("resizePolicy", child("io.k8s.api.core.v1.ContainerResizePolicy")),
            ("resources", child("io.k8s.api.core.v1.ResourceRequirements")),
            ("restartPolicyRules", child("io.k8s.api.core.v1.ContainerRestartRule")),
            ("securityContext", child("io.k8s.api.core.v1.SecurityContext")),
            ("startupProbe", child("io.k8s.api.core.v1.Probe")),
            ("volumeDevices", merge_by("io.k8s.api.core.v1.VolumeDevice", "devicePath")),
            ("volumeMounts", merge_by("io.k8s.api.core.v1.VolumeMount", "mountPath")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ContainerRestartRule",
        &[
            ("exitCodes", child("io.k8s.api.core.v1.ContainerRestartRuleOnExitCodes")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ContainerState",
        &[
            ("running", child("io.k8s.api.core.v1.ContainerStateRunning")),
            ("terminated", child("io.k8s.api.core.v1.ContainerStateTerminated")),
            ("waiting", child("io.k8s.api.core.v1.ContainerStateWaiting")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        &[
            ("allocatedResourcesStatus", merge_by("io.k8s.api.core.v1.ResourceStatus", "name")),
            ("lastState", child("io.k8s.api.core.v1.ContainerState")),
            ("resources", child("io.k8s.api.core.v1.ResourceRequirements")),
            ("state", child("io.k8s.api.core.v1.ContainerState")),
            ("user", child("io.k8s.api.core.v1.ContainerUser")),
            ("volumeMounts", merge_by("io.k8s.api.core.v1.VolumeMountStatus", "mountPath")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ContainerUser",
        &[
            ("linux", child("io.k8s.api.core.v1.LinuxContainerUser")),
        ],
    ),
    (
        "io.k8s.api.core.v1.DownwardAPIProjection",
        &[
            ("items", child("io.k8s.api.core.v1.DownwardAPIVolumeFile")),
        ],
    ),
    (
        "io.k8s.api.core.v1.DownwardAPIVolumeFile",
        &[
            ("fieldRef", child("io.k8s.api.core.v1.ObjectFieldSelector")),
            ("resourceFieldRef", child("io.k8s.api.core.v1.ResourceFieldSelector")),
        ],
    ),
    (
        "io.k8s.api.core.v1.DownwardAPIVolumeSource",
        &[
            ("items", child("io.k8s.api.core.v1.DownwardAPIVolumeFile")),
        ],
    ),
    (
        "io.k8s.api.core.v1.EndpointAddress",
        &[
            ("targetRef", child("io.k8s.api.core.v1.ObjectReference")),
        ],
    ),
    (
        "io.k8s.api.core.v1.EndpointSubset",
        &[
            ("addresses", child("io.k8s.api.core.v1.EndpointAddress")),
            ("notReadyAddresses", child("io.k8s.api.core.v1.EndpointAddress")),
            ("ports", child("io.k8s.api.core.v1.EndpointPort")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Endpoints",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("subsets", child("io.k8s.api.core.v1.EndpointSubset")),
        ],
    ),
    (
        "io.k8s.api.core.v1.EnvFromSource",
        &[
            ("configMapRef", child("io.k8s.api.core.v1.ConfigMapEnvSource")),
            ("secretRef", child("io.k8s.api.core.v1.SecretEnvSource")),
        ],
    ),
    (
        "io.k8s.api.core.v1.EnvVar",
        &[
            ("valueFrom", child("io.k8s.api.core.v1.EnvVarSource")),
        ],
    ),
    (
        "io.k8s.api.core.v1.EnvVarSource",
        &[
            ("configMapKeyRef", child("io.k8s.api.core.v1.ConfigMapKeySelector")),
            ("fieldRef", child("io.k8s.api.core.v1.ObjectFieldSelector")),
            ("fileKeyRef", child("io.k8s.api.core.v1.FileKeySelector")),
            ("resourceFieldRef", child("io.k8s.api.core.v1.ResourceFieldSelector")),
            ("secretKeyRef", child("io.k8s.api.core.v1.SecretKeySelector")),
        ],
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        &[
            ("env", merge_by("io.k8s.api.core.v1.EnvVar", "name")),
            ("envFrom", child("io.k8s.api.core.v1.EnvFromSource")),
            ("lifecycle", child("io.k8s.api.core.v1.Lifecycle")),
            ("livenessProbe", child("io.k8s.api.core.v1.Probe")),
            ("ports", merge_by("io.k8s.api.core.v1.ContainerPort", "containerPort")),
            ("readinessProbe", child("io.k8s.api.core.v1.Probe")),
            ("resizePolicy", child("io.k8s.api.core.v1.ContainerResizePolicy")),
            ("resources", child("io.k8s.api.core.v1.ResourceRequirements")),
            ("restartPolicyRules", child("io.k8s.api.core.v1.ContainerRestartRule")),
            ("securityContext", child("io.k8s.api.core.v1.SecurityContext")),
            ("startupProbe", child("io.k8s.api.core.v1.Probe")),
            ("volumeDevices", merge_by("io.k8s.api.core.v1.VolumeDevice", "devicePath")),
            ("volumeMounts", merge_by("io.k8s.api.core.v1.VolumeMount", "mountPath")),
        ],
    ),
    (
        "io.k8s.api.core.v1.EphemeralVolumeSource",
        &[
            ("volumeClaimTemplate", child("io.k8s.api.core.v1.PersistentVolumeClaimTemplate")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Event",
        &[
            ("involvedObject", child("io.k8s.api.core.v1.ObjectReference")),
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("related", child("io.k8s.api.core.v1.ObjectReference")),
            ("series", child("io.k8s.api.core.v1.EventSeries")),
            ("source", child("io.k8s.api.core.v1.EventSource")),
        ],
    ),
    (
        "io.k8s.api.core.v1.FlexVolumeSource",
        &[
            ("secretRef", child("io.k8s.api.core.v1.LocalObjectReference")),
        ],
    ),
    (
        "io.k8s.api.core.v1.HTTPGetAction",
        &[
            ("httpHeaders", child("io.k8s.api.core.v1.HTTPHeader")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ISCSIVolumeSource",
        &[
            ("secretRef", child("io.k8s.api.core.v1.LocalObjectReference")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Lifecycle",
        &[
            ("postStart", child("io.k8s.api.core.v1.LifecycleHandler")),
            ("preStop", child("io.k8s.api.core.v1.LifecycleHandler")),
        ],
    ),
    (
        "io.k8s.api.core.v1.LifecycleHandler",
        &[
            ("exec", child("io.k8s.api.core.v1.ExecAction")),
            ("httpGet", child("io.k8s.api.core.v1.HTTPGetAction")),
            ("sleep", child("io.k8s.api.core.v1.SleepAction")),
            ("tcpSocket", child("io.k8s.api.core.v1.TCPSocketAction")),
        ],
    ),
    (
        "io.k8s.api.core.v1.LoadBalancerIngress",
        &[
            ("ports", child("io.k8s.api.core.v1.PortStatus")),
        ],
    ),
    (
        "io.k8s.api.core.v1.LoadBalancerStatus",
        &[
            ("ingress", child("io.k8s.api.core.v1.LoadBalancerIngress")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Namespace",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("spec", child("io.k8s.api.core.v1.NamespaceSpec")),
            ("status", child("io.k8s.api.core.v1.NamespaceStatus")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        &[
            ("conditions", merge_by("io.k8s.api.core.v1.NamespaceCondition", "type")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Node",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("spec", child("io.k8s.api.core.v1.NodeSpec")),
            ("status", child("io.k8s.api.core.v1.NodeStatus")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeAffinity",
        &[
            ("preferredDuringSchedulingIgnoredDuringExecution", child("io.k8s.api.core.v1.PreferredSchedulingTerm")),
            ("requiredDuringSchedulingIgnoredDuringExecution", child("io.k8s.api.core.v1.NodeSelector")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeAllocatableResourceClaimStatus",
        &[
            ("mapping", child("io.k8s.api.core.v1.NodeAllocatableMappedResources")),
            ("overhead", child("io.k8s.api.core.v1.NodeAllocatableOverheadResources")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeConfigSource",
        &[
            ("configMap", child("io.k8s.api.core.v1.ConfigMapNodeConfigSource")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeConfigStatus",
        &[
            ("active", child("io.k8s.api.core.v1.NodeConfigSource")),
            ("assigned", child("io.k8s.api.core.v1.NodeConfigSource")),
            ("lastKnownGood", child("io.k8s.api.core.v1.NodeConfigSource")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeDaemonEndpoints",
        &[
            ("kubeletEndpoint", child("io.k8s.api.core.v1.DaemonEndpoint")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeRuntimeHandler",
        &[
            ("features", child("io.k8s.api.core.v1.NodeRuntimeHandlerFeatures")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeSelector",
        &[
            ("nodeSelectorTerms", child("io.k8s.api.core.v1.NodeSelectorTerm")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeSelectorTerm",
        &[
            ("matchExpressions", child("io.k8s.api.core.v1.NodeSelectorRequirement")),
            ("matchFields", child("io.k8s.api.core.v1.NodeSelectorRequirement")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeSpec",
        &[
            ("configSource", child("io.k8s.api.core.v1.NodeConfigSource")),
            ("podCIDRs", merge_primitives()),
            ("podPreemptionPolicy", child("io.k8s.api.core.v1.NodePodPreemptionPolicy")),
            ("taints", child("io.k8s.api.core.v1.Taint")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        &[
            ("addresses", merge_by("io.k8s.api.core.v1.NodeAddress", "type")),
            ("conditions", merge_by("io.k8s.api.core.v1.NodeCondition", "type")),
            ("config", child("io.k8s.api.core.v1.NodeConfigStatus")),
            ("daemonEndpoints", child("io.k8s.api.core.v1.NodeDaemonEndpoints")),
            ("features", child("io.k8s.api.core.v1.NodeFeatures")),
            ("images", child("io.k8s.api.core.v1.ContainerImage")),
            ("nodeInfo", child("io.k8s.api.core.v1.NodeSystemInfo")),
            ("runtimeHandlers", child("io.k8s.api.core.v1.NodeRuntimeHandler")),
            ("volumesAttached", child("io.k8s.api.core.v1.AttachedVolume")),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeSystemInfo",
        &[
            ("swap", child("io.k8s.api.core.v1.NodeSwapStatus")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        &[
            ("dataSource", child("io.k8s.api.core.v1.TypedLocalObjectReference")),
            ("dataSourceRef", child("io.k8s.api.core.v1.TypedObjectReference")),
            ("resources", child("io.k8s.api.core.v1.VolumeResourceRequirements")),
            ("selector", child("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimTemplate",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("spec", child("io.k8s.api.core.v1.PersistentVolumeClaimSpec")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Pod",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("spec", child("io.k8s.api.core.v1.PodSpec")),
            ("status", child("io.k8s.api.core.v1.PodStatus")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodAffinity",
        &[
            ("preferredDuringSchedulingIgnoredDuringExecution", child("io.k8s.api.core.v1.WeightedPodAffinityTerm")),
            ("requiredDuringSchedulingIgnoredDuringExecution", child("io.k8s.api.core.v1.PodAffinityTerm")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodAffinityTerm",
        &[
            ("labelSelector", child("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")),
            ("namespaceSelector", child("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodAntiAffinity",
        &[
            ("preferredDuringSchedulingIgnoredDuringExecution", child("io.k8s.api.core.v1.WeightedPodAffinityTerm")),
            ("requiredDuringSchedulingIgnoredDuringExecution", child("io.k8s.api.core.v1.PodAffinityTerm")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodDNSConfig",
        &[
            ("options", child("io.k8s.api.core.v1.PodDNSConfigOption")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodExtendedResourceClaimStatus",
        &[
            ("requestMappings", child("io.k8s.api.core.v1.ContainerExtendedResourceRequest")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodSecurityContext",
        &[
            ("appArmorProfile", child("io.k8s.api.core.v1.AppArmorProfile")),
            ("seLinuxOptions", child("io.k8s.api.core.v1.SELinuxOptions")),
            ("seccompProfile", child("io.k8s.api.core.v1.SeccompProfile")),
            ("sysctls", child("io.k8s.api.core.v1.Sysctl")),
            ("windowsOptions", child("io.k8s.api.core.v1.WindowsSecurityContextOptions")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        &[
            ("affinity", child("io.k8s.api.core.v1.Affinity")),
            ("containers", merge_by("io.k8s.api.core.v1.Container", "name")),
            ("dnsConfig", child("io.k8s.api.core.v1.PodDNSConfig")),
            ("ephemeralContainers", merge_by("io.k8s.api.core.v1.EphemeralContainer", "name")),
            ("evictionResponders", merge_by("io.k8s.api.core.v1.EvictionResponder", "name")),
            ("hostAliases", merge_by("io.k8s.api.core.v1.HostAlias", "ip")),
            ("imagePullSecrets", merge_by("io.k8s.api.core.v1.LocalObjectReference", "name")),
            ("initContainers", merge_by("io.k8s.api.core.v1.Container", "name")),
            ("os", child("io.k8s.api.core.v1.PodOS")),
            ("readinessGates", child("io.k8s.api.core.v1.PodReadinessGate")),
            ("resourceClaims", merge_retaining_keys_by("io.k8s.api.core.v1.PodResourceClaim", "name")),
            ("resources", child("io.k8s.api.core.v1.ResourceRequirements")),
            ("schedulingGates", merge_by("io.k8s.api.core.v1.PodSchedulingGate", "name")),
            ("schedulingGroup", child("io.k8s.api.core.v1.PodSchedulingGroup")),
            ("securityContext", child("io.k8s.api.core.v1.PodSecurityContext")),
            ("tolerations", child("io.k8s.api.core.v1.Toleration")),
            ("topologySpreadConstraints", merge_by("io.k8s.api.core.v1.TopologySpreadConstraint", "topologyKey")),
            ("volumes", merge_retaining_keys_by("io.k8s.api.core.v1.Volume", "name")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        &[
            ("conditions", merge_by("io.k8s.api.core.v1.PodCondition", "type")),
            ("containerStatuses", child("io.k8s.api.core.v1.ContainerStatus")),
            ("ephemeralContainerStatuses", child("io.k8s.api.core.v1.ContainerStatus")),
            ("extendedResourceClaimStatus", child("io.k8s.api.core.v1.PodExtendedResourceClaimStatus")),
            ("hostIPs", merge_by("io.k8s.api.core.v1.HostIP", "ip")),
            ("initContainerStatuses", child("io.k8s.api.core.v1.ContainerStatus")),
            ("nodeAllocatableResourceClaimStatuses", child("io.k8s.api.core.v1.NodeAllocatableResourceClaimStatus")),
            ("podIPs", merge_by("io.k8s.api.core.v1.PodIP", "ip")),
            ("resourceClaimStatuses", merge_retaining_keys_by("io.k8s.api.core.v1.PodResourceClaimStatus", "name")),
            ("resources", child("io.k8s.api.core.v1.ResourceRequirements")),
            ("volumeHealth", child("io.k8s.api.core.v1.PodVolumeHealth")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodTemplateSpec",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("spec", child("io.k8s.api.core.v1.PodSpec")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodVolumeHealth",
        &[
            ("healthConditions", child("io.k8s.api.core.v1.VolumeHealthCondition")),
        ],
    ),
    (
        "io.k8s.api.core.v1.PreferredSchedulingTerm",
        &[
            ("preference", child("io.k8s.api.core.v1.NodeSelectorTerm")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Probe",
        &[
            ("exec", child("io.k8s.api.core.v1.ExecAction")),
            ("grpc", child("io.k8s.api.core.v1.GRPCAction")),
            ("httpGet", child("io.k8s.api.core.v1.HTTPGetAction")),
            ("tcpSocket", child("io.k8s.api.core.v1.TCPSocketAction")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ProjectedVolumeSource",
        &[
            ("sources", child("io.k8s.api.core.v1.VolumeProjection")),
        ],
    ),
    (
        "io.k8s.api.core.v1.RBDVolumeSource",
        &[
            ("secretRef", child("io.k8s.api.core.v1.LocalObjectReference")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ResourceRequirements",
        &[
            ("claims", child("io.k8s.api.core.v1.ResourceClaim")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ResourceStatus",
        &[
            ("resources", child("io.k8s.api.core.v1.ResourceHealth")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ScaleIOVolumeSource",
        &[
            ("secretRef", child("io.k8s.api.core.v1.LocalObjectReference")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Secret",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
        ],
    ),
    (
        "io.k8s.api.core.v1.SecretProjection",
        &[
            ("items", child("io.k8s.api.core.v1.KeyToPath")),
        ],
    ),
    (
        "io.k8s.api.core.v1.SecretVolumeSource",
        &[
            ("items", child("io.k8s.api.core.v1.KeyToPath")),
        ],
    ),
    (
        "io.k8s.api.core.v1.SecurityContext",
        &[
            ("appArmorProfile", child("io.k8s.api.core.v1.AppArmorProfile")),
            ("capabilities", child("io.k8s.api.core.v1.Capabilities")),
            ("seLinuxOptions", child("io.k8s.api.core.v1.SELinuxOptions")),
            ("seccompProfile", child("io.k8s.api.core.v1.SeccompProfile")),
            ("windowsOptions", child("io.k8s.api.core.v1.WindowsSecurityContextOptions")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Service",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("spec", child("io.k8s.api.core.v1.ServiceSpec")),
            ("status", child("io.k8s.api.core.v1.ServiceStatus")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        &[
            ("ports", merge_by("io.k8s.api.core.v1.ServicePort", "port")),
            ("sessionAffinityConfig", child("io.k8s.api.core.v1.SessionAffinityConfig")),
        ],
    ),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        &[
            ("conditions", merge_by("io.k8s.apimachinery.pkg.apis.meta.v1.Condition", "type")),
            ("loadBalancer", child("io.k8s.api.core.v1.LoadBalancerStatus")),
        ],
    ),
    (
        "io.k8s.api.core.v1.SessionAffinityConfig",
        &[
            ("clientIP", child("io.k8s.api.core.v1.ClientIPConfig")),
        ],
    ),
    (
        "io.k8s.api.core.v1.StorageOSVolumeSource",
        &[
            ("secretRef", child("io.k8s.api.core.v1.LocalObjectReference")),
        ],
    ),
    (
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        &[
            ("labelSelector", child("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")),
        ],
    ),
    (
        "io.k8s.api.core.v1.Volume",
        &[
            ("awsElasticBlockStore", child("io.k8s.api.core.v1.AWSElasticBlockStoreVolumeSource")),
            ("azureDisk", child("io.k8s.api.core.v1.AzureDiskVolumeSource")),
            ("azureFile", child("io.k8s.api.core.v1.AzureFileVolumeSource")),
            ("cephfs", child("io.k8s.api.core.v1.CephFSVolumeSource")),
            ("cinder", child("io.k8s.api.core.v1.CinderVolumeSource")),
            ("configMap", child("io.k8s.api.core.v1.ConfigMapVolumeSource")),
            ("csi", child("io.k8s.api.core.v1.CSIVolumeSource")),
            ("downwardAPI", child("io.k8s.api.core.v1.DownwardAPIVolumeSource")),
            ("emptyDir", child("io.k8s.api.core.v1.EmptyDirVolumeSource")),
            ("ephemeral", child("io.k8s.api.core.v1.EphemeralVolumeSource")),
            ("fc", child("io.k8s.api.core.v1.FCVolumeSource")),
            ("flexVolume", child("io.k8s.api.core.v1.FlexVolumeSource")),
            ("flocker", child("io.k8s.api.core.v1.FlockerVolumeSource")),
            ("gcePersistentDisk", child("io.k8s.api.core.v1.GCEPersistentDiskVolumeSource")),
            ("gitRepo", child("io.k8s.api.core.v1.GitRepoVolumeSource")),
            ("glusterfs", child("io.k8s.api.core.v1.GlusterfsVolumeSource")),
            ("hostPath", child("io.k8s.api.core.v1.HostPathVolumeSource")),
            ("image", child("io.k8s.api.core.v1.ImageVolumeSource")),
            ("iscsi", child("io.k8s.api.core.v1.ISCSIVolumeSource")),
            ("nfs", child("io.k8s.api.core.v1.NFSVolumeSource")),
            ("persistentVolumeClaim", child("io.k8s.api.core.v1.PersistentVolumeClaimVolumeSource")),
            ("photonPersistentDisk", child("io.k8s.api.core.v1.PhotonPersistentDiskVolumeSource")),
            ("portworxVolume", child("io.k8s.api.core.v1.PortworxVolumeSource")),
            ("projected", child("io.k8s.api.core.v1.ProjectedVolumeSource")),
            ("quobyte", child("io.k8s.api.core.v1.QuobyteVolumeSource")),
            ("rbd", child("io.k8s.api.core.v1.RBDVolumeSource")),
            ("scaleIO", child("io.k8s.api.core.v1.ScaleIOVolumeSource")),
            ("secret", child("io.k8s.api.core.v1.SecretVolumeSource")),
            ("storageos", child("io.k8s.api.core.v1.StorageOSVolumeSource")),
            ("vsphereVolume", child("io.k8s.api.core.v1.VsphereVirtualDiskVolumeSource")),
        ],
    ),
    (
        "io.k8s.api.core.v1.VolumeMountStatus",
        &[
            ("volumeStatus", child("io.k8s.api.core.v1.VolumeStatus")),
        ],
    ),
    (
        "io.k8s.api.core.v1.VolumeProjection",
        &[
            ("clusterTrustBundle", child("io.k8s.api.core.v1.ClusterTrustBundleProjection")),
            ("configMap", child("io.k8s.api.core.v1.ConfigMapProjection")),
            ("downwardAPI", child("io.k8s.api.core.v1.DownwardAPIProjection")),
            ("podCertificate", child("io.k8s.api.core.v1.PodCertificateProjection")),
            ("secret", child("io.k8s.api.core.v1.SecretProjection")),
            ("serviceAccountToken", child("io.k8s.api.core.v1.ServiceAccountTokenProjection")),
        ],
    ),
    (
        "io.k8s.api.core.v1.VolumeStatus",
        &[
            ("image", child("io.k8s.api.core.v1.ImageVolumeStatus")),
        ],
    ),
    (
        "io.k8s.api.core.v1.WeightedPodAffinityTerm",
        &[
            ("podAffinityTerm", child("io.k8s.api.core.v1.PodAffinityTerm")),
        ],
    ),
    (
        "io.k8s.api.discovery.v1.Endpoint",
        &[
            ("conditions", child("io.k8s.api.discovery.v1.EndpointConditions")),
            ("hints", child("io.k8s.api.discovery.v1.EndpointHints")),
            ("targetRef", child("io.k8s.api.core.v1.ObjectReference")),
        ],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointHints",
        &[
            ("forNodes", child("io.k8s.api.discovery.v1.ForNode")),
            ("forZones", child("io.k8s.api.discovery.v1.ForZone")),
        ],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointSlice",
        &[
            ("endpoints", child("io.k8s.api.discovery.v1.Endpoint")),
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("ports", child("io.k8s.api.discovery.v1.EndpointPort")),
        ],
    ),
    (
        "io.k8s.api.node.v1.RuntimeClass",
        &[
            ("metadata", child("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")),
            ("overhead", child("io.k8s.api.node.v1.Overhead")),
            ("scheduling", child("io.k8s.api.node.v1.Scheduling")),
        ],
    ),
    (
        "io.k8s.api.node.v1.Scheduling",
        &[
            ("tolerations", child("io.k8s.api.core.v1.Toleration")),
        ],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        &[
            ("matchExpressions", child("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement")),
        ],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &[
            ("finalizers", merge_primitives()),
            ("managedFields", child("io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry")),
            ("ownerReferences", merge_by("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "uid")),
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique_for_binary_search() {
        for pair in DEFINITIONS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (definition, fields) in DEFINITIONS {
            for pair in fields.windows(2) {
                assert!(
                    pair[0].0 < pair[1].0,
                    "{definition}: {} before {}",
                    pair[0].0,
                    pair[1].0
                );
            }
        }
    }

    #[test]
    fn strategies_and_merge_keys_are_well_formed() {
        for (definition, fields) in DEFINITIONS {
            for (name, meta) in *fields {
                match meta.strategy {
                    None | Some("retainKeys") => {
                        assert_eq!(meta.merge_key, None, "{definition}.{name}");
                        assert!(meta.definition.is_some(), "{definition}.{name}");
                    }
                    // A list of objects needs a key; a list of primitives has none.
                    Some("merge") | Some("merge,retainKeys") => assert_eq!(
                        meta.merge_key.is_some(),
                        meta.definition.is_some(),
                        "{definition}.{name}"
                    ),
                    Some(other) => panic!("{definition}.{name}: unexpected strategy {other}"),
                }
            }
        }
    }

    #[test]
    fn every_listed_definition_is_a_root_or_some_fields_child() {
        let roots: Vec<&str> = ROOTS.iter().map(|(_, _, definition)| *definition).collect();
        for (definition, _) in DEFINITIONS {
            let referenced = DEFINITIONS.iter().any(|(_, fields)| {
                fields
                    .iter()
                    .any(|(_, meta)| meta.definition == Some(*definition))
            });
            assert!(
                referenced || roots.contains(definition),
                "{definition} is unreachable"
            );
        }
    }

    #[test]
    fn roots_name_their_definitions_and_hold_object_meta() {
        for (version, kind, definition) in ROOTS {
            assert_eq!(root(version, kind), Some(*definition));
            assert_eq!(
                field(definition, "metadata").and_then(|meta| meta.definition),
                Some("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
                "{kind}"
            );
        }
        assert_eq!(root("apps/v1", "Pod"), None);
        assert_eq!(root("v1", "Deployment"), None);
    }

    #[test]
    fn kubernetes_patch_metadata() {
        let core = |name: &str| format!("io.k8s.api.core.v1.{name}");
        let cases: &[(String, &str, Option<&str>, Option<&str>)] = &[
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
                "finalizers",
                Some("merge"),
                None,
            ),
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
                "ownerReferences",
                Some("merge"),
                Some("uid"),
            ),
            (core("PodSpec"), "containers", Some("merge"), Some("name")),
            (
                core("PodSpec"),
                "initContainers",
                Some("merge"),
                Some("name"),
            ),
            (
                core("PodSpec"),
                "ephemeralContainers",
                Some("merge"),
                Some("name"),
            ),
            (
                core("PodSpec"),
                "volumes",
                Some("merge,retainKeys"),
                Some("name"),
            ),
            (
                core("PodSpec"),
                "imagePullSecrets",
                Some("merge"),
                Some("name"),
            ),
            (core("PodSpec"), "hostAliases", Some("merge"), Some("ip")),
            (
                core("PodSpec"),
                "topologySpreadConstraints",
                Some("merge"),
                Some("topologyKey"),
            ),
            (core("PodSpec"), "tolerations", None, None),
            (
                core("Container"),
                "ports",
                Some("merge"),
                Some("containerPort"),
            ),
            (core("Container"), "env", Some("merge"), Some("name")),
            (
                core("Container"),
                "volumeMounts",
                Some("merge"),
                Some("mountPath"),
            ),
            (
                core("Container"),
                "volumeDevices",
                Some("merge"),
                Some("devicePath"),
            ),
            (core("Container"), "envFrom", None, None),
            (core("PodStatus"), "conditions", Some("merge"), Some("type")),
            (
                core("NodeStatus"),
                "conditions",
                Some("merge"),
                Some("type"),
            ),
            (core("NodeStatus"), "addresses", Some("merge"), Some("type")),
            (core("NodeSpec"), "podCIDRs", Some("merge"), None),
            (core("ServiceSpec"), "ports", Some("merge"), Some("port")),
            (
                "io.k8s.api.apps.v1.DeploymentSpec".into(),
                "strategy",
                Some("retainKeys"),
                None,
            ),
            (
                "io.k8s.api.apps.v1.DeploymentStatus".into(),
                "conditions",
                Some("merge"),
                Some("type"),
            ),
            (
                "io.k8s.api.apps.v1.ReplicaSetStatus".into(),
                "conditions",
                Some("merge"),
                Some("type"),
            ),
        ];
        for (definition, name, strategy, merge_key) in cases {
            let meta = field(definition, name).unwrap_or_else(|| panic!("{definition}.{name}"));
            assert_eq!(
                (meta.strategy, meta.merge_key),
                (*strategy, *merge_key),
                "{definition}.{name}"
            );
        }
        assert_eq!(field(&core("PodSpec"), "nodeName"), None);
        assert_eq!(field("io.k8s.api.core.v1.Nope", "containers"), None);
    }

    #[test]
    fn walks_from_a_deployment_to_its_containers() {
        let mut definition = root("apps/v1", "Deployment").unwrap();
        for name in ["spec", "template", "spec", "containers"] {
            definition = field(definition, name)
                .and_then(|meta| meta.definition)
                .unwrap();
        }
        assert_eq!(definition, "io.k8s.api.core.v1.Container");
        assert_eq!(
            field(definition, "env").and_then(|meta| meta.definition),
            Some("io.k8s.api.core.v1.EnvVar")
        );
    }
}
