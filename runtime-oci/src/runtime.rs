//! [`OciRuntime`]: the runtime trait over containerd.
//!
//! Every object skiff creates in containerd lives in its own containerd
//! namespace (`skiff` by default): per container a containerd container
//! (its OCI spec, see [`crate::spec`]), an overlayfs snapshot (key = the
//! container's ID, parent = the image's top layer) and, while it runs, a
//! task under containerd's runc shim. Sandboxes are not containerd objects:
//! a sandbox is a directory holding the pod's persistent IPC and UTS
//! namespaces (see [`crate::sandbox`]).
//!
//! What skiff knows about each sandbox and container is recorded as JSON
//! under the state directory and rewritten on every change, so that a
//! runtime opened again (after an agent restart) lists the same objects and
//! adopts the tasks that still run: containers survive an agent restart,
//! and a containerd restart too (the shims keep the processes).
//!
//! Output: a container's stdout and stderr are FIFOs in its state
//! directory, which the shim writes and this runtime reads into the CRI log
//! file. The shim keeps both ends open, so output written while the agent
//! is down waits in the FIFO (up to the pipe's size) and is read when the
//! runtime is opened again. A container is reported `Exited` only after
//! its output reached the log file.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use containerd_client::services::v1::container::Runtime as ContainerRuntime;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::{
    CloseIoRequest, Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetRequest,
    KillRequest, ResizePtyRequest, StartRequest, WaitRequest,
};
use containerd_client::types::v1::Status as ProcessStatus;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use skiff_sdk::runtime::log::{LogWriter, Stream};
use skiff_sdk::runtime::{
    ContainerConfig, ContainerId, ContainerState, ContainerStats, ContainerStatus, ExecProcess,
    ExecRequest, Feature, ImageInfo, ImageSpec, ObjectKind, PullOptions, PulledImage, Runtime,
    RuntimeError, RuntimeEvent, RuntimeInfo, SandboxConfig, SandboxId, SandboxNetwork,
    SandboxState, SandboxStatus, TerminalSize, reason,
};
use tokio::io::AsyncReadExt as _;
use tokio::sync::{broadcast, watch};

use crate::client::{self, Containerd, NAMESPACE, SNAPSHOTTER};
use crate::image::Images;
use crate::sandbox::{SandboxDir, write_atomically};
use crate::spec;

/// The RuntimeClass handler this runtime serves.
pub const HANDLER: &str = "runc";
/// containerd's runtime (shim) for the containers.
const SHIM: &str = "io.containerd.runc.v2";
/// The cgroup under which pods' cgroups are made: `/skiff/pod<uid>/<id>`.
const DEFAULT_CGROUP_PARENT: &str = "/skiff";
/// The default containerd socket.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// Events buffered for slow subscribers.
const EVENT_CAPACITY: usize = 1024;
/// How long a waiter on a task pauses before asking containerd again after
/// the connection failed (containerd restarting).
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// How long a removal waits for a container's waiter to delete its task.
const WATCHER_PATIENCE: Duration = Duration::from_secs(30);
/// How long containerd may take to answer when the runtime opens.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long containerd may take to answer a health check.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// The terminal of an exec before its client says its size.
const DEFAULT_TERMINAL_SIZE: TerminalSize = TerminalSize {
    width: 80,
    height: 24,
};
/// SIGTERM and SIGKILL.
const SIGTERM: u32 = 15;
const SIGKILL: u32 = 9;

/// How to open an [`OciRuntime`].
#[derive(Clone, Debug)]
pub struct OciRuntimeOptions {
    socket: PathBuf,
    state_dir: PathBuf,
    namespace: String,
    host_ip: IpAddr,
    cgroup_parent: String,
}

impl OciRuntimeOptions {
    /// containerd at its default socket; records under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            state_dir: state_dir.into(),
            namespace: NAMESPACE.to_owned(),
            host_ip: IpAddr::from([127, 0, 0, 1]),
            cgroup_parent: DEFAULT_CGROUP_PARENT.to_owned(),
        }
    }

    /// containerd's socket.
    pub fn socket(mut self, socket: impl Into<PathBuf>) -> Self {
        self.socket = socket.into();
        self
    }

    /// The containerd namespace (default `skiff`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The node's address: a pod's address when its sandbox uses the node's
    /// network.
    pub fn host_ip(mut self, host_ip: IpAddr) -> Self {
        self.host_ip = host_ip;
        self
    }

    /// The cgroup pods' cgroups are made under (default `/skiff`).
    pub fn cgroup_parent(mut self, cgroup_parent: impl Into<String>) -> Self {
        self.cgroup_parent = cgroup_parent.into();
        self
    }

    /// Whether containerd's socket is there (whether it answers or not).
    pub fn socket_exists(&self) -> bool {
        self.socket.exists()
    }

    /// Whether the state directory records sandboxes or containers of an
    /// earlier run, which containerd may still run.
    pub fn has_records(&self) -> bool {
        [sandboxes_dir(self), containers_dir(self)]
            .iter()
            .any(|dir| std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()))
    }
}

/// A sandbox as recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SandboxRecord {
    status: SandboxStatus,
    config: SandboxConfig,
}

/// A container as recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ContainerRecord {
    status: ContainerStatus,
    config: ContainerConfig,
    cgroups_path: String,
}

/// A container in memory: its record and whether its process has ended.
struct Entry {
    record: Mutex<ContainerRecord>,
    ended: watch::Sender<bool>,
}

struct Inner {
    containerd: Containerd,
    images: Images,
    info: RuntimeInfo,
    options: OciRuntimeOptions,
    sandboxes: Mutex<HashMap<SandboxId, SandboxRecord>>,
    containers: Mutex<HashMap<ContainerId, Arc<Entry>>>,
    events: broadcast::Sender<RuntimeEvent>,
}

/// Containers through containerd; see the module documentation.
#[derive(Clone)]
pub struct OciRuntime {
    inner: Arc<Inner>,
}

impl OciRuntime {
    /// Connects to containerd, loads the records of `state_dir` and adopts
    /// the tasks that still run. Fails with `Unavailable` when containerd
    /// does not answer (within 10 s).
    pub async fn open(options: OciRuntimeOptions) -> Result<Self, RuntimeError> {
        let connect = async {
            let containerd = Containerd::connect(&options.socket, &options.namespace).await?;
            let version = containerd
                .version()
                .version(containerd.request(()))
                .await
                .map_err(client::backend("ask containerd's version"))?
                .into_inner();
            Ok::<_, RuntimeError>((containerd, version))
        };
        let (containerd, version) =
            tokio::time::timeout(OPEN_TIMEOUT, connect)
                .await
                .map_err(|_| RuntimeError::Unavailable {
                    source: format!(
                        "containerd at {} did not answer within {} s",
                        options.socket.display(),
                        OPEN_TIMEOUT.as_secs()
                    )
                    .into(),
                })??;
        let info = Self::info_for(version.version);
        for dir in [sandboxes_dir(&options), containers_dir(&options)] {
            std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        }
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let runtime = OciRuntime {
            inner: Arc::new(Inner {
                images: Images::new(containerd.clone()),
                containerd,
                info,
                options,
                sandboxes: Mutex::new(HashMap::new()),
                containers: Mutex::new(HashMap::new()),
                events,
            }),
        };
        runtime.load().await?;
        Ok(runtime)
    }

    /// What the runtime says of itself over containerd `version`; with
    /// `"unknown"`, what it will say before it has reached containerd.
    pub fn info_for(version: impl Into<String>) -> RuntimeInfo {
        RuntimeInfo::new("containerd", version)
            .handler(HANDLER)
            .feature(Feature::Exec)
    }

    /// Reads the records and reconciles containers with containerd.
    async fn load(&self) -> Result<(), RuntimeError> {
        let options = &self.inner.options;
        for record in read_records::<SandboxRecord>(&sandboxes_dir(options), "sandbox.json")? {
            let mut record = record;
            let dir = self.sandbox_dir(&record.status.id);
            if record.status.state == SandboxState::Ready && !dir.namespaces_alive() {
                // The node rebooted: the pod's namespaces are gone.
                record.status.state = SandboxState::NotReady;
            }
            lock(&self.inner.sandboxes).insert(record.status.id.clone(), record);
        }
        for record in read_records::<ContainerRecord>(&containers_dir(options), "container.json")? {
            let id = record.status.id.clone();
            let ended = matches!(
                record.status.state,
                ContainerState::Exited | ContainerState::Unknown
            );
            let entry = Arc::new(Entry {
                record: Mutex::new(record),
                ended: watch::channel(ended).0,
            });
            lock(&self.inner.containers).insert(id.clone(), entry.clone());
            if !ended {
                self.reconcile(&id, &entry).await;
            }
        }
        Ok(())
    }

    /// A container recorded as created or running, after a restart: asks
    /// containerd what became of its task.
    async fn reconcile(&self, id: &ContainerId, entry: &Arc<Entry>) {
        let state = lock(&entry.record).status.state;
        let task = self
            .inner
            .containerd
            .tasks()
            .get(self.inner.containerd.request(GetRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await;
        match (state, task) {
            (ContainerState::Running, Ok(response)) => {
                let process = response.into_inner().process.unwrap_or_default();
                if process.status() == ProcessStatus::Running
                    || process.status() == ProcessStatus::Stopped
                    || process.status() == ProcessStatus::Paused
                {
                    // Still running, or ended while nobody watched: the
                    // waiter reads its output and its exit.
                    match self.open_output(id) {
                        Ok(output) => self.watch_task(id.clone(), entry.clone(), output),
                        Err(error) => {
                            tracing::warn!(container = %id.as_str(), %error, "reopening a container's output failed");
                            self.watch_task(id.clone(), entry.clone(), Output::none());
                        }
                    }
                } else {
                    self.lose(entry, "its task is in an unexpected state");
                }
            }
            (ContainerState::Running, Err(status)) if client::is_not_found(&status) => {
                self.lose(entry, "its task is gone");
            }
            (ContainerState::Running, Err(status)) => {
                tracing::warn!(container = %id.as_str(), %status, "asking containerd about a task failed");
                self.lose(entry, "containerd did not answer about its task");
            }
            _ => {}
        }
    }

    /// Records a container whose process was lost as `Unknown`.
    fn lose(&self, entry: &Entry, why: &str) {
        let mut record = lock(&entry.record);
        record.status.state = ContainerState::Unknown;
        record.status.message = Some(format!("the container's process was lost: {why}"));
        self.persist_container(&record);
        entry.ended.send_replace(true);
    }

    fn sandbox_dir(&self, id: &SandboxId) -> SandboxDir {
        SandboxDir::new(sandboxes_dir(&self.inner.options).join(id.as_str()))
    }

    fn container_dir(&self, id: &ContainerId) -> PathBuf {
        containers_dir(&self.inner.options).join(id.as_str())
    }

    fn persist_sandbox(&self, record: &SandboxRecord) {
        let path = self
            .sandbox_dir(&record.status.id)
            .path()
            .join("sandbox.json");
        persist(&path, record);
    }

    fn persist_container(&self, record: &ContainerRecord) {
        let path = self.container_dir(&record.status.id).join("container.json");
        persist(&path, record);
    }

    fn entry(&self, id: &ContainerId) -> Result<Arc<Entry>, RuntimeError> {
        lock(&self.inner.containers)
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::not_found(ObjectKind::Container, id.as_str()))
    }

    fn containers_of(&self, sandbox: &SandboxId) -> Vec<(ContainerId, Arc<Entry>)> {
        let mut containers: Vec<_> = lock(&self.inner.containers)
            .iter()
            .filter(|(_, e)| lock(&e.record).status.sandbox_id == *sandbox)
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        containers.sort_by_key(|(_, e)| lock(&e.record).status.created_at);
        containers
    }

    /// Opens the read ends of a container's FIFOs (made if missing).
    fn open_output(&self, id: &ContainerId) -> Result<Output, RuntimeError> {
        let dir = self.container_dir(id);
        let mut pipes = Vec::new();
        for name in ["stdout", "stderr"] {
            let path = dir.join(name);
            if !path.exists() {
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(|e| RuntimeError::io(&path, std::io::Error::from(e)))?;
            }
            let receiver = tokio::net::unix::pipe::OpenOptions::new()
                .open_receiver(&path)
                .map_err(|e| RuntimeError::io(&path, e))?;
            pipes.push(receiver);
        }
        let stderr = pipes.pop();
        let stdout = pipes.pop();
        Ok(Output { stdout, stderr })
    }

    /// Follows a started container: copies its output to its log and, once
    /// the task exits and the output is all read, records the exit, deletes
    /// the task and announces it.
    fn watch_task(&self, id: ContainerId, entry: Arc<Entry>, output: Output) {
        let runtime = self.clone();
        tokio::spawn(async move {
            let log_path = lock(&entry.record).status.log_path.clone();
            let copier = tokio::spawn(copy_output(output, log_path));
            let Some((exit_code, finished_at)) = runtime.wait_for_exit(&id).await else {
                copier.abort();
                runtime.lose(&entry, "containerd no longer knows its task");
                return;
            };
            if let Err(error) = copier.await.unwrap_or(Ok(())) {
                tracing::warn!(container = %id.as_str(), %error, "writing a container's log failed");
            }
            let oom = {
                let record = lock(&entry.record);
                oom_killed(&record.cgroups_path)
            };
            let sandbox_id = {
                let mut record = lock(&entry.record);
                record.status.state = ContainerState::Exited;
                record.status.exit_code = Some(exit_code);
                record.status.finished_at = Some(finished_at);
                record.status.reason = Some(if oom {
                    reason::OOM_KILLED.to_owned()
                } else {
                    reason::for_exit_code(exit_code).to_owned()
                });
                runtime.persist_container(&record);
                record.status.sandbox_id.clone()
            };
            // The task goes before anyone learns the container ended, so
            // that a removal never deletes it at the same time (two deletes
            // of one task can leave its shim behind).
            runtime.delete_task(&id).await;
            entry.ended.send_replace(true);
            let _ = runtime.inner.events.send(RuntimeEvent::ContainerExited {
                container_id: id,
                sandbox_id,
                exit_code,
                finished_at,
            });
        });
    }

    /// Waits for the task's exit, asking again while containerd restarts;
    /// `None` when containerd no longer knows the task.
    async fn wait_for_exit(&self, id: &ContainerId) -> Option<(i32, Timestamp)> {
        loop {
            let result = self
                .inner
                .containerd
                .tasks()
                .wait(self.inner.containerd.request(WaitRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                }))
                .await;
            match result {
                Ok(response) => {
                    let response = response.into_inner();
                    let finished_at = response
                        .exited_at
                        .and_then(|t| Timestamp::new(t.seconds, t.nanos).ok())
                        .unwrap_or_else(Timestamp::now);
                    return Some((response.exit_status as i32, finished_at));
                }
                Err(status) if client::is_not_found(&status) => return None,
                Err(status) => {
                    tracing::debug!(container = %id.as_str(), %status, "waiting for a task failed; asking again");
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
        }
    }

    /// Waits until the waiter of a started container has recorded its exit
    /// and deleted its task (bounded: a waiter that cannot reach
    /// containerd is not waited for beyond [`WATCHER_PATIENCE`]).
    async fn wait_for_watcher(&self, entry: &Entry) {
        let state = lock(&entry.record).status.state;
        if matches!(state, ContainerState::Running | ContainerState::Exited) {
            let mut ended = entry.ended.subscribe();
            let _ = tokio::time::timeout(WATCHER_PATIENCE, ended.wait_for(|e| *e)).await;
        }
    }

    async fn delete_task(&self, id: &ContainerId) {
        let result = self
            .inner
            .containerd
            .tasks()
            .delete(self.inner.containerd.request(DeleteTaskRequest {
                container_id: id.to_string(),
            }))
            .await;
        if let Err(status) = result
            && !client::is_not_found(&status)
        {
            tracing::warn!(container = %id.as_str(), %status, "deleting a task failed");
        }
    }

    async fn kill(&self, id: &ContainerId, signal: u32, all: bool) -> Result<(), RuntimeError> {
        let result = self
            .inner
            .containerd
            .tasks()
            .kill(self.inner.containerd.request(KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal,
                all,
            }))
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already gone (or never started).
            Err(status) if client::is_not_found(&status) => Ok(()),
            Err(status) if status.message().contains("process already finished") => Ok(()),
            Err(status) => Err(client::backend("signal a task")(status)),
        }
    }

    /// Removes a container's containerd objects and state directory.
    async fn destroy_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.delete_task(id).await;
        let containerd = &self.inner.containerd;
        if let Err(status) = containerd
            .containers()
            .delete(containerd.request(DeleteContainerRequest { id: id.to_string() }))
            .await
            && !client::is_not_found(&status)
        {
            return Err(client::backend("delete a container")(status));
        }
        if let Err(status) = containerd
            .snapshots()
            .remove(containerd.request(RemoveSnapshotRequest {
                snapshotter: SNAPSHOTTER.to_owned(),
                key: id.to_string(),
            }))
            .await
            && !client::is_not_found(&status)
        {
            return Err(client::backend("remove a container's snapshot")(status));
        }
        let dir = self.container_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io(&dir, e)),
        }
        lock(&self.inner.containers).remove(id);
        Ok(())
    }

    /// A fresh 64-hex-digit ID.
    fn new_id(seed: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(seed.as_bytes());
        hash.update(Timestamp::now().as_nanosecond().to_le_bytes());
        hash.update(std::process::id().to_le_bytes());
        hash.update(next_count());
        hex::encode(hash.finalize())
    }
}

/// A number that differs between calls in one process.
fn next_count() -> [u8; 8] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes()
}

#[async_trait]
impl Runtime for OciRuntime {
    fn info(&self) -> &RuntimeInfo {
        &self.inner.info
    }

    async fn pull_image(
        &self,
        image: &ImageSpec,
        options: &PullOptions,
    ) -> Result<PulledImage, RuntimeError> {
        self.inner.images.pull(image, options).await
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.inner.images.list().await
    }

    async fn remove_image(&self, image: &ImageSpec) -> Result<(), RuntimeError> {
        self.inner.images.remove(image).await
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError> {
        config.validate(&self.inner.info)?;
        let id = {
            let sandboxes = lock(&self.inner.sandboxes);
            if let Some(existing) = sandboxes.values().find(|s| {
                s.status.metadata.uid == config.metadata.uid
                    && s.status.metadata.attempt == config.metadata.attempt
            }) {
                return Err(RuntimeError::AlreadyExists {
                    kind: ObjectKind::Sandbox,
                    name: format!(
                        "{}/{} attempt {}",
                        config.metadata.namespace, config.metadata.name, config.metadata.attempt
                    ),
                    existing: existing.status.id.to_string(),
                });
            }
            SandboxId::new(Self::new_id(&config.metadata.uid))
        };
        let pod_ip = match &config.network {
            SandboxNetwork::Host => self.inner.options.host_ip,
            SandboxNetwork::HostAddress { ip } | SandboxNetwork::Namespace { ip, .. } => *ip,
        };
        let hostname = hostname_of(config);
        let dir = self.sandbox_dir(&id);
        if let Err(error) = dir.create(&hostname, pod_ip).await {
            let _ = dir.remove();
            return Err(error);
        }
        let record = SandboxRecord {
            status: SandboxStatus {
                id: id.clone(),
                metadata: config.metadata.clone(),
                runtime_handler: config.runtime_handler.clone(),
                state: SandboxState::Ready,
                created_at: Timestamp::now(),
                labels: config.labels.clone(),
                annotations: config.annotations.clone(),
                containers: Vec::new(),
            },
            config: config.clone(),
        };
        self.persist_sandbox(&record);
        lock(&self.inner.sandboxes).insert(id.clone(), record);
        Ok(id)
    }

    async fn stop_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        if !lock(&self.inner.sandboxes).contains_key(id) {
            return Ok(());
        }
        for (container, _) in self.containers_of(id) {
            self.stop_container(&container, Duration::ZERO).await?;
        }
        let mut sandboxes = lock(&self.inner.sandboxes);
        if let Some(record) = sandboxes.get_mut(id) {
            record.status.state = SandboxState::NotReady;
            let record = record.clone();
            drop(sandboxes);
            self.persist_sandbox(&record);
        }
        Ok(())
    }

    async fn remove_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        let uid = match lock(&self.inner.sandboxes).get(id) {
            Some(record) => record.status.metadata.uid.clone(),
            None => return Ok(()),
        };
        self.stop_sandbox(id).await?;
        for (container, entry) in self.containers_of(id) {
            self.wait_for_watcher(&entry).await;
            self.destroy_container(&container).await?;
        }
        self.sandbox_dir(id).remove()?;
        lock(&self.inner.sandboxes).remove(id);
        remove_pod_cgroup(&self.inner.options.cgroup_parent, &uid);
        Ok(())
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        config.validate()?;
        let (uid, state, log_directory, hostname) = match lock(&self.inner.sandboxes).get(sandbox) {
            Some(record) => (
                record.status.metadata.uid.clone(),
                record.status.state,
                record.config.log_directory.clone(),
                hostname_of(&record.config),
            ),
            None => {
                return Err(RuntimeError::not_found(
                    ObjectKind::Sandbox,
                    sandbox.as_str(),
                ));
            }
        };
        if state != SandboxState::Ready {
            return Err(RuntimeError::InvalidState {
                kind: ObjectKind::Sandbox,
                id: sandbox.to_string(),
                state: state.as_str(),
                operation: "create a container in",
            });
        }
        let image = self.inner.images.resolve(&config.image.reference).await?;
        for (_, entry) in self.containers_of(sandbox) {
            let record = lock(&entry.record);
            if record.status.name == config.name && record.status.attempt == config.attempt {
                return Err(RuntimeError::AlreadyExists {
                    kind: ObjectKind::Container,
                    name: format!("{} attempt {}", config.name, config.attempt),
                    existing: record.status.id.to_string(),
                });
            }
        }
        let id = ContainerId::new(Self::new_id(&format!("{uid}/{}", config.name)));
        let cgroups_path = format!(
            "{}/pod{uid}/{}",
            self.inner.options.cgroup_parent.trim_end_matches('/'),
            id.as_str()
        );
        let spec = spec::build(
            config,
            &image.config,
            &self
                .sandbox_dir(sandbox)
                .view(cgroups_path.clone(), hostname),
            config.annotations.clone(),
        )?;
        let spec = serde_json::to_vec(&spec).map_err(|e| RuntimeError::Backend {
            operation: "encode a runtime spec",
            source: e.into(),
        })?;
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;

        let containerd = &self.inner.containerd;
        let labels = HashMap::from([
            ("skiff.dev/sandbox".to_owned(), sandbox.to_string()),
            ("skiff.dev/container".to_owned(), config.name.clone()),
        ]);
        let created = containerd
            .containers()
            .create(containerd.request(CreateContainerRequest {
                container: Some(Container {
                    id: id.to_string(),
                    labels,
                    image: image.name.clone(),
                    runtime: Some(ContainerRuntime {
                        name: SHIM.to_owned(),
                        options: None,
                    }),
                    spec: Some(prost_types::Any {
                        type_url:
                            "types.containerd.io/opencontainers/runtime-spec/1/Spec".to_owned(),
                        value: spec,
                    }),
                    snapshotter: SNAPSHOTTER.to_owned(),
                    snapshot_key: id.to_string(),
                    ..Container::default()
                }),
            }))
            .await;
        if let Err(status) = created {
            let _ = self.destroy_container(&id).await;
            return Err(client::backend("create a container")(status));
        }
        // After the container, which holds the snapshot against
        // containerd's garbage collector.
        let prepared = containerd
            .snapshots()
            .prepare(containerd.request(PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.to_owned(),
                key: id.to_string(),
                parent: image.chain_id.clone(),
                labels: HashMap::new(),
            }))
            .await;
        if let Err(status) = prepared {
            let _ = self.destroy_container(&id).await;
            return Err(client::backend("prepare a container's snapshot")(status));
        }
        let record = ContainerRecord {
            status: ContainerStatus {
                id: id.clone(),
                sandbox_id: sandbox.clone(),
                name: config.name.clone(),
                attempt: config.attempt,
                image: config.image.clone(),
                state: ContainerState::Created,
                created_at: Timestamp::now(),
                started_at: None,
                finished_at: None,
                exit_code: None,
                reason: None,
                message: None,
                log_path: log_directory.join(&config.log_path),
                annotations: config.annotations.clone(),
            },
            config: config.clone(),
            cgroups_path,
        };
        self.persist_container(&record);
        lock(&self.inner.containers).insert(
            id.clone(),
            Arc::new(Entry {
                record: Mutex::new(record),
                ended: watch::channel(false).0,
            }),
        );
        Ok(id)
    }

    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let entry = self.entry(id)?;
        let state = lock(&entry.record).status.state;
        if state != ContainerState::Created {
            return Err(RuntimeError::InvalidState {
                kind: ObjectKind::Container,
                id: id.to_string(),
                state: state.as_str(),
                operation: "start",
            });
        }
        let log_path = lock(&entry.record).status.log_path.clone();
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| RuntimeError::io(parent, e))?;
        }
        let output = self.open_output(id)?;
        let dir = self.container_dir(id);
        let containerd = &self.inner.containerd;
        let mounts = containerd
            .snapshots()
            .mounts(containerd.request(MountsRequest {
                snapshotter: SNAPSHOTTER.to_owned(),
                key: id.to_string(),
            }))
            .await
            .map_err(client::backend("mount a container's snapshot"))?
            .into_inner()
            .mounts;
        containerd
            .tasks()
            .create(containerd.request(CreateTaskRequest {
                container_id: id.to_string(),
                rootfs: mounts,
                stdin: String::new(),
                stdout: dir.join("stdout").to_string_lossy().into_owned(),
                stderr: dir.join("stderr").to_string_lossy().into_owned(),
                terminal: false,
                ..CreateTaskRequest::default()
            }))
            .await
            .map_err(client::backend("create a task"))?;
        let started_at = Timestamp::now();
        if let Err(status) = containerd
            .tasks()
            .start(containerd.request(StartRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
        {
            self.delete_task(id).await;
            let error = client::backend("start a task")(status);
            let mut record = lock(&entry.record);
            record.status.state = ContainerState::Exited;
            record.status.exit_code = Some(128);
            record.status.started_at = Some(started_at);
            record.status.finished_at = record.status.started_at;
            record.status.reason = Some("StartError".to_owned());
            record.status.message = Some(skiff_sdk::error_chain(&error));
            self.persist_container(&record);
            entry.ended.send_replace(true);
            return Err(error);
        }
        {
            let mut record = lock(&entry.record);
            record.status.state = ContainerState::Running;
            record.status.started_at = Some(started_at);
            self.persist_container(&record);
        }
        self.watch_task(id.clone(), entry, output);
        Ok(())
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let Ok(entry) = self.entry(id) else {
            return Ok(());
        };
        if lock(&entry.record).status.state != ContainerState::Running {
            return Ok(());
        }
        let mut ended = entry.ended.subscribe();
        if !grace.is_zero() {
            self.kill(id, SIGTERM, false).await?;
            if tokio::time::timeout(grace, ended.wait_for(|e| *e))
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        self.kill(id, SIGKILL, true).await?;
        let _ = ended.wait_for(|e| *e).await;
        Ok(())
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let Ok(entry) = self.entry(id) else {
            return Ok(());
        };
        self.stop_container(id, Duration::ZERO).await?;
        self.wait_for_watcher(&entry).await;
        self.destroy_container(id).await
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        Ok(lock(&self.entry(id)?.record).status.clone())
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        let entry = self.entry(id)?;
        let (state, cgroups_path) = {
            let record = lock(&entry.record);
            (record.status.state, record.cgroups_path.clone())
        };
        if state != ContainerState::Running {
            return Err(RuntimeError::InvalidState {
                kind: ObjectKind::Container,
                id: id.to_string(),
                state: state.as_str(),
                operation: "sample the stats of",
            });
        }
        let (cpu_usage_nanos, memory_bytes) = cgroup_usage(&cgroups_path);
        Ok(ContainerStats {
            timestamp: Timestamp::now(),
            cpu_usage_nanos,
            memory_bytes,
        })
    }

    async fn list(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        let sandboxes: Vec<SandboxStatus> = lock(&self.inner.sandboxes)
            .values()
            .map(|s| s.status.clone())
            .collect();
        let mut containers: HashMap<SandboxId, Vec<ContainerStatus>> = HashMap::new();
        let entries: Vec<Arc<Entry>> = lock(&self.inner.containers).values().cloned().collect();
        for entry in entries {
            let status = lock(&entry.record).status.clone();
            containers
                .entry(status.sandbox_id.clone())
                .or_default()
                .push(status);
        }
        let mut statuses: Vec<SandboxStatus> = sandboxes
            .into_iter()
            .map(|mut status| {
                let mut own = containers.remove(&status.id).unwrap_or_default();
                own.sort_by_key(|c| c.created_at);
                status.containers = own;
                status
            })
            .collect();
        statuses.sort_by_key(|s| s.created_at);
        Ok(statuses)
    }

    async fn status(&self) -> Result<(), RuntimeError> {
        let containerd = &self.inner.containerd;
        match tokio::time::timeout(
            STATUS_TIMEOUT,
            containerd.version().version(containerd.request(())),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(RuntimeError::Unavailable {
                source: format!(
                    "containerd at {}: {}",
                    containerd.socket().display(),
                    status.message()
                )
                .into(),
            }),
            Err(_) => Err(RuntimeError::Unavailable {
                source: format!(
                    "containerd at {} did not answer within {STATUS_TIMEOUT:?}",
                    containerd.socket().display()
                )
                .into(),
            }),
        }
    }

    async fn exec(
        &self,
        id: &ContainerId,
        request: ExecRequest,
    ) -> Result<ExecProcess, RuntimeError> {
        request.validate()?;
        let entry = self.entry(id)?;
        let state = lock(&entry.record).status.state;
        if state != ContainerState::Running {
            return Err(RuntimeError::InvalidState {
                kind: ObjectKind::Container,
                id: id.to_string(),
                state: state.as_str(),
                operation: "exec in",
            });
        }
        let containerd = self.inner.containerd.clone();
        // The container's own process settings (user, env, working
        // directory, capabilities), running the command instead.
        let container = containerd
            .containers()
            .get(containerd.request(GetContainerRequest { id: id.to_string() }))
            .await
            .map_err(client::backend("read a container"))?
            .into_inner()
            .container
            .and_then(|c| c.spec)
            .ok_or_else(|| RuntimeError::Backend {
                operation: "read a container's spec",
                source: "containerd returned no spec".into(),
            })?;
        let spec: oci_spec::runtime::Spec =
            serde_json::from_slice(&container.value).map_err(|e| RuntimeError::Backend {
                operation: "decode a container's spec",
                source: e.into(),
            })?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(request.command.clone()));
        process.set_terminal(Some(request.tty));
        if request.tty {
            // Until the client's size arrives (a resize just after the
            // start, as kubectl sends it), a terminal of the usual size
            // rather than none.
            let size = request.terminal_size.unwrap_or(DEFAULT_TERMINAL_SIZE);
            process.set_console_size(
                oci_spec::runtime::BoxBuilder::default()
                    .width(u32::from(size.width))
                    .height(u32::from(size.height))
                    .build()
                    .ok(),
            );
        }
        let process = serde_json::to_vec(&process).map_err(|e| RuntimeError::Backend {
            operation: "encode an exec process",
            source: e.into(),
        })?;

        let exec_id = format!("exec-{}", &Self::new_id(id.as_str())[..16]);
        let dir = self.container_dir(id).join(&exec_id);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        let fifo = |name: &str| -> Result<PathBuf, RuntimeError> {
            let path = dir.join(name);
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| RuntimeError::io(&path, std::io::Error::from(e)))?;
            Ok(path)
        };
        let receiver = |path: &Path| {
            tokio::net::unix::pipe::OpenOptions::new()
                .open_receiver(path)
                .map_err(|e| RuntimeError::io(path, e))
        };
        let stdout_path = fifo("stdout")?;
        let stdout = receiver(&stdout_path)?;
        let (stderr_path, stderr) = if request.tty {
            (None, None)
        } else {
            let path = fifo("stderr")?;
            let pipe = receiver(&path)?;
            (Some(path), Some(pipe))
        };
        let (stdin_path, stdin) = if request.stdin {
            let path = fifo("stdin")?;
            // Read-write, so that opening needs no reader yet; dropping it
            // (the last writer) is the process's end of input.
            let sender = tokio::net::unix::pipe::OpenOptions::new()
                .read_write(true)
                .open_sender(&path)
                .map_err(|e| RuntimeError::io(&path, e))?;
            (Some(path), Some(sender))
        } else {
            (None, None)
        };
        let path_string = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let cleanup_dir = dir.clone();
        let created = containerd
            .tasks()
            .exec(containerd.request(ExecProcessRequest {
                container_id: id.to_string(),
                stdin: path_string(&stdin_path),
                stdout: stdout_path.to_string_lossy().into_owned(),
                stderr: path_string(&stderr_path),
                terminal: request.tty,
                spec: Some(prost_types::Any {
                    type_url:
                        "types.containerd.io/opencontainers/runtime-spec/1/Process".to_owned(),
                    value: process,
                }),
                exec_id: exec_id.clone(),
            }))
            .await;
        if let Err(status) = created {
            let _ = std::fs::remove_dir_all(&cleanup_dir);
            return Err(client::backend("create an exec process")(status));
        }
        // Waiting starts before the process does, so that a quick exit is
        // not missed.
        let wait = {
            let containerd = containerd.clone();
            let (container_id, exec_id) = (id.to_string(), exec_id.clone());
            tokio::spawn(async move {
                containerd
                    .tasks()
                    .wait(containerd.request(WaitRequest {
                        container_id,
                        exec_id,
                    }))
                    .await
            })
        };
        if let Err(status) = containerd
            .tasks()
            .start(containerd.request(StartRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }))
            .await
        {
            wait.abort();
            let _ = containerd
                .tasks()
                .delete_process(containerd.request(DeleteProcessRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                }))
                .await;
            let _ = std::fs::remove_dir_all(&cleanup_dir);
            return Err(client::backend("start an exec process")(status));
        }
        let resize = request.tty.then(|| {
            let (sender, mut sizes) =
                watch::channel(request.terminal_size.unwrap_or(DEFAULT_TERMINAL_SIZE));
            let containerd = containerd.clone();
            let (container_id, exec_id) = (id.to_string(), exec_id.clone());
            tokio::spawn(async move {
                while sizes.changed().await.is_ok() {
                    let size = *sizes.borrow_and_update();
                    let _ = containerd
                        .tasks()
                        .resize_pty(containerd.request(ResizePtyRequest {
                            container_id: container_id.clone(),
                            exec_id: exec_id.clone(),
                            width: u32::from(size.width),
                            height: u32::from(size.height),
                        }))
                        .await;
                }
            });
            sender
        });
        let stdin = stdin.map(|pipe| {
            // The shim holds the FIFO open for writing too: the end of
            // input is told with CloseIO once the caller drops stdin.
            let (closed, dropped) = tokio::sync::oneshot::channel::<()>();
            let containerd = containerd.clone();
            let (container_id, exec_id) = (id.to_string(), exec_id.clone());
            tokio::spawn(async move {
                let _ = dropped.await;
                let _ = containerd
                    .tasks()
                    .close_io(containerd.request(CloseIoRequest {
                        container_id,
                        exec_id,
                        stdin: true,
                    }))
                    .await;
            });
            Box::pin(ExecInput {
                pipe,
                _closed: closed,
            }) as skiff_sdk::runtime::ExecStdin
        });
        let container_id = id.to_string();
        let exit = Box::pin(async move {
            let outcome = wait.await.map_err(|e| RuntimeError::Backend {
                operation: "wait for an exec process",
                source: e.into(),
            })?;
            let _ = containerd
                .tasks()
                .delete_process(containerd.request(DeleteProcessRequest {
                    container_id,
                    exec_id,
                }))
                .await;
            let _ = std::fs::remove_dir_all(&cleanup_dir);
            let response = outcome.map_err(client::backend("wait for an exec process"))?;
            Ok(response.into_inner().exit_status as i32)
        });
        Ok(ExecProcess {
            stdin,
            stdout: Box::pin(stdout),
            stderr: match stderr {
                Some(pipe) => Box::pin(pipe),
                None => Box::pin(tokio::io::empty()),
            },
            resize,
            exit,
        })
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.events.subscribe()
    }
}

/// An exec process's stdin: the FIFO's write end, and what tells the
/// closer (when dropped after the pipe) to close the process's input.
struct ExecInput {
    pipe: tokio::net::unix::pipe::Sender,
    _closed: tokio::sync::oneshot::Sender<()>,
}

impl tokio::io::AsyncWrite for ExecInput {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.pipe).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.pipe).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

/// The read ends of a container's stdout and stderr FIFOs.
struct Output {
    stdout: Option<tokio::net::unix::pipe::Receiver>,
    stderr: Option<tokio::net::unix::pipe::Receiver>,
}

impl Output {
    fn none() -> Self {
        Output {
            stdout: None,
            stderr: None,
        }
    }
}

/// Copies both streams into the CRI log until both end (the shim closed
/// its ends: the process and everything holding its output are gone).
async fn copy_output(output: Output, log_path: PathBuf) -> Result<(), RuntimeError> {
    let writer = Arc::new(Mutex::new(LogWriter::open(&log_path)?));
    let log_path = &log_path;
    let copy = |pipe: Option<tokio::net::unix::pipe::Receiver>, stream: Stream| {
        let writer = writer.clone();
        async move {
            let Some(mut pipe) = pipe else {
                return Ok(());
            };
            let mut buffer = vec![0u8; 32 << 10];
            loop {
                match pipe.read(&mut buffer).await {
                    Ok(0) => return Ok(()),
                    Ok(n) => lock(&writer).write(Timestamp::now(), stream, &buffer[..n])?,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(RuntimeError::io(log_path, e)),
                }
            }
        }
    };
    let (stdout, stderr) = tokio::join!(
        copy(output.stdout, Stream::Stdout),
        copy(output.stderr, Stream::Stderr)
    );
    let writer = Arc::try_unwrap(writer)
        .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
        .ok();
    if let Some(writer) = writer {
        writer.finish(Timestamp::now())?;
    }
    stdout.and(stderr)
}

/// The pod's hostname: the configured one, else the pod's name.
fn hostname_of(config: &SandboxConfig) -> String {
    if config.hostname.is_empty() {
        config.metadata.name.clone()
    } else {
        config.hostname.clone()
    }
}

fn sandboxes_dir(options: &OciRuntimeOptions) -> PathBuf {
    options.state_dir.join("sandboxes")
}

fn containers_dir(options: &OciRuntimeOptions) -> PathBuf {
    options.state_dir.join("containers")
}

/// Writes a record; a failure is logged (the object still works, but a
/// runtime opened again may not know it).
fn persist<T: Serialize>(path: &Path, record: &T) {
    let result = serde_json::to_vec_pretty(record)
        .map_err(|e| RuntimeError::Backend {
            operation: "encode a record",
            source: e.into(),
        })
        .and_then(|bytes| write_atomically(path, &bytes));
    if let Err(error) = result {
        tracing::warn!(path = %path.display(), %error, "recording the runtime's state failed");
    }
}

/// The records named `file` in the subdirectories of `dir`; unreadable
/// ones are logged and skipped.
fn read_records<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    file: &str,
) -> Result<Vec<T>, RuntimeError> {
    let mut records = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| RuntimeError::io(dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path().join(file);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(record) => records.push(record),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping an unreadable record")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping an unreadable record")
            }
        }
    }
    Ok(records)
}

/// The cgroup mount: `/sys/fs/cgroup`, unified (v2) or one hierarchy per
/// controller (v1).
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn cgroup_v2() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// CPU time (ns) and memory in use (bytes) of a container's cgroup; zero
/// for what cannot be read.
fn cgroup_usage(cgroups_path: &str) -> (u64, u64) {
    let relative = cgroups_path.trim_start_matches('/');
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    if cgroup_v2() {
        let base = Path::new(CGROUP_ROOT).join(relative);
        let cpu = read(base.join("cpu.stat"))
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(0, |us| us * 1000);
        let memory = read(base.join("memory.current"))
            .trim()
            .parse()
            .unwrap_or(0);
        (cpu, memory)
    } else {
        let cpu = read(
            Path::new(CGROUP_ROOT)
                .join("cpuacct")
                .join(relative)
                .join("cpuacct.usage"),
        )
        .trim()
        .parse()
        .unwrap_or(0);
        let memory = read(
            Path::new(CGROUP_ROOT)
                .join("memory")
                .join(relative)
                .join("memory.usage_in_bytes"),
        )
        .trim()
        .parse()
        .unwrap_or(0);
        (cpu, memory)
    }
}

/// Whether the kernel's OOM killer killed a process of the cgroup.
fn oom_killed(cgroups_path: &str) -> bool {
    let relative = cgroups_path.trim_start_matches('/');
    let (path, key) = if cgroup_v2() {
        (
            Path::new(CGROUP_ROOT).join(relative).join("memory.events"),
            "oom_kill ",
        )
    } else {
        (
            Path::new(CGROUP_ROOT)
                .join("memory")
                .join(relative)
                .join("memory.oom_control"),
            "oom_kill ",
        )
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// Removes the pod's (empty) cgroup in every hierarchy once its containers
/// are gone; runc removes the containers' own.
fn remove_pod_cgroup(parent: &str, uid: &str) {
    let relative = format!("{}/pod{uid}", parent.trim_matches('/'));
    if cgroup_v2() {
        let _ = std::fs::remove_dir(Path::new(CGROUP_ROOT).join(&relative));
        return;
    }
    if let Ok(hierarchies) = std::fs::read_dir(CGROUP_ROOT) {
        for hierarchy in hierarchies.flatten() {
            let _ = std::fs::remove_dir(hierarchy.path().join(&relative));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
