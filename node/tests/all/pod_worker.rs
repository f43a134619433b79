//! The pod worker's lifecycle against [`FakeRuntime`] in paused time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use skiff_node::pod_worker::PodWorker;
use skiff_node::probe::ExecProbes;

use crate::support::{
    FakeExec, FakeRuntime, Harness, ScriptedExec, context, pod, pod_left_running,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn container_state(status: &PodStatus) -> serde_json::Value {
    serde_json::to_value(&status.container_statuses.as_ref().unwrap()[0]).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_crashing_container_restarts_with_doubling_back_off() {
    let harness = Harness::start(pod(json!({
        "runtimeClassName": "wasmtime",
        "containers": [{"name": "c", "image": "app", "command": ["exit", "1", "0"]}]
    })));
    harness.advance(secs(700)).await;
    let starts: Vec<u64> = harness
        .runtime
        .calls_starting("start c")
        .iter()
        .map(|(at, _)| at.as_secs())
        .collect();
    // Immediate first restart, then 10 s doubling to the 300 s cap.
    let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [0, 10, 20, 40, 80, 160, 300], "starts at {starts:?}");

    let status = harness.api.last();
    let container = container_state(&status);
    assert_eq!(
        container["state"]["waiting"]["reason"], "CrashLoopBackOff",
        "{container}"
    );
    assert_eq!(container["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(container["restartCount"], 7);
    assert_eq!(status.phase.as_deref(), Some("Running"));
}

#[tokio::test(start_paused = true)]
async fn a_container_that_completes_under_never_leaves_the_pod_succeeded() {
    let harness = Harness::start(pod(json!({
        "runtimeClassName": "wasmtime",
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "app", "command": ["exit", "0", "2"]}]
    })));
    harness.advance(secs(5)).await;
    let status = harness.api.last();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        container_state(&status)["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(harness.runtime.calls_starting("start c").len(), 1);
    assert_eq!(harness.runtime.calls_starting("stop_sandbox").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_failures_but_not_success() {
    let harness = Harness::start(pod(json!({
        "runtimeClassName": "wasmtime",
        "restartPolicy": "OnFailure",
        "containers": [{"name": "c", "image": "app", "command": ["exit", "0", "1"]}]
    })));
    harness.advance(secs(30)).await;
    assert_eq!(harness.runtime.calls_starting("start c").len(), 1);
    assert_eq!(harness.api.last().phase.as_deref(), Some("Succeeded"));
}

#[tokio::test(start_paused = true)]
async fn running_pods_report_running_and_ready_with_their_addresses() {
    let harness = Harness::start(pod(json!({
        "runtimeClassName": "wasmtime",
        "containers": [{"name": "c", "image": "app"}]
    })));
    harness.advance(secs(1)).await;
    let status = harness.api.last();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.2"));
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.2"));
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    let container = container_state(&harness.api.last());
    assert_eq!(container["ready"], true);
    assert_eq!(container["imageID"], "app@sha256:0000");
    assert!(
        container["containerID"]
            .as_str()
            .unwrap()
            .starts_with("fake://")
    );
}

fn deleting(mut pod: Pod, grace: i64) -> Arc<Pod> {
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    pod.metadata.deletion_grace_period_seconds = Some(grace);
    Arc::new(pod)
}

#[tokio::test(start_paused = true)]
async fn deletion_stops_within_the_grace_period_then_deletes_the_pod() {
    let spec = pod(json!({
        "runtimeClassName": "wasmtime",
        "containers": [
            {"name": "polite", "image": "app"},
            {"name": "stubborn", "image": "app", "command": ["ignore-stop"]}
        ]
    }));
    let harness = Harness::start(spec.clone());
    harness.advance(secs(1)).await;
    harness.updates.send_replace(Some(deleting(spec, 5)));
    harness.advance(secs(3)).await;
    // The stubborn container still runs: the pod object stays.
    assert!(harness.api.deletes.lock().unwrap().is_empty());
    assert_eq!(harness.runtime.calls_starting("stop polite 5").len(), 1);
    assert_eq!(harness.runtime.calls_starting("stop stubborn 5").len(), 1);
    harness.advance(secs(5)).await;
    let deletes = harness.api.deletes.lock().unwrap().clone();
    assert_eq!(deletes.len(), 1, "deleted once");
    // Deleted only after the grace period killed the stubborn container.
    assert!(deletes[0] >= secs(6), "{deletes:?}");
    assert_eq!(harness.runtime.sandbox_count(), 0);
    assert!(harness.task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn a_pod_gone_from_the_api_is_killed_at_once_and_not_deleted_again() {
    let spec = pod(json!({
        "runtimeClassName": "wasmtime",
        "containers": [{"name": "c", "image": "app", "command": ["ignore-stop"]}]
    }));
    let harness = Harness::start(spec);
    harness.advance(secs(1)).await;
    harness.updates.send_replace(None);
    harness.advance(secs(1)).await;
    assert_eq!(harness.runtime.calls_starting("stop c 0").len(), 1);
    assert!(harness.api.deletes.lock().unwrap().is_empty());
    assert_eq!(harness.runtime.sandbox_count(), 0);
    assert!(harness.task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn the_active_deadline_fails_the_pod() {
    let harness = Harness::start(pod(json!({
        "runtimeClassName": "wasmtime",
        "activeDeadlineSeconds": 30,
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "c", "image": "app"}]
    })));
    harness.advance(secs(29)).await;
    assert_eq!(harness.api.last().phase.as_deref(), Some("Running"));
    harness.advance(secs(3)).await;
    let status = harness.api.last();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(harness.runtime.calls_starting("stop c 2").len(), 1);
    // Nothing restarts afterwards.
    harness.advance(secs(60)).await;
    assert_eq!(harness.runtime.calls_starting("start c").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_in_order_before_the_containers() {
    let harness = Harness::start(pod(json!({
        "runtimeClassName": "wasmtime",
        "initContainers": [
            {"name": "first", "image": "app", "command": ["exit", "0", "2"]},
            {"name": "second", "image": "app", "command": ["exit", "0", "3"]}
        ],
        "containers": [{"name": "main", "image": "app"}]
    })));
    harness.advance(secs(1)).await;
    let status = harness.api.last();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(
        container_state(&status)["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    harness.advance(secs(10)).await;
    let starts: Vec<(u64, String)> = harness
        .runtime
        .calls_starting("start")
        .into_iter()
        .map(|(at, call)| (at.as_secs(), call))
        .collect();
    assert_eq!(
        starts,
        [
            (0, "start first".to_owned()),
            (2, "start second".to_owned()),
            (5, "start main".to_owned())
        ]
    );
    assert_eq!(harness.api.last().phase.as_deref(), Some("Running"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let exec = Arc::new(ScriptedExec {
        healthy: Mutex::new(2),
    });
    let harness = Harness::start_with(
        pod(json!({
            "runtimeClassName": "wasmtime",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "app", "livenessProbe": {
                "exec": {"command": ["check"]}, "periodSeconds": 5, "failureThreshold": 2
            }}]
        })),
        FakeRuntime::new(),
        ExecProbes::With(exec),
    );
    // Two successes (t=0, 5), failures at 10 and 15: killed at 15.
    harness.advance(secs(17)).await;
    let starts = harness.runtime.calls_starting("start c");
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[1].0.as_secs(), 15);
    let container = container_state(&harness.api.last());
    assert_eq!(container["restartCount"], 1);
    assert_eq!(container["lastState"]["terminated"]["reason"], "Error");
}

#[tokio::test(start_paused = true)]
async fn a_readiness_probe_drives_the_ready_condition() {
    let exec = Arc::new(ScriptedExec {
        healthy: Mutex::new(3),
    });
    let harness = Harness::start_with(
        pod(json!({
            "runtimeClassName": "wasmtime",
            "containers": [{"name": "c", "image": "app", "readinessProbe": {
                "exec": {"command": ["check"]}, "periodSeconds": 5, "failureThreshold": 1
            }}]
        })),
        FakeRuntime::new(),
        ExecProbes::With(exec),
    );
    harness.advance(secs(1)).await;
    assert_eq!(container_state(&harness.api.last())["ready"], true);
    harness.advance(secs(15)).await;
    assert_eq!(container_state(&harness.api.last())["ready"], false);
    // Not ready is not a restart.
    assert_eq!(harness.runtime.calls_starting("start c").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_adopts_running_containers_without_duplicates() {
    // The second agent sees the pod with the status the first reported.
    let (first, seen) = pod_left_running().await;
    let reported = seen.status.clone().unwrap();
    let runtime = first.runtime.clone();
    let api = Arc::new(crate::support::FakeApi::default());
    let ctx = context(
        &runtime,
        &api,
        ExecProbes::With(Arc::new(skiff_node::probe::NoExec)),
        first.dir.path().to_owned(),
    );
    // As the pod manager does before starting workers.
    ctx.inventory.take(&ctx.runtimes).await;
    let (_updates, receiver) = tokio::sync::watch::channel(Some(Arc::new(seen.clone())));
    let task = tokio::spawn(PodWorker::new(ctx, Arc::new(seen), receiver).run());
    tokio::time::sleep(secs(1)).await;
    assert_eq!(
        runtime.calls_starting("run_sandbox").len(),
        1,
        "no second sandbox"
    );
    assert_eq!(
        runtime.calls_starting("start c").len(),
        1,
        "no second container"
    );
    let now = api.last();
    assert_eq!(
        container_state(&now)["containerID"],
        container_state(&reported)["containerID"]
    );
    assert_eq!(now.phase.as_deref(), Some("Running"));
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn containers_lost_with_the_runtime_are_started_again_in_the_same_sandbox() {
    let spec = pod(json!({
        "runtimeClassName": "wasmtime",
        "containers": [{"name": "c", "image": "app"}]
    }));
    let first = Harness::start(spec.clone());
    first.advance(secs(1)).await;
    first.task.abort();
    first.runtime.lose_processes();

    let runtime = first.runtime.clone();
    let api = Arc::new(crate::support::FakeApi::default());
    let ctx = context(
        &runtime,
        &api,
        ExecProbes::With(Arc::new(skiff_node::probe::NoExec)),
        first.dir.path().to_owned(),
    );
    // No inventory taken (as for a runtime that did not answer when the
    // agent started): the worker lists the runtime itself.
    let (_updates, receiver) = tokio::sync::watch::channel(Some(Arc::new(spec.clone())));
    let task = tokio::spawn(PodWorker::new(ctx, Arc::new(spec), receiver).run());
    tokio::time::sleep(secs(1)).await;
    assert_eq!(runtime.calls_starting("run_sandbox").len(), 1);
    let creates: Vec<String> = runtime
        .calls_starting("create c")
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(creates, ["create c 0", "create c 1"]);
    let container = container_state(&api.last());
    assert_eq!(container["restartCount"], 1);
    assert!(container["state"]["running"].is_object(), "{container}");
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_pod_for_a_runtime_this_node_lacks_says_so() {
    let harness = Harness::start(pod(json!({
        "runtimeClassName": "runc",
        "containers": [{"name": "c", "image": "busybox"}]
    })));
    harness.advance(secs(1)).await;
    let status = harness.api.last();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let waiting = &container_state(&status)["state"]["waiting"];
    assert_eq!(waiting["reason"], "RuntimeUnavailable");
    assert!(
        waiting["message"]
            .as_str()
            .unwrap()
            .contains("handler \"runc\""),
        "{waiting}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_pull_backs_off() {
    let harness = Harness::start(pod(json!({
        "runtimeClassName": "wasmtime",
        "containers": [{"name": "c", "image": "missing/app"}]
    })));
    harness.advance(secs(60)).await;
    let pulls = harness.runtime.calls_starting("pull");
    assert!((3..=6).contains(&pulls.len()), "{pulls:?}");
    let waiting = &container_state(&harness.api.last())["state"]["waiting"];
    assert_eq!(waiting["reason"], "ImagePullBackOff", "{waiting}");
}

#[tokio::test(start_paused = true)]
async fn exec_probes_run_through_the_containers_runtime() {
    // Ready while the probe command exits 0 ...
    let ready = Harness::start_with(
        pod(json!({
            "runtimeClassName": "wasmtime",
            "containers": [{"name": "c", "image": "app", "readinessProbe": {
                "exec": {"command": ["exit", "0"]}, "periodSeconds": 5
            }}]
        })),
        FakeRuntime::new().with_exec(FakeExec::Scripted),
        ExecProbes::ThroughRuntime,
    );
    ready.advance(secs(1)).await;
    assert_eq!(container_state(&ready.api.last())["ready"], true);
    assert_eq!(ready.runtime.calls_starting("exec exit 0").len(), 1);

    // ... restarted when a liveness command exits non-zero ...
    let failing = Harness::start_with(
        pod(json!({
            "runtimeClassName": "wasmtime",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "app", "livenessProbe": {
                "exec": {"command": ["exit", "1", "unhealthy"]},
                "periodSeconds": 5, "failureThreshold": 1
            }}]
        })),
        FakeRuntime::new().with_exec(FakeExec::Scripted),
        ExecProbes::ThroughRuntime,
    );
    failing.advance(secs(3)).await;
    let starts = failing.runtime.calls_starting("start c");
    assert_eq!(starts.len(), 2, "{starts:?}");

    // ... and never ready in a runtime that cannot exec.
    let wasm = Harness::start_with(
        pod(json!({
            "runtimeClassName": "wasmtime",
            "containers": [{"name": "c", "image": "app", "readinessProbe": {
                "exec": {"command": ["true"]}, "periodSeconds": 5
            }}]
        })),
        FakeRuntime::new(),
        ExecProbes::ThroughRuntime,
    );
    wasm.advance(secs(11)).await;
    assert_eq!(container_state(&wasm.api.last())["ready"], false);
    assert_eq!(wasm.runtime.calls_starting("exec true").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_worker_tells_the_node_api_where_each_container_runs() {
    let spec = pod(json!({
        "runtimeClassName": "wasmtime",
        "containers": [{"name": "c", "image": "app"}]
    }));
    let harness = Harness::start(spec.clone());
    harness.advance(secs(1)).await;
    let found = harness.ctx.containers.lookup("default", "p", "c").unwrap();
    let reported = container_state(&harness.api.last())["containerID"].clone();
    assert!(
        reported
            .as_str()
            .unwrap()
            .ends_with(&format!("://{}", found.id)),
        "{reported} {found:?}"
    );
    assert_eq!(
        harness
            .ctx
            .containers
            .lookup("default", "p", "other")
            .unwrap_err()
            .to_string(),
        "container \"other\" not found in pod \"p\""
    );

    // Deleting the pod forgets it.
    harness.updates.send_replace(Some(deleting(spec, 0)));
    harness.advance(secs(5)).await;
    assert!(harness.ctx.containers.lookup("default", "p", "c").is_err());
}
