//! A `docker-registry` (Debian's) on a free 127.0.0.1 port, serving from a
//! temporary directory, killed when dropped, with helpers that push blobs
//! and manifests and reach into its storage. The pattern of the workspace's
//! and the Wasm runtime's test registries: test crates do not share modules.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest as _, Sha256};
use skiff_sdk::runtime::PullOptions;

/// Where Debian installs the registry (`make deps` does).
const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// How long the registry may take to answer `/v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry; killed on drop.
pub struct TestRegistry {
    process: Child,
    address: SocketAddr,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry, or returns `None` (having said why) when
    /// docker-registry is not installed and `SKIFF_TEST_REAL` is unset; with
    /// `SKIFF_TEST_REAL` set (`make test`) a missing registry fails.
    pub fn start() -> Option<TestRegistry> {
        if !Path::new(DOCKER_REGISTRY).exists() {
            super::skip_or_fail(&format!(
                "{DOCKER_REGISTRY} is not installed (Debian package docker-registry; `make deps`)"
            ));
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut log = String::new();
        // A free port can be taken between finding it and the registry
        // binding it: try a few.
        for _attempt in 0..3 {
            let address = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {address}\n  secret: skiff-test-secret\n",
                    dir.path().join("storage").display()
                ),
            )
            .expect("registry config");
            let log_path = dir.path().join("registry.log");
            let log_file = std::fs::File::create(&log_path).expect("registry log");
            let mut process = Command::new(DOCKER_REGISTRY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("log file"))
                .stderr(log_file)
                .spawn()
                .expect("spawn docker-registry");
            let deadline = Instant::now() + START_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = process.try_wait() {
                    break;
                }
                if answers(address) {
                    return Some(TestRegistry {
                        process,
                        address,
                        dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = process.kill();
            let _ = process.wait();
            log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("docker-registry did not start; its log:\n{log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// `127.0.0.1:PORT/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.address)
    }

    /// How to pull from this registry: plain HTTP, anonymous.
    pub fn pull_options(&self) -> PullOptions {
        PullOptions::default().insecure(true)
    }

    /// The file holding the blob with `digest` in the registry's storage.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Uploads a blob to `repository` (without registry and tag) and returns
    /// its descriptor, ready to be put in a manifest.
    pub async fn push_blob(
        &self,
        repository: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> serde_json::Value {
        let digest = sha256_digest(bytes);
        let reference = self.parsed(&format!("{repository}:unused"));
        client(&self.address())
            .await
            .push_blob(&reference, bytes.to_vec(), &digest)
            .await
            .unwrap_or_else(|error| panic!("push blob to {repository}: {error}"));
        serde_json::json!({
            "mediaType": media_type,
            "digest": digest,
            "size": bytes.len(),
        })
    }

    /// Uploads a manifest or image index to `repo_tag` (`repo:tag`, or
    /// `repo@digest`) and returns its digest and its size. Its `mediaType`
    /// field is the content type.
    pub async fn push_manifest(
        &self,
        repo_tag: &str,
        manifest: &serde_json::Value,
    ) -> (String, usize) {
        let media_type = manifest["mediaType"]
            .as_str()
            .expect("the manifest names its mediaType")
            .to_owned();
        let bytes = serde_json::to_vec(manifest).unwrap();
        client(&self.address())
            .await
            .push_manifest_raw(
                &self.parsed(repo_tag),
                bytes.clone(),
                media_type.parse().unwrap(),
            )
            .await
            .unwrap_or_else(|error| panic!("push manifest to {repo_tag}: {error}"));
        (sha256_digest(&bytes), bytes.len())
    }

    fn parsed(&self, repo_tag: &str) -> Reference {
        self.reference(repo_tag).parse().expect("a reference")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A registry client for this plain-HTTP loopback registry, anonymous.
async fn client(registry: &str) -> oci_client::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    });
    client
        .store_auth_if_needed(registry, &RegistryAuth::Anonymous)
        .await;
    client
}

/// Whether `/v2/` answers 200.
fn answers(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
