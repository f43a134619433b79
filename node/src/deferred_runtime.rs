//! A runtime whose backend did not answer when the agent started
//! (containerd down or still starting): [`DeferredRuntime`] stands in for
//! it, keeps trying to open it, and from then on forwards every call.
//!
//! Until the runtime opens, every call fails with
//! [`RuntimeError::Unavailable`], `status` included, so the agent reports
//! the `RuntimeUnhealthy` node condition and leaves out the runtime's node
//! labels (new pods for it go elsewhere), and pod workers wait before they
//! take over what the runtime may still run (they must not start a pod's
//! containers a second time). Once it opens, the runtime adopts what it
//! ran before, as after any agent restart.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use skiff_sdk::runtime::{
    ContainerConfig, ContainerId, ContainerStats, ContainerStatus, ExecProcess, ExecRequest,
    ImageInfo, ImageSpec, PullOptions, PulledImage, Runtime, RuntimeError, RuntimeEvent,
    RuntimeInfo, SandboxConfig, SandboxId, SandboxStatus,
};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// The first pause between attempts to open the runtime; it doubles up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between attempts.
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// Events buffered for slow subscribers (as the runtimes themselves do).
const EVENT_CAPACITY: usize = 1024;

/// A runtime opened in the background; see the module documentation.
pub struct DeferredRuntime {
    /// What the runtime will say of itself once open (its version is not
    /// known before).
    expected: RuntimeInfo,
    /// Why calls fail until it opens, e.g. "containerd at PATH has not
    /// answered since the agent started".
    waiting: String,
    opened: Arc<OnceLock<Arc<dyn Runtime>>>,
    events: broadcast::Sender<RuntimeEvent>,
    task: JoinHandle<()>,
}

impl DeferredRuntime {
    /// Starts trying `open` (at once, then with pauses doubling from 0.5 s
    /// to 5 s) until it returns a runtime. `expected` is the runtime's
    /// info as far as it is known before (its name and handlers must be
    /// those the runtime will report); `waiting` says in errors what is
    /// awaited. Must be called inside a tokio runtime.
    pub fn spawn<F, Fut>(expected: RuntimeInfo, waiting: impl Into<String>, mut open: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Arc<dyn Runtime>, RuntimeError>> + Send,
    {
        let opened: Arc<OnceLock<Arc<dyn Runtime>>> = Arc::default();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let name = expected.name.clone();
        let task = tokio::spawn({
            let opened = opened.clone();
            let events = events.clone();
            async move {
                let mut pause = FIRST_PAUSE;
                let runtime = loop {
                    match open().await {
                        Ok(runtime) => break runtime,
                        Err(error) => {
                            tracing::debug!(runtime = %name, error = %skiff_sdk::error_chain(&error), "the runtime does not open yet");
                        }
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                };
                // Subscribe before anyone can call the runtime through
                // this wrapper, so that no event of theirs is missed.
                let mut source = runtime.events();
                let _ = opened.set(runtime.clone());
                tracing::info!(runtime = %name, version = %runtime.info().version, "the runtime answers now");
                forward(&mut source, &events, &name).await;
            }
        });
        Self {
            expected,
            waiting: waiting.into(),
            opened,
            events,
            task,
        }
    }

    /// The runtime, once it has opened.
    fn runtime(&self) -> Result<&Arc<dyn Runtime>, RuntimeError> {
        self.opened.get().ok_or_else(|| RuntimeError::Unavailable {
            source: self.waiting.clone().into(),
        })
    }
}

impl Drop for DeferredRuntime {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Passes the runtime's events on to the wrapper's subscribers until the
/// runtime closes its channel.
async fn forward(
    source: &mut broadcast::Receiver<RuntimeEvent>,
    events: &broadcast::Sender<RuntimeEvent>,
    name: &str,
) {
    loop {
        match source.recv().await {
            Ok(event) => {
                // No subscriber is not an error: events are for whoever
                // listens now.
                let _ = events.send(event);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(runtime = %name, missed, "forwarding the runtime's events fell behind");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[async_trait]
impl Runtime for DeferredRuntime {
    fn info(&self) -> &RuntimeInfo {
        match self.opened.get() {
            Some(runtime) => runtime.info(),
            None => &self.expected,
        }
    }

    async fn pull_image(
        &self,
        image: &ImageSpec,
        options: &PullOptions,
    ) -> Result<PulledImage, RuntimeError> {
        self.runtime()?.pull_image(image, options).await
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.runtime()?.list_images().await
    }

    async fn remove_image(&self, image: &ImageSpec) -> Result<(), RuntimeError> {
        self.runtime()?.remove_image(image).await
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError> {
        self.runtime()?.run_sandbox(config).await
    }

    async fn stop_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        self.runtime()?.stop_sandbox(id).await
    }

    async fn remove_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        self.runtime()?.remove_sandbox(id).await
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        self.runtime()?.create_container(sandbox, config).await
    }

    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.runtime()?.start_container(id).await
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        self.runtime()?.stop_container(id, grace).await
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.runtime()?.remove_container(id).await
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.runtime()?.container_status(id).await
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        self.runtime()?.container_stats(id).await
    }

    async fn list(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        self.runtime()?.list().await
    }

    async fn status(&self) -> Result<(), RuntimeError> {
        self.runtime()?.status().await
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }

    async fn exec(
        &self,
        id: &ContainerId,
        request: ExecRequest,
    ) -> Result<ExecProcess, RuntimeError> {
        self.runtime()?.exec(id, request).await
    }
}
