//! How a node joins: `GET /cacerts` answers the cluster CA (public, as in
//! k3s, so that a joining agent can check it against the `K10<sha256>`
//! prefix of its join token), and `POST /skiff/v1/node-credentials` lets a
//! node agent holding the shared join token claim its node name and get
//! the credential that identifies it alone (see [`super::auth`]) and a
//! serving certificate for its node API, as k3s agents register with a
//! node password and get `serving-kubelet.crt`.
//!
//! The request is `{"nodeName": "n1", "password": "<secret the agent
//! keeps>", "addresses": ["127.0.0.2", "node-a.example"]}` (`addresses`
//! optional: at most 16 IP addresses or DNS-1123 names). The first claim of
//! a name stores a hash of the password under `/skiff/node-passwords/<name>`;
//! later claims of the same name must bring the same password, so that a
//! second machine holding the join token cannot take over a node that
//! already registered. The answer is `{"kind": "NodeCredential",
//! "apiVersion": "skiff.dev/v1", "nodeName": "n1", "token":
//! "skiff-node:n1:...", "caCertificate": "<PEM>", "servingCertificate":
//! "<PEM>", "servingKey": "<PKCS#8 PEM>"}`: every claim gets a fresh key
//! pair and a certificate signed by the cluster CA, valid one year for
//! server authentication, whose names are the node name and every address.
//! The join token and the admin token may ask; nothing else may.
//!
//! [`NodeIssuer`] is the one place that issues these; `skiff server`'s
//! in-process agent gets the same through
//! [`RunningServer::node_bootstrap`](crate::server::RunningServer::node_bootstrap),
//! without a password.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Authenticator, Identity};
use super::body;
use super::error::{ApiError, Cause, CauseType};
use super::tls::{CertificateAuthority, ServerNames, hex};
use super::validation::rules;
use crate::store::{Store, StoreError};

/// The path of the claim endpoint.
pub const PATH: &str = "/skiff/v1/node-credentials";
/// The path that answers the cluster CA certificate (public).
pub const CA_CERTS_PATH: &str = "/cacerts";
/// The most addresses a claim may put into a serving certificate.
pub const MAX_ADDRESSES: usize = 16;
/// Where claimed node names keep their password hash.
const PASSWORD_PREFIX: &str = "/skiff/node-passwords/";
/// Bounds of a node password, in bytes.
const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 16..=256;
/// The largest request body.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// What a node needs to join: its credential, the CA to trust, and the
/// serving certificate of its node API. Its `Debug` never shows the token
/// or the key.
#[derive(Clone)]
pub struct NodeBootstrap {
    /// The node name.
    pub node_name: String,
    /// The node's credential (a bearer token), as the claim answers it.
    pub token: String,
    /// The cluster CA certificate, PEM.
    pub ca_certificate_pem: String,
    /// The node API's serving certificate, PEM, signed by the cluster CA,
    /// for the node name and the addresses asked for.
    pub serving_certificate_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub serving_key_pem: String,
}

impl std::fmt::Debug for NodeBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBootstrap")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

/// Issues node credentials and serving certificates: shared by the claim
/// endpoint and the in-process agent of `skiff server`.
#[derive(Clone, Debug)]
pub struct NodeIssuer {
    authenticator: Arc<Authenticator>,
    authority: Arc<CertificateAuthority>,
}

impl NodeIssuer {
    /// An issuer signing with `authority` and deriving credentials with
    /// `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>, authority: Arc<CertificateAuthority>) -> Self {
        Self {
            authenticator,
            authority,
        }
    }

    /// The node's credential and a fresh serving certificate for
    /// `node_name` and `addresses`; 422 Invalid (kind `NodeCredential`)
    /// when the name or an address is not valid.
    pub fn issue(&self, node_name: &str, addresses: &[String]) -> Result<NodeBootstrap, ApiError> {
        let causes = identity_causes(node_name, addresses);
        if !causes.is_empty() {
            return Err(invalid(node_name, causes));
        }
        let mut names = ServerNames {
            dns: vec![node_name.to_owned()],
            ips: Vec::new(),
        };
        for address in addresses {
            match address.parse::<IpAddr>() {
                Ok(ip) if !names.ips.contains(&ip) => names.ips.push(ip),
                Ok(_) => {}
                Err(_) if !names.dns.contains(address) => names.dns.push(address.clone()),
                Err(_) => {}
            }
        }
        let issued = self
            .authority
            .issue_serving_cert(node_name, &names)
            .map_err(ApiError::Certificate)?;
        Ok(NodeBootstrap {
            node_name: node_name.to_owned(),
            token: self.authenticator.node_credential(node_name),
            ca_certificate_pem: self.authority.cert_pem().to_owned(),
            serving_certificate_pem: issued.cert_pem,
            serving_key_pem: issued.key_pem,
        })
    }
}

/// Validation causes of a node name and the addresses of its certificate.
fn identity_causes(node_name: &str, addresses: &[String]) -> Vec<Cause> {
    let mut causes: Vec<Cause> = rules::dns1123_subdomain(node_name)
        .into_iter()
        .map(|message| Cause::invalid("nodeName", node_name, &message))
        .collect();
    if addresses.len() > MAX_ADDRESSES {
        causes.push(Cause::new(
            CauseType::TooMany,
            "addresses",
            &format!(
                "{}: must have at most {MAX_ADDRESSES} items",
                addresses.len()
            ),
        ));
    }
    for (i, address) in addresses.iter().enumerate().take(MAX_ADDRESSES) {
        if address_is_valid(address) {
            continue;
        }
        causes.push(Cause::invalid(
            format!("addresses[{i}]"),
            address,
            "must be an IP address or a lowercase RFC 1123 subdomain (e.g. '10.0.0.5' or 'node-a.example.com')",
        ));
    }
    causes
}

/// An IP address in canonical form (not unspecified, as 0.0.0.0 names no
/// host) or a DNS-1123 subdomain whose last label is not all digits (RFC
/// 1123: a host name never has the dotted-decimal form, so `10.0.0.256` is
/// a mistyped address, not a name).
fn address_is_valid(address: &str) -> bool {
    match address.parse::<IpAddr>() {
        Ok(ip) => !ip.is_unspecified(),
        Err(_) => {
            let top_label = address.rsplit('.').next().unwrap_or_default();
            rules::dns1123_subdomain(address).is_empty()
                && !top_label.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

fn invalid(node_name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        kind: "NodeCredential".into(),
        group: "skiff.dev".into(),
        name: node_name.to_owned(),
        causes,
    }
}

#[derive(Clone)]
struct Claims {
    store: Arc<dyn Store>,
    issuer: NodeIssuer,
}

/// The routes: the claim endpoint over the store that keeps the claimed
/// names, and `/cacerts`.
pub fn router(store: Arc<dyn Store>, issuer: NodeIssuer) -> Router {
    Router::new()
        .route(PATH, post(serve_claim))
        .route(CA_CERTS_PATH, get(serve_ca_certs))
        .with_state(Claims { store, issuer })
}

/// `GET /cacerts`: the CA certificate, PEM, as k3s serves it.
async fn serve_ca_certs(State(claims): State<Claims>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        claims.issuer.authority.cert_pem().to_owned(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Claim {
    node_name: String,
    password: String,
    #[serde(default)]
    addresses: Vec<String>,
}

async fn serve_claim(State(claims): State<Claims>, request: Request) -> Response {
    match claim(&claims, request).await {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

async fn claim(claims: &Claims, request: Request) -> Result<Bytes, ApiError> {
    match request.extensions().get::<Identity>() {
        Some(Identity::Joining | Identity::Admin) => {}
        Some(other) => {
            return Err(ApiError::Forbidden(format!(
                "User \"{}\" cannot claim node credentials: only the node join token can",
                other.user_name()
            )));
        }
        None => return Err(ApiError::Unauthorized),
    }
    let bytes = body::read_body(request.into_body(), MAX_REQUEST_BYTES).await?;
    let claim: Claim = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::BadRequest(format!("invalid node credential claim: {error}")))?;
    let mut causes = identity_causes(&claim.node_name, &claim.addresses);
    if !PASSWORD_LEN.contains(&claim.password.len()) {
        causes.push(Cause::new(
            CauseType::Invalid,
            "password",
            &format!(
                "must be between {} and {} bytes long",
                PASSWORD_LEN.start(),
                PASSWORD_LEN.end()
            ),
        ));
    }
    if !causes.is_empty() {
        return Err(invalid(&claim.node_name, causes));
    }

    let key = format!("{PASSWORD_PREFIX}{}", claim.node_name);
    let hash = Bytes::from(hex(ring::digest::digest(
        &ring::digest::SHA256,
        claim.password.as_bytes(),
    )
    .as_ref()));
    let stored = match claims.store.create(&key, hash.clone(), None).await {
        Ok(_) => hash.clone(),
        Err(StoreError::AlreadyExists { .. }) => claims
            .store
            .get(&key)
            .await?
            .map(|kv| kv.value)
            .unwrap_or_default(),
        Err(error) => return Err(error.into()),
    };
    // Both are hashes of fixed length: comparing them leaks nothing useful.
    if stored != hash {
        return Err(ApiError::Forbidden(format!(
            "node \"{}\" is already registered with a different password",
            claim.node_name
        )));
    }
    let issued = claims.issuer.issue(&claim.node_name, &claim.addresses)?;
    let answer = json!({
        "kind": "NodeCredential",
        "apiVersion": "skiff.dev/v1",
        "nodeName": issued.node_name,
        "token": issued.token,
        "caCertificate": issued.ca_certificate_pem,
        "servingCertificate": issued.serving_certificate_pem,
        "servingKey": issued.serving_key_pem,
    });
    Ok(Bytes::from(answer.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expect`: the (field, message) of every cause.
    fn check(node_name: &str, addresses: &[&str], expect: &[(&str, &str)]) {
        let addresses: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
        let actual: Vec<(String, String)> = identity_causes(node_name, &addresses)
            .into_iter()
            .map(|cause| (cause.field, cause.message))
            .collect();
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(field, message)| (field.to_string(), message.to_string()))
            .collect();
        assert_eq!(actual, expect, "{node_name} {addresses:?}");
    }

    #[test]
    fn names_and_addresses_are_validated() {
        check("n1", &[], &[]);
        check(
            "node-a",
            &["127.0.0.2", "::1", "node-a.example", "fd00::5", "10.0.0.1"],
            &[],
        );
        let not_an_address = "must be an IP address or a lowercase RFC 1123 subdomain (e.g. '10.0.0.5' or 'node-a.example.com')";
        check(
            "n1",
            &["0.0.0.0", "Node_A", "", "10.0.0.256", "::", "010.0.0.1"],
            &[
                (
                    "addresses[0]",
                    &format!("Invalid value: \"0.0.0.0\": {not_an_address}"),
                ),
                (
                    "addresses[1]",
                    &format!("Invalid value: \"Node_A\": {not_an_address}"),
                ),
                (
                    "addresses[2]",
                    &format!("Invalid value: \"\": {not_an_address}"),
                ),
                (
                    "addresses[3]",
                    &format!("Invalid value: \"10.0.0.256\": {not_an_address}"),
                ),
                (
                    "addresses[4]",
                    &format!("Invalid value: \"::\": {not_an_address}"),
                ),
                (
                    "addresses[5]",
                    &format!("Invalid value: \"010.0.0.1\": {not_an_address}"),
                ),
            ],
        );
        let many: Vec<String> = (1..=17).map(|i| format!("10.0.0.{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        check(
            "n1",
            &many,
            &[("addresses", "Too many: 17: must have at most 16 items")],
        );
        let causes = identity_causes("N_1", &[]);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "nodeName");
        assert!(
            causes[0].message.starts_with("Invalid value: \"N_1\": "),
            "{}",
            causes[0].message
        );
    }
}
