//! The runtime conformance suite: the behaviour every [`Runtime`] owes the
//! agent, written once as scenarios and run by each runtime's tests.
//!
//! A runtime's test crate implements [`Fixture`] (its runtime, a way to open
//! it again over the same state, and its images for the abstract
//! [`Workload`]s) and instantiates every scenario as a `#[tokio::test]` with
//! [`runtime_conformance!`](crate::runtime_conformance):
//!
//! ```ignore
//! skiff_sdk::runtime_conformance!(WasmFixture::new());
//! // or, for tests that need a real component:
//! skiff_sdk::runtime_conformance!(#[ignore = "needs containerd"] fixture = OciFixture::new());
//! ```
//!
//! Scenarios panic with a message saying what the runtime did wrong. Their
//! timing checks are lower bounds or generous upper bounds (a safety net of
//! [`PATIENCE`]), never performance assertions. Each scenario removes what
//! it created when it passes; the fixture removes the rest when dropped.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::sync::broadcast;

use super::log::{Stream, Tag, parse_line, rotated_path};
use super::{
    ContainerConfig, ContainerId, ContainerState, ContainerStatus, ExecRequest, Feature, ImageSpec,
    KILLED_EXIT_CODE, Mount, ObjectKind, PullOptions, Runtime, RuntimeError, RuntimeEvent,
    SandboxConfig, SandboxId, SandboxMetadata, SandboxState, SandboxStatus, reason,
};

/// How long the suite waits for anything (an exit, an event, a stop beyond
/// its grace) before it fails: a safety net against hangs, not a measure.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// What a runtime's tests supply to the suite. Every scenario gets a fixture
/// of its own, and scenarios run concurrently: fixtures may share a backend
/// (one containerd), since each scenario only looks at its own sandbox.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The runtime under test (after [`reopen`](Self::reopen), the new one).
    fn runtime(&self) -> Arc<dyn Runtime>;

    /// Closes the current runtime and opens a new one over the same state, as
    /// an agent restart does, and returns it. The suite drops its handles to
    /// the old runtime before calling this.
    async fn reopen(&self) -> Arc<dyn Runtime>;

    /// The RuntimeClass handler to put in sandbox configurations.
    fn handler(&self) -> &str;

    /// The image, command and arguments that make this runtime run
    /// `workload`; the suite pulls the image with
    /// [`pull_options`](Self::pull_options) before creating the container.
    fn workload(&self, workload: &Workload) -> WorkloadSpec;

    /// How to pull the workloads' images (a local registry over plain HTTP).
    fn pull_options(&self) -> PullOptions {
        PullOptions::default()
    }

    /// A directory private to this fixture, removed when it is dropped,
    /// which the runtime can reach by the same path: the suite puts sandbox
    /// log directories and mount sources under it.
    fn scratch_dir(&self) -> &Path;

    /// The command that runs `exec` in a running container of this
    /// fixture's images, for a runtime with [`Feature::Exec`]; `None` (the
    /// default) for a runtime without.
    fn exec_command(&self, exec: &ExecWorkload) -> Option<Vec<String>> {
        let _ = exec;
        None
    }
}

/// A command the suite runs with `exec` in a running container, which each
/// fixture that can exec maps to its own argv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecWorkload {
    /// Copies stdin to stdout until stdin ends, then writes `stderr` to
    /// stderr (no newline added) and exits with `code`.
    Echo {
        /// What to write to stderr once stdin has ended.
        stderr: String,
        /// The exit code.
        code: i32,
    },
}

/// A program the suite runs, which each fixture maps to its own images (a
/// Wasm guest for runtime-wasm, a busybox shell command for runtime-oci).
/// Unless said otherwise, a workload exits with code 0 and prints nothing.
///
/// Under runc a workload runs as PID 1, which ignores SIGTERM unless it
/// installs a handler: `Sleep` needs one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Exits with this code at once.
    Exit(i32),
    /// Writes `stdout` to stdout, then `stderr` to stderr, byte for byte
    /// (no newline added).
    Print {
        /// What to write to stdout.
        stdout: String,
        /// What to write to stderr.
        stderr: String,
    },
    /// Prints each of these arguments and a newline, in order; the fixture
    /// passes them in the container's command or arguments.
    PrintArgs(Vec<String>),
    /// Prints the value of this environment variable and a newline; exits
    /// with 1 if it is not set.
    PrintEnv(String),
    /// Writes `content` to the file at `path` in the container (created or
    /// truncated); exits non-zero if the write fails.
    WriteFile {
        /// The file's absolute path in the container.
        path: String,
        /// What to write.
        content: String,
    },
    /// Prints the content of the file at `path` in the container, byte for
    /// byte; exits non-zero if it cannot be read.
    ReadFile {
        /// The file's absolute path in the container.
        path: String,
    },
    /// Prints `ready` and a newline, then waits until stopped and exits
    /// promptly when asked to stop.
    Sleep,
    /// Arranges to ignore the request to stop (SIGTERM), then prints `ready`
    /// and a newline, then runs until killed.
    IgnoreStop,
}

/// How a fixture runs a [`Workload`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// The image, pulled by the suite.
    pub image: ImageSpec,
    /// The container's command.
    pub command: Vec<String>,
    /// The container's arguments.
    pub args: Vec<String>,
}

/// Generates one `#[tokio::test]` per scenario of
/// [`runtime::conformance`](crate::runtime::conformance) in the calling
/// crate, which needs `tokio` with its `macros` and `rt-multi-thread`
/// features.
///
/// The argument is an expression of a future that yields the fixture, e.g.
/// `WasmFixture::new()` for an `async fn new() -> WasmFixture`. Attributes
/// for every generated test go before `fixture =`.
#[macro_export]
macro_rules! runtime_conformance {
    ($(#[$attr:meta])* fixture = $fixture:expr $(,)?) => {
        $crate::runtime_conformance!(@tests [$(#[$attr])*] $fixture;
            exit_code_zero_is_completed,
            nonzero_exit_code_is_an_error,
            stdout_and_stderr_are_logged_in_cri_format,
            args_are_passed_in_order,
            env_is_passed_and_the_last_value_wins,
            read_write_mount_writes_through_to_the_host,
            read_only_mount_refuses_writes,
            stop_ends_a_sleeping_container_within_its_grace,
            stop_kills_a_container_that_ignores_it_at_the_deadline,
            remove_after_create_without_start,
            stop_and_remove_are_idempotent,
            unknown_ids_are_not_found,
            invalid_configs_are_refused_without_effect,
            names_are_unique_per_attempt,
            stop_sandbox_stops_its_containers,
            pull_reports_a_digest_usable_as_reference,
            state_survives_reopen,
            exec_runs_commands_in_running_containers,
        );
    };
    ($fixture:expr $(,)?) => {
        $crate::runtime_conformance!(fixture = $fixture);
    };
    (@tests $attrs:tt $fixture:expr; $($scenario:ident,)*) => {$(
        $crate::runtime_conformance!(@one $attrs $fixture; $scenario);
    )*};
    (@one [$(#[$attr:meta])*] $fixture:expr; $scenario:ident) => {
        $(#[$attr])*
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $scenario() {
            let fixture = $fixture.await;
            $crate::runtime::conformance::$scenario(&fixture).await;
        }
    };
}

// ---------------------------------------------------------------------------
// Scenarios

/// A container that exits with 0 is `Exited` with reason `Completed`, its
/// times in order, and an exit event that agrees with its status.
pub async fn exit_code_zero_is_completed(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "exit-zero").await;
    let config = pod.container("exit", &Workload::Exit(0)).await;
    let (status, event) = pod.run_to_exit(&config).await;
    check_exited(&pod, &config, &status, &event, 0, reason::COMPLETED);
    pod.remove().await;
}

/// A container that exits with 3 is `Exited` with exit code 3 and reason
/// `Error`.
pub async fn nonzero_exit_code_is_an_error(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "exit-three").await;
    let config = pod.container("exit", &Workload::Exit(3)).await;
    let (status, event) = pod.run_to_exit(&config).await;
    check_exited(&pod, &config, &status, &event, 3, reason::ERROR);
    pod.remove().await;
}

/// stdout and stderr reach the container's log file in the CRI format, with
/// their stream tags, `F` for ended lines, a final `P` for output that ends
/// without a newline, and wall-clock timestamps.
pub async fn stdout_and_stderr_are_logged_in_cri_format(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "logs").await;
    let stdout = "out one\nout two\nno newline at the end";
    let stderr = "err one\n";
    let workload = Workload::Print {
        stdout: stdout.into(),
        stderr: stderr.into(),
    };
    let config = pod.container("print", &workload).await;
    let (status, event) = pod.run_to_exit(&config).await;
    check_exited(&pod, &config, &status, &event, 0, reason::COMPLETED);

    let log = Log::read(&status.log_path);
    assert_eq!(log.text(Stream::Stdout), stdout, "stdout in the log");
    assert_eq!(log.text(Stream::Stderr), stderr, "stderr in the log");
    let stdout_records: Vec<_> = log.records_of(Stream::Stdout).collect();
    assert_eq!(
        stdout_records
            .first()
            .map(|r| (r.tag, r.content.as_slice())),
        Some((Tag::Full, &b"out one"[..])),
        "the first stdout record is the whole first line, tagged F: {log:?}"
    );
    assert_eq!(
        stdout_records.last().map(|r| (r.tag, r.content.as_slice())),
        Some((Tag::Partial, &b"no newline at the end"[..])),
        "output that ends without a newline ends with a P record: {log:?}"
    );
    let earliest = status.created_at - Duration::from_secs(60);
    let latest = Timestamp::now() + Duration::from_secs(60);
    for record in &log.records {
        assert!(
            earliest <= record.time && record.time <= latest,
            "log timestamp {} is not the wall-clock time of the output (container created at {})",
            record.time,
            status.created_at
        );
    }
    pod.remove().await;
}

/// Arguments reach the process in order, including empty ones, spaces and
/// non-ASCII text.
pub async fn args_are_passed_in_order(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "args").await;
    let args: Vec<String> = ["first", "two words", "", "--flag=value", "ünïcödé"]
        .map(String::from)
        .into();
    let config = pod
        .container("args", &Workload::PrintArgs(args.clone()))
        .await;
    let (status, event) = pod.run_to_exit(&config).await;
    check_exited(&pod, &config, &status, &event, 0, reason::COMPLETED);
    let expected: String = args.iter().map(|a| format!("{a}\n")).collect();
    assert_eq!(Log::read(&status.log_path).text(Stream::Stdout), expected);
    pod.remove().await;
}

/// Environment variables reach the process; of a repeated name, the last
/// value wins.
pub async fn env_is_passed_and_the_last_value_wins(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "env").await;
    let name = "SKIFF_CONFORMANCE";
    let value = "a value with spaces = and equals";
    let config = pod
        .container("env", &Workload::PrintEnv(name.into()))
        .await
        .env(name, "overridden")
        .env("SKIFF_OTHER", "other")
        .env(name, value);
    let (status, event) = pod.run_to_exit(&config).await;
    check_exited(&pod, &config, &status, &event, 0, reason::COMPLETED);
    assert_eq!(
        Log::read(&status.log_path).text(Stream::Stdout),
        format!("{value}\n")
    );
    pod.remove().await;
}

/// A file written through a read-write mount is on the host afterwards.
pub async fn read_write_mount_writes_through_to_the_host(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "rw-mount").await;
    let host_dir = pod.host_dir("rw");
    let content = "written by the container\n";
    let workload = Workload::WriteFile {
        path: "/data/out.txt".into(),
        content: content.into(),
    };
    let config = pod
        .container("writer", &workload)
        .await
        .mount(Mount::read_write(&host_dir, "/data"));
    let (status, event) = pod.run_to_exit(&config).await;
    check_exited(&pod, &config, &status, &event, 0, reason::COMPLETED);
    let written = std::fs::read_to_string(host_dir.join("out.txt"))
        .expect("the file written in the container is on the host");
    assert_eq!(written, content);
    pod.remove().await;
}

/// A read-only mount can be read, but a write through it fails the
/// container and leaves the host file unchanged.
pub async fn read_only_mount_refuses_writes(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "ro-mount").await;
    let host_dir = pod.host_dir("ro");
    let original = "original content\n";
    let host_file = host_dir.join("file.txt");
    std::fs::write(&host_file, original).expect("write the mount's file");
    let mount = Mount::read_only(&host_dir, "/data");

    let reader = pod
        .container(
            "reader",
            &Workload::ReadFile {
                path: "/data/file.txt".into(),
            },
        )
        .await
        .mount(mount.clone());
    let (status, event) = pod.run_to_exit(&reader).await;
    check_exited(&pod, &reader, &status, &event, 0, reason::COMPLETED);
    assert_eq!(
        Log::read(&status.log_path).text(Stream::Stdout),
        original,
        "the read-only mount is readable"
    );

    let writer = pod
        .container(
            "writer",
            &Workload::WriteFile {
                path: "/data/file.txt".into(),
                content: "changed\n".into(),
            },
        )
        .await
        .mount(mount);
    let (status, _) = pod.run_to_exit(&writer).await;
    assert_ne!(
        status.exit_code,
        Some(0),
        "a write through a read-only mount must fail the container: {status:?}"
    );
    assert_eq!(status.reason.as_deref(), Some(reason::ERROR), "{status:?}");
    let after = std::fs::read_to_string(&host_file).expect("read the mount's file");
    assert_eq!(after, original, "the host file is unchanged");
    pod.remove().await;
}

/// A running container reports monotonic stats; a graceful stop ends a
/// container that heeds it before its grace period is over.
pub async fn stop_ends_a_sleeping_container_within_its_grace(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "stop-sleep").await;
    let config = pod.container("sleep", &Workload::Sleep).await;
    let mut events = pod.runtime.events();
    let id = pod.start(&config).await;
    let status = pod.wait_until_ready(&id).await;
    let started_at = status
        .started_at
        .expect("a running container has started_at");

    let first = pod.runtime.container_stats(&id).await.expect("stats");
    let second = pod.runtime.container_stats(&id).await.expect("stats");
    assert!(
        first.timestamp >= started_at && second.timestamp >= first.timestamp,
        "stats are sampled after the start, in order: {first:?} {second:?} (started {started_at})"
    );
    assert!(
        second.cpu_usage_nanos >= first.cpu_usage_nanos,
        "cumulative CPU time decreased: {first:?} then {second:?}"
    );

    let grace = Duration::from_secs(30);
    let begun = Instant::now();
    within(
        "stop_container",
        grace + PATIENCE,
        pod.runtime.stop_container(&id, grace),
    )
    .await
    .expect("stop a sleeping container");
    let elapsed = begun.elapsed();
    assert!(
        elapsed < grace,
        "a container that heeds the stop must exit before the {grace:?} deadline, took {elapsed:?}"
    );
    let status = pod.status(&id).await;
    assert_eq!(
        status.state,
        ContainerState::Exited,
        "stop_container returns after the exit: {status:?}"
    );
    let event = wait_for_exit(&mut events, &id).await;
    check_event(&pod, &status, &event);
    assert!(
        matches!(
            pod.runtime.container_stats(&id).await,
            Err(RuntimeError::InvalidState { .. })
        ),
        "stats of an exited container are InvalidState"
    );
    pod.remove().await;
}

/// A container that ignores the graceful stop is killed at the deadline,
/// not before, with exit code 137.
pub async fn stop_kills_a_container_that_ignores_it_at_the_deadline(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "stop-kill").await;
    let config = pod.container("stubborn", &Workload::IgnoreStop).await;
    let mut events = pod.runtime.events();
    let id = pod.start(&config).await;
    pod.wait_until_ready(&id).await;

    let grace = Duration::from_secs(2);
    let begun = Instant::now();
    within(
        "stop_container",
        grace + PATIENCE,
        pod.runtime.stop_container(&id, grace),
    )
    .await
    .expect("stop a container that ignores stops");
    let elapsed = begun.elapsed();
    assert!(
        elapsed >= grace,
        "killed after {elapsed:?}, before its {grace:?} grace period was over"
    );
    let status = pod.status(&id).await;
    assert_eq!(status.state, ContainerState::Exited, "{status:?}");
    assert_eq!(
        status.exit_code,
        Some(KILLED_EXIT_CODE),
        "a killed container exits with 137: {status:?}"
    );
    let event = wait_for_exit(&mut events, &id).await;
    check_event(&pod, &status, &event);
    pod.remove().await;
}

/// A container created and never started is `Created`, listed, and can be
/// removed; its name is then free again.
pub async fn remove_after_create_without_start(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "remove-created").await;
    let config = pod.container("idle", &Workload::Exit(0)).await;
    let id = pod.create(&config).await;
    let status = pod.status(&id).await;
    assert_eq!(status.state, ContainerState::Created, "{status:?}");
    assert_eq!(
        (status.started_at, status.finished_at, status.exit_code),
        (None, None, None),
        "a created container has not run: {status:?}"
    );
    check_echoes_config(&pod, &config, &status);
    let listed = pod.listed().await;
    assert_eq!(listed.state, SandboxState::Ready);
    assert_eq!(
        listed.containers,
        vec![status],
        "list shows the created container"
    );

    pod.runtime
        .remove_container(&id)
        .await
        .expect("remove a created container");
    expect_not_found(
        pod.runtime.container_status(&id).await,
        ObjectKind::Container,
    );
    assert!(
        pod.listed().await.containers.is_empty(),
        "a removed container is not listed"
    );
    let again = pod.create(&config).await;
    assert_ne!(again, id, "a new container gets a new ID");
    pod.remove().await;
}

/// Stop and remove succeed again and again, and for IDs never seen; stop
/// leaves a created container as it is.
pub async fn stop_and_remove_are_idempotent(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "idempotent").await;
    let config = pod.container("exit", &Workload::Exit(0)).await;
    let mut events = pod.runtime.events();
    let id = pod.create(&config).await;
    let grace = Duration::from_secs(1);

    pod.runtime
        .stop_container(&id, grace)
        .await
        .expect("stop a created container");
    let status = pod.status(&id).await;
    assert_eq!(
        status.state,
        ContainerState::Created,
        "stop leaves a created container as it is: {status:?}"
    );

    pod.runtime.start_container(&id).await.expect("start");
    wait_for_exit(&mut events, &id).await;
    let exited = pod.status(&id).await;
    for _ in 0..2 {
        pod.runtime
            .stop_container(&id, grace)
            .await
            .expect("stop an exited container");
    }
    assert_eq!(
        pod.status(&id).await,
        exited,
        "stop changes nothing on an exited container"
    );
    for _ in 0..2 {
        pod.runtime
            .remove_container(&id)
            .await
            .expect("remove a container, then remove it again");
    }
    expect_not_found(
        pod.runtime.container_status(&id).await,
        ObjectKind::Container,
    );

    let unknown = ContainerId::new("skiff-conformance-no-such-container");
    pod.runtime
        .stop_container(&unknown, grace)
        .await
        .expect("stop an unknown container");
    pod.runtime
        .remove_container(&unknown)
        .await
        .expect("remove an unknown container");

    for _ in 0..2 {
        pod.runtime
            .stop_sandbox(&pod.id)
            .await
            .expect("stop a sandbox, then stop it again");
    }
    for _ in 0..2 {
        pod.runtime
            .remove_sandbox(&pod.id)
            .await
            .expect("remove a sandbox, then remove it again");
    }
    let unknown = SandboxId::new("skiff-conformance-no-such-sandbox");
    pod.runtime
        .stop_sandbox(&unknown)
        .await
        .expect("stop an unknown sandbox");
    pod.runtime
        .remove_sandbox(&unknown)
        .await
        .expect("remove an unknown sandbox");
    pod.runtime
        .remove_image(&ImageSpec::new("skiff.invalid/never-pulled:0"))
        .await
        .expect("remove an image that is not there");
}

/// Calls that must read an object fail with `NotFound` naming its kind.
pub async fn unknown_ids_are_not_found(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "not-found").await;
    let runtime = &pod.runtime;
    let unknown = ContainerId::new("skiff-conformance-no-such-container");
    expect_not_found(
        runtime.container_status(&unknown).await,
        ObjectKind::Container,
    );
    expect_not_found(
        runtime.container_stats(&unknown).await,
        ObjectKind::Container,
    );
    expect_not_found(
        runtime.start_container(&unknown).await,
        ObjectKind::Container,
    );

    let config = pod.container("app", &Workload::Exit(0)).await;
    let no_sandbox = SandboxId::new("skiff-conformance-no-such-sandbox");
    expect_not_found(
        runtime.create_container(&no_sandbox, &config).await,
        ObjectKind::Sandbox,
    );
    let not_pulled = ContainerConfig {
        image: ImageSpec::new("skiff.invalid/never-pulled:0"),
        ..config
    };
    expect_not_found(
        runtime.create_container(&pod.id, &not_pulled).await,
        ObjectKind::Image,
    );
    assert!(pod.listed().await.containers.is_empty());
    pod.remove().await;
}

/// Invalid sandbox and container configurations fail with
/// `InvalidArgument`, and nothing is created.
pub async fn invalid_configs_are_refused_without_effect(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "invalid").await;
    let before = pod.listed().await;

    let mut config = pod.config.clone();
    config.metadata.attempt += 1;
    config.runtime_handler = "skiff-conformance-no-such-handler".into();
    expect_invalid_argument(pod.runtime.run_sandbox(&config).await, "runtime_handler");
    config.runtime_handler = fixture.handler().into();
    config.log_directory = "relative/logs".into();
    expect_invalid_argument(pod.runtime.run_sandbox(&config).await, "log_directory");

    let valid = pod.container("app", &Workload::Exit(0)).await;
    let relative_mount = valid.clone().mount(Mount::read_only("relative", "/data"));
    expect_invalid_argument(
        pod.runtime.create_container(&pod.id, &relative_mount).await,
        "mounts[0].host_path",
    );
    let escaping_log = valid.log_path("../../escape.log");
    expect_invalid_argument(
        pod.runtime.create_container(&pod.id, &escaping_log).await,
        "log_path",
    );
    assert_eq!(pod.listed().await, before, "refused calls change nothing");
    let all = pod.runtime.list().await.expect("list");
    assert!(
        all.iter()
            .all(|s| s.id == pod.id || s.metadata.uid != pod.config.metadata.uid),
        "a refused sandbox is not listed: {all:?}"
    );
    pod.remove().await;
}

/// A second sandbox for the same pod attempt, or a second container of the
/// same name and attempt, is refused with `AlreadyExists` naming the holder;
/// the next attempt is accepted.
pub async fn names_are_unique_per_attempt(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "unique").await;
    match pod.runtime.run_sandbox(&pod.config).await {
        Err(RuntimeError::AlreadyExists {
            kind: ObjectKind::Sandbox,
            existing,
            ..
        }) => assert_eq!(existing, pod.id.as_str()),
        other => panic!("a second sandbox for the same attempt: {other:?}"),
    }

    let config = pod.container("app", &Workload::Exit(0)).await;
    let first = pod.create(&config).await;
    match pod.runtime.create_container(&pod.id, &config).await {
        Err(RuntimeError::AlreadyExists {
            kind: ObjectKind::Container,
            existing,
            ..
        }) => assert_eq!(existing, first.as_str()),
        other => panic!("a second container of the same name and attempt: {other:?}"),
    }
    let next = ContainerConfig::new("app", 1, config.image.clone())
        .command(config.command.clone())
        .args(config.args.clone());
    let second = pod.create(&next).await;
    let names: Vec<_> = pod
        .listed()
        .await
        .containers
        .into_iter()
        .map(|c| (c.id, c.name, c.attempt))
        .collect();
    assert_eq!(
        names,
        vec![(first, "app".into(), 0), (second, "app".into(), 1)],
        "both attempts are listed in creation order"
    );
    pod.remove().await;
}

/// Stopping a sandbox kills its running containers and makes it
/// `NotReady`; removing it removes its containers but not their logs.
pub async fn stop_sandbox_stops_its_containers(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "stop-sandbox").await;
    let done = pod.container("done", &Workload::Exit(0)).await;
    let (done, _) = pod.run_to_exit(&done).await;
    let config = pod.container("sleep", &Workload::Sleep).await;
    let sleeping = pod.start(&config).await;
    pod.wait_until_ready(&sleeping).await;

    within("stop_sandbox", PATIENCE, pod.runtime.stop_sandbox(&pod.id))
        .await
        .expect("stop the sandbox");
    let listed = pod.listed().await;
    assert_eq!(listed.state, SandboxState::NotReady, "{listed:?}");
    let states: Vec<_> = listed
        .containers
        .iter()
        .map(|c| (c.id.clone(), c.state, c.exit_code))
        .collect();
    assert_eq!(
        states,
        vec![
            (done.id.clone(), ContainerState::Exited, Some(0)),
            (
                sleeping.clone(),
                ContainerState::Exited,
                Some(KILLED_EXIT_CODE)
            ),
        ],
        "stop_sandbox kills running containers and keeps them listed"
    );
    let late = pod.container("late", &Workload::Exit(0)).await;
    assert!(
        matches!(
            pod.runtime.create_container(&pod.id, &late).await,
            Err(RuntimeError::InvalidState {
                kind: ObjectKind::Sandbox,
                ..
            })
        ),
        "no container can be created in a stopped sandbox"
    );

    pod.runtime
        .remove_sandbox(&pod.id)
        .await
        .expect("remove the sandbox");
    let all = pod.runtime.list().await.expect("list");
    assert!(
        all.iter().all(|s| s.id != pod.id),
        "a removed sandbox is not listed"
    );
    for id in [&done.id, &sleeping] {
        expect_not_found(
            pod.runtime.container_status(id).await,
            ObjectKind::Container,
        );
    }
    assert!(
        done.log_path.exists(),
        "the runtime removed a log file, which belongs to the agent"
    );
}

/// A pull yields a `sha256:` digest and size, shows in `list_images`, and
/// the digest works as the image reference of a container.
pub async fn pull_reports_a_digest_usable_as_reference(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "pull").await;
    let spec = fixture.workload(&Workload::Exit(0));
    let pulled = pod
        .runtime
        .pull_image(&spec.image, &fixture.pull_options())
        .await
        .expect("pull the workload's image");
    assert_eq!(pulled.reference, spec.image.reference);
    let hex = pulled.digest.strip_prefix("sha256:").unwrap_or_default();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "digest {:?} is not sha256:<64 hex digits>",
        pulled.digest
    );
    assert!(pulled.size > 0, "a pulled image has a size: {pulled:?}");
    let again = pod
        .runtime
        .pull_image(&spec.image, &fixture.pull_options())
        .await
        .expect("pull an image already present");
    assert_eq!(
        again.digest, pulled.digest,
        "pulling again resolves the same image"
    );

    let images = pod.runtime.list_images().await.expect("list images");
    assert!(
        images
            .iter()
            .any(|i| i.digest == pulled.digest && i.size > 0),
        "list_images shows the pulled image {}: {images:?}",
        pulled.digest
    );

    let by_digest = ContainerConfig::new("by-digest", 0, ImageSpec::new(&pulled.digest))
        .command(spec.command)
        .args(spec.args);
    let (status, event) = pod.run_to_exit(&by_digest).await;
    check_exited(&pod, &by_digest, &status, &event, 0, reason::COMPLETED);
    pod.remove().await;
}

/// A runtime opened again over the same state lists the same sandbox and
/// containers: exited ones with their exit codes, created ones still
/// created, all with the same statuses; and it can remove them.
pub async fn state_survives_reopen(fixture: &dyn Fixture) {
    let pod = Pod::run(fixture, "reopen").await;
    let exited = pod.container("exit", &Workload::Exit(3)).await;
    let (exited, _) = pod.run_to_exit(&exited).await;
    let created = pod.container("created", &Workload::Exit(0)).await;
    let created = pod.create(&created).await;
    let before = pod.listed().await;
    assert_eq!(before.containers.len(), 2, "{before:?}");

    let Pod { id, runtime, .. } = pod;
    drop(runtime);
    let runtime = within("reopen", PATIENCE, fixture.reopen()).await;

    let after = runtime.list().await.expect("list after reopen");
    let after = after
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("sandbox {id} is not listed after reopen"));
    assert_eq!(after, before, "the sandbox's status survives reopen");
    let status = runtime
        .container_status(&exited.id)
        .await
        .expect("status of an exited container after reopen");
    assert_eq!(status, exited);
    assert_eq!(status.exit_code, Some(3));
    let status = runtime
        .container_status(&created)
        .await
        .expect("status of a created container after reopen");
    assert_eq!(status.state, ContainerState::Created);

    runtime
        .remove_sandbox(&id)
        .await
        .expect("remove the sandbox after reopen");
    let all = runtime.list().await.expect("list");
    assert!(all.iter().all(|s| s.id != id), "removed after reopen");
}

// ---------------------------------------------------------------------------
// Helpers

/// `exec` in a running container, for a runtime with [`Feature::Exec`]:
/// the command gets stdin until the caller closes it, its stdout and stderr
/// come apart, its exit code is reported, and the container runs on; an
/// empty command is `InvalidArgument`, an unknown container `NotFound`, one
/// that does not run `InvalidState`. A runtime without the feature refuses
/// with `Unsupported`, and its container runs on.
pub async fn exec_runs_commands_in_running_containers(fixture: &dyn Fixture) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let pod = Pod::run(fixture, "exec").await;
    let config = pod.container("sleep", &Workload::Sleep).await;
    let id = pod.start(&config).await;
    pod.wait_until_ready(&id).await;
    let echo = ExecWorkload::Echo {
        stderr: "to stderr\n".into(),
        code: 3,
    };

    if !pod.runtime.info().features.contains(&Feature::Exec) {
        let refused = pod
            .runtime
            .exec(&id, ExecRequest::new(["true"]))
            .await
            .map(|_| ());
        assert!(
            matches!(refused, Err(RuntimeError::Unsupported { .. })),
            "a runtime without Feature::Exec refuses exec with Unsupported: {refused:?}"
        );
        assert_eq!(pod.status(&id).await.state, ContainerState::Running);
        pod.remove().await;
        return;
    }
    let command = fixture
        .exec_command(&echo)
        .expect("a fixture of a runtime with Feature::Exec maps ExecWorkload::Echo");
    let mut process = within(
        "exec",
        PATIENCE,
        pod.runtime
            .exec(&id, ExecRequest::new(command.clone()).stdin(true)),
    )
    .await
    .unwrap_or_else(|e| panic!("exec {command:?}: {}", chain(&e)));
    let mut stdin = process
        .stdin
        .take()
        .expect("an exec with stdin has a stdin writer");
    stdin
        .write_all(b"typed in\nand more\n")
        .await
        .expect("write the exec's stdin");
    stdin.shutdown().await.expect("close the exec's stdin");
    drop(stdin);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (out, err, exit) = within("the exec's end", PATIENCE, async {
        tokio::join!(
            process.stdout.read_to_end(&mut stdout),
            process.stderr.read_to_end(&mut stderr),
            process.exit,
        )
    })
    .await;
    out.expect("read the exec's stdout");
    err.expect("read the exec's stderr");
    let code = exit.unwrap_or_else(|e| panic!("the exec's exit: {}", chain(&e)));
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        "typed in\nand more\n",
        "stdin reaches the command, its stdout the caller"
    );
    assert_eq!(
        String::from_utf8_lossy(&stderr),
        "to stderr\n",
        "stderr comes apart from stdout"
    );
    assert_eq!(code, 3, "the command's exit code");
    assert_eq!(
        pod.status(&id).await.state,
        ContainerState::Running,
        "the container runs on after an exec"
    );

    expect_invalid_argument(
        pod.runtime
            .exec(&id, ExecRequest::new(Vec::<String>::new()))
            .await,
        "command",
    );
    expect_not_found(
        pod.runtime
            .exec(
                &ContainerId::new("conformance-no-such-container"),
                ExecRequest::new(command.clone()),
            )
            .await,
        ObjectKind::Container,
    );
    pod.runtime
        .stop_container(&id, Duration::ZERO)
        .await
        .expect("stop the container");
    let refused = pod.runtime.exec(&id, ExecRequest::new(command)).await;
    assert!(
        matches!(refused, Err(RuntimeError::InvalidState { .. })),
        "exec in a container that does not run is InvalidState: {:?}",
        refused.map(|_| ())
    );
    pod.remove().await;
}

/// One scenario's sandbox.
struct Pod<'f> {
    fixture: &'f dyn Fixture,
    runtime: Arc<dyn Runtime>,
    id: SandboxId,
    config: SandboxConfig,
    /// The scenario's private directory (log directory, mount sources).
    dir: PathBuf,
}

impl<'f> Pod<'f> {
    /// Runs a sandbox for `scenario` under a fresh pod UID.
    async fn run(fixture: &'f dyn Fixture, scenario: &str) -> Pod<'f> {
        let dir = fixture.scratch_dir().join(scenario);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let labels = BTreeMap::from([("skiff.dev/conformance".into(), scenario.into())]);
        let annotations = BTreeMap::from([("skiff.dev/scenario".into(), scenario.into())]);
        let config = SandboxConfig::new(
            SandboxMetadata::new("conformance", scenario, unique_uid(scenario)),
            fixture.handler(),
            dir.join("logs"),
        )
        .labels(labels)
        .annotations(annotations);
        let runtime = fixture.runtime();
        let id = runtime
            .run_sandbox(&config)
            .await
            .unwrap_or_else(|e| panic!("run_sandbox: {}", chain(&e)));
        Pod {
            fixture,
            runtime,
            id,
            config,
            dir,
        }
    }

    /// A directory under the scenario's directory, for mounts.
    fn host_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir
    }

    /// The configuration of a container `name` running `workload`, its image
    /// pulled.
    async fn container(&self, name: &str, workload: &Workload) -> ContainerConfig {
        let spec = self.fixture.workload(workload);
        self.runtime
            .pull_image(&spec.image, &self.fixture.pull_options())
            .await
            .unwrap_or_else(|e| panic!("pull {}: {}", spec.image.reference, chain(&e)));
        let annotations = BTreeMap::from([("skiff.dev/container".into(), name.into())]);
        ContainerConfig::new(name, 0, spec.image)
            .command(spec.command)
            .args(spec.args)
            .annotations(annotations)
    }

    async fn create(&self, config: &ContainerConfig) -> ContainerId {
        self.runtime
            .create_container(&self.id, config)
            .await
            .unwrap_or_else(|e| panic!("create_container {}: {}", config.name, chain(&e)))
    }

    async fn start(&self, config: &ContainerConfig) -> ContainerId {
        let id = self.create(config).await;
        self.runtime
            .start_container(&id)
            .await
            .unwrap_or_else(|e| panic!("start_container {}: {}", config.name, chain(&e)));
        id
    }

    async fn status(&self, id: &ContainerId) -> ContainerStatus {
        self.runtime
            .container_status(id)
            .await
            .unwrap_or_else(|e| panic!("container_status {id}: {}", chain(&e)))
    }

    /// This pod's sandbox as `list` shows it.
    async fn listed(&self) -> SandboxStatus {
        let all = self.runtime.list().await.expect("list");
        all.into_iter()
            .find(|s| s.id == self.id)
            .unwrap_or_else(|| panic!("sandbox {} is not listed", self.id))
    }

    /// Creates and starts a container and waits for its exit; returns its
    /// status then and the exit event.
    async fn run_to_exit(&self, config: &ContainerConfig) -> (ContainerStatus, RuntimeEvent) {
        let mut events = self.runtime.events();
        let id = self.start(config).await;
        let event = wait_for_exit(&mut events, &id).await;
        (self.status(&id).await, event)
    }

    /// Waits until a `Sleep` or `IgnoreStop` container has printed `ready`;
    /// returns its status then, `Running`.
    async fn wait_until_ready(&self, id: &ContainerId) -> ContainerStatus {
        let wait = async {
            loop {
                let status = self.status(id).await;
                assert!(
                    matches!(
                        status.state,
                        ContainerState::Created | ContainerState::Running
                    ),
                    "the container ended before it was stopped: {status:?}"
                );
                if status.state == ContainerState::Running
                    && Log::try_read(&status.log_path)
                        .is_some_and(|log| log.text(Stream::Stdout).starts_with("ready\n"))
                {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        within("the workload to print `ready`", PATIENCE, wait).await
    }

    /// Removes the sandbox and all in it.
    async fn remove(self) {
        self.runtime
            .remove_sandbox(&self.id)
            .await
            .unwrap_or_else(|e| panic!("remove_sandbox: {}", chain(&e)));
    }
}

/// A pod UID no other run of the suite uses, even against a shared backend.
fn unique_uid(scenario: &str) -> String {
    let nanos = Timestamp::now().as_nanosecond();
    format!("{scenario}-{:x}-{nanos:x}", std::process::id())
}

/// Waits for the exit event of `id`, skipping others.
async fn wait_for_exit(
    events: &mut broadcast::Receiver<RuntimeEvent>,
    id: &ContainerId,
) -> RuntimeEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) => match &event {
                    RuntimeEvent::ContainerExited { container_id, .. } if container_id == id => {
                        return event;
                    }
                    _ => {}
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    panic!("the event receiver lagged by {missed} events")
                }
                Err(broadcast::error::RecvError::Closed) => {
                    panic!("the runtime closed its event channel")
                }
            }
        }
    };
    within(&format!("the exit event of {id}"), PATIENCE, wait).await
}

/// Awaits `future`, failing the scenario if it takes longer than `limit`.
async fn within<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting for {what} after {limit:?}"))
}

/// The status echoes the configuration it was created with.
#[track_caller]
fn check_echoes_config(pod: &Pod, config: &ContainerConfig, status: &ContainerStatus) {
    assert_eq!(status.sandbox_id, pod.id, "{status:?}");
    assert_eq!(
        (
            status.name.as_str(),
            status.attempt,
            &status.image,
            &status.annotations
        ),
        (
            config.name.as_str(),
            config.attempt,
            &config.image,
            &config.annotations
        ),
        "the status repeats the configuration"
    );
    assert_eq!(
        status.log_path,
        pod.config.log_directory.join(&config.log_path),
        "the status's log path is the log directory joined with the config's"
    );
}

/// The container ended by itself with `exit_code` and `reason`, with times in
/// order, and the event agrees.
#[track_caller]
fn check_exited(
    pod: &Pod,
    config: &ContainerConfig,
    status: &ContainerStatus,
    event: &RuntimeEvent,
    exit_code: i32,
    reason: &str,
) {
    check_echoes_config(pod, config, status);
    assert_eq!(status.state, ContainerState::Exited, "{status:?}");
    assert_eq!(status.exit_code, Some(exit_code), "{status:?}");
    assert_eq!(status.reason.as_deref(), Some(reason), "{status:?}");
    let (Some(started), Some(finished)) = (status.started_at, status.finished_at) else {
        panic!("an exited container has started_at and finished_at: {status:?}")
    };
    assert!(
        status.created_at <= started && started <= finished,
        "created_at <= started_at <= finished_at: {status:?}"
    );
    check_event(pod, status, event);
}

/// The exit event agrees with the status.
#[track_caller]
fn check_event(pod: &Pod, status: &ContainerStatus, event: &RuntimeEvent) {
    let expected = RuntimeEvent::ContainerExited {
        container_id: status.id.clone(),
        sandbox_id: pod.id.clone(),
        exit_code: status.exit_code.expect("exited status has an exit code"),
        finished_at: status.finished_at.expect("exited status has finished_at"),
    };
    assert_eq!(event, &expected, "the exit event agrees with the status");
}

#[track_caller]
fn expect_not_found<T: std::fmt::Debug>(result: Result<T, RuntimeError>, kind: ObjectKind) {
    match result {
        Err(RuntimeError::NotFound { kind: got, .. }) if got == kind => {}
        other => panic!("expected {kind} NotFound, got {other:?}"),
    }
}

#[track_caller]
fn expect_invalid_argument<T: std::fmt::Debug>(result: Result<T, RuntimeError>, field: &str) {
    match result {
        Err(RuntimeError::InvalidArgument { field: got, .. }) if got == field => {}
        other => panic!("expected InvalidArgument for {field}, got {other:?}"),
    }
}

/// An error and its sources, for panic messages.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A container's log file, rotated part first, parsed.
#[derive(Debug)]
struct Log {
    records: Vec<Record>,
}

#[derive(Debug)]
struct Record {
    time: Timestamp,
    stream: Stream,
    tag: Tag,
    content: Vec<u8>,
}

impl Log {
    /// Reads and parses the log of an exited container at `path`: every
    /// line must be a whole record.
    fn read(path: &Path) -> Log {
        let bytes = Log::bytes(path).unwrap_or_else(|| panic!("no log file at {}", path.display()));
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "the log of an exited container ends in the middle of a line: {}",
            String::from_utf8_lossy(&bytes)
        );
        Log::parse(&bytes)
    }

    /// Reads the log of a running container, leaving out a line still being
    /// written; `None` while the file does not exist.
    fn try_read(path: &Path) -> Option<Log> {
        let bytes = Log::bytes(path)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        Some(Log::parse(&bytes[..whole]))
    }

    /// The rotated part and the current file, concatenated.
    fn bytes(path: &Path) -> Option<Vec<u8>> {
        let mut bytes = std::fs::read(rotated_path(path)).unwrap_or_default();
        bytes.extend(std::fs::read(path).ok()?);
        Some(bytes)
    }

    fn parse(bytes: &[u8]) -> Log {
        let records = bytes
            .split_inclusive(|b| *b == b'\n')
            .map(|line| {
                let record = parse_line(line).unwrap_or_else(|e| {
                    panic!(
                        "log line {:?} is not in the CRI format: {e}",
                        String::from_utf8_lossy(line)
                    )
                });
                Record {
                    time: record.time,
                    stream: record.stream,
                    tag: record.tag,
                    content: record.content.to_vec(),
                }
            })
            .collect();
        Log { records }
    }

    fn records_of(&self, stream: Stream) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(move |r| r.stream == stream)
    }

    /// A stream's output rebuilt from its records.
    fn text(&self, stream: Stream) -> String {
        let mut out = Vec::new();
        for record in self.records_of(stream) {
            out.extend_from_slice(&record.content);
            if record.tag == Tag::Full {
                out.push(b'\n');
            }
        }
        String::from_utf8(out).expect("the workloads print UTF-8")
    }
}
