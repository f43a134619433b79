//! One pod on this node, from its binding to its deletion: a task per pod
//! whose lifecycle is a private enum advanced by one `step` function, as
//! the kubelet's pod workers are. Each step does one piece of work through
//! the runtime (pull, sandbox, start a container, stop them ...) or waits
//! for something to change (the pod object, a container exit, a probe, a
//! back-off timer), and after every step the pod's status is reported if
//! it changed.
//!
//! Restarts follow the pod's `restartPolicy` with the kubelet's crash-loop
//! back-off; deletion stops every container with the grace period the
//! deletion carries and deletes the pod object only once the runtime has
//! stopped and removed them; `activeDeadlineSeconds` fails the pod.

use std::collections::HashMap;

use skiff_sdk::error_chain as chain;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_sdk::quantity::ParsedQuantity;
use skiff_sdk::runtime::{
    self, ContainerConfig, ContainerId, ContainerState, ContainerStatus, ImageSpec, PullOptions,
    Resources, Runtime, RuntimeError, RuntimeEvent, SandboxConfig, SandboxId, SandboxMetadata,
    SandboxNetwork, SandboxState, SandboxStatus,
};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use skiff_sdk::events::Recorder;

use crate::backoff::Backoff;
use crate::pod_api::{PodApi, PodApiError};
use crate::pod_config::{self, NodeFacts, ObjectSource};
use crate::pod_containers::PodContainers;
use crate::pod_logs::PodLogs;
use crate::pod_status::{self, ContainerFacts, PodFacts, PodFailure, State, Terminated};
use crate::probe::{self, ExecProbes, NoExec, ProbeKind, Prober, Verdict};
use crate::volumes::{self, PodVolumes};

/// The RuntimeClass handler of pods that name none (Kubernetes' default
/// runtime runs containers).
pub const DEFAULT_HANDLER: &str = skiff_sdk::runtime_class::RUNC;

/// The sandbox annotation that records the pod's address, so that an
/// agent restarted over the same runtime state keeps it.
pub const POD_IP_ANNOTATION: &str = "skiff.dev/pod-ip";

/// How long a pod's containers get to stop when the pod says nothing
/// (`terminationGracePeriodSeconds`' default).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// How soon a failed status report or final delete is tried again.
const API_RETRY: Duration = Duration::from_secs(1);

/// How often a pod that cannot start for lack of a runtime looks again.
const SLOW_RETRY: Duration = Duration::from_secs(30);

/// How often a worker asks again a runtime that did not answer (containerd
/// down): cheap, and the pod's containers may be running there.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(2);

/// The runtimes of this node, by the RuntimeClass handlers they serve.
#[derive(Clone, Default)]
pub struct Runtimes {
    runtimes: Vec<Arc<dyn Runtime>>,
}

impl Runtimes {
    /// The node's runtimes.
    pub fn new(runtimes: Vec<Arc<dyn Runtime>>) -> Self {
        Self { runtimes }
    }

    /// The runtime serving `handler`.
    pub fn for_handler(&self, handler: &str) -> Option<&Arc<dyn Runtime>> {
        self.runtimes.iter().find(|r| r.info().serves(handler))
    }

    /// Every runtime.
    pub fn all(&self) -> &[Arc<dyn Runtime>] {
        &self.runtimes
    }
}

/// What the runtimes held when the agent started, by runtime and pod uid:
/// the sandboxes the workers adopt. Listed once by the pod manager rather
/// than by every worker (a listing grows with the pods on the node).
#[derive(Default)]
pub struct Inventory {
    listed: Mutex<HashMap<String, HashMap<String, Vec<SandboxStatus>>>>,
}

impl Inventory {
    /// Lists every runtime; a runtime that does not answer is left out,
    /// and its pods' workers list it themselves once it does.
    pub async fn take(&self, runtimes: &Runtimes) {
        for runtime in runtimes.all() {
            let name = runtime.info().name.clone();
            match runtime.list().await {
                Ok(sandboxes) => {
                    let mut by_pod: HashMap<String, Vec<SandboxStatus>> = HashMap::new();
                    for sandbox in sandboxes {
                        by_pod
                            .entry(sandbox.metadata.uid.clone())
                            .or_default()
                            .push(sandbox);
                    }
                    self.lock().insert(name, by_pod);
                }
                Err(error) => {
                    tracing::warn!(runtime = %name, %error, "listing the runtime's sandboxes failed")
                }
            }
        }
    }

    /// Every listed sandbox.
    pub fn sandboxes(&self) -> Vec<SandboxStatus> {
        self.lock()
            .values()
            .flat_map(|by_pod| by_pod.values().flatten().cloned())
            .collect()
    }

    /// Hands over what `runtime` held of pod `uid`; `None` when that
    /// runtime was not listed.
    fn claim(&self, runtime: &str, uid: &str) -> Option<Vec<SandboxStatus>> {
        let mut listed = self.lock();
        let by_pod = listed.get_mut(runtime)?;
        Some(by_pod.remove(uid).unwrap_or_default())
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Vec<SandboxStatus>>>> {
        self.listed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How the node gives pods their addresses.
#[derive(Clone, Debug)]
pub enum PodAddresses {
    /// Every pod uses the node's address (`podIP` = `hostIP`); container
    /// ports are host ports.
    NodeAddress,
    /// Each pod gets an address of its own among these local addresses
    /// (the sandbox network is [`SandboxNetwork::HostAddress`]).
    Pool(Arc<crate::address_pool::AddressPool>),
}

/// What every pod worker of an agent shares.
pub struct WorkerContext {
    /// The API calls.
    pub api: Arc<dyn PodApi>,
    /// ConfigMaps and Secrets for env and volumes.
    pub objects: Arc<dyn ObjectSource>,
    /// The node's runtimes.
    pub runtimes: Runtimes,
    /// Runs exec probes.
    pub exec: ExecProbes,
    /// The log files the node API serves.
    pub logs: Arc<PodLogs>,
    /// Where each container runs, for the node API's exec.
    pub containers: Arc<PodContainers>,
    /// Records the kubelet's events about pods (Pulled, Started, BackOff,
    /// Unhealthy, Killing ...).
    pub events: Recorder,
    /// The node's name.
    pub node_name: String,
    /// The node's address.
    pub node_ip: IpAddr,
    /// How pods get addresses.
    pub pod_addresses: PodAddresses,
    /// Where pod directories (logs, volumes) live: `<pods_dir>/<uid>`.
    pub pods_dir: PathBuf,
    /// Registries pulled from over plain HTTP (`host:port`).
    pub insecure_registries: Vec<String>,
    /// The node's allocatable CPU (millicores), for `resourceFieldRef`.
    pub allocatable_cpu_millis: u64,
    /// The node's allocatable memory (bytes), for `resourceFieldRef`.
    pub allocatable_memory_bytes: u64,
    /// The crash-loop back-off's first delay.
    pub backoff_initial: Duration,
    /// The crash-loop back-off's longest delay.
    pub backoff_max: Duration,
    /// What the runtimes held when the agent started.
    pub inventory: Inventory,
}

/// What the pod manager sends a worker: the pod as last seen, or `None`
/// once it is gone from the API (deleted without grace).
pub type PodUpdates = watch::Receiver<Option<Arc<Pod>>>;

/// Where a pod is in its life.
#[derive(Clone, Debug, PartialEq)]
enum Lifecycle {
    /// Find the runtime, adopt what survived a restart, prepare volumes,
    /// pull images, run the sandbox; retried with back-off on failure.
    Prepare,
    /// Init container `n` runs or is to be started.
    Init(usize),
    /// The containers run and restart per the restart policy.
    Run,
    /// Nothing will run again (the pod Succeeded or Failed); the sandbox is
    /// stopped, the status stays until the pod is deleted.
    Finished,
    /// The pod is being deleted: stop every container within the grace
    /// period.
    Terminate,
    /// Remove everything from the runtime, then delete the pod object.
    Cleanup,
    /// The worker's work is over.
    Done,
}

/// One container of the pod (init or not) across its instances.
struct Slot {
    spec: Container,
    init: bool,
    /// The current instance, once created.
    current: Option<Instance>,
    /// The attempt number of the next instance.
    next_attempt: u32,
    restart_count: i32,
    /// How the previous instance ended.
    last_terminated: Option<Terminated>,
    /// Why it is not running, when it is not.
    waiting: Option<(String, Option<String>)>,
    backoff: Backoff,
    /// No new instance before this.
    not_before: Option<Instant>,
    /// The next instance is a restart (counted once it is created).
    restarting: bool,
    probes: Probes,
}

struct Instance {
    id: ContainerId,
    status: ContainerStatus,
    /// Set to true when it exits (log readers following it stop).
    finished: watch::Sender<bool>,
    /// When this worker saw it start, for the back-off.
    started: Option<Instant>,
    /// It was killed for failing its liveness or startup probe.
    killed_by_probe: bool,
}

#[derive(Default)]
struct Probes {
    startup: Option<Prober>,
    liveness: Option<Prober>,
    readiness: Option<Prober>,
    /// The worker's own receivers of the probers' states, each with the
    /// verdict the worker last reported.
    receivers: Vec<(watch::Receiver<probe::ProbeState>, Verdict)>,
}

impl Probes {
    fn new(startup: Option<Prober>, liveness: Option<Prober>, readiness: Option<Prober>) -> Self {
        let receivers = [&startup, &liveness, &readiness]
            .into_iter()
            .flatten()
            .map(|prober| (prober.state(), Verdict::Unknown))
            .collect();
        Self {
            startup,
            liveness,
            readiness,
            receivers,
        }
    }

    fn verdict(prober: &Option<Prober>) -> Option<Verdict> {
        prober.as_ref().map(|p| p.state().borrow().verdict)
    }

    /// Whether the startup probe passed (or there is none).
    fn started(&self) -> bool {
        matches!(Self::verdict(&self.startup), None | Some(Verdict::Success))
    }

    fn ready(&self) -> bool {
        self.started()
            && matches!(
                Self::verdict(&self.readiness),
                None | Some(Verdict::Success)
            )
    }

    /// The failure message of a liveness or startup probe that failed.
    fn fatal(&self) -> Option<String> {
        let failed = |prober: &Option<Prober>| {
            prober.as_ref().and_then(|p| {
                let state = p.state().borrow().clone();
                (state.verdict == Verdict::Failure).then(|| state.message.unwrap_or_default())
            })
        };
        if let Some(message) = failed(&self.startup) {
            return Some(format!("Startup probe failed: {message}"));
        }
        if self.started() {
            failed(&self.liveness).map(|message| format!("Liveness probe failed: {message}"))
        } else {
            None
        }
    }
}

/// A pod's worker. [`PodWorker::run`] drives it to the end.
pub struct PodWorker {
    ctx: Arc<WorkerContext>,
    uid: String,
    namespace: String,
    name: String,
    pod: Arc<Pod>,
    updates: PodUpdates,
    /// The pod is gone from the API.
    gone: bool,
    lifecycle: Lifecycle,
    runtime: Option<Arc<dyn Runtime>>,
    events: Option<broadcast::Receiver<RuntimeEvent>>,
    sandbox: Option<SandboxId>,
    sandbox_attempt: u32,
    /// Sandboxes of this pod found at adoption that are not used.
    stale_sandboxes: Vec<SandboxId>,
    adopted: bool,
    pod_ip: Option<IpAddr>,
    volumes: Option<PodVolumes>,
    /// Image reference → `repository@digest` of what was pulled.
    images: HashMap<String, String>,
    slots: Vec<Slot>,
    start_time: Timestamp,
    /// The pod's active deadline, if it has one.
    active_deadline: Option<Instant>,
    failure: Option<PodFailure>,
    /// The sandbox was stopped (the pod finished).
    sandbox_stopped: bool,
    /// The pod had finished before this worker took it (an agent restart):
    /// its reported status stays as it is.
    frozen: bool,
    /// Why the pod cannot start at all, applied to every container that
    /// has not started (runtime missing, pull failing, ...).
    blocked: Option<(String, Option<String>)>,
    prepare_backoff: Backoff,
    prepare_not_before: Option<Instant>,
    /// The status last reported, to report only changes.
    reported: Option<serde_json::Value>,
    report_retry: Option<Instant>,
    delete_retry: Option<Instant>,
}

impl PodWorker {
    /// A worker for `pod` (whose metadata has a uid, namespace and name).
    pub fn new(ctx: Arc<WorkerContext>, pod: Arc<Pod>, updates: PodUpdates) -> Self {
        let metadata = &pod.metadata;
        let uid = metadata.uid.clone().unwrap_or_default();
        let namespace = metadata.namespace.clone().unwrap_or_default();
        let name = metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let backoff = Backoff::new(ctx.backoff_initial, ctx.backoff_max);
        let slots = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| (c, true))
            .chain(spec.containers.iter().map(|c| (c, false)))
            .map(|(spec, init)| Slot {
                spec: spec.clone(),
                init,
                current: None,
                next_attempt: 0,
                restart_count: 0,
                last_terminated: None,
                waiting: None,
                backoff: backoff.clone(),
                not_before: None,
                restarting: false,
                probes: Probes::default(),
            })
            .collect();
        // A pod the node already ran (the agent restarted) keeps its start
        // time and restart counts.
        let status = pod.status.as_ref();
        let start_time = status
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now);
        let mut worker = Self {
            prepare_backoff: backoff,
            ctx,
            uid,
            namespace,
            name,
            updates,
            gone: false,
            lifecycle: Lifecycle::Prepare,
            runtime: None,
            events: None,
            sandbox: None,
            sandbox_attempt: 0,
            stale_sandboxes: Vec::new(),
            adopted: false,
            pod_ip: None,
            volumes: None,
            images: HashMap::new(),
            slots,
            start_time,
            active_deadline: None,
            failure: None,
            sandbox_stopped: false,
            frozen: false,
            blocked: None,
            prepare_not_before: None,
            reported: None,
            report_retry: None,
            delete_retry: None,
            pod,
        };
        worker.active_deadline = spec.active_deadline_seconds.map(|seconds| {
            let elapsed = Timestamp::now()
                .duration_since(worker.start_time)
                .try_into()
                .unwrap_or(Duration::ZERO);
            Instant::now() + Duration::from_secs(seconds.max(0) as u64).saturating_sub(elapsed)
        });
        for slot in &mut worker.slots {
            slot.restart_count = restart_count_of(&worker.pod, &slot.spec.name, slot.init);
        }
        let phase = worker.pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            worker.lifecycle = Lifecycle::Finished;
            worker.sandbox_stopped = true;
            worker.frozen = true;
        }
        worker.ctx.logs.declare(
            &worker.namespace,
            &worker.name,
            worker.slots.iter().map(|s| s.spec.name.clone()),
        );
        worker
    }

    /// Runs the pod until it is gone.
    pub async fn run(mut self) {
        tracing::debug!(pod = %self.key(), uid = %self.uid, "pod worker started");
        while self.lifecycle != Lifecycle::Done {
            let next = self.step().await;
            if next != self.lifecycle {
                tracing::debug!(pod = %self.key(), from = ?self.lifecycle, to = ?next, "pod lifecycle");
            }
            self.lifecycle = next;
            if !matches!(self.lifecycle, Lifecycle::Cleanup | Lifecycle::Done) {
                self.report().await;
            }
        }
        tracing::debug!(pod = %self.key(), uid = %self.uid, "pod worker done");
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod is to be stopped: gone from the API or deleted.
    fn terminating(&self) -> bool {
        self.gone || self.pod.metadata.deletion_timestamp.is_some()
    }

    /// The one step function: one piece of work, or, when there is none
    /// to do, a wait for something to change.
    async fn step(&mut self) -> Lifecycle {
        match self.lifecycle.clone() {
            Lifecycle::Prepare => {
                if self.terminating() {
                    return Lifecycle::Terminate;
                }
                if self
                    .prepare_not_before
                    .is_some_and(|at| at > Instant::now())
                {
                    self.wait().await;
                    return Lifecycle::Prepare;
                }
                match self.prepare().await {
                    Ok(next) => {
                        self.blocked = None;
                        self.prepare_not_before = None;
                        next
                    }
                    Err(Blocked {
                        reason,
                        message,
                        retry,
                    }) => {
                        tracing::info!(
                            pod = %self.key(),
                            %reason,
                            message = message.as_deref().unwrap_or(""),
                            "pod cannot start yet"
                        );
                        self.blocked = Some((reason, message));
                        let now = Instant::now();
                        self.prepare_not_before = Some(match retry {
                            Retry::BackOff => self
                                .prepare_backoff
                                .restart_at(None, now)
                                .unwrap_or(now)
                                .max(now + API_RETRY),
                            Retry::Slowly => now + SLOW_RETRY,
                            Retry::Soon => now + UNAVAILABLE_RETRY,
                        });
                        Lifecycle::Prepare
                    }
                }
            }
            Lifecycle::Init(index) => {
                if self.terminating() {
                    return Lifecycle::Terminate;
                }
                if self.deadline_passed() {
                    return self.fail_on_deadline().await;
                }
                self.refresh_slot(index).await;
                let status = self.slots[index].current.as_ref().map(|i| i.status.clone());
                match status {
                    Some(status) if status.state == ContainerState::Running => {
                        self.wait().await;
                    }
                    Some(status) if is_ended(&status) => {
                        if status.exit_code == Some(0) {
                            let next = index + 1;
                            return if next < self.init_count() {
                                Lifecycle::Init(next)
                            } else {
                                Lifecycle::Run
                            };
                        }
                        if self.restart_policy() == "Never" {
                            return Lifecycle::Finished;
                        }
                        self.restart(index).await;
                    }
                    _ => {
                        if !self.start_if_due(index).await {
                            self.wait().await;
                        }
                    }
                }
                Lifecycle::Init(index)
            }
            Lifecycle::Run => {
                if self.terminating() {
                    return Lifecycle::Terminate;
                }
                if self.deadline_passed() {
                    return self.fail_on_deadline().await;
                }
                self.run_containers().await
            }
            Lifecycle::Finished => {
                if self.terminating() {
                    return Lifecycle::Terminate;
                }
                if !self.sandbox_stopped {
                    self.stop_all(Duration::ZERO).await;
                    self.stop_sandbox().await;
                    return Lifecycle::Finished;
                }
                self.wait().await;
                Lifecycle::Finished
            }
            Lifecycle::Terminate => {
                let grace = self.grace();
                if !self.gone {
                    for slot in &self.slots {
                        if slot.current.as_ref().is_some_and(|i| !is_ended(&i.status)) {
                            self.ctx.events.normal(
                                &*self.pod,
                                "Killing",
                                format!("Stopping container {}", slot.spec.name),
                            );
                        }
                    }
                }
                self.stop_all(grace).await;
                self.stop_sandbox().await;
                Lifecycle::Cleanup
            }
            Lifecycle::Cleanup => self.cleanup().await,
            Lifecycle::Done => Lifecycle::Done,
        }
    }

    async fn stop_sandbox(&mut self) {
        if let (Some(runtime), Some(sandbox)) = (&self.runtime, &self.sandbox)
            && let Err(error) = runtime.stop_sandbox(sandbox).await
        {
            tracing::warn!(pod = %self.key(), %error, "stopping the sandbox failed");
        }
        self.sandbox_stopped = true;
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".to_owned())
    }

    fn init_count(&self) -> usize {
        self.slots.iter().filter(|s| s.init).count()
    }

    fn deadline_passed(&self) -> bool {
        self.active_deadline.is_some_and(|at| at <= Instant::now())
    }

    async fn fail_on_deadline(&mut self) -> Lifecycle {
        tracing::info!(pod = %self.key(), "active deadline exceeded");
        self.ctx.events.normal(
            &*self.pod,
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline".to_owned(),
        );
        self.failure = Some(PodFailure {
            reason: "DeadlineExceeded".to_owned(),
            message: "Pod was active on the node longer than the specified deadline".to_owned(),
        });
        let grace = self.grace();
        self.stop_all(grace).await;
        Lifecycle::Finished
    }

    /// The grace period of a stop: the deletion's, else the pod's; none
    /// for a pod already gone from the API.
    fn grace(&self) -> Duration {
        if self.gone {
            return Duration::ZERO;
        }
        let seconds = self.pod.metadata.deletion_grace_period_seconds.or_else(|| {
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        });
        match seconds {
            Some(seconds) => Duration::from_secs(seconds.max(0) as u64),
            None => DEFAULT_GRACE,
        }
    }

    /// Runtime, adoption, volumes, images, sandbox.
    async fn prepare(&mut self) -> Result<Lifecycle, Blocked> {
        let runtime = match &self.runtime {
            Some(runtime) => runtime.clone(),
            None => {
                let runtime = self.resolve_runtime().await?;
                self.events = Some(runtime.events());
                self.runtime = Some(runtime.clone());
                runtime
            }
        };
        if !self.adopted {
            self.adopt(&runtime).await.map_err(Blocked::runtime)?;
            self.adopted = true;
        }
        for stale in std::mem::take(&mut self.stale_sandboxes) {
            if let Err(error) = runtime.remove_sandbox(&stale).await {
                tracing::warn!(pod = %self.key(), sandbox = %stale.as_str(), %error, "removing an old sandbox failed");
            }
        }
        let pod_dir = self.ctx.pods_dir.join(&self.uid);
        if self.volumes.is_none() {
            let volumes = volumes::prepare(&self.pod, &pod_dir, self.ctx.objects.as_ref())
                .await
                .map_err(|error| Blocked {
                    reason: "ContainerCreating".to_owned(),
                    message: Some(format!("MountVolume.SetUp failed: {error}")),
                    retry: Retry::BackOff,
                })?;
            self.volumes = Some(volumes);
        }
        let images: Vec<(String, PullPolicy)> = self
            .slots
            .iter()
            .filter_map(|s| {
                let image = s.spec.image.clone()?;
                let policy = PullPolicy::of(&image, s.spec.image_pull_policy.as_deref());
                Some((image, policy))
            })
            .collect();
        let mut present: Option<Vec<runtime::ImageInfo>> = None;
        for (image, policy) in images {
            if self.images.contains_key(&image) {
                continue;
            }
            if policy != PullPolicy::Always {
                if present.is_none() {
                    present = Some(runtime.list_images().await.unwrap_or_default());
                }
                let found = present
                    .iter()
                    .flatten()
                    .find(|i| i.names.contains(&image) || i.digest == image);
                if let Some(found) = found {
                    let repository = strip_tag(image.split('@').next().unwrap_or_default());
                    self.images
                        .insert(image.clone(), format!("{repository}@{}", found.digest));
                    continue;
                }
                if policy == PullPolicy::Never {
                    return Err(Blocked {
                        reason: "ErrImageNeverPull".to_owned(),
                        message: Some(format!(
                            "Container image \"{image}\" is not present with pull policy of Never"
                        )),
                        retry: Retry::BackOff,
                    });
                }
            }
            let options = PullOptions::default().insecure(self.insecure(&image));
            self.ctx
                .events
                .normal(&*self.pod, "Pulling", format!("Pulling image \"{image}\""));
            let started = Instant::now();
            match runtime.pull_image(&ImageSpec::new(&image), &options).await {
                Ok(pulled) => {
                    self.ctx.events.normal(
                        &*self.pod,
                        "Pulled",
                        format!(
                            "Successfully pulled image \"{image}\" in {:.3}s. Image size: {} bytes.",
                            started.elapsed().as_secs_f64(),
                            pulled.size
                        ),
                    );
                    let repository = image
                        .split('@')
                        .next()
                        .map(|r| strip_tag(r).to_owned())
                        .unwrap_or_default();
                    self.images
                        .insert(image.clone(), format!("{repository}@{}", pulled.digest));
                }
                Err(error) => {
                    let reason = if self
                        .blocked
                        .as_ref()
                        .is_some_and(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff")
                    {
                        "ImagePullBackOff"
                    } else {
                        "ErrImagePull"
                    };
                    let message = format!("pulling image \"{image}\": {}", chain(&error));
                    self.ctx.events.warning(
                        &*self.pod,
                        "Failed",
                        format!("Failed to pull image \"{image}\": {}", chain(&error)),
                    );
                    if reason == "ImagePullBackOff" {
                        self.ctx.events.normal(
                            &*self.pod,
                            "BackOff",
                            format!("Back-off pulling image \"{image}\""),
                        );
                    }
                    return Err(Blocked {
                        reason: reason.to_owned(),
                        message: Some(message),
                        retry: Retry::BackOff,
                    });
                }
            }
        }
        if self.sandbox.is_none() {
            let (network, pod_ip) = match &self.ctx.pod_addresses {
                PodAddresses::NodeAddress => (SandboxNetwork::Host, self.ctx.node_ip),
                PodAddresses::Pool(pool) => {
                    let ip = pool.assign(&self.uid).ok_or_else(|| Blocked {
                        reason: "ContainerCreating".to_owned(),
                        message: Some("no pod address left on this node".to_owned()),
                        retry: Retry::BackOff,
                    })?;
                    (SandboxNetwork::HostAddress { ip }, ip)
                }
            };
            let metadata = SandboxMetadata::new(&self.name, &self.namespace, &self.uid)
                .attempt(self.sandbox_attempt);
            let handler = runtime.info().handlers.first().cloned().unwrap_or_default();
            let config = SandboxConfig::new(metadata, handler, pod_dir.join("logs"))
                .hostname(&self.name)
                .network(network)
                .labels(self.pod.metadata.labels.clone().unwrap_or_default())
                .annotations({
                    let mut annotations = self.pod.metadata.annotations.clone().unwrap_or_default();
                    annotations.insert(POD_IP_ANNOTATION.to_owned(), pod_ip.to_string());
                    annotations
                });
            let id = runtime
                .run_sandbox(&config)
                .await
                .map_err(Blocked::runtime)?;
            self.sandbox = Some(id);
            self.pod_ip = Some(pod_ip);
        }
        let first_unfinished_init = self.slots.iter().position(|s| {
            s.init
                && !s
                    .current
                    .as_ref()
                    .is_some_and(|i| i.status.exit_code == Some(0) && is_ended(&i.status))
        });
        Ok(match first_unfinished_init {
            Some(index) => Lifecycle::Init(index),
            None => Lifecycle::Run,
        })
    }

    fn insecure(&self, image: &str) -> bool {
        let registry = image.split('/').next().unwrap_or_default();
        image.contains('/') && self.ctx.insecure_registries.iter().any(|r| r == registry)
    }

    async fn resolve_runtime(&self) -> Result<Arc<dyn Runtime>, Blocked> {
        let class = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.clone());
        let handler = match &class {
            None => DEFAULT_HANDLER.to_owned(),
            Some(class) => match self.ctx.api.runtime_handler(class).await {
                Ok(Some(handler)) => handler,
                Ok(None) => {
                    return Err(Blocked {
                        reason: "RuntimeUnavailable".to_owned(),
                        message: Some(format!("RuntimeClass \"{class}\" not found")),
                        retry: Retry::BackOff,
                    });
                }
                Err(error) => {
                    return Err(Blocked {
                        reason: "ContainerCreating".to_owned(),
                        message: Some(format!("reading RuntimeClass \"{class}\": {error}")),
                        retry: Retry::BackOff,
                    });
                }
            },
        };
        self.ctx
            .runtimes
            .for_handler(&handler)
            .cloned()
            .ok_or_else(|| Blocked {
                reason: "RuntimeUnavailable".to_owned(),
                message: Some(format!(
                    "no runtime on node \"{}\" serves the RuntimeClass handler \"{handler}\"",
                    self.ctx.node_name
                )),
                retry: Retry::Slowly,
            })
    }

    /// Takes over what the runtime still holds of this pod (after an agent
    /// restart): the newest ready sandbox and its containers; older or
    /// stopped sandboxes are removed once their containers are counted.
    async fn adopt(&mut self, runtime: &Arc<dyn Runtime>) -> Result<(), RuntimeError> {
        let sandboxes = match self.ctx.inventory.claim(&runtime.info().name, &self.uid) {
            Some(sandboxes) => sandboxes,
            None => runtime
                .list()
                .await?
                .into_iter()
                .filter(|s| s.metadata.uid == self.uid)
                .collect(),
        };
        let Some(newest) = sandboxes.iter().map(|s| s.metadata.attempt).max() else {
            return Ok(());
        };
        self.sandbox_attempt = newest + 1;
        for sandbox in &sandboxes {
            let reusable =
                sandbox.state == SandboxState::Ready && sandbox.metadata.attempt == newest;
            for container in &sandbox.containers {
                let Some(slot) = self
                    .slots
                    .iter_mut()
                    .find(|s| s.spec.name == container.name)
                else {
                    continue;
                };
                slot.next_attempt = slot.next_attempt.max(container.attempt + 1);
                let newer = slot
                    .current
                    .as_ref()
                    .is_none_or(|i| i.status.attempt < container.attempt);
                if reusable && newer {
                    let (finished, _) = watch::channel(is_ended(container));
                    self.ctx.logs.started(
                        &self.namespace,
                        &self.name,
                        &container.name,
                        container.log_path.clone(),
                        finished.subscribe(),
                    );
                    self.ctx.containers.started(
                        &self.namespace,
                        &self.name,
                        &container.name,
                        runtime.clone(),
                        container.id.clone(),
                    );
                    slot.current = Some(Instance {
                        id: container.id.clone(),
                        status: container.clone(),
                        finished,
                        started: container.started_at.map(|_| Instant::now()),
                        killed_by_probe: false,
                    });
                }
            }
            if reusable {
                tracing::info!(pod = %self.key(), sandbox = %sandbox.id.as_str(), "adopted the pod's sandbox");
                self.sandbox = Some(sandbox.id.clone());
                // The manager claimed the sandbox's address for the pod
                // before any worker started.
                let recorded = sandbox
                    .annotations
                    .get(POD_IP_ANNOTATION)
                    .and_then(|ip| ip.parse().ok());
                self.pod_ip = Some(recorded.unwrap_or(self.ctx.node_ip));
            } else {
                self.stale_sandboxes.push(sandbox.id.clone());
            }
        }
        for slot in &mut self.slots {
            // Containers lost with the runtime count as ended.
            if let Some(instance) = &mut slot.current
                && instance.status.state == ContainerState::Unknown
            {
                instance.status.state = ContainerState::Exited;
                instance
                    .status
                    .exit_code
                    .get_or_insert(runtime::KILLED_EXIT_CODE);
                instance
                    .status
                    .reason
                    .get_or_insert_with(|| "Unknown".to_owned());
                instance
                    .status
                    .finished_at
                    .get_or_insert_with(Timestamp::now);
                instance.finished.send_replace(true);
            }
        }
        Ok(())
    }

    /// Re-reads a slot's current instance from the runtime.
    async fn refresh_slot(&mut self, index: usize) {
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let key = self.key();
        let Some(instance) = &mut self.slots[index].current else {
            return;
        };
        if is_ended(&instance.status) {
            return;
        }
        match runtime.container_status(&instance.id).await {
            Ok(status) => {
                instance.status = status;
            }
            Err(RuntimeError::NotFound { .. }) => {
                instance.status.state = ContainerState::Exited;
                instance.status.exit_code = Some(runtime::KILLED_EXIT_CODE);
                instance.status.reason = Some("ContainerNotFound".to_owned());
                instance.status.finished_at = Some(Timestamp::now());
            }
            Err(error) => {
                tracing::warn!(pod = %key, %error, "reading a container's status failed");
            }
        }
        if is_ended(&instance.status) {
            instance.finished.send_replace(true);
        }
    }

    /// The main containers: start what should run, restart what ended per
    /// the restart policy, kill what fails its liveness probe; wait only
    /// when none of that was to do.
    async fn run_containers(&mut self) -> Lifecycle {
        let policy = self.restart_policy();
        let first_main = self.init_count();
        let mut worked = false;
        for index in first_main..self.slots.len() {
            self.refresh_slot(index).await;
            let state = self.slots[index].current.as_ref().map(|i| i.status.state);
            match state {
                Some(ContainerState::Running) => {
                    if let Some(message) = self.slots[index].probes.fatal() {
                        self.kill_for_probe(index, &message).await;
                        worked = true;
                    }
                }
                Some(ContainerState::Exited | ContainerState::Unknown) => {
                    let exit_code = self.slots[index]
                        .current
                        .as_ref()
                        .and_then(|i| i.status.exit_code);
                    let restart = match policy.as_str() {
                        "Always" => true,
                        "OnFailure" => exit_code != Some(0),
                        _ => false,
                    };
                    if restart {
                        self.restart(index).await;
                        worked = true;
                    } else {
                        self.slots[index].probes = Probes::default();
                    }
                }
                Some(ContainerState::Created) | None => {
                    worked |= self.start_if_due(index).await;
                }
            }
        }
        let all_done = self.slots[first_main..].iter().all(|slot| {
            slot.current.as_ref().is_some_and(|i| {
                is_ended(&i.status)
                    && match policy.as_str() {
                        "Always" => false,
                        "OnFailure" => i.status.exit_code == Some(0),
                        _ => true,
                    }
            })
        });
        if all_done {
            return Lifecycle::Finished;
        }
        if !worked {
            self.wait().await;
        }
        Lifecycle::Run
    }

    async fn kill_for_probe(&mut self, index: usize, message: &str) {
        let grace = self.grace_of_probe(index);
        let slot = &mut self.slots[index];
        tracing::info!(
            pod = %format!("{}/{}", self.namespace, self.name),
            container = %slot.spec.name,
            %message,
            "container failed its probe; restarting"
        );
        self.ctx
            .events
            .warning(&*self.pod, "Unhealthy", message.to_owned());
        self.ctx.events.normal(
            &*self.pod,
            "Killing",
            format!(
                "Container {} failed its probe, will be restarted",
                slot.spec.name
            ),
        );
        let Some(instance) = &mut slot.current else {
            return;
        };
        instance.killed_by_probe = true;
        let id = instance.id.clone();
        slot.probes = Probes::default();
        if let Some(runtime) = self.runtime.clone()
            && let Err(error) = runtime.stop_container(&id, grace).await
        {
            tracing::warn!(pod = %self.key(), %error, "stopping a container failed");
        }
        self.refresh_slot(index).await;
    }

    fn grace_of_probe(&self, index: usize) -> Duration {
        let slot = &self.slots[index];
        let probe_grace = [&slot.spec.liveness_probe, &slot.spec.startup_probe]
            .into_iter()
            .flatten()
            .find_map(|p| p.termination_grace_period_seconds);
        match probe_grace.or_else(|| {
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        }) {
            Some(seconds) => Duration::from_secs(seconds.max(0) as u64),
            None => DEFAULT_GRACE,
        }
    }

    /// A slot whose instance ended and is to run again: now, or once its
    /// back-off has passed (waiting as `CrashLoopBackOff` meanwhile). The
    /// ended instance becomes the slot's last state.
    async fn restart(&mut self, index: usize) {
        let runtime = self.runtime.clone();
        let key = self.key();
        let slot = &mut self.slots[index];
        let Some(instance) = slot.current.take() else {
            return;
        };
        slot.last_terminated = Some(terminated(&instance, runtime.as_deref()));
        slot.restarting = true;
        slot.probes = Probes::default();
        let finished = Instant::now();
        let at = slot
            .backoff
            .restart_at(instance.started, finished)
            .unwrap_or(finished);
        slot.not_before = Some(at);
        if at > finished {
            self.ctx.events.warning(
                &*self.pod,
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {}_{}({})",
                    slot.spec.name, self.name, self.namespace, self.uid
                ),
            );
            slot.waiting = Some((
                "CrashLoopBackOff".to_owned(),
                Some(format!(
                    "back-off {} restarting failed container={} pod={}_{}({})",
                    format_duration(at - finished),
                    slot.spec.name,
                    self.name,
                    self.namespace,
                    self.uid
                )),
            ));
        }
        if let Some(runtime) = &runtime
            && let Err(error) = runtime.remove_container(&instance.id).await
        {
            tracing::warn!(pod = %key, %error, "removing an exited container failed");
        }
        self.start_if_due(index).await;
    }

    /// Starts a slot's next instance unless it must wait; whether it tried.
    async fn start_if_due(&mut self, index: usize) -> bool {
        if self.slots[index]
            .not_before
            .is_some_and(|at| at > Instant::now())
        {
            return false;
        }
        self.slots[index].not_before = None;
        self.start_container(index).await;
        true
    }

    /// Creates and starts the next instance of a slot.
    async fn start_container(&mut self, index: usize) {
        let (Some(runtime), Some(sandbox)) = (self.runtime.clone(), self.sandbox.clone()) else {
            return;
        };
        let config = match self.container_config(index).await {
            Ok(config) => config,
            Err((reason, message)) => {
                self.ctx
                    .events
                    .warning(&*self.pod, "Failed", format!("Error: {message}"));
                let slot = &mut self.slots[index];
                slot.waiting = Some((reason, Some(message)));
                slot.not_before = Some(Instant::now() + self.ctx.backoff_initial);
                return;
            }
        };
        let key = self.key();
        let slot = &mut self.slots[index];
        if let Some(stale) = slot.current.take() {
            // Created but never started (the agent stopped in between).
            if let Err(error) = runtime.remove_container(&stale.id).await {
                tracing::warn!(pod = %key, %error, "removing a container failed");
            }
        }
        slot.waiting = Some(("ContainerCreating".to_owned(), None));
        let created = runtime.create_container(&sandbox, &config).await;
        let id = match created {
            Ok(id) => id,
            Err(error) => {
                tracing::info!(pod = %key, container = %slot.spec.name, %error, "creating a container failed");
                self.ctx
                    .events
                    .warning(&*self.pod, "Failed", format!("Error: {}", chain(&error)));
                let now = Instant::now();
                slot.not_before = Some(
                    slot.backoff
                        .restart_at(None, now)
                        .unwrap_or(now + self.ctx.backoff_initial),
                );
                slot.waiting = Some(("CreateContainerError".to_owned(), Some(chain(&error))));
                return;
            }
        };
        self.ctx.events.normal(
            &*self.pod,
            "Created",
            format!("Created container: {}", slot.spec.name),
        );
        slot.next_attempt = config.attempt + 1;
        if std::mem::take(&mut slot.restarting) {
            slot.restart_count += 1;
        }
        let (finished, finished_rx) = watch::channel(false);
        let log_path = PathBuf::from(&self.ctx.pods_dir)
            .join(&self.uid)
            .join("logs")
            .join(&config.log_path);
        self.ctx.logs.started(
            &self.namespace,
            &self.name,
            &slot.spec.name,
            log_path,
            finished_rx,
        );
        self.ctx.containers.started(
            &self.namespace,
            &self.name,
            &slot.spec.name,
            runtime.clone(),
            id.clone(),
        );
        match runtime.start_container(&id).await {
            Ok(()) => self.ctx.events.normal(
                &*self.pod,
                "Started",
                format!("Started container {}", slot.spec.name),
            ),
            Err(error) => {
                tracing::info!(pod = %key, container = %slot.spec.name, %error, "starting a container failed");
                self.ctx
                    .events
                    .warning(&*self.pod, "Failed", format!("Error: {}", chain(&error)));
            }
        }
        let status = match runtime.container_status(&id).await {
            Ok(status) => status,
            Err(error) => {
                tracing::warn!(pod = %self.key(), %error, "reading a new container's status failed");
                return;
            }
        };
        if is_ended(&status) {
            finished.send_replace(true);
        }
        let running = status.state == ContainerState::Running;
        slot.waiting = None;
        slot.current = Some(Instance {
            id,
            status,
            finished,
            started: running.then(Instant::now),
            killed_by_probe: false,
        });
        let init = slot.init;
        self.slots[index].probes = if running && !init {
            self.start_probes(index)
        } else {
            Probes::default()
        };
    }

    fn start_probes(&self, index: usize) -> Probes {
        let slot = &self.slots[index];
        let pod_ip = self.pod_ip.unwrap_or(self.ctx.node_ip);
        let exec = match (&self.runtime, &slot.current) {
            (Some(runtime), Some(instance)) => self.ctx.exec.for_container(runtime, &instance.id),
            _ => Arc::new(NoExec),
        };
        let spawn = |kind: ProbeKind, spec: &Option<k8s_openapi::api::core::v1::Probe>| {
            let spec = spec.as_ref()?;
            match probe::action(spec, &slot.spec, pod_ip) {
                Ok(action) => Some(probe::spawn(
                    kind,
                    action,
                    probe::Timing::from_probe(spec),
                    exec.clone(),
                )),
                Err(error) => {
                    tracing::warn!(pod = %self.key(), container = %slot.spec.name, %error, "invalid probe");
                    None
                }
            }
        };
        Probes::new(
            spawn(ProbeKind::Startup, &slot.spec.startup_probe),
            spawn(ProbeKind::Liveness, &slot.spec.liveness_probe),
            spawn(ProbeKind::Readiness, &slot.spec.readiness_probe),
        )
    }

    /// The runtime's configuration of a slot's next instance, or why it
    /// cannot be made (`CreateContainerConfigError`).
    async fn container_config(&self, index: usize) -> Result<ContainerConfig, (String, String)> {
        let slot = &self.slots[index];
        let spec = &slot.spec;
        let facts = NodeFacts {
            node_name: self.ctx.node_name.clone(),
            host_ip: self.ctx.node_ip,
            pod_ip: self.pod_ip.unwrap_or(self.ctx.node_ip),
            node_allocatable_cpu_millis: self.ctx.allocatable_cpu_millis,
            node_allocatable_memory_bytes: self.ctx.allocatable_memory_bytes,
        };
        let env = pod_config::container_env(&self.pod, spec, &facts, self.ctx.objects.as_ref())
            .await
            .map_err(|error| (error.reason().to_owned(), error.to_string()))?;
        let mounts = match &self.volumes {
            Some(volumes) => volumes
                .mounts_with_env(spec, &env)
                .map_err(|error| ("CreateContainerConfigError".to_owned(), error.to_string()))?,
            None => Vec::new(),
        };
        let image = spec.image.clone().unwrap_or_default();
        let expand = |values: &Option<Vec<String>>| -> Vec<String> {
            values
                .iter()
                .flatten()
                .map(|v| pod_config::expand(v, &env))
                .collect()
        };
        let mut config = ContainerConfig::new(&spec.name, slot.next_attempt, ImageSpec::new(image))
            .command(expand(&spec.command))
            .args(expand(&spec.args))
            .log_path(runtime::log::container_log_path(
                &spec.name,
                slot.next_attempt,
            ))
            .resources(resources(spec))
            .security(pod_config::security(&self.pod, spec));
        if let Some(dir) = &spec.working_dir {
            config = config.working_dir(dir);
        }
        for (name, value) in &env {
            config = config.env(name, value);
        }
        for mount in mounts {
            config = config.mount(mount);
        }
        for port in spec.ports.iter().flatten() {
            if let Ok(port) = u16::try_from(port.container_port) {
                config = config.port(port);
            }
        }
        Ok(config)
    }

    /// Stops every running container within `grace`, in parallel.
    async fn stop_all(&mut self, grace: Duration) {
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let stops = self.slots.iter().filter_map(|slot| {
            let instance = slot.current.as_ref()?;
            (!is_ended(&instance.status)).then(|| runtime.stop_container(&instance.id, grace))
        });
        for result in future::join_all(stops).await {
            if let Err(error) = result {
                tracing::warn!(pod = %self.key(), %error, "stopping a container failed");
            }
        }
        for index in 0..self.slots.len() {
            self.refresh_slot(index).await;
            self.slots[index].probes = Probes::default();
        }
    }

    /// Removes the pod from the runtime and from disk, then deletes the pod
    /// object (if it is still there).
    async fn cleanup(&mut self) -> Lifecycle {
        if self.delete_retry.is_some_and(|at| at > Instant::now()) {
            self.wait().await;
            return Lifecycle::Cleanup;
        }
        // What a runtime may hold of the pod that this worker did not take
        // over (the pod had finished before an agent restart or never
        // started, or its runtime did not answer): found by listing. If the
        // pod's own runtime does not answer now, it may still run the
        // pod's containers, so the pod stays until it does.
        let (unowned, known): (Vec<Arc<dyn Runtime>>, bool) = match &self.runtime {
            None => match self.resolve_runtime().await {
                Ok(runtime) => (vec![runtime], true),
                Err(_) => (self.ctx.runtimes.all().to_vec(), false),
            },
            Some(runtime) if !self.adopted => (vec![runtime.clone()], true),
            Some(_) => (Vec::new(), true),
        };
        for runtime in unowned {
            let sandboxes = match runtime.list().await {
                Ok(sandboxes) => sandboxes,
                Err(error @ RuntimeError::Unavailable { .. }) if known => {
                    tracing::warn!(pod = %self.key(), runtime = %runtime.info().name, error = %chain(&error), "the runtime does not answer; the pod is deleted once it does");
                    self.delete_retry = Some(Instant::now() + UNAVAILABLE_RETRY);
                    return Lifecycle::Cleanup;
                }
                Err(error) => {
                    tracing::warn!(pod = %self.key(), runtime = %runtime.info().name, error = %chain(&error), "listing the runtime's sandboxes failed");
                    continue;
                }
            };
            for sandbox in sandboxes.iter().filter(|s| s.metadata.uid == self.uid) {
                if let Err(error) = runtime.remove_sandbox(&sandbox.id).await {
                    tracing::warn!(pod = %self.key(), %error, "removing a sandbox failed");
                }
            }
        }
        if self.runtime.is_some() {
            self.adopted = true;
        }
        if let Some(runtime) = self.runtime.clone() {
            let sandboxes: Vec<SandboxId> = self
                .sandbox
                .take()
                .into_iter()
                .chain(std::mem::take(&mut self.stale_sandboxes))
                .collect();
            for sandbox in sandboxes {
                if let Err(error) = runtime.remove_sandbox(&sandbox).await {
                    tracing::warn!(pod = %self.key(), %error, "removing the sandbox failed");
                    self.sandbox = Some(sandbox);
                    self.delete_retry = Some(Instant::now() + API_RETRY);
                    return Lifecycle::Cleanup;
                }
            }
        }
        if !self.gone {
            match self
                .ctx
                .api
                .delete(&self.namespace, &self.name, &self.uid)
                .await
            {
                Ok(()) | Err(PodApiError::NotFound) => {}
                Err(error) => {
                    tracing::warn!(pod = %self.key(), %error, "deleting the pod failed; retrying");
                    self.delete_retry = Some(Instant::now() + API_RETRY);
                    return Lifecycle::Cleanup;
                }
            }
        }
        if let PodAddresses::Pool(pool) = &self.ctx.pod_addresses {
            pool.release(&self.uid);
        }
        self.ctx.logs.remove(&self.namespace, &self.name);
        self.ctx.containers.remove(&self.namespace, &self.name);
        let pod_dir = self.ctx.pods_dir.join(&self.uid);
        if let Err(error) = volumes::remove(&pod_dir).await {
            tracing::warn!(pod = %self.key(), %error, "removing the pod's volumes failed");
        }
        if let Err(error) = tokio::fs::remove_dir_all(&pod_dir).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(pod = %self.key(), %error, "removing the pod's directory failed");
        }
        Lifecycle::Done
    }

    /// Waits until something may have changed: the pod object, a container
    /// of this pod exited, a probe's verdict, a timer of this worker.
    async fn wait(&mut self) {
        let now = Instant::now();
        let deadline = self
            .active_deadline
            .filter(|_| matches!(self.lifecycle, Lifecycle::Init(_) | Lifecycle::Run));
        let timer = self
            .slots
            .iter()
            .filter_map(|s| s.not_before)
            .chain(self.prepare_not_before)
            .chain(deadline)
            .chain(self.report_retry)
            .chain(self.delete_retry)
            .filter(|at| *at > now)
            .min();
        let mut probes: Vec<&mut (watch::Receiver<probe::ProbeState>, Verdict)> = self
            .slots
            .iter_mut()
            .flat_map(|s| s.probes.receivers.iter_mut())
            .collect();
        let sandbox = self.sandbox.clone();
        let events = &mut self.events;
        let updates = &mut self.updates;
        {
            let timer = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => future::pending().await,
                }
            };
            let probe_changed = async {
                if probes.is_empty() {
                    return future::pending().await;
                }
                // Wake on a change of verdict only, not on every attempt.
                let changes = probes.iter_mut().map(|(receiver, reported)| {
                    Box::pin(async move {
                        let before = *reported;
                        if receiver.borrow_and_update().verdict != before {
                            return;
                        }
                        loop {
                            if receiver.changed().await.is_err() {
                                return future::pending().await;
                            }
                            if receiver.borrow_and_update().verdict != before {
                                return;
                            }
                        }
                    })
                });
                future::select_all(changes).await;
            };
            let exited = async {
                let Some(events) = events else {
                    return future::pending().await;
                };
                loop {
                    match events.recv().await {
                        Ok(RuntimeEvent::ContainerExited { sandbox_id, .. }) => {
                            if Some(&sandbox_id) == sandbox.as_ref() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        // Missed events: look at every container again.
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            return future::pending().await;
                        }
                    }
                }
            };
            tokio::select! {
                changed = updates.changed() => {
                    if changed.is_err() {
                        // The manager dropped the sender: the agent stops,
                        // and the pod stays as it is.
                        future::pending::<()>().await;
                    }
                }
                () = exited => {}
                () = probe_changed => {}
                () = timer => {}
            }
        }
        let latest = self.updates.borrow_and_update().clone();
        match latest {
            Some(pod) => self.pod = pod,
            None => self.gone = true,
        }
    }

    /// Reports the pod's status if it changed since the last report.
    async fn report(&mut self) {
        if self.gone || self.frozen {
            return;
        }
        if self.runtime.is_some() && !self.adopted {
            // The runtime did not answer when asked what it runs of the
            // pod (containerd down): the status the API holds stays until
            // it does, rather than one that forgets running containers.
            return;
        }
        for slot in &mut self.slots {
            for (receiver, reported) in &mut slot.probes.receivers {
                *reported = receiver.borrow().verdict;
            }
        }
        let facts = self.facts();
        let status = pod_status::pod_status(&self.pod, &facts, Timestamp::now());
        let value = match serde_json::to_value(&status) {
            Ok(value) => value,
            Err(_) => return,
        };
        if self.reported.as_ref() == Some(&strip_times(&value)) && self.report_retry.is_none() {
            return;
        }
        match self
            .ctx
            .api
            .patch_status(&self.namespace, &self.name, &status)
            .await
        {
            Ok(()) => {
                self.reported = Some(strip_times(&value));
                self.report_retry = None;
            }
            Err(PodApiError::NotFound) => {
                self.report_retry = None;
            }
            Err(error) => {
                tracing::warn!(pod = %self.key(), %error, "reporting the pod's status failed; retrying");
                self.report_retry = Some(Instant::now() + API_RETRY);
            }
        }
    }

    fn facts(&self) -> PodFacts {
        let runtime_name = self.runtime.as_ref().map(|r| r.info().name.clone());
        let mut init_containers = Vec::new();
        let mut containers = Vec::new();
        let mut initializing = false;
        for slot in &self.slots {
            let image = slot.spec.image.clone().unwrap_or_default();
            let container_id = slot.current.as_ref().map(|i| {
                format!(
                    "{}://{}",
                    runtime_name.as_deref().unwrap_or("unknown"),
                    i.id.as_str()
                )
            });
            let state = if let Some(instance) = &slot.current {
                match instance.status.state {
                    ContainerState::Running => State::Running {
                        started_at: instance
                            .status
                            .started_at
                            .unwrap_or(instance.status.created_at),
                    },
                    ContainerState::Exited | ContainerState::Unknown => {
                        State::Terminated(terminated(instance, self.runtime.as_deref()))
                    }
                    ContainerState::Created => State::Waiting {
                        reason: "ContainerCreating".to_owned(),
                        message: None,
                    },
                }
            } else if let Some((reason, message)) = slot.waiting.as_ref().or(self.blocked.as_ref())
            {
                State::Waiting {
                    reason: reason.clone(),
                    message: message.clone(),
                }
            } else {
                State::Waiting {
                    reason: if !slot.init && initializing {
                        "PodInitializing".to_owned()
                    } else {
                        "ContainerCreating".to_owned()
                    },
                    message: None,
                }
            };
            let running = matches!(state, State::Running { .. });
            if slot.init && !matches!(&state, State::Terminated(t) if t.exit_code == 0) {
                initializing = true;
            }
            let facts = ContainerFacts {
                name: slot.spec.name.clone(),
                image: image.clone(),
                image_id: self.images.get(&image).cloned(),
                container_id,
                state,
                last_terminated: slot.last_terminated.clone(),
                restart_count: slot.restart_count,
                ready: running && slot.probes.ready(),
                started: running && slot.probes.started(),
            };
            if slot.init {
                init_containers.push(facts);
            } else {
                containers.push(facts);
            }
        }
        PodFacts {
            host_ip: self.ctx.node_ip,
            pod_ip: self.pod_ip,
            start_time: self.start_time,
            init_containers,
            containers,
            sandbox_ready: self.sandbox.is_some() && !matches!(self.lifecycle, Lifecycle::Finished),
            failure: self.failure.clone(),
        }
    }
}

/// A container's `imagePullPolicy`, with Kubernetes' default: `Always` for
/// `:latest` or no tag, `IfNotPresent` otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    fn of(image: &str, policy: Option<&str>) -> Self {
        match policy {
            Some("Always") => Self::Always,
            Some("IfNotPresent") => Self::IfNotPresent,
            Some("Never") => Self::Never,
            _ => {
                let name = image.split('@').next().unwrap_or_default();
                let digest = image.contains('@');
                let tag = name.rsplit_once(':').filter(|(_, tag)| !tag.contains('/'));
                match tag {
                    _ if digest => Self::IfNotPresent,
                    Some((_, "latest")) | None => Self::Always,
                    Some(_) => Self::IfNotPresent,
                }
            }
        }
    }
}

/// Why preparing a pod failed, and when to try again.
struct Blocked {
    reason: String,
    message: Option<String>,
    retry: Retry,
}

enum Retry {
    /// After the pod's preparation back-off.
    BackOff,
    /// Every [`SLOW_RETRY`]: what is missing (a RuntimeClass, a runtime)
    /// seldom appears.
    Slowly,
    /// Every [`UNAVAILABLE_RETRY`]: the runtime does not answer now.
    Soon,
}

impl Blocked {
    fn runtime(error: RuntimeError) -> Self {
        let retry = match error {
            RuntimeError::Unavailable { .. } => Retry::Soon,
            _ => Retry::BackOff,
        };
        Self {
            reason: "ContainerCreating".to_owned(),
            message: Some(chain(&error)),
            retry,
        }
    }
}
fn is_ended(status: &ContainerStatus) -> bool {
    matches!(
        status.state,
        ContainerState::Exited | ContainerState::Unknown
    )
}

fn terminated(instance: &Instance, runtime: Option<&dyn Runtime>) -> Terminated {
    let status = &instance.status;
    let exit_code = status.exit_code.unwrap_or(runtime::KILLED_EXIT_CODE);
    let reason = if instance.killed_by_probe {
        Some(runtime::reason::ERROR.to_owned())
    } else {
        status
            .reason
            .clone()
            .or_else(|| Some(runtime::reason::for_exit_code(exit_code).to_owned()))
    };
    Terminated {
        exit_code,
        reason,
        message: status.message.clone(),
        started_at: status.started_at,
        finished_at: status.finished_at,
        container_id: Some(format!(
            "{}://{}",
            runtime.map(|r| r.info().name.as_str()).unwrap_or("unknown"),
            instance.id.as_str()
        )),
    }
}

/// The runtime's resource limits from the container's `resources.limits`.
fn resources(container: &Container) -> Resources {
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    let limit = |name: &str| {
        limits
            .and_then(|l| l.get(name))
            .and_then(|q| ParsedQuantity::parse(&q.0).ok())
    };
    Resources {
        memory_limit_bytes: limit("memory").and_then(|q| u64::try_from(q.value()).ok()),
        cpu_limit_millis: limit("cpu").and_then(|q| u64::try_from(q.milli_value()).ok()),
    }
}

/// `repository:tag` → `repository` (a port's colon is kept).
fn strip_tag(reference: &str) -> &str {
    match reference.rfind(':') {
        Some(colon) if !reference[colon..].contains('/') => &reference[..colon],
        _ => reference,
    }
}

/// The restart count the pod's status already shows for a container.
fn restart_count_of(pod: &Pod, name: &str, init: bool) -> i32 {
    let status = pod.status.as_ref();
    let statuses = if init {
        status.and_then(|s| s.init_container_statuses.as_ref())
    } else {
        status.and_then(|s| s.container_statuses.as_ref())
    };
    statuses
        .and_then(|s| s.iter().find(|c| c.name == name))
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

/// A status without its timestamps that change on every computation, for
/// change detection.
fn strip_times(value: &serde_json::Value) -> serde_json::Value {
    let mut value = value.clone();
    if let Some(conditions) = value
        .get_mut("conditions")
        .and_then(serde_json::Value::as_array_mut)
    {
        for condition in conditions {
            if let Some(condition) = condition.as_object_mut() {
                condition.remove("lastTransitionTime");
            }
        }
    }
    value
}

/// Go's duration format for whole seconds and minutes, as in the kubelet's
/// back-off message: `10s`, `2m40s`, `5m0s`.
fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        format!("{}m{}s", seconds / 60, seconds % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_default_as_kubernetes_does() {
        use PullPolicy::*;
        for (image, policy, expect) in [
            ("r:5000/app:v1", None, IfNotPresent),
            ("r:5000/app:latest", None, Always),
            ("r:5000/app", None, Always),
            ("app", None, Always),
            ("r:5000/app@sha256:00", None, IfNotPresent),
            ("r:5000/app:v1", Some("Always"), Always),
            ("r:5000/app:latest", Some("Never"), Never),
            ("r:5000/app", Some("IfNotPresent"), IfNotPresent),
        ] {
            assert_eq!(PullPolicy::of(image, policy), expect, "{image} {policy:?}");
        }
    }
}
