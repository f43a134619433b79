//! The `pods/exec` subresource: `GET` or `POST
//! /api/v1/namespaces/{ns}/pods/{name}/exec?command=...&stdin=true...`
//! upgraded to a WebSocket (Kubernetes' `v5.channel.k8s.io` and
//! `v4.channel.k8s.io` subprotocols, which `kubectl exec` and kube-rs
//! speak) and proxied to the node API of the pod's node, as kube-apiserver
//! proxies to the kubelet.
//!
//! In kube-apiserver's order: the query's PodExecOptions are decoded and
//! checked (400 without a command, or without any of stdin, stdout and
//! stderr); the pod is read (404); a pod that has completed (phase
//! `Succeeded` or `Failed`) is 400; the container is chosen as for
//! `pods/log` (400 otherwise); a pod without `spec.nodeName` is 400; its
//! Node is read (404) for its node API's address; a request that is not a
//! WebSocket upgrade is 400. Then the server opens
//! `GET /exec/{ns}/{pod}/{container}?command=...&input=1&output=1&error=1
//! &tty=1` (the kubelet's names) on the node API, over HTTPS verified as
//! for `pods/log` and with the node's own credential, forwarding the
//! client's WebSocket key, version and subprotocols. A `101` from the node
//! becomes the client's `101`, with the node's accept key and chosen
//! subprotocol; once both sides have switched, bytes are copied both ways
//! until either side closes (the node speaks the protocol; the server
//! only relays). Any other answer is the node's failure: its `Status` (or
//! one made from its code and text, as for `pods/log`), which goes to the
//! client on the protocol's error channel of a WebSocket the server
//! accepts for that alone, as kube-apiserver's stream translator does, so
//! that `kubectl exec` prints, for example, `error: exec is not supported
//! for Wasm pods`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use futures::{SinkExt as _, StreamExt as _};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};

use super::error::ApiError;
use super::handlers::Api;
use super::pod_logs::{self, NodeClient, NodeEndpoint};

/// Kubernetes' PodExecOptions, as the query gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// `container`: which container to run in.
    pub container: Option<String>,
    /// `command` (repeated): the program and its arguments.
    pub command: Vec<String>,
    /// `stdin`: the client writes the command's stdin.
    pub stdin: bool,
    /// `stdout`: the client reads its stdout.
    pub stdout: bool,
    /// `stderr`: the client reads its stderr.
    pub stderr: bool,
    /// `tty`: the command gets a terminal.
    pub tty: bool,
}

impl ExecOptions {
    /// Decodes the query as kube-apiserver's parameter codec does (a
    /// boolean is false only when absent, `0` or `false`; every `command`
    /// value, in order) and checks that there is a command and a stream
    /// (400 otherwise).
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let flag = |name: &str| first(name).is_some_and(pod_logs::query_true);
        let options = Self {
            container: first("container")
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            command: pairs
                .iter()
                .filter(|(key, _)| key == "command")
                .map(|(_, value)| value.clone())
                .collect(),
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            stderr: flag("stderr"),
            tty: flag("tty"),
        };
        if options.command.is_empty() {
            return Err(ApiError::BadRequest(
                "you must specify at least one command for the container".into(),
            ));
        }
        if !(options.stdin || options.stdout || options.stderr) {
            return Err(ApiError::BadRequest(
                "you must specify at least 1 of stdin, stdout, stderr".into(),
            ));
        }
        Ok(options)
    }

    /// The node API's query, as kube-apiserver's `streamParams` writes it
    /// for the kubelet (keys sorted, as Go's `url.Values.Encode`):
    /// `command`, then `error`, `input`, `output` and `tty` as `1`.
    pub fn node_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for argument in &self.command {
            query.append_pair("command", argument);
        }
        for (name, on) in [
            ("error", self.stderr),
            ("input", self.stdin),
            ("output", self.stdout),
            ("tty", self.tty),
        ] {
            if on {
                query.append_pair(name, "1");
            }
        }
        query.finish()
    }
}

/// 400 for a pod that has run to completion, as kubectl words it.
pub fn check_running(pod: &Pod) -> Result<(), ApiError> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match phase {
        Some(phase @ ("Succeeded" | "Failed")) => Err(ApiError::BadRequest(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        ))),
        _ => Ok(()),
    }
}

/// Whether `headers` ask for a WebSocket upgrade (`Upgrade: websocket`,
/// `Connection: upgrade` and a key).
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    };
    has_token(header::UPGRADE, "websocket")
        && has_token(header::CONNECTION, "upgrade")
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

/// The client's handshake headers the node needs, plus the upgrade.
fn forwarded_headers(client: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    for name in [
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_PROTOCOL,
    ] {
        for value in client.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// Serves `pods/exec` (see the module documentation); the caller has
/// authorized the request. `upgrade` is the client connection's pending
/// upgrade (absent over HTTP/2 and in-process).
pub(crate) async fn serve(
    api: &Api,
    client: Option<&NodeClient>,
    namespace: &str,
    name: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    upgrade: Option<OnUpgrade>,
) -> Result<Response, ApiError> {
    let options = ExecOptions::from_query(query)?;
    let pod: Pod =
        pod_logs::read_typed(api, pod_logs::resource("pods"), Some(namespace), name).await?;
    check_running(&pod)?;
    let container = pod_logs::container_name(&pod, options.container.as_deref())?;
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
    let node: Node =
        pod_logs::read_typed(api, pod_logs::resource("nodes"), None, node_name).await?;
    let endpoint = NodeEndpoint::of(&node)?;
    let Some(client) = client else {
        return Err(ApiError::NodeUnreachable {
            node: node_name.to_owned(),
            address: endpoint.authority(),
            reason: "this API server has no client for node APIs".into(),
        });
    };
    // Every check above answers a SPDY request (kubectl's fallback after a
    // failed WebSocket) as it answers the WebSocket, so kubectl prints it.
    let (Some(upgrade), true) = (upgrade, is_websocket_upgrade(headers)) else {
        return Err(ApiError::BadRequest(
            "Upgrade request required: exec is served over WebSockets (v5.channel.k8s.io, v4.channel.k8s.io) on HTTP/1.1".into(),
        ));
    };
    let path = format!(
        "/exec/{namespace}/{name}/{container}?{}",
        options.node_query()
    );
    let answer = client
        .send(node_name, &endpoint, &path, &forwarded_headers(headers))
        .await;
    let mut answer = match answer {
        Ok(answer) if answer.status() == StatusCode::SWITCHING_PROTOCOLS => answer,
        Ok(answer) => {
            let status = match pod_logs::node_status(answer, node_name).await {
                Ok((_, status)) => serde_json::from_slice(&status).unwrap_or_default(),
                Err(error) => error.status(),
            };
            return refuse_over_websocket(headers, upgrade, status);
        }
        Err(error) => return refuse_over_websocket(headers, upgrade, error.status()),
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for name in [
        header::CONNECTION,
        header::UPGRADE,
        header::SEC_WEBSOCKET_ACCEPT,
        header::SEC_WEBSOCKET_PROTOCOL,
    ] {
        for value in answer.headers().get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    let node_upgrade = hyper::upgrade::on(&mut answer);
    let node_name = node_name.to_owned();
    tracing::debug!(%namespace, pod = %name, %container, node = %node_name, "exec: relaying");
    tokio::spawn(async move {
        let (client_io, node_io) = match tokio::try_join!(upgrade, node_upgrade) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(node = %node_name, %error, "exec: an upgrade did not complete");
                return;
            }
        };
        let (mut client_io, mut node_io) = (TokioIo::new(client_io), TokioIo::new(node_io));
        if let Err(error) = tokio::io::copy_bidirectional(&mut client_io, &mut node_io).await {
            tracing::debug!(node = %node_name, %error, "exec: the relay ended with an error");
        }
    });
    Ok(response)
}

/// How long the server waits for the client to answer its close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The channel of the final `Status`.
const ERROR_CHANNEL: u8 = 3;

/// Answers a WebSocket whose node refused (or could not be reached) as
/// kube-apiserver's stream translator does: the upgrade completes, the
/// failure's `Status` goes on the error channel, the socket closes. Over a
/// failed handshake kubectl would retry with SPDY, and print that
/// attempt's error instead of this one. Without a channel subprotocol the
/// client speaks, the `Status` is the HTTP answer.
fn refuse_over_websocket(
    headers: &HeaderMap,
    upgrade: OnUpgrade,
    status: Value,
) -> Result<Response, ApiError> {
    let protocol = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find_map(|offer| CHANNEL_PROTOCOLS.into_iter().find(|p| *p == offer));
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| tungstenite::handshake::derive_accept_key(key.as_bytes()));
    let (Some(protocol), Some(accept)) = (protocol, key) else {
        let code = status["code"]
            .as_u64()
            .and_then(|code| u16::try_from(code).ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Ok((
            code,
            [(header::CONTENT_TYPE, "application/json")],
            status.to_string(),
        )
            .into_response());
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let response_headers = response.headers_mut();
    response_headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    response_headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    response_headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    response_headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let mut socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let mut frame = vec![ERROR_CHANNEL];
        frame.extend_from_slice(status.to_string().as_bytes());
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }));
        let sent = async {
            socket.feed(Message::binary(frame)).await?;
            socket.send(close).await
        };
        if sent.await.is_ok() {
            // The client's answer to the close ends the stream.
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(_)) = socket.next().await {}
            })
            .await;
        }
        let _ = socket.get_mut().shutdown().await;
    });
    Ok(response)
}

/// The channel subprotocols spoken when refusing over a WebSocket.
const CHANNEL_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

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
    #[track_caller]
    fn check(query: &str, expect: Result<&str, (u16, &str)>) {
        let actual = ExecOptions::from_query(&pairs(query))
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
    fn options_decode_check_and_become_the_kubelets_query() {
        check(
            "command=sh&command=-c&command=exit+3&stdout=true&stderr=true&container=app",
            Ok("command=sh&command=-c&command=exit+3&error=1&output=1"),
        );
        check(
            "command=cat&stdin=1&stdout=1&tty=true",
            Ok("command=cat&input=1&output=1&tty=1"),
        );
        // Go's bool conversion: anything but 0 and false is true.
        check(
            "command=ls&stdout=yes&stderr=false&stdin=0",
            Ok("command=ls&output=1"),
        );
        check(
            "stdout=true",
            Err((
                400,
                "you must specify at least one command for the container",
            )),
        );
        check(
            "command=ls&stdout=false",
            Err((400, "you must specify at least 1 of stdin, stdout, stderr")),
        );
    }

    #[test]
    fn completed_pods_refuse_exec() {
        let pod = |phase: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": phase}}))
                .unwrap()
        };
        assert!(check_running(&pod("Running")).is_ok());
        assert!(check_running(&pod("Pending")).is_ok());
        for phase in ["Succeeded", "Failed"] {
            let error = check_running(&pod(phase)).unwrap_err();
            assert_eq!(error.status()["code"], 400);
            assert_eq!(
                error.to_string(),
                format!(
                    "cannot exec into a container in a completed pod; current phase is {phase}"
                )
            );
        }
    }

    #[test]
    fn only_websocket_upgrades_are_relayed() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(
                    header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            headers
        };
        let websocket = headers(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
            ("sec-websocket-protocol", "v4.channel.k8s.io"),
            ("authorization", "Bearer admin-secret"),
        ]);
        assert!(is_websocket_upgrade(&websocket));
        let forwarded = forwarded_headers(&websocket);
        assert_eq!(
            forwarded
                .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                .iter()
                .count(),
            2
        );
        assert_eq!(
            forwarded[header::SEC_WEBSOCKET_KEY],
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
        assert!(
            !forwarded.contains_key(header::AUTHORIZATION),
            "the client's credential stays here"
        );
        assert!(!is_websocket_upgrade(&headers(&[
            ("upgrade", "SPDY/3.1"),
            ("connection", "Upgrade")
        ])));
        assert!(!is_websocket_upgrade(&HeaderMap::new()));
    }
}
