//! The node's own objects: the Node (labels detected from the machine and
//! the runtimes, capacity, node info, addresses, conditions, cached
//! images) and its Lease in `kube-node-lease`, renewed as the kubelet's
//! heartbeat. Describing the node is pure ([`describe`] over
//! [`MachineFacts`]); detecting the facts reads `/proc` and `/sys`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use skiff_sdk::labels;
use skiff_sdk::runtime::Runtime;
use tokio::sync::watch;

/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

use skiff_sdk::annotations::POD_ADDRESS_RANGE as POD_ADDRESS_RANGE_ANNOTATION;

/// The version the node reports as its kubelet's.
pub const KUBELET_VERSION: &str = concat!("v1.34.0-skiff.", env!("CARGO_PKG_VERSION"));

/// What the machine is, as detected at start.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineFacts {
    /// The host name.
    pub hostname: String,
    /// Logical CPUs.
    pub cpus: u64,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// NVIDIA devices (`/dev/nvidia<N>`).
    pub gpus: u64,
    /// `kubernetes.io/arch`: `amd64`, `arm64`, ...
    pub arch: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
}

impl MachineFacts {
    /// Reads the facts of this machine; what cannot be read stays empty.
    pub fn detect() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let memory_bytes = read_meminfo_total(Path::new("/proc/meminfo")).unwrap_or(0);
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    line.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_owned())
                })
            })
            .unwrap_or_default();
        let gpus = (0..64)
            .take_while(|n| Path::new(&format!("/dev/nvidia{n}")).exists())
            .count() as u64;
        Self {
            hostname: read("/proc/sys/kernel/hostname"),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_bytes,
            gpus,
            arch: kubernetes_arch(std::env::consts::ARCH).to_owned(),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            os_image,
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}

fn read_meminfo_total(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Go's architecture names, as `kubernetes.io/arch` uses them.
fn kubernetes_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// How the node describes itself beyond the machine.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The Node's name.
    pub name: String,
    /// The address the node reports and serves pods on.
    pub ip: IpAddr,
    /// The port of the node API (`daemonEndpoints.kubeletEndpoint`).
    pub api_port: u16,
    /// Labels given on the command line.
    pub labels: BTreeMap<String, String>,
    /// The most pods the node runs.
    pub max_pods: u32,
    /// The pod address range, when pods get their own addresses.
    pub pod_address_range: Option<String>,
}

/// The Node's labels, annotations and status (conditions without their
/// heartbeat times filled in by [`status_with_heartbeat`]).
pub fn describe(
    config: &NodeConfig,
    machine: &MachineFacts,
    runtimes: &[Arc<dyn Runtime>],
    unhealthy: &RuntimeProblems,
    images: Vec<ContainerImage>,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    NodeStatus,
) {
    let mut node_labels: BTreeMap<String, String> = BTreeMap::new();
    node_labels.insert(labels::HOSTNAME.to_owned(), config.name.clone());
    node_labels.insert(labels::OS.to_owned(), "linux".to_owned());
    node_labels.insert(labels::ARCH.to_owned(), machine.arch.clone());
    for runtime in runtimes
        .iter()
        .filter(|r| !unhealthy.contains_key(&r.info().name))
    {
        for (key, value) in runtime.info().node_labels() {
            node_labels.insert(key.to_owned(), value.to_owned());
        }
    }
    if machine.gpus > 0 {
        node_labels.insert(labels::GPU_ENABLED.to_owned(), "true".to_owned());
    }
    node_labels.extend(config.labels.clone());
    let mut annotations = BTreeMap::new();
    if let Some(range) = &config.pod_address_range {
        annotations.insert(POD_ADDRESS_RANGE_ANNOTATION.to_owned(), range.clone());
    }

    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".to_owned(), Quantity(machine.cpus.to_string()));
    capacity.insert(
        "memory".to_owned(),
        Quantity(format!("{}Ki", machine.memory_bytes / 1024)),
    );
    capacity.insert("pods".to_owned(), Quantity(config.max_pods.to_string()));
    if machine.gpus > 0 {
        capacity.insert(
            "nvidia.com/gpu".to_owned(),
            Quantity(machine.gpus.to_string()),
        );
    }
    let runtime_versions: Vec<String> = runtimes
        .iter()
        .map(|r| format!("{}://{}", r.info().name, r.info().version))
        .collect();
    let status = NodeStatus {
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: config.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: if machine.hostname.is_empty() {
                    config.name.clone()
                } else {
                    machine.hostname.clone()
                },
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(config.api_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: machine.arch.clone(),
            boot_id: machine.boot_id.clone(),
            container_runtime_version: runtime_versions.join(","),
            kernel_version: machine.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.to_owned(),
            machine_id: machine.machine_id.clone(),
            operating_system: "linux".to_owned(),
            os_image: machine.os_image.clone(),
            system_uuid: machine.machine_id.clone(),
            ..NodeSystemInfo::default()
        }),
        images: Some(images),
        ..NodeStatus::default()
    };
    (node_labels, annotations, status)
}

/// Runtimes that do not answer, by name, with why.
pub type RuntimeProblems = BTreeMap<String, String>;

/// The runtimes whose [`Runtime::status`] fails now.
pub async fn runtime_problems(runtimes: &[Arc<dyn Runtime>]) -> RuntimeProblems {
    let mut problems = RuntimeProblems::new();
    for runtime in runtimes {
        if let Err(error) = runtime.status().await {
            problems.insert(runtime.info().name.clone(), skiff_sdk::error_chain(&error));
        }
    }
    problems
}

/// The node's conditions: Ready as given, no pressure of any kind, and
/// `RuntimeUnhealthy` while a runtime does not answer (the node stays
/// Ready: its other runtimes still run pods).
pub fn conditions(
    ready: bool,
    problems: &RuntimeProblems,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> Vec<NodeCondition> {
    let previous = previous
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let condition = |type_: &str, value: bool, reason: &str, message: &str| {
        let status = if value { "True" } else { "False" };
        let transition = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        NodeCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(transition),
        }
    };
    vec![
        condition(
            "MemoryPressure",
            false,
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        condition(
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        condition(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        if problems.is_empty() {
            condition(
                "RuntimeUnhealthy",
                false,
                "RuntimesReady",
                "every container runtime answers",
            )
        } else {
            let message = problems
                .iter()
                .map(|(name, problem)| format!("{name}: {problem}"))
                .collect::<Vec<_>>()
                .join("; ");
            condition("RuntimeUnhealthy", true, "RuntimeUnavailable", &message)
        },
        if ready {
            condition(
                "Ready",
                true,
                "KubeletReady",
                "skiff agent is posting ready status",
            )
        } else {
            condition("Ready", false, "KubeletNotReady", "skiff agent is stopping")
        },
    ]
}

/// The runtimes' cached images as the Node lists them.
pub async fn images(runtimes: &[Arc<dyn Runtime>]) -> Vec<ContainerImage> {
    let mut images = Vec::new();
    for runtime in runtimes {
        match runtime.list_images().await {
            Ok(list) => images.extend(list.into_iter().map(|image| {
                let mut names = image.names.clone();
                names.push(image.digest.clone());
                ContainerImage {
                    names: Some(names),
                    size_bytes: i64::try_from(image.size).ok(),
                }
            })),
            Err(error) => {
                tracing::warn!(runtime = %runtime.info().name, %error, "listing images failed");
            }
        }
    }
    images.sort_by_key(|image| std::cmp::Reverse(image.size_bytes));
    images
}

/// A failed registration step.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The API refused or failed a call.
    #[error("{what}: {source}")]
    Api {
        /// Which call.
        what: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// Creates the Node if it does not exist, sets its labels and annotations
/// (others' labels kept) and its status, Ready.
pub async fn register(
    client: &kube::Client,
    config: &NodeConfig,
    machine: &MachineFacts,
    runtimes: &[Arc<dyn Runtime>],
) -> Result<Node, RegistrationError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let api = |what| move |source| RegistrationError::Api { what, source };
    let problems = runtime_problems(runtimes).await;
    let (node_labels, annotations, mut status) =
        describe(config, machine, runtimes, &problems, images(runtimes).await);
    let existing = nodes
        .get_opt(&config.name)
        .await
        .map_err(api("reading the Node"))?;
    match existing {
        None => {
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    labels: Some(node_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                },
                ..Node::default()
            };
            match nodes.create(&PostParams::default(), &node).await {
                Ok(_) => tracing::info!(node = %config.name, "registered the node"),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(source) => return Err(api("creating the Node")(source)),
            }
        }
        Some(_) => {
            let patch = serde_json::json!({
                "metadata": { "labels": node_labels, "annotations": annotations }
            });
            nodes
                .patch(&config.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api("updating the Node's labels"))?;
            tracing::info!(node = %config.name, "node registered again");
        }
    }
    let previous = nodes
        .get(&config.name)
        .await
        .map_err(api("reading the Node"))?;
    status.conditions = Some(conditions(
        true,
        &problems,
        previous.status.as_ref(),
        Timestamp::now(),
    ));
    patch_status(&nodes, &config.name, &status)
        .await
        .map_err(api("reporting the Node's status"))
}

async fn patch_status(
    nodes: &Api<Node>,
    name: &str,
    status: &NodeStatus,
) -> Result<Node, kube::Error> {
    let patch = serde_json::json!({ "status": status });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// Keeps the node alive until `shutdown` turns true: renews the Lease every
/// quarter of its duration, and reports the Node's status (images,
/// conditions) when it changes and at least every `status_interval`; on
/// shutdown reports the node not ready.
pub async fn heartbeat(
    client: kube::Client,
    config: NodeConfig,
    machine: MachineFacts,
    runtimes: Vec<Arc<dyn Runtime>>,
    lease_duration: Duration,
    status_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, NODE_LEASE_NAMESPACE);
    let renew_every = (lease_duration / 4).max(Duration::from_millis(200));
    let mut renew = tokio::time::interval(renew_every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status: Option<(serde_json::Value, tokio::time::Instant)> = None;
    // The labels last set on the Node, by `register` at first.
    let mut last_labels: Option<BTreeMap<String, String>> = None;
    let mut problems = RuntimeProblems::new();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = renew.tick() => {}
        }
        if let Err(error) = renew_lease(&nodes, &leases, &config.name, lease_duration).await {
            tracing::warn!(node = %config.name, %error, "renewing the node lease failed");
        }
        let now_problems = runtime_problems(&runtimes).await;
        if now_problems != problems {
            for (name, problem) in &now_problems {
                if !problems.contains_key(name) {
                    tracing::warn!(node = %config.name, runtime = %name, %problem, "a container runtime stopped answering");
                }
            }
            for name in problems.keys() {
                if !now_problems.contains_key(name) {
                    tracing::info!(node = %config.name, runtime = %name, "a container runtime answers again");
                }
            }
            problems = now_problems;
        }
        let (labels, _, mut status) = describe(
            &config,
            &machine,
            &runtimes,
            &problems,
            images(&runtimes).await,
        );
        let previous_labels = match &last_labels {
            Some(labels) => labels.clone(),
            None => {
                describe(
                    &config,
                    &machine,
                    &runtimes,
                    &RuntimeProblems::new(),
                    Vec::new(),
                )
                .0
            }
        };
        if previous_labels != labels {
            // A merge patch: a label of ours that went is removed (null),
            // others' labels stay.
            let mut patch = serde_json::Map::new();
            for key in previous_labels.keys().filter(|k| !labels.contains_key(*k)) {
                patch.insert(key.clone(), serde_json::Value::Null);
            }
            for (key, value) in &labels {
                patch.insert(key.clone(), serde_json::Value::String(value.clone()));
            }
            let patch = serde_json::json!({ "metadata": { "labels": patch } });
            match nodes
                .patch(&config.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => last_labels = Some(labels),
                Err(error) => {
                    tracing::warn!(node = %config.name, %error, "updating the node's labels failed")
                }
            }
        } else {
            last_labels = Some(labels);
        }
        let comparable = serde_json::to_value((&status, &problems)).unwrap_or_default();
        let due = last_status
            .as_ref()
            .is_none_or(|(value, at)| *value != comparable || at.elapsed() >= status_interval);
        if !due {
            continue;
        }
        let previous = nodes.get_opt(&config.name).await.ok().flatten();
        status.conditions = Some(conditions(
            true,
            &problems,
            previous.as_ref().and_then(|n| n.status.as_ref()),
            Timestamp::now(),
        ));
        match patch_status(&nodes, &config.name, &status).await {
            Ok(_) => last_status = Some((comparable, tokio::time::Instant::now())),
            Err(error) => {
                tracing::warn!(node = %config.name, %error, "reporting the node status failed")
            }
        }
    }
    let previous = nodes.get_opt(&config.name).await.ok().flatten();
    let status = NodeStatus {
        conditions: Some(conditions(
            false,
            &problems,
            previous.as_ref().and_then(|n| n.status.as_ref()),
            Timestamp::now(),
        )),
        ..NodeStatus::default()
    };
    match patch_status(&nodes, &config.name, &status).await {
        Ok(_) => tracing::info!(node = %config.name, "reported the node not ready"),
        Err(error) => {
            tracing::warn!(node = %config.name, %error, "reporting the node not ready failed")
        }
    }
}

/// Creates or renews the node's Lease (owned by its Node, so that deleting
/// the Node deletes it).
async fn renew_lease(
    nodes: &Api<Node>,
    leases: &Api<Lease>,
    name: &str,
    duration: Duration,
) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    match leases.get_opt(name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(name.to_owned());
            spec.lease_duration_seconds = Some(duration.as_secs().max(1) as i32);
            leases.replace(name, &PostParams::default(), &lease).await?;
        }
        None => {
            let node = nodes.get(name).await?;
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(NODE_LEASE_NAMESPACE.to_owned()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".to_owned(),
                        kind: "Node".to_owned(),
                        name: name.to_owned(),
                        uid: node.metadata.uid.unwrap_or_default(),
                        ..OwnerReference::default()
                    }]),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.to_owned()),
                    lease_duration_seconds: Some(duration.as_secs().max(1) as i32),
                    renew_time: Some(now.clone()),
                    acquire_time: Some(now),
                    ..LeaseSpec::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> MachineFacts {
        MachineFacts {
            hostname: "box".into(),
            cpus: 4,
            memory_bytes: 8 << 30,
            gpus: 0,
            arch: "amd64".into(),
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 13 (trixie)".into(),
            machine_id: "abc".into(),
            boot_id: "def".into(),
        }
    }

    fn config() -> NodeConfig {
        NodeConfig {
            name: "n1".into(),
            ip: "127.0.0.2".parse().unwrap(),
            api_port: 10250,
            labels: BTreeMap::from([("zone".into(), "a".into())]),
            max_pods: 110,
            pod_address_range: None,
        }
    }

    #[test]
    fn a_node_without_runtimes_or_gpus_has_only_the_standard_labels() {
        let (labels, annotations, status) =
            describe(&config(), &machine(), &[], &RuntimeProblems::new(), vec![]);
        assert_eq!(
            labels,
            BTreeMap::from([
                ("kubernetes.io/arch".into(), "amd64".into()),
                ("kubernetes.io/hostname".into(), "n1".into()),
                ("kubernetes.io/os".into(), "linux".into()),
                ("zone".into(), "a".into()),
            ])
        );
        assert!(annotations.is_empty());
        let capacity = status.capacity.unwrap();
        assert_eq!(capacity["cpu"].0, "4");
        assert_eq!(capacity["memory"].0, "8388608Ki");
        assert_eq!(capacity["pods"].0, "110");
        assert!(!capacity.contains_key("nvidia.com/gpu"));
        assert_eq!(
            status
                .daemon_endpoints
                .unwrap()
                .kubelet_endpoint
                .unwrap()
                .port,
            10250
        );
        assert_eq!(status.addresses.unwrap()[0].address, "127.0.0.2");
    }

    #[test]
    fn gpus_give_the_label_and_the_resource() {
        let mut machine = machine();
        machine.gpus = 2;
        let mut config = config();
        config.pod_address_range = Some("127.1.0.0/24".into());
        let (labels, annotations, status) =
            describe(&config, &machine, &[], &RuntimeProblems::new(), vec![]);
        assert_eq!(labels[labels::GPU_ENABLED], "true");
        assert_eq!(status.capacity.unwrap()["nvidia.com/gpu"].0, "2");
        assert_eq!(annotations[POD_ADDRESS_RANGE_ANNOTATION], "127.1.0.0/24");
    }

    #[test]
    fn conditions_keep_transition_times_and_say_why() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let first = NodeStatus {
            conditions: Some(conditions(true, &RuntimeProblems::new(), None, t0)),
            ..NodeStatus::default()
        };
        let again = conditions(true, &RuntimeProblems::new(), Some(&first), t1);
        let ready = again.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.last_transition_time.as_ref().unwrap().0, t0);
        assert_eq!(ready.last_heartbeat_time.as_ref().unwrap().0, t1);
        let stopping = conditions(false, &RuntimeProblems::new(), Some(&first), t1);
        let ready = stopping.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.last_transition_time.as_ref().unwrap().0, t1);
    }

    #[test]
    fn a_runtime_that_does_not_answer_is_a_condition_not_unreadiness() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let healthy = conditions(true, &RuntimeProblems::new(), None, t0);
        let find = |conditions: &[NodeCondition], type_: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == type_)
                .cloned()
                .unwrap()
        };
        assert_eq!(find(&healthy, "RuntimeUnhealthy").status, "False");
        let problems = RuntimeProblems::from([(
            "containerd".to_owned(),
            "the runtime is unavailable: connection refused".to_owned(),
        )]);
        let sick = conditions(true, &problems, None, t0);
        let condition = find(&sick, "RuntimeUnhealthy");
        assert_eq!(condition.status, "True");
        assert_eq!(condition.reason.as_deref(), Some("RuntimeUnavailable"));
        assert_eq!(
            condition.message.as_deref(),
            Some("containerd: the runtime is unavailable: connection refused")
        );
        assert_eq!(find(&sick, "Ready").status, "True");
    }

    #[test]
    fn architectures_use_go_names() {
        assert_eq!(kubernetes_arch("x86_64"), "amd64");
        assert_eq!(kubernetes_arch("aarch64"), "arm64");
        assert_eq!(kubernetes_arch("riscv64"), "riscv64");
    }
}
