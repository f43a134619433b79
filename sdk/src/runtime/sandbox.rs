//! Pod sandboxes: the environment one pod attempt's containers share (CRI's
//! PodSandbox, trimmed).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::validate::{absolute_path, not_empty};
use super::{ContainerStatus, RuntimeError, RuntimeInfo, SandboxId};

/// Which pod attempt a sandbox belongs to (CRI's `PodSandboxMetadata`). A
/// runtime holds at most one sandbox per `(uid, attempt)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SandboxMetadata {
    /// The pod's name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's UID.
    pub uid: String,
    /// Counts the sandboxes created for this pod, from 0.
    pub attempt: u32,
}

impl SandboxMetadata {
    /// The metadata of attempt 0 of a pod.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        uid: impl Into<String>,
    ) -> Self {
        SandboxMetadata {
            name: name.into(),
            namespace: namespace.into(),
            uid: uid.into(),
            attempt: 0,
        }
    }

    /// Sets the attempt.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }
}

/// Where the pod's network lives. The agent prepares it (CNI) before
/// [`Runtime::run_sandbox`](super::Runtime::run_sandbox); runtimes never set
/// up networks themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxNetwork {
    /// The node's own network (`hostNetwork: true`, and tests): ports are
    /// served on the node's addresses.
    #[default]
    Host,
    /// The node's own network, the pod served on one address of its own
    /// among the node's local addresses (e.g. one of 127.0.0.0/8 for a
    /// cluster on one machine), so that pods of one node can use the same
    /// port.
    HostAddress {
        /// The pod's address.
        ip: IpAddr,
    },
    /// A network namespace the agent created and wired with CNI.
    Namespace {
        /// The namespace's path, e.g. `/var/run/netns/skiff-<uid>`.
        path: PathBuf,
        /// The pod IP the agent assigned inside it.
        ip: IpAddr,
    },
}

/// What [`Runtime::run_sandbox`](super::Runtime::run_sandbox) needs (CRI's
/// `PodSandboxConfig`, trimmed to what skiff's runtimes use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Which pod attempt this is.
    pub metadata: SandboxMetadata,
    /// The RuntimeClass handler that chose this runtime (`wasmtime`,
    /// `runc`); must be one of [`RuntimeInfo::handlers`].
    pub runtime_handler: String,
    /// The pod's hostname, as its containers see it.
    pub hostname: String,
    /// Absolute directory under which the containers' log files are written
    /// (each container's [`log_path`](super::ContainerConfig::log_path) is
    /// relative to it). The agent owns the directory and its files; runtimes
    /// create files in it but never delete them.
    pub log_directory: PathBuf,
    /// The pod's network.
    pub network: SandboxNetwork,
    /// The pod's labels, returned as is by [`Runtime::list`](super::Runtime::list).
    pub labels: BTreeMap<String, String>,
    /// The pod's annotations (and the agent's own bookkeeping), returned as
    /// is by [`Runtime::list`](super::Runtime::list).
    pub annotations: BTreeMap<String, String>,
}

impl SandboxConfig {
    /// A sandbox for a pod attempt, with the pod's name as hostname, the
    /// host network and no labels or annotations.
    pub fn new(
        metadata: SandboxMetadata,
        runtime_handler: impl Into<String>,
        log_directory: impl Into<PathBuf>,
    ) -> Self {
        SandboxConfig {
            hostname: metadata.name.clone(),
            metadata,
            runtime_handler: runtime_handler.into(),
            log_directory: log_directory.into(),
            ..SandboxConfig::default()
        }
    }

    /// Sets the hostname.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// Sets the network.
    pub fn network(mut self, network: SandboxNetwork) -> Self {
        self.network = network;
        self
    }

    /// Sets the labels.
    pub fn labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    /// Sets the annotations.
    pub fn annotations(mut self, annotations: BTreeMap<String, String>) -> Self {
        self.annotations = annotations;
        self
    }

    /// Checks what every runtime requires, before `run_sandbox` changes
    /// anything: pod name, namespace, UID and hostname present, a handler
    /// the runtime serves, absolute log directory and network namespace path.
    pub fn validate(&self, info: &RuntimeInfo) -> Result<(), RuntimeError> {
        not_empty("metadata.name", &self.metadata.name)?;
        not_empty("metadata.namespace", &self.metadata.namespace)?;
        not_empty("metadata.uid", &self.metadata.uid)?;
        not_empty("hostname", &self.hostname)?;
        if !info.serves(&self.runtime_handler) {
            return Err(RuntimeError::invalid_argument(
                "runtime_handler",
                format!(
                    "{:?} is not served by runtime {} (it serves {:?})",
                    self.runtime_handler, info.name, info.handlers
                ),
            ));
        }
        absolute_path("log_directory", &self.log_directory)?;
        if let SandboxNetwork::Namespace { path, .. } = &self.network {
            absolute_path("network.path", path)?;
        }
        Ok(())
    }
}

/// Whether a sandbox can take new containers (CRI's `PodSandboxState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SandboxState {
    /// Running: containers can be created and started in it.
    Ready,
    /// Stopped (or broken): all its containers have exited; it can only be
    /// removed.
    NotReady,
}

impl SandboxState {
    /// `ready` or `not ready`, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Ready => "ready",
            SandboxState::NotReady => "not ready",
        }
    }
}

/// A sandbox and its containers, as [`Runtime::list`](super::Runtime::list)
/// reports them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStatus {
    /// The sandbox's ID.
    pub id: SandboxId,
    /// The pod attempt, as configured.
    pub metadata: SandboxMetadata,
    /// The handler it was created with.
    pub runtime_handler: String,
    /// Ready or not.
    pub state: SandboxState,
    /// When `run_sandbox` created it.
    pub created_at: Timestamp,
    /// The labels, as configured.
    pub labels: BTreeMap<String, String>,
    /// The annotations, as configured.
    pub annotations: BTreeMap<String, String>,
    /// Every container of the sandbox that has not been removed, in creation
    /// order.
    pub containers: Vec<ContainerStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RuntimeInfo {
        RuntimeInfo::new("wasmtime", "30.0.0").handler("wasmtime")
    }

    fn valid() -> SandboxConfig {
        SandboxConfig::new(
            SandboxMetadata::new("default", "web", "1f0c"),
            "wasmtime",
            "/var/log/pods/default_web_1f0c",
        )
    }

    #[track_caller]
    fn check(config: SandboxConfig, expect: Result<(), &str>) {
        let got = config.validate(&info()).map_err(|e| e.to_string());
        assert_eq!(got.as_ref().map(|_| ()).map_err(String::as_str), expect);
    }

    #[test]
    fn new_uses_the_pod_name_as_hostname() {
        let config = valid();
        assert_eq!(config.hostname, "web");
        assert_eq!(config.metadata.attempt, 0);
        assert_eq!(config.network, SandboxNetwork::Host);
        assert_eq!(config.hostname("h").hostname, "h");
    }

    #[test]
    fn validation() {
        check(valid(), Ok(()));
        let namespaced = SandboxNetwork::Namespace {
            path: "/var/run/netns/skiff-1f0c".into(),
            ip: "10.42.0.7".parse().unwrap(),
        };
        check(valid().network(namespaced), Ok(()));

        let mut no_uid = valid();
        no_uid.metadata.uid.clear();
        check(no_uid, Err("invalid metadata.uid: must not be empty"));
        check(
            valid().hostname(""),
            Err("invalid hostname: must not be empty"),
        );
        let mut runc = valid();
        runc.runtime_handler = "runc".into();
        check(
            runc,
            Err(
                r#"invalid runtime_handler: "runc" is not served by runtime wasmtime (it serves ["wasmtime"])"#,
            ),
        );
        let mut relative = valid();
        relative.log_directory = "logs".into();
        check(
            relative,
            Err(r#"invalid log_directory: "logs" is not an absolute path"#),
        );
        let relative_netns = SandboxNetwork::Namespace {
            path: "netns".into(),
            ip: "10.42.0.7".parse().unwrap(),
        };
        check(
            valid().network(relative_netns),
            Err(r#"invalid network.path: "netns" is not an absolute path"#),
        );
    }
}
