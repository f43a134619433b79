//! The running server over the network: bearer-token authentication (401
//! Status for no or unknown tokens, public health and version paths, the
//! join token only claiming node credentials, a node writing only its own
//! objects), `/metrics`, `/readyz`, ALPN
//! h2 and http/1.1, plain HTTP only with `--insecure-http`, a shutdown
//! that ends open watches instead of waiting for them, and kubectl against
//! it (ignored: needs kubectl).

use std::time::{Duration, Instant};

use hyper::{StatusCode, Version};
use skiff_control::apiserver::health::version_info;
use skiff_control::server::{ServerOptions, Transport, start};

use super::server_bootstrap::{
    admin_token, get, https, node_token, plain_http, read, start_server,
};

fn assert_unauthorized(answer: &super::server_bootstrap::Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {answer:?}"
    );
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/json"),
        "{what}"
    );
    let status = answer.json();
    assert_eq!(
        (
            status["kind"].as_str(),
            status["status"].as_str(),
            status["reason"].as_str(),
            status["code"].as_u64()
        ),
        (
            Some("Status"),
            Some("Failure"),
            Some("Unauthorized"),
            Some(401)
        ),
        "{what}: {status}"
    );
}

#[tokio::test]
async fn server_refuses_missing_and_unknown_tokens_with_a_status() {
    let (_dir, server) = start_server().await;
    let admin = admin_token(&server);
    let wrong = "0".repeat(admin.len());

    assert_unauthorized(&get(&server, "/api", None).await, "no token on /api");
    assert_unauthorized(
        &get(&server, "/api/v1/namespaces", None).await,
        "no token on a resource",
    );
    assert_unauthorized(
        &get(&server, "/metrics", None).await,
        "no token on /metrics",
    );
    assert_unauthorized(&get(&server, "/api", Some(&wrong)).await, "wrong token");
    assert_unauthorized(
        &get(&server, "/api", Some(&admin[..32])).await,
        "token prefix",
    );
    // A wrong token is refused even where no token is needed.
    assert_unauthorized(
        &get(&server, "/healthz", Some(&wrong)).await,
        "wrong token on /healthz",
    );

    // The public paths answer anonymous callers.
    for path in ["/healthz", "/livez", "/readyz"] {
        let answer = get(&server, path, None).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "ok"),
            "{path}"
        );
    }
    let version = get(&server, "/version", None).await;
    assert_eq!(version.status, StatusCode::OK);
    assert_eq!(version.json()["gitVersion"], version_info().git_version);

    let ok = get(&server, "/api", Some(&admin)).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_join_token_only_claims_node_credentials() {
    let (_dir, server) = start_server().await;
    let join = node_token(&server);
    let version = get(&server, "/version", Some(&join)).await;
    assert_eq!(version.status, StatusCode::OK);
    let namespaces = get(&server, "/api/v1/namespaces", Some(&join)).await;
    assert_eq!(namespaces.status, StatusCode::FORBIDDEN, "{namespaces:?}");
    assert_eq!(
        namespaces.json()["message"],
        r#"namespaces is forbidden: User "system:bootstrap:skiff-node-token" cannot list resource "namespaces" in API group "" at the cluster scope"#
    );

    let joining = client_with_token(&server, &join).await;
    let password = "a-node-password-of-enough-length";
    let credential = claim(&joining, "n1", password).await.unwrap();
    assert!(credential.starts_with("skiff-node:n1:"), "{credential}");
    // The same claim again gets the same credential; another password for
    // the name is refused.
    assert_eq!(claim(&joining, "n1", password).await.unwrap(), credential);
    let taken = claim(&joining, "n1", "someone-else-with-the-join-token")
        .await
        .unwrap_err();
    assert_eq!(taken.code, 403, "{taken:?}");
    assert_eq!(
        taken.message,
        r#"node "n1" is already registered with a different password"#
    );
    let bad = claim(&joining, "N_1", "short").await.unwrap_err();
    assert_eq!(bad.code, 422, "{bad:?}");
    assert_eq!(bad.reason, "Invalid");

    // A node credential cannot claim credentials itself.
    let node = client_with_token(&server, &credential).await;
    assert_eq!(claim(&node, "n2", password).await.unwrap_err().code, 403);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_nodes_write_only_their_own_objects() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

    let (_dir, server) = start_server().await;
    let (admin, _joining, node) = admin_joining_and_node_clients(&server).await;
    let code = |error: kube::Error| match error {
        kube::Error::Api(status) => status.code,
        other => panic!("{other}"),
    };

    let node_object = |name: &str| -> Node {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
    };
    let nodes: Api<Node> = Api::all(node.clone());
    nodes
        .create(&PostParams::default(), &node_object("n1"))
        .await
        .unwrap();
    assert_eq!(
        code(
            nodes
                .create(&PostParams::default(), &node_object("n2"))
                .await
                .unwrap_err()
        ),
        403
    );
    Api::<Node>::all(admin.clone())
        .create(&PostParams::default(), &node_object("n2"))
        .await
        .unwrap();
    let status = Patch::Merge(serde_json::json!({"status": {"phase": "Running"}}));
    nodes
        .patch_status("n1", &PatchParams::default(), &status)
        .await
        .unwrap();
    assert_eq!(
        code(
            nodes
                .patch_status("n2", &PatchParams::default(), &status)
                .await
                .unwrap_err()
        ),
        403
    );

    let lease = |name: &str| -> Lease {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
    };
    let leases: Api<Lease> = Api::namespaced(node.clone(), "kube-node-lease");
    leases
        .create(&PostParams::default(), &lease("n1"))
        .await
        .unwrap();
    assert_eq!(
        code(
            leases
                .create(&PostParams::default(), &lease("n2"))
                .await
                .unwrap_err()
        ),
        403
    );

    let pod = |name: &str, node_name: &str| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "registry.local/c:1"}]},
        }))
        .unwrap()
    };
    let admin_pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    for (name, node_name) in [("mine", "n1"), ("theirs", "n2")] {
        admin_pods
            .create(&PostParams::default(), &pod(name, node_name))
            .await
            .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(node.clone(), "default");
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 2);
    pods.patch_status("mine", &PatchParams::default(), &status)
        .await
        .unwrap();
    let refused = pods
        .patch_status("theirs", &PatchParams::default(), &status)
        .await
        .unwrap_err();
    match &refused {
        kube::Error::Api(status) => assert_eq!(
            status.message,
            r#"pods "theirs" is forbidden: User "system:node:n1" cannot patch resource "pods/status" in API group "" in the namespace "default": the pod is not bound to node "n1""#
        ),
        other => panic!("{other}"),
    }
    assert_eq!(
        code(
            pods.delete("theirs", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        403
    );
    pods.delete("mine", &DeleteParams::default()).await.unwrap();
    // Creating pods or touching other kinds stays forbidden.
    assert_eq!(
        code(
            pods.create(&PostParams::default(), &pod("new", "n1"))
                .await
                .unwrap_err()
        ),
        403
    );
    server.stop().await.unwrap();
}

/// Clients as the admin, with the join token, and as the node `n1` (whose
/// credential the join token claimed).
async fn admin_joining_and_node_clients(
    server: &skiff_control::server::RunningServer,
) -> (kube::Client, kube::Client, kube::Client) {
    let admin = client_with_token(server, &admin_token(server)).await;
    let joining = client_with_token(server, &node_token(server)).await;
    let credential = claim(&joining, "n1", "a-node-password-of-enough-length")
        .await
        .unwrap();
    let node = client_with_token(server, &credential).await;
    (admin, joining, node)
}

/// A kube client of the server with another bearer token.
pub async fn client_with_token(
    server: &skiff_control::server::RunningServer,
    token: &str,
) -> kube::Client {
    let kubeconfig = read(&server.paths().kubeconfig);
    let admin = admin_token(server);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig.replace(&admin, token)).unwrap();
    skiff_sdk::client::from_kubeconfig(&path).await.unwrap()
}

/// Claims node credentials; the Status of a refusal.
async fn claim(
    client: &kube::Client,
    node_name: &str,
    password: &str,
) -> Result<String, kube::core::Status> {
    let request = http::Request::post("/skiff/v1/node-credentials")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(
            serde_json::to_vec(&serde_json::json!({"nodeName": node_name, "password": password}))
                .unwrap(),
        )
        .unwrap();
    match client.request::<serde_json::Value>(request).await {
        Ok(answer) => {
            assert_eq!(answer["kind"], "NodeCredential");
            assert_eq!(answer["nodeName"], node_name);
            Ok(answer["token"].as_str().unwrap().to_owned())
        }
        Err(kube::Error::Api(status)) => Err(*status),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn server_metrics_expose_the_request_watch_and_store_families() {
    let (_dir, server) = start_server().await;
    let admin = admin_token(&server);
    assert_eq!(get(&server, "/readyz", None).await.status, StatusCode::OK);
    assert_eq!(
        get(&server, "/api/v1/namespaces", Some(&admin))
            .await
            .status,
        StatusCode::OK
    );
    // One open watch, to be counted while it lasts.
    let ca = server.paths().tls.ca_cert.clone();
    let watch = tokio::spawn(watch_namespaces(server.local_addr(), ca, admin.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = get(&server, "/metrics", Some(&admin)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .content_type
            .as_deref()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = answer.body;
    for expect in [
        // OpenMetrics names the counter family without `_total`.
        "# TYPE apiserver_request counter",
        r#"apiserver_request_total{verb="LIST",resource="namespaces",code="200"} 1"#,
        r#"apiserver_request_total{verb="GET",resource="",code="200"} 1"#,
        "# TYPE apiserver_request_duration_seconds histogram",
        r#"apiserver_request_duration_seconds_count{verb="LIST",resource="namespaces"} 1"#,
        "# TYPE apiserver_registered_watchers gauge",
        r#"apiserver_registered_watchers{resource="namespaces"} 1"#,
        r#"apiserver_request_total{verb="WATCH",resource="namespaces",code="200"} 1"#,
        "# TYPE skiff_store_request_duration_seconds histogram",
        r#"skiff_store_request_duration_seconds_count{operation="current_revision"}"#,
        "# EOF",
    ] {
        assert!(text.contains(expect), "{expect:?} missing from\n{text}");
    }
    server.stop().await.unwrap();
    watch.await.unwrap();
}

#[tokio::test]
async fn server_readyz_checks_the_store() {
    let (_dir, server) = start_server().await;
    let answer = get(&server, "/readyz?verbose", Some(&admin_token(&server))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        "[+]ping ok\n[+]store ok\n[+]shutdown ok\nreadyz check passed\n"
    );
    assert_eq!(
        get(&server, "/readyz/store", None).await.status,
        StatusCode::OK
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_negotiates_h2_and_http1_through_alpn() {
    let (_dir, server) = start_server().await;
    let h2 = https(
        &server,
        "127.0.0.1",
        &[b"h2", b"http/1.1"],
        "GET",
        "/version",
        None,
    )
    .await;
    assert_eq!((h2.version, h2.status), (Version::HTTP_2, StatusCode::OK));
    let h1 = https(
        &server,
        "localhost",
        &[b"http/1.1"],
        "GET",
        "/version",
        None,
    )
    .await;
    assert_eq!((h1.version, h1.status), (Version::HTTP_11, StatusCode::OK));
    let ipv6 = https(&server, "::1", &[b"h2"], "GET", "/healthz", None).await;
    assert_eq!(ipv6.status, StatusCode::OK, "the certificate covers ::1");
    // Plain HTTP to the HTTPS port is not served.
    assert!(
        plain_http(server.local_addr(), "GET", "/version", None)
            .await
            .is_err()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_insecure_http_still_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        ServerOptions::default()
            .data_dir(dir.path().join("data"))
            .listen("127.0.0.1:0".parse().unwrap())
            .transport(Transport::InsecureHttp),
    )
    .await
    .unwrap();
    assert!(
        server.api_url().starts_with("http://"),
        "{}",
        server.api_url()
    );
    let kubeconfig = read(&server.paths().kubeconfig);
    assert!(
        !kubeconfig.contains("certificate-authority-data"),
        "{kubeconfig}"
    );
    let addr = server.local_addr();
    let anonymous = plain_http(addr, "GET", "/api", None).await.unwrap();
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let admin = plain_http(addr, "GET", "/api", Some(&admin_token(&server)))
        .await
        .unwrap();
    assert_eq!(admin.status, StatusCode::OK);
    let health = plain_http(addr, "GET", "/healthz", None).await.unwrap();
    assert_eq!(health.status, StatusCode::OK);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_stop_ends_open_watches_instead_of_waiting_the_grace_period() {
    let (_dir, server) = start_server().await;
    let admin = admin_token(&server);
    // A watch over HTTP/2 that stays open (nothing changes).
    let watch_server = server.local_addr();
    let ca = server.paths().tls.ca_cert.clone();
    let watch = tokio::spawn(watch_namespaces(watch_server, ca, admin.clone()));
    let ready = get(&server, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!watch.is_finished(), "the watch should stay open");

    let started = Instant::now();
    server.stop().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let (status, events) = tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .expect("the watch ended")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        events.contains("\"ADDED\""),
        "the watch sent the initial state: {events}"
    );
}

/// Watches namespaces over h2 until the server ends the stream; returns the
/// status and everything received.
async fn watch_namespaces(
    addr: std::net::SocketAddr,
    ca: std::path::PathBuf,
    token: String,
) -> (StatusCode, String) {
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject as _;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(format!(
        "https://127.0.0.1:{}/api/v1/namespaces?watch=true",
        addr.port()
    ))
    .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
    .body(Empty::<Bytes>::new())
    .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let mut received = String::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    received.push_str(&String::from_utf8_lossy(data));
                }
            }
            // A reset stream would also end it, but less politely.
            Err(error) => panic!("the watch stream failed instead of ending: {error}"),
        }
    }
    (status, received)
}

#[tokio::test]
#[ignore = "needs kubectl; run by make test"]
async fn server_answers_kubectl() {
    let (_dir, server) = start_server().await;
    let kubeconfig = server.paths().kubeconfig.clone();
    let output = tokio::process::Command::new("kubectl")
        .args(["version", "-o", "json"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl version failed:\n{stdout}\n{stderr}"
    );
    let version: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        version_info().git_version,
        "{stdout}"
    );

    let output = tokio::process::Command::new("kubectl")
        .args(["get", "namespaces", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().any(|l| l == "namespace/default"),
        "kubectl get namespaces:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_answers_self_subject_access_reviews() {
    use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
    use kube::api::{Api, PostParams};

    let (_dir, server) = start_server().await;
    let (admin, joining, node) = admin_joining_and_node_clients(&server).await;
    let ask = |client: kube::Client, verb: &str, resource: &str| {
        let review: SelfSubjectAccessReview = serde_json::from_value(serde_json::json!({
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": "default"}},
        }))
        .unwrap();
        async move {
            Api::<SelfSubjectAccessReview>::all(client)
                .create(&PostParams::default(), &review)
                .await
                .unwrap()
                .status
                .unwrap()
                .allowed
        }
    };
    assert!(ask(admin.clone(), "delete", "pods").await);
    assert!(ask(node.clone(), "list", "pods").await);
    assert!(!ask(node.clone(), "create", "pods").await);
    assert!(!ask(joining, "list", "pods").await);
    server.stop().await.unwrap();
}
