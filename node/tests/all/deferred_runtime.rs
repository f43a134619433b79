//! A runtime that answers only after the agent started ([`DeferredRuntime`]
//! over [`FakeRuntime`]), in paused time: calls fail `Unavailable` until it
//! opens, then go through; pod workers neither overwrite the status of
//! pods it may still run nor delete them before it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use skiff_node::deferred_runtime::DeferredRuntime;
use skiff_node::pod_worker::{PodWorker, WorkerContext};
use skiff_node::probe::{ExecProbes, NoExec};
use skiff_sdk::runtime::{Runtime, RuntimeError, RuntimeEvent, RuntimeInfo};
use tokio::sync::watch;

use crate::support::{FakeApi, FakeRuntime, Harness, context_with, pod_left_running};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `runtime` behind a [`DeferredRuntime`] that opens once `up` is set.
fn deferred(runtime: &FakeRuntime, up: &Arc<AtomicBool>) -> DeferredRuntime {
    let runtime = runtime.clone();
    let up = up.clone();
    DeferredRuntime::spawn(
        RuntimeInfo::new("fake", "unknown").handler("wasmtime"),
        "the fake runtime has not answered yet",
        move || {
            let answer: Result<Arc<dyn Runtime>, RuntimeError> = if up.load(Ordering::SeqCst) {
                Ok(Arc::new(runtime.clone()))
            } else {
                Err(RuntimeError::Unavailable {
                    source: "down".into(),
                })
            };
            async move { answer }
        },
    )
}

fn container_id(status: &PodStatus) -> String {
    let container = &status.container_statuses.as_ref().unwrap()[0];
    container.container_id.clone().unwrap()
}

/// A worker context over `first`'s runtime behind a [`DeferredRuntime`]
/// that opens once `up` is set, reporting to a fresh API.
fn deferred_context(first: &Harness, up: &Arc<AtomicBool>) -> (Arc<FakeApi>, Arc<WorkerContext>) {
    let api = Arc::new(FakeApi::default());
    let ctx = context_with(
        vec![Arc::new(deferred(&first.runtime, up))],
        &api,
        ExecProbes::With(Arc::new(NoExec)),
        first.dir.path().to_owned(),
    );
    (api, ctx)
}

#[tokio::test(start_paused = true)]
async fn calls_fail_unavailable_until_the_runtime_opens_then_go_through() {
    let runtime = FakeRuntime::new();
    let up = Arc::new(AtomicBool::new(false));
    let deferred = deferred(&runtime, &up);
    let mut events = deferred.events();
    tokio::time::sleep(secs(30)).await;
    assert_eq!(deferred.info().version, "unknown");
    assert!(matches!(
        deferred.status().await,
        Err(RuntimeError::Unavailable { .. })
    ));
    let error = deferred.list().await.unwrap_err();
    assert!(
        skiff_sdk::error_chain(&error).contains("the fake runtime has not answered yet"),
        "{error:?}"
    );

    up.store(true, Ordering::SeqCst);
    // The pause between attempts is at most 5 s.
    tokio::time::sleep(secs(6)).await;
    assert_eq!(deferred.info().version, "1.0");
    deferred.status().await.unwrap();
    assert!(deferred.list().await.unwrap().is_empty());
    // Calls reach the runtime, and its events reach subscribers of the
    // wrapper, also those that subscribed before it opened.
    let id = runtime.running_container("c").await;
    deferred.stop_container(&id, secs(0)).await.unwrap();
    let event = tokio::time::timeout(secs(5), events.recv())
        .await
        .expect("an exit event")
        .unwrap();
    assert!(
        matches!(&event, RuntimeEvent::ContainerExited { container_id, .. } if *container_id == id),
        "{event:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_its_runtime_may_run_keeps_its_status_until_the_runtime_answers() {
    let (first, seen) = pod_left_running().await;
    let reported = seen.status.clone().unwrap();
    let up = Arc::new(AtomicBool::new(false));
    let (api, ctx) = deferred_context(&first, &up);
    ctx.inventory.take(&ctx.runtimes).await;
    let (_updates, receiver) = watch::channel(Some(Arc::new(seen.clone())));
    let task = tokio::spawn(PodWorker::new(ctx, Arc::new(seen), receiver).run());

    tokio::time::sleep(secs(60)).await;
    assert!(
        api.statuses.lock().unwrap().is_empty(),
        "no status while the runtime does not answer"
    );
    up.store(true, Ordering::SeqCst);
    tokio::time::sleep(secs(10)).await;
    let now = api.last();
    assert_eq!(now.phase.as_deref(), Some("Running"));
    assert_eq!(container_id(&now), container_id(&reported));
    assert_eq!(first.runtime.calls_starting("run_sandbox").len(), 1);
    assert_eq!(first.runtime.calls_starting("start c").len(), 1);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_pod_deleted_while_its_runtime_is_down_goes_once_the_runtime_answers() {
    let (first, seen) = pod_left_running().await;
    let up = Arc::new(AtomicBool::new(false));
    let (api, ctx) = deferred_context(&first, &up);
    let mut deleted = seen.clone();
    deleted.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    deleted.metadata.deletion_grace_period_seconds = Some(30);
    let (_updates, receiver) = watch::channel(Some(Arc::new(deleted.clone())));
    let task = tokio::spawn(PodWorker::new(ctx, Arc::new(deleted), receiver).run());

    tokio::time::sleep(secs(60)).await;
    assert!(api.deletes.lock().unwrap().is_empty(), "not deleted yet");
    assert_eq!(first.runtime.sandbox_count(), 1);
    up.store(true, Ordering::SeqCst);
    tokio::time::sleep(secs(10)).await;
    assert_eq!(api.deletes.lock().unwrap().len(), 1);
    assert_eq!(first.runtime.sandbox_count(), 0, "the sandbox is removed");
    task.abort();
}
