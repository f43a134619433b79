//! The runtime trait: how the node agent runs pods, whatever runs them.
//!
//! [`Runtime`] is the CRI's RuntimeService and ImageService, trimmed to what
//! skiff's agent uses. `skiff-runtime-wasm` (wasmtime, in-process) and
//! `skiff-runtime-oci` (containerd) implement it, and both pass the same
//! conformance suite (`conformance`, behind the cargo feature of that
//! name). The agent holds runtimes as `Arc<dyn Runtime>`, one per RuntimeClass
//! handler set, and drives pods only through it.
//!
//! # Objects and lifecycle
//!
//! A *sandbox* is one attempt of one pod: its network, its log directory and
//! the containers in it. A *container* runs one image's process in a sandbox.
//!
//! ```text
//! sandbox:    run_sandbox ─► Ready ─stop_sandbox─► NotReady ─remove_sandbox─► (gone)
//! container:  create_container ─► Created ─start─► Running ─(exit, stop)─► Exited ─remove─► (gone)
//! ```
//!
//! A container is never restarted: the agent creates a new one with the next
//! `attempt`, as the kubelet does.
//!
//! # Semantics every runtime keeps (as CRI)
//!
//! - Stopping or removing what is already stopped, removed or was never
//!   there succeeds; reading it ([`Runtime::container_status`],
//!   [`Runtime::container_stats`]) fails with [`RuntimeError::NotFound`].
//! - Bad configuration is refused with [`RuntimeError::InvalidArgument`]
//!   before anything changes ([`SandboxConfig::validate`],
//!   [`ContainerConfig::validate`]).
//! - A guest that misbehaves (traps, exits non-zero, exceeds its memory)
//!   ends its own container with a [`reason`]; it never fails a call for
//!   other containers, nor the agent.
//! - A container's stdout and stderr go to
//!   `sandbox.log_directory / container.log_path` in the CRI log format
//!   ([`log`]). When a container is reported `Exited` (status, list or
//!   event), its log holds all its output. Log files belong to the agent:
//!   runtimes never delete them.
//! - What a runtime created survives the runtime: a runtime opened again
//!   over the same state (after an agent restart) lists the same sandboxes
//!   and containers, with the exit codes of those that ended. Containers
//!   whose process was lost with the runtime are listed as
//!   [`ContainerState::Unknown`].
//! - Times are wall-clock [`Timestamp`](jiff::Timestamp)s of the node.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

#[cfg(feature = "conformance")]
pub mod conformance;
mod container;
mod error;
mod event;
mod exec;
mod id;
mod image;
mod info;
pub mod log;
mod sandbox;
mod validate;

pub use container::{
    ContainerConfig, ContainerState, ContainerStats, ContainerStatus, KILLED_EXIT_CODE, Mount,
    Resources, Security, reason,
};
pub use error::{BoxError, ObjectKind, RuntimeError};
pub use event::RuntimeEvent;
pub use exec::{ExecExit, ExecOutput, ExecProcess, ExecRequest, ExecStdin, TerminalSize};
pub use id::{ContainerId, SandboxId};
pub use image::{ImageInfo, ImageSpec, PullOptions, PulledImage, RegistryAuth};
pub use info::{Feature, RuntimeInfo};
pub use sandbox::{SandboxConfig, SandboxMetadata, SandboxNetwork, SandboxState, SandboxStatus};

/// A runtime: runs pod sandboxes and their containers from pulled images.
///
/// Every method may be called concurrently; calls about different objects
/// must not wait on each other longer than the runtime's bookkeeping takes
/// (a stop's grace period holds only that stop).
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Static facts: name, version, served handlers, features. The name and
    /// handlers are fixed for the runtime's life; a runtime opened after
    /// the agent started (its backend did not answer before) reports its
    /// version once it has opened.
    fn info(&self) -> &RuntimeInfo;

    /// Fetches an image into the runtime's store (CRI `PullImage`), so that
    /// containers can be created from it. Pulling an image already present
    /// succeeds, resolving the tag again. The Wasm runtime also compiles the
    /// module here, so a module that does not compile fails the pull with
    /// [`RuntimeError::InvalidImage`].
    async fn pull_image(
        &self,
        image: &ImageSpec,
        options: &PullOptions,
    ) -> Result<PulledImage, RuntimeError>;

    /// The images in the runtime's store (CRI `ListImages`), for the Node's
    /// `status.images`.
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError>;

    /// Removes an image, by reference or digest, from the store (CRI
    /// `RemoveImage`). An image that is not there is not an error. The agent
    /// only removes images no container uses.
    async fn remove_image(&self, image: &ImageSpec) -> Result<(), RuntimeError>;

    /// Creates a pod attempt's sandbox, `Ready` for containers (CRI
    /// `RunPodSandbox`). Fails with [`RuntimeError::AlreadyExists`] if the
    /// runtime holds one for the same pod UID and attempt, and with
    /// [`RuntimeError::InvalidArgument`] if [`SandboxConfig::validate`] fails.
    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError>;

    /// Stops a sandbox (CRI `StopPodSandbox`): kills its containers that
    /// still run, without grace (the agent stops each container with its own
    /// grace period first, as the kubelet does), releases what it holds
    /// (listeners, network attachments) and marks it `NotReady`. Its
    /// containers stay listed as `Exited`. Succeeds for a stopped or unknown
    /// sandbox.
    async fn stop_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError>;

    /// Removes a sandbox and all its containers, stopping it first if needed
    /// (CRI `RemovePodSandbox`). Succeeds for an unknown sandbox.
    async fn remove_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError>;

    /// Creates a container in a `Ready` sandbox, from a pulled image, without
    /// starting it (CRI `CreateContainer`). The Wasm runtime links the guest
    /// here, so a missing import fails with
    /// [`RuntimeError::UnsupportedImport`].
    ///
    /// Errors: `NotFound` for an unknown sandbox or an image not pulled,
    /// `InvalidState` for a sandbox not `Ready`, `AlreadyExists` for a
    /// container of the same name and attempt in the sandbox,
    /// `InvalidArgument` if [`ContainerConfig::validate`] fails,
    /// `InvalidImage` for an image this runtime cannot run.
    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError>;

    /// Starts a `Created` container's process (CRI `StartContainer`) and
    /// returns once it runs; by then its status is `Running`, or already
    /// `Exited` if it ended at once. Fails with `InvalidState` for a
    /// container that is not `Created`, `NotFound` for an unknown one.
    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError>;

    /// Stops a running container (CRI `StopContainer`): asks it to stop
    /// (SIGTERM for a process; a Wasm guest is interrupted), kills it if it
    /// still runs once `grace` has passed (exit code [`KILLED_EXIT_CODE`]),
    /// and returns when it has exited. A zero `grace` kills at once. A
    /// container that is not running (created, exited) or unknown is left as
    /// it is, and the call succeeds.
    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes a container, killing it first if it runs (CRI
    /// `RemoveContainer`). Its log file stays. Succeeds for an unknown
    /// container.
    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError>;

    /// A container's status (CRI `ContainerStatus`); `NotFound` for an
    /// unknown container.
    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError>;

    /// A sample of a running container's resource use (CRI
    /// `ContainerStats`); `NotFound` for an unknown container, `InvalidState`
    /// for one that does not run.
    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError>;

    /// Every sandbox the runtime holds with its containers (CRI
    /// `ListPodSandbox` and `ListContainers` at once), sorted by creation.
    /// The agent adopts what it finds here after a restart, and relists when
    /// it may have missed events.
    async fn list(&self) -> Result<Vec<SandboxStatus>, RuntimeError>;

    /// Whether the runtime can take work now (CRI `Status`, RuntimeReady):
    /// `Unavailable` when its backend does not answer (containerd down).
    /// The agent checks it with every lease renewal and, while it fails,
    /// reports the `RuntimeUnhealthy` node condition and drops the
    /// runtime's node labels so that new pods for it go elsewhere.
    async fn status(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Subscribes to the runtime's events (CRI `GetContainerEvents`); the
    /// receiver sees the events sent after this call.
    fn events(&self) -> broadcast::Receiver<RuntimeEvent>;

    /// Starts `request.command` in a running container (CRI `Exec`) and
    /// returns once it runs, with its streams and its exit (see
    /// [`ExecProcess`] for the contract), for `kubectl exec` and exec probes.
    ///
    /// Errors: `NotFound` for an unknown container, `InvalidState` for one
    /// that does not run, `InvalidArgument` if [`ExecRequest::validate`]
    /// fails, [`RuntimeError::Unsupported`] from a runtime that cannot run
    /// commands in its containers (the default; runtimes that can declare
    /// [`Feature::Exec`]).
    async fn exec(
        &self,
        id: &ContainerId,
        request: ExecRequest,
    ) -> Result<ExecProcess, RuntimeError> {
        let _ = (id, request);
        Err(RuntimeError::Unsupported {
            operation: "exec",
            reason: format!("the {} runtime does not support exec", self.info().name),
        })
    }
}

// Compile-time checks: the agent holds runtimes as `Arc<dyn Runtime>` and
// moves statuses, events and errors across tasks.
const _: fn() = || {
    fn shared_across_tasks<T: Send + Sync + 'static>() {}
    shared_across_tasks::<std::sync::Arc<dyn Runtime>>();
    shared_across_tasks::<RuntimeError>();
    shared_across_tasks::<RuntimeEvent>();
    shared_across_tasks::<SandboxStatus>();
    fn moved_across_tasks<T: Send + 'static>() {}
    moved_across_tasks::<ExecProcess>();
};
