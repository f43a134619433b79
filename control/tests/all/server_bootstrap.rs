//! `skiff server`'s first start and restarts, in-process on 127.0.0.1:0
//! with a temporary data dir: the files it creates and their modes, a
//! kubeconfig that kube-rs loads and uses over HTTPS with the embedded CA,
//! reuse of every file on restart, a new serving certificate only when the
//! names change, the store lock against a second server, and the same on
//! an etcd store (ignored: needs etcd). Also the HTTPS helpers the other
//! `server_*` modules use.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Namespace;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use skiff_control::apiserver::auth::Identity;
use skiff_control::apiserver::health::version_info;
use skiff_control::server::{RunningServer, ServerError, ServerOptions, start};
use skiff_control::store::StoreError;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A server on a free loopback port over a fresh data dir.
pub async fn start_server() -> (TempDir, RunningServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(&dir.path().join("data"), "127.0.0.1:0".parse().unwrap()).await;
    (dir, server)
}

pub async fn start_in(data_dir: &Path, listen: SocketAddr) -> RunningServer {
    start_with(
        ServerOptions::default()
            .data_dir(data_dir)
            .listen(listen)
            .shutdown_grace(Duration::from_secs(10)),
    )
    .await
}

pub async fn start_with(options: ServerOptions) -> RunningServer {
    start(options)
        .await
        .unwrap_or_else(|error| panic!("start: {}", error_chain(&error)))
}

pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn admin_token(server: &RunningServer) -> String {
    read(&server.paths().admin_token).trim().to_owned()
}

pub fn node_token(server: &RunningServer) -> String {
    read(&server.paths().node_token).trim().to_owned()
}

/// One answered request.
#[derive(Debug)]
pub struct Answer {
    pub version: Version,
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one request over a fresh TLS connection that trusts only the
/// server's CA, offering `alpn`, to `server_name` (an IP or DNS name the
/// certificate must cover).
pub async fn https(
    server: &RunningServer,
    server_name: &str,
    alpn: &[&[u8]],
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Answer {
    let ca = CertificateDer::from_pem_file(&server.paths().tls.ca_cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with {server_name}: {e}"));
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let host = match server_name.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => server_name.to_owned(),
    };
    let url = format!("https://{host}:{}{path}", server.local_addr().port());
    send(TokioIo::new(tls), h2, method, &url, token).await
}

/// Sends one request over plain TCP (HTTP/1.1).
pub async fn plain_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<Answer, hyper::Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    try_send(
        TokioIo::new(tcp),
        false,
        method,
        &format!("http://{addr}{path}"),
        token,
    )
    .await
}

async fn send<I>(io: I, h2: bool, method: &str, url: &str, token: Option<&str>) -> Answer
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    try_send(io, h2, method, url, token)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

async fn try_send<I>(
    io: I,
    h2: bool,
    method: &str,
    url: &str,
    token: Option<&str>,
) -> Result<Answer, hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let uri: hyper::Uri = url.parse().unwrap();
    let mut request = Request::builder().method(method);
    request = if h2 {
        request.uri(uri.clone())
    } else {
        request
            .uri(uri.path_and_query().unwrap().as_str())
            .header(hyper::header::HOST, uri.authority().unwrap().as_str())
    };
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(connection);
        sender.send_request(request).await?
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(connection);
        sender.send_request(request).await?
    };
    let version = response.version();
    let status = response.status();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        version,
        status,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// GET over HTTPS (h2 when negotiated) to 127.0.0.1.
pub async fn get(server: &RunningServer, path: &str, token: Option<&str>) -> Answer {
    https(
        server,
        "127.0.0.1",
        &[b"h2", b"http/1.1"],
        "GET",
        path,
        token,
    )
    .await
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn server_first_start_creates_the_data_dir_layout() {
    let (_dir, server) = start_server().await;
    let paths = server.paths().clone();
    for (path, expect) in [
        (&paths.data_dir, 0o700),
        (&paths.tls.dir, 0o700),
        (&paths.tls.ca_cert, 0o644),
        (&paths.tls.ca_key, 0o600),
        (&paths.tls.server_cert, 0o644),
        (&paths.tls.server_key, 0o600),
        (&paths.admin_token, 0o600),
        (&paths.node_token, 0o600),
        (&paths.kubeconfig, 0o600),
    ] {
        assert_eq!(mode(path), expect, "mode of {}", path.display());
    }
    assert!(paths.store_file.is_file());
    assert_eq!(paths.store_file, paths.data_dir.join("store.redb"));
    assert_eq!(paths.kubeconfig, paths.data_dir.join("kubeconfig"));

    let admin = admin_token(&server);
    assert!(is_hex(&admin, 64), "{admin}");
    let node = node_token(&server);
    let (ca_hash, secret) = node
        .strip_prefix("K10")
        .and_then(|rest| rest.split_once("::node:"))
        .unwrap_or_else(|| panic!("node token shape: {node}"));
    assert!(is_hex(ca_hash, 64) && is_hex(secret, 64), "{node}");
    assert_ne!(secret, admin);

    let kubeconfig = kube::config::Kubeconfig::read_from(&paths.kubeconfig).unwrap();
    assert_eq!(kubeconfig.current_context.as_deref(), Some("skiff"));
    let cluster = kubeconfig.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(kubeconfig.clusters[0].name, "skiff");
    assert_eq!(cluster.server.as_deref(), Some(server.api_url()));
    assert_eq!(server.api_url(), format!("https://{}", server.local_addr()));
    assert!(cluster.certificate_authority_data.is_some());
    assert_eq!(kubeconfig.auth_infos[0].name, "admin");
    assert_eq!(kubeconfig.contexts[0].name, "skiff");
    let context = kubeconfig.contexts[0].context.as_ref().unwrap();
    assert_eq!(
        (context.cluster.as_str(), context.user.as_deref()),
        ("skiff", Some("admin"))
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_kubeconfig_gives_a_working_kube_client_over_https() {
    let (_dir, server) = start_server().await;
    let client = skiff_sdk::client::from_kubeconfig(&server.paths().kubeconfig)
        .await
        .unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, version_info().git_version);
    assert!(
        version.git_version.contains("+skiff-"),
        "{}",
        version.git_version
    );

    // The same client reaches the API proper: the cluster's namespaces.
    let namespaces = kube::Api::<Namespace>::all(client)
        .list(&Default::default())
        .await
        .unwrap();
    let names: Vec<_> = namespaces
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    assert!(names.contains(&"default"), "{names:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_in_process_service_needs_no_tcp_or_token() {
    let (_dir, server) = start_server().await;
    let client = skiff_sdk::client::in_process(
        server.in_process_service(Identity::Component("scheduler")),
        "default",
    );
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, version_info().git_version);
    let default = kube::Api::<Namespace>::all(client)
        .get("default")
        .await
        .unwrap();
    assert_eq!(default.metadata.name.as_deref(), Some("default"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_restart_reuses_ca_tokens_certificate_and_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = start_in(&data, "127.0.0.1:0".parse().unwrap()).await;
    let addr = first.local_addr();
    let paths = first.paths().clone();
    let files: Vec<PathBuf> = vec![
        paths.tls.ca_cert.clone(),
        paths.tls.ca_key.clone(),
        paths.tls.server_cert.clone(),
        paths.tls.server_key.clone(),
        paths.admin_token.clone(),
        paths.node_token.clone(),
        paths.kubeconfig.clone(),
    ];
    let before: Vec<String> = files.iter().map(|f| read(f)).collect();
    first.stop().await.unwrap();

    // Same port, so that the kubeconfig's server URL is the same too.
    let second = start_in(&data, addr).await;
    let after: Vec<String> = files.iter().map(|f| read(f)).collect();
    for ((file, before), after) in files.iter().zip(&before).zip(&after) {
        assert_eq!(before, after, "{} changed across a restart", file.display());
    }
    let answer = get(&second, "/version", Some(&admin_token(&second))).await;
    assert_eq!(answer.status, StatusCode::OK);
    second.stop().await.unwrap();
}

#[tokio::test]
async fn server_cert_is_reissued_only_when_the_names_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = start_in(&data, "127.0.0.1:0".parse().unwrap()).await;
    let paths = first.paths().clone();
    let (ca, cert) = (read(&paths.tls.ca_cert), read(&paths.tls.server_cert));
    first.stop().await.unwrap();

    // 127.0.0.2 is loopback too, but not among the default names.
    let moved = start_in(&data, "127.0.0.2:0".parse().unwrap()).await;
    assert_eq!(read(&paths.tls.ca_cert), ca, "the CA is kept");
    let reissued = read(&paths.tls.server_cert);
    assert_ne!(
        reissued, cert,
        "the serving certificate must cover 127.0.0.2"
    );
    let answer = https(&moved, "127.0.0.2", &[b"h2"], "GET", "/version", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    // And it still covers the loopback names.
    let answer = https(&moved, "localhost", &[b"h2"], "GET", "/version", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let kubeconfig = read(&paths.kubeconfig);
    assert!(
        kubeconfig.contains(&format!("https://{}", moved.local_addr())),
        "{kubeconfig}"
    );
    moved.stop().await.unwrap();

    // Back on 127.0.0.1: the new certificate covers it as well; kept.
    let back = start_in(&data, "127.0.0.1:0".parse().unwrap()).await;
    assert_eq!(read(&paths.tls.server_cert), reissued);
    back.stop().await.unwrap();
}

#[tokio::test]
async fn server_second_start_on_the_same_data_dir_fails_fast() {
    let (dir, server) = start_server().await;
    let error = start(
        ServerOptions::default()
            .data_dir(dir.path().join("data"))
            .listen("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, ServerError::OpenStore(StoreError::Locked { .. })),
        "{}",
        error_chain(&error)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn server_run_returns_after_shutdown_and_releases_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let options = ServerOptions::default()
        .data_dir(&data)
        .listen("127.0.0.1:0".parse().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(skiff_control::server::run(options, async {
        let _ = stopped.await;
    }));
    // Wait until it is up: the kubeconfig is written just before serving.
    for _ in 0..200 {
        if data.join("kubeconfig").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    // The store file lock is released: a new server opens it.
    let again = start_in(&data, "127.0.0.1:0".parse().unwrap()).await;
    again.stop().await.unwrap();
}

#[tokio::test]
#[ignore = "needs etcd; run by make test"]
async fn server_on_etcd_serves_without_a_store_file() {
    let etcd = tokio::task::spawn_blocking(crate::support::etcd::EtcdProcess::start)
        .await
        .expect("start etcd");
    let store =
        skiff_control::store::EtcdConfig::from_url(&format!("etcd://{}", etcd.endpoint())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        ServerOptions::default()
            .data_dir(dir.path().join("data"))
            .listen("127.0.0.1:0".parse().unwrap())
            .store(skiff_control::server::StoreBackend::Etcd(store)),
    )
    .await
    .unwrap_or_else(|error| panic!("start: {}", error_chain(&error)));
    assert!(!server.paths().store_file.exists());
    let client = skiff_sdk::client::from_kubeconfig(&server.paths().kubeconfig)
        .await
        .unwrap();
    let default = kube::Api::<Namespace>::all(client)
        .get("default")
        .await
        .unwrap();
    assert_eq!(default.metadata.name.as_deref(), Some("default"));
    let ready = get(&server, "/readyz", None).await;
    assert_eq!((ready.status, ready.body.as_str()), (StatusCode::OK, "ok"));
    server.stop().await.unwrap();
}
