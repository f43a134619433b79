//! `skiff server` as a library: the composition of a running API server.
//!
//! [`start`] prepares the data dir, opens the store, binds the listener,
//! creates the objects every cluster has (`Api::bootstrap`: the default
//! namespaces and RuntimeClasses) and serves; [`run`] does the same, prints where the API and the kubeconfig
//! are, and stops when its `shutdown` future resolves. Integration tests use
//! [`start`] on `127.0.0.1:0` and [`RunningServer::stop`]; the in-process
//! agent joins through [`RunningServer::node_bootstrap`] (its credential and
//! the serving certificate of its node API, which `pods/log` verifies
//! against the cluster CA).
//!
//! The data dir (mode 0700) holds, after the first start:
//!
//! ```text
//! tls/ca.crt       cluster CA certificate (0644), embedded in kubeconfigs
//! tls/ca.key       cluster CA key (0600)
//! tls/server.crt   serving certificate, signed by the CA (0644)
//! tls/server.key   its key (0600)
//! token            admin bearer token, 64 hex digits (0600)
//! node-token       node join token, K10<sha256 of ca.crt>::node:<64 hex digits> (0600)
//! kubeconfig       cluster/context `skiff`, user `admin` with the token (0600)
//! store.redb       the embedded store (absent with an etcd store)
//! ```
//!
//! Later starts reuse every file; the serving certificate is re-issued only
//! when it no longer covers the server's names (see [`tls`](crate::apiserver::tls)),
//! and the kubeconfig is rewritten only when its content (e.g. the listen
//! address) changed.
//!
//! Shutdown: stop accepting, fail `/readyz`, end long-running responses
//! (watches, log follows) at a frame boundary so that clients re-watch
//! elsewhere, let other in-flight requests finish within the grace period
//! (10 s by default), drop what is left, then close the store.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use ring::rand::SecureRandom as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::apiserver::auth::{self, Authenticator, Identity, InProcessService};
use crate::apiserver::defaults::Admission;
use crate::apiserver::error::ApiError;
use crate::apiserver::handlers::Api;
use crate::apiserver::health::Health;
use crate::apiserver::metrics::{self, MeteredStore, Metrics};
use crate::apiserver::node_credentials::{self, NodeIssuer};
use crate::apiserver::pod_logs::{self, NodeClient};
use crate::apiserver::request::Verb;
use crate::apiserver::tls::{self, Pki, ServerNames, TlsError, TlsPaths};
use crate::controllers::{self, ControllerOptions};
use crate::store::{EmbeddedConfig, EmbeddedStore, EtcdConfig, EtcdStore, Store, StoreError};

pub use crate::apiserver::node_credentials::NodeBootstrap;

/// How long in-flight requests get to finish after shutdown starts.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Random bytes in each token.
const TOKEN_BYTES: usize = 32;

/// Where the server keeps cluster state.
#[derive(Clone, Debug, Default)]
pub enum StoreBackend {
    /// The embedded store, `store.redb` in the data dir.
    #[default]
    Embedded,
    /// An etcd cluster (`--store etcd://h1:2379,...`).
    Etcd(EtcdConfig),
}

/// How the API is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with the data dir's certificates, ALPN h2 and http/1.1.
    #[default]
    Https,
    /// Plain HTTP (`--insecure-http`), still token-authenticated: for
    /// development behind a TLS-terminating proxy only.
    InsecureHttp,
}

/// Whether a node agent runs in the server's process (the binary starts
/// it beside the server, through [`RunningServer::node_bootstrap`] and
/// [`RunningServer::in_process_service`]); the server only says so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LocalAgent {
    /// Run one (the default, as `k3s server` does).
    #[default]
    Enabled,
    /// `--no-agent`: pods run only on agents started with `skiff agent`.
    Disabled,
}

/// What [`start`] and [`run`] need. `Default` + builder setters.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    data_dir: PathBuf,
    listen: SocketAddr,
    store: StoreBackend,
    transport: Transport,
    local_agent: LocalAgent,
    shutdown_grace: Duration,
    controllers: Option<ControllerOptions>,
    admission: Admission,
}

impl Default for ServerOptions {
    /// Data dir `/var/lib/skiff` (the binary picks a per-user one for
    /// non-root users), listen `127.0.0.1:6443`, embedded store, HTTPS,
    /// local agent, 10 s grace.
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/skiff"),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 6443)),
            store: StoreBackend::Embedded,
            transport: Transport::Https,
            local_agent: LocalAgent::Enabled,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            controllers: Some(ControllerOptions::default()),
            admission: Admission::default(),
        }
    }
}

impl ServerOptions {
    /// The directory for certificates, tokens, the kubeconfig and the
    /// embedded store; created (0700) if missing.
    pub fn data_dir(mut self, data_dir: impl Into<PathBuf>) -> Self {
        self.data_dir = data_dir.into();
        self
    }

    /// The address to listen on; port 0 picks a free port.
    pub fn listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Where cluster state lives.
    pub fn store(mut self, store: StoreBackend) -> Self {
        self.store = store;
        self
    }

    /// HTTPS or plain HTTP.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Whether to run a local agent.
    pub fn local_agent(mut self, local_agent: LocalAgent) -> Self {
        self.local_agent = local_agent;
        self
    }

    /// How long in-flight requests get to finish on shutdown.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Settings of the scheduler and controllers, or `None` to run the API
    /// alone (tests of the API itself; a server that should never lead).
    /// The identity defaults to the host name plus a random suffix.
    pub fn controllers(mut self, controllers: Option<ControllerOptions>) -> Self {
        self.controllers = controllers;
        self
    }

    /// What admission adds to new objects (the default tolerations of
    /// pods for not-ready and unreachable nodes).
    pub fn admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }
}

/// The files of a server's data dir (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPaths {
    /// The data dir itself.
    pub data_dir: PathBuf,
    /// The CA and serving certificate.
    pub tls: TlsPaths,
    /// The admin bearer token.
    pub admin_token: PathBuf,
    /// The node join token.
    pub node_token: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The embedded store file (unused with an etcd store).
    pub store_file: PathBuf,
}

impl ServerPaths {
    /// The layout under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            tls: TlsPaths::new(data_dir.join("tls")),
            admin_token: data_dir.join("token"),
            node_token: data_dir.join("node-token"),
            kubeconfig: data_dir.join("kubeconfig"),
            store_file: data_dir.join("store.redb"),
            data_dir,
        }
    }
}

/// Why the server could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The data dir could not be created.
    #[error("cannot create the data directory {}", path.display())]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The certificates could not be loaded or created.
    #[error("cannot set up TLS")]
    Tls(#[source] TlsError),
    /// A token or kubeconfig file could not be read or written.
    #[error("cannot read or write {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A token file exists but is empty.
    #[error("{} is empty: put the token back, or remove the file to generate a new one", path.display())]
    EmptyToken {
        /// The file.
        path: PathBuf,
    },
    /// The system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The kubeconfig could not be encoded.
    #[error("cannot encode the kubeconfig")]
    Kubeconfig(#[source] serde_yaml::Error),
    /// The store could not be opened or reached.
    #[error("cannot open the store")]
    OpenStore(#[source] StoreError),
    /// The objects every cluster has (default namespaces, RuntimeClasses)
    /// could not be created.
    #[error("cannot create the cluster's default objects")]
    Bootstrap(#[source] ApiError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed to close cleanly at shutdown.
    #[error("cannot close the store")]
    CloseStore(#[source] StoreError),
    /// The serving task panicked or was cancelled.
    #[error("the server task failed")]
    Task(#[source] tokio::task::JoinError),
    /// A node's credential and serving certificate could not be issued
    /// (an invalid name or address, or a signing failure).
    #[error("cannot issue the credentials of node {node:?}")]
    NodeBootstrap {
        /// The node name asked for.
        node: String,
        /// Why, as the API would answer it.
        #[source]
        source: ApiError,
    },
}

/// A server started by [`start`]. Dropping it without [`stop`](Self::stop)
/// also shuts the server down, in the background.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    api_url: String,
    paths: ServerPaths,
    node_issuer: NodeIssuer,
    in_process_routes: Router,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// The bound address (the actual port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The API URL written into the kubeconfig, e.g. `https://127.0.0.1:6443`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The files of the data dir.
    pub fn paths(&self) -> &ServerPaths {
        &self.paths
    }

    /// A transport into this server's API as `identity`, without TCP or
    /// token, for in-process components; see
    /// [`auth::in_process_service`].
    pub fn in_process_service(&self, identity: Identity) -> InProcessService {
        auth::in_process_service(self.in_process_routes.clone(), identity)
    }

    /// What the in-process agent of `skiff server` needs to join as
    /// `node_name`: the node's credential, the CA, and a fresh serving
    /// certificate for its node API covering `node_name` and `addresses`
    /// (IP addresses or DNS names), as `POST /skiff/v1/node-credentials`
    /// answers a remote agent, without the password claim.
    pub fn node_bootstrap(
        &self,
        node_name: &str,
        addresses: &[String],
    ) -> Result<NodeBootstrap, ServerError> {
        self.node_issuer
            .issue(node_name, addresses)
            .map_err(|source| ServerError::NodeBootstrap {
                node: node_name.to_owned(),
                source,
            })
    }

    /// Resolves only if the server stops serving by itself, which it does
    /// only when it fails.
    pub async fn failed(&mut self) -> Result<(), ServerError> {
        (&mut self.task).await.map_err(ServerError::Task)?
    }

    /// Shuts down (see the module documentation) and waits until the store
    /// is closed.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        // Fails only if the task already ended, which the join reports.
        let _ = self.shutdown.send(true);
        (&mut self.task).await.map_err(ServerError::Task)?
    }
}

/// Starts a server: data dir, store, listener, certificates, tokens,
/// kubeconfig, then serves in a background task until
/// [`RunningServer::stop`].
pub async fn start(options: ServerOptions) -> Result<RunningServer, ServerError> {
    let paths = ServerPaths::new(&options.data_dir);
    tls::create_private_dir(&paths.data_dir).map_err(|error| match error {
        TlsError::Write { path, source } => ServerError::DataDir { path, source },
        other => ServerError::Tls(other),
    })?;
    match options.local_agent {
        LocalAgent::Enabled => tracing::info!("a local agent runs beside the server"),
        LocalAgent::Disabled => tracing::info!("no local agent runs (--no-agent)"),
    }

    // The store first: the embedded store's file lock keeps a second server
    // on the same data dir from racing this one through the files below.
    let store = open_store(&options.store, &paths).await?;
    match prepare(&options, &paths, store.clone()).await {
        Ok(running) => Ok(running),
        Err(error) => {
            if let Err(close_error) = store.close().await {
                tracing::warn!(error = %close_error, "closing the store after a failed start");
            }
            Err(error)
        }
    }
}

/// Everything after the store is open.
async fn prepare(
    options: &ServerOptions,
    paths: &ServerPaths,
    raw_store: Arc<dyn Store>,
) -> Result<RunningServer, ServerError> {
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: options.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: options.listen,
        source,
    })?;

    let names = ServerNames::for_listen(options.listen.ip(), hostname().as_deref());
    let pki = Pki::load_or_create(&paths.tls, &names).map_err(ServerError::Tls)?;
    let admin_token = load_or_create_token(&paths.admin_token, random_hex)?;
    let ca_hash = pki.ca_sha256_hex().map_err(ServerError::Tls)?;
    let node_token = load_or_create_token(&paths.node_token, || {
        Ok(format!("K10{ca_hash}::node:{}", random_hex()?))
    })?;

    let scheme = match options.transport {
        Transport::Https => "https",
        Transport::InsecureHttp => "http",
    };
    let api_url = format!("{scheme}://{}", client_address(local_addr));
    let ca_for_kubeconfig = (options.transport == Transport::Https).then(|| pki.ca_cert_pem());
    write_kubeconfig(&paths.kubeconfig, &api_url, ca_for_kubeconfig, &admin_token)?;

    let tls = match options.transport {
        Transport::Https => Some(TlsAcceptor::from(
            pki.server_config().map_err(ServerError::Tls)?,
        )),
        Transport::InsecureHttp => {
            tracing::warn!(
                "serving plain HTTP (--insecure-http): bearer tokens cross the network in clear text"
            );
            None
        }
    };

    let metrics = Metrics::new();
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(raw_store, metrics.clone()));
    let health = Health::new(store.clone());
    let api = Api::new(store.clone());
    api.set_admission(options.admission);
    api.bootstrap().await.map_err(ServerError::Bootstrap)?;
    let authenticator = Arc::new(Authenticator::new(&admin_token, &node_token));
    let node_client =
        NodeClient::new(pki.authority(), authenticator.clone()).map_err(ServerError::Tls)?;
    api.set_node_client(node_client);
    let node_issuer = NodeIssuer::new(authenticator.clone(), pki.authority().clone());
    let routes = Router::new()
        .merge(api.router())
        .merge(crate::apiserver::openapi::router())
        .merge(node_credentials::router(store.clone(), node_issuer.clone()))
        .merge(health.router())
        .merge(metrics.router());
    let (shutdown, shutdown_signal) = watch::channel(false);
    let app = routes
        .clone()
        .layer(from_fn_with_state(authenticator, auth::authenticate))
        .layer(from_fn_with_state(metrics.clone(), metrics::record))
        .layer(from_fn_with_state(
            shutdown_signal.clone(),
            end_long_running_on_shutdown,
        ));
    let in_process_routes = routes
        .layer(from_fn_with_state(metrics.clone(), metrics::record))
        .layer(from_fn_with_state(
            shutdown_signal.clone(),
            end_long_running_on_shutdown,
        ));

    let controllers = options.controllers.clone().map(|mut controller_options| {
        if controller_options.identity == ControllerOptions::default().identity {
            controller_options.identity = format!(
                "{}_{}",
                hostname().unwrap_or_else(|| "skiff".to_owned()),
                uuid::Uuid::new_v4()
            );
        }
        let client = skiff_sdk::client::in_process(
            auth::in_process_service(
                in_process_routes.clone(),
                Identity::Component("controller-manager"),
            ),
            "default",
        );
        let mut stop = shutdown_signal.clone();
        tokio::spawn(controllers::run(client, controller_options, async move {
            stopping(&mut stop).await;
        }))
    });
    let serving = Serving {
        listener,
        tls,
        app,
        shutdown: shutdown_signal,
        health,
        store,
        grace: options.shutdown_grace,
        controllers,
    };
    let task = tokio::spawn(serving.run());
    tracing::info!(url = %api_url, kubeconfig = %paths.kubeconfig.display(), "API server listening");
    Ok(RunningServer {
        local_addr,
        api_url,
        paths: paths.clone(),
        node_issuer,
        in_process_routes,
        shutdown,
        task,
    })
}

/// Runs a server until `shutdown` resolves (the binary passes SIGTERM /
/// SIGINT), printing the API URL and the kubeconfig path once it serves,
/// then shuts down gracefully.
pub async fn run(
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let mut running = start(options).await?;
    announce(&running);
    tokio::select! {
        () = shutdown => {}
        // The serving task ends by itself only if it fails.
        result = &mut running.task => return result.map_err(ServerError::Task)?,
    }
    tracing::info!("shutdown requested");
    running.stop().await
}

/// The two lines `skiff server` prints once ready.
pub fn announce(running: &RunningServer) {
    use std::io::Write as _;
    let kubeconfig = running.paths.kubeconfig.display();
    let mut stdout = std::io::stdout().lock();
    // Nothing to do if stdout is closed; the logs say the same.
    let _ = writeln!(
        stdout,
        "skiff server ready: API {}, kubeconfig {kubeconfig}",
        running.api_url
    );
    let _ = writeln!(
        stdout,
        "  kubectl: KUBECONFIG={kubeconfig} kubectl get namespaces"
    );
    let _ = stdout.flush();
}

async fn open_store(
    backend: &StoreBackend,
    paths: &ServerPaths,
) -> Result<Arc<dyn Store>, ServerError> {
    match backend {
        StoreBackend::Embedded => {
            let config = EmbeddedConfig::new(&paths.store_file);
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(config))
                .await
                .map_err(ServerError::Task)?
                .map_err(ServerError::OpenStore)?;
            tracing::info!(path = %paths.store_file.display(), "embedded store open");
            Ok(Arc::new(store))
        }
        StoreBackend::Etcd(config) => {
            let store = EtcdStore::connect(config.clone())
                .await
                .map_err(ServerError::OpenStore)?;
            tracing::info!(endpoints = ?config.endpoint_addresses(), "etcd store connected");
            Ok(Arc::new(store))
        }
    }
}

/// The address clients use: loopback when listening on every address.
fn client_address(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// This machine's host name, for the serving certificate.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// 32 random bytes from the OS, as 64 hex digits.
fn random_hex() -> Result<String, ServerError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ServerError::Random)?;
    Ok(tls::hex(&bytes))
}

/// The token in `path` (trimmed), or a new one from `generate`, written
/// with mode 0600. An existing file is tightened to 0600 if needed.
fn load_or_create_token(
    path: &Path,
    generate: impl FnOnce() -> Result<String, ServerError>,
) -> Result<String, ServerError> {
    let file_error = |source| ServerError::File {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(ServerError::EmptyToken {
                    path: path.to_owned(),
                });
            }
            keep_private(path);
            Ok(token)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let token = generate()?;
            tls::write_file_atomically(path, format!("{token}\n").as_bytes(), 0o600)
                .map_err(file_error)?;
            tracing::info!(path = %path.display(), "created a token");
            Ok(token)
        }
        Err(source) => Err(file_error(source)),
    }
}

/// Sets a secret file to 0600 if it is looser; a failure is logged.
fn keep_private(path: &Path) {
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    if metadata.permissions().mode() & 0o077 == 0 {
        return;
    }
    if let Err(error) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), %error, "cannot restrict a secret file to mode 0600");
    }
}

/// The admin kubeconfig (cluster, user and context as the module docs
/// say).
pub fn kubeconfig_yaml(
    api_url: &str,
    ca_cert_pem: Option<&str>,
    admin_token: &str,
) -> Result<String, ServerError> {
    let mut cluster = serde_json::json!({ "server": api_url });
    if let Some(ca) = ca_cert_pem {
        cluster["certificate-authority-data"] =
            base64::engine::general_purpose::STANDARD.encode(ca).into();
    }
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "skiff", "cluster": cluster }],
        "users": [{ "name": "admin", "user": { "token": admin_token } }],
        "contexts": [{ "name": "skiff", "context": { "cluster": "skiff", "user": "admin" } }],
        "current-context": "skiff",
        "preferences": {},
    });
    serde_yaml::to_string(&config).map_err(ServerError::Kubeconfig)
}

/// Writes the kubeconfig unless it already holds exactly this content.
fn write_kubeconfig(
    path: &Path,
    api_url: &str,
    ca_cert_pem: Option<&str>,
    admin_token: &str,
) -> Result<(), ServerError> {
    let yaml = kubeconfig_yaml(api_url, ca_cert_pem, admin_token)?;
    if std::fs::read_to_string(path).is_ok_and(|existing| existing == yaml) {
        keep_private(path);
        return Ok(());
    }
    tls::write_file_atomically(path, yaml.as_bytes(), 0o600).map_err(|source| {
        ServerError::File {
            path: path.to_owned(),
            source,
        }
    })?;
    tracing::info!(path = %path.display(), "wrote the admin kubeconfig");
    Ok(())
}

/// The serving task's state.
struct Serving {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: watch::Receiver<bool>,
    health: Health,
    store: Arc<dyn Store>,
    grace: Duration,
    /// The scheduler and controllers, stopped (and their lease released)
    /// before the store closes.
    controllers: Option<JoinHandle<()>>,
}

impl Serving {
    /// Accepts until shutdown, then drains and closes the store.
    async fn run(self) -> Result<(), ServerError> {
        let Serving {
            listener,
            tls,
            app,
            mut shutdown,
            health,
            store,
            grace,
            controllers,
        } = self;
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                // A dropped sender (the RunningServer dropped) also stops.
                () = stopping(&mut shutdown) => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(serve_connection(stream, peer, tls.clone(), app.clone(), shutdown.clone()));
                    }
                    Err(error) => {
                        // Typically out of file descriptors: back off a little.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        health.set_shutting_down();
        tracing::info!(
            connections = connections.len(),
            grace_seconds = grace.as_secs_f64(),
            "shutting down: no new connections, waiting for in-flight requests"
        );
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                connections = connections.len(),
                "grace period over: closing the remaining connections"
            );
            connections.shutdown().await;
        }
        if let Some(controllers) = controllers
            && tokio::time::timeout(grace, controllers).await.is_err()
        {
            tracing::warn!("the controllers did not stop within the grace period");
        }
        store.close().await.map_err(ServerError::CloseStore)?;
        tracing::info!("server stopped, store closed");
        Ok(())
    }
}

/// One connection: TLS handshake (if any), then HTTP/1.1 or HTTP/2 until
/// the client leaves or shutdown asks the connection to wind down.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return serve_http(stream, peer, app, shutdown).await;
    };
    let mut handshake_shutdown = shutdown.clone();
    let stream = tokio::select! {
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = stopping(&mut handshake_shutdown) => return,
    };
    serve_http(stream, peer, app, shutdown).await
}

async fn serve_http<I>(io: I, peer: SocketAddr, app: Router, mut shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopping(&mut shutdown) => {
            // HTTP/1: close after the current response; HTTP/2: GOAWAY,
            // then finish the open streams.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// Whether a request keeps its response open indefinitely (Kubernetes'
/// long-running requests): watches, log follows, exec/attach/port-forward
/// and proxy.
fn is_long_running(request: &Request) -> bool {
    let Some(info) = metrics::request_info(request) else {
        return false;
    };
    if info.verb == Verb::Watch {
        return true;
    }
    match info.subresource.as_deref() {
        Some("exec" | "attach" | "portforward" | "proxy") => true,
        Some("log") => pod_logs::follows(request.uri().query()),
        _ => false,
    }
}

/// Middleware: the body of a long-running response ends (cleanly, between
/// frames) when shutdown starts, so that watches do not hold the server
/// open for the whole grace period. Other responses are left alone.
async fn end_long_running_on_shutdown(
    State(shutdown): State<watch::Receiver<bool>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_long_running(&request) {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    response.map(|body| Body::new(EndOnShutdown::new(body, shutdown)))
}

/// Resolves once shutdown is signalled, or the server is gone (the sender
/// dropped).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// A body that ends early once shutdown is signalled.
struct EndOnShutdown {
    inner: Body,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    ended: bool,
}

impl EndOnShutdown {
    fn new(inner: Body, mut shutdown: watch::Receiver<bool>) -> Self {
        Self {
            inner,
            shutdown: Box::pin(async move { stopping(&mut shutdown).await }),
            ended: false,
        }
    }
}

impl http_body::Body for EndOnShutdown {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if this.shutdown.as_mut().poll(cx).is_ready() {
            this.ended = true;
            return Poll::Ready(None);
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // It may end before the inner body would: no exact size.
        SizeHint::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[test]
    fn client_addresses() {
        let check = |bound: &str, expect: &str| {
            assert_eq!(
                client_address(bound.parse().unwrap()).to_string(),
                expect,
                "{bound}"
            );
        };
        check("0.0.0.0:6443", "127.0.0.1:6443");
        check("[::]:6443", "[::1]:6443");
        check("10.0.0.5:7443", "10.0.0.5:7443");
        check("[fd00::1]:6443", "[fd00::1]:6443");
    }

    #[test]
    fn long_running_requests() {
        let check = |method: &str, uri: &str, expect: bool| {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            assert_eq!(is_long_running(&request), expect, "{method} {uri}");
        };
        check("GET", "/api/v1/pods?watch=true", true);
        check("GET", "/api/v1/watch/namespaces/a/pods", true);
        check("GET", "/api/v1/namespaces/a/pods/p/log?follow=true", true);
        check("GET", "/api/v1/namespaces/a/pods/p/log", false);
        check("POST", "/api/v1/namespaces/a/pods/p/exec?command=sh", true);
        check("GET", "/api/v1/pods", false);
        check("GET", "/api/v1/namespaces/a/pods/p", false);
        check("GET", "/healthz", false);
    }

    #[tokio::test]
    async fn long_running_bodies_end_at_shutdown() {
        let (shutdown, signal) = watch::channel(false);
        // A body that never ends by itself, like a quiet watch.
        let (sender, never_ending) = {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, axum::Error>>(1);
            (
                tx,
                Body::new(http_body_util::StreamBody::new(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                )),
            )
        };
        let mut body = EndOnShutdown::new(never_ending, signal);
        sender
            .send(Ok(Frame::data(Bytes::from_static(
                b"{\"type\":\"ADDED\"}\n",
            ))))
            .await
            .unwrap();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "{\"type\":\"ADDED\"}\n");

        let pending = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        assert!(pending.is_err(), "the body should wait for more events");
        shutdown.send(true).unwrap();
        assert!(body.frame().await.is_none(), "the body ends at shutdown");
        assert!(http_body::Body::is_end_stream(&body));
        // The producer is still there; the body ended anyway.
        drop(sender);
    }

    #[test]
    fn kubeconfig_shape() {
        let yaml = kubeconfig_yaml("https://127.0.0.1:6443", Some("PEM"), "t0k3n").unwrap();
        let value: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(value["current-context"], "skiff");
        assert_eq!(value["clusters"][0]["name"], "skiff");
        assert_eq!(
            value["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            value["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
        assert_eq!(value["users"][0]["name"], "admin");
        assert_eq!(value["users"][0]["user"]["token"], "t0k3n");
        assert_eq!(value["contexts"][0]["context"]["cluster"], "skiff");
        assert_eq!(value["contexts"][0]["context"]["user"], "admin");
        let plain = kubeconfig_yaml("http://127.0.0.1:6443", None, "t").unwrap();
        assert!(!plain.contains("certificate-authority-data"), "{plain}");
    }
}
