//! `kubectl exec`'s path on the node: a WebSocket client over TLS against
//! the node API, with a runtime whose exec runs local processes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use skiff_node::node_api::{self, NodeApi, NodeApiConfig};
use skiff_node::pod_containers::PodContainers;
use skiff_node::pod_logs::PodLogs;
use skiff_sdk::runtime::TerminalSize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::support::{FakeExec, FakeRuntime};

const TOKEN: &str = "node-secret";
/// A guard against hanging tests, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);
const V5: &str = "v5.channel.k8s.io";

struct Fixture {
    api: NodeApi,
    ca_pem: String,
    /// Runs `default/web/app` (local processes).
    runtime: FakeRuntime,
}

/// A node API over a registry with `default/web/app` in a runtime whose
/// exec runs local processes and `default/wasm/app` in one that cannot
/// exec.
async fn start() -> Fixture {
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

    let containers = Arc::new(PodContainers::default());
    let runtime = FakeRuntime::new().with_exec(FakeExec::Process);
    let id = runtime.running_container("app").await;
    containers.started("default", "web", "app", Arc::new(runtime.clone()), id);
    let wasm = FakeRuntime::new();
    let id = wasm.running_container("app").await;
    containers.started("default", "wasm", "app", Arc::new(wasm), id);

    let config = NodeApiConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        certificate_pem: leaf.pem(),
        private_key_pem: leaf_key.serialize_pem(),
        token: TOKEN.to_owned(),
    };
    let api = node_api::serve(
        config,
        Arc::new(PodLogs::default()),
        containers,
        std::future::pending(),
    )
    .await
    .unwrap();
    Fixture {
        api,
        ca_pem: ca.pem(),
        runtime,
    }
}

async fn tls_connect(fixture: &Fixture) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(fixture.ca_pem.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(fixture.api.local_addr()).await.unwrap();
    let name = ServerName::IpAddress(IpAddr::from(Ipv4Addr::LOCALHOST).into());
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// Opens `path` as a WebSocket offering `protocols`: the socket and the
/// protocol chosen, or the refusal's code and `Status` body.
async fn open(
    fixture: &Fixture,
    path: &str,
    token: Option<&str>,
    protocols: &str,
) -> Result<(Socket, String), (u16, Value)> {
    let mut request = format!("wss://127.0.0.1{path}")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    if let Some(token) = token {
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    headers.insert("sec-websocket-protocol", protocols.parse().unwrap());
    let stream = tls_connect(fixture).await;
    let answer = tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(request, stream))
        .await
        .unwrap();
    match answer {
        Ok((socket, response)) => {
            let protocol = response.headers()["sec-websocket-protocol"]
                .to_str()
                .unwrap()
                .to_owned();
            Ok((socket, protocol))
        }
        Err(WsError::Http(response)) => {
            assert_eq!(response.headers()["content-type"], "application/json");
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap(),
            ))
        }
        Err(error) => panic!("handshake failed: {error}"),
    }
}

/// What a session showed the client.
#[derive(Debug, Default)]
struct Outcome {
    /// Every message as (channel, data), in order.
    messages: Vec<(u8, Vec<u8>)>,
    /// The close frame's code.
    close: Option<CloseCode>,
}

impl Outcome {
    fn channel(&self, channel: u8) -> String {
        let bytes: Vec<u8> = self
            .messages
            .iter()
            .filter(|(c, _)| *c == channel)
            .flat_map(|(_, data)| data.clone())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.channel(3)).unwrap()
    }
}

/// Sends `input` (binary messages), then reads everything until the node
/// closes.
async fn run(mut socket: Socket, input: Vec<Vec<u8>>) -> Outcome {
    for message in input {
        socket.send(Message::binary(message)).await.unwrap();
    }
    let mut outcome = Outcome::default();
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .unwrap_or_else(|_| panic!("the session did not end: {outcome:?}"));
        match message {
            Some(Ok(Message::Binary(data))) => {
                outcome.messages.push((data[0], data[1..].to_vec()));
            }
            Some(Ok(Message::Text(text))) => {
                // base64: the channel as a digit.
                use base64::Engine as _;
                let (channel, data) = text.as_str().split_at(1);
                outcome.messages.push((
                    channel.as_bytes()[0] - b'0',
                    base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .unwrap(),
                ));
            }
            Some(Ok(Message::Close(frame))) => {
                outcome.close = frame.map(|f| f.code);
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("the session failed: {error} after {outcome:?}"),
            None => return outcome,
        }
    }
}

fn exec_path(pod: &str, container: &str, command: &[&str], streams: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for argument in command {
        query.append_pair("command", argument);
    }
    format!(
        "/exec/default/{pod}/{container}?{}&{streams}",
        query.finish()
    )
}

#[tokio::test]
async fn stdout_and_stderr_are_separate_channels_and_the_status_comes_last() {
    let fixture = start().await;
    let path = exec_path(
        "web",
        "app",
        &["sh", "-c", "echo out; echo err >&2; echo more"],
        "output=1&error=1",
    );
    let (socket, protocol) = open(&fixture, &path, Some(TOKEN), V5).await.unwrap();
    assert_eq!(protocol, V5);
    let outcome = run(socket, Vec::new()).await;
    // The kubelet's greeting: an empty message on stdout.
    assert_eq!(outcome.messages[0], (1, Vec::new()));
    assert_eq!(outcome.channel(1), "out\nmore\n");
    assert_eq!(outcome.channel(2), "err\n");
    assert_eq!(
        outcome.status(),
        json!({"metadata": {}, "status": "Success"})
    );
    assert_eq!(outcome.messages.last().unwrap().0, 3, "the status is last");
    assert_eq!(outcome.close, Some(CloseCode::Normal));
    fixture.api.stop().await;
}

#[tokio::test]
async fn stdin_is_piped_and_closed_by_the_v5_close_signal() {
    let fixture = start().await;
    let path = exec_path("web", "app", &["cat"], "input=1&output=1");
    let (socket, _) = open(&fixture, &path, Some(TOKEN), V5).await.unwrap();
    let outcome = run(
        socket,
        vec![b"\0hello\n".to_vec(), b"\0world\n".to_vec(), vec![255, 0]],
    )
    .await;
    assert_eq!(outcome.channel(1), "hello\nworld\n");
    assert_eq!(outcome.status()["status"], "Success");
    fixture.api.stop().await;
}

#[tokio::test]
async fn a_non_zero_exit_is_a_failure_status_with_the_exit_code() {
    let fixture = start().await;
    let path = exec_path(
        "web",
        "app",
        &["sh", "-c", "echo failing >&2; exit 3"],
        "output=1&error=1",
    );
    let (socket, _) = open(&fixture, &path, Some(TOKEN), V5).await.unwrap();
    let outcome = run(socket, Vec::new()).await;
    assert_eq!(outcome.channel(2), "failing\n");
    assert_eq!(
        outcome.status(),
        json!({
            "metadata": {},
            "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [sh -c echo failing >&2; exit 3], exit code 3",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
        })
    );
    fixture.api.stop().await;
}

#[tokio::test]
async fn a_tty_takes_resizes_and_carries_stderr_on_stdout() {
    let fixture = start().await;
    let path = exec_path(
        "web",
        "app",
        &["sh", "-c", "read line; echo got $line; echo oops >&2"],
        "input=1&output=1&error=1&tty=1",
    );
    let (socket, _) = open(&fixture, &path, Some(TOKEN), V5).await.unwrap();
    let mut resize = vec![4];
    resize.extend_from_slice(br#"{"Width":100,"Height":30}"#);
    let outcome = run(
        socket,
        vec![
            resize,
            b"\x04not json".to_vec(),
            b"\0x\n".to_vec(),
            vec![255, 0],
        ],
    )
    .await;
    assert_eq!(outcome.channel(1), "got x\noops\n");
    assert_eq!(outcome.channel(2), "");
    assert_eq!(outcome.status()["status"], "Success");
    let terminal = fixture.runtime.terminal.lock().unwrap().clone().unwrap();
    assert_eq!(
        *terminal.borrow(),
        TerminalSize {
            width: 100,
            height: 30
        }
    );
    fixture.api.stop().await;
}

#[tokio::test]
async fn v4_and_its_base64_variant_are_served_too() {
    let fixture = start().await;
    let path = exec_path("web", "app", &["echo", "hi"], "output=1");
    for protocol in ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"] {
        // The first protocol offered that the node serves wins.
        let offer = format!("channel.k8s.io, {protocol}, {V5}");
        let (socket, chosen) = open(&fixture, &path, Some(TOKEN), &offer).await.unwrap();
        assert_eq!(chosen, protocol);
        let outcome = run(socket, Vec::new()).await;
        assert_eq!(outcome.channel(1), "hi\n", "{protocol}");
        assert_eq!(outcome.status()["status"], "Success", "{protocol}");
    }
    fixture.api.stop().await;
}

#[track_caller]
fn check_status(
    answer: Result<(Socket, String), (u16, Value)>,
    code: u16,
    reason: &str,
    message: &str,
) {
    let Err((status, body)) = answer else {
        panic!("expected {code}, got a session");
    };
    assert_eq!(
        (status, body),
        (
            code,
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            })
        )
    );
}

#[tokio::test]
async fn refusals_are_statuses_before_the_upgrade() {
    let fixture = start().await;
    let token = Some(TOKEN);
    let ls = |pod: &str, container: &str| exec_path(pod, container, &["ls"], "output=1");
    check_status(
        open(&fixture, &ls("web", "nope"), token, V5).await,
        404,
        "NotFound",
        "container \"nope\" not found in pod \"web\"",
    );
    check_status(
        open(&fixture, &ls("gone", "app"), token, V5).await,
        404,
        "NotFound",
        "pod \"default/gone\" does not exist",
    );
    check_status(
        open(&fixture, &ls("wasm", "app"), token, V5).await,
        400,
        "BadRequest",
        "exec is not supported for Wasm pods",
    );
    check_status(
        open(&fixture, "/exec/default/web/app?output=1", token, V5).await,
        400,
        "BadRequest",
        "you must specify a command to run in the container",
    );
    check_status(
        open(
            &fixture,
            &exec_path("web", "app", &["ls"], "tty=1"),
            token,
            V5,
        )
        .await,
        400,
        "BadRequest",
        "you must specify at least 1 of stdin, stdout, stderr",
    );
    check_status(
        open(&fixture, &ls("web", "app"), token, "channel.k8s.io").await,
        400,
        "BadRequest",
        "requested protocol(s) are not supported: [channel.k8s.io]; supports [v5.channel.k8s.io v4.channel.k8s.io v4.base64.channel.k8s.io]",
    );
    // Nothing ran for any of them.
    assert!(fixture.runtime.calls_starting("exec").is_empty());
    fixture.api.stop().await;
}

#[tokio::test]
async fn only_the_node_credential_is_accepted() {
    let fixture = start().await;
    let path = exec_path("web", "app", &["touch", "/tmp/never"], "output=1");
    for token in [None, Some("wrong"), Some("node-secret2")] {
        check_status(
            open(&fixture, &path, token, V5).await,
            401,
            "Unauthorized",
            "Unauthorized",
        );
    }
    assert!(fixture.runtime.calls_starting("exec").is_empty());
    fixture.api.stop().await;
}

#[tokio::test]
async fn stopping_the_node_api_ends_running_sessions_with_a_status() {
    let fixture = start().await;
    let path = exec_path("web", "app", &["sleep", "600"], "output=1");
    let (socket, _) = open(&fixture, &path, Some(TOKEN), V5).await.unwrap();
    let stopped = tokio::spawn(fixture.api.stop());
    let outcome = run(socket, Vec::new()).await;
    assert_eq!(outcome.status()["reason"], "InternalError");
    assert_eq!(
        outcome.status()["message"],
        "Internal error occurred: the node is shutting down"
    );
    assert_eq!(outcome.close, Some(CloseCode::Normal));
    stopped.await.unwrap();
}
