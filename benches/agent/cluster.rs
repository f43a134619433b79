//! A one-node cluster for the benchmark, as `skiff server --no-agent` plus
//! `skiff agent` run it: the server in a child process (this binary
//! re-executed with [`SERVE_ENV`], serving with `control::server::start`),
//! so that its memory and CPU are its own; the agent in this process,
//! joined over HTTPS with the server's join token (`node::bootstrap::join`)
//! and running `node::agent::run` over a `WasmRuntime`, as `skiff agent`
//! composes them. Every wait is bounded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use skiff_control::server::{LocalAgent, ServerOptions};
use skiff_node::agent::AgentOptions;
use skiff_runtime_wasm::{WasmRuntime, WasmRuntimeOptions};
use skiff_sdk::runtime::Runtime;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Setting this makes the binary serve as the child server, with state in
/// the directory it names.
pub const SERVE_ENV: &str = "SKIFF_BENCH_AGENT_SERVE";
/// The node's name.
pub const NODE_NAME: &str = "bench-node";
/// The node's address (its node API listens there).
pub const NODE_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The addresses the agent gives its pods (`--pod-address-range`).
pub const POD_ADDRESS_RANGE: &str = "127.2.0.0/16";
/// The pods' `containerPort`.
pub const POD_PORT: u16 = 8080;
/// Bound on the server's start, the join and the node becoming Ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the agent's and the server's shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The child server: `skiff server --no-agent` on a free loopback port;
/// prints the address, serves until stdin closes, then shuts down.
pub async fn serve_as_child(data_dir: PathBuf) {
    let server = skiff_control::server::start(
        ServerOptions::default()
            .data_dir(data_dir)
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .local_agent(LocalAgent::Disabled),
    )
    .await
    .expect("start the server");
    println!("{}", server.local_addr());
    let _ = tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await;
    server.stop().await.expect("stop the server");
}

/// A running server (child process) and agent (this process).
pub struct Cluster {
    server: tokio::process::Child,
    server_pid: u32,
    /// An admin client over HTTPS, from the server's kubeconfig.
    pub client: kube::Client,
    agent_stop: watch::Sender<bool>,
    agent: JoinHandle<Result<(), skiff_node::agent::AgentError>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the server, joins the agent (pulling from `registry` over
    /// plain HTTP, at most `max_pods` pods), and waits until the node is
    /// Ready.
    pub async fn start(registry: &str, max_pods: u32) -> Cluster {
        Cluster::start_with(registry, max_pods, None).await
    }

    /// As [`start`](Self::start), the agent also running containers through
    /// the containerd at `containerd` when given.
    pub async fn start_with(registry: &str, max_pods: u32, containerd: Option<&Path>) -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let server_dir = dir.path().join("server");
        let mut server = tokio::process::Command::new(std::env::current_exe().expect("own path"))
            .env(SERVE_ENV, &server_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the server process");
        let server_pid = server.id().expect("the server's pid");
        let stdout = server.stdout.take().expect("the server's stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let address: SocketAddr = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .expect("the server took too long to start")
            .expect("read the server's address")
            .expect("the server exited before listening")
            .parse()
            .expect("the server's address");
        // The rest of its stdout (nothing, normally) is drained.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let client = skiff_sdk::client::from_kubeconfig(&server_dir.join("kubeconfig"))
            .await
            .expect("an admin client");
        let (agent_stop, agent) = start_agent(
            &format!("https://{address}"),
            &server_dir,
            &dir.path().join("agent"),
            registry,
            max_pods,
            containerd,
        )
        .await;
        let cluster = Cluster {
            server,
            server_pid,
            client,
            agent_stop,
            agent,
            _dir: dir,
        };
        cluster.wait_node_ready().await;
        cluster
    }

    /// The server process's id (its memory and CPU are read from /proc).
    pub fn server_pid(&self) -> u32 {
        self.server_pid
    }

    async fn wait_node_ready(&self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = nodes
                .get_opt(NODE_NAME)
                .await
                .ok()
                .flatten()
                .is_some_and(|node| {
                    node.status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {NODE_NAME} was not Ready within {START_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the agent, then the server (closing its stdin), each bounded.
    pub async fn stop(mut self) {
        self.agent_stop.send_replace(true);
        match tokio::time::timeout(STOP_TIMEOUT, &mut self.agent).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => panic!("the agent failed: {error}"),
            Ok(Err(error)) => panic!("the agent task failed: {error}"),
            Err(_) => panic!("the agent took over {STOP_TIMEOUT:?} to stop"),
        }
        drop(self.server.stdin.take());
        let status = tokio::time::timeout(STOP_TIMEOUT, self.server.wait())
            .await
            .unwrap_or_else(|_| panic!("the server took over {STOP_TIMEOUT:?} to stop"))
            .expect("wait for the server");
        assert!(status.success(), "the server exited with {status}");
    }
}

/// Joins as `skiff agent --node-ip 127.0.0.1 --pod-address-range …
/// --insecure-registry REGISTRY --max-pods N` does and runs the agent in a
/// task; the sender stops it.
async fn start_agent(
    api_url: &str,
    server_dir: &Path,
    agent_dir: &Path,
    registry: &str,
    max_pods: u32,
    containerd: Option<&Path>,
) -> (
    watch::Sender<bool>,
    JoinHandle<Result<(), skiff_node::agent::AgentError>>,
) {
    std::fs::create_dir_all(agent_dir).expect("the agent's data dir");
    let token = std::fs::read_to_string(server_dir.join("node-token")).expect("the join token");
    let joined = tokio::time::timeout(
        START_TIMEOUT,
        skiff_node::bootstrap::join(
            api_url,
            &token,
            Some(&server_dir.join("tls").join("ca.crt")),
            NODE_NAME,
            &[NODE_IP.to_string()],
            agent_dir,
        ),
    )
    .await
    .expect("joining took too long")
    .unwrap_or_else(|e| panic!("join the cluster: {e}"));
    let wasm = WasmRuntime::open(WasmRuntimeOptions::new(agent_dir.join("wasm")).host_ip(NODE_IP))
        .await
        .unwrap_or_else(|e| panic!("open the Wasm runtime: {e}"));
    let mut runtimes: Vec<Arc<dyn Runtime>> = vec![Arc::new(wasm)];
    if let Some(socket) = containerd {
        let oci = skiff_runtime_oci::OciRuntime::open(
            skiff_runtime_oci::OciRuntimeOptions::new(agent_dir.join("oci"))
                .socket(socket)
                .namespace("skiff-bench")
                .host_ip(NODE_IP),
        )
        .await
        .unwrap_or_else(|e| panic!("open the OCI runtime: {e}"));
        runtimes.push(Arc::new(oci));
    }
    let node_api = std::net::TcpListener::bind((NODE_IP, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port for the node API");
    let options = AgentOptions::new(NODE_NAME, NODE_IP, agent_dir)
        .listen(node_api)
        .insecure_registries(vec![registry.to_owned()])
        .pod_address_range(Some(POD_ADDRESS_RANGE.to_owned()))
        .max_pods(max_pods);
    let (stop, mut stopping) = watch::channel(false);
    let agent = tokio::spawn(skiff_node::agent::run(
        joined.client,
        runtimes,
        joined.credentials,
        options,
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        },
    ));
    (stop, agent)
}
