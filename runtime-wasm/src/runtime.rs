//! [`WasmRuntime`]: the runtime trait over wasmtime. Sandboxes are records
//! and log directories; containers are tasks (commands, run to their exit)
//! or HTTP servers (an instance per request), both in this process.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use skiff_sdk::runtime::{
    ContainerConfig, ContainerId, ContainerState, ContainerStats, ContainerStatus, ExecProcess,
    ExecRequest, Feature, ImageInfo, ImageSpec, ObjectKind, PullOptions, PulledImage, Runtime,
    RuntimeError, RuntimeEvent, RuntimeInfo, SandboxConfig, SandboxId, SandboxNetwork,
    SandboxState, SandboxStatus,
};
use skiff_sdk::runtime_class;
use tokio::io::DuplexStream;
use tokio::sync::{broadcast, watch};
use wasmtime::Engine;

use crate::WasmRuntimeOptions;
use crate::compile::{Compiler, Kind, Prepared};
use crate::engine::EpochTicker;
use crate::guest::{GuestConfig, LogSink, Stdin, Usage};
use crate::http::{HttpServer, HttpService};
use crate::oci::ArtifactStore;
use crate::outcome::Outcome;
use crate::state::{ContainerRecord, Records, SandboxRecord};

/// The wasmtime version this runtime is built with (Cargo.lock agrees; a
/// unit test checks).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The port an HTTP component listens on when its container declares none.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// Events a subscriber may fall behind by before it must relist.
const EVENT_CAPACITY: usize = 1024;

/// The Wasm runtime: one wasmtime engine for the node, every sandbox and
/// container of the `wasmtime` RuntimeClass handler. Cheap to clone; the
/// runtime stops its guests when the last clone is dropped (their records
/// stay, for the next runtime opened over the same state).
#[derive(Clone)]
pub struct WasmRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    info: RuntimeInfo,
    options: WasmRuntimeOptions,
    engine: Engine,
    compiler: Compiler,
    artifacts: ArtifactStore,
    shared: Arc<Shared>,
    sandboxes: Mutex<BTreeMap<SandboxId, Arc<Sandbox>>>,
    containers: Mutex<HashMap<ContainerId, Arc<Container>>>,
    _epoch: EpochTicker,
}

/// What the background tasks of containers need: not the runtime itself,
/// so that dropping the runtime ends them.
struct Shared {
    records: Records,
    events: broadcast::Sender<RuntimeEvent>,
    shutdown: watch::Sender<bool>,
    ids: AtomicU64,
}

struct Sandbox {
    record: Mutex<SandboxRecord>,
}

struct Container {
    record: Mutex<ContainerRecord>,
    /// What runs while the container is `Running`.
    process: Mutex<Option<Process>>,
    /// Becomes true once the exit is recorded.
    exited: watch::Sender<bool>,
    usage: Arc<Usage>,
}

enum Process {
    Task {
        /// Dropping it ends the guest's stdin: the request to stop.
        stdin: Option<DuplexStream>,
        kill: watch::Sender<bool>,
    },
    Http {
        server: HttpServer,
        log: Arc<LogSink>,
    },
}

impl WasmRuntime {
    /// Opens the runtime over `options.state_dir`, finding the sandboxes and
    /// containers a previous runtime recorded there. Containers that were
    /// running are `Unknown`: their guests ended with that runtime.
    pub async fn open(options: WasmRuntimeOptions) -> Result<Self, RuntimeError> {
        let state_dir = options.state_dir.clone();
        std::fs::create_dir_all(&state_dir).map_err(|e| RuntimeError::io(&state_dir, e))?;
        let engine = crate::engine::build(&options)?;
        let epoch = EpochTicker::start(&engine)?;
        let compiler = Compiler::new(
            &engine,
            options
                .compile_cache_dir
                .clone()
                .unwrap_or_else(|| state_dir.join("compiled")),
            options.max_artifact_bytes,
            options.compile_workers,
        )?;
        let artifacts = ArtifactStore::open(state_dir.join("artifacts"))?
            .max_artifact_bytes(options.max_artifact_bytes);
        let records = Records::open(&state_dir)?;
        let (sandbox_records, container_records) = records.load()?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let shared = Arc::new(Shared {
            records,
            events,
            shutdown: watch::channel(false).0,
            ids: AtomicU64::new(0),
        });

        let sandboxes = sandbox_records
            .into_iter()
            .map(|record| {
                let id = record.status.id.clone();
                let sandbox = Sandbox {
                    record: Mutex::new(record),
                };
                (id, Arc::new(sandbox))
            })
            .collect::<BTreeMap<_, _>>();
        let mut containers = HashMap::new();
        for mut record in container_records {
            if !sandboxes.contains_key(&record.status.sandbox_id) {
                // Its sandbox's removal was cut short: finish it.
                let _ = shared.records.remove_container(&record.status.id);
                continue;
            }
            let exited = record.status.state == ContainerState::Exited;
            if record.status.state == ContainerState::Running {
                record.status.state = ContainerState::Unknown;
                record.status.message =
                    Some("the guest ended with the runtime that ran it".to_owned());
            }
            let container = Container {
                process: Mutex::new(None),
                exited: watch::channel(exited).0,
                usage: Arc::default(),
                record: Mutex::new(record),
            };
            let id = container
                .record
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .status
                .id
                .clone();
            containers.insert(id, Arc::new(container));
        }

        let info = RuntimeInfo::new("wasmtime", WASMTIME_VERSION)
            .handler(runtime_class::WASMTIME)
            .feature(Feature::WasiHttp);
        Ok(WasmRuntime {
            inner: Arc::new(Inner {
                info,
                options,
                engine,
                compiler,
                artifacts,
                shared,
                sandboxes: Mutex::new(sandboxes),
                containers: Mutex::new(containers),
                _epoch: epoch,
            }),
        })
    }

    /// The node's engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// How many artifacts this runtime compiled rather than loaded from its
    /// cache of compiled code.
    pub fn compilations(&self) -> u64 {
        self.inner.compiler.compilations()
    }

    /// What kind of workload a pulled image is (by reference or digest).
    pub async fn kind_of(&self, image: &ImageSpec) -> Result<Kind, RuntimeError> {
        let artifact = self.artifact(&image.reference)?;
        let prepared = self
            .inner
            .compiler
            .prepare(&image.reference, &artifact.wasm_digest, &artifact.wasm_path)
            .await?;
        Ok(prepared.kind())
    }

    fn artifact(&self, reference: &str) -> Result<crate::oci::Artifact, RuntimeError> {
        self.inner
            .artifacts
            .resolve(reference)
            .ok_or_else(|| RuntimeError::not_found(ObjectKind::Image, reference))
    }

    fn sandbox(&self, id: &SandboxId) -> Option<Arc<Sandbox>> {
        lock(&self.inner.sandboxes).get(id).cloned()
    }

    fn container(&self, id: &ContainerId) -> Result<Arc<Container>, RuntimeError> {
        lock(&self.inner.containers)
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::not_found(ObjectKind::Container, id.as_str()))
    }

    fn containers_of(&self, sandbox: &SandboxId) -> Vec<Arc<Container>> {
        let mut containers: Vec<_> = lock(&self.inner.containers)
            .values()
            .filter(|c| lock(&c.record).status.sandbox_id == *sandbox)
            .cloned()
            .collect();
        containers.sort_by_key(|c| lock(&c.record).status.created_at);
        containers
    }

    /// A fresh 64-hex-digit id.
    fn new_id(&self, seed: &str) -> String {
        let count = self.inner.shared.ids.fetch_add(1, Ordering::Relaxed);
        let mut hash = Sha256::new();
        hash.update(seed.as_bytes());
        hash.update(Timestamp::now().as_nanosecond().to_le_bytes());
        hash.update(count.to_le_bytes());
        hash.update(std::process::id().to_le_bytes());
        hex::encode(hash.finalize())
    }

    /// The addresses an HTTP container listens on.
    fn listen_addresses(&self, sandbox: &SandboxConfig, ports: &[u16]) -> Vec<SocketAddr> {
        let ip: IpAddr = match &sandbox.network {
            SandboxNetwork::Host => self.inner.options.host_ip,
            SandboxNetwork::HostAddress { ip } | SandboxNetwork::Namespace { ip, .. } => *ip,
        };
        let ports = if ports.is_empty() {
            &[DEFAULT_HTTP_PORT][..]
        } else {
            ports
        };
        ports
            .iter()
            .map(|port| SocketAddr::new(ip, *port))
            .collect()
    }

    /// Starts a container's guest: a task, or an HTTP server.
    async fn launch(&self, container: &Arc<Container>) -> Result<(), RuntimeError> {
        let (config, wasm_digest, wasm_path, sandbox_id, log_path) = {
            let record = lock(&container.record);
            (
                record.config.clone(),
                record.wasm_digest.clone(),
                record.wasm_path.clone(),
                record.status.sandbox_id.clone(),
                record.status.log_path.clone(),
            )
        };
        let sandbox = self
            .sandbox(&sandbox_id)
            .ok_or_else(|| RuntimeError::not_found(ObjectKind::Sandbox, sandbox_id.as_str()))?;
        let sandbox_config = lock(&sandbox.record).config.clone();
        let prepared = self
            .inner
            .compiler
            .prepare(&config.image.reference, &wasm_digest, &wasm_path)
            .await?;
        let options = &self.inner.options;
        let guest = Arc::new(GuestConfig::new(
            &config,
            options.default_memory_limit_bytes,
            options.max_memory_bytes,
            options.max_guest_resources,
        ));
        let log = LogSink::open(log_path, options.max_log_file_bytes)?;

        let process = match prepared {
            Prepared::Http(pre) => {
                let service = HttpService {
                    engine: self.inner.engine.clone(),
                    pre,
                    guest,
                    log: log.clone(),
                    usage: container.usage.clone(),
                    max_concurrent_requests: options.max_concurrent_requests,
                    request_timeout: options.request_timeout,
                };
                let addresses = self.listen_addresses(&sandbox_config, &config.ports);
                let server =
                    HttpServer::start(service, &addresses).map_err(|e| RuntimeError::Backend {
                        operation: "listen for HTTP requests",
                        source: e.into(),
                    })?;
                Process::Http { server, log }
            }
            prepared => {
                let (stdin, stop) = Stdin::stop_pipe();
                let (kill, mut killed) = watch::channel(false);
                let mut shutdown = self.inner.shared.shutdown.subscribe();
                let run = crate::task::run(
                    self.inner.engine.clone(),
                    prepared,
                    guest,
                    log.clone(),
                    stdin,
                    container.usage.clone(),
                );
                let shared = self.inner.shared.clone();
                let this = container.clone();
                tokio::spawn(async move {
                    let outcome = tokio::select! {
                        biased;
                        // The runtime is gone: the record keeps saying
                        // Running, and the next runtime reports Unknown.
                        _ = shutdown.wait_for(|s| *s) => return,
                        Ok(_) = killed.wait_for(|k| *k) => Outcome::killed(),
                        outcome = run => outcome,
                    };
                    this.finish(&shared, Some(&log), outcome);
                });
                Process::Task {
                    stdin: Some(stop),
                    kill,
                }
            }
        };
        *lock(&container.process) = Some(process);
        Ok(())
    }
}

impl Container {
    /// Records the exit: log finished, status `Exited`, record saved, event
    /// sent, waiters woken. Only the first call counts.
    fn finish(&self, shared: &Shared, log: Option<&LogSink>, outcome: Outcome) {
        tracing::debug!(?outcome, "guest ended");
        if let Some(log) = log {
            log.finish();
        }
        let status = {
            let mut record = lock(&self.record);
            if record.status.state != ContainerState::Running {
                return;
            }
            let now = Timestamp::now();
            record.status.state = ContainerState::Exited;
            record.status.finished_at = Some(now);
            record.status.exit_code = Some(outcome.exit_code);
            record.status.reason = Some(outcome.reason);
            record.status.message = outcome.message;
            if let Err(error) = shared.records.save_container(&record) {
                tracing::warn!(%error, "container exit not recorded");
            }
            record.status.clone()
        };
        lock(&self.process).take();
        let _ = shared.events.send(RuntimeEvent::ContainerExited {
            container_id: status.id.clone(),
            sandbox_id: status.sandbox_id.clone(),
            exit_code: status.exit_code.unwrap_or_default(),
            finished_at: status.finished_at.unwrap_or(status.created_at),
        });
        self.exited.send_replace(true);
    }

    /// Stops the guest: asks (a task's stdin ends; an HTTP server stops
    /// taking requests), waits up to `grace`, then kills. Returns once the
    /// exit is recorded.
    async fn stop(&self, shared: &Shared, grace: Duration) {
        let http = {
            let mut process = lock(&self.process);
            match process.as_mut() {
                // Without grace the guest is killed, not asked: closing its
                // stdin first would race the kill and let it exit cleanly.
                Some(Process::Task { kill, .. }) if grace.is_zero() => {
                    kill.send_replace(true);
                    None
                }
                Some(Process::Task { stdin, .. }) => {
                    stdin.take();
                    None
                }
                Some(Process::Http { .. }) => process.take(),
                None => None,
            }
        };
        if let Some(Process::Http { server, log }) = http {
            let outcome = server.stop(grace).await;
            self.finish(shared, Some(&log), outcome);
            return;
        }
        let mut exited = self.exited.subscribe();
        if !grace.is_zero()
            && tokio::time::timeout(grace, exited.wait_for(|e| *e))
                .await
                .is_ok()
        {
            return;
        }
        if let Some(Process::Task { kill, .. }) = lock(&self.process).as_ref() {
            kill.send_replace(true);
        }
        let _ = exited.wait_for(|e| *e).await;
    }
}

#[async_trait]
impl Runtime for WasmRuntime {
    fn info(&self) -> &RuntimeInfo {
        &self.inner.info
    }

    async fn pull_image(
        &self,
        image: &ImageSpec,
        options: &PullOptions,
    ) -> Result<PulledImage, RuntimeError> {
        tracing::debug!(image = %image.reference, "pulling");
        let artifact = self.inner.artifacts.pull(image, options).await?;
        tracing::debug!(image = %image.reference, digest = %artifact.digest, "pulled, compiling");
        // Compile now, so that a module that does not compile fails the
        // pull and the first start finds code ready.
        self.inner
            .compiler
            .compile(&image.reference, &artifact.wasm_digest, &artifact.wasm_path)
            .await?;
        Ok(PulledImage {
            reference: image.reference.clone(),
            digest: artifact.digest,
            size: artifact.size,
        })
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        Ok(self.inner.artifacts.list())
    }

    async fn remove_image(&self, image: &ImageSpec) -> Result<(), RuntimeError> {
        if let Some(artifact) = self.inner.artifacts.resolve(&image.reference) {
            self.inner.artifacts.remove(image)?;
            if self.inner.artifacts.resolve(&artifact.digest).is_none() {
                self.inner.compiler.forget(&artifact.wasm_digest);
            }
        }
        Ok(())
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError> {
        config.validate(&self.inner.info)?;
        let mut sandboxes = lock(&self.inner.sandboxes);
        for sandbox in sandboxes.values() {
            let record = lock(&sandbox.record);
            if record.status.metadata.uid == config.metadata.uid
                && record.status.metadata.attempt == config.metadata.attempt
            {
                return Err(RuntimeError::AlreadyExists {
                    kind: ObjectKind::Sandbox,
                    name: format!(
                        "{}/{} attempt {}",
                        config.metadata.namespace, config.metadata.name, config.metadata.attempt
                    ),
                    existing: record.status.id.to_string(),
                });
            }
        }
        std::fs::create_dir_all(&config.log_directory)
            .map_err(|e| RuntimeError::io(&config.log_directory, e))?;
        let id = SandboxId::new(self.new_id(&config.metadata.uid));
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
        self.inner.shared.records.save_sandbox(&record)?;
        sandboxes.insert(
            id.clone(),
            Arc::new(Sandbox {
                record: Mutex::new(record),
            }),
        );
        Ok(id)
    }

    async fn stop_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        let Some(sandbox) = self.sandbox(id) else {
            return Ok(());
        };
        for container in self.containers_of(id) {
            if lock(&container.record).status.state == ContainerState::Running {
                container.stop(&self.inner.shared, Duration::ZERO).await;
            }
        }
        let mut record = lock(&sandbox.record);
        if record.status.state != SandboxState::NotReady {
            record.status.state = SandboxState::NotReady;
            self.inner.shared.records.save_sandbox(&record)?;
        }
        Ok(())
    }

    async fn remove_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        if self.sandbox(id).is_none() {
            return Ok(());
        }
        self.stop_sandbox(id).await?;
        for container in self.containers_of(id) {
            let container_id = lock(&container.record).status.id.clone();
            self.inner.shared.records.remove_container(&container_id)?;
            lock(&self.inner.containers).remove(&container_id);
        }
        self.inner.shared.records.remove_sandbox(id)?;
        lock(&self.inner.sandboxes).remove(id);
        Ok(())
    }

    async fn create_container(
        &self,
        sandbox_id: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        config.validate()?;
        let sandbox = self
            .sandbox(sandbox_id)
            .ok_or_else(|| RuntimeError::not_found(ObjectKind::Sandbox, sandbox_id.as_str()))?;
        if lock(&sandbox.record).status.state != SandboxState::Ready {
            return Err(RuntimeError::InvalidState {
                kind: ObjectKind::Sandbox,
                id: sandbox_id.to_string(),
                state: SandboxState::NotReady.as_str(),
                operation: "create a container in",
            });
        }
        let artifact = self.artifact(&config.image.reference)?;
        // Compiles (or loads) and links: an import the host lacks fails
        // here, before anything is recorded.
        self.inner
            .compiler
            .prepare(
                &config.image.reference,
                &artifact.wasm_digest,
                &artifact.wasm_path,
            )
            .await?;

        let mut containers = lock(&self.inner.containers);
        for existing in containers.values() {
            let record = lock(&existing.record);
            if record.status.sandbox_id == *sandbox_id
                && record.status.name == config.name
                && record.status.attempt == config.attempt
            {
                return Err(RuntimeError::AlreadyExists {
                    kind: ObjectKind::Container,
                    name: format!("{} attempt {}", config.name, config.attempt),
                    existing: record.status.id.to_string(),
                });
            }
        }
        let id = ContainerId::new(self.new_id(&format!("{sandbox_id}/{}", config.name)));
        let record = ContainerRecord {
            status: ContainerStatus {
                id: id.clone(),
                sandbox_id: sandbox_id.clone(),
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
                log_path: lock(&sandbox.record)
                    .config
                    .log_directory
                    .join(&config.log_path),
                annotations: config.annotations.clone(),
            },
            config: config.clone(),
            wasm_digest: artifact.wasm_digest,
            wasm_path: artifact.wasm_path,
        };
        self.inner.shared.records.save_container(&record)?;
        containers.insert(
            id.clone(),
            Arc::new(Container {
                record: Mutex::new(record),
                process: Mutex::new(None),
                exited: watch::channel(false).0,
                usage: Arc::default(),
            }),
        );
        Ok(id)
    }

    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let container = self.container(id)?;
        {
            let mut record = lock(&container.record);
            if record.status.state != ContainerState::Created {
                return Err(RuntimeError::InvalidState {
                    kind: ObjectKind::Container,
                    id: id.to_string(),
                    state: record.status.state.as_str(),
                    operation: "start",
                });
            }
            record.status.state = ContainerState::Running;
            record.status.started_at = Some(Timestamp::now());
            self.inner.shared.records.save_container(&record)?;
        }
        tracing::debug!(container = %id, "starting");
        if let Err(error) = self.launch(&container).await {
            let message = error.to_string();
            let path = lock(&container.record).status.log_path.clone();
            let log = LogSink::open(path, self.inner.options.max_log_file_bytes).ok();
            if let Some(log) = &log {
                let line = format!("skiff: the container could not start: {message}\n");
                log.write(skiff_sdk::runtime::log::Stream::Stderr, line.as_bytes());
            }
            container.finish(
                &self.inner.shared,
                log.as_deref(),
                Outcome::start_error(message),
            );
            return Err(error);
        }
        Ok(())
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let Ok(container) = self.container(id) else {
            return Ok(());
        };
        if lock(&container.record).status.state != ContainerState::Running {
            return Ok(());
        }
        container.stop(&self.inner.shared, grace).await;
        Ok(())
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let Ok(container) = self.container(id) else {
            return Ok(());
        };
        if lock(&container.record).status.state == ContainerState::Running {
            container.stop(&self.inner.shared, Duration::ZERO).await;
        }
        self.inner.shared.records.remove_container(id)?;
        lock(&self.inner.containers).remove(id);
        Ok(())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        Ok(lock(&self.container(id)?.record).status.clone())
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        let container = self.container(id)?;
        let state = lock(&container.record).status.state;
        if state != ContainerState::Running {
            return Err(RuntimeError::InvalidState {
                kind: ObjectKind::Container,
                id: id.to_string(),
                state: state.as_str(),
                operation: "sample the stats of",
            });
        }
        Ok(ContainerStats {
            timestamp: Timestamp::now(),
            cpu_usage_nanos: container.usage.cpu_nanos.load(Ordering::Relaxed),
            memory_bytes: container.usage.memory_bytes.load(Ordering::Relaxed),
        })
    }

    async fn list(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        let sandboxes: Vec<_> = lock(&self.inner.sandboxes).values().cloned().collect();
        // One pass over the containers (not one per sandbox): the agent
        // lists thousands of sandboxes when it starts.
        let mut containers: HashMap<SandboxId, Vec<ContainerStatus>> = HashMap::new();
        let all: Vec<_> = lock(&self.inner.containers).values().cloned().collect();
        for container in all {
            let status = lock(&container.record).status.clone();
            containers
                .entry(status.sandbox_id.clone())
                .or_default()
                .push(status);
        }
        let mut statuses: Vec<SandboxStatus> = sandboxes
            .iter()
            .map(|sandbox| {
                let mut status = lock(&sandbox.record).status.clone();
                let mut own = containers.remove(&status.id).unwrap_or_default();
                own.sort_by_key(|c| c.created_at);
                status.containers = own;
                status
            })
            .collect();
        statuses.sort_by_key(|s| s.created_at);
        Ok(statuses)
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.shared.events.subscribe()
    }

    /// A Wasm guest is one instance with no process model to start a
    /// second command in: every exec is refused, whatever the container.
    async fn exec(
        &self,
        _id: &ContainerId,
        _request: ExecRequest,
    ) -> Result<ExecProcess, RuntimeError> {
        Err(RuntimeError::Unsupported {
            operation: "exec",
            reason: EXEC_UNSUPPORTED.to_owned(),
        })
    }
}

/// Why `kubectl exec` into a Wasm pod fails.
const EXEC_UNSUPPORTED: &str = "exec is not supported for Wasm pods";

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_wasmtime_version_is_the_one_in_the_lockfile() {
        let lock = include_str!("../../Cargo.lock");
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"'))
            .expect("wasmtime in Cargo.lock");
        assert_eq!(WASMTIME_VERSION, locked, "update WASMTIME_VERSION");
    }

    #[tokio::test]
    async fn exec_is_refused_with_a_message_for_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = WasmRuntime::open(WasmRuntimeOptions::new(dir.path()).max_instances(1))
            .await
            .unwrap();
        assert!(!runtime.info().has(Feature::Exec));
        let error = runtime
            .exec(&ContainerId::new("any"), ExecRequest::new(["ls"]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                RuntimeError::Unsupported {
                    operation: "exec",
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "exec is not supported for Wasm pods");
    }
}
