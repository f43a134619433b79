//! One watch on the benchmark's pods (kube-rs `watcher`, as a client would
//! follow them), timestamping when each pod was first seen bound to the
//! node (`spec.nodeName`, the scheduler's binding), first seen with a status
//! from the agent (`status.hostIP`), and first seen `Running` with a pod IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// When a pod reached each stage, as the watch delivered it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stages {
    pub bound: Option<Instant>,
    pub reported: Option<Instant>,
    pub running: Option<Instant>,
    pub ip: Option<IpAddr>,
    /// First seen `Succeeded` or `Failed`, and which.
    pub finished: Option<Instant>,
    pub succeeded: bool,
}

#[derive(Default)]
struct State {
    pods: HashMap<String, Stages>,
    waiters: HashMap<String, oneshot::Sender<Stages>>,
    finish_waiters: HashMap<String, oneshot::Sender<Stages>>,
}

/// The watch and what it has seen.
pub struct Observer {
    state: Arc<Mutex<State>>,
    running: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Observer {
    /// Watches the pods of `namespace`.
    pub fn start(client: kube::Client, namespace: &str) -> Observer {
        let state = Arc::new(Mutex::new(State::default()));
        let (count, running) = watch::channel(0);
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let seen = state.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher::watcher(pods, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                let now = Instant::now();
                let pod = match event {
                    Ok(Event::Apply(pod) | Event::InitApply(pod)) => pod,
                    Ok(_) => continue,
                    Err(error) => {
                        eprintln!("watching pods: {error} (the watch goes on)");
                        continue;
                    }
                };
                observe(&seen, &count, &pod, now);
            }
        });
        Observer {
            state,
            running,
            task,
        }
    }

    /// What `wait` needs to learn when pod `name` runs; call before
    /// creating it.
    pub fn expect(&self, name: &str) -> oneshot::Receiver<Stages> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.state).waiters.insert(name.to_owned(), sender);
        receiver
    }

    /// What `wait` needs to learn when pod `name` has run to its end
    /// (`Succeeded` or `Failed`); call before creating it.
    pub fn expect_finished(&self, name: &str) -> oneshot::Receiver<Stages> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.state)
            .finish_waiters
            .insert(name.to_owned(), sender);
        receiver
    }

    /// Waits (at most `timeout`) until at least `count` pods were seen
    /// Running; false if the time ran out.
    pub async fn wait_running(&self, count: usize, timeout: Duration) -> bool {
        let mut running = self.running.clone();
        tokio::time::timeout(timeout, running.wait_for(|seen| *seen >= count))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many pods were seen Running.
    pub fn running_count(&self) -> usize {
        *self.running.borrow()
    }

    /// Name and IP of every pod seen Running.
    pub fn running_pods(&self) -> Vec<(String, IpAddr)> {
        lock(&self.state)
            .pods
            .iter()
            .filter_map(|(name, stages)| Some((name.clone(), stages.ip?)))
            .collect()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn observe(state: &Mutex<State>, count: &watch::Sender<usize>, pod: &Pod, now: Instant) {
    let Some(name) = pod.metadata.name.clone() else {
        return;
    };
    let status = pod.status.as_ref();
    let mut state = lock(state);
    let stages = state.pods.entry(name.clone()).or_default();
    if stages.bound.is_none() && pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
        stages.bound = Some(now);
    }
    if stages.reported.is_none() && status.is_some_and(|s| s.host_ip.is_some()) {
        stages.reported = Some(now);
    }
    let ip = status
        .filter(|s| s.phase.as_deref() == Some("Running"))
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let phase = status.and_then(|s| s.phase.as_deref());
    if stages.finished.is_none() && matches!(phase, Some("Succeeded" | "Failed")) {
        stages.finished = Some(now);
        stages.succeeded = phase == Some("Succeeded");
        let stages = *stages;
        if let Some(waiter) = state.finish_waiters.remove(&name) {
            let _ = waiter.send(stages);
        }
    }
    let stages = state.pods.entry(name.clone()).or_default();
    if stages.running.is_none()
        && let Some(ip) = ip
    {
        stages.running = Some(now);
        stages.ip = Some(ip);
        let stages = *stages;
        if let Some(waiter) = state.waiters.remove(&name) {
            let _ = waiter.send(stages);
        }
        count.send_modify(|running| *running += 1);
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
