//! The node API: the agent's HTTPS endpoint that the API server calls, as
//! kube-apiserver calls the kubelet on port 10250 (for `kubectl logs` and
//! `kubectl exec`).
//!
//! - `GET /healthz` answers `ok`, without a token.
//! - `GET /containerLogs/{namespace}/{pod}/{container}?<options>` streams a
//!   container's log ([`logs::stream`] over what [`LogSource`] locates),
//!   with the kubelet's query options ([`LogOptions::from_query`]).
//! - `GET` or `POST /exec/{namespace}/{pod}/{container}?command=...&input=1
//!   &output=1&error=1&tty=1` runs a command in the container that
//!   [`PodContainers`] locates, through its runtime's exec, and upgrades
//!   to a WebSocket speaking Kubernetes' channel subprotocols (see
//!   [`exec`]). The options and the handshake are checked and the process
//!   started before the upgrade, so that every refusal is a `Status`.
//!
//! Every other request needs `Authorization: Bearer <token>` with the one
//! token of [`NodeApiConfig`]. Failures are Kubernetes `Status` bodies,
//! mapped from errors in one place (`ApiFailure`): 401 without the token,
//! 400 for bad options, for a container without the log asked for (not
//! started, no previous instance; as the kubelet), for an exec that is not
//! a WebSocket upgrade and for a runtime that cannot exec (its reason as
//! the message, e.g. `exec is not supported for Wasm pods`), 404 for an
//! unknown pod, container or path, 405 for other methods, 500 when the
//! runtime fails.
//!
//! TLS with rustls (ring), ALPN `h2` and `http/1.1`; each connection is
//! served by hyper's automatic HTTP/1.1-or-2 server. Shutdown stops
//! accepting, ends followed logs, lets connections finish for up to
//! [`SHUTDOWN_GRACE`] and then closes them.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{StreamExt as _, TryStreamExt as _};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use jiff::Timestamp;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use skiff_sdk::runtime::RuntimeError;

use crate::exec::{self, ExecOptions, ExecOptionsError, Handshake, HandshakeError};
use crate::logs::{self, LocateError, LogOptions, LogOptionsError, LogSource};
use crate::pod_containers::{LookupError, PodContainers};

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a graceful stop waits for open connections before closing
/// them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// ALPN protocols offered, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// How the node API listens and whom it lets in.
#[derive(Clone)]
pub struct NodeApiConfig {
    /// The address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The serving certificate chain, PEM, leaf first.
    pub certificate_pem: String,
    /// The serving certificate's private key, PEM.
    pub private_key_pem: String,
    /// The one bearer token accepted (the API server presents it).
    pub token: String,
}

impl std::fmt::Debug for NodeApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeApiConfig")
            .field("listen", &self.listen)
            .field("certificate_pem", &"<certificate>")
            .field("private_key_pem", &"<redacted>")
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why the node API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeApiError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate is not PEM or holds no certificate.
    #[error("the node API certificate holds no PEM certificate")]
    Certificate(#[source] Option<rustls::pki_types::pem::Error>),
    /// The private key is not a PEM private key.
    #[error("the node API private key is not a PEM private key")]
    PrivateKey(#[source] rustls::pki_types::pem::Error),
    /// rustls refused the certificate or key (e.g. they do not match).
    #[error("the node API certificate and key cannot be used")]
    Tls(#[source] rustls::Error),
}

/// The running node API.
#[derive(Debug)]
pub struct NodeApi {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl NodeApi {
    /// The address it listens on (with the port chosen, if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops gracefully (as the `shutdown` future of [`serve`] does) and
    /// waits until every connection is closed. Dropping a [`NodeApi`]
    /// instead leaves it serving until that future completes.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the node API task failed");
        }
    }
}

/// Binds `config.listen` and serves the node API in a background task
/// until `shutdown` completes or [`NodeApi::stop`] is called: logs from
/// `logs`, exec in the containers of `containers`.
pub async fn serve(
    config: NodeApiConfig,
    logs: Arc<dyn LogSource>,
    containers: Arc<PodContainers>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<NodeApi, NodeApiError> {
    let acceptor = TlsAcceptor::from(tls_config(&config)?);
    let bind = |source| NodeApiError::Bind {
        address: config.listen,
        source,
    };
    let listener = TcpListener::bind(config.listen).await.map_err(bind)?;
    let local_addr = listener.local_addr().map_err(bind)?;
    let (draining_sender, draining) = watch::channel(false);
    let app = router(AppState {
        logs,
        containers,
        token_digest: Arc::new(sha256(config.token.as_bytes())),
        draining: draining.clone(),
    });
    let (stop, stopped) = watch::channel(false);
    let serving = Serving {
        listener,
        acceptor,
        app,
        draining_sender,
        draining,
    };
    let task = tokio::spawn(serving.run(Box::pin(shutdown), stopped));
    tracing::info!(address = %local_addr, "node API listening");
    Ok(NodeApi {
        local_addr,
        stop,
        task,
    })
}

/// The rustls configuration: the certificate, ring, ALPN `h2` and
/// `http/1.1`.
fn tls_config(config: &NodeApiConfig) -> Result<Arc<ServerConfig>, NodeApiError> {
    let chain = CertificateDer::pem_slice_iter(config.certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| NodeApiError::Certificate(Some(error)))?;
    if chain.is_empty() {
        return Err(NodeApiError::Certificate(None));
    }
    let key = PrivateKeyDer::from_pem_slice(config.private_key_pem.as_bytes())
        .map_err(NodeApiError::PrivateKey)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(NodeApiError::Tls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(NodeApiError::Tls)?;
    tls.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(tls))
}

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    logs: Arc<dyn LogSource>,
    containers: Arc<PodContainers>,
    /// SHA-256 of the accepted token: presented tokens are hashed and
    /// compared in constant time.
    token_digest: Arc<[u8; 32]>,
    /// Turns true when shutting down: followed logs and exec sessions end.
    draining: watch::Receiver<bool>,
}

/// The routes. `/healthz` is open; everything else (unknown paths too)
/// needs the token.
fn router(state: AppState) -> Router {
    let authenticated = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(exec_in_container).post(exec_in_container),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(authenticated)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn not_found() -> ApiFailure {
    ApiFailure::NotFound
}

async fn method_not_allowed() -> ApiFailure {
    ApiFailure::MethodNotAllowed
}

/// Lets a request through only with the bearer token.
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let authorized = bearer_token(request.headers())
        .is_some_and(|token| constant_time_eq(&sha256(token), &state.token_digest));
    if !authorized {
        tracing::debug!(path = %request.uri().path(), "node API request without a valid token");
        return ApiFailure::Unauthorized.into_response();
    }
    next.run(request).await
}

/// The token of `Authorization: Bearer <token>` (scheme in any case).
fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, token) = (&value[..space], value[space..].trim_ascii());
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut digest = [0; 32];
    digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    digest
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /containerLogs/{namespace}/{pod}/{container}`: the log, streamed
/// as it is read (each chunk is sent at once, so `follow` works over
/// HTTP/1.1 chunked and HTTP/2 alike).
async fn container_logs(
    State(state): State<AppState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    uri: Uri,
) -> Result<Response, ApiFailure> {
    let options = LogOptions::from_query(uri.query().unwrap_or(""), Timestamp::now())?;
    let log = state
        .logs
        .locate(&namespace, &pod, &container, options.previous)?;
    tracing::debug!(
        %namespace,
        %pod,
        %container,
        follow = options.follow,
        previous = options.previous,
        "serving container logs"
    );
    let path = log.path.clone();
    let mut draining = state.draining.clone();
    let body = logs::stream(log, options)
        .inspect_err(move |error| {
            tracing::warn!(path = %path.display(), %error, "container log stream failed");
        })
        .take_until(async move { stopping(&mut draining).await });
    Ok((
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(body),
    )
        .into_response())
}

/// `GET`/`POST /exec/{namespace}/{pod}/{container}`: checks the options
/// and the WebSocket handshake, starts the command through the
/// container's runtime, answers `101 Switching Protocols` and runs the
/// session on the upgraded connection in a task of its own.
async fn exec_in_container(
    State(state): State<AppState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    mut request: Request,
) -> Result<Response, ApiFailure> {
    let options = ExecOptions::from_query(request.uri().query().unwrap_or(""))?;
    let target = state.containers.lookup(&namespace, &pod, &container)?;
    let handshake = Handshake::from_headers(request.headers())?;
    if request
        .extensions()
        .get::<hyper::upgrade::OnUpgrade>()
        .is_none()
    {
        // HTTP/2: no upgrade on this connection.
        return Err(HandshakeError::UpgradeRequired.into());
    }
    let upgrade = hyper::upgrade::on(&mut request);
    let process = target.runtime.exec(&target.id, options.request()).await?;
    tracing::debug!(
        %namespace,
        %pod,
        %container,
        command = ?options.command,
        protocol = handshake.protocol.name(),
        "exec session starting"
    );
    let protocol = handshake.protocol;
    let draining = state.draining.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                exec::run_session(TokioIo::new(upgraded), protocol, options, process, draining)
                    .await
            }
            Err(error) => tracing::debug!(%error, "exec: the upgrade did not complete"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = handshake.response_headers();
    Ok(response)
}

/// Everything the node API answers with an error; the one place where
/// failures become Kubernetes `Status` bodies.
#[derive(Debug)]
enum ApiFailure {
    Unauthorized,
    BadOptions(LogOptionsError),
    Locate(LocateError),
    BadExecOptions(ExecOptionsError),
    Handshake(HandshakeError),
    Lookup(LookupError),
    Runtime(RuntimeError),
    NotFound,
    MethodNotAllowed,
}

impl From<ExecOptionsError> for ApiFailure {
    fn from(error: ExecOptionsError) -> Self {
        ApiFailure::BadExecOptions(error)
    }
}

impl From<HandshakeError> for ApiFailure {
    fn from(error: HandshakeError) -> Self {
        ApiFailure::Handshake(error)
    }
}

impl From<LookupError> for ApiFailure {
    fn from(error: LookupError) -> Self {
        ApiFailure::Lookup(error)
    }
}

impl From<RuntimeError> for ApiFailure {
    fn from(error: RuntimeError) -> Self {
        ApiFailure::Runtime(error)
    }
}

impl From<LogOptionsError> for ApiFailure {
    fn from(error: LogOptionsError) -> Self {
        ApiFailure::BadOptions(error)
    }
}

impl From<LocateError> for ApiFailure {
    fn from(error: LocateError) -> Self {
        ApiFailure::Locate(error)
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let (code, reason, message) = match self {
            ApiFailure::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized".to_owned(),
            ),
            ApiFailure::BadOptions(error) => {
                (StatusCode::BAD_REQUEST, "BadRequest", error.to_string())
            }
            ApiFailure::Locate(
                error @ (LocateError::PodNotFound { .. } | LocateError::ContainerNotFound { .. }),
            ) => (StatusCode::NOT_FOUND, "NotFound", error.to_string()),
            ApiFailure::Locate(error) => (StatusCode::BAD_REQUEST, "BadRequest", error.to_string()),
            ApiFailure::BadExecOptions(error) => {
                (StatusCode::BAD_REQUEST, "BadRequest", error.to_string())
            }
            ApiFailure::Handshake(error) => {
                (StatusCode::BAD_REQUEST, "BadRequest", error.to_string())
            }
            ApiFailure::Lookup(error) => (StatusCode::NOT_FOUND, "NotFound", error.to_string()),
            ApiFailure::Runtime(error @ RuntimeError::NotFound { .. }) => {
                (StatusCode::NOT_FOUND, "NotFound", error.to_string())
            }
            ApiFailure::Runtime(
                error @ (RuntimeError::Unsupported { .. }
                | RuntimeError::InvalidState { .. }
                | RuntimeError::InvalidArgument { .. }),
            ) => (StatusCode::BAD_REQUEST, "BadRequest", error.to_string()),
            ApiFailure::Runtime(error) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!(
                    "error executing command in container: {}",
                    skiff_sdk::error_chain(&error)
                ),
            ),
            ApiFailure::NotFound => (
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource".to_owned(),
            ),
            ApiFailure::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource".to_owned(),
            ),
        };
        let status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        });
        (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            status.to_string(),
        )
            .into_response()
    }
}

/// Resolves once `flag` is true; never if its sender is gone without
/// saying so (a dropped [`NodeApi`] does not stop the server).
async fn stopping(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The serving task's state.
struct Serving {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    /// Tells connections and followed logs to wind down.
    draining_sender: watch::Sender<bool>,
    draining: watch::Receiver<bool>,
}

impl Serving {
    /// Accepts until `shutdown` or a stop, then drains the connections.
    async fn run(
        self,
        mut shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let Serving {
            listener,
            acceptor,
            app,
            draining_sender,
            draining,
        } = self;
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = stopping(&mut stop) => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(serve_connection(
                            stream,
                            peer,
                            acceptor.clone(),
                            app.clone(),
                            draining.clone(),
                        ));
                    }
                    Err(error) => {
                        // Typically out of file descriptors: back off a little.
                        tracing::warn!(%error, "node API: accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = draining_sender.send(true);
        tracing::info!(
            connections = connections.len(),
            "node API stopping: waiting for open connections"
        );
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                connections = connections.len(),
                "node API grace period over: closing the remaining connections"
            );
            connections.shutdown().await;
        }
        tracing::info!("node API stopped");
    }
}

/// One connection: the TLS handshake, then HTTP/1.1 or HTTP/2 (upgrades
/// allowed, for exec) until the client leaves or draining starts; an
/// upgraded connection lives on in its exec session.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    mut draining: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = tokio::select! {
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "node API: TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "node API: TLS handshake timed out");
                return;
            }
        },
        () = stopping(&mut draining) => return,
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopping(&mut draining) => {
            // HTTP/1: close after the current response; HTTP/2: GOAWAY,
            // then finish the open streams.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "node API connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write as _;
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::Incoming;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::RootCertStore;
    use skiff_sdk::runtime::log::{LogWriter, Stream};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream;

    use super::*;
    use crate::logs::ContainerLog;

    const TOKEN: &str = "node-secret";
    /// A guard against hanging tests, not a timing assertion.
    const PATIENCE: Duration = Duration::from_secs(20);

    /// A CA and a serving certificate for 127.0.0.1 signed by it.
    struct Pki {
        ca_pem: String,
        certificate_pem: String,
        private_key_pem: String,
    }

    fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        Pki {
            ca_pem: ca.pem(),
            certificate_pem: leaf.pem(),
            private_key_pem: leaf_key.serialize_pem(),
        }
    }

    /// Logs by `(namespace, pod, container)`; pod `waiting` has a container
    /// that has not started.
    #[derive(Default)]
    struct FakeLogs {
        containers: HashMap<(String, String, String), ContainerLog>,
    }

    impl LogSource for FakeLogs {
        fn locate(
            &self,
            namespace: &str,
            pod: &str,
            container: &str,
            previous: bool,
        ) -> Result<ContainerLog, LocateError> {
            if pod == "waiting" {
                return Err(LocateError::NotStarted {
                    pod: pod.to_owned(),
                    container: container.to_owned(),
                    reason: "ContainerCreating".to_owned(),
                });
            }
            if !self
                .containers
                .keys()
                .any(|(n, p, _)| n == namespace && p == pod)
            {
                return Err(LocateError::PodNotFound {
                    namespace: namespace.to_owned(),
                    pod: pod.to_owned(),
                });
            }
            let key = (namespace.to_owned(), pod.to_owned(), container.to_owned());
            let log = self
                .containers
                .get(&key)
                .ok_or_else(|| LocateError::ContainerNotFound {
                    pod: pod.to_owned(),
                    container: container.to_owned(),
                })?;
            if previous {
                return Err(LocateError::NoPreviousInstance {
                    pod: pod.to_owned(),
                    container: container.to_owned(),
                });
            }
            Ok(log.clone())
        }
    }

    struct Fixture {
        api: NodeApi,
        ca_pem: String,
        _dir: tempfile::TempDir,
        /// `default/web/app`: exited, two lines.
        /// `default/web/tail`: running; its writer and finish flag.
        writer: LogWriter,
        finish: watch::Sender<bool>,
        tail_path: PathBuf,
    }

    fn t(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    async fn start() -> Fixture {
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let app_path = dir.path().join("app.log");
        let mut app = LogWriter::open(&app_path).unwrap();
        app.write(t(1), Stream::Stdout, b"first line\n").unwrap();
        app.write(t(2), Stream::Stderr, b"second line\n").unwrap();
        app.finish(t(3)).unwrap();
        let tail_path = dir.path().join("tail.log");
        let writer = LogWriter::open(&tail_path).unwrap();
        let (finish, finished) = watch::channel(false);
        let (_, exited) = watch::channel(true);

        let mut logs = FakeLogs::default();
        let key = |c: &str| ("default".to_owned(), "web".to_owned(), c.to_owned());
        logs.containers.insert(
            key("app"),
            ContainerLog {
                path: app_path,
                finished: exited,
            },
        );
        logs.containers.insert(
            key("tail"),
            ContainerLog {
                path: tail_path.clone(),
                finished,
            },
        );
        let config = NodeApiConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            certificate_pem: pki.certificate_pem,
            private_key_pem: pki.private_key_pem,
            token: TOKEN.to_owned(),
        };
        let api = serve(
            config,
            Arc::new(logs),
            Arc::default(),
            std::future::pending(),
        )
        .await
        .unwrap();
        Fixture {
            api,
            ca_pem: pki.ca_pem,
            _dir: dir,
            writer,
            finish,
            tail_path,
        }
    }

    /// A client connection over TLS that trusts the test CA, speaking the
    /// protocol `alpn` asks for.
    enum Client {
        Http1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
        Http2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
    }

    async fn tls_connect(address: SocketAddr, ca_pem: &str, alpn: &[u8]) -> TlsStream<TcpStream> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(certificate.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(address).await.unwrap();
        let name =
            rustls::pki_types::ServerName::IpAddress(IpAddr::from(Ipv4Addr::LOCALHOST).into());
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        tls
    }

    async fn connect(address: SocketAddr, ca_pem: &str, alpn: &[u8]) -> Client {
        let io = TokioIo::new(tls_connect(address, ca_pem, alpn).await);
        if alpn == b"h2" {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            Client::Http2(sender)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            Client::Http1(sender)
        }
    }

    impl Client {
        async fn send(
            &mut self,
            method: &str,
            path: &str,
            token: Option<&str>,
        ) -> hyper::Response<Incoming> {
            let mut request = hyper::Request::builder()
                .method(method)
                .uri(format!("https://127.0.0.1{path}"));
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = request.body(Empty::new()).unwrap();
            let response = match self {
                Client::Http1(sender) => sender.send_request(request),
                Client::Http2(sender) => {
                    return tokio::time::timeout(PATIENCE, sender.send_request(request))
                        .await
                        .unwrap()
                        .unwrap();
                }
            };
            tokio::time::timeout(PATIENCE, response)
                .await
                .unwrap()
                .unwrap()
        }
    }

    /// One request on a new HTTP/1.1 connection: the code and the body.
    async fn get(
        fixture: &Fixture,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, Option<String>, String) {
        let mut client = connect(fixture.api.local_addr(), &fixture.ca_pem, b"http/1.1").await;
        let response = client.send(method, path, token).await;
        let code = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = tokio::time::timeout(PATIENCE, response.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        (
            code,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    /// Checks a `Status` body.
    #[track_caller]
    fn check_status(
        answer: (StatusCode, Option<String>, String),
        code: u16,
        reason: &str,
        message: &str,
    ) {
        let (status, content_type, body) = answer;
        assert_eq!(status.as_u16(), code, "{body}");
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            })
        );
    }

    #[tokio::test]
    async fn healthz_needs_no_token() {
        let fixture = start().await;
        let (code, _, body) = get(&fixture, "GET", "/healthz", None).await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "ok"));
        fixture.api.stop().await;
    }

    #[tokio::test]
    async fn logs_need_the_token() {
        let fixture = start().await;
        let path = "/containerLogs/default/web/app";
        for token in [None, Some("wrong"), Some(""), Some("node-secret2")] {
            check_status(
                get(&fixture, "GET", path, token).await,
                401,
                "Unauthorized",
                "Unauthorized",
            );
        }
        // Other schemes do not count; unknown paths do not say so without it.
        let mut client = connect(fixture.api.local_addr(), &fixture.ca_pem, b"http/1.1").await;
        let mut request = hyper::Request::get(path)
            .header(header::AUTHORIZATION, format!("Basic {TOKEN}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        request
            .headers_mut()
            .insert(header::HOST, "127.0.0.1".parse().unwrap());
        let Client::Http1(sender) = &mut client else {
            unreachable!()
        };
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        check_status(
            get(&fixture, "GET", "/nowhere", None).await,
            401,
            "Unauthorized",
            "Unauthorized",
        );
        fixture.api.stop().await;
    }

    #[tokio::test]
    async fn logs_with_options_over_both_protocols() {
        let fixture = start().await;
        let (code, content_type, body) = get(
            &fixture,
            "GET",
            "/containerLogs/default/web/app",
            Some(TOKEN),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("text/plain"));
        assert_eq!(body, "first line\nsecond line\n");

        let (code, _, body) = get(
            &fixture,
            "GET",
            "/containerLogs/default/web/app?timestamps=true&tailLines=1",
            Some(TOKEN),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body, "2023-11-14T22:13:22.000000000Z second line\n");

        let mut client = connect(fixture.api.local_addr(), &fixture.ca_pem, b"h2").await;
        let response = client
            .send(
                "GET",
                "/containerLogs/default/web/app?limitBytes=5&sinceTime=2023-11-14T22%3A13%3A21Z",
                Some(TOKEN),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "first");
        fixture.api.stop().await;
    }

    #[tokio::test]
    async fn failures_are_status_bodies() {
        let fixture = start().await;
        let token = Some(TOKEN);
        check_status(
            get(&fixture, "GET", "/containerLogs/default/nope/app", token).await,
            404,
            "NotFound",
            "pod \"default/nope\" does not exist",
        );
        check_status(
            get(&fixture, "GET", "/containerLogs/default/web/nope", token).await,
            404,
            "NotFound",
            "container \"nope\" not found in pod \"web\"",
        );
        check_status(
            get(
                &fixture,
                "GET",
                "/containerLogs/default/web/app?previous=true",
                token,
            )
            .await,
            400,
            "BadRequest",
            "previous terminated container \"app\" in pod \"web\" not found",
        );
        check_status(
            get(&fixture, "GET", "/containerLogs/default/waiting/app", token).await,
            400,
            "BadRequest",
            "container \"app\" in pod \"waiting\" is waiting to start: ContainerCreating",
        );
        check_status(
            get(
                &fixture,
                "GET",
                "/containerLogs/default/web/app?tailLines=-1",
                token,
            )
            .await,
            400,
            "BadRequest",
            "tailLines: Invalid value: -1: must be greater than or equal to 0",
        );
        check_status(
            get(&fixture, "GET", "/containerLogs/default/web", token).await,
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        check_status(
            get(
                &fixture,
                "GET",
                "/exec/default/web/app?command=ls&output=1",
                token,
            )
            .await,
            404,
            "NotFound",
            "pod \"default/web\" does not exist",
        );
        check_status(
            get(&fixture, "GET", "/exec/default/web/app?output=1", token).await,
            400,
            "BadRequest",
            "you must specify a command to run in the container",
        );
        for path in ["/containerLogs/default/web/app", "/healthz"] {
            check_status(
                get(&fixture, "POST", path, token).await,
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            );
        }
        fixture.api.stop().await;
    }

    /// Reads `body` until what was read ends with `expect`.
    async fn read_until(body: &mut Incoming, output: &mut String, expect: &str) {
        while !output.ends_with(expect) {
            let frame = tokio::time::timeout(PATIENCE, body.frame())
                .await
                .unwrap_or_else(|_| panic!("no {expect:?} after {output:?}"))
                .unwrap_or_else(|| panic!("body ended before {expect:?}: {output:?}"))
                .unwrap();
            if let Ok(data) = frame.into_data() {
                output.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    #[tokio::test]
    async fn follow_streams_new_lines_until_the_container_exits() {
        for alpn in [&b"h2"[..], b"http/1.1"] {
            let mut fixture = start().await;
            fixture
                .writer
                .write(t(1), Stream::Stdout, b"before\n")
                .unwrap();
            let mut client = connect(fixture.api.local_addr(), &fixture.ca_pem, alpn).await;
            let response = client
                .send(
                    "GET",
                    "/containerLogs/default/web/tail?follow=true",
                    Some(TOKEN),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            let mut output = String::new();
            read_until(&mut body, &mut output, "before\n").await;
            fixture
                .writer
                .write(t(2), Stream::Stdout, b"after\n")
                .unwrap();
            read_until(&mut body, &mut output, "after\n").await;

            fixture.finish.send(true).unwrap();
            let rest = tokio::time::timeout(PATIENCE, body.collect())
                .await
                .unwrap()
                .unwrap()
                .to_bytes();
            assert_eq!(rest, "");
            assert_eq!(output, "before\nafter\n");
            fixture.api.stop().await;
        }
    }

    #[tokio::test]
    async fn stop_ends_followed_logs_and_closes() {
        let fixture = start().await;
        let address = fixture.api.local_addr();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&fixture.tail_path)
            .unwrap()
            .write_all(b"2023-11-14T22:13:21Z stdout F running\n")
            .unwrap();
        let mut client = connect(address, &fixture.ca_pem, b"h2").await;
        let response = client
            .send(
                "GET",
                "/containerLogs/default/web/tail?follow=1",
                Some(TOKEN),
            )
            .await;
        let mut body = response.into_body();
        let mut output = String::new();
        read_until(&mut body, &mut output, "running\n").await;

        let stopped = tokio::spawn(fixture.api.stop());
        let rest = tokio::time::timeout(PATIENCE, body.collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(rest, "");
        tokio::time::timeout(PATIENCE, stopped)
            .await
            .unwrap()
            .unwrap();
        assert!(TcpStream::connect(address).await.is_err());
        // The container still runs: only the server ended the follow.
        assert!(!*fixture.finish.borrow());
    }

    #[tokio::test]
    async fn the_shutdown_future_stops_the_server() {
        let pki = pki();
        let (trigger, triggered) = tokio::sync::oneshot::channel::<()>();
        let config = NodeApiConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            certificate_pem: pki.certificate_pem,
            private_key_pem: pki.private_key_pem,
            token: TOKEN.to_owned(),
        };
        let api = serve(
            config,
            Arc::new(FakeLogs::default()),
            Arc::default(),
            async {
                let _ = triggered.await;
            },
        )
        .await
        .unwrap();
        let address = api.local_addr();
        let mut client = connect(address, &pki.ca_pem, b"http/1.1").await;
        assert_eq!(
            client.send("GET", "/healthz", None).await.status(),
            StatusCode::OK
        );
        drop(client);
        trigger.send(()).unwrap();
        tokio::time::timeout(PATIENCE, api.task)
            .await
            .unwrap()
            .unwrap();
        assert!(TcpStream::connect(address).await.is_err());
    }

    #[tokio::test]
    async fn bad_tls_material_is_refused() {
        let pki = pki();
        let other = pki_key();
        let config = |certificate_pem: &str, private_key_pem: &str| NodeApiConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            certificate_pem: certificate_pem.to_owned(),
            private_key_pem: private_key_pem.to_owned(),
            token: TOKEN.to_owned(),
        };
        let logs = || Arc::new(FakeLogs::default()) as Arc<dyn LogSource>;
        let error = |config| async {
            serve(config, logs(), Arc::default(), async {})
                .await
                .unwrap_err()
        };
        assert!(matches!(
            error(config("", &pki.private_key_pem)).await,
            NodeApiError::Certificate(None)
        ));
        assert!(matches!(
            error(config(&pki.certificate_pem, "not a key")).await,
            NodeApiError::PrivateKey(_)
        ));
        assert!(matches!(
            error(config(&pki.certificate_pem, &other)).await,
            NodeApiError::Tls(_)
        ));
    }

    fn pki_key() -> String {
        KeyPair::generate().unwrap().serialize_pem()
    }

    #[test]
    fn bearer_tokens() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert_eq!(bearer_token(&headers("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearerabc")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
        assert!(constant_time_eq(&sha256(b"a"), &sha256(b"a")));
        assert!(!constant_time_eq(&sha256(b"a"), &sha256(b"b")));
    }
}
