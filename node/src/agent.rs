//! The agent as a whole: registers the Node, serves the node API, keeps the
//! Lease and the Node's status fresh, and runs the pods bound to the node
//! until shutdown, when it reports the node not ready.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skiff_sdk::events::Recorder;
use skiff_sdk::runtime::Runtime;
use tokio::sync::watch;

use crate::address_pool::{AddressPool, InvalidRange};
use crate::backoff::Backoff;
use crate::node_api::{self, NodeApiConfig, NodeApiError};
use crate::pod_config::ApiObjectSource;
use crate::pod_containers::PodContainers;
use crate::pod_logs::PodLogs;
use crate::pod_worker::{PodAddresses, Runtimes, WorkerContext};
use crate::probe::ExecProbes;
use crate::registration::{self, MachineFacts, NodeConfig, RegistrationError};
use crate::{pod_api, pod_manager};

/// The default port of the node API (the kubelet's).
pub const DEFAULT_NODE_API_PORT: u16 = 10250;

/// What identifies the node to the cluster and the cluster to the node.
#[derive(Clone)]
pub struct AgentCredentials {
    /// The node's credential: its bearer token towards the API server, and
    /// the only token the node API accepts (the API server presents it
    /// when it proxies `kubectl logs` and `kubectl exec`).
    pub token: String,
    /// The node API's certificate (PEM), signed by the cluster CA.
    pub serving_certificate_pem: String,
    /// Its private key (PEM).
    pub serving_key_pem: String,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCredentials").finish_non_exhaustive()
    }
}

/// How the agent runs; `Default`-like through [`AgentOptions::new`] and
/// builder-style setters.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    node_name: String,
    node_ip: IpAddr,
    listen: Option<SocketAddr>,
    labels: BTreeMap<String, String>,
    data_dir: PathBuf,
    insecure_registries: Vec<String>,
    pod_address_range: Option<String>,
    lease_duration: Duration,
    status_interval: Duration,
    max_pods: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl AgentOptions {
    /// Node `node_name` at `node_ip`, keeping its state in `data_dir`.
    pub fn new(
        node_name: impl Into<String>,
        node_ip: IpAddr,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            node_name: node_name.into(),
            node_ip,
            listen: None,
            labels: BTreeMap::new(),
            data_dir: data_dir.into(),
            insecure_registries: Vec::new(),
            pod_address_range: None,
            lease_duration: Duration::from_secs(40),
            status_interval: Duration::from_secs(60),
            max_pods: 1000,
            backoff_initial: Backoff::DEFAULT_INITIAL,
            backoff_max: Backoff::DEFAULT_MAX,
        }
    }

    /// Where the node API listens [default: the node IP, port 10250].
    pub fn listen(mut self, listen: SocketAddr) -> Self {
        self.listen = Some(listen);
        self
    }

    /// Labels added to those the agent detects.
    pub fn labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    /// Registries (`host:port`) pulled from over plain HTTP.
    pub fn insecure_registries(mut self, registries: Vec<String>) -> Self {
        self.insecure_registries = registries;
        self
    }

    /// Gives each pod an address of its own from this range of local
    /// addresses (e.g. `127.1.0.0/24`) instead of the node's.
    pub fn pod_address_range(mut self, range: Option<String>) -> Self {
        self.pod_address_range = range;
        self
    }

    /// The node Lease's duration; it is renewed every quarter of it.
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration;
        self
    }

    /// How often the Node's status is reported when nothing changed.
    pub fn status_interval(mut self, interval: Duration) -> Self {
        self.status_interval = interval;
        self
    }

    /// The most pods the node takes (its `pods` capacity).
    pub fn max_pods(mut self, max_pods: u32) -> Self {
        self.max_pods = max_pods;
        self
    }

    /// The crash-loop back-off's first and longest delays.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The node API's address.
    pub fn listen_address(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::new(self.node_ip, DEFAULT_NODE_API_PORT))
    }
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The Node could not be registered.
    #[error("registering the node: {0}")]
    Registration(#[from] RegistrationError),
    /// The node API could not start.
    #[error("starting the node API: {0}")]
    NodeApi(#[from] NodeApiError),
    /// The pod address range is invalid.
    #[error(transparent)]
    AddressRange(#[from] InvalidRange),
    /// The data dir could not be prepared.
    #[error("preparing {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    runtimes: Vec<Arc<dyn Runtime>>,
    credentials: AgentCredentials,
    options: AgentOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let pods_dir = options.data_dir.join("pods");
    tokio::fs::create_dir_all(&pods_dir)
        .await
        .map_err(|source| AgentError::DataDir {
            path: pods_dir.clone(),
            source,
        })?;
    let pod_addresses = match &options.pod_address_range {
        Some(range) => PodAddresses::Pool(Arc::new(AddressPool::parse(range)?)),
        None => PodAddresses::NodeAddress,
    };
    let machine = MachineFacts::detect();

    // The node API first: the Node announces the port it got.
    let (stop, stopping) = watch::channel(false);
    let logs = Arc::new(PodLogs::default());
    let containers = Arc::new(PodContainers::default());
    let mut api_stopping = stopping.clone();
    let node_api = node_api::serve(
        NodeApiConfig {
            listen: options.listen_address(),
            certificate_pem: credentials.serving_certificate_pem.clone(),
            private_key_pem: credentials.serving_key_pem.clone(),
            token: credentials.token.clone(),
        },
        logs.clone(),
        containers.clone(),
        async move {
            let _ = api_stopping.wait_for(|stop| *stop).await;
        },
    )
    .await?;
    let node = NodeConfig {
        name: options.node_name.clone(),
        ip: options.node_ip,
        api_port: node_api.local_addr().port(),
        labels: options.labels.clone(),
        max_pods: options.max_pods,
        pod_address_range: options.pod_address_range.clone(),
    };
    if let Err(error) = registration::register(&client, &node, &machine, &runtimes).await {
        node_api.stop().await;
        return Err(error.into());
    }
    tracing::info!(
        node = %options.node_name,
        ip = %options.node_ip,
        node_api = %node_api.local_addr(),
        runtimes = ?runtimes.iter().map(|r| r.info().name.clone()).collect::<Vec<_>>(),
        "agent ready"
    );

    let heartbeat = tokio::spawn(registration::heartbeat(
        client.clone(),
        node,
        machine.clone(),
        runtimes.clone(),
        options.lease_duration,
        options.status_interval,
        stopping.clone(),
    ));
    let (events, event_writer) = Recorder::new(client.clone(), "kubelet", &options.node_name);
    let event_writer = tokio::spawn(event_writer);
    let ctx = Arc::new(WorkerContext {
        api: Arc::new(pod_api::KubePodApi::new(client.clone())),
        objects: Arc::new(ApiObjectSource::new(client.clone())),
        runtimes: Runtimes::new(runtimes),
        exec: ExecProbes::ThroughRuntime,
        logs,
        containers,
        events,
        node_name: options.node_name.clone(),
        node_ip: options.node_ip,
        pod_addresses,
        pods_dir,
        insecure_registries: options.insecure_registries.clone(),
        allocatable_cpu_millis: machine.cpus * 1000,
        allocatable_memory_bytes: machine.memory_bytes,
        backoff_initial: options.backoff_initial,
        backoff_max: options.backoff_max,
        inventory: Default::default(),
    });
    let pods = tokio::spawn(pod_manager::run(ctx, client, stopping));

    shutdown.await;
    tracing::info!(node = %options.node_name, "agent stopping");
    stop.send_replace(true);
    let _ = pods.await;
    let _ = heartbeat.await;
    node_api.stop().await;
    event_writer.abort();
    Ok(())
}
