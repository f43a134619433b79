//! The `pods/log` subresource: `GET
//! /api/v1/namespaces/{ns}/pods/{name}/log` proxies to the node API of the
//! pod's node, as kube-apiserver proxies to the kubelet.
//!
//! In kube-apiserver's order: the query's PodLogOptions are decoded (400
//! for a value that does not parse) and validated (422 Invalid, kind
//! `PodLogOptions`); the pod is read (404); the container is chosen (the
//! one asked for, else the `kubectl.kubernetes.io/default-container`
//! annotation, else the only container; 400 with the choices otherwise);
//! a pod without `spec.nodeName` is 400. Then the Node gives the address
//! (its `InternalIP`, else its first address) and port
//! (`status.daemonEndpoints.kubeletEndpoint.Port`, 10250 when unset), and
//! the server sends `GET /containerLogs/{ns}/{pod}/{container}?<options>`
//! over HTTPS, verifying the node's certificate against the cluster CA for
//! that address and for the node's name (see [`NodeClient`]), and
//! presenting the node's own credential as a bearer token. A 2xx body streams through as `text/plain`, frame by frame; a
//! failure that is a `Status` passes through with its code; any other
//! failure becomes a `Status` with the node's code and body; a node that
//! cannot be reached is 500.
//!
//! `insecureSkipTLSVerifyBackend` is accepted but not honoured: the server
//! presents the node's credential, which an unverified peer could keep, so
//! it always verifies (and says so in a `Warning` header).
//!
//! Everything but [`NodeClient`] and [`serve`] is pure.

use std::net::IpAddr;

use skiff_sdk::error_chain;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{ServerName, UnixTime};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::auth::Authenticator;
use super::body;
use super::error::{ApiError, Cause, CauseType};
use super::handlers::Api;
use super::resources::{self, ResourceDef};
use super::tls::{self, CertificateAuthority, TlsError};

/// The node API's port when the Node does not say (the kubelet's).
pub const DEFAULT_NODE_API_PORT: u16 = 10250;
/// The annotation naming the container `kubectl logs` and `exec` default
/// to.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// How long connecting to a node (TCP, TLS, HTTP) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node may take to answer with its headers.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a failed node answer is read, as kube-apiserver's
/// `maxReadLength`.
const MAX_FAILURE_BYTES: usize = 50_000;

/// Kubernetes' PodLogOptions, as the query gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `container`: which container's log.
    pub container: Option<String>,
    /// `follow`: stream the log as it grows.
    pub follow: bool,
    /// `previous`: the log of the previous, terminated instance.
    pub previous: bool,
    /// `sinceSeconds`: only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// `sinceTime`: only lines after this time.
    pub since_time: Option<jiff::Timestamp>,
    /// `timestamps`: prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// `tailLines`: only this many lines from the end.
    pub tail_lines: Option<i64>,
    /// `limitBytes`: stop after this many bytes.
    pub limit_bytes: Option<i64>,
    /// `insecureSkipTLSVerifyBackend` (accepted, never honoured; see the
    /// module documentation).
    pub insecure_skip_tls_verify_backend: bool,
}

impl LogOptions {
    /// Decodes the query as kube-apiserver's parameter codec does (the
    /// first value of each parameter; a boolean is false only when absent,
    /// `0` or `false`; 400 for a number or time that does not parse), then
    /// validates as `ValidatePodLogOptions` (422 Invalid for `pod`).
    pub fn from_query(pairs: &[(String, String)], pod: &str) -> Result<Self, ApiError> {
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let flag = |name: &str| first(name).is_some_and(query_true);
        let integer = |name: &str| -> Result<Option<i64>, ApiError> {
            match first(name) {
                None | Some("") => Ok(None),
                Some(value) => value.parse().map(Some).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "invalid value {value:?} for query parameter {name:?}: expected an integer"
                    ))
                }),
            }
        };
        let since_time = match first("sinceTime") {
            None | Some("") => None,
            Some(value) => Some(value.parse::<jiff::Timestamp>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "invalid value {value:?} for query parameter \"sinceTime\": expected an RFC 3339 time such as 2006-01-02T15:04:05Z"
                ))
            })?),
        };
        let options = Self {
            container: first("container")
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            follow: flag("follow"),
            previous: flag("previous"),
            since_seconds: integer("sinceSeconds")?,
            since_time,
            timestamps: flag("timestamps"),
            tail_lines: integer("tailLines")?,
            limit_bytes: integer("limitBytes")?,
            insecure_skip_tls_verify_backend: flag("insecureSkipTLSVerifyBackend"),
        };
        let causes = options.validate();
        if !causes.is_empty() {
            return Err(ApiError::Invalid {
                kind: "PodLogOptions".into(),
                group: String::new(),
                name: pod.to_owned(),
                causes,
            });
        }
        Ok(options)
    }

    /// Kubernetes' `ValidatePodLogOptions`.
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let Some(tail) = self.tail_lines.filter(|tail| *tail < 0) {
            causes.push(Cause::invalid(
                "tailLines",
                tail,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(limit) = self.limit_bytes.filter(|limit| *limit < 1) {
            causes.push(Cause::invalid(
                "limitBytes",
                limit,
                "must be greater than 0",
            ));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => causes.push(Cause::new(
                CauseType::Forbidden,
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(seconds), None) if seconds < 1 => causes.push(Cause::invalid(
                "sinceSeconds",
                seconds,
                "must be greater than 0",
            )),
            _ => {}
        }
        causes
    }

    /// The node API's query: the options but the container, as
    /// kube-apiserver's `LogLocation` writes them (keys sorted, as Go's
    /// `url.Values.Encode`; `sinceTime` in RFC 3339, UTC).
    pub fn node_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if self.follow {
            query.append_pair("follow", "true");
        }
        if let Some(limit) = self.limit_bytes {
            query.append_pair("limitBytes", &limit.to_string());
        }
        if self.previous {
            query.append_pair("previous", "true");
        }
        if let Some(seconds) = self.since_seconds {
            query.append_pair("sinceSeconds", &seconds.to_string());
        }
        if let Some(time) = self.since_time {
            query.append_pair(
                "sinceTime",
                &time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            );
        }
        if let Some(tail) = self.tail_lines {
            query.append_pair("tailLines", &tail.to_string());
        }
        if self.timestamps {
            query.append_pair("timestamps", "true");
        }
        query.finish()
    }
}

/// Go's `Convert_Slice_string_To_bool` for a present query parameter:
/// false only for `0` and `false` (any case).
pub(super) fn query_true(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

/// Whether a `pods/log` query follows the log (a long-running request).
pub fn follows(query: Option<&str>) -> bool {
    query.is_some_and(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "follow")
            .is_some_and(|(_, value)| query_true(&value))
    })
}

/// The container whose log is read: `requested` if the pod has it (any
/// kind of container), else the default-container annotation when it names
/// one, else the only container. 400 with kube-apiserver's messages
/// otherwise.
pub fn container_name(pod: &Pod, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let containers: Vec<&str> = spec
        .into_iter()
        .flat_map(|s| &s.containers)
        .map(|c| c.name.as_str())
        .collect();
    let init: Vec<&str> = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    let ephemeral: Vec<&str> = spec
        .and_then(|s| s.ephemeral_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    let exists = |wanted: &str| {
        containers
            .iter()
            .chain(&init)
            .chain(&ephemeral)
            .any(|c| *c == wanted)
    };
    if let Some(wanted) = requested {
        return if exists(wanted) {
            Ok(wanted.to_owned())
        } else {
            Err(ApiError::BadRequest(format!(
                "container {wanted} is not valid for pod {name}"
            )))
        };
    }
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .filter(|wanted| exists(wanted));
    if let Some(wanted) = annotated {
        return Ok(wanted.clone());
    }
    match containers.as_slice() {
        [only] => Ok((*only).to_owned()),
        [] => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {name}"
        ))),
        _ => {
            let list = |names: &[&str]| format!("[{}]", names.join(" "));
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: {}",
                list(&containers)
            );
            if !init.is_empty() {
                message.push_str(&format!(" or one of the init containers: {}", list(&init)));
            }
            if !ephemeral.is_empty() {
                message.push_str(&format!(
                    " or one of the ephemeral containers: {}",
                    list(&ephemeral)
                ));
            }
            Err(ApiError::BadRequest(message))
        }
    }
}

/// Where a node's API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// The address (an IP, or a host name), as the Node lists it.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl NodeEndpoint {
    /// The node API of `node`: its `InternalIP` (else its first address)
    /// and its kubelet endpoint port (10250 when unset or out of range).
    pub fn of(node: &Node) -> Result<Self, ApiError> {
        let node_name = node.metadata.name.as_deref().unwrap_or_default();
        let status = node.status.as_ref();
        let addresses: Vec<_> = status
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| !a.address.is_empty())
            .collect();
        let address = addresses
            .iter()
            .find(|a| a.type_ == "InternalIP")
            .or_else(|| addresses.first())
            .ok_or_else(|| ApiError::NodeWithoutAddress {
                node: node_name.to_owned(),
            })?;
        let port = status
            .and_then(|s| s.daemon_endpoints.as_ref())
            .and_then(|d| d.kubelet_endpoint.as_ref())
            .and_then(|k| u16::try_from(k.port).ok())
            .filter(|port| *port != 0)
            .unwrap_or(DEFAULT_NODE_API_PORT);
        Ok(Self {
            host: address.address.clone(),
            port,
        })
    }

    /// `host:port`, with an IPv6 address in brackets.
    pub fn authority(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// The API server's client of node APIs: HTTPS trusting only the cluster
/// CA (the configuration built once), presenting each node's own
/// credential. A node's certificate must name both the address connected
/// to and the node itself, so that a node holding a certificate for
/// another node's address still cannot receive that node's credential.
#[derive(Clone)]
pub struct NodeClient {
    tls: TlsConnector,
    verifier: Arc<WebPkiServerVerifier>,
    authenticator: Arc<Authenticator>,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient").finish_non_exhaustive()
    }
}

impl NodeClient {
    /// A client verifying nodes against `authority`, with credentials from
    /// `authenticator`.
    pub fn new(
        authority: &CertificateAuthority,
        authenticator: Arc<Authenticator>,
    ) -> Result<Self, TlsError> {
        let verifier = authority.server_verifier()?;
        Ok(Self {
            tls: TlsConnector::from(tls::client_config(verifier.clone())?),
            verifier,
            authenticator,
        })
    }

    /// Sends `GET path_and_query` to the node API of `node` at `endpoint`
    /// over one new connection (the response body keeps it open).
    async fn get(
        &self,
        node: &str,
        endpoint: &NodeEndpoint,
        path_and_query: &str,
    ) -> Result<hyper::Response<Incoming>, ApiError> {
        self.send(node, endpoint, path_and_query, &HeaderMap::new())
            .await
    }

    /// Sends `GET path_and_query` with `headers` (the node credential,
    /// `Host` and `User-Agent` added) to the node API of `node` at
    /// `endpoint` over one new HTTP/1.1 connection, which may be upgraded
    /// (`hyper::upgrade::on` the response) or is kept open by the
    /// response body.
    pub(super) async fn send(
        &self,
        node: &str,
        endpoint: &NodeEndpoint,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<hyper::Response<Incoming>, ApiError> {
        let authority = endpoint.authority();
        let unreachable = |reason: String| ApiError::NodeUnreachable {
            node: node.to_owned(),
            address: authority.clone(),
            reason,
        };
        let server_name = ServerName::try_from(endpoint.host.clone()).map_err(|_| {
            unreachable("the address is neither an IP address nor a DNS name".into())
        })?;
        let connect = async {
            let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|error| error_chain(&error))?;
            let _ = tcp.set_nodelay(true);
            let tls = self
                .tls
                .connect(server_name, tcp)
                .await
                .map_err(|error| format!("TLS handshake failed: {}", error_chain(&error)))?;
            self.check_names_node(&tls, node)?;
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
                .await
                .map_err(|error| error_chain(&error))
        };
        let (mut sender, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no connection within {} seconds",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(&unreachable)?;
        let node_name = node.to_owned();
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(node = %node_name, %error, "node API connection ended with an error");
            }
        });
        let token = self.authenticator.node_credential(node);
        let mut request = hyper::Request::get(path_and_query)
            .header(header::HOST, &authority)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::USER_AGENT, "skiff-apiserver")
            .body(Empty::new())
            .map_err(|error| unreachable(format!("cannot build the request: {error}")))?;
        for (name, value) in headers {
            request.headers_mut().append(name, value.clone());
        }
        tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no answer within {} seconds",
                    RESPONSE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|error| unreachable(error_chain(&error)))
    }

    /// Whether the certificate a node presented (already verified for the
    /// address) also names the node.
    fn check_names_node(
        &self,
        tls: &tokio_rustls::client::TlsStream<TcpStream>,
        node: &str,
    ) -> Result<(), String> {
        let certificates = tls.get_ref().1.peer_certificates().unwrap_or_default();
        let Some((end_entity, intermediates)) = certificates.split_first() else {
            return Err("the node presented no certificate".into());
        };
        let name = ServerName::try_from(node.to_owned())
            .map_err(|_| format!("{node:?} is not a DNS name"))?;
        self.verifier
            .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|error| format!("the node's certificate does not name node {node:?}: {error}"))
    }
}
/// Serves `GET .../pods/{name}/log` (see the module documentation);
/// the caller has authorized the request.
pub(crate) async fn serve(
    api: &Api,
    client: Option<&NodeClient>,
    namespace: &str,
    name: &str,
    query: &[(String, String)],
) -> Result<Response, ApiError> {
    let options = LogOptions::from_query(query, name)?;
    let pods = resource("pods");
    let pod: Pod = read_typed(api, pods, Some(namespace), name).await?;
    let container = container_name(&pod, options.container.as_deref())?;
    let Some(node_name) = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
    else {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let node: Node = read_typed(api, resource("nodes"), None, node_name).await?;
    let endpoint = NodeEndpoint::of(&node)?;
    let Some(client) = client else {
        return Err(ApiError::NodeUnreachable {
            node: node_name.to_owned(),
            address: endpoint.authority(),
            reason: "this API server has no client for node APIs".into(),
        });
    };
    let mut path = format!("/containerLogs/{namespace}/{name}/{container}");
    let node_query = options.node_query();
    if !node_query.is_empty() {
        path.push('?');
        path.push_str(&node_query);
    }
    let answer = client.get(node_name, &endpoint, &path).await?;
    let code = answer.status();
    if !code.is_success() {
        return node_failure(answer, node_name).await;
    }
    let mut response = Response::new(Body::new(answer.into_body()));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if options.insecure_skip_tls_verify_backend {
        response.headers_mut().insert(
            header::WARNING,
            body::warning_header(
                "insecureSkipTLSVerifyBackend is ignored: the node's certificate is always verified, since the node's credential is presented to it",
            ),
        );
    }
    Ok(response)
}

/// A node's failed answer as the API's: a `Status` passes through with its
/// code; anything else becomes a `Status` with the node's code and body.
pub(super) async fn node_failure(
    answer: hyper::Response<Incoming>,
    node_name: &str,
) -> Result<Response, ApiError> {
    let (code, status) = node_status(answer, node_name).await?;
    Ok((code, [(header::CONTENT_TYPE, "application/json")], status).into_response())
}

/// The `Status` a node failed with (its code and body), or, when its body
/// is not one, the error that makes one from its code and text.
pub(super) async fn node_status(
    answer: hyper::Response<Incoming>,
    node_name: &str,
) -> Result<(StatusCode, Bytes), ApiError> {
    let code = answer.status();
    let failure = read_prefix(answer.into_body(), MAX_FAILURE_BYTES).await;
    if is_status(&failure) {
        return Ok((code, failure));
    }
    let text = String::from_utf8_lossy(&failure).trim().to_owned();
    Err(ApiError::NodeAnswered {
        code,
        message: if text.is_empty() {
            format!("node \"{node_name}\" answered {code} without a message")
        } else {
            text
        },
    })
}

pub(super) fn resource(plural: &str) -> &'static ResourceDef {
    resources::lookup("", "v1", plural).expect("a core resource the API serves")
}

/// Reads one object in its typed form; 404 when absent.
pub(super) async fn read_typed<K: DeserializeOwned>(
    api: &Api,
    def: &'static ResourceDef,
    namespace: Option<&str>,
    name: &str,
) -> Result<K, ApiError> {
    let (object, _) = api
        .read(def, namespace, name)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            resource: def.group_resource(),
            name: name.to_owned(),
        })?;
    serde_json::from_value(object).map_err(|source| ApiError::Decode {
        key: def.key(namespace, name),
        source,
    })
}

/// The first `limit` bytes of a body (less if it ends or fails sooner).
async fn read_prefix(mut body: Incoming, limit: usize) -> Bytes {
    let mut buffer = BytesMut::new();
    while buffer.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = limit - buffer.len();
                    buffer.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    buffer.freeze()
}

/// Whether `bytes` is a Kubernetes `Status` object.
fn is_status(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .is_ok_and(|value| value["kind"] == "Status" && value["code"].is_u64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(query: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    /// `expect`: the node query, or the error's code and message.
    fn check(query: &str, expect: Result<&str, (u16, &str)>) {
        let actual = LogOptions::from_query(&pairs(query), "p")
            .map(|options| options.node_query())
            .map_err(|error| {
                let status = error.status();
                (
                    status["code"].as_u64().unwrap() as u16,
                    status["message"].as_str().unwrap().to_owned(),
                )
            });
        let expect = expect
            .map(str::to_owned)
            .map_err(|(code, message)| (code, message.to_owned()));
        assert_eq!(actual, expect, "{query}");
    }

    #[test]
    fn options_decode_validate_and_become_the_node_query() {
        check("", Ok(""));
        check("container=app", Ok(""));
        check(
            "follow=true&timestamps=1&previous=True&tailLines=10&limitBytes=500&container=c",
            Ok("follow=true&limitBytes=500&previous=true&tailLines=10&timestamps=true"),
        );
        // Go's bool conversion: anything but 0 and false is true.
        check("follow=false&previous=0&timestamps=FALSE", Ok(""));
        check("follow=yes", Ok("follow=true"));
        check("follow=true&follow=false", Ok("follow=true"));
        check("sinceSeconds=60", Ok("sinceSeconds=60"));
        check(
            "sinceTime=2024-05-01T10:00:00%2B02:00",
            Ok("sinceTime=2024-05-01T08%3A00%3A00Z"),
        );
        check("tailLines=0&sinceSeconds=&limitBytes=", Ok("tailLines=0"));
        check("insecureSkipTLSVerifyBackend=true&stream=All", Ok(""));

        check(
            "tailLines=ten",
            Err((
                400,
                r#"invalid value "ten" for query parameter "tailLines": expected an integer"#,
            )),
        );
        check(
            "sinceTime=yesterday",
            Err((
                400,
                r#"invalid value "yesterday" for query parameter "sinceTime": expected an RFC 3339 time such as 2006-01-02T15:04:05Z"#,
            )),
        );
        check(
            "tailLines=-1",
            Err((
                422,
                r#"PodLogOptions "p" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"#,
            )),
        );
        check(
            "limitBytes=0&sinceSeconds=0",
            Err((
                422,
                r#"PodLogOptions "p" is invalid: [limitBytes: Invalid value: 0: must be greater than 0, sinceSeconds: Invalid value: 0: must be greater than 0]"#,
            )),
        );
        check(
            "sinceSeconds=5&sinceTime=2024-05-01T10:00:00Z",
            Err((
                422,
                "PodLogOptions \"p\" is invalid: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
        );
    }

    #[test]
    fn invalid_options_name_their_fields() {
        let error = LogOptions::from_query(&pairs("tailLines=-5&limitBytes=-1"), "web")
            .unwrap_err()
            .status();
        assert_eq!(error["reason"], "Invalid");
        assert_eq!(error["details"]["kind"], "PodLogOptions");
        assert_eq!(error["details"]["name"], "web");
        let fields: Vec<&str> = error["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["tailLines", "limitBytes"]);
    }

    #[test]
    fn follow_is_read_as_go_reads_booleans() {
        for (query, expect) in [
            (None, false),
            (Some("follow=true"), true),
            (Some("follow=1"), true),
            (Some("follow=t"), true),
            (Some("follow=false"), false),
            (Some("follow=0"), false),
            (Some("container=a"), false),
            (Some("container=a&follow=True"), true),
        ] {
            assert_eq!(follows(query), expect, "{query:?}");
        }
    }

    fn pod(spec: Value, annotations: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn the_container_is_asked_for_annotated_or_the_only_one() {
        let check = |spec: Value,
                     annotations: Value,
                     requested: Option<&str>,
                     expect: Result<&str, &str>| {
            let actual =
                container_name(&pod(spec.clone(), annotations), requested).map_err(|error| {
                    assert_eq!(error.status()["code"], 400);
                    error.to_string()
                });
            assert_eq!(
                actual,
                expect.map(str::to_owned).map_err(str::to_owned),
                "{spec} {requested:?}"
            );
        };
        let one = json!({"containers": [{"name": "app"}]});
        let two = json!({
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "a"}, {"name": "b"}],
        });
        let annotated = json!({DEFAULT_CONTAINER_ANNOTATION: "b"});
        check(one.clone(), json!({}), None, Ok("app"));
        check(one.clone(), json!({}), Some("app"), Ok("app"));
        check(
            one,
            json!({}),
            Some("other"),
            Err("container other is not valid for pod web"),
        );
        check(two.clone(), json!({}), Some("setup"), Ok("setup"));
        check(two.clone(), annotated.clone(), None, Ok("b"));
        check(two.clone(), annotated, Some("a"), Ok("a"));
        check(
            two.clone(),
            json!({DEFAULT_CONTAINER_ANNOTATION: "gone"}),
            None,
            Err(
                "a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [setup]",
            ),
        );
        check(
            json!({"containers": [{"name": "a"}, {"name": "b"}],
                   "ephemeralContainers": [{"name": "debugger"}]}),
            json!({}),
            None,
            Err(
                "a container name must be specified for pod web, choose one of: [a b] or one of the ephemeral containers: [debugger]",
            ),
        );
        check(
            json!({"containers": []}),
            json!({}),
            None,
            Err("a container name must be specified for pod web"),
        );
    }

    #[test]
    fn the_node_endpoint_is_its_internal_ip_and_kubelet_port() {
        let check = |status: Value, expect: Result<&str, &str>| {
            let node: Node =
                serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": status}))
                    .unwrap();
            let actual = NodeEndpoint::of(&node)
                .map(|endpoint| endpoint.authority())
                .map_err(|error| error.to_string());
            assert_eq!(
                actual,
                expect.map(str::to_owned).map_err(str::to_owned),
                "{status}"
            );
        };
        check(
            json!({"addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "10.0.0.5"},
            ], "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}}}),
            Ok("10.0.0.5:11250"),
        );
        check(
            json!({"addresses": [{"type": "Hostname", "address": "n1.example"}]}),
            Ok("n1.example:10250"),
        );
        check(
            json!({"addresses": [{"type": "InternalIP", "address": "fd00::5"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}),
            Ok("[fd00::5]:10250"),
        );
        check(
            json!({"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 70000}}}),
            Ok("10.0.0.5:10250"),
        );
        check(
            json!({}),
            Err(r#"node "n1" has no address in status.addresses"#),
        );
    }

    #[test]
    fn only_status_objects_pass_through() {
        assert!(is_status(
            br#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}"#
        ));
        assert!(!is_status(br#"{"kind":"Pod"}"#));
        assert!(!is_status(b"container not found"));
    }
}
