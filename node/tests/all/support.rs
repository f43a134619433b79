//! Fakes for the pod worker and the node API: a [`FakeRuntime`] whose
//! containers follow a script given as their command and whose exec is
//! refused, scripted in memory or run as a local process ([`FakeExec`]), a
//! [`FakeApi`] that records status patches and deletes, an empty
//! [`ObjectSource`] and a scripted exec prober. Everything but local
//! processes runs in tokio time, so tests pause it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use skiff_node::pod_api::{PodApi, PodApiError};
use skiff_node::pod_config::{ObjectSource, SourceError};
use skiff_node::pod_containers::PodContainers;
use skiff_node::pod_logs::PodLogs;
use skiff_node::pod_worker::{PodAddresses, PodWorker, Runtimes, WorkerContext};
use skiff_node::probe::{ExecProber, ExecProbes, ProbeResult};
use skiff_sdk::runtime::{
    ContainerConfig, ContainerId, ContainerState, ContainerStats, ContainerStatus, ExecProcess,
    ExecRequest, ImageInfo, ImageSpec, KILLED_EXIT_CODE, ObjectKind, PullOptions, PulledImage,
    Runtime, RuntimeError, RuntimeEvent, RuntimeInfo, SandboxConfig, SandboxId, SandboxState,
    SandboxStatus, TerminalSize,
};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// What a fake container does, from its command:
/// - `[]` or `["run"]`: runs until stopped, exits 0 when asked;
/// - `["exit", CODE, SECONDS]`: exits with CODE after SECONDS;
/// - `["ignore-stop"]`: runs until killed at the end of the grace period.
#[derive(Clone, Debug)]
enum Script {
    Run,
    Exit(i32, Duration),
    IgnoreStop,
}

fn script(command: &[String]) -> Script {
    match command.first().map(String::as_str) {
        Some("exit") => Script::Exit(
            command.get(1).and_then(|c| c.parse().ok()).unwrap_or(1),
            Duration::from_secs(command.get(2).and_then(|s| s.parse().ok()).unwrap_or(0)),
        ),
        Some("ignore-stop") => Script::IgnoreStop,
        _ => Script::Run,
    }
}

struct FakeContainer {
    status: ContainerStatus,
    script: Script,
    /// Set when the container is asked to stop gracefully.
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    sandboxes: Vec<SandboxStatus>,
    containers: HashMap<String, FakeContainer>,
    next_id: u64,
}

/// What a [`FakeRuntime`]'s exec does in a running container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeExec {
    /// Refuses, as the Wasm runtime does: `exec is not supported for Wasm
    /// pods`.
    Unsupported,
    /// In memory, at once (fit for paused time): `["exit", CODE, TEXT...]`
    /// writes TEXT to stdout and exits with CODE, `["hang"]` never exits,
    /// anything else exits 0.
    Scripted,
    /// Runs the command as a local process (`tokio::process`), killed when
    /// dropped; a tty merges stderr into stdout (without a terminal) and
    /// keeps the resize receiver in [`FakeRuntime::terminal`]. Real IO:
    /// tests run in real time.
    Process,
}

/// A runtime serving the `wasmtime` handler whose containers follow
/// [`Script`]s.
#[derive(Clone)]
pub struct FakeRuntime {
    info: RuntimeInfo,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<RuntimeEvent>,
    exec: FakeExec,
    /// The terminal size control of the last exec with a tty.
    pub terminal: Arc<Mutex<Option<watch::Receiver<TerminalSize>>>>,
    /// Every call, in order: `run_sandbox`, `create NAME`, `start NAME`,
    /// `stop NAME GRACE`, ...
    pub calls: Arc<Mutex<Vec<(Duration, String)>>>,
    epoch: tokio::time::Instant,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self {
            info: RuntimeInfo::new("fake", "1.0").handler("wasmtime"),
            state: Arc::default(),
            events: broadcast::channel(1024).0,
            exec: FakeExec::Unsupported,
            terminal: Arc::default(),
            calls: Arc::default(),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// The same runtime with another exec behaviour.
    pub fn with_exec(mut self, exec: FakeExec) -> Self {
        self.exec = exec;
        self
    }

    /// Runs a sandbox and a running container `name` in it (running its
    /// default script: until stopped).
    pub async fn running_container(&self, name: &str) -> ContainerId {
        let sandbox = self.run_sandbox(&SandboxConfig::default()).await.unwrap();
        let config = ContainerConfig::new(name, 0, ImageSpec::new("app"));
        let id = self.create_container(&sandbox, &config).await.unwrap();
        self.start_container(&id).await.unwrap();
        id
    }

    fn record(&self, call: String) {
        self.calls
            .lock()
            .unwrap()
            .push((self.epoch.elapsed(), call));
    }

    /// The calls whose text starts with `prefix`, with their times.
    pub fn calls_starting(&self, prefix: &str) -> Vec<(Duration, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c)| c.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// As after a restart of a runtime that lost its processes: every
    /// running container becomes `Unknown`.
    pub fn lose_processes(&self) {
        let mut state = self.state.lock().unwrap();
        for container in state.containers.values_mut() {
            if container.status.state == ContainerState::Running {
                if let Some(task) = container.task.take() {
                    task.abort();
                }
                container.status.state = ContainerState::Unknown;
            }
        }
    }

    pub fn sandbox_count(&self) -> usize {
        self.state.lock().unwrap().sandboxes.len()
    }

    fn exit(
        state: &Arc<Mutex<State>>,
        events: &broadcast::Sender<RuntimeEvent>,
        id: &str,
        code: i32,
    ) {
        let mut state = state.lock().unwrap();
        let Some(container) = state.containers.get_mut(id) else {
            return;
        };
        if container.status.state != ContainerState::Running {
            return;
        }
        let now = Timestamp::now();
        container.status.state = ContainerState::Exited;
        container.status.exit_code = Some(code);
        container.status.finished_at = Some(now);
        container.status.reason = Some(skiff_sdk::runtime::reason::for_exit_code(code).to_owned());
        let _ = events.send(RuntimeEvent::ContainerExited {
            container_id: container.status.id.clone(),
            sandbox_id: container.status.sandbox_id.clone(),
            exit_code: code,
            finished_at: now,
        });
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    async fn pull_image(
        &self,
        image: &ImageSpec,
        _: &PullOptions,
    ) -> Result<PulledImage, RuntimeError> {
        self.record(format!("pull {}", image.reference));
        if image.reference.starts_with("missing") {
            return Err(RuntimeError::NotFound {
                kind: ObjectKind::Image,
                id: image.reference.clone(),
            });
        }
        Ok(PulledImage {
            reference: image.reference.clone(),
            digest: "sha256:0000".into(),
            size: 1,
        })
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        Ok(Vec::new())
    }

    async fn remove_image(&self, _: &ImageSpec) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError> {
        self.record(format!("run_sandbox {}", config.metadata.attempt));
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        let id = SandboxId::new(format!("s{}", state.next_id));
        state.sandboxes.push(SandboxStatus {
            id: id.clone(),
            metadata: config.metadata.clone(),
            runtime_handler: config.runtime_handler.clone(),
            state: SandboxState::Ready,
            created_at: Timestamp::now(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            containers: Vec::new(),
        });
        Ok(id)
    }

    async fn stop_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        self.record("stop_sandbox".into());
        let running: Vec<String> = {
            let mut state = self.state.lock().unwrap();
            if let Some(sandbox) = state.sandboxes.iter_mut().find(|s| &s.id == id) {
                sandbox.state = SandboxState::NotReady;
            }
            state
                .containers
                .values()
                .filter(|c| &c.status.sandbox_id == id)
                .map(|c| c.status.id.as_str().to_owned())
                .collect()
        };
        for container in running {
            Self::exit(&self.state, &self.events, &container, KILLED_EXIT_CODE);
        }
        Ok(())
    }

    async fn remove_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        self.record("remove_sandbox".into());
        let mut state = self.state.lock().unwrap();
        state.sandboxes.retain(|s| &s.id != id);
        state.containers.retain(|_, c| &c.status.sandbox_id != id);
        Ok(())
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        self.record(format!("create {} {}", config.name, config.attempt));
        let mut state = self.state.lock().unwrap();
        if !state
            .sandboxes
            .iter()
            .any(|s| &s.id == sandbox && s.state == SandboxState::Ready)
        {
            return Err(RuntimeError::not_found(
                ObjectKind::Sandbox,
                sandbox.as_str(),
            ));
        }
        state.next_id += 1;
        let id = ContainerId::new(format!("c{}", state.next_id));
        let mut command = config.command.clone();
        command.extend(config.args.clone());
        state.containers.insert(
            id.as_str().to_owned(),
            FakeContainer {
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
                    log_path: config.log_path.clone(),
                    annotations: BTreeMap::new(),
                },
                script: script(&command),
                stop: watch::channel(false).0,
                task: None,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let name;
        {
            let mut state = self.state.lock().unwrap();
            let container = state
                .containers
                .get_mut(id.as_str())
                .ok_or_else(|| RuntimeError::not_found(ObjectKind::Container, id.as_str()))?;
            name = container.status.name.clone();
            container.status.state = ContainerState::Running;
            container.status.started_at = Some(Timestamp::now());
            let script = container.script.clone();
            let mut stop = container.stop.subscribe();
            let (state_ref, events, id) = (
                self.state.clone(),
                self.events.clone(),
                id.as_str().to_owned(),
            );
            container.task = Some(tokio::spawn(async move {
                match script {
                    Script::Exit(code, after) => {
                        tokio::select! {
                            () = tokio::time::sleep(after) => Self::exit(&state_ref, &events, &id, code),
                            _ = stop.wait_for(|s| *s) => Self::exit(&state_ref, &events, &id, 0),
                        }
                    }
                    Script::Run => {
                        let _ = stop.wait_for(|s| *s).await;
                        Self::exit(&state_ref, &events, &id, 0);
                    }
                    Script::IgnoreStop => std::future::pending().await,
                }
            }));
        }
        self.record(format!("start {name}"));
        Ok(())
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let name = {
            let state = self.state.lock().unwrap();
            let Some(container) = state.containers.get(id.as_str()) else {
                return Ok(());
            };
            if container.status.state != ContainerState::Running {
                return Ok(());
            }
            container.stop.send_replace(true);
            container.status.name.clone()
        };
        self.record(format!("stop {name} {}", grace.as_secs()));
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let running = self
                .state
                .lock()
                .unwrap()
                .containers
                .get(id.as_str())
                .is_some_and(|c| c.status.state == ContainerState::Running);
            if !running {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                Self::exit(&self.state, &self.events, id.as_str(), KILLED_EXIT_CODE);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.stop_container(id, Duration::ZERO).await?;
        self.state.lock().unwrap().containers.remove(id.as_str());
        Ok(())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        let state = self.state.lock().unwrap();
        state
            .containers
            .get(id.as_str())
            .map(|c| c.status.clone())
            .ok_or_else(|| RuntimeError::not_found(ObjectKind::Container, id.as_str()))
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        Err(RuntimeError::not_found(ObjectKind::Container, id.as_str()))
    }

    async fn list(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .sandboxes
            .iter()
            .map(|sandbox| {
                let mut sandbox = sandbox.clone();
                sandbox.containers = state
                    .containers
                    .values()
                    .filter(|c| c.status.sandbox_id == sandbox.id)
                    .map(|c| c.status.clone())
                    .collect();
                sandbox
            })
            .collect())
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }

    async fn exec(
        &self,
        id: &ContainerId,
        request: ExecRequest,
    ) -> Result<ExecProcess, RuntimeError> {
        self.record(format!("exec {}", request.command.join(" ")));
        {
            let state = self.state.lock().unwrap();
            let container = state
                .containers
                .get(id.as_str())
                .ok_or_else(|| RuntimeError::not_found(ObjectKind::Container, id.as_str()))?;
            if container.status.state != ContainerState::Running {
                return Err(RuntimeError::InvalidState {
                    kind: ObjectKind::Container,
                    id: id.as_str().to_owned(),
                    state: "exited",
                    operation: "exec in",
                });
            }
        }
        request.validate()?;
        match self.exec {
            FakeExec::Unsupported => Err(RuntimeError::Unsupported {
                operation: "exec",
                reason: "exec is not supported for Wasm pods".into(),
            }),
            FakeExec::Scripted => Ok(scripted_process(&request.command)),
            FakeExec::Process => self.process(request),
        }
    }
}

/// [`FakeExec::Scripted`]'s process.
fn scripted_process(command: &[String]) -> ExecProcess {
    let (code, output) = match command.first().map(String::as_str) {
        Some("exit") => (
            command.get(1).and_then(|c| c.parse().ok()).unwrap_or(1),
            command[2.min(command.len())..].join(" "),
        ),
        Some("hang") => (-1, String::new()),
        _ => (0, String::new()),
    };
    ExecProcess {
        stdin: None,
        stdout: Box::pin(std::io::Cursor::new(output.into_bytes())),
        stderr: Box::pin(tokio::io::empty()),
        resize: None,
        exit: Box::pin(async move {
            if code == -1 {
                std::future::pending::<()>().await;
            }
            Ok(code)
        }),
    }
}

impl FakeRuntime {
    /// [`FakeExec::Process`]'s process.
    fn process(&self, request: ExecRequest) -> Result<ExecProcess, RuntimeError> {
        let mut command = if request.tty {
            let mut shell = tokio::process::Command::new("sh");
            shell.args(["-c", "exec \"$@\" 2>&1", "sh"]);
            shell.args(&request.command);
            shell
        } else {
            let mut command = tokio::process::Command::new(&request.command[0]);
            command.args(&request.command[1..]);
            command
        };
        command
            .stdin(if request.stdin {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| RuntimeError::Backend {
            operation: "spawn the exec process",
            source: source.into(),
        })?;
        let stdin = child
            .stdin
            .take()
            .map(|stdin| Box::pin(stdin) as skiff_sdk::runtime::ExecStdin);
        let stdout = Box::pin(child.stdout.take().expect("piped"));
        let stderr = Box::pin(child.stderr.take().expect("piped"));
        let resize = request.tty.then(|| {
            let (sender, receiver) =
                watch::channel(request.terminal_size.unwrap_or(TerminalSize {
                    width: 80,
                    height: 24,
                }));
            *self.terminal.lock().unwrap() = Some(receiver);
            sender
        });
        let exit = Box::pin(async move {
            let status = child.wait().await.map_err(|source| RuntimeError::Backend {
                operation: "wait for the exec process",
                source: source.into(),
            })?;
            Ok(status.code().unwrap_or(KILLED_EXIT_CODE))
        });
        Ok(ExecProcess {
            stdin,
            stdout,
            stderr,
            resize,
            exit,
        })
    }
}

/// Records what the worker tells the API.
#[derive(Default)]
pub struct FakeApi {
    pub statuses: Mutex<Vec<(Duration, PodStatus)>>,
    pub deletes: Mutex<Vec<Duration>>,
    epoch: Mutex<Option<tokio::time::Instant>>,
}

impl FakeApi {
    fn now(&self) -> Duration {
        self.epoch
            .lock()
            .unwrap()
            .get_or_insert_with(tokio::time::Instant::now)
            .elapsed()
    }

    /// The last status reported.
    pub fn last(&self) -> PodStatus {
        self.statuses
            .lock()
            .unwrap()
            .last()
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl PodApi for FakeApi {
    async fn patch_status(&self, _: &str, _: &str, status: &PodStatus) -> Result<(), PodApiError> {
        let now = self.now();
        self.statuses.lock().unwrap().push((now, status.clone()));
        Ok(())
    }

    async fn delete(&self, _: &str, _: &str, _: &str) -> Result<(), PodApiError> {
        let now = self.now();
        self.deletes.lock().unwrap().push(now);
        Ok(())
    }

    async fn runtime_handler(&self, class: &str) -> Result<Option<String>, PodApiError> {
        Ok(match class {
            "wasmtime" => Some("wasmtime".into()),
            "runc" => Some("runc".into()),
            _ => None,
        })
    }
}

/// No ConfigMaps or Secrets.
pub struct NoObjects;

#[async_trait]
impl ObjectSource for NoObjects {
    async fn config_map(&self, _: &str, _: &str) -> Result<Option<ConfigMap>, SourceError> {
        Ok(None)
    }

    async fn secret(&self, _: &str, _: &str) -> Result<Option<Secret>, SourceError> {
        Ok(None)
    }
}

/// An exec prober that succeeds `healthy` times, then fails.
pub struct ScriptedExec {
    pub healthy: Mutex<u32>,
}

#[async_trait]
impl ExecProber for ScriptedExec {
    async fn exec(&self, _: &[String], _: Duration) -> ProbeResult {
        let mut healthy = self.healthy.lock().unwrap();
        if *healthy > 0 {
            *healthy -= 1;
            ProbeResult::Success
        } else {
            ProbeResult::Failure("command failed".into())
        }
    }
}

/// One worker under test.
pub struct Harness {
    pub ctx: Arc<WorkerContext>,
    pub runtime: FakeRuntime,
    pub api: Arc<FakeApi>,
    pub updates: watch::Sender<Option<Arc<Pod>>>,
    pub task: JoinHandle<()>,
    pub dir: tempfile::TempDir,
}

pub fn context(
    runtime: &FakeRuntime,
    api: &Arc<FakeApi>,
    exec: ExecProbes,
    dir: PathBuf,
) -> Arc<WorkerContext> {
    context_with(vec![Arc::new(runtime.clone())], api, exec, dir)
}

/// A worker context over the given runtimes.
pub fn context_with(
    runtimes: Vec<Arc<dyn Runtime>>,
    api: &Arc<FakeApi>,
    exec: ExecProbes,
    dir: PathBuf,
) -> Arc<WorkerContext> {
    Arc::new(WorkerContext {
        api: api.clone(),
        objects: Arc::new(NoObjects),
        runtimes: Runtimes::new(runtimes),
        exec,
        logs: Arc::new(PodLogs::default()),
        containers: Arc::new(PodContainers::default()),
        events: skiff_sdk::events::Recorder::discard(),
        node_name: "n1".into(),
        node_ip: "127.0.0.2".parse().unwrap(),
        pod_addresses: PodAddresses::NodeAddress,
        pods_dir: dir,
        insecure_registries: Vec::new(),
        allocatable_cpu_millis: 4000,
        allocatable_memory_bytes: 8 << 30,
        backoff_initial: Duration::from_secs(10),
        backoff_max: Duration::from_secs(300),
        inventory: Default::default(),
    })
}

impl Harness {
    /// Starts a worker for `pod` over a new fake runtime.
    pub fn start(pod: Pod) -> Self {
        Self::start_with(
            pod,
            FakeRuntime::new(),
            ExecProbes::With(Arc::new(ScriptedExec {
                healthy: Mutex::new(u32::MAX),
            })),
        )
    }

    pub fn start_with(pod: Pod, runtime: FakeRuntime, exec: ExecProbes) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let api = Arc::new(FakeApi::default());
        let ctx = context(&runtime, &api, exec, dir.path().to_owned());
        let (updates, receiver) = watch::channel(Some(Arc::new(pod.clone())));
        let worker = PodWorker::new(ctx.clone(), Arc::new(pod), receiver);
        let task = tokio::spawn(worker.run());
        Self {
            ctx,
            runtime,
            api,
            updates,
            task,
            dir,
        }
    }

    /// Lets the worker run for `duration` of (paused) time.
    pub async fn advance(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A pod run by a first worker for a second, which then stops (as when the
/// agent is killed): the runtime keeps its container, and the pod as the
/// API shows it carries the status the first worker reported.
pub async fn pod_left_running() -> (Harness, Pod) {
    let spec = pod(serde_json::json!({
        "runtimeClassName": "wasmtime",
        "containers": [{"name": "c", "image": "app"}]
    }));
    let first = Harness::start(spec.clone());
    first.advance(Duration::from_secs(1)).await;
    first.task.abort();
    let mut seen = spec;
    seen.status = Some(first.api.last());
    (first, seen)
}

/// A pod from JSON, with the metadata the API server sets.
pub fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": spec,
    }))
    .unwrap()
}
