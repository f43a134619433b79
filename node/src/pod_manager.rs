//! The pods bound to this node: one watch of the API (`spec.nodeName=<me>`)
//! feeds one [`PodWorker`] per pod uid. After an agent restart, what the
//! runtimes still hold is adopted by the workers of the pods it belongs to
//! (their addresses kept), and sandboxes of pods no longer bound here are
//! removed once the first list has shown which pods those are.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::pod_worker::{POD_IP_ANNOTATION, PodAddresses, PodWorker, WorkerContext};

/// A running worker.
struct Handle {
    updates: watch::Sender<Option<Arc<Pod>>>,
    task: JoinHandle<()>,
}

/// Runs the pods bound to this node until `shutdown` turns true. Workers
/// are then dropped where they are: the pods' containers keep running in
/// runtimes that outlive the agent, and are adopted at the next start.
pub async fn run(
    ctx: Arc<WorkerContext>,
    client: kube::Client,
    mut shutdown: watch::Receiver<bool>,
) {
    ctx.inventory.take(&ctx.runtimes).await;
    claim_addresses(&ctx);
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut events = watcher::watcher(pods, config).boxed();
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut listing: Option<HashSet<String>> = None;
    let mut swept = false;
    loop {
        let event = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(uid) = done_rx.recv() => {
                if workers.get(&uid).is_some_and(|h| h.task.is_finished()) {
                    workers.remove(&uid);
                }
                continue;
            }
            event = events.next() => event,
        };
        let Some(event) = event else {
            break;
        };
        match event {
            Ok(Event::Init) => listing = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) => {
                if let (Some(listed), Some(uid)) = (&mut listing, pod.metadata.uid.clone()) {
                    listed.insert(uid);
                }
                dispatch(&ctx, &mut workers, &done_tx, pod);
            }
            Ok(Event::InitDone) => {
                let listed = listing.take().unwrap_or_default();
                // Pods deleted while the watch was down.
                for (uid, handle) in &workers {
                    if !listed.contains(uid) {
                        handle.updates.send_replace(None);
                    }
                }
                if !swept {
                    sweep_orphans(&ctx, &listed).await;
                    swept = true;
                }
            }
            Ok(Event::Apply(pod)) => dispatch(&ctx, &mut workers, &done_tx, pod),
            Ok(Event::Delete(pod)) => {
                if let Some(handle) = pod.metadata.uid.as_ref().and_then(|uid| workers.get(uid)) {
                    handle.updates.send_replace(None);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "watching this node's pods failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
    for (_, handle) in workers {
        handle.task.abort();
    }
}

/// Hands a pod to its worker, starting one for a pod seen for the first time.
fn dispatch(
    ctx: &Arc<WorkerContext>,
    workers: &mut HashMap<String, Handle>,
    done: &mpsc::UnboundedSender<String>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let pod = Arc::new(pod);
    if let Some(handle) = workers.get(&uid)
        && !handle.task.is_finished()
    {
        handle.updates.send_replace(Some(pod));
        return;
    }
    let (updates, receiver) = watch::channel(Some(pod.clone()));
    let worker = PodWorker::new(ctx.clone(), pod, receiver);
    let done = done.clone();
    let finished_uid = uid.clone();
    let task = tokio::spawn(async move {
        worker.run().await;
        let _ = done.send(finished_uid);
    });
    workers.insert(uid, Handle { updates, task });
}

/// Before any worker starts: gives the pods whose sandboxes survived a
/// restart the addresses they had.
fn claim_addresses(ctx: &WorkerContext) {
    let PodAddresses::Pool(pool) = &ctx.pod_addresses else {
        return;
    };
    for sandbox in ctx.inventory.sandboxes() {
        if let Some(ip) = sandbox
            .annotations
            .get(POD_IP_ANNOTATION)
            .and_then(|ip| ip.parse().ok())
        {
            pool.claim(&sandbox.metadata.uid, ip);
        }
    }
}

/// Removes sandboxes of pods that are not bound to this node any more.
async fn sweep_orphans(ctx: &WorkerContext, bound: &HashSet<String>) {
    for runtime in ctx.runtimes.all() {
        let sandboxes = match runtime.list().await {
            Ok(sandboxes) => sandboxes,
            Err(error) => {
                tracing::warn!(runtime = %runtime.info().name, %error, "listing the runtime's sandboxes failed");
                continue;
            }
        };
        for sandbox in sandboxes {
            if bound.contains(&sandbox.metadata.uid) {
                continue;
            }
            tracing::info!(
                pod = %format!("{}/{}", sandbox.metadata.namespace, sandbox.metadata.name),
                uid = %sandbox.metadata.uid,
                "removing the sandbox of a pod no longer on this node"
            );
            if let Err(error) = runtime.remove_sandbox(&sandbox.id).await {
                tracing::warn!(%error, "removing an orphaned sandbox failed");
            }
            if let PodAddresses::Pool(pool) = &ctx.pod_addresses {
                pool.release(&sandbox.metadata.uid);
            }
            let pod_dir = ctx.pods_dir.join(&sandbox.metadata.uid);
            let _ = tokio::fs::remove_dir_all(pod_dir).await;
        }
    }
}
