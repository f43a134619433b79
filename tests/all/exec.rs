//! `kubectl exec` and `skiff exec` end to end through the API server and the
//! real node API: an in-process server, a node API whose only container
//! runs commands as local processes, and both CLIs as a user runs them
//! (exit codes, stdin, stdout and stderr apart). Skipped without kubectl
//! unless SKIFF_TEST_REAL is set (then `skiff exec` still runs).

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_control::server::{LocalAgent, RunningServer, ServerOptions};
use skiff_node::node_api::{self, NodeApi, NodeApiConfig};
use skiff_node::pod_containers::PodContainers;
use skiff_node::pod_logs::PodLogs;
use skiff_sdk::runtime::{
    ContainerConfig, ContainerId, ContainerStats, ContainerStatus, ExecProcess, ExecRequest,
    Feature, ImageInfo, ImageSpec, PullOptions, PulledImage, Runtime, RuntimeError, RuntimeEvent,
    RuntimeInfo, SandboxConfig, SandboxId, SandboxStatus,
};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::broadcast;

/// A guard against hanging tests, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// A runtime that only execs, as local processes; nothing else.
struct LocalProcesses {
    info: RuntimeInfo,
    events: broadcast::Sender<RuntimeEvent>,
}

fn only_exec(operation: &'static str) -> RuntimeError {
    RuntimeError::Unsupported {
        operation,
        reason: "this test runtime only runs exec".into(),
    }
}

#[async_trait]
impl Runtime for LocalProcesses {
    fn info(&self) -> &RuntimeInfo {
        &self.info
    }
    async fn pull_image(
        &self,
        _: &ImageSpec,
        _: &PullOptions,
    ) -> Result<PulledImage, RuntimeError> {
        Err(only_exec("pull"))
    }
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn remove_image(&self, _: &ImageSpec) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn run_sandbox(&self, _: &SandboxConfig) -> Result<SandboxId, RuntimeError> {
        Err(only_exec("run sandbox"))
    }
    async fn stop_sandbox(&self, _: &SandboxId) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn remove_sandbox(&self, _: &SandboxId) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn create_container(
        &self,
        _: &SandboxId,
        _: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        Err(only_exec("create container"))
    }
    async fn start_container(&self, _: &ContainerId) -> Result<(), RuntimeError> {
        Err(only_exec("start container"))
    }
    async fn stop_container(&self, _: &ContainerId, _: Duration) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn remove_container(&self, _: &ContainerId) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn container_status(&self, _: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        Err(only_exec("container status"))
    }
    async fn container_stats(&self, _: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        Err(only_exec("container stats"))
    }
    async fn list(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        Ok(Vec::new())
    }
    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }

    async fn exec(
        &self,
        _: &ContainerId,
        request: ExecRequest,
    ) -> Result<ExecProcess, RuntimeError> {
        request.validate()?;
        let mut child = tokio::process::Command::new(&request.command[0])
            .args(&request.command[1..])
            .stdin(if request.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RuntimeError::Backend {
                operation: "spawn",
                source: source.into(),
            })?;
        let stdin = child
            .stdin
            .take()
            .map(|stdin| Box::pin(stdin) as skiff_sdk::runtime::ExecStdin);
        let stdout = Box::pin(child.stdout.take().expect("piped"));
        let stderr = Box::pin(child.stderr.take().expect("piped"));
        Ok(ExecProcess {
            stdin,
            stdout,
            stderr,
            resize: None,
            exit: Box::pin(async move {
                let status = child.wait().await.map_err(|source| RuntimeError::Backend {
                    operation: "wait",
                    source: source.into(),
                })?;
                Ok(status.code().unwrap_or(137))
            }),
        })
    }
}

/// A server without controllers, node `n1` whose node API runs the
/// container `default/shell/sh` as local processes, and the pod `shell`
/// bound to it.
async fn cluster(dir: &std::path::Path) -> (RunningServer, NodeApi) {
    let server = skiff_control::server::start(
        ServerOptions::default()
            .data_dir(dir.join("data"))
            .listen("127.0.0.1:0".parse().unwrap())
            .local_agent(LocalAgent::Disabled)
            .controllers(None),
    )
    .await
    .unwrap();
    let bootstrap = server
        .node_bootstrap("n1", &["127.0.0.1".to_owned()])
        .unwrap();
    let runtime = LocalProcesses {
        info: RuntimeInfo::new("local", "0")
            .handler("runc")
            .feature(Feature::Exec),
        events: broadcast::channel(1).0,
    };
    let containers = Arc::new(PodContainers::default());
    containers.started(
        "default",
        "shell",
        "sh",
        Arc::new(runtime),
        ContainerId::new("c1"),
    );
    let node_api = node_api::serve(
        NodeApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            certificate_pem: bootstrap.serving_certificate_pem,
            private_key_pem: bootstrap.serving_key_pem,
            token: bootstrap.token,
        },
        Arc::new(PodLogs::default()),
        containers,
        std::future::pending(),
    )
    .await
    .unwrap();

    let client = skiff_sdk::client::from_kubeconfig(&server.paths().kubeconfig)
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": node_api.local_addr().port()}},
    }});
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "shell"},
        "spec": {"nodeName": "n1", "containers": [{"name": "sh", "image": "debian"}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client, "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    (server, node_api)
}

/// Runs `program args` with `input` on its stdin, against the server.
async fn run(server: &RunningServer, program: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("KUBECONFIG", &server.paths().kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("{program}: {error}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not end"))
        .unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn kubectl_installed() -> bool {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("SKIFF_TEST_REAL").is_none(),
            "SKIFF_TEST_REAL is set but kubectl is missing: run `make deps`"
        );
        eprintln!("skipping kubectl: it is not installed (Debian package kubernetes-client)");
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_runs_commands_through_the_server_and_the_node_api() {
    let dir = tempfile::tempdir().unwrap();
    let (server, node_api) = cluster(dir.path()).await;
    let skiff = env!("CARGO_BIN_EXE_skiff");
    let shell = ["--", "sh", "-c", "echo out; echo err >&2; exit 3"];

    let mut clis: Vec<(&str, Vec<&str>)> = vec![(skiff, vec!["exec", "shell"])];
    if kubectl_installed() {
        clis.push(("kubectl", vec!["exec", "shell"]));
    }
    for (program, exec) in clis {
        let args = |rest: &[&'static str]| -> Vec<&str> {
            exec.iter().copied().chain(rest.iter().copied()).collect()
        };
        let output = run(&server, program, &args(&shell), b"").await;
        assert_eq!(
            (
                output.status.code(),
                text(&output.stdout),
                text(&output.stderr)
            ),
            (
                Some(3),
                "out\n",
                "err\ncommand terminated with exit code 3\n"
            ),
            "{program}"
        );
        let output = run(
            &server,
            program,
            &args(&["-i", "--", "cat"]),
            b"hi\nthere\n",
        )
        .await;
        assert_eq!(
            (output.status.code(), text(&output.stdout)),
            (Some(0), "hi\nthere\n"),
            "{program}: {}",
            text(&output.stderr)
        );
        let output = run(&server, program, &args(&["-c", "nope", "--", "ls"]), b"").await;
        assert_ne!(output.status.code(), Some(0), "{program}");
        assert!(
            text(&output.stderr).contains("container nope is not valid for pod shell"),
            "{program}: {}",
            text(&output.stderr)
        );
    }
    node_api.stop().await;
    server.stop().await.unwrap();
}
