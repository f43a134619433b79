//! A real OCI registry for tests: Debian's `docker-registry` serving from a
//! temporary directory on a free 127.0.0.1 port, optionally behind htpasswd
//! basic authentication or the bearer-token flow (with a token server run in
//! the test), killed when dropped. Helpers push Wasm artifacts and
//! hand-made images, and reach into the registry's storage to corrupt it.

// Each test binary uses a subset of the helpers.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use sha2::{Digest as _, Sha256};
use skiff_runtime_wasm::oci::{PushOptions, push_wasm};
use skiff_sdk::runtime::{PullOptions, RegistryAuth};

/// Where Debian installs the registry (`make deps` does).
const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// How long the registry may take to answer `/v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry; killed on drop.
pub struct TestRegistry {
    process: Child,
    address: SocketAddr,
    dir: tempfile::TempDir,
    auth: RegistryAuth,
    token_server: Option<token::TokenServer>,
}

impl TestRegistry {
    /// Whether tests that need the registry can run. When
    /// `/usr/bin/docker-registry` is missing this prints why the test is
    /// skipped and returns false, unless `SKIFF_TEST_REAL` is set (as under
    /// `make test`), where a missing registry is a failure.
    pub fn available() -> bool {
        if Path::new(DOCKER_REGISTRY).exists() {
            return true;
        }
        assert!(
            std::env::var_os("SKIFF_TEST_REAL").is_none(),
            "SKIFF_TEST_REAL is set but {DOCKER_REGISTRY} is missing: run `make deps` \
             (Debian package docker-registry)"
        );
        eprintln!("skipping: {DOCKER_REGISTRY} is not installed (Debian package docker-registry)");
        false
    }

    /// Starts an anonymous registry.
    pub async fn start() -> TestRegistry {
        Self::launch(Access::Anonymous).await
    }

    /// Starts a registry that wants HTTP basic credentials (htpasswd file
    /// with a bcrypt hash); [`TestRegistry::push`] uses them.
    pub async fn start_with_basic_auth(username: &str, password: &str) -> TestRegistry {
        Self::launch(Access::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        })
        .await
    }

    /// Starts a registry that wants bearer tokens from a token server run in
    /// this process, which issues them (signed JWTs) for `username` and
    /// `password` only; [`TestRegistry::push`] uses those.
    pub async fn start_with_token_auth(username: &str, password: &str) -> TestRegistry {
        Self::launch(Access::Token {
            username: username.to_owned(),
            password: password.to_owned(),
        })
        .await
    }

    async fn launch(access: Access) -> TestRegistry {
        assert!(
            Path::new(DOCKER_REGISTRY).exists(),
            "{DOCKER_REGISTRY} is missing: run `make deps` (Debian package docker-registry)"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (auth_config, auth, token_server) = match &access {
            Access::Anonymous => (String::new(), RegistryAuth::Anonymous, None),
            Access::Basic { username, password } => {
                let hash = bcrypt::hash(password, 4).expect("bcrypt");
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{username}:{hash}\n")).expect("htpasswd");
                let config = format!(
                    "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                    htpasswd.display()
                );
                let auth = RegistryAuth::Basic {
                    username: username.clone(),
                    password: password.clone(),
                };
                (config, auth, None)
            }
            Access::Token { username, password } => {
                let server = token::TokenServer::start(username, password).await;
                let bundle = dir.path().join("token-ca.pem");
                std::fs::write(&bundle, server.certificate_pem()).expect("root cert bundle");
                let config = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    server.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    bundle.display()
                );
                let auth = RegistryAuth::Basic {
                    username: username.clone(),
                    password: password.clone(),
                };
                (config, auth, Some(server))
            }
        };

        let mut last_log = String::new();
        // A free port can be taken between finding it and the registry
        // binding it: try a few.
        for _attempt in 0..3 {
            let address = free_loopback_address();
            let config_path = dir.path().join("config.yml");
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {address}\n  secret: skiff-test-secret\n\
                 {auth_config}",
                dir.path().join("storage").display(),
            );
            std::fs::write(&config_path, config).expect("registry config");
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).expect("registry log");
            let mut process = Command::new(DOCKER_REGISTRY)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("spawn docker-registry");
            if wait_until_ready(&mut process, address).await {
                return TestRegistry {
                    process,
                    address,
                    dir,
                    auth,
                    token_server,
                };
            }
            let _ = process.kill();
            let _ = process.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("docker-registry did not start; its log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// `127.0.0.1:PORT/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.address)
    }

    /// The credentials this registry accepts (anonymous when it wants none).
    pub fn auth(&self) -> RegistryAuth {
        self.auth.clone()
    }

    /// A bearer token granting `actions` (e.g. `["pull"]`) on `repository`,
    /// issued by this registry's token server (`None` without one).
    pub fn bearer_token(&self, repository: &str, actions: &[&str]) -> Option<String> {
        let server = self.token_server.as_ref()?;
        Some(server.token_for(repository, actions))
    }

    /// Pull options that reach this registry: plain HTTP, its credentials.
    pub fn pull_options(&self) -> PullOptions {
        PullOptions::default()
            .insecure(true)
            .auth(self.auth.clone())
    }

    /// Push options that reach this registry.
    pub fn push_options(&self) -> PushOptions {
        PushOptions::default()
            .insecure(true)
            .auth(self.auth.clone())
    }

    /// The registry's storage root (`<root>/docker/registry/v2/...`).
    pub fn storage_root(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file holding the blob with `digest` in the registry's storage.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.storage_root()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Pushes `wasm` as a Wasm OCI artifact to `repo_tag` with
    /// [`push_wasm`]; returns the full reference.
    pub async fn push(&self, repo_tag: &str, wasm: &[u8]) -> String {
        let reference = self.reference(repo_tag);
        push_wasm(wasm, &reference, &self.push_options(), &mut |_| {})
            .await
            .unwrap_or_else(|error| panic!("push {reference}: {}", chain(&error)));
        reference
    }

    /// Pushes a single-layer image (an OCI image config and `layer` with
    /// `media_type`, e.g. a tar of a `.wasm` file) to `repo_tag`; returns
    /// the full reference.
    pub async fn push_image_with_layer(
        &self,
        repo_tag: &str,
        layer: &[u8],
        media_type: &str,
    ) -> String {
        let repository = repo_tag.split(':').next().expect("a repository");
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "wasm",
            "os": "wasip1",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
        }))
        .unwrap();
        let config = self
            .push_blob(
                repository,
                &config,
                "application/vnd.oci.image.config.v1+json",
            )
            .await;
        let layer = self.push_blob(repository, layer, media_type).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": [layer],
        });
        self.push_manifest(repo_tag, &manifest).await;
        self.reference(repo_tag)
    }

    /// Uploads a blob to `repository` and returns its descriptor (JSON, with
    /// `media_type`), ready to be put in a manifest.
    pub async fn push_blob(
        &self,
        repository: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> serde_json::Value {
        let digest = sha256_digest(bytes);
        let reference = self.parsed(&format!("{repository}:unused"));
        self.client()
            .push_blob(&reference, bytes.to_vec(), &digest)
            .await
            .unwrap_or_else(|error| panic!("push blob to {repository}: {error}"));
        serde_json::json!({
            "mediaType": media_type,
            "digest": digest,
            "size": bytes.len(),
        })
    }

    /// Uploads a manifest (or image index: its `mediaType` field decides
    /// the content type) to `repo_tag` and returns its digest.
    pub async fn push_manifest(&self, repo_tag: &str, manifest: &serde_json::Value) -> String {
        let media_type = manifest["mediaType"]
            .as_str()
            .expect("the manifest names its mediaType")
            .to_owned();
        let bytes = serde_json::to_vec(manifest).unwrap();
        let reference = self.parsed(repo_tag);
        self.client()
            .push_manifest_raw(&reference, bytes.clone(), media_type.parse().unwrap())
            .await
            .unwrap_or_else(|error| panic!("push manifest to {repo_tag}: {error}"));
        sha256_digest(&bytes)
    }

    /// Points `new_repo_tag` at the manifest `existing_repo_tag` names (the
    /// same bytes, so the same digest), as `docker tag` + push would.
    pub async fn tag(&self, existing_repo_tag: &str, new_repo_tag: &str) {
        let client = self.client();
        client
            .client
            .store_auth_if_needed(&self.address(), &client.auth)
            .await;
        let (bytes, _) = client
            .client
            .pull_manifest_raw(
                &self.parsed(existing_repo_tag),
                &client.auth,
                &[
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                ],
            )
            .await
            .unwrap_or_else(|error| panic!("fetch {existing_repo_tag}: {error}"));
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["mediaType"]
            .as_str()
            .expect("the manifest names its mediaType")
            .parse()
            .unwrap();
        client
            .push_manifest_raw(&self.parsed(new_repo_tag), bytes.to_vec(), media_type)
            .await
            .unwrap_or_else(|error| panic!("tag {new_repo_tag}: {error}"));
    }

    fn parsed(&self, repo_tag: &str) -> Reference {
        self.reference(repo_tag).parse().expect("a reference")
    }

    /// A registry client that reaches this registry, with its credentials
    /// stored for every repository.
    fn client(&self) -> AuthenticatedClient {
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![self.address()]),
            ..ClientConfig::default()
        });
        AuthenticatedClient {
            client,
            auth: match &self.auth {
                RegistryAuth::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
                RegistryAuth::Basic { username, password } => {
                    oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
                }
                RegistryAuth::Bearer { token } => {
                    oci_client::secrets::RegistryAuth::Bearer(token.clone())
                }
            },
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Who the registry lets in.
enum Access {
    Anonymous,
    Basic { username: String, password: String },
    Token { username: String, password: String },
}

/// An `oci-client` client with the registry's credentials.
struct AuthenticatedClient {
    client: oci_client::Client,
    auth: oci_client::secrets::RegistryAuth,
}

impl AuthenticatedClient {
    async fn push_blob(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        digest: &str,
    ) -> oci_client::errors::Result<String> {
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        self.client.push_blob(reference, bytes, digest).await
    }

    async fn push_manifest_raw(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        content_type: http::HeaderValue,
    ) -> oci_client::errors::Result<String> {
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        self.client
            .push_manifest_raw(reference, bytes, content_type)
            .await
    }
}

/// Waits for the registry's `/v2/` to answer (200, or 401 behind
/// authentication); false if the process exited or the time is up.
async fn wait_until_ready(process: &mut Child, address: SocketAddr) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = process.try_wait() {
            return false;
        }
        if let Some(status) = http_get_status(address, "/v2/")
            && (status == 200 || status == 401)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A loopback address with a port nothing listens on right now.
fn free_loopback_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// The status code of a plain HTTP GET, or `None` if nothing answers.
fn http_get_status(address: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    response.split_whitespace().nth(1)?.parse().ok()
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An error with its causes, one per `: `.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The token server of the registry's bearer flow: answers
/// `GET /token?service=…&scope=repository:NAME:ACTIONS` for the right basic
/// credentials with a JWT signed by a P-256 key whose self-signed
/// certificate is the registry's `rootcertbundle` (the token carries it in
/// its `x5c` header, which is how the registry finds the key).
mod token {
    use std::net::SocketAddr;
    use std::time::{SystemTime, UNIX_EPOCH};

    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::{Request, Response, StatusCode};
    use hyper_util::rt::TokioIo;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

    /// The `service` the registry and the tokens name.
    pub const SERVICE: &str = "skiff-test-registry";
    /// The `iss` of the tokens.
    pub const ISSUER: &str = "skiff-test-token-server";

    /// A running token server; its accept loop ends when this is dropped.
    pub struct TokenServer {
        address: SocketAddr,
        certificate_pem: String,
        issuer: std::sync::Arc<Issuer>,
        accept_loop: tokio::task::JoinHandle<()>,
    }

    /// What every request needs.
    struct Issuer {
        username: String,
        password: String,
        key: EcdsaKeyPair,
        certificate_der: Vec<u8>,
    }

    impl TokenServer {
        /// Starts the server on a free loopback port.
        pub async fn start(username: &str, password: &str) -> TokenServer {
            let key = rcgen::KeyPair::generate().expect("a P-256 key");
            let params = rcgen::CertificateParams::new(vec!["skiff-test-token-signer".to_owned()])
                .expect("certificate parameters");
            let certificate = params.self_signed(&key).expect("a self-signed certificate");
            let signing_key = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &SystemRandom::new(),
            )
            .expect("the key in ring's terms");
            let issuer = std::sync::Arc::new(Issuer {
                username: username.to_owned(),
                password: password.to_owned(),
                key: signing_key,
                certificate_der: certificate.der().to_vec(),
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the token server");
            let address = listener.local_addr().expect("its address");
            let serving = issuer.clone();
            let accept_loop = tokio::spawn(async move {
                let issuer = serving;
                while let Ok((stream, _)) = listener.accept().await {
                    let issuer = issuer.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let issuer = issuer.clone();
                            async move { Ok::<_, std::convert::Infallible>(issuer.answer(&request)) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            TokenServer {
                address,
                certificate_pem: certificate.pem(),
                issuer,
                accept_loop,
            }
        }

        /// The PEM of the certificate the registry trusts.
        pub fn certificate_pem(&self) -> String {
            self.certificate_pem.clone()
        }

        /// A token for `actions` on `repository`, without asking over HTTP.
        pub fn token_for(&self, repository: &str, actions: &[&str]) -> String {
            self.issuer.sign(vec![serde_json::json!({
                "type": "repository",
                "name": repository,
                "actions": actions,
            })])
        }

        /// The token endpoint's URL (the registry's `realm`).
        pub fn realm(&self) -> String {
            format!("http://{}/token", self.address)
        }
    }

    impl Drop for TokenServer {
        fn drop(&mut self) {
            self.accept_loop.abort();
        }
    }

    impl Issuer {
        /// A token for the requested scopes, or 401 without the right
        /// credentials.
        fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
            let expected = format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", self.username, self.password))
            );
            let authorized = request
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .is_some_and(|value| value.as_bytes() == expected.as_bytes());
            if request.uri().path() != "/token" || !authorized {
                return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .body(Full::new(Bytes::from_static(
                        b"{\"details\":\"bad credentials\"}",
                    )))
                    .unwrap();
            }
            let access = request.uri().query().unwrap_or_default().as_bytes();
            let access: Vec<serde_json::Value> = form_urlencoded::parse(access)
                .filter(|(key, _)| key == "scope")
                .filter_map(|(_, scope)| {
                    let (kind, rest) = scope.split_once(':')?;
                    let (name, actions) = rest.rsplit_once(':')?;
                    Some(serde_json::json!({
                        "type": kind,
                        "name": name,
                        "actions": actions.split(',').collect::<Vec<_>>(),
                    }))
                })
                .collect();
            let token = self.sign(access);
            let body = serde_json::json!({
                "token": token,
                "access_token": token,
                "expires_in": 300,
            });
            Response::builder()
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        }

        /// A JWT (ES256) granting `access`.
        fn sign(&self, access: Vec<serde_json::Value>) -> String {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = serde_json::json!({
                "typ": "JWT",
                "alg": "ES256",
                "x5c": [STANDARD.encode(&self.certificate_der)],
            });
            let claims = serde_json::json!({
                "iss": ISSUER,
                "sub": self.username,
                "aud": SERVICE,
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": format!("token-{now}-{}", access.len()),
                "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = self
                .key
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .expect("sign the token");
            format!(
                "{signing_input}.{}",
                URL_SAFE_NO_PAD.encode(signature.as_ref())
            )
        }
    }
}
