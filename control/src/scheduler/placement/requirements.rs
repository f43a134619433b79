//! What placement needs from a pod, computed once per pod: resource requests
//! (Kubernetes' `PodRequests`), host ports, node selector and affinity,
//! tolerations, controller owner and images, with the pod's RuntimeClass
//! folded in as Kubernetes' RuntimeClass admission folds it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Toleration as ApiToleration};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_sdk::quantity::ParsedQuantity;

use super::affinity::NodeSelectorTerm;

/// kube-scheduler's request assumed for a container without a cpu request,
/// in scoring only (`DefaultMilliCPURequest`).
const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// kube-scheduler's request assumed for a container without a memory
/// request, in scoring only (`DefaultMemoryRequest`, 200 MiB).
const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// The taint the node controller puts on cordoned nodes; tolerating it
/// lets a pod onto a node with `spec.unschedulable`.
pub(super) const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint Kubernetes puts on nodes that are not Ready; tolerating it
/// (with effect NoSchedule) lets a pod onto a node that is not Ready.
pub(super) const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Everything [`place`](super::place) needs from a pod, computed once so
/// that evaluating a node does no parsing and no allocation.
///
/// Build it with [`Requirements::new`]; it can be kept and reused while
/// the pod stays pending.
#[derive(Clone, Debug)]
pub struct Requirements {
    /// Requests: max(sum of containers, max of init containers) per
    /// resource, plus overhead.
    pub(super) requests: Resources,
    /// Host ports the pod binds.
    pub(super) host_ports: Vec<HostPort>,
    /// `spec.nodeSelector` and the RuntimeClass's `scheduling.nodeSelector`:
    /// every pair must be a node label.
    pub(super) node_selector: Vec<(String, String)>,
    /// Required node affinity: `None` when the pod has none; the valid,
    /// non-empty terms (ORed) otherwise, so `Some(empty)` matches no node.
    pub(super) required_terms: Option<Vec<NodeSelectorTerm>>,
    /// Preferred node affinity: (weight, term), valid non-empty terms with a
    /// non-zero weight.
    pub(super) preferred_terms: Vec<(i64, NodeSelectorTerm)>,
    /// The pod's tolerations and the RuntimeClass's.
    pub(super) tolerations: Vec<Toleration>,
    /// Whether the pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`.
    pub(super) tolerates_unschedulable: bool,
    /// Whether the pod tolerates `node.kubernetes.io/not-ready:NoSchedule`.
    pub(super) tolerates_not_ready: bool,
    /// The uid of the pod's controller (ownerReference with controller=true).
    pub(super) owner: Option<String>,
    /// Images of the init and regular containers, normalized (one entry per
    /// container, as kube's ImageLocality counts them).
    pub(super) images: Vec<String>,
}

impl Requirements {
    /// Computes what placement needs from `pod`. `runtime_class` is the
    /// RuntimeClass named by `spec.runtimeClassName`, looked up by the
    /// caller: its `scheduling.nodeSelector` is merged into the pod's node
    /// selector (a key set to two different values can match no node, where
    /// Kubernetes' admission would reject the pod), its
    /// `scheduling.tolerations` are added to the pod's, and its
    /// `overhead.podFixed` is added to the requests unless the pod already
    /// carries `spec.overhead` (which admission copies from the class).
    pub fn new(pod: &Pod, runtime_class: Option<&RuntimeClass>) -> Self {
        let default_spec;
        let spec = match &pod.spec {
            Some(spec) => spec,
            None => {
                default_spec = PodSpec::default();
                &default_spec
            }
        };
        let scheduling = runtime_class.and_then(|class| class.scheduling.as_ref());
        let overhead = spec.overhead.as_ref().or_else(|| {
            runtime_class
                .and_then(|class| class.overhead.as_ref())
                .and_then(|overhead| overhead.pod_fixed.as_ref())
        });

        let mut node_selector: Vec<(String, String)> = Vec::new();
        let selectors = [
            spec.node_selector.as_ref(),
            scheduling.and_then(|s| s.node_selector.as_ref()),
        ];
        for (key, value) in selectors.into_iter().flatten().flatten() {
            if !node_selector.iter().any(|(k, v)| k == key && v == value) {
                node_selector.push((key.clone(), value.clone()));
            }
        }

        let tolerations: Vec<Toleration> = spec
            .tolerations
            .iter()
            .flatten()
            .chain(
                scheduling
                    .and_then(|s| s.tolerations.as_ref())
                    .into_iter()
                    .flatten(),
            )
            .map(Toleration::new)
            .collect();
        let tolerates = |key: &str| {
            let taint = NodeTaint {
                key: key.to_owned(),
                value: String::new(),
                effect: TaintEffect::NoSchedule,
            };
            tolerations.iter().any(|t| t.tolerates(&taint))
        };
        let tolerates_unschedulable = tolerates(TAINT_UNSCHEDULABLE);
        let tolerates_not_ready = tolerates(TAINT_NOT_READY);

        let node_affinity = spec
            .affinity
            .as_ref()
            .and_then(|affinity| affinity.node_affinity.as_ref());
        let required_terms = node_affinity
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|selector| {
                selector
                    .node_selector_terms
                    .iter()
                    .filter_map(NodeSelectorTerm::new)
                    .collect()
            });
        let preferred_terms = node_affinity
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|term| term.weight != 0)
            .filter_map(|term| {
                NodeSelectorTerm::new(&term.preference).map(|t| (i64::from(term.weight), t))
            })
            .collect();

        let images = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .filter_map(|c| c.image.as_deref())
            .filter(|image| !image.is_empty())
            .map(normalized_image_name)
            .collect();

        Self {
            requests: pod_requests(spec, overhead),
            host_ports: host_ports(spec),
            node_selector,
            required_terms,
            preferred_terms,
            tolerations,
            tolerates_unschedulable,
            tolerates_not_ready,
            owner: controller_uid(pod).map(str::to_owned),
            images,
        }
    }

    /// Whether the pod tolerates `taint`.
    pub(super) fn tolerates(&self, taint: &NodeTaint) -> bool {
        self.tolerations.iter().any(|t| t.tolerates(taint))
    }
}

/// Resource amounts in the units kube-scheduler compares: cpu in
/// thousandths, everything else in whole units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Resources {
    /// cpu, milli.
    pub milli_cpu: i64,
    /// memory, bytes.
    pub memory: i64,
    /// ephemeral-storage, bytes.
    pub ephemeral_storage: i64,
    /// cpu with 100m for each container that omits its cpu request (scoring).
    pub non_zero_milli_cpu: i64,
    /// memory with 200Mi for each container that omits its memory request.
    pub non_zero_memory: i64,
    /// Scalar resources (extended resources such as `nvidia.com/gpu`,
    /// hugepages), sorted by name, without zero entries.
    pub scalar: Vec<(String, i64)>,
}

impl Resources {
    /// Reads a resource list; with `container_defaults`, the non-zero fields
    /// get kube-scheduler's defaults for a missing cpu or memory.
    pub(super) fn from_list(
        list: Option<&BTreeMap<String, Quantity>>,
        container_defaults: bool,
    ) -> Self {
        let mut resources = Self::default();
        let (mut has_cpu, mut has_memory) = (false, false);
        for (name, quantity) in list.into_iter().flatten() {
            // Validation rejects malformed quantities; one slipping through
            // counts as absent rather than failing the decision.
            let Ok(quantity) = ParsedQuantity::parse(&quantity.0) else {
                continue;
            };
            match name.as_str() {
                "cpu" => {
                    resources.milli_cpu = quantity.milli_value();
                    has_cpu = true;
                }
                "memory" => {
                    resources.memory = quantity.value();
                    has_memory = true;
                }
                "ephemeral-storage" => resources.ephemeral_storage = quantity.value(),
                name if is_scalar_resource(name) && !quantity.is_zero() => {
                    // BTreeMap order keeps `scalar` sorted.
                    resources.scalar.push((name.to_owned(), quantity.value()));
                }
                _ => {}
            }
        }
        resources.non_zero_milli_cpu = match (has_cpu, container_defaults) {
            (false, true) => DEFAULT_MILLI_CPU_REQUEST,
            _ => resources.milli_cpu,
        };
        resources.non_zero_memory = match (has_memory, container_defaults) {
            (false, true) => DEFAULT_MEMORY_REQUEST,
            _ => resources.memory,
        };
        resources
    }

    /// `self += other`, per resource.
    pub fn add(&mut self, other: &Self) {
        self.combine(other, i64::saturating_add);
    }

    /// `self -= other`, per resource (undoes an [`add`](Self::add)).
    pub fn subtract(&mut self, other: &Self) {
        self.combine(other, i64::saturating_sub);
    }

    /// `self = max(self, other)`, per resource.
    fn max_with(&mut self, other: &Self) {
        self.combine(other, i64::max);
    }

    fn combine(&mut self, other: &Self, op: fn(i64, i64) -> i64) {
        self.milli_cpu = op(self.milli_cpu, other.milli_cpu);
        self.memory = op(self.memory, other.memory);
        self.ephemeral_storage = op(self.ephemeral_storage, other.ephemeral_storage);
        self.non_zero_milli_cpu = op(self.non_zero_milli_cpu, other.non_zero_milli_cpu);
        self.non_zero_memory = op(self.non_zero_memory, other.non_zero_memory);
        for (name, value) in &other.scalar {
            match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                Ok(i) => self.scalar[i].1 = op(self.scalar[i].1, *value),
                Err(i) => self.scalar.insert(i, (name.clone(), op(0, *value))),
            }
        }
        self.scalar.retain(|(_, value)| *value != 0);
    }
}

/// The value of `name` in a sorted (name, value) list, 0 when absent.
pub(super) fn scalar_value(list: &[(String, i64)], name: &str) -> i64 {
    list.binary_search_by(|(n, _)| n.as_str().cmp(name))
        .map_or(0, |i| list[i].1)
}

/// Whether kube-scheduler accounts `name` as a scalar resource: extended
/// resources (`example.com/foo`), prefixed native ones (`kubernetes.io/…`),
/// hugepages and attachable volumes. Other unprefixed names are ignored.
pub(super) fn is_scalar_resource(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

/// Kubernetes' `PodRequests`: containers summed; each init container in
/// turn (with the restartable, i.e. sidecar, init containers started before
/// it) as a floor; sidecars added to the sum; pod-level cpu/memory requests
/// replacing the aggregate; `overhead` added.
pub(super) fn pod_requests(
    spec: &PodSpec,
    overhead: Option<&BTreeMap<String, Quantity>>,
) -> Resources {
    let container_requests = |c: &Container| {
        Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()), true)
    };

    let mut total = Resources::default();
    for container in &spec.containers {
        total.add(&container_requests(container));
    }
    let mut sidecars = Resources::default();
    let mut init_floor = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let requests = container_requests(container);
        if container.restart_policy.as_deref() == Some("Always") {
            total.add(&requests);
            sidecars.add(&requests);
            init_floor.max_with(&sidecars);
        } else {
            let mut running = requests;
            running.add(&sidecars);
            init_floor.max_with(&running);
        }
    }
    total.max_with(&init_floor);

    // Pod-level requests (PodLevelResources) replace the containers' cpu
    // and memory when set.
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        let resources = Resources::from_list(Some(pod_level), false);
        if pod_level.contains_key("cpu") {
            total.milli_cpu = resources.milli_cpu;
            total.non_zero_milli_cpu = resources.milli_cpu;
        }
        if pod_level.contains_key("memory") {
            total.memory = resources.memory;
            total.non_zero_memory = resources.memory;
        }
    }
    if overhead.is_some() {
        total.add(&Resources::from_list(overhead, false));
    }
    total
}

/// The address a bind-all host IP (or an empty one) is kept as.
pub(super) const ANY_HOST_IP: &str = "0.0.0.0";

/// A host port a pod binds: Kubernetes' (protocol, hostIP, port) with an
/// empty protocol read as TCP and an empty hostIP as 0.0.0.0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
    /// A container port counted as a host port only because the pod
    /// listens on its node's address (the interim rule below); nodes whose
    /// pods have addresses of their own ignore it.
    pub on_node_address: bool,
}

impl HostPort {
    /// Whether binding `self` conflicts with `used` (0.0.0.0 conflicts with
    /// any IP; otherwise only the same IP does).
    pub fn conflicts_with(&self, used: &HostPort) -> bool {
        self.port == used.port
            && self.protocol == used.protocol
            && (self.ip == ANY_HOST_IP || used.ip == ANY_HOST_IP || self.ip == used.ip)
    }
}

/// The host ports of the pod's containers and sidecar init containers:
/// kube-scheduler's NodePorts (every `hostPort`), plus skiff's interim rule
/// until pod networking exists: every pod, Wasm (wasmtime) or container
/// (runc, the default), shares its node's network, so every
/// `containerPort` is a host port too.
pub(super) fn host_ports(spec: &PodSpec) -> Vec<HostPort> {
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut ports = Vec::new();
    for port in spec
        .containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
    {
        let or = |value: Option<&str>, default: &str| {
            value
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
                .to_owned()
        };
        let host_port = port.host_port.filter(|p| *p > 0);
        let container_port = Some(port.container_port).filter(|p| *p > 0 && Some(*p) != host_port);
        for number in host_port.into_iter().chain(container_port) {
            ports.push(HostPort {
                protocol: or(port.protocol.as_deref(), "TCP"),
                ip: or(port.host_ip.as_deref(), ANY_HOST_IP),
                port: number,
                on_node_address: Some(number) != host_port,
            });
        }
    }
    ports
}

/// The uid of the pod's controller, if it has one.
pub(super) fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true))
        .map(|owner| owner.uid.as_str())
        .filter(|uid| !uid.is_empty())
}

/// kube's `normalizedImageName`: a reference without a tag or digest gets
/// `:latest`.
pub(super) fn normalized_image_name(name: &str) -> String {
    let colon = name.rfind(':');
    let slash = name.rfind('/');
    if colon.is_none_or(|c| slash.is_some_and(|s| c < s)) {
        format!("{name}:latest")
    } else {
        name.to_owned()
    }
}

/// A taint's effect, for the effects the scheduler knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TaintEffect {
    /// Filters out pods that don't tolerate it.
    NoSchedule,
    /// Filters too (and evicts running pods, which is not the scheduler's job).
    NoExecute,
    /// Only lowers the node's score.
    PreferNoSchedule,
}

impl TaintEffect {
    fn parse(effect: &str) -> Option<Self> {
        match effect {
            "NoSchedule" => Some(Self::NoSchedule),
            "NoExecute" => Some(Self::NoExecute),
            "PreferNoSchedule" => Some(Self::PreferNoSchedule),
            _ => None,
        }
    }
}

/// A node taint with a known effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NodeTaint {
    pub key: String,
    /// Empty when the taint has no value.
    pub value: String,
    pub effect: TaintEffect,
}

impl NodeTaint {
    /// The taint, or `None` when its effect is not one Kubernetes defines.
    pub fn new(taint: &k8s_openapi::api::core::v1::Taint) -> Option<Self> {
        Some(Self {
            key: taint.key.clone(),
            value: taint.value.clone().unwrap_or_default(),
            effect: TaintEffect::parse(&taint.effect)?,
        })
    }
}

/// A toleration, as Kubernetes' `ToleratesTaint` reads it.
#[derive(Clone, Debug)]
pub(super) struct Toleration {
    /// Empty matches every key.
    key: String,
    operator: TolerationOperator,
    value: String,
    effect: TolerationEffect,
}

#[derive(Clone, Copy, Debug)]
enum TolerationOperator {
    /// `Equal` or empty: the values must be equal.
    Equal,
    /// Any value.
    Exists,
    /// An operator this scheduler does not know: tolerates nothing.
    Unknown,
}

#[derive(Clone, Copy, Debug)]
enum TolerationEffect {
    /// Empty: every effect.
    Any,
    Only(TaintEffect),
    /// An effect no taint has.
    Unknown,
}

impl Toleration {
    fn new(toleration: &ApiToleration) -> Self {
        let operator = match toleration.operator.as_deref().unwrap_or_default() {
            "" | "Equal" => TolerationOperator::Equal,
            "Exists" => TolerationOperator::Exists,
            _ => TolerationOperator::Unknown,
        };
        let effect = match toleration.effect.as_deref().unwrap_or_default() {
            "" => TolerationEffect::Any,
            effect => {
                TaintEffect::parse(effect).map_or(TolerationEffect::Unknown, TolerationEffect::Only)
            }
        };
        Self {
            key: toleration.key.clone().unwrap_or_default(),
            operator,
            value: toleration.value.clone().unwrap_or_default(),
            effect,
        }
    }

    /// Kubernetes' `Toleration.ToleratesTaint`.
    fn tolerates(&self, taint: &NodeTaint) -> bool {
        match self.effect {
            TolerationEffect::Any => {}
            TolerationEffect::Only(effect) if effect == taint.effect => {}
            _ => return false,
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator {
            TolerationOperator::Equal => self.value == taint.value,
            TolerationOperator::Exists => true,
            TolerationOperator::Unknown => false,
        }
    }
}
