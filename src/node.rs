//! Composition of a node: `skiff agent` (joins a server with its join
//! token) and the local agent of `skiff server` (in-process, through the
//! server's own API service). Both open this node's runtimes and run
//! `skiff_node::agent`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use skiff_node::agent::AgentOptions;
use skiff_node::deferred_runtime::DeferredRuntime;
use skiff_runtime_oci::{OciRuntime, OciRuntimeOptions};
use skiff_runtime_wasm::{WasmRuntime, WasmRuntimeOptions};
use skiff_sdk::runtime::{Runtime, RuntimeError};

use crate::cli::NodeArgs;

/// The node's options from its flags; `node_ip` is already resolved.
pub fn options(
    args: &NodeArgs,
    node_ip: IpAddr,
    listen: Option<SocketAddr>,
    data_dir: &Path,
) -> AgentOptions {
    let name = args.name.clone().unwrap_or_else(hostname);
    let labels: BTreeMap<String, String> = args.labels.iter().cloned().collect();
    let mut options = AgentOptions::new(name, node_ip, data_dir)
        .labels(labels)
        .insecure_registries(args.insecure_registries.clone())
        .pod_address_range(args.pod_address_range.clone())
        .max_pods(args.max_pods)
        .lease_duration(Duration::from_secs(args.lease_duration_seconds.max(1)));
    if let Some(listen) = listen.or(args.node_api_listen) {
        options = options.listen(listen);
    }
    options
}

/// This node's runtimes: wasmtime in-process, and containers through
/// containerd at `containerd_socket`. A node without containerd runs Wasm
/// pods only: no `skiff.dev/oci-enabled` label, and `runc` pods bound to it
/// report `RuntimeUnavailable`. If containerd does not answer but is
/// expected (its socket is there, or this node ran containers before,
/// which may still run), the OCI runtime opens as soon as it answers;
/// until then the node reports the `RuntimeUnhealthy` condition and the
/// pods containerd may run wait for it.
pub async fn runtimes(
    data_dir: &Path,
    node_ip: IpAddr,
    containerd_socket: &Path,
) -> anyhow::Result<Vec<Arc<dyn Runtime>>> {
    let wasm = WasmRuntime::open(WasmRuntimeOptions::new(data_dir.join("wasm")).host_ip(node_ip))
        .await
        .context("opening the Wasm runtime")?;
    let mut runtimes: Vec<Arc<dyn Runtime>> = vec![Arc::new(wasm)];
    let oci = OciRuntimeOptions::new(data_dir.join("oci"))
        .socket(containerd_socket)
        .host_ip(node_ip);
    let socket = containerd_socket.display().to_string();
    match OciRuntime::open(oci.clone()).await {
        Ok(oci) => {
            tracing::info!(%socket, version = %oci.info().version, "containerd answers: this node runs containers");
            runtimes.push(Arc::new(oci));
        }
        Err(RuntimeError::Unavailable { .. }) if oci.socket_exists() || oci.has_records() => {
            tracing::warn!(%socket, "containerd does not answer yet: this node runs containers once it does");
            let waiting =
                format!("containerd at {socket} has not answered since the agent started");
            let deferred =
                DeferredRuntime::spawn(OciRuntime::info_for("unknown"), waiting, move || {
                    let oci = oci.clone();
                    async move { Ok(Arc::new(OciRuntime::open(oci).await?) as Arc<dyn Runtime>) }
                });
            runtimes.push(Arc::new(deferred));
        }
        Err(error) => tracing::warn!(
            %socket,
            error = %skiff_sdk::error_chain(&error),
            "containerd is not available: this node runs Wasm pods only"
        ),
    }
    Ok(runtimes)
}

/// The address of this machine that routes to `server` (no packet is
/// sent: connecting a UDP socket only picks the route), loopback if none.
pub fn node_ip_towards(server: &str) -> IpAddr {
    let host_port = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .split('/')
        .next()
        .unwrap_or_default();
    let address = std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .ok()
        .and_then(|mut addresses| addresses.next());
    let local = address.and_then(|address| {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        socket.connect(address).ok()?;
        socket.local_addr().ok().map(|local| local.ip())
    });
    local.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// This machine's host name, lowercased as node names must be.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_ascii_lowercase())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
