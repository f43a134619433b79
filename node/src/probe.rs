//! Container probes as the kubelet runs them: liveness, readiness and startup
//! checks of one container by HTTP GET, TCP connect, exec or gRPC.
//!
//! Three layers, each usable on its own:
//! - [`action`] and [`Timing::from_probe`] turn a container's `Probe` into
//!   what to do and when (pure; named ports resolve against the container).
//! - [`probe_once`] runs one attempt under the probe's timeout and answers a
//!   [`ProbeResult`] worded as the kubelet words it.
//! - [`spawn`] starts a [`Prober`]: a task that waits the initial delay,
//!   probes every period, applies the success and failure thresholds and
//!   publishes a [`ProbeState`] on a watch channel. Dropping it stops it.
//!
//! The policy around a prober belongs to the pod worker, as it belongs to the
//! kubelet's probe manager: it starts liveness and readiness probers only
//! once the startup probe (if any) has succeeded, reads readiness
//! [`Verdict::Unknown`] as not ready and liveness `Unknown` as alive, and
//! restarts a container whose liveness or startup verdict is
//! [`Verdict::Failure`] (and then starts new probers).

use std::error::Error as _;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONNECTION, HOST, LOCATION, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use skiff_sdk::runtime::{
    ContainerId, ExecOutput, ExecProcess, ExecRequest, Runtime, RuntimeError,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{self, MissedTickBehavior};
use tokio_rustls::TlsConnector;
use tracing::Instrument as _;

k8s_openapi::k8s_if_le_1_33! { const KUBE_PROBE_USER_AGENT: &str = "kube-probe/1.33"; }
k8s_openapi::k8s_if_1_34! { const KUBE_PROBE_USER_AGENT: &str = "kube-probe/1.34"; }
k8s_openapi::k8s_if_1_35! { const KUBE_PROBE_USER_AGENT: &str = "kube-probe/1.35"; }
k8s_openapi::k8s_if_1_36! { const KUBE_PROBE_USER_AGENT: &str = "kube-probe/1.36"; }
k8s_openapi::k8s_if_ge_1_37! { const KUBE_PROBE_USER_AGENT: &str = "kube-probe/1.37"; }

/// Redirects to the same host followed before an HTTP probe gives up (the
/// kubelet's limit, Go's default).
const MAX_REDIRECTS: usize = 10;
/// How long past its timeout an [`ExecProber`] may take before the attempt
/// is cut short: implementations enforce the timeout, this is a backstop.
const EXEC_TIMEOUT_GRACE: Duration = Duration::from_secs(1);
/// Kubernetes' default `periodSeconds`.
const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// Kubernetes' default `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Kubernetes' default `failureThreshold`.
const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// Which of a container's three probes a prober runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Failing restarts the container.
    Liveness,
    /// Decides whether the container (and so the pod) is ready for traffic.
    Readiness,
    /// Holds back the other probes until the container has started; failing
    /// restarts the container.
    Startup,
}

impl fmt::Display for ProbeKind {
    /// As the kubelet's events say it ("Liveness probe failed: ...").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        })
    }
}

/// The scheme of an HTTP probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (the default).
    Http,
    /// HTTPS without certificate verification, as the kubelet does it.
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// The wire protocol of an HTTP probe (`httpGet.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpProtocol {
    /// HTTP/1.1 (the default).
    Http1,
    /// HTTP/2 cleartext with prior knowledge (h2c); HTTP scheme only.
    Http2,
}

/// The connection mode of a gRPC probe (`grpc.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcMode {
    /// A plaintext connection (the default).
    Plaintext,
    /// TLS without certificate verification.
    Tls,
}

/// What one probe attempt does, resolved from a `Probe` by [`action`]:
/// hosts default to the pod IP and named ports are numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// An HTTP GET; 200 ≤ status < 400 succeeds.
    Http {
        /// HTTP or HTTPS.
        scheme: Scheme,
        /// The host to connect to (an IP address or a DNS name, IPv6
        /// without brackets).
        host: String,
        /// The port to connect to.
        port: u16,
        /// Path and query as sent: starts with `/`, no fragment, escaped.
        path: String,
        /// Extra request headers in order; `Host`, `User-Agent` and
        /// `Accept` here replace the defaults.
        headers: Vec<(String, String)>,
        /// HTTP/1.1 or h2c.
        protocol: HttpProtocol,
    },
    /// A TCP connect, closed at once; connecting succeeds.
    Tcp {
        /// The host to connect to.
        host: String,
        /// The port to connect to.
        port: u16,
    },
    /// A command run in the container through an [`ExecProber`]; exit code
    /// 0 succeeds.
    Exec {
        /// The command and its arguments (no shell).
        command: Vec<String>,
    },
    /// A gRPC health check (`grpc.health.v1.Health/Check`).
    Grpc {
        /// The host to connect to (always the pod IP).
        host: String,
        /// The port to connect to.
        port: u16,
        /// The service name in the request; `None` asks about the server.
        service: Option<String>,
        /// Plaintext or TLS.
        mode: GrpcMode,
    },
}

impl fmt::Display for Action {
    /// A one-line summary for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Http {
                scheme,
                host,
                port,
                path,
                ..
            } => write!(f, "GET {scheme}://{}{path}", join_host_port(host, *port)),
            Action::Tcp { host, port } => write!(f, "tcp {}", join_host_port(host, *port)),
            Action::Exec { command } => write!(f, "exec {command:?}"),
            Action::Grpc {
                host,
                port,
                service,
                ..
            } => write!(
                f,
                "grpc {} service {:?}",
                join_host_port(host, *port),
                service.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Why a `Probe` cannot be turned into an [`Action`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeError {
    /// None of exec, httpGet, tcpSocket and grpc is set.
    #[error("probe has no handler: one of exec, httpGet, tcpSocket or grpc must be set")]
    NoHandler,
    /// More than one handler is set.
    #[error("probe has more than one handler ({handlers}): exactly one may be set")]
    MultipleHandlers {
        /// The handlers that are set, comma-separated.
        handlers: String,
    },
    /// A named port that none of the container's ports is called.
    #[error("port {name:?} not found in the container's ports")]
    PortNotFound {
        /// The port name.
        name: String,
    },
    /// A port number outside 1..=65535.
    #[error("invalid port number: {port}")]
    InvalidPort {
        /// The number.
        port: i64,
    },
    /// An `httpGet.scheme` other than HTTP or HTTPS.
    #[error("unsupported HTTP probe scheme {scheme:?}: expected HTTP or HTTPS")]
    UnknownScheme {
        /// The scheme.
        scheme: String,
    },
    /// An `httpGet.protocol` other than HTTP1 or HTTP2, or HTTP2 with HTTPS.
    #[error("unsupported HTTP probe protocol {protocol:?} with scheme {scheme}")]
    UnsupportedHttpProtocol {
        /// The protocol.
        protocol: String,
        /// The scheme it was asked with.
        scheme: Scheme,
    },
    /// A `grpc.mode` other than Plaintext or TLS.
    #[error("unsupported gRPC probe mode {mode:?}: expected Plaintext or TLS")]
    UnknownGrpcMode {
        /// The mode.
        mode: String,
    },
    /// An `httpGet.httpHeaders` entry that is not a valid HTTP header.
    #[error("invalid HTTP probe header {name:?}")]
    InvalidHeader {
        /// The header's name.
        name: String,
    },
    /// An exec probe without a command.
    #[error("exec probe has no command")]
    EmptyCommand,
}

/// Resolves what a probe does against its container and pod IP: exactly one
/// handler must be set, `host` defaults to `pod_ip`, a named `port` is
/// looked up in `container.ports` (a name that is a number is taken as the
/// number, as the kubelet does), the HTTP scheme defaults to HTTP and the
/// path to `/`.
pub fn action(probe: &Probe, container: &Container, pod_ip: IpAddr) -> Result<Action, ProbeError> {
    let set: Vec<&str> = [
        ("exec", probe.exec.is_some()),
        ("httpGet", probe.http_get.is_some()),
        ("tcpSocket", probe.tcp_socket.is_some()),
        ("grpc", probe.grpc.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    if set.len() > 1 {
        return Err(ProbeError::MultipleHandlers {
            handlers: set.join(", "),
        });
    }
    let host_or_pod_ip = |host: &Option<String>| match host.as_deref() {
        Some(host) if !host.is_empty() => host.to_owned(),
        _ => pod_ip.to_string(),
    };
    if let Some(get) = &probe.http_get {
        let scheme = match get.scheme.as_deref().unwrap_or("") {
            "" => Scheme::Http,
            s if s.eq_ignore_ascii_case("http") => Scheme::Http,
            s if s.eq_ignore_ascii_case("https") => Scheme::Https,
            s => {
                return Err(ProbeError::UnknownScheme {
                    scheme: s.to_owned(),
                });
            }
        };
        let protocol = match (get.protocol.as_deref().unwrap_or(""), scheme) {
            ("" | "HTTP1", _) => HttpProtocol::Http1,
            ("HTTP2", Scheme::Http) => HttpProtocol::Http2,
            (protocol, scheme) => {
                return Err(ProbeError::UnsupportedHttpProtocol {
                    protocol: protocol.to_owned(),
                    scheme,
                });
            }
        };
        let mut headers = Vec::new();
        for header in get.http_headers.iter().flatten() {
            if HeaderName::from_bytes(header.name.as_bytes()).is_err()
                || HeaderValue::from_str(&header.value).is_err()
            {
                return Err(ProbeError::InvalidHeader {
                    name: header.name.clone(),
                });
            }
            headers.push((header.name.clone(), header.value.clone()));
        }
        return Ok(Action::Http {
            scheme,
            host: host_or_pod_ip(&get.host),
            port: resolve_port(&get.port, container)?,
            path: request_path(get.path.as_deref().unwrap_or("")),
            headers,
            protocol,
        });
    }
    if let Some(tcp) = &probe.tcp_socket {
        return Ok(Action::Tcp {
            host: host_or_pod_ip(&tcp.host),
            port: resolve_port(&tcp.port, container)?,
        });
    }
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err(ProbeError::EmptyCommand);
        }
        return Ok(Action::Exec { command });
    }
    if let Some(grpc) = &probe.grpc {
        let mode = match grpc.mode.as_deref().unwrap_or("") {
            "" | "Plaintext" => GrpcMode::Plaintext,
            "TLS" => GrpcMode::Tls,
            mode => {
                return Err(ProbeError::UnknownGrpcMode {
                    mode: mode.to_owned(),
                });
            }
        };
        return Ok(Action::Grpc {
            host: pod_ip.to_string(),
            port: port_number(i64::from(grpc.port))?,
            service: grpc.service.clone(),
            mode,
        });
    }
    Err(ProbeError::NoHandler)
}

/// A probe port: a number, or the name of one of the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, ProbeError> {
    match port {
        IntOrString::Int(number) => port_number(i64::from(*number)),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|port| port.name.as_deref() == Some(name.as_str()));
            match (named, name.parse::<i64>()) {
                (Some(port), _) => port_number(i64::from(port.container_port)),
                (None, Ok(number)) => port_number(number),
                (None, Err(_)) => Err(ProbeError::PortNotFound { name: name.clone() }),
            }
        }
    }
}

fn port_number(port: i64) -> Result<u16, ProbeError> {
    u16::try_from(port)
        .ok()
        .filter(|port| *port != 0)
        .ok_or(ProbeError::InvalidPort { port })
}

/// When and how often a prober probes and how many results it takes to
/// change its verdict, with Kubernetes' defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Wait before the first attempt (`initialDelaySeconds`, default 0).
    pub initial_delay: Duration,
    /// Time between attempts (`periodSeconds`, default 10 s).
    pub period: Duration,
    /// Limit of one attempt (`timeoutSeconds`, default 1 s).
    pub timeout: Duration,
    /// Consecutive successes that make the verdict Success
    /// (`successThreshold`, default 1; liveness and startup probers use 1).
    pub success_threshold: u32,
    /// Consecutive failures that make the verdict Failure
    /// (`failureThreshold`, default 3).
    pub failure_threshold: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            initial_delay: Duration::ZERO,
            period: DEFAULT_PERIOD,
            timeout: DEFAULT_TIMEOUT,
            success_threshold: 1,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
        }
    }
}

impl Timing {
    /// The timing of `probe`. Unset, zero or negative fields take
    /// Kubernetes' defaults (a negative initial delay is none). The success
    /// threshold only counts for readiness: a liveness or startup prober
    /// succeeds after one success, as Kubernetes' validation demands.
    pub fn from_probe(probe: &Probe) -> Timing {
        let seconds = |value: Option<i32>, default: Duration| {
            value
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map_or(default, Duration::from_secs)
        };
        let count = |value: Option<i32>, default: u32| {
            value
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        let defaults = Timing::default();
        Timing {
            initial_delay: seconds(probe.initial_delay_seconds, defaults.initial_delay),
            period: seconds(probe.period_seconds, defaults.period),
            timeout: seconds(probe.timeout_seconds, defaults.timeout),
            success_threshold: count(probe.success_threshold, defaults.success_threshold),
            failure_threshold: count(probe.failure_threshold, defaults.failure_threshold),
        }
    }
}

/// The outcome of one probe attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The check passed.
    Success,
    /// The check failed, with the kubelet's message (e.g. `HTTP probe failed
    /// with statuscode: 500`, `dial tcp 127.0.0.1:8080: connect: connection
    /// refused`).
    Failure(String),
    /// The attempt could not be made (a prober error): the kubelet throws
    /// such results away, and so does [`Prober`].
    Unknown,
}

/// Runs commands in the probed container for exec probes: bound to one
/// container by whoever spawns the prober ([`ExecProbes::for_container`]).
#[async_trait::async_trait]
pub trait ExecProber: Send + Sync {
    /// Runs `command` in the container: exit code 0 is
    /// [`ProbeResult::Success`], another exit code a
    /// [`ProbeResult::Failure`] with the command's output, a command still
    /// running after `timeout` a `Failure` (`command "..." timed out`).
    async fn exec(&self, command: &[String], timeout: Duration) -> ProbeResult;
}

/// The [`ExecProber`] of a runtime that cannot exec: every exec probe fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExec;

#[async_trait::async_trait]
impl ExecProber for NoExec {
    async fn exec(&self, _command: &[String], _timeout: Duration) -> ProbeResult {
        ProbeResult::Failure("exec probes are not supported by this runtime".to_owned())
    }
}

/// How much of an exec probe's output is kept for its failure message
/// (the kubelet's `maxReadLength`).
pub const EXEC_OUTPUT_LIMIT: usize = 10 * 1024;

/// The [`ExecProber`] of one container: runs the probe's command through
/// its runtime's [`Runtime::exec`], keeps the first
/// [`EXEC_OUTPUT_LIMIT`] bytes of stdout then stderr, and judges as the
/// kubelet does: exit code 0 succeeds; another code fails with the output
/// (or the code, without output); a command still running at the timeout
/// fails (`command "..." timed out`); a runtime that cannot exec fails
/// with its reason; any other runtime error is [`ProbeResult::Unknown`].
pub struct RuntimeExec {
    runtime: Arc<dyn Runtime>,
    container: ContainerId,
}

impl RuntimeExec {
    /// The prober of `container` in `runtime`.
    pub fn new(runtime: Arc<dyn Runtime>, container: ContainerId) -> Self {
        Self { runtime, container }
    }
}

#[async_trait::async_trait]
impl ExecProber for RuntimeExec {
    async fn exec(&self, command: &[String], timeout: Duration) -> ProbeResult {
        let timed_out =
            || ProbeResult::Failure(format!("command {:?} timed out", command.join(" ")));
        let attempt = async {
            let request = ExecRequest::new(command.iter().cloned());
            let process = match self.runtime.exec(&self.container, request).await {
                Ok(process) => process,
                Err(error @ RuntimeError::Unsupported { .. }) => {
                    return ProbeResult::Failure(error.to_string());
                }
                Err(error) => {
                    tracing::debug!(container = %self.container, error = %skiff_sdk::error_chain(&error), "exec probe could not start");
                    return ProbeResult::Unknown;
                }
            };
            let ExecProcess {
                stdin,
                stdout,
                stderr,
                exit,
                ..
            } = process;
            drop(stdin);
            let (stdout, stderr) = tokio::join!(
                read_capped(stdout, EXEC_OUTPUT_LIMIT),
                read_capped(stderr, EXEC_OUTPUT_LIMIT)
            );
            match exit.await {
                Ok(0) => ProbeResult::Success,
                Ok(code) => {
                    let mut output = stdout;
                    output.extend_from_slice(&stderr);
                    output.truncate(EXEC_OUTPUT_LIMIT);
                    let output = String::from_utf8_lossy(&output).into_owned();
                    ProbeResult::Failure(if output.trim().is_empty() {
                        format!("command {:?} exited with code {code}", command.join(" "))
                    } else {
                        output
                    })
                }
                Err(error) => {
                    tracing::debug!(container = %self.container, error = %skiff_sdk::error_chain(&error), "exec probe lost its process");
                    ProbeResult::Unknown
                }
            }
        };
        time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| timed_out())
    }
}

/// Reads `reader` to its end, keeping its first `limit` bytes.
async fn read_capped(mut reader: ExecOutput, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = vec![0; 8 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// How a pod worker's exec probes run.
#[derive(Clone)]
pub enum ExecProbes {
    /// Through the probed container's runtime ([`RuntimeExec`]): what the
    /// agent does.
    ThroughRuntime,
    /// Through this prober for every container, whatever its runtime
    /// (tests script results with it).
    With(Arc<dyn ExecProber>),
}

impl ExecProbes {
    /// The prober of `container` in `runtime`.
    pub fn for_container(
        &self,
        runtime: &Arc<dyn Runtime>,
        container: &ContainerId,
    ) -> Arc<dyn ExecProber> {
        match self {
            ExecProbes::ThroughRuntime => {
                Arc::new(RuntimeExec::new(runtime.clone(), container.clone()))
            }
            ExecProbes::With(prober) => prober.clone(),
        }
    }
}

/// Runs one probe attempt: the whole attempt (connect, TLS, redirects,
/// response headers) is bounded by `timeout`. Exec attempts go to `exec`;
/// gRPC probes fail as unsupported. HTTP responses are judged by their
/// status; their bodies are not read.
pub async fn probe_once(action: &Action, timeout: Duration, exec: &dyn ExecProber) -> ProbeResult {
    match action {
        Action::Http {
            scheme,
            host,
            port,
            path,
            headers,
            protocol,
        } => {
            let url = Url {
                scheme: *scheme,
                host: host.clone(),
                port: *port,
                authority: join_host_port(host, *port),
                path: path.clone(),
            };
            http_probe(url, headers, *protocol, timeout).await
        }
        Action::Tcp { host, port } => tcp_probe(host, *port, timeout).await,
        Action::Exec { command } => {
            match time::timeout(
                timeout.saturating_add(EXEC_TIMEOUT_GRACE),
                exec.exec(command, timeout),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => {
                    ProbeResult::Failure(format!("command {:?} timed out", command.join(" ")))
                }
            }
        }
        Action::Grpc { .. } => ProbeResult::Failure("grpc probes are not supported".to_owned()),
    }
}

/// What a prober has concluded so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet: no threshold has been reached since the start.
    #[default]
    Unknown,
    /// The success threshold was reached.
    Success,
    /// The failure threshold was reached.
    Failure,
}

/// The state a [`Prober`] publishes after every attempt that counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeState {
    /// The verdict under the thresholds.
    pub verdict: Verdict,
    /// The message of the last failed attempt (for events and conditions);
    /// cleared when the verdict becomes Success.
    pub message: Option<String>,
    /// Failed attempts in a row (0 after a success).
    pub consecutive_failures: u32,
    /// Successful attempts in a row (0 after a failure).
    pub consecutive_successes: u32,
    /// Attempts that counted so far ([`ProbeResult::Unknown`] does not).
    pub attempts: u64,
}

/// A running probe of one container; its task stops when it is dropped.
#[derive(Debug)]
pub struct Prober {
    kind: ProbeKind,
    state: watch::Receiver<ProbeState>,
    task: JoinHandle<()>,
}

impl Prober {
    /// Which probe this is.
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The published state, a new value after every attempt that counted,
    /// through a receiver that has seen the current value: its `changed()`
    /// waits for the next one (to miss nothing, keep one receiver and read
    /// it with `borrow_and_update`). Liveness and startup probers stop
    /// probing once their verdict is Failure, and startup probers once it is
    /// Success (the container has started); that verdict then stays until
    /// the prober is dropped.
    pub fn state(&self) -> watch::Receiver<ProbeState> {
        let mut state = self.state.clone();
        state.mark_unchanged();
        state
    }

    /// The current verdict.
    pub fn verdict(&self) -> Verdict {
        self.state.borrow().verdict
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts probing on the current Tokio runtime: waits `timing.initial_delay`
/// (counted from this call: a worker that starts the prober late may
/// shorten it by the time the container has already run), then runs
/// `action` every `timing.period`. Must be called within a Tokio runtime.
pub fn spawn(kind: ProbeKind, action: Action, timing: Timing, exec: Arc<dyn ExecProber>) -> Prober {
    let span = tracing::info_span!("probe", kind = %kind, action = %action);
    let action = Arc::new(action);
    spawn_with(kind, timing, span, move || {
        let action = Arc::clone(&action);
        let exec = Arc::clone(&exec);
        async move { probe_once(&action, timing.timeout, exec.as_ref()).await }
    })
}

/// [`spawn`] over any attempt function, so tests can script results.
fn spawn_with<F, Fut>(kind: ProbeKind, timing: Timing, span: tracing::Span, attempt: F) -> Prober
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ProbeResult> + Send + 'static,
{
    let (sender, state) = watch::channel(ProbeState::default());
    let task = tokio::spawn(run(kind, timing, sender, attempt).instrument(span));
    Prober { kind, state, task }
}

/// The prober's loop; after a final verdict it keeps the channel open (its
/// receivers see the verdict, not a closed channel) until aborted.
async fn run<F, Fut>(
    kind: ProbeKind,
    timing: Timing,
    state: watch::Sender<ProbeState>,
    mut attempt: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ProbeResult>,
{
    time::sleep(timing.initial_delay).await;
    let period = if timing.period.is_zero() {
        DEFAULT_PERIOD
    } else {
        timing.period
    };
    let mut ticks = time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let result = attempt().await;
        tracing::debug!(result = ?result, "probe attempt");
        let before = state.borrow().verdict;
        let mut next = Probing::Continue;
        state.send_if_modified(|state| {
            let changed;
            (changed, next) = record(state, kind, &timing, result);
            changed
        });
        let after = state.borrow();
        if after.verdict != before {
            tracing::info!(
                verdict = ?after.verdict,
                message = after.message.as_deref(),
                "probe verdict changed"
            );
        }
        drop(after);
        if next == Probing::Stop {
            break;
        }
    }
    std::future::pending::<()>().await;
}

/// Whether a prober keeps probing after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probing {
    Continue,
    Stop,
}

/// Folds one attempt's result into the state, as the kubelet's probe worker
/// does; answers whether the state changed and whether to keep probing.
fn record(
    state: &mut ProbeState,
    kind: ProbeKind,
    timing: &Timing,
    result: ProbeResult,
) -> (bool, Probing) {
    let success_threshold = match kind {
        ProbeKind::Readiness => timing.success_threshold,
        ProbeKind::Liveness | ProbeKind::Startup => 1,
    };
    match result {
        ProbeResult::Unknown => return (false, Probing::Continue),
        ProbeResult::Success => {
            state.consecutive_successes = state.consecutive_successes.saturating_add(1);
            state.consecutive_failures = 0;
            if state.consecutive_successes >= success_threshold {
                state.verdict = Verdict::Success;
                state.message = None;
            }
        }
        ProbeResult::Failure(message) => {
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            state.consecutive_successes = 0;
            state.message = Some(message);
            if state.consecutive_failures >= timing.failure_threshold {
                state.verdict = Verdict::Failure;
            }
        }
    }
    state.attempts = state.attempts.saturating_add(1);
    let next = match (kind, state.verdict) {
        (ProbeKind::Liveness | ProbeKind::Startup, Verdict::Failure)
        | (ProbeKind::Startup, Verdict::Success) => Probing::Stop,
        _ => Probing::Continue,
    };
    (true, next)
}

// ---------------------------------------------------------------------------
// TCP

/// `host:port`, with brackets around an IPv6 host (Go's `JoinHostPort`).
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn tcp_probe(host: &str, port: u16, timeout: Duration) -> ProbeResult {
    match time::timeout(timeout, dial(host, port)).await {
        Ok(Ok(_stream)) => ProbeResult::Success,
        Ok(Err(message)) => ProbeResult::Failure(message),
        Err(_) => ProbeResult::Failure(format!(
            "dial tcp {}: i/o timeout",
            join_host_port(host, port)
        )),
    }
}

/// Connects to `host:port` (resolving a name, trying each address), with
/// Go's error messages.
async fn dial(host: &str, port: u16) -> Result<TcpStream, String> {
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("dial tcp: lookup {host}: {}", os_error_text(&e)))?
            .collect(),
    };
    let mut last_error = format!("dial tcp: lookup {host}: no such host");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = format!("dial tcp {address}: connect: {}", os_error_text(&e)),
        }
    }
    Err(last_error)
}

/// An IO error as Go prints a syscall error: `connection refused`, not
/// `Connection refused (os error 111)`.
fn os_error_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error ") {
        Some(end) => &text[..end],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// A request target during an HTTP probe (the first one or a redirect's).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Url {
    scheme: Scheme,
    /// Host name or IP, IPv6 without brackets: what is dialled and compared
    /// across redirects.
    host: String,
    port: u16,
    /// `host[:port]` as the URL spells it: the default `Host` header.
    authority: String,
    /// Path and query, starting with `/`.
    path: String,
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)
    }
}

async fn http_probe(
    first: Url,
    headers: &[(String, String)],
    protocol: HttpProtocol,
    timeout: Duration,
) -> ProbeResult {
    let mut header_map = HeaderMap::new();
    let mut custom_host = None;
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return ProbeResult::Failure(format!("invalid HTTP probe header {name:?}"));
        };
        if name == HOST {
            custom_host.get_or_insert(value);
        } else {
            header_map.append(name, value);
        }
    }
    if !header_map.contains_key(USER_AGENT) {
        header_map.insert(USER_AGENT, HeaderValue::from_static(KUBE_PROBE_USER_AGENT));
    }
    if !header_map.contains_key(ACCEPT) {
        header_map.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    let mut current = first.clone();
    let outcome = time::timeout(
        timeout,
        follow(&first, &mut current, &header_map, custom_host, protocol),
    )
    .await;
    outcome.unwrap_or_else(|_| {
        ProbeResult::Failure(format!(
            "Get \"{current}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ))
    })
}

/// Sends the GET and follows redirects to the same host name, as the
/// kubelet's redirect checker does; `current` tracks the request in flight
/// so that a timeout can name it.
async fn follow(
    first: &Url,
    current: &mut Url,
    headers: &HeaderMap,
    custom_host: Option<HeaderValue>,
    protocol: HttpProtocol,
) -> ProbeResult {
    let mut host = match custom_host {
        Some(host) => host,
        None => match HeaderValue::from_str(&first.authority) {
            Ok(host) => host,
            Err(_) => return ProbeResult::Failure(format!("Get \"{first}\": invalid host")),
        },
    };
    let mut redirects = 0;
    loop {
        let (status, location) = match send(current, headers, &host, protocol).await {
            Ok(response) => response,
            Err(message) => return ProbeResult::Failure(format!("Get \"{current}\": {message}")),
        };
        let location = location.filter(|_| is_followed_redirect(status));
        let Some(location) = location.filter(|location| !location.is_empty()) else {
            return status_result(status, current, None);
        };
        let Ok(location) = location.to_str() else {
            return ProbeResult::Failure(format!(
                "Get \"{current}\": failed to parse Location header {location:?}"
            ));
        };
        let (next, keeps_host) = match resolve_location(current, location) {
            Ok(next) => next,
            Err(reason) => {
                return ProbeResult::Failure(format!(
                    "Get \"{current}\": failed to parse Location header {location:?}: {reason}"
                ));
            }
        };
        if next.host != first.host {
            return status_result(status, current, Some(&next));
        }
        if redirects >= MAX_REDIRECTS {
            return ProbeResult::Failure(format!(
                "Get \"{next}\": stopped after {MAX_REDIRECTS} redirects"
            ));
        }
        redirects += 1;
        if !keeps_host {
            match HeaderValue::from_str(&next.authority) {
                Ok(authority) => host = authority,
                Err(_) => return ProbeResult::Failure(format!("Get \"{next}\": invalid host")),
            }
        }
        *current = next;
    }
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The kubelet's judgement of a final response: 2xx succeeds, 3xx (a
/// redirect not followed) succeeds with a warning, anything else fails.
fn status_result(status: StatusCode, url: &Url, redirect_to: Option<&Url>) -> ProbeResult {
    let code = status.as_u16();
    match code {
        200..=299 => ProbeResult::Success,
        300..=399 => {
            tracing::warn!(
                url = %url,
                status = code,
                location = redirect_to.map(tracing::field::display),
                "probe terminated redirects: counted as success"
            );
            ProbeResult::Success
        }
        _ => ProbeResult::Failure(format!("HTTP probe failed with statuscode: {code}")),
    }
}

/// One request on a fresh connection (the kubelet disables keep-alive);
/// answers the status and the `Location` header, or Go-like error text.
async fn send(
    url: &Url,
    headers: &HeaderMap,
    host: &HeaderValue,
    protocol: HttpProtocol,
) -> Result<(StatusCode, Option<HeaderValue>), String> {
    // h2c is cleartext only: a redirect to HTTPS speaks HTTP/1.1.
    let protocol = match url.scheme {
        Scheme::Http => protocol,
        Scheme::Https => HttpProtocol::Http1,
    };
    let request = build_request(url, headers, host, protocol)?;
    let tcp = dial(&url.host, url.port).await?;
    match url.scheme {
        Scheme::Http => exchange(tcp, request, protocol).await,
        Scheme::Https => {
            let connector = tls_connector()?;
            let name = ServerName::try_from(url.host.clone()).map_err(|e| format!("tls: {e}"))?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            exchange(tls, request, protocol).await
        }
    }
}

fn build_request(
    url: &Url,
    headers: &HeaderMap,
    host: &HeaderValue,
    protocol: HttpProtocol,
) -> Result<Request<Empty<Bytes>>, String> {
    let uri = match protocol {
        HttpProtocol::Http1 => url.path.clone(),
        HttpProtocol::Http2 => {
            let host = host
                .to_str()
                .map_err(|_| "invalid Host header".to_owned())?;
            format!("{}://{host}{}", url.scheme, url.path)
        }
    };
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(Empty::new())
        .map_err(|e| format!("invalid request: {e}"))?;
    *request.headers_mut() = headers.clone();
    if protocol == HttpProtocol::Http1 {
        request.headers_mut().insert(HOST, host.clone());
        request
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(request)
}

async fn exchange<T>(
    io: T,
    request: Request<Empty<Bytes>>,
    protocol: HttpProtocol,
) -> Result<(StatusCode, Option<HeaderValue>), String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let response = match protocol {
        HttpProtocol::Http1 => {
            let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
                .title_case_headers(true)
                .handshake(io)
                .await
                .map_err(hyper_error_text)?;
            let send = async move {
                sender.ready().await?;
                sender.send_request(request).await
            };
            drive(send, connection).await?
        }
        HttpProtocol::Http2 => {
            let (mut sender, connection) =
                hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                    .handshake(io)
                    .await
                    .map_err(hyper_error_text)?;
            let send = async move {
                sender.ready().await?;
                sender.send_request(request).await
            };
            drive(send, connection).await?
        }
    };
    Ok((response.status(), response.headers().get(LOCATION).cloned()))
}

/// Awaits a response while driving its connection, in this task (nothing
/// outlives the attempt).
async fn drive<R>(
    send: impl Future<Output = hyper::Result<R>>,
    connection: impl Future<Output = hyper::Result<()>>,
) -> Result<R, String> {
    tokio::pin!(send);
    tokio::pin!(connection);
    tokio::select! {
        biased;
        response = &mut send => response.map_err(hyper_error_text),
        ended = &mut connection => match ended {
            Err(e) => Err(hyper_error_text(e)),
            Ok(()) => send.await.map_err(hyper_error_text),
        },
    }
}

/// A hyper error with its causes; a connection closed before the response
/// is Go's `EOF`.
fn hyper_error_text(error: hyper::Error) -> String {
    if error.is_incomplete_message() {
        return "EOF".to_owned();
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The TLS client of HTTPS probes: no certificate verification (as the
/// kubelet's `InsecureSkipVerify`), handshake signatures still checked.
fn tls_connector() -> Result<TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipCertificateVerification(provider)))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map(TlsConnector::from)
}

/// Accepts any server certificate; verifies handshake signatures with the
/// provider's algorithms.
#[derive(Debug)]
struct SkipCertificateVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The request path of `httpGet.path`: a leading `/`, the fragment dropped,
/// characters a request line cannot carry percent-encoded.
fn request_path(path: &str) -> String {
    let path = path.split('#').next().unwrap_or("");
    let escaped = escape(path);
    if escaped.starts_with('/') {
        escaped
    } else {
        format!("/{escaped}")
    }
}

/// Percent-encodes what RFC 3986 does not allow in a path and query,
/// keeping valid `%XX` escapes.
fn escape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, &byte) in bytes.iter().enumerate() {
        let allowed = byte.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/?".contains(&byte)
            || (byte == b'%'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit));
        if allowed {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Resolves a `Location` against the request it answered (RFC 3986 §5.2);
/// answers the target and whether it keeps the request's `Host` (a
/// reference without an authority does, as in Go).
fn resolve_location(base: &Url, location: &str) -> Result<(Url, bool), String> {
    let location = location.split('#').next().unwrap_or("");
    if let Some(colon) = scheme_length(location) {
        let scheme = match location[..colon].to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("unsupported protocol scheme {other:?}")),
        };
        return Ok((absolute_url(scheme, &location[colon + 1..])?, false));
    }
    if location.starts_with("//") {
        return Ok((absolute_url(base.scheme, location)?, false));
    }
    let (base_path, _) = base.path.split_once('?').unwrap_or((&base.path, ""));
    let path = if location.starts_with('/') {
        location.to_owned()
    } else if location.starts_with('?') {
        format!("{base_path}{location}")
    } else {
        let directory = &base_path[..base_path.rfind('/').map_or(0, |slash| slash + 1)];
        format!("{directory}{location}")
    };
    let url = Url {
        path: normalize_reference_path(&path),
        ..base.clone()
    };
    Ok((url, true))
}

/// The length of a URI's scheme (the index of its `:`), if it has one.
fn scheme_length(reference: &str) -> Option<usize> {
    let colon = reference.find(':')?;
    let scheme = &reference[..colon];
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(colon)
}

/// `//authority/path?query` under `scheme`.
fn absolute_url(scheme: Scheme, rest: &str) -> Result<Url, String> {
    let rest = rest
        .strip_prefix("//")
        .ok_or_else(|| "missing host".to_owned())?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority: http::uri::Authority = authority.parse().map_err(|e| format!("{e}"))?;
    if authority.host().is_empty() {
        return Err("missing host".to_owned());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(scheme.default_port());
    let authority = match authority.port() {
        Some(port) => format!("{}:{port}", authority.host()),
        None => authority.host().to_owned(),
    };
    let path = match path.chars().next() {
        None => "/".to_owned(),
        Some('?') => format!("/{path}"),
        Some(_) => path.to_owned(),
    };
    Ok(Url {
        scheme,
        host,
        port,
        authority,
        path: normalize_reference_path(&path),
    })
}

/// Escapes a resolved path and removes its `.` and `..` segments.
fn normalize_reference_path(path: &str) -> String {
    let escaped = escape(path);
    let (path, query) = match escaped.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (escaped.as_str(), None),
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            segment => {
                out.push(segment);
                continue;
            }
        }
        if last {
            out.push("");
        }
    }
    let mut resolved = format!("/{}", out.join("/"));
    if let Some(query) = query {
        resolved.push('?');
        resolved.push_str(query);
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use k8s_openapi::api::core::v1::{
        ContainerPort, ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, TCPSocketAction,
    };
    use tokio::net::TcpListener;
    use tokio::time::Instant;

    const POD_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    fn container() -> Container {
        Container {
            name: "app".to_owned(),
            ports: Some(vec![
                ContainerPort {
                    name: Some("http".to_owned()),
                    container_port: 8080,
                    ..ContainerPort::default()
                },
                ContainerPort {
                    name: Some("broken".to_owned()),
                    container_port: 70000,
                    ..ContainerPort::default()
                },
            ]),
            ..Container::default()
        }
    }

    fn http_get(port: IntOrString) -> HTTPGetAction {
        HTTPGetAction {
            port,
            ..HTTPGetAction::default()
        }
    }

    fn http(host: &str, port: u16, path: &str) -> Action {
        http_with(host, port, path, |_, _, _| {})
    }

    /// An HTTP action with its scheme, headers or protocol changed.
    fn http_with(
        host: &str,
        port: u16,
        path: &str,
        change: impl FnOnce(&mut Scheme, &mut Vec<(String, String)>, &mut HttpProtocol),
    ) -> Action {
        let mut scheme = Scheme::Http;
        let mut headers = Vec::new();
        let mut protocol = HttpProtocol::Http1;
        change(&mut scheme, &mut headers, &mut protocol);
        Action::Http {
            scheme,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            headers,
            protocol,
        }
    }

    fn check(probe: Probe, expect: Result<Action, ProbeError>) {
        assert_eq!(action(&probe, &container(), POD_IP), expect, "{probe:?}");
    }

    #[test]
    fn action_http_defaults_to_pod_ip_http_and_root_path() {
        check(
            Probe {
                http_get: Some(http_get(IntOrString::Int(8080))),
                ..Probe::default()
            },
            Ok(http("10.0.0.7", 8080, "/")),
        );
    }

    #[test]
    fn action_http_keeps_host_scheme_path_headers() {
        check(
            Probe {
                http_get: Some(HTTPGetAction {
                    host: Some("::1".to_owned()),
                    scheme: Some("HTTPS".to_owned()),
                    path: Some("healthz?full=1#frag".to_owned()),
                    http_headers: Some(vec![HTTPHeader {
                        name: "X-Probe".to_owned(),
                        value: "yes".to_owned(),
                    }]),
                    ..http_get(IntOrString::String("http".to_owned()))
                }),
                ..Probe::default()
            },
            Ok(Action::Http {
                scheme: Scheme::Https,
                host: "::1".to_owned(),
                port: 8080,
                path: "/healthz?full=1".to_owned(),
                headers: vec![("X-Probe".to_owned(), "yes".to_owned())],
                protocol: HttpProtocol::Http1,
            }),
        );
    }

    #[test]
    fn action_path_is_escaped() {
        check(
            Probe {
                http_get: Some(HTTPGetAction {
                    path: Some("/a b/%41/%zz".to_owned()),
                    ..http_get(IntOrString::Int(80))
                }),
                ..Probe::default()
            },
            Ok(http("10.0.0.7", 80, "/a%20b/%41/%25zz")),
        );
    }

    #[test]
    fn action_ports() {
        let tcp = |port: IntOrString| Probe {
            tcp_socket: Some(TCPSocketAction { host: None, port }),
            ..Probe::default()
        };
        let tcp_action = |port: u16| {
            Ok(Action::Tcp {
                host: "10.0.0.7".to_owned(),
                port,
            })
        };
        check(
            tcp(IntOrString::String("http".to_owned())),
            tcp_action(8080),
        );
        // A name that is a number, as the kubelet's last-ditch parse.
        check(
            tcp(IntOrString::String("9090".to_owned())),
            tcp_action(9090),
        );
        check(
            tcp(IntOrString::String("metrics".to_owned())),
            Err(ProbeError::PortNotFound {
                name: "metrics".to_owned(),
            }),
        );
        check(
            tcp(IntOrString::Int(0)),
            Err(ProbeError::InvalidPort { port: 0 }),
        );
        check(
            tcp(IntOrString::Int(65536)),
            Err(ProbeError::InvalidPort { port: 65536 }),
        );
        check(
            tcp(IntOrString::Int(-1)),
            Err(ProbeError::InvalidPort { port: -1 }),
        );
        check(
            tcp(IntOrString::String("broken".to_owned())),
            Err(ProbeError::InvalidPort { port: 70000 }),
        );
    }

    #[test]
    fn action_handlers() {
        check(Probe::default(), Err(ProbeError::NoHandler));
        check(
            Probe {
                exec: Some(ExecAction {
                    command: Some(vec!["true".to_owned()]),
                }),
                http_get: Some(http_get(IntOrString::Int(80))),
                ..Probe::default()
            },
            Err(ProbeError::MultipleHandlers {
                handlers: "exec, httpGet".to_owned(),
            }),
        );
        check(
            Probe {
                exec: Some(ExecAction {
                    command: Some(vec!["cat".to_owned(), "/tmp/healthy".to_owned()]),
                }),
                ..Probe::default()
            },
            Ok(Action::Exec {
                command: vec!["cat".to_owned(), "/tmp/healthy".to_owned()],
            }),
        );
        check(
            Probe {
                exec: Some(ExecAction { command: None }),
                ..Probe::default()
            },
            Err(ProbeError::EmptyCommand),
        );
        check(
            Probe {
                grpc: Some(GRPCAction {
                    port: 9000,
                    service: Some("health".to_owned()),
                    mode: Some("TLS".to_owned()),
                }),
                ..Probe::default()
            },
            Ok(Action::Grpc {
                host: "10.0.0.7".to_owned(),
                port: 9000,
                service: Some("health".to_owned()),
                mode: GrpcMode::Tls,
            }),
        );
        check(
            Probe {
                grpc: Some(GRPCAction {
                    port: 0,
                    ..GRPCAction::default()
                }),
                ..Probe::default()
            },
            Err(ProbeError::InvalidPort { port: 0 }),
        );
    }

    #[test]
    fn action_rejects_bad_http_fields() {
        let with = |get: HTTPGetAction| Probe {
            http_get: Some(get),
            ..Probe::default()
        };
        check(
            with(HTTPGetAction {
                scheme: Some("FTP".to_owned()),
                ..http_get(IntOrString::Int(80))
            }),
            Err(ProbeError::UnknownScheme {
                scheme: "FTP".to_owned(),
            }),
        );
        check(
            with(HTTPGetAction {
                http_headers: Some(vec![HTTPHeader {
                    name: "bad header".to_owned(),
                    value: "x".to_owned(),
                }]),
                ..http_get(IntOrString::Int(80))
            }),
            Err(ProbeError::InvalidHeader {
                name: "bad header".to_owned(),
            }),
        );
        check(
            with(HTTPGetAction {
                scheme: Some("HTTPS".to_owned()),
                protocol: Some("HTTP2".to_owned()),
                ..http_get(IntOrString::Int(80))
            }),
            Err(ProbeError::UnsupportedHttpProtocol {
                protocol: "HTTP2".to_owned(),
                scheme: Scheme::Https,
            }),
        );
    }

    #[test]
    fn timing_defaults_and_overrides() {
        let defaults = Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        };
        assert_eq!(Timing::from_probe(&Probe::default()), defaults);
        assert_eq!(Timing::default(), defaults);
        let probe = Probe {
            initial_delay_seconds: Some(5),
            period_seconds: Some(2),
            timeout_seconds: Some(3),
            success_threshold: Some(2),
            failure_threshold: Some(4),
            ..Probe::default()
        };
        let readiness = Timing {
            initial_delay: Duration::from_secs(5),
            period: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
            success_threshold: 2,
            failure_threshold: 4,
        };
        assert_eq!(Timing::from_probe(&probe), readiness);
        let nonsense = Probe {
            initial_delay_seconds: Some(-4),
            period_seconds: Some(0),
            timeout_seconds: Some(-1),
            success_threshold: Some(0),
            failure_threshold: Some(-3),
            ..Probe::default()
        };
        assert_eq!(Timing::from_probe(&nonsense), defaults);
    }

    /// A prober over scripted results (then Success forever); answers it and
    /// the virtual times of its attempts since the start.
    fn scripted(
        kind: ProbeKind,
        timing: Timing,
        script: Vec<ProbeResult>,
    ) -> (Prober, Arc<Mutex<Vec<Duration>>>) {
        let start = Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let mut script = script.into_iter();
        let log = Arc::clone(&times);
        let prober = spawn_with(kind, timing, tracing::Span::none(), move || {
            log.lock().unwrap().push(start.elapsed());
            let result = script.next().unwrap_or(ProbeResult::Success);
            async move { result }
        });
        (prober, times)
    }

    fn failure(message: &str) -> ProbeResult {
        ProbeResult::Failure(message.to_owned())
    }

    async fn after_attempts(rx: &mut watch::Receiver<ProbeState>, attempts: u64) -> ProbeState {
        let state = rx
            .wait_for(|s| s.attempts >= attempts)
            .await
            .unwrap()
            .clone();
        assert_eq!(state.attempts, attempts, "states were skipped");
        state
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_follows_thresholds_both_ways() {
        let timing = Timing {
            success_threshold: 2,
            failure_threshold: 3,
            ..Timing::default()
        };
        let script = vec![
            ProbeResult::Success,
            ProbeResult::Success,
            failure("a"),
            failure("b"),
            failure("c"),
            ProbeResult::Success,
            ProbeResult::Success,
        ];
        let (prober, _) = scripted(ProbeKind::Readiness, timing, script);
        let mut rx = prober.state();
        assert_eq!(rx.borrow().verdict, Verdict::Unknown);
        let verdicts: Vec<(Verdict, Option<String>, u32)> = {
            let mut out = Vec::new();
            for n in 1..=7 {
                let s = after_attempts(&mut rx, n).await;
                out.push((s.verdict, s.message, s.consecutive_failures));
            }
            out
        };
        let m = |s: &str| Some(s.to_owned());
        assert_eq!(
            verdicts,
            vec![
                (Verdict::Unknown, None, 0),
                (Verdict::Success, None, 0),
                (Verdict::Success, m("a"), 1),
                (Verdict::Success, m("b"), 2),
                (Verdict::Failure, m("c"), 3),
                (Verdict::Failure, m("c"), 0),
                (Verdict::Success, None, 0),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_fails_after_failure_threshold_and_stops() {
        let timing = Timing {
            failure_threshold: 3,
            ..Timing::default()
        };
        let script = vec![
            ProbeResult::Success,
            failure("x"),
            failure("y"),
            failure("z"),
        ];
        let (prober, times) = scripted(ProbeKind::Liveness, timing, script);
        let mut rx = prober.state();
        assert_eq!(after_attempts(&mut rx, 1).await.verdict, Verdict::Success);
        assert_eq!(after_attempts(&mut rx, 3).await.verdict, Verdict::Success);
        let failed = after_attempts(&mut rx, 4).await;
        assert_eq!(failed.verdict, Verdict::Failure);
        assert_eq!(failed.message.as_deref(), Some("z"));
        // On hold: no more attempts, the verdict stays and the channel open.
        time::sleep(Duration::from_secs(600)).await;
        assert_eq!(times.lock().unwrap().len(), 4);
        assert_eq!(prober.verdict(), Verdict::Failure);
        assert!(!rx.has_changed().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_succeeds_after_one_success_whatever_the_threshold() {
        let timing = Timing {
            success_threshold: 3,
            ..Timing::default()
        };
        let (prober, _) = scripted(ProbeKind::Liveness, timing, vec![ProbeResult::Success]);
        let mut rx = prober.state();
        assert_eq!(after_attempts(&mut rx, 1).await.verdict, Verdict::Success);
    }

    #[tokio::test(start_paused = true)]
    async fn startup_stops_after_success() {
        let (prober, times) = scripted(
            ProbeKind::Startup,
            Timing::default(),
            vec![failure("not yet"), ProbeResult::Success],
        );
        let mut rx = prober.state();
        assert_eq!(after_attempts(&mut rx, 1).await.verdict, Verdict::Unknown);
        assert_eq!(after_attempts(&mut rx, 2).await.verdict, Verdict::Success);
        time::sleep(Duration::from_secs(600)).await;
        assert_eq!(times.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_results_are_thrown_away() {
        let (prober, times) = scripted(
            ProbeKind::Readiness,
            Timing::default(),
            vec![ProbeResult::Unknown, ProbeResult::Unknown, failure("f")],
        );
        let mut rx = prober.state();
        let state = after_attempts(&mut rx, 1).await;
        assert_eq!(times.lock().unwrap().len(), 3);
        assert_eq!(state.consecutive_failures, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn initial_delay_then_every_period() {
        let timing = Timing {
            initial_delay: Duration::from_secs(15),
            period: Duration::from_secs(10),
            ..Timing::default()
        };
        let (prober, times) = scripted(ProbeKind::Readiness, timing, Vec::new());
        let mut rx = prober.state();
        after_attempts(&mut rx, 3).await;
        assert_eq!(
            *times.lock().unwrap(),
            [15, 25, 35].map(Duration::from_secs).to_vec()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_prober_stops_it() {
        let (prober, times) = scripted(ProbeKind::Readiness, Timing::default(), Vec::new());
        let mut rx = prober.state();
        after_attempts(&mut rx, 2).await;
        drop(prober);
        assert!(
            rx.changed().await.is_err(),
            "the task still holds the channel"
        );
        time::sleep(Duration::from_secs(600)).await;
        assert_eq!(times.lock().unwrap().len(), 2);
    }

    /// What the test server saw: path, version and headers of each request.
    type Seen = Arc<Mutex<Vec<(String, http::Version, HeaderMap)>>>;

    fn route(request: &Request<Incoming>) -> http::Response<Full<Bytes>> {
        let (status, location) = match request.uri().path() {
            "/ok" | "/" => (200, None),
            "/fail" => (500, None),
            "/moved" => (304, None),
            "/redirect" => (302, Some("/ok")),
            "/dir/relative" => (307, Some("../ok")),
            "/redirect-fail" => (301, Some("/fail")),
            "/away" => (302, Some("http://probe.invalid/ok")),
            "/loop" => (302, Some("/loop")),
            _ => (404, None),
        };
        let mut response = http::Response::new(Full::new(Bytes::from_static(b"body")));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(location) = location {
            response
                .headers_mut()
                .insert(LOCATION, HeaderValue::from_static(location));
        }
        response
    }

    /// Serves `route` over HTTP/1.1 and h2c (optionally behind TLS with a
    /// self-signed certificate) on 127.0.0.1.
    async fn server(tls: bool) -> (u16, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Seen = Arc::default();
        let acceptor = tls.then(|| {
            let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![key.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
            )
            .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let log = Arc::clone(&log);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let path = request.uri().path_and_query().map(|p| p.to_string());
                        log.lock().unwrap().push((
                            path.unwrap_or_default(),
                            request.version(),
                            request.headers().clone(),
                        ));
                        let response = route(&request);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        (port, seen)
    }

    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    const TIMEOUT: Duration = Duration::from_secs(10);

    async fn get(port: u16, path: &str) -> ProbeResult {
        probe_once(&http("127.0.0.1", port, path), TIMEOUT, &NoExec).await
    }

    #[tokio::test]
    async fn http_probe_judges_status() {
        let (port, seen) = server(false).await;
        assert_eq!(get(port, "/ok").await, ProbeResult::Success);
        assert_eq!(
            get(port, "/fail").await,
            failure("HTTP probe failed with statuscode: 500")
        );
        assert_eq!(get(port, "/moved").await, ProbeResult::Success);
        assert_eq!(
            get(port, "/nope").await,
            failure("HTTP probe failed with statuscode: 404")
        );
        let seen = seen.lock().unwrap();
        let (_, _, headers) = &seen[0];
        assert_eq!(headers[USER_AGENT], KUBE_PROBE_USER_AGENT);
        assert!(KUBE_PROBE_USER_AGENT.starts_with("kube-probe/1."));
        assert_eq!(headers[ACCEPT], "*/*");
        assert_eq!(headers[HOST], format!("127.0.0.1:{port}").as_str());
    }

    #[tokio::test]
    async fn http_probe_sends_custom_headers() {
        let (port, seen) = server(false).await;
        let action = http_with("127.0.0.1", port, "/ok", |_, headers, _| {
            for (name, value) in [
                ("Host", "app.example"),
                ("User-Agent", "mine"),
                ("X-Probe", "1"),
                ("X-Probe", "2"),
            ] {
                headers.push((name.to_owned(), value.to_owned()));
            }
        });
        assert_eq!(
            probe_once(&action, TIMEOUT, &NoExec).await,
            ProbeResult::Success
        );
        let seen = seen.lock().unwrap();
        let (_, _, headers) = &seen[0];
        assert_eq!(headers[HOST], "app.example");
        assert_eq!(headers[USER_AGENT], "mine");
        let values: Vec<_> = headers.get_all("x-probe").iter().collect();
        assert_eq!(values, ["1", "2"]);
    }

    #[tokio::test]
    async fn http_probe_follows_same_host_redirects_only() {
        let (port, seen) = server(false).await;
        assert_eq!(get(port, "/redirect").await, ProbeResult::Success);
        assert_eq!(get(port, "/dir/relative").await, ProbeResult::Success);
        assert_eq!(
            get(port, "/redirect-fail").await,
            failure("HTTP probe failed with statuscode: 500")
        );
        // Another host: not followed, the 302 itself counts as success.
        assert_eq!(get(port, "/away").await, ProbeResult::Success);
        assert_eq!(
            get(port, "/loop").await,
            failure(&format!(
                "Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects"
            ))
        );
        let paths: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _, _)| p.clone())
            .collect();
        assert_eq!(
            &paths[..6],
            [
                "/redirect",
                "/ok",
                "/dir/relative",
                "/ok",
                "/redirect-fail",
                "/fail"
            ]
        );
        assert_eq!(paths.iter().filter(|p| *p == "/loop").count(), 11);
    }

    #[tokio::test]
    async fn http_probe_over_h2c() {
        let (port, seen) = server(false).await;
        let action = http_with("127.0.0.1", port, "/ok", |_, _, protocol| {
            *protocol = HttpProtocol::Http2;
        });
        assert_eq!(
            probe_once(&action, TIMEOUT, &NoExec).await,
            ProbeResult::Success
        );
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.iter()
                .map(|(p, v, _)| (p.as_str(), *v))
                .collect::<Vec<_>>(),
            [("/ok", http::Version::HTTP_2)]
        );
    }

    #[tokio::test]
    async fn https_probe_skips_certificate_verification() {
        let (port, _) = server(true).await;
        let https = |path| {
            http_with("127.0.0.1", port, path, |scheme, _, _| {
                *scheme = Scheme::Https;
            })
        };
        let action = https("/fail");
        assert_eq!(
            probe_once(&action, TIMEOUT, &NoExec).await,
            failure("HTTP probe failed with statuscode: 500")
        );
        let action = https("/ok");
        assert_eq!(
            probe_once(&action, TIMEOUT, &NoExec).await,
            ProbeResult::Success
        );
    }

    #[tokio::test]
    async fn http_probe_to_closed_port_is_refused() {
        let port = closed_port().await;
        assert_eq!(
            get(port, "/healthz").await,
            failure(&format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http_probe_times_out_on_a_silent_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await.unwrap());
            }
        });
        let result = probe_once(
            &http("127.0.0.1", port, "/"),
            Duration::from_secs(1),
            &NoExec,
        )
        .await;
        assert_eq!(
            result,
            failure(&format!(
                "Get \"http://127.0.0.1:{port}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
    }

    #[tokio::test]
    async fn tcp_probe_connects_or_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = |port| Action::Tcp {
            host: "127.0.0.1".to_owned(),
            port,
        };
        assert_eq!(
            probe_once(&tcp(port), TIMEOUT, &NoExec).await,
            ProbeResult::Success
        );
        let closed = closed_port().await;
        assert_eq!(
            probe_once(&tcp(closed), TIMEOUT, &NoExec).await,
            failure(&format!(
                "dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ))
        );
    }

    struct RecordingExec {
        calls: AtomicUsize,
        hang: bool,
    }

    #[async_trait::async_trait]
    impl ExecProber for RecordingExec {
        async fn exec(&self, command: &[String], timeout: Duration) -> ProbeResult {
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(command, ["sleep", "10"]);
            assert_eq!(timeout, Duration::from_secs(2));
            if self.hang {
                std::future::pending::<()>().await;
            }
            failure("exit 1")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn exec_and_grpc_probes() {
        let exec = Action::Exec {
            command: vec!["sleep".to_owned(), "10".to_owned()],
        };
        let timeout = Duration::from_secs(2);
        assert_eq!(
            probe_once(&exec, timeout, &NoExec).await,
            failure("exec probes are not supported by this runtime")
        );
        let answering = RecordingExec {
            calls: AtomicUsize::new(0),
            hang: false,
        };
        assert_eq!(
            probe_once(&exec, timeout, &answering).await,
            failure("exit 1")
        );
        let hanging = RecordingExec {
            calls: AtomicUsize::new(0),
            hang: true,
        };
        assert_eq!(
            probe_once(&exec, timeout, &hanging).await,
            failure("command \"sleep 10\" timed out")
        );
        assert_eq!(hanging.calls.load(Ordering::SeqCst), 1);
        let grpc = Action::Grpc {
            host: "127.0.0.1".to_owned(),
            port: 9000,
            service: None,
            mode: GrpcMode::Plaintext,
        };
        assert_eq!(
            probe_once(&grpc, timeout, &NoExec).await,
            failure("grpc probes are not supported")
        );
    }

    #[tokio::test]
    async fn spawned_prober_probes_a_real_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let prober = spawn(
            ProbeKind::Readiness,
            Action::Tcp {
                host: "127.0.0.1".to_owned(),
                port,
            },
            Timing::default(),
            Arc::new(NoExec),
        );
        assert_eq!(prober.kind(), ProbeKind::Readiness);
        let mut rx = prober.state();
        let state = rx
            .wait_for(|s| s.verdict != Verdict::Unknown)
            .await
            .unwrap()
            .clone();
        assert_eq!(state.verdict, Verdict::Success);
    }

    #[test]
    fn redirect_locations_resolve_like_rfc_3986() {
        let base = Url {
            scheme: Scheme::Http,
            host: "10.0.0.7".to_owned(),
            port: 8080,
            authority: "10.0.0.7:8080".to_owned(),
            path: "/a/b/c?q=1".to_owned(),
        };
        let check = |location: &str, expect: &str, keeps_host: bool| {
            let (url, keeps) = resolve_location(&base, location).unwrap();
            assert_eq!(
                (url.to_string().as_str(), keeps),
                (expect, keeps_host),
                "{location}"
            );
        };
        check("/ok", "http://10.0.0.7:8080/ok", true);
        check("d", "http://10.0.0.7:8080/a/b/d", true);
        check("../d?x#frag", "http://10.0.0.7:8080/a/d?x", true);
        check("./", "http://10.0.0.7:8080/a/b/", true);
        check("?r=2", "http://10.0.0.7:8080/a/b/c?r=2", true);
        check("HTTPS://other:8443", "https://other:8443/", false);
        check("//10.0.0.7/x/../y", "http://10.0.0.7/y", false);
        check("http://[::1]:81/p", "http://[::1]:81/p", false);
        let (url, _) = resolve_location(&base, "http://[::1]/p").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 80));
        assert!(resolve_location(&base, "ftp://10.0.0.7/").is_err());
        assert!(resolve_location(&base, "http:///nohost").is_err());
    }

    #[test]
    fn io_errors_read_like_go() {
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(os_error_text(&refused), "connection refused");
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
    }
}
