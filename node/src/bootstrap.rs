//! Joining a cluster, as k3s agents do: with only the server's URL and the
//! join token, fetch the cluster CA (checked against the token's
//! `K10<sha256>` prefix unless a CA file is given), claim this node's name
//! with a password kept in the data dir, and get back the node's own
//! credential and the certificate of its node API. The agent then talks
//! to the API with a kubeconfig of its own (`<data dir>/kubeconfig`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Deserialize;

use crate::agent::AgentCredentials;

/// A failed join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// A file of the data dir or the CA file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server's CA does not match the join token's hash.
    #[error(
        "the server's CA certificate does not match the join token (sha256 {actual}, the token expects {expected}): is this the right server?"
    )]
    CaMismatch {
        /// What the token says.
        expected: String,
        /// What the server sent.
        actual: String,
    },
    /// No CA file and a token without a CA hash.
    #[error("the join token carries no CA hash (K10<sha256>::...): pass --ca-file")]
    NoCa,
    /// What the server sent is not a certificate.
    #[error("the server's CA is not a PEM certificate")]
    BadCa,
    /// The client could not be configured.
    #[error("configuring the API client: {0}")]
    Config(#[source] kube::config::KubeconfigError),
    /// A request to the server failed.
    #[error("{what}: {source}")]
    Request {
        /// Which request.
        what: &'static str,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The server's answer could not be read.
    #[error("the server's node credential answer is malformed: {0}")]
    Answer(#[source] serde_json::Error),
}

/// What [`join`] returns.
pub struct Joined {
    /// A client with the node's credential.
    pub client: kube::Client,
    /// The node's credential and serving certificate.
    pub credentials: AgentCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeCredential {
    token: String,
    ca_certificate: String,
    serving_certificate: String,
    serving_key: String,
}

/// Joins the cluster at `server` as node `node_name` reachable at
/// `addresses`.
pub async fn join(
    server: &str,
    join_token: &str,
    ca_file: Option<&Path>,
    node_name: &str,
    addresses: &[String],
    data_dir: &Path,
) -> Result<Joined, JoinError> {
    let join_token = join_token.trim();
    let ca_pem = match ca_file {
        Some(path) => std::fs::read_to_string(path).map_err(|source| JoinError::File {
            path: path.to_owned(),
            source,
        })?,
        None => fetch_ca(server, join_token).await?,
    };
    let password = node_password(data_dir)?;
    let joining = client(server, join_token, &ca_pem).await?;
    let body = serde_json::json!({
        "nodeName": node_name,
        "password": password,
        "addresses": addresses,
    });
    let request = http::Request::post("/skiff/v1/node-credentials")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|_| JoinError::BadCa)?;
    let answer = joining
        .request_text(request)
        .await
        .map_err(|source| JoinError::Request {
            what: "claiming the node's credential",
            source,
        })?;
    let credential: NodeCredential = serde_json::from_str(&answer).map_err(JoinError::Answer)?;
    let kubeconfig = kubeconfig_yaml(server, &credential.token, &credential.ca_certificate);
    let path = data_dir.join("kubeconfig");
    write_private(&path, kubeconfig.as_bytes())?;
    let client = client(server, &credential.token, &credential.ca_certificate).await?;
    Ok(Joined {
        client,
        credentials: AgentCredentials {
            token: credential.token,
            serving_certificate_pem: credential.serving_certificate,
            serving_key_pem: credential.serving_key,
        },
    })
}

/// The CA from the server's public `/cacerts`, accepted only if its
/// SHA-256 is the one the join token names.
async fn fetch_ca(server: &str, join_token: &str) -> Result<String, JoinError> {
    let expected = join_token
        .strip_prefix("K10")
        .and_then(|rest| rest.split("::").next())
        .filter(|hash| hash.len() == 64)
        .ok_or(JoinError::NoCa)?
        .to_ascii_lowercase();
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
    );
    let insecure = client_from_yaml(&yaml).await?;
    let request = http::Request::get("/cacerts")
        .body(Vec::new())
        .map_err(|_| JoinError::BadCa)?;
    let pem = insecure
        .request_text(request)
        .await
        .map_err(|source| JoinError::Request {
            what: "fetching the server's CA",
            source,
        })?;
    let der = first_pem_certificate(&pem).ok_or(JoinError::BadCa)?;
    let actual = hex(ring::digest::digest(&ring::digest::SHA256, &der).as_ref());
    if actual != expected {
        return Err(JoinError::CaMismatch { expected, actual });
    }
    Ok(pem)
}

/// The DER of the first certificate of a PEM text.
fn first_pem_certificate(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = pem[start..].find("-----END CERTIFICATE-----")? + start;
    let body: String = pem[start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The node's password for claiming its name, made once and kept in the
/// data dir (0600), so that only this machine can claim the name again.
fn node_password(data_dir: &Path) -> Result<String, JoinError> {
    let path = data_dir.join("node-password");
    match std::fs::read_to_string(&path) {
        Ok(password) if password.trim().len() >= 16 => Ok(password.trim().to_owned()),
        Ok(_) | Err(_) => {
            let mut bytes = [0u8; 32];
            rand::Rng::fill(&mut rand::rng(), &mut bytes);
            let password = hex(&bytes);
            write_private(&path, password.as_bytes())?;
            Ok(password)
        }
    }
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), JoinError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let error = |source| JoinError::File {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

/// A kubeconfig for `server` with `token`, trusting `ca_pem`.
pub fn kubeconfig_yaml(server: &str, token: &str, ca_pem: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: node\ncurrent-context: skiff\nusers:\n- name: node\n  user:\n    token: {token}\n"
    )
}

async fn client(server: &str, token: &str, ca_pem: &str) -> Result<kube::Client, JoinError> {
    client_from_yaml(&kubeconfig_yaml(server, token, ca_pem)).await
}

async fn client_from_yaml(yaml: &str) -> Result<kube::Client, JoinError> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(JoinError::Config)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(JoinError::Config)?;
    kube::Client::try_from(config).map_err(|source| JoinError::Request {
        what: "building the API client",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_certificate_of_a_pem_is_decoded() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(first_pem_certificate(pem), Some(vec![0, 1, 2, 3]));
        assert_eq!(first_pem_certificate("nothing"), None);
    }

    #[test]
    fn the_node_password_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let first = node_password(dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(node_password(dir.path()).unwrap(), first);
        let mode = std::fs::metadata(dir.path().join("node-password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
