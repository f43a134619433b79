//! Protobuf bodies as the real kubectl sends them, decoded by
//! `apiserver::protobuf` into the JSON that kubectl itself prints for the
//! same object (Go's JSON encoding, `--dry-run=client -o json`):
//! - bodies captured from kubectl 1.32 (`tests/fixtures/protobuf/`), so
//!   the check runs everywhere;
//! - bodies captured live, when kubectl is on PATH, by a listener that
//!   records what kubectl POSTs and answers with the decoded object; each
//!   is compared with the JSON that kubectl prints for the same command
//!   with `--dry-run=client -o json`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::{Value, json};
use skiff_control::apiserver::protobuf::{self, MEDIA_TYPE};
use tempfile::TempDir;
use tokio::net::TcpListener;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/protobuf")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Decodes `bytes`, asserts the JSON and that it decodes into `T`.
fn check<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8], expected: &Value) {
    let decoded = protobuf::decode(bytes).unwrap_or_else(|error| panic!("{what}: {error}"));
    assert_eq!(
        &decoded,
        expected,
        "{what} decoded to:\n{}",
        serde_json::to_string_pretty(&decoded).unwrap()
    );
    if let Err(error) = serde_json::from_value::<T>(decoded) {
        panic!("{what} is not a {}: {error}", std::any::type_name::<T>());
    }
}

/// The first body kubectl sent is the one the issue was about:
/// `kubectl create configmap c --from-literal=a=b`.
#[test]
fn kubectl_create_configmap_fixture() {
    use k8s_openapi::api::core::v1::ConfigMap;
    check::<ConfigMap>(
        "create configmap",
        &fixture("kubectl-1.32-create-configmap.pb"),
        &json!({
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "c", "namespace": "default", "creationTimestamp": null},
            "data": {"a": "b"},
        }),
    );
}

/// The other typed commands, as kubectl 1.32 sent them; the JSON is what
/// `--dry-run=client -o json` prints for the create commands, and what Go
/// writes for the reviews and the token request less its `null` lists and
/// non-`omitempty` empty strings (`"token": ""`), which decode the same.
#[test]
fn kubectl_typed_command_fixtures() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::authorization::v1::{SelfSubjectAccessReview, SelfSubjectRulesReview};
    use k8s_openapi::api::core::v1::{Namespace, Secret, Service};

    check::<Deployment>(
        "create deployment web --image=nginx --replicas=0 --port=80",
        &fixture("kubectl-1.32-create-deployment.pb"),
        &json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "creationTimestamp": null,
                "labels": {"app": "web"},
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {},
                    }]},
                },
                "strategy": {},
            },
            "status": {},
        }),
    );
    check::<Service>(
        "create service clusterip svc --tcp=80:8080",
        &fixture("kubectl-1.32-create-service.pb"),
        &json!({
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {
                "name": "svc",
                "namespace": "default",
                "creationTimestamp": null,
                "labels": {"app": "svc"},
            },
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                "selector": {"app": "svc"},
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        }),
    );
    check::<Secret>(
        "create secret generic s --from-literal=k=v",
        &fixture("kubectl-1.32-create-secret.pb"),
        &json!({
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "s", "namespace": "default", "creationTimestamp": null},
            "data": {"k": "dg=="},
        }),
    );
    check::<Namespace>(
        "create namespace ns1",
        &fixture("kubectl-1.32-create-namespace.pb"),
        &json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {"name": "ns1", "creationTimestamp": null},
            "spec": {},
            "status": {},
        }),
    );
    check::<SelfSubjectAccessReview>(
        "auth can-i get pods",
        &fixture("kubectl-1.32-auth-can-i.pb"),
        &json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {
                "namespace": "default",
                "verb": "get",
                "resource": "pods",
            }},
            "status": {"allowed": false},
        }),
    );
    check::<SelfSubjectRulesReview>(
        "auth can-i --list",
        &fixture("kubectl-1.32-auth-can-i-list.pb"),
        &json!({
            "kind": "SelfSubjectRulesReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"namespace": "default"},
            "status": {"incomplete": false},
        }),
    );
    check::<TokenRequest>(
        "create token default",
        &fixture("kubectl-1.32-create-token.pb"),
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {},
            "status": {"expirationTimestamp": null},
        }),
    );
}

/// A listener standing in for the API server: records each body POSTed
/// as protobuf and answers 201 with it decoded; answers everything else
/// (kubectl's `/version`) 404.
struct Recorder {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

impl Recorder {
    async fn start() -> Self {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&bodies);
        let routes = axum::Router::new().fallback(
            move |method: axum::http::Method, headers: HeaderMap, body: Bytes| {
                let recorded = Arc::clone(&recorded);
                async move {
                    let protobuf_body = headers
                        .get(header::CONTENT_TYPE)
                        .is_some_and(|value| value == MEDIA_TYPE);
                    if method != axum::http::Method::POST || !protobuf_body {
                        return (StatusCode::NOT_FOUND, "not found").into_response();
                    }
                    recorded.lock().unwrap().push(body.clone());
                    match protobuf::decode(&body) {
                        Ok(object) => (StatusCode::CREATED, axum::Json(object)).into_response(),
                        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
                    }
                }
            },
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes).await });
        Recorder { addr, bodies }
    }

    fn take(&self) -> Vec<Bytes> {
        std::mem::take(&mut self.bodies.lock().unwrap())
    }
}

/// kubectl with an empty kubeconfig and its own cache dir, against `addr`:
/// whether it succeeded, and its stdout.
async fn kubectl(home: &Path, addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let kubeconfig: PathBuf = home.join("kubeconfig");
    std::fs::write(&kubeconfig, "").unwrap();
    let output = tokio::process::Command::new("kubectl")
        .arg(format!("--server=http://{addr}"))
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .args(["--namespace", "default"])
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    // Shown with --nocapture or when the test fails.
    eprintln!(
        "$ kubectl {} ({})\n{stdout}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), stdout)
}

fn kubectl_available() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("kubectl").is_file())
    });
    if !found {
        eprintln!("kubectl is not on PATH: skipping this test");
    }
    found
}

/// Each typed create command's protobuf body, sent by the kubectl on PATH,
/// decodes to exactly the JSON that kubectl prints for it client-side.
#[tokio::test]
async fn live_kubectl_bodies_decode_to_what_kubectl_prints() {
    if !kubectl_available() {
        return;
    }
    let home = TempDir::new().unwrap();
    std::fs::write(home.path().join("blob.bin"), [0u8, 159, 146, 150, 255]).unwrap();
    let blob = format!(
        "--from-file=blob={}",
        home.path().join("blob.bin").display()
    );
    let recorder = Recorder::start().await;
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "create",
            "configmap",
            "c",
            "--from-literal=a=b",
            "--from-literal=empty=",
        ],
        vec!["create", "configmap", "bin", &blob],
        vec![
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=k=v",
            &blob,
        ],
        vec![
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--image=busybox",
            "--replicas=0",
            "--port=80",
        ],
        vec![
            "create",
            "service",
            "nodeport",
            "np",
            "--tcp=80:http",
            "--node-port=30080",
        ],
        vec![
            "create",
            "service",
            "clusterip",
            "headless",
            "--clusterip=None",
        ],
        vec!["create", "namespace", "ns1"],
        vec!["create", "priorityclass", "high", "--value=1000"],
    ];
    for command in commands {
        let what = command.join(" ");
        let (printed_ok, printed) = kubectl(
            home.path(),
            recorder.addr,
            &[&command[..], &["--dry-run=client", "-o", "json"]].concat(),
        )
        .await;
        assert!(printed_ok, "kubectl {what} --dry-run=client failed");
        let printed: Value = serde_json::from_str(&printed).unwrap();
        let (sent_ok, _) = kubectl(
            home.path(),
            recorder.addr,
            &[&command[..], &["--dry-run=server"]].concat(),
        )
        .await;
        let bodies = recorder.take();
        assert_eq!(
            bodies.len(),
            1,
            "kubectl {what} sent {} bodies",
            bodies.len()
        );
        let decoded = protobuf::decode(&bodies[0]);
        if command[1] == "priorityclass" {
            // Not a kind the server serves: a clear error (the recorder's
            // 400), which the caller answers 415.
            let error = decoded.expect_err("PriorityClass has no protobuf decoding");
            assert!(error.to_string().contains("PriorityClass"), "{error}");
            assert!(!sent_ok, "kubectl {what} succeeded on a 400");
            continue;
        }
        assert!(sent_ok, "kubectl {what} --dry-run=server failed");
        let decoded = decoded.unwrap_or_else(|error| panic!("{what}: {error}"));
        assert_eq!(
            decoded,
            printed,
            "kubectl {what}: decoded\n{}",
            serde_json::to_string_pretty(&decoded).unwrap()
        );
    }
}
