//! Containers: their configuration, status and stats (CRI's Container,
//! trimmed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::validate::{absolute_path, container_path, not_empty, relative_file};
use super::{ContainerId, ImageSpec, RuntimeError, SandboxId, log};

/// The exit code a container reports when it was killed (at the end of its
/// grace period, by `remove_container` or `stop_sandbox`): 128 + SIGKILL, as
/// runc reports it. The Wasm runtime reports the same for a guest it kills.
pub const KILLED_EXIT_CODE: i32 = 137;

/// The `reason` strings a [`ContainerStatus`] carries, as Kubernetes shows
/// them in `status.containerStatuses[].state.terminated.reason`.
pub mod reason {
    /// The container exited with code 0.
    pub const COMPLETED: &str = "Completed";
    /// The container exited with a non-zero code, or was killed.
    pub const ERROR: &str = "Error";
    /// The container was killed for exceeding its memory limit (for a Wasm
    /// guest: a memory growth beyond the limit trapped).
    pub const OOM_KILLED: &str = "OOMKilled";
    /// A Wasm guest needs an import the node does not provide. Runtimes
    /// report this through [`RuntimeError::UnsupportedImport`] from
    /// `create_container`; the agent shows this string as the container's
    /// waiting reason.
    ///
    /// [`RuntimeError::UnsupportedImport`]: crate::runtime::RuntimeError::UnsupportedImport
    pub const UNSUPPORTED_IMPORT: &str = "UnsupportedImport";

    /// The reason for a plain exit with `exit_code`: [`COMPLETED`] for 0,
    /// [`ERROR`] otherwise.
    pub fn for_exit_code(exit_code: i32) -> &'static str {
        if exit_code == 0 { COMPLETED } else { ERROR }
    }
}

/// A host directory or file made visible in the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path on the node.
    pub host_path: PathBuf,
    /// Absolute path inside the container (for a Wasm guest, a preopened
    /// directory).
    pub container_path: String,
    /// Writes through the mount fail (EROFS / `read-only` in WASI) and leave
    /// the host file unchanged.
    pub read_only: bool,
}

impl Mount {
    /// A read-write mount.
    pub fn read_write(host_path: impl Into<PathBuf>, container_path: impl Into<String>) -> Self {
        Mount {
            host_path: host_path.into(),
            container_path: container_path.into(),
            read_only: false,
        }
    }

    /// A read-only mount.
    pub fn read_only(host_path: impl Into<PathBuf>, container_path: impl Into<String>) -> Self {
        Mount {
            read_only: true,
            ..Mount::read_write(host_path, container_path)
        }
    }
}

/// Resource limits from the pod spec's `resources.limits`; `None` is
/// unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes. Exceeding it ends the container with reason
    /// [`reason::OOM_KILLED`].
    pub memory_limit_bytes: Option<u64>,
    /// CPU limit in millicores (1000 = one core); the container is throttled
    /// to it, not killed.
    pub cpu_limit_millis: Option<u64>,
}

/// The container's security context (Kubernetes `securityContext`, the
/// pod's merged with the container's). OCI runtimes apply it; a Wasm guest
/// has no users or capabilities to apply it to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// The process's user ID; `None` for the image's user.
    pub run_as_user: Option<u32>,
    /// The process's group ID; `None` for the image's (or the user's).
    pub run_as_group: Option<u32>,
    /// Extra groups of the process (`supplementalGroups`, `fsGroup`).
    pub supplemental_groups: Vec<u32>,
    /// The root filesystem is mounted read-only.
    pub read_only_root_filesystem: bool,
    /// Capabilities added to the runtime's default set (`NET_ADMIN` style,
    /// `ALL` for every one).
    pub capabilities_add: Vec<String>,
    /// Capabilities removed from it (`ALL` for every one).
    pub capabilities_drop: Vec<String>,
    /// Every capability, every device, no seccomp filter, writable /proc
    /// and /sys.
    pub privileged: bool,
    /// Whether the process may gain privileges (setuid binaries, file
    /// capabilities); `None` is no, unless privileged (no_new_privs).
    pub allow_privilege_escalation: Option<bool>,
}

/// What [`Runtime::create_container`](super::Runtime::create_container)
/// needs (CRI's `ContainerConfig`, trimmed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The container's name in the pod spec.
    pub name: String,
    /// Counts the containers created under this name in the sandbox, from 0
    /// (the restart count).
    pub attempt: u32,
    /// The image, already pulled: the reference given to `pull_image` or the
    /// [`PulledImage::digest`](super::PulledImage::digest). Runtimes never pull
    /// on create.
    pub image: ImageSpec,
    /// Replaces the image's entrypoint when not empty (Kubernetes
    /// `command`). The process's argv is `command ++ args`; a Wasm guest with
    /// no command gets the container name as argv\[0\].
    pub command: Vec<String>,
    /// The arguments (Kubernetes `args`). When both `command` and `args` are
    /// empty an OCI image's `Cmd` applies; when `command` is set, `Cmd` is
    /// ignored.
    pub args: Vec<String>,
    /// Environment variables in order; a repeated name takes its last value.
    pub env: Vec<(String, String)>,
    /// Absolute working directory in the container; `None` for the image's
    /// (`/` for Wasm).
    pub working_dir: Option<String>,
    /// Host paths to make visible.
    pub mounts: Vec<Mount>,
    /// Where the runtime writes the container's stdout and stderr in the CRI
    /// log format (see [`log`]): relative to the sandbox's
    /// [`log_directory`](super::SandboxConfig::log_directory), by default
    /// [`log::container_log_path`] `<name>/<attempt>.log`.
    pub log_path: PathBuf,
    /// Limits.
    pub resources: Resources,
    /// TCP ports the container serves (`containerPort`s). The Wasm runtime
    /// serves an HTTP component (`wasi:http/incoming-handler`) on each, on
    /// the sandbox's network; OCI containers bind their own.
    pub ports: Vec<u16>,
    /// The agent's bookkeeping (spec hash, restart count, termination
    /// message path); returned as is in [`ContainerStatus::annotations`].
    pub annotations: BTreeMap<String, String>,
    /// Users, capabilities and the root filesystem's mode.
    #[serde(default)]
    pub security: Security,
}

impl ContainerConfig {
    /// A container running `image` with the image's defaults, logging to
    /// `<name>/<attempt>.log`.
    pub fn new(name: impl Into<String>, attempt: u32, image: ImageSpec) -> Self {
        let name = name.into();
        ContainerConfig {
            log_path: log::container_log_path(&name, attempt),
            name,
            attempt,
            image,
            ..ContainerConfig::default()
        }
    }

    /// Sets the command.
    pub fn command(mut self, command: Vec<String>) -> Self {
        self.command = command;
        self
    }

    /// Sets the arguments.
    pub fn args(mut self, args: Vec<String>) -> Self {
        self.args = args;
        self
    }

    /// Appends an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Sets the working directory.
    pub fn working_dir(mut self, working_dir: impl Into<String>) -> Self {
        self.working_dir = Some(working_dir.into());
        self
    }

    /// Appends a mount.
    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Sets the log path, relative to the sandbox's log directory.
    pub fn log_path(mut self, log_path: impl Into<PathBuf>) -> Self {
        self.log_path = log_path.into();
        self
    }

    /// Sets the limits.
    pub fn resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    /// Appends a served TCP port.
    pub fn port(mut self, container_port: u16) -> Self {
        self.ports.push(container_port);
        self
    }

    /// Sets the annotations.
    pub fn annotations(mut self, annotations: BTreeMap<String, String>) -> Self {
        self.annotations = annotations;
        self
    }

    /// Sets the security context.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Checks what every runtime requires, before `create_container` changes
    /// anything: a name usable in paths, an image reference, variable names
    /// without `=`, absolute paths where the container or node expects them,
    /// a log path inside the log directory, non-zero limits, distinct
    /// non-zero ports and mount targets.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        not_empty("name", &self.name)?;
        if self.name.contains('/') || self.name == "." || self.name == ".." {
            return Err(RuntimeError::invalid_argument(
                "name",
                format!("{:?} cannot be used as a file name", self.name),
            ));
        }
        not_empty("image.reference", &self.image.reference)?;
        for (i, (name, _)) in self.env.iter().enumerate() {
            let field = || format!("env[{i}].name");
            not_empty(&field(), name)?;
            if name.contains('=') || name.contains('\0') {
                return Err(RuntimeError::invalid_argument(
                    field(),
                    format!("{name:?} contains `=` or NUL"),
                ));
            }
        }
        if let Some(dir) = &self.working_dir {
            container_path("working_dir", dir)?;
        }
        let mut targets = BTreeSet::new();
        for (i, mount) in self.mounts.iter().enumerate() {
            absolute_path(&format!("mounts[{i}].host_path"), &mount.host_path)?;
            let field = format!("mounts[{i}].container_path");
            container_path(&field, &mount.container_path)?;
            if !targets.insert(mount.container_path.as_str()) {
                return Err(RuntimeError::invalid_argument(
                    field,
                    format!("{:?} is mounted twice", mount.container_path),
                ));
            }
        }
        relative_file("log_path", &self.log_path)?;
        if self.resources.memory_limit_bytes == Some(0) {
            return Err(RuntimeError::invalid_argument(
                "resources.memory_limit_bytes",
                "must be positive",
            ));
        }
        if self.resources.cpu_limit_millis == Some(0) {
            return Err(RuntimeError::invalid_argument(
                "resources.cpu_limit_millis",
                "must be positive",
            ));
        }
        let mut ports = BTreeSet::new();
        for (i, &port) in self.ports.iter().enumerate() {
            if port == 0 || !ports.insert(port) {
                return Err(RuntimeError::invalid_argument(
                    format!("ports[{i}]"),
                    format!("{port} is zero or repeated"),
                ));
            }
        }
        Ok(())
    }
}

/// Where a container is in its life (CRI's `ContainerState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Its process runs.
    Running,
    /// Its process ended; `exit_code` and `finished_at` are set.
    Exited,
    /// The runtime lost track of its process (a Wasm guest whose runtime
    /// restarted while it ran): it does not run and has no exit code. The
    /// agent removes it and starts a new attempt.
    Unknown,
}

impl ContainerState {
    /// `created`, `running`, `exited` or `unknown`, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
            ContainerState::Unknown => "unknown",
        }
    }
}

/// A container's status (CRI's `ContainerStatus`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// The container's ID.
    pub id: ContainerId,
    /// The sandbox it belongs to.
    pub sandbox_id: SandboxId,
    /// Its name, as configured.
    pub name: String,
    /// Its attempt, as configured.
    pub attempt: u32,
    /// The image, as configured.
    pub image: ImageSpec,
    /// Where it is in its life.
    pub state: ContainerState,
    /// When `create_container` created it.
    pub created_at: Timestamp,
    /// When its process started; set from `Running` on.
    pub started_at: Option<Timestamp>,
    /// When its process ended; set when `Exited`.
    pub finished_at: Option<Timestamp>,
    /// The process's exit code; set when `Exited` ([`KILLED_EXIT_CODE`] if
    /// it was killed).
    pub exit_code: Option<i32>,
    /// Why it exited, one of [`reason`]'s strings; set when `Exited`.
    pub reason: Option<String>,
    /// A human-readable detail of the exit (a Wasm trap's message, "killed
    /// after the 30s grace period").
    pub message: Option<String>,
    /// The absolute path of its log file: the sandbox's log directory joined
    /// with the configured `log_path`.
    pub log_path: PathBuf,
    /// The annotations, as configured.
    pub annotations: BTreeMap<String, String>,
}

/// One sample of a running container's resource use (CRI's
/// `ContainerStats`, trimmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// When the sample was taken.
    pub timestamp: Timestamp,
    /// CPU time used since the container started, in nanoseconds; never
    /// decreases.
    pub cpu_usage_nanos: u64,
    /// Memory in use now, in bytes (the cgroup's working set; a Wasm guest's
    /// linear memories and tables).
    pub memory_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ContainerConfig {
        ContainerConfig::new("app", 2, ImageSpec::new("registry.local/app:1"))
            .command(vec!["/app".into()])
            .args(vec!["--port".into(), "8080".into()])
            .env("A", "1")
            .env("B", "x=y")
            .working_dir("/srv")
            .mount(Mount::read_write("/var/lib/skiff/vol", "/data"))
            .mount(Mount::read_only("/etc/skiff/config", "/config"))
            .resources(Resources {
                memory_limit_bytes: Some(64 << 20),
                cpu_limit_millis: Some(500),
            })
            .port(8080)
    }

    #[track_caller]
    fn check(edit: impl FnOnce(&mut ContainerConfig), expect: Result<(), &str>) {
        let mut config = valid();
        edit(&mut config);
        let got = config.validate().map_err(|e| e.to_string());
        assert_eq!(got.as_ref().map(|_| ()).map_err(String::as_str), expect);
    }

    #[test]
    fn new_logs_to_name_slash_attempt() {
        let config = valid();
        assert_eq!(config.log_path, PathBuf::from("app/2.log"));
        assert_eq!(
            config.env,
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert!(config.mounts[1].read_only && !config.mounts[0].read_only);
    }

    #[test]
    fn validation() {
        check(|_| {}, Ok(()));
        check(|c| c.working_dir = None, Ok(()));
        check(|c| c.log_path = "./app/2.log".into(), Ok(()));
        check(|c| c.name.clear(), Err("invalid name: must not be empty"));
        check(
            |c| c.name = "a/b".into(),
            Err(r#"invalid name: "a/b" cannot be used as a file name"#),
        );
        check(
            |c| c.image.reference.clear(),
            Err("invalid image.reference: must not be empty"),
        );
        check(
            |c| c.env[1].0 = "B=C".into(),
            Err(r#"invalid env[1].name: "B=C" contains `=` or NUL"#),
        );
        check(
            |c| c.env[0].0.clear(),
            Err("invalid env[0].name: must not be empty"),
        );
        check(
            |c| c.working_dir = Some("srv".into()),
            Err(r#"invalid working_dir: "srv" is not an absolute path in the container"#),
        );
        check(
            |c| c.mounts[1].host_path = "config".into(),
            Err(r#"invalid mounts[1].host_path: "config" is not an absolute path"#),
        );
        check(
            |c| c.mounts[0].container_path = "data".into(),
            Err(
                r#"invalid mounts[0].container_path: "data" is not an absolute path in the container"#,
            ),
        );
        check(
            |c| c.mounts[1].container_path = "/data".into(),
            Err(r#"invalid mounts[1].container_path: "/data" is mounted twice"#),
        );
        for bad in ["/var/log/x.log", "../x.log", "app/../../x.log", "", "."] {
            let message = format!(
                "invalid log_path: {:?} must be a relative path without `..`",
                PathBuf::from(bad)
            );
            check(|c| c.log_path = bad.into(), Err(&message));
        }
        check(
            |c| c.resources.memory_limit_bytes = Some(0),
            Err("invalid resources.memory_limit_bytes: must be positive"),
        );
        check(
            |c| c.resources.cpu_limit_millis = Some(0),
            Err("invalid resources.cpu_limit_millis: must be positive"),
        );
        check(
            |c| c.ports.push(8080),
            Err("invalid ports[1]: 8080 is zero or repeated"),
        );
        check(
            |c| c.ports = vec![0],
            Err("invalid ports[0]: 0 is zero or repeated"),
        );
    }

    #[test]
    fn reasons_follow_the_exit_code() {
        assert_eq!(reason::for_exit_code(0), "Completed");
        assert_eq!(reason::for_exit_code(3), "Error");
        assert_eq!(reason::for_exit_code(KILLED_EXIT_CODE), "Error");
    }
}
