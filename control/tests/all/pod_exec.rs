//! `pods/exec` relayed to a fake node API over HTTPS: the fake speaks the
//! kubelet's side of `v5.channel.k8s.io` / `v4.channel.k8s.io` over local
//! processes, so kube-rs's `exec` and the real `kubectl exec` run commands
//! through the server (streams, stdin, exit codes), and every refusal is a
//! Status: 400 (options, completed pod, no node, no upgrade, the node's
//! own 400), 403 for nodes, 404.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::any;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, Patch, PatchParams};
use serde_json::{Value, json};
use skiff_control::apiserver::auth::Identity;
use skiff_control::server::RunningServer;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};
use tower::ServiceExt as _;

use super::node_api::{admin, create_node, create_pod, serve_tls, start};
use super::support::cluster::kubectl_available;

/// A guard against hanging tests, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);
const PODS: &str = "/api/v1/namespaces/default/pods";

#[derive(Clone)]
struct FakeExec {
    token: String,
    /// Path and query of every exec request that reached the node.
    seen: Arc<Mutex<Vec<String>>>,
}

/// The fake kubelet's exec: only the node's credential; container `wasm`
/// answers the node API's 400, anything else runs the command as a local
/// process over the first channel protocol offered (v5 or v4).
async fn fake_exec(State(state): State<FakeExec>, mut request: Request) -> Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        == Some(&format!("Bearer {}", state.token));
    if !authorized {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let uri = request.uri().clone();
    state.seen.lock().unwrap().push(uri.to_string());
    if uri.path().ends_with("/wasm") {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "exec is not supported for Wasm pods", "reason": "BadRequest",
                "code": 400,
            })
            .to_string(),
        )
            .into_response();
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let command: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let on = |name: &str| pairs.iter().any(|(k, v)| k == name && v == "1");
    let stdin = on("input");
    let headers = request.headers();
    let key = headers[header::SEC_WEBSOCKET_KEY].as_bytes().to_vec();
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(protocol) = offered
        .split(',')
        .map(str::trim)
        .find(|p| *p == "v5.channel.k8s.io" || *p == "v4.channel.k8s.io")
        .map(str::to_owned)
    else {
        return (StatusCode::BAD_REQUEST, "no protocol").into_response();
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let upgraded = upgrade.await.unwrap();
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        session(socket, command, stdin).await;
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        tungstenite::handshake::derive_accept_key(&key)
            .parse()
            .unwrap(),
    );
    headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol.parse().unwrap());
    response
}

/// The kubelet's side of one session: stdin from channel 0 until `[255,
/// 0]`, stdout and stderr on channels 1 and 2, then the Status on 3.
async fn session<S>(socket: WebSocketStream<S>, command: Vec<String>, stdin: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = socket.split();
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut writer = child.stdin.take();
    tokio::spawn(async move {
        while let Some(Ok(Message::Binary(data))) = source.next().await {
            match (data.first(), &mut writer) {
                (Some(0), Some(stdin)) => {
                    let _ = stdin.write_all(&data[1..]).await;
                }
                (Some(255), _) if data.get(1) == Some(&0) => writer = None,
                _ => {}
            }
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
    let code = child.wait().await.unwrap().code().unwrap_or(137);
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": format!("command terminated with non-zero exit code: exit code {code}"),
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })
    };
    let frame = |channel: u8, data: &[u8]| {
        let mut frame = vec![channel];
        frame.extend_from_slice(data);
        Message::binary(frame)
    };
    for (channel, data) in [
        (1, out),
        (2, err),
        (3, serde_json::to_vec(&status).unwrap()),
    ] {
        if !data.is_empty() {
            let _ = sink.send(frame(channel, &data)).await;
        }
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
}

/// A server with node `n1` whose node API is the fake, the pod `web`
/// (containers `app` and `wasm`, `app` the default) bound to it, and what
/// the fake saw.
async fn cluster() -> (TempDir, RunningServer, Arc<Mutex<Vec<String>>>) {
    let (dir, server) = start().await;
    let bootstrap = server
        .node_bootstrap("n1", &["127.0.0.1".to_owned()])
        .unwrap();
    let state = FakeExec {
        token: bootstrap.token.clone(),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/exec/{namespace}/{pod}/{container}", any(fake_exec))
        .with_state(state.clone());
    let addr = serve_tls(&bootstrap, app).await;
    let client = admin(&server);
    create_node(&client, "n1", "127.0.0.1", addr.port()).await;
    create_pod(
        &client,
        "web",
        "n1",
        &["app", "wasm"],
        &[],
        json!({"kubectl.kubernetes.io/default-container": "app"}),
    )
    .await;
    (dir, server, state.seen)
}

/// The admin's client over HTTPS (the server's kubeconfig).
async fn remote_admin(server: &RunningServer) -> kube::Client {
    skiff_sdk::client::from_kubeconfig(&server.paths().kubeconfig)
        .await
        .unwrap()
}

async fn read_all(reader: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut text = String::new();
    if let Some(mut reader) = reader {
        reader.read_to_string(&mut text).await.unwrap();
    }
    text
}

#[tokio::test]
async fn kube_rs_exec_runs_through_the_server_on_the_node() {
    let (_dir, server, seen) = cluster().await;
    let pods: Api<Pod> = Api::namespaced(remote_admin(&server).await, "default");

    let mut process = pods
        .exec(
            "web",
            ["sh", "-c", "echo out; echo err >&2; exit 3"],
            &AttachParams::default().stderr(true),
        )
        .await
        .unwrap();
    let status = process.take_status().unwrap();
    let (stdout, stderr) = tokio::join!(read_all(process.stdout()), read_all(process.stderr()));
    let status = tokio::time::timeout(PATIENCE, status)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stdout.as_str(), stderr.as_str()), ("out\n", "err\n"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let causes = status.details.unwrap().causes.unwrap();
    assert_eq!(
        (causes[0].reason.as_deref(), causes[0].message.as_deref()),
        (Some("ExitCode"), Some("3"))
    );
    // The kubelet's query, the container (the default) in the path.
    assert_eq!(
        seen.lock().unwrap()[0],
        "/exec/default/web/app?command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262%3B+exit+3&error=1&output=1"
    );

    let mut process = pods
        .exec(
            "web",
            ["cat"],
            &AttachParams::default()
                .container("app")
                .stdin(true)
                .stderr(false),
        )
        .await
        .unwrap();
    let mut stdin = process.stdin().unwrap();
    stdin.write_all(b"hello through the relay\n").await.unwrap();
    // kube-rs sends v5's close signal for stdin on shutdown.
    stdin.shutdown().await.unwrap();
    let status = process.take_status().unwrap();
    let stdout = read_all(process.stdout()).await;
    let status = tokio::time::timeout(PATIENCE, status)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stdout, "hello through the relay\n");
    assert_eq!(status.status.as_deref(), Some("Success"));

    // The node's refusal, and a node that cannot be reached, come back as
    // the Status of the session.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let client = admin(&server);
    create_node(&client, "down", "127.0.0.1", closed_port).await;
    create_pod(&client, "stranded", "down", &["app"], &[], json!({})).await;
    for (pod, container, code, message) in [
        ("web", "wasm", 400, "exec is not supported for Wasm pods"),
        (
            "stranded",
            "app",
            500,
            &*format!("cannot reach node \"down\" at 127.0.0.1:{closed_port}: "),
        ),
    ] {
        let mut process = pods
            .exec(pod, ["ls"], &AttachParams::default().container(container))
            .await
            .unwrap();
        let status = process.take_status().unwrap();
        let status = tokio::time::timeout(PATIENCE, status)
            .await
            .unwrap()
            .expect("a status");
        assert_eq!(status.status.as_deref(), Some("Failure"));
        assert_eq!(status.code, Some(code), "{status:?}");
        assert!(
            status.message.as_deref().unwrap().starts_with(message),
            "{status:?}"
        );
    }
    server.stop().await.unwrap();
}

/// `GET path` as `identity`, in-process (no upgrade possible): the code,
/// reason and message of the Status.
async fn status_of(
    server: &RunningServer,
    identity: Identity,
    path: &str,
) -> (u16, String, String) {
    let request = http::Request::get(path)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = server
        .in_process_service(identity)
        .oneshot(request)
        .await
        .unwrap();
    let code = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["code"], code, "{status}");
    (
        code,
        status["reason"].as_str().unwrap_or_default().to_owned(),
        status["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Asserts the Status of `GET <pods>/<path>` as the admin.
async fn check(server: &RunningServer, path: &str, expect: (u16, &str, &str)) {
    let path = format!("{PODS}/{path}");
    let actual = status_of(server, Identity::Admin, &path).await;
    assert_eq!(
        (actual.0, actual.1.as_str(), actual.2.as_str()),
        expect,
        "{path}"
    );
}

#[tokio::test]
async fn pods_exec_refusals_are_statuses() {
    let (_dir, server, seen) = cluster().await;
    let client = admin(&server);
    create_pod(&client, "multi", "n1", &["a", "b"], &[], json!({})).await;
    create_pod(&client, "pending", "", &["app"], &[], json!({})).await;
    create_pod(&client, "done", "n1", &["app"], &[], json!({})).await;
    Api::<Pod>::namespaced(client, "default")
        .patch_status(
            "done",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await
        .unwrap();
    check(
        &server,
        "web/exec?stdout=true",
        (
            400,
            "BadRequest",
            "you must specify at least one command for the container",
        ),
    )
    .await;
    check(
        &server,
        "web/exec?command=ls",
        (
            400,
            "BadRequest",
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
    )
    .await;
    check(
        &server,
        "missing/exec?command=ls&stdout=true",
        (404, "NotFound", r#"pods "missing" not found"#),
    )
    .await;
    check(
        &server,
        "done/exec?command=ls&stdout=true",
        (
            400,
            "BadRequest",
            "cannot exec into a container in a completed pod; current phase is Succeeded",
        ),
    )
    .await;
    check(
        &server,
        "multi/exec?command=ls&stdout=true",
        (
            400,
            "BadRequest",
            "a container name must be specified for pod multi, choose one of: [a b]",
        ),
    )
    .await;
    check(
        &server,
        "web/exec?command=ls&stdout=true&container=nope",
        (400, "BadRequest", "container nope is not valid for pod web"),
    )
    .await;
    check(
        &server,
        "pending/exec?command=ls&stdout=true",
        (
            400,
            "BadRequest",
            "pod pending does not have a host assigned",
        ),
    )
    .await;
    check(
        &server,
        "web/exec?command=ls&stdout=true",
        (
            400,
            "BadRequest",
            "Upgrade request required: exec is served over WebSockets (v5.channel.k8s.io, v4.channel.k8s.io) on HTTP/1.1",
        ),
    )
    .await;
    // Nodes may not exec, whatever the pod; the join token neither.
    let (code, reason, message) = status_of(
        &server,
        Identity::Node("n1".into()),
        &format!("{PODS}/web/exec?command=ls&stdout=true"),
    )
    .await;
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (
            403,
            "Forbidden",
            r#"pods "web" is forbidden: User "system:node:n1" cannot get resource "pods/exec" in API group "" in the namespace "default""#
        )
    );
    let (code, _, _) = status_of(
        &server,
        Identity::Joining,
        &format!("{PODS}/web/exec?command=ls&stdout=true"),
    )
    .await;
    assert_eq!(code, 403);
    // A node's credential over HTTPS too, upgrade and all.
    let bootstrap = server
        .node_bootstrap("n1", &["127.0.0.1".to_owned()])
        .unwrap();
    let node = super::server_http::client_with_token(&server, &bootstrap.token).await;
    let refused = Api::<Pod>::namespaced(node, "default")
        .exec("web", ["ls"], &AttachParams::default())
        .await
        .err()
        .expect("nodes may not exec");
    assert!(
        matches!(&refused, kube::Error::Api(status) if status.code == 403),
        "{refused}"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the node");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn kubectl_exec_through_the_server() {
    if !kubectl_available() {
        return;
    }
    let (_dir, server, _seen) = cluster().await;
    let cache = tempfile::tempdir().unwrap();
    let kubectl = |args: &[&str]| {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .arg("--cache-dir")
            .arg(cache.path())
            .args(args)
            .env("KUBECONFIG", &server.paths().kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    };
    let run = |args: &'static [&'static str], input: &'static [u8]| {
        let mut command = kubectl(args);
        async move {
            let mut child = command.spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input).await.unwrap();
            drop(stdin);
            tokio::time::timeout(PATIENCE, child.wait_with_output())
                .await
                .unwrap_or_else(|_| panic!("kubectl {args:?} did not end"))
                .unwrap()
        }
    };

    // The command's exit code is kubectl's.
    let output = run(&["exec", "web", "--", "sh", "-c", "echo out; exit 3"], b"").await;
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "out\n");

    // stdin through -i.
    let output = run(&["exec", "-i", "web", "-c", "app", "--", "cat"], b"hi\n").await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\n");

    // The node's refusal, as kubectl prints it.
    let output = run(&["exec", "web", "-c", "wasm", "--", "ls"], b"").await;
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: exec is not supported for Wasm pods\n"
    );
    // The server's own refusals.
    let output = run(&["exec", "web", "-c", "nope", "--", "ls"], b"").await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("container nope is not valid for pod web"),
        "{stderr}"
    );
    let bootstrap = server
        .node_bootstrap("n1", &["127.0.0.1".to_owned()])
        .unwrap();
    let output = kubectl(&["exec", "web", "--token", &bootstrap.token, "--", "ls"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("forbidden"), "{stderr}");
    server.stop().await.unwrap();
}
