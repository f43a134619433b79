//! The API server's side of the node API: `/cacerts` without a token, node
//! serving certificates (from the credential claim and from
//! `RunningServer::node_bootstrap`) that verify against the cluster CA, and
//! `pods/log` proxied to a fake node API over HTTPS (its certificate from
//! `node_bootstrap`, checking the node's bearer credential): bytes and
//! query parameters arrive, `follow` streams chunk by chunk, every 400 /
//! 403 / 404 / 422 / 500 answer, kube-rs's and kubectl's `logs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::{Value, json};
use skiff_control::apiserver::auth::Identity;
use skiff_control::server::{NodeBootstrap, RunningServer, ServerError, ServerOptions};
use tempfile::TempDir;
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::ServiceExt as _;

use super::server_bootstrap::{get, node_token, read, start_with};
use super::server_http::client_with_token;
use super::support::cluster::kubectl_available;

/// A server without scheduler or controllers (nothing moves the pods the
/// tests bind by hand).
pub(super) async fn start() -> (TempDir, RunningServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        ServerOptions::default()
            .data_dir(dir.path().join("data"))
            .listen("127.0.0.1:0".parse().unwrap())
            .shutdown_grace(Duration::from_secs(5))
            .controllers(None),
    )
    .await;
    (dir, server)
}

/// What the fake node API saw of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    path: String,
    query: Option<String>,
}

#[derive(Clone)]
struct FakeState {
    token: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The body of the next `streamer` log.
    stream: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>,
}

/// A node API on 127.0.0.1 serving `/containerLogs/{ns}/{pod}/{container}`
/// with the certificate of `bootstrap`, answering only its credential.
/// By container: `streamer` streams what [`FakeNode::stream`] sends,
/// `waiting` is a 400 Status, `broken` a 500 and `denied` a 403 in plain
/// text, anything else
/// one line naming itself.
struct FakeNode {
    addr: SocketAddr,
    state: FakeState,
}

/// Serves `app` over HTTPS (HTTP/1.1, upgrades allowed) on 127.0.0.1
/// with the serving certificate of `bootstrap`; its address.
pub(super) async fn serve_tls(bootstrap: &NodeBootstrap, app: Router) -> SocketAddr {
    let cert =
        CertificateDer::from_pem_slice(bootstrap.serving_certificate_pem.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(bootstrap.serving_key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

impl FakeNode {
    async fn start(bootstrap: &NodeBootstrap) -> Self {
        let state = FakeState {
            token: bootstrap.token.clone(),
            seen: Arc::default(),
            stream: Arc::default(),
        };
        let app = Router::new()
            .fallback(container_logs)
            .with_state(state.clone());
        let addr = serve_tls(bootstrap, app).await;
        Self { addr, state }
    }

    /// The sender of the next `streamer` log's chunks; dropping it ends
    /// the log.
    fn stream(&self) -> mpsc::Sender<Bytes> {
        let (sender, receiver) = mpsc::channel(4);
        *self.state.stream.lock().unwrap() = Some(receiver);
        sender
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn container_logs(State(state): State<FakeState>, request: Request) -> Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        == Some(&format!("Bearer {}", state.token));
    if !authorized {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let path = request.uri().path().to_owned();
    state.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        query: request.uri().query().map(str::to_owned),
    });
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["containerLogs", namespace, pod, container] = parts.as_slice() else {
        return (StatusCode::NOT_FOUND, "404 page not found").into_response();
    };
    match *container {
        "streamer" => {
            let receiver = state.stream.lock().unwrap().take().expect("a stream armed");
            let chunks = tokio_stream::wrappers::ReceiverStream::new(receiver)
                .map(Ok::<_, Infallible>);
            (
                [(header::CONTENT_TYPE, "text/plain")],
                Body::from_stream(chunks),
            )
                .into_response()
        }
        "waiting" => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("container \"waiting\" in pod \"{pod}\" is waiting to start: ContainerCreating"),
                "reason": "BadRequest", "code": 400,
            })
            .to_string(),
        )
            .into_response(),
        "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "runtime exploded\n").into_response(),
        "denied" => (
            StatusCode::FORBIDDEN,
            "Forbidden (user=system:node:n1, verb=get, resource=nodes, subresource=containerLogs)",
        )
            .into_response(),
        other => format!("log of {namespace}/{pod}/{other}\n").into_response(),
    }
}

/// An admin client without TCP.
pub(super) fn admin(server: &RunningServer) -> kube::Client {
    skiff_sdk::client::in_process(server.in_process_service(Identity::Admin), "default")
}

/// Creates the Node `name` whose node API is `host:port` (no addresses
/// when `host` is empty; no port when 0).
pub(super) async fn create_node(client: &kube::Client, name: &str, host: &str, port: u16) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let addresses = if host.is_empty() {
        json!([])
    } else {
        json!([{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": host}])
    };
    let mut status = json!({"status": {"addresses": addresses}});
    if port != 0 {
        status["status"]["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": port}});
    }
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Creates the pod `name` in `default` with these containers (and init
/// containers), bound to `node` unless it is empty.
pub(super) async fn create_pod(
    client: &kube::Client,
    name: &str,
    node: &str,
    containers: &[&str],
    init: &[&str],
    annotations: Value,
) {
    let container = |name: &&str| json!({"name": name, "image": "registry.local/app:1"});
    let mut spec = json!({"containers": containers.iter().map(container).collect::<Vec<_>>()});
    if !init.is_empty() {
        spec["initContainers"] = init.iter().map(container).collect();
    }
    if !node.is_empty() {
        spec["nodeName"] = json!(node);
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// `GET path` as `identity`, in-process; the response with its body
/// unread.
async fn request(server: &RunningServer, identity: Identity, path: &str) -> Response {
    let request = http::Request::get(path)
        .body(Empty::<Bytes>::new())
        .unwrap();
    server
        .in_process_service(identity)
        .oneshot(request)
        .await
        .unwrap()
}

/// `GET path` as the admin: code, content type and body.
async fn fetch(server: &RunningServer, path: &str) -> (StatusCode, String, String) {
    let response = request(server, Identity::Admin, path).await;
    split(response).await
}

async fn split(response: Response) -> (StatusCode, String, String) {
    let status = response.status();
    let content_type = content_type(response.headers());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

const LOG: &str = "/api/v1/namespaces/default/pods";

/// A server with the fake node `n1` (certificate for 127.0.0.1), its
/// Node, and the pod `web` bound to it with the fake's containers.
async fn cluster_with_a_node() -> (TempDir, RunningServer, FakeNode) {
    let (dir, server) = start().await;
    let bootstrap = server
        .node_bootstrap("n1", &["127.0.0.1".to_owned()])
        .unwrap();
    let fake = FakeNode::start(&bootstrap).await;
    let client = admin(&server);
    create_node(&client, "n1", "127.0.0.1", fake.addr.port()).await;
    create_pod(
        &client,
        "web",
        "n1",
        &["app", "streamer", "waiting", "broken", "denied"],
        &["setup"],
        json!({"kubectl.kubernetes.io/default-container": "app"}),
    )
    .await;
    (dir, server, fake)
}

#[tokio::test]
async fn pod_logs_come_from_the_node_api_with_the_options_and_the_node_credential() {
    let (_dir, server, fake) = cluster_with_a_node().await;
    let (status, content_type, body) = fetch(
        &server,
        &format!("{LOG}/web/log?container=app&tailLines=5&timestamps=true&limitBytes=100&sinceSeconds=10&previous=false"),
    )
    .await;
    assert_eq!(
        (status, content_type.as_str(), body.as_str()),
        (StatusCode::OK, "text/plain", "log of default/web/app\n")
    );
    // The default container (annotation), an init container by name.
    assert_eq!(
        fetch(&server, &format!("{LOG}/web/log")).await.2,
        "log of default/web/app\n"
    );
    assert_eq!(
        fetch(&server, &format!("{LOG}/web/log?container=setup"))
            .await
            .2,
        "log of default/web/setup\n"
    );
    assert_eq!(
        fake.seen(),
        [
            Seen {
                path: "/containerLogs/default/web/app".into(),
                query: Some("limitBytes=100&sinceSeconds=10&tailLines=5&timestamps=true".into()),
            },
            Seen {
                path: "/containerLogs/default/web/app".into(),
                query: None,
            },
            Seen {
                path: "/containerLogs/default/web/setup".into(),
                query: None,
            },
        ]
    );

    // kube-rs's logs call, as clients use it.
    let pods: Api<Pod> = Api::namespaced(admin(&server), "default");
    let text = pods
        .logs(
            "web",
            &LogParams {
                container: Some("app".into()),
                tail_lines: Some(1),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(text, "log of default/web/app\n");

    // insecureSkipTLSVerifyBackend is accepted and said to be ignored.
    let response = request(
        &server,
        Identity::Admin,
        &format!("{LOG}/web/log?insecureSkipTLSVerifyBackend=true"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let warning = response.headers()[header::WARNING].to_str().unwrap();
    assert!(
        warning.contains("insecureSkipTLSVerifyBackend is ignored"),
        "{warning}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn pod_logs_follow_streams_chunk_by_chunk() {
    let (_dir, server, fake) = cluster_with_a_node().await;
    let chunks = fake.stream();
    let response = request(
        &server,
        Identity::Admin,
        &format!("{LOG}/web/log?container=streamer&follow=true"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(response.headers()), "text/plain");
    let mut body = response.into_body();
    // Each chunk arrives before the next one is even sent.
    for chunk in ["first line\n", "second line\n", "third line\n"] {
        chunks.send(Bytes::from(chunk)).await.unwrap();
        let mut received = Vec::new();
        while received.len() < chunk.len() {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .unwrap_or_else(|_| panic!("{chunk:?} did not arrive"))
                .expect("the stream is open")
                .unwrap();
            received.extend_from_slice(&frame.into_data().unwrap());
        }
        assert_eq!(String::from_utf8(received).unwrap(), chunk);
    }
    // The log ends when the node ends it.
    drop(chunks);
    let end = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the stream ended");
    assert!(end.is_none(), "{end:?}");
    assert_eq!(
        fake.seen()[0].query.as_deref(),
        Some("follow=true"),
        "container is in the path, not the query"
    );
    server.stop().await.unwrap();
}

/// The code, reason and message of a Status answer.
async fn status_of(
    server: &RunningServer,
    identity: Identity,
    path: &str,
) -> (u16, String, String) {
    let (code, content_type, body) = split(request(server, identity, path).await).await;
    assert_eq!(content_type, "application/json", "{path}: {body}");
    let status: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(status["kind"], "Status", "{body}");
    assert_eq!(status["code"], code.as_u16(), "{body}");
    (
        code.as_u16(),
        status["reason"].as_str().unwrap_or_default().to_owned(),
        status["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Asserts the Status of `GET <pods>/<path>` as the admin.
async fn check_status(server: &RunningServer, path: &str, expect: (u16, &str, &str)) {
    let path = format!("{LOG}/{path}");
    let actual = status_of(server, Identity::Admin, &path).await;
    assert_eq!(
        (actual.0, actual.1.as_str(), actual.2.as_str()),
        expect,
        "{path}"
    );
}

#[tokio::test]
async fn pod_logs_errors_follow_kubernetes() {
    let (_dir, server, fake) = cluster_with_a_node().await;
    let client = admin(&server);
    create_pod(&client, "multi", "n1", &["a", "b"], &["setup"], json!({})).await;
    create_pod(&client, "pending", "", &["app"], &[], json!({})).await;
    create_pod(&client, "orphan", "gone", &["app"], &[], json!({})).await;
    // n2's node API is a closed port; n3 has no address; n4's node API
    // expects another credential; n5's certificate names another address;
    // n6 points at n1's node API, whose certificate does not name n6.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    create_node(&client, "n2", "127.0.0.1", closed_port).await;
    create_pod(&client, "down", "n2", &["app"], &[], json!({})).await;
    create_node(&client, "n3", "", 0).await;
    create_pod(&client, "nowhere", "n3", &["app"], &[], json!({})).await;
    let mut expecting_another = server
        .node_bootstrap("n4", &["127.0.0.1".to_owned()])
        .unwrap();
    expecting_another.token = "skiff-node:someone-else:00".into();
    let strict = FakeNode::start(&expecting_another).await;
    create_node(&client, "n4", "127.0.0.1", strict.addr.port()).await;
    create_pod(&client, "refused", "n4", &["app"], &[], json!({})).await;
    create_node(&client, "n6", "127.0.0.1", fake.addr.port()).await;
    create_pod(&client, "impostor", "n6", &["app"], &[], json!({})).await;
    let elsewhere = FakeNode::start(
        &server
            .node_bootstrap("n5", &["127.0.0.2".to_owned()])
            .unwrap(),
    )
    .await;
    create_node(&client, "n5", "127.0.0.1", elsewhere.addr.port()).await;
    create_pod(&client, "misnamed", "n5", &["app"], &[], json!({})).await;

    let admin = || Identity::Admin;
    check_status(
        &server,
        "missing/log",
        (404, "NotFound", r#"pods "missing" not found"#),
    )
    .await;
    check_status(
        &server,
        "multi/log",
        (
            400,
            "BadRequest",
            "a container name must be specified for pod multi, choose one of: [a b] or one of the init containers: [setup]",
        ),
    )
    .await;
    check_status(
        &server,
        "web/log?container=nope",
        (400, "BadRequest", "container nope is not valid for pod web"),
    )
    .await;
    check_status(
        &server,
        "pending/log",
        (
            400,
            "BadRequest",
            "pod pending does not have a host assigned",
        ),
    )
    .await;
    check_status(
        &server,
        "web/log?tailLines=-1",
        (
            422,
            "Invalid",
            r#"PodLogOptions "web" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"#,
        ),
    )
    .await;
    check_status(
        &server,
        "web/log?limitBytes=0",
        (
            422,
            "Invalid",
            r#"PodLogOptions "web" is invalid: limitBytes: Invalid value: 0: must be greater than 0"#,
        ),
    )
    .await;
    check_status(
        &server,
        "web/log?sinceSeconds=0",
        (
            422,
            "Invalid",
            r#"PodLogOptions "web" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0"#,
        ),
    )
    .await;
    check_status(
        &server,
        "web/log?sinceSeconds=10&sinceTime=2024-01-01T00:00:00Z",
        (
            422,
            "Invalid",
            "PodLogOptions \"web\" is invalid: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ),
    )
    .await;
    check_status(
        &server,
        "web/log?tailLines=many",
        (
            400,
            "BadRequest",
            r#"invalid value "many" for query parameter "tailLines": expected an integer"#,
        ),
    )
    .await;
    // Options are validated before the pod is read, as kube-apiserver does.
    check_status(
        &server,
        "missing/log?tailLines=-1",
        (
            422,
            "Invalid",
            r#"PodLogOptions "missing" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"#,
        ),
    )
    .await;
    check_status(
        &server,
        "orphan/log",
        (404, "NotFound", r#"nodes "gone" not found"#),
    )
    .await;
    // The node's failures: a Status passes through, plain text becomes one.
    check_status(
        &server,
        "web/log?container=waiting",
        (
            400,
            "BadRequest",
            r#"container "waiting" in pod "web" is waiting to start: ContainerCreating"#,
        ),
    )
    .await;
    check_status(
        &server,
        "web/log?container=broken",
        (500, "InternalError", "runtime exploded"),
    )
    .await;
    check_status(
        &server,
        "web/log?container=denied",
        (
            403,
            "Forbidden",
            "Forbidden (user=system:node:n1, verb=get, resource=nodes, subresource=containerLogs)",
        ),
    )
    .await;
    check_status(
        &server,
        "refused/log",
        (401, "Unauthorized", "Unauthorized"),
    )
    .await;
    let (code, _, message) = status_of(&server, admin(), &format!("{LOG}/impostor/log")).await;
    assert_eq!(code, 500);
    assert!(
        message.starts_with(&format!(
            "cannot reach node \"n6\" at 127.0.0.1:{}: the node's certificate does not name node \"n6\"",
            fake.addr.port()
        )),
        "{message}"
    );
    check_status(
        &server,
        "nowhere/log",
        (
            500,
            "InternalError",
            r#"node "n3" has no address in status.addresses"#,
        ),
    )
    .await;
    let (code, reason, message) = status_of(&server, admin(), &format!("{LOG}/down/log")).await;
    assert_eq!((code, reason.as_str()), (500, "InternalError"));
    let prefix = format!("cannot reach node \"n2\" at 127.0.0.1:{closed_port}: ");
    assert!(message.starts_with(&prefix), "{message}");
    assert!(message.contains("refused"), "{message}");
    let (code, _, message) = status_of(&server, admin(), &format!("{LOG}/misnamed/log")).await;
    assert_eq!(code, 500);
    assert!(
        message.contains("TLS handshake failed") && message.contains("certificate"),
        "{message}"
    );
    assert!(
        elsewhere.seen().is_empty(),
        "no request reaches an unverified node"
    );

    // Nodes may not read logs; the join token neither.
    let (code, reason, message) = status_of(
        &server,
        Identity::Node("n1".into()),
        &format!("{LOG}/web/log"),
    )
    .await;
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (
            403,
            "Forbidden",
            r#"pods "web" is forbidden: User "system:node:n1" cannot get resource "pods/log" in API group "" in the namespace "default""#
        )
    );
    let (code, _, _) = status_of(&server, Identity::Joining, &format!("{LOG}/web/log")).await;
    assert_eq!(code, 403);
    // Only GET.
    let response = server
        .in_process_service(Identity::Admin)
        .oneshot(
            http::Request::post(format!("{LOG}/web/log"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn node_bootstrap_issues_a_credential_and_a_certificate_for_the_addresses() {
    let (_dir, server) = start().await;
    let bootstrap = server
        .node_bootstrap(
            "node-a",
            &[
                "127.0.0.2".into(),
                "fd00::2".into(),
                "node-a.example".into(),
            ],
        )
        .unwrap();
    assert_eq!(bootstrap.node_name, "node-a");
    assert!(
        bootstrap.token.starts_with("skiff-node:node-a:"),
        "{}",
        bootstrap.token
    );
    assert_eq!(
        bootstrap.ca_certificate_pem,
        read(&server.paths().tls.ca_cert)
    );
    assert!(!format!("{bootstrap:?}").contains(&bootstrap.token));
    check_serving_certificate(
        &bootstrap.ca_certificate_pem,
        &bootstrap.serving_certificate_pem,
        &bootstrap.serving_key_pem,
        &["node-a", "127.0.0.2", "fd00::2", "node-a.example"],
        &["node-b", "127.0.0.1", "localhost"],
    );
    // The credential works as the node.
    let node = client_with_token(&server, &bootstrap.token).await;
    Api::<Pod>::all(node)
        .list(&Default::default())
        .await
        .unwrap();

    let error = server
        .node_bootstrap("Node_A", &["0.0.0.0".into()])
        .unwrap_err();
    let ServerError::NodeBootstrap { node, source } = &error else {
        panic!("{error}");
    };
    assert_eq!(node, "Node_A");
    let status = source.status();
    assert_eq!(status["code"], 422);
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["nodeName", "addresses[0]"]);
    server.stop().await.unwrap();
}

/// Checks that `cert_pem` chains to `ca_pem`, serves every name in `valid`
/// and none in `invalid`, and that `key_pem` is a PKCS#8 key.
fn check_serving_certificate(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    valid: &[&str],
    invalid: &[&str],
) {
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    assert!(matches!(
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
        PrivateKeyDer::Pkcs8(_)
    ));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let verify = |name: &str| {
        verifier.verify_server_cert(
            &cert,
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
    };
    for name in valid {
        verify(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in invalid {
        assert!(verify(name).is_err(), "{name} should not be covered");
    }
}

#[tokio::test]
async fn node_join_fetches_the_ca_and_claims_a_serving_certificate() {
    let (_dir, server) = start().await;
    // /cacerts needs no token, and is the CA the join token names.
    let ca = get(&server, "/cacerts", None).await;
    assert_eq!(ca.status, StatusCode::OK);
    assert!(
        ca.content_type
            .as_deref()
            .unwrap()
            .starts_with("text/plain"),
        "{ca:?}"
    );
    assert_eq!(ca.body, read(&server.paths().tls.ca_cert));
    let der = CertificateDer::from_pem_slice(ca.body.as_bytes()).unwrap();
    let hash: String = ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(node_token(&server).starts_with(&format!("K10{hash}::node:")));
    // A wrong token is still refused there.
    assert_eq!(
        get(&server, "/cacerts", Some("wrong")).await.status,
        StatusCode::UNAUTHORIZED
    );

    let joining = client_with_token(&server, &node_token(&server)).await;
    let claim = |body: Value| {
        let joining = joining.clone();
        async move {
            let request = http::Request::post("/skiff/v1/node-credentials")
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .unwrap();
            joining.request::<Value>(request).await
        }
    };
    let password = "a-node-password-of-enough-length";
    let answer = claim(json!({
        "nodeName": "n1", "password": password,
        "addresses": ["127.0.0.2", "node-a.example"],
    }))
    .await
    .unwrap();
    assert_eq!(answer["kind"], "NodeCredential");
    assert_eq!(answer["apiVersion"], "skiff.dev/v1");
    assert_eq!(answer["nodeName"], "n1");
    assert!(
        answer["token"]
            .as_str()
            .unwrap()
            .starts_with("skiff-node:n1:")
    );
    assert_eq!(answer["caCertificate"], ca.body.as_str());
    let cert = answer["servingCertificate"].as_str().unwrap();
    let key = answer["servingKey"].as_str().unwrap();
    check_serving_certificate(
        &ca.body,
        cert,
        key,
        &["n1", "127.0.0.2", "node-a.example"],
        &["n2", "127.0.0.1"],
    );
    // Without addresses: the node name alone; each claim a fresh key.
    let again = claim(json!({"nodeName": "n1", "password": password}))
        .await
        .unwrap();
    assert_eq!(again["token"], answer["token"]);
    assert_ne!(again["servingKey"], answer["servingKey"]);
    check_serving_certificate(
        &ca.body,
        again["servingCertificate"].as_str().unwrap(),
        again["servingKey"].as_str().unwrap(),
        &["n1"],
        &["127.0.0.2"],
    );

    // Bad addresses: 422 with a cause each, nothing stored.
    let many: Vec<String> = (1..=17).map(|i| format!("10.0.0.{i}")).collect();
    for (addresses, fields) in [
        (json!(["127.0.0.2", "not an address"]), vec!["addresses[1]"]),
        (json!(many), vec!["addresses"]),
        (
            json!(["0.0.0.0", "Upper.Case"]),
            vec!["addresses[0]", "addresses[1]"],
        ),
    ] {
        let error = claim(json!({"nodeName": "n9", "password": password, "addresses": addresses}))
            .await
            .unwrap_err();
        let kube::Error::Api(status) = error else {
            panic!("{error}");
        };
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
        let causes: Vec<String> = status
            .details
            .unwrap()
            .causes
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(causes, fields, "{addresses}");
    }
    // n9 was not claimed by the refused requests: another password may.
    claim(json!({"nodeName": "n9", "password": "another-password-long-enough"}))
        .await
        .unwrap();
    let wrong_type =
        claim(json!({"nodeName": "n1", "password": password, "addresses": "127.0.0.2"}))
            .await
            .unwrap_err();
    assert!(
        matches!(&wrong_type, kube::Error::Api(status) if status.code == 400),
        "{wrong_type}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn kubectl_logs_reads_and_follows_through_the_server() {
    if !kubectl_available() {
        return;
    }
    let (_dir, server, fake) = cluster_with_a_node().await;
    let cache = tempfile::tempdir().unwrap();
    let kubectl = |args: &[&str]| {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .args(args)
            .arg("--cache-dir")
            .arg(cache.path())
            .env("KUBECONFIG", &server.paths().kubeconfig)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command
    };
    let output = kubectl(&["logs", "web", "-c", "app", "--tail=3"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "log of default/web/app\n"
    );
    assert!(fake.seen()[0].query.as_deref() == Some("tailLines=3"));

    let chunks = fake.stream();
    let mut follow = kubectl(&["logs", "-f", "web", "-c", "streamer"])
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    for line in ["one", "two"] {
        chunks.send(Bytes::from(format!("{line}\n"))).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("kubectl did not print {line:?}"))
            .unwrap();
        assert_eq!(got.as_deref(), Some(line));
    }
    drop(chunks);
    let status = tokio::time::timeout(Duration::from_secs(10), follow.wait())
        .await
        .expect("kubectl ends with the log")
        .unwrap();
    assert!(status.success());

    let refused = kubectl(&["logs", "web", "-c", "nope"])
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("container nope is not valid for pod web"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    server.stop().await.unwrap();
}
