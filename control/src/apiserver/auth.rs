//! Who is calling and what they may do.
//!
//! Authentication is a middleware ([`authenticate`]): the bearer token of a
//! request is compared (in constant time) with the admin token and the node
//! join token, or verified as a node's own token, and the resulting
//! [`Identity`] goes into the request's extensions.
//!
//! Nodes work as k3s's do: the join token (`node-token`) is shared by every
//! node and only lets a node claim its name and get its own credential
//! (`POST /skiff/v1/node-credentials`, see `node_credentials`); the
//! credential, `skiff-node:<name>:<HMAC of the name>`, identifies that node
//! alone, so the node authorizer below can keep it to its own Node, Lease
//! and pods. In-process components get theirs from
//! [`in_process_service`] instead, without a token or TCP. Authorization is
//! a pure function ([`authorize`]) that the REST handlers call with the
//! parsed [`RequestInfo`]; this module does not authorize by itself.
//!
//! Requests without a token are allowed only to the public health and
//! version paths, as Kubernetes allows them to `system:anonymous` through
//! the `system:public-info-viewer` role, and to `/cacerts` (the cluster CA,
//! which a joining node checks against its join token, as in k3s);
//! everything else answers 401.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::{BoxError, Router};
use bytes::Bytes;
use tower::Service;

use super::error::ApiError;
use super::request::{RequestInfo, Verb};

/// An authenticated caller, found in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The cluster administrator (the token in the data dir's `token` file
    /// and the generated kubeconfig): full access.
    Admin,
    /// A node agent, by its node name, in the group `system:nodes`: it may
    /// do what an agent needs for its own node and nothing more; see
    /// [`authorize`] and [`may_write`].
    Node(String),
    /// A caller presenting the shared join token (`node-token`): it may only
    /// claim a node name and get that node's credential.
    Joining,
    /// An in-process component of the server (scheduler, controllers), by
    /// name: full access. Only [`in_process_service`] creates these; no
    /// token maps to them.
    Component(&'static str),
}

impl Identity {
    /// The user name, as Kubernetes messages show it: `system:admin`,
    /// `system:node`, `system:skiff:<component>`.
    pub fn user_name(&self) -> Cow<'static, str> {
        match self {
            Identity::Admin => Cow::Borrowed("system:admin"),
            Identity::Node(name) => Cow::Owned(format!("system:node:{name}")),
            Identity::Joining => Cow::Borrowed("system:bootstrap:skiff-node-token"),
            Identity::Component(name) => Cow::Owned(format!("system:skiff:{name}")),
        }
    }
}

/// Decides whether `identity` may do what `info` describes. Admin and
/// components may do anything; the join token nothing here. A node may:
///
/// - read `nodes`, and write its own Node and its status;
/// - read `leases` (coordination.k8s.io), and write its own Lease in
///   `kube-node-lease`;
/// - create, update, patch, get, list and watch `events` (core and
///   events.k8s.io);
/// - get, list and watch `pods`; update or patch `pods/status` and delete
///   pods, of pods bound to it;
/// - get, list and watch `configmaps`, `secrets`, `services`, `endpoints`,
///   `endpointslices` (discovery.k8s.io), `runtimeclasses` (node.k8s.io) and
///   `namespaces`.
///
/// Which object a write names is checked here when the path names it; what
/// only the object shows (the name of a created Node or Lease, the node a
/// pod is bound to) the handlers check with [`may_write`].
///
/// Anything else is 403 Forbidden with Kubernetes' message, e.g.
/// `pods "x" is forbidden: User "system:node:n1" cannot create resource
/// "pods" in API group "" in the namespace "default"`.
pub fn authorize(identity: &Identity, info: &RequestInfo) -> Result<(), ApiError> {
    let allowed = match identity {
        Identity::Admin | Identity::Component(_) => true,
        Identity::Node(name) => node_may(name, info),
        Identity::Joining => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(forbidden(identity, info))
    }
}

/// The node rules of [`authorize`] for the node `node`.
fn node_may(node: &str, info: &RequestInfo) -> bool {
    use Verb::*;
    let verb = info.verb;
    let read = matches!(verb, Get | List | Watch);
    let subresource = info.subresource.as_deref();
    // A write to a named object must name the node's own; a create names
    // it in the body (see `may_write`).
    let own = || match verb {
        Create => info.name.is_none(),
        Update | Patch | Delete => info.name.as_deref() == Some(node),
        _ => false,
    };
    match (info.group.as_str(), info.resource.as_str()) {
        ("", "nodes") => match subresource {
            None => read || own(),
            Some("status") => matches!(verb, Get) || (matches!(verb, Update | Patch) && own()),
            Some(_) => false,
        },
        ("coordination.k8s.io", "leases") => {
            subresource.is_none()
                && (read || (info.namespace.as_deref() == Some(NODE_LEASE_NAMESPACE) && own()))
        }
        ("", "events") | ("events.k8s.io", "events") => {
            subresource.is_none() && matches!(verb, Create | Update | Patch | Get | List | Watch)
        }
        ("", "pods") => match subresource {
            None => read || matches!(verb, Delete),
            Some("status") => matches!(verb, Update | Patch),
            Some(_) => false,
        },
        ("", "configmaps" | "secrets" | "services" | "endpoints" | "namespaces")
        | ("discovery.k8s.io", "endpointslices")
        | ("node.k8s.io", "runtimeclasses") => subresource.is_none() && read,
        _ => false,
    }
}

/// The namespace of node Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Whether `identity` may write `object` (of `kind`), for what
/// [`authorize`] cannot see in the path: a node creates only its own Node
/// and Lease, and writes the status of (or deletes) only pods bound to
/// it. `object` is the new object of a create and the stored one
/// otherwise. 403 with Kubernetes' message otherwise.
pub fn may_write(
    identity: &Identity,
    kind: &str,
    object: &serde_json::Value,
    info: &RequestInfo,
) -> Result<(), ApiError> {
    let Identity::Node(node) = identity else {
        return Ok(());
    };
    let text = |pointer: &str| object.pointer(pointer).and_then(serde_json::Value::as_str);
    let allowed = match kind {
        "Node" | "Lease" => text("/metadata/name") == Some(node.as_str()),
        "Pod" => text("/spec/nodeName") == Some(node.as_str()),
        _ => true,
    };
    if allowed {
        return Ok(());
    }
    let name = text("/metadata/name").unwrap_or_default();
    let reason = match kind {
        "Pod" => format!("the pod is not bound to node \"{node}\""),
        _ => format!("a node may only write its own {kind}"),
    };
    Err(match forbidden(identity, info) {
        ApiError::Forbidden(message) if info.name.is_none() => {
            ApiError::Forbidden(format!("{message}: {name}: {reason}"))
        }
        ApiError::Forbidden(message) => ApiError::Forbidden(format!("{message}: {reason}")),
        other => other,
    })
}

/// Kubernetes' Forbidden message for a resource request (apiserver's
/// `forbiddenMessage` wrapped in `NewForbidden`).
fn forbidden(identity: &Identity, info: &RequestInfo) -> ApiError {
    let qualified = if info.group.is_empty() {
        info.resource.clone()
    } else {
        format!("{}.{}", info.resource, info.group)
    };
    let resource = match &info.subresource {
        Some(subresource) => format!("{}/{subresource}", info.resource),
        None => info.resource.clone(),
    };
    let scope = match &info.namespace {
        Some(namespace) => format!("in the namespace \"{namespace}\""),
        None => "at the cluster scope".to_owned(),
    };
    let reason = format!(
        "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        identity.user_name(),
        info.verb.as_str(),
        info.group,
    );
    ApiError::Forbidden(match &info.name {
        Some(name) => format!("{qualified} \"{name}\" is forbidden: {reason}"),
        None => format!("{qualified} is forbidden: {reason}"),
    })
}

/// Paths that answer without a token: Kubernetes' public-info-viewer
/// (`/healthz`, `/livez`, `/readyz`, `/version` and the paths below them)
/// and k3s's `/cacerts` (the CA certificate, exactly that path).
pub fn is_public_path(path: &str) -> bool {
    path == super::node_credentials::CA_CERTS_PATH
        || ["/healthz", "/livez", "/readyz", "/version"]
            .iter()
            .any(|public| match path.strip_prefix(public) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            })
}

/// What a request's credentials amount to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// No bearer token.
    Missing,
    /// A bearer token that is neither the admin nor the node token.
    Unknown,
    /// A known token.
    Valid(Identity),
}

/// Maps bearer tokens to identities, and issues node credentials. Its
/// `Debug` never shows the tokens.
pub struct Authenticator {
    admin_token: Vec<u8>,
    node_token: Vec<u8>,
    /// Signs node credentials; derived from the admin token, which only
    /// the server (and its administrator) holds.
    node_key: ring::hmac::Key,
}

/// The prefix of node credentials.
const NODE_CREDENTIAL_PREFIX: &str = "skiff-node:";

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for these two tokens (surrounding whitespace, such
    /// as a file's final newline, is ignored).
    pub fn new(admin_token: &str, node_token: &str) -> Self {
        let admin_token = admin_token.trim().as_bytes().to_vec();
        let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &admin_token);
        let node_key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            ring::hmac::sign(&derive, b"skiff node credentials").as_ref(),
        );
        Self {
            admin_token,
            node_token: node_token.trim().as_bytes().to_vec(),
            node_key,
        }
    }

    /// The credential of the node `name` (a bearer token that identifies
    /// it as `Identity::Node(name)`).
    pub fn node_credential(&self, name: &str) -> String {
        let tag = ring::hmac::sign(&self.node_key, name.as_bytes());
        format!(
            "{NODE_CREDENTIAL_PREFIX}{name}:{}",
            super::tls::hex(tag.as_ref())
        )
    }

    /// Reads `Authorization: Bearer <token>` (the scheme case-insensitive,
    /// as Kubernetes accepts it). Another scheme counts as no token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Credentials {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Credentials::Missing;
        };
        let Ok(value) = value.to_str() else {
            return Credentials::Unknown;
        };
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default().trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Credentials::Missing;
        }
        self.identify(token)
    }

    /// The identity of a bearer token. Both comparisons always run, so the
    /// time taken does not tell which token (if any) was close; a node
    /// credential's tag is verified in constant time.
    pub fn identify(&self, token: &str) -> Credentials {
        if let Some(rest) = token.strip_prefix(NODE_CREDENTIAL_PREFIX) {
            return self.identify_node(rest);
        }
        let token = token.as_bytes();
        let admin = constant_time_eq(token, &self.admin_token);
        let node = constant_time_eq(token, &self.node_token);
        match (admin, node) {
            (true, _) => Credentials::Valid(Identity::Admin),
            (false, true) => Credentials::Valid(Identity::Joining),
            (false, false) => Credentials::Unknown,
        }
    }

    /// `<name>:<hex tag>` of a node credential.
    fn identify_node(&self, rest: &str) -> Credentials {
        let Some((name, hex)) = rest.rsplit_once(':') else {
            return Credentials::Unknown;
        };
        let tag: Option<Vec<u8>> = (hex.len() % 2 == 0)
            .then(|| {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect()
            })
            .flatten();
        match tag {
            Some(tag)
                if !name.is_empty()
                    && ring::hmac::verify(&self.node_key, name.as_bytes(), &tag).is_ok() =>
            {
                Credentials::Valid(Identity::Node(name.to_owned()))
            }
            _ => Credentials::Unknown,
        }
    }
}

/// Equality whose time depends only on the lengths (the tokens have fixed,
/// public lengths), not on where the first difference is. An empty
/// expected token matches nothing.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    if expected.is_empty() || given.len() != expected.len() {
        return false;
    }
    let difference = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| std::hint::black_box(acc | (a ^ b)));
    difference == 0
}

/// The authentication middleware: puts the caller's [`Identity`] into the
/// request's extensions, lets requests without a token through to the
/// public paths only, and answers 401 with a Kubernetes `Status` otherwise.
/// A wrong token is refused even on public paths, as Kubernetes does.
pub async fn authenticate(
    State(authenticator): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticator.authenticate(request.headers()) {
        Credentials::Valid(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Credentials::Missing if is_public_path(request.uri().path()) => next.run(request).await,
        Credentials::Missing | Credentials::Unknown => ApiError::Unauthorized.into_response(),
    }
}

/// A tower service that sends requests straight into `router` as
/// `identity`, with no TCP, TLS or token: the transport of in-process
/// clients (scheduler, controllers, the local agent). Wrap it in a
/// `kube::Client` with `skiff_sdk::client::in_process`.
pub fn in_process_service(router: Router, identity: Identity) -> InProcessService {
    InProcessService { router, identity }
}

/// See [`in_process_service`]. Accepts any request body of `Bytes` (such as
/// kube-rs's) and answers with axum's body.
#[derive(Clone, Debug)]
pub struct InProcessService {
    router: Router,
    identity: Identity,
}

impl<B> Service<axum::http::Request<B>> for InProcessService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        <Router as Service<Request>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(self.identity.clone());
        self.router
            .call(Request::from_parts(parts, Body::new(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, Method};

    fn info(method: Method, path: &str) -> RequestInfo {
        super::super::request::parse(&method, path, false).unwrap_or_else(|| panic!("{path}"))
    }

    /// `expect`: `None` when allowed, else the Forbidden message.
    fn check(identity: Identity, method: Method, path: &str, expect: Option<&str>) {
        let actual = authorize(&identity, &info(method.clone(), path))
            .err()
            .map(|e| {
                assert_eq!(e.status()["code"], 403);
                e.to_string()
            });
        assert_eq!(actual.as_deref(), expect, "{identity:?} {method} {path}");
    }

    fn allowed(identity: Identity, method: Method, path: &str) {
        check(identity, method, path, None);
    }

    fn denied(method: Method, path: &str) {
        let actual = authorize(&node(), &info(method.clone(), path));
        assert!(actual.is_err(), "node {method} {path} should be forbidden");
    }

    #[test]
    fn admin_and_components_may_do_anything() {
        for identity in [Identity::Admin, Identity::Component("scheduler")] {
            allowed(
                identity.clone(),
                Method::DELETE,
                "/api/v1/namespaces/default/pods/x",
            );
            allowed(
                identity.clone(),
                Method::POST,
                "/apis/apps/v1/namespaces/a/deployments",
            );
            allowed(
                identity.clone(),
                Method::DELETE,
                "/api/v1/namespaces/kube-system",
            );
            allowed(identity, Method::PUT, "/api/v1/namespaces/a/secrets/s");
        }
    }

    fn node() -> Identity {
        Identity::Node("n1".into())
    }

    #[test]
    fn node_may_do_what_an_agent_needs() {
        use Method as M;
        for (method, path) in [
            (M::POST, "/api/v1/nodes"),
            (M::GET, "/api/v1/nodes/n1"),
            (M::PUT, "/api/v1/nodes/n1/status"),
            (M::PATCH, "/api/v1/nodes/n1/status"),
            (M::DELETE, "/api/v1/nodes/n1"),
            (
                M::POST,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            ),
            (
                M::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            ),
            (M::GET, "/apis/coordination.k8s.io/v1/leases"),
            (M::GET, "/api/v1/nodes/n2"),
            (M::GET, "/api/v1/nodes/n2/status"),
            // Which pod: the handlers check that it is bound to the node.
            (M::DELETE, "/api/v1/namespaces/default/pods/x"),
            (M::POST, "/api/v1/namespaces/default/events"),
            (M::PATCH, "/api/v1/namespaces/default/events/e"),
            (M::PUT, "/apis/events.k8s.io/v1/namespaces/default/events/e"),
            (M::GET, "/api/v1/events"),
            (M::GET, "/api/v1/pods"),
            (M::GET, "/api/v1/namespaces/default/pods/x"),
            (M::GET, "/api/v1/watch/namespaces/default/pods"),
            (M::PUT, "/api/v1/namespaces/default/pods/x/status"),
            (M::PATCH, "/api/v1/namespaces/default/pods/x/status"),
            (M::GET, "/api/v1/namespaces/default/configmaps/c"),
            (M::GET, "/api/v1/namespaces/default/secrets/s"),
            (M::GET, "/api/v1/services"),
            (M::GET, "/api/v1/namespaces/default/endpoints/e"),
            (M::GET, "/apis/discovery.k8s.io/v1/endpointslices"),
            (M::GET, "/apis/node.k8s.io/v1/runtimeclasses/wasmtime"),
            (M::GET, "/api/v1/namespaces"),
            (M::GET, "/api/v1/namespaces/default"),
        ] {
            allowed(node(), method, path);
        }
    }

    #[test]
    fn node_may_not_do_anything_else() {
        use Method as M;
        for (method, path) in [
            (M::PUT, "/api/v1/nodes/n2"),
            (M::PATCH, "/api/v1/nodes/n2/status"),
            (M::DELETE, "/api/v1/nodes/n2"),
            (M::DELETE, "/api/v1/nodes"),
            (
                M::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2",
            ),
            (
                M::DELETE,
                "/apis/coordination.k8s.io/v1/namespaces/other/leases/n1",
            ),
            (
                M::POST,
                "/apis/coordination.k8s.io/v1/namespaces/other/leases",
            ),
            (M::DELETE, "/api/v1/namespaces/default/pods"),
            (M::POST, "/api/v1/namespaces/default/pods"),
            (M::PUT, "/api/v1/namespaces/default/pods/x"),
            (M::PATCH, "/api/v1/namespaces/default/pods/x"),
            (M::POST, "/api/v1/namespaces/default/pods/x/binding"),
            (M::GET, "/api/v1/namespaces/default/pods/x/log"),
            (M::GET, "/api/v1/namespaces/default/pods/x/status"),
            (M::DELETE, "/api/v1/namespaces/default/events/e"),
            (M::DELETE, "/api/v1/namespaces/default/events"),
            (M::PUT, "/api/v1/namespaces/default/configmaps/c"),
            (M::POST, "/api/v1/namespaces/default/secrets"),
            (M::DELETE, "/api/v1/namespaces/default/services/s"),
            (
                M::PATCH,
                "/apis/discovery.k8s.io/v1/namespaces/d/endpointslices/e",
            ),
            (M::POST, "/apis/node.k8s.io/v1/runtimeclasses"),
            (M::DELETE, "/api/v1/namespaces/default"),
            (M::PUT, "/api/v1/namespaces/default/status"),
            (M::GET, "/apis/apps/v1/deployments"),
            (M::POST, "/apis/apps/v1/namespaces/default/replicasets"),
            (M::GET, "/apis/other.example/v1/nodes"),
            (
                M::GET,
                "/apis/coordination.k8s.io/v1/namespaces/n/leases/l/status",
            ),
        ] {
            denied(method, path);
        }
    }

    #[test]
    fn forbidden_messages_follow_kubernetes() {
        check(
            node(),
            Method::PUT,
            "/api/v1/namespaces/default/pods/x",
            Some(
                r#"pods "x" is forbidden: User "system:node:n1" cannot update resource "pods" in API group "" in the namespace "default""#,
            ),
        );
        check(
            node(),
            Method::GET,
            "/apis/apps/v1/deployments",
            Some(
                r#"deployments.apps is forbidden: User "system:node:n1" cannot list resource "deployments" in API group "apps" at the cluster scope"#,
            ),
        );
        check(
            node(),
            Method::PUT,
            "/api/v1/namespaces/default/status",
            Some(
                r#"namespaces "default" is forbidden: User "system:node:n1" cannot update resource "namespaces/status" in API group "" at the cluster scope"#,
            ),
        );
        check(
            Identity::Joining,
            Method::GET,
            "/api/v1/namespaces",
            Some(
                r#"namespaces is forbidden: User "system:bootstrap:skiff-node-token" cannot list resource "namespaces" in API group "" at the cluster scope"#,
            ),
        );
    }

    #[test]
    fn nodes_write_only_their_own_objects() {
        let create = info(Method::POST, "/api/v1/nodes");
        let own = serde_json::json!({"metadata": {"name": "n1"}});
        let other = serde_json::json!({"metadata": {"name": "n2"}});
        assert!(may_write(&node(), "Node", &own, &create).is_ok());
        let error = may_write(&node(), "Node", &other, &create).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"nodes is forbidden: User "system:node:n1" cannot create resource "nodes" in API group "" at the cluster scope: n2: a node may only write its own Node"#
        );
        let lease = info(
            Method::POST,
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
        );
        assert!(may_write(&node(), "Lease", &own, &lease).is_ok());
        assert!(may_write(&node(), "Lease", &other, &lease).is_err());
        let status = info(Method::PATCH, "/api/v1/namespaces/default/pods/p/status");
        let bound = serde_json::json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        let elsewhere = serde_json::json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n2"}});
        let pending = serde_json::json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(may_write(&node(), "Pod", &bound, &status).is_ok());
        assert_eq!(
            may_write(&node(), "Pod", &elsewhere, &status)
                .unwrap_err()
                .to_string(),
            r#"pods "p" is forbidden: User "system:node:n1" cannot patch resource "pods/status" in API group "" in the namespace "default": the pod is not bound to node "n1""#
        );
        assert!(may_write(&node(), "Pod", &pending, &status).is_err());
        assert!(may_write(&Identity::Admin, "Pod", &elsewhere, &status).is_ok());
        assert!(may_write(&node(), "Event", &other, &status).is_ok());
    }

    #[test]
    fn public_paths() {
        for path in [
            "/healthz",
            "/livez",
            "/readyz",
            "/version",
            "/readyz/store",
            "/healthz/ping",
            "/version/",
            "/cacerts",
        ] {
            assert!(is_public_path(path), "{path}");
        }
        for path in [
            "/",
            "/api",
            "/apis",
            "/metrics",
            "/openapi/v2",
            "/healthzx",
            "/versions",
            "/cacerts/x",
            "/cacertsx",
            "/api/v1/namespaces",
        ] {
            assert!(!is_public_path(path), "{path}");
        }
    }

    #[test]
    fn tokens_map_to_identities() {
        let authenticator = Authenticator::new("admin-secret\n", "K10abc::node:secret");
        let check = |header: Option<&str>, expect: Credentials| {
            let mut headers = HeaderMap::new();
            if let Some(header) = header {
                headers.insert(
                    axum::http::header::AUTHORIZATION,
                    HeaderValue::from_str(header).unwrap(),
                );
            }
            assert_eq!(authenticator.authenticate(&headers), expect, "{header:?}");
        };
        check(None, Credentials::Missing);
        check(
            Some("Bearer admin-secret"),
            Credentials::Valid(Identity::Admin),
        );
        check(
            Some("bearer  admin-secret "),
            Credentials::Valid(Identity::Admin),
        );
        check(
            Some("Bearer K10abc::node:secret"),
            Credentials::Valid(Identity::Joining),
        );
        let credential = authenticator.node_credential("n1");
        assert!(credential.starts_with("skiff-node:n1:"), "{credential}");
        check(
            Some(&format!("Bearer {credential}")),
            Credentials::Valid(Identity::Node("n1".into())),
        );
        // The tag is of the name: another name, or a tag changed in one
        // digit, or one from another server, is no credential.
        let forged = credential.replacen("skiff-node:n1:", "skiff-node:n2:", 1);
        check(Some(&format!("Bearer {forged}")), Credentials::Unknown);
        let mut flipped = credential.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        check(Some(&format!("Bearer {flipped}")), Credentials::Unknown);
        let elsewhere = Authenticator::new("other-admin", "K10abc::node:secret");
        assert_eq!(elsewhere.identify(&credential), Credentials::Unknown);
        check(Some("Bearer skiff-node:n1"), Credentials::Unknown);
        check(Some("Bearer skiff-node::00"), Credentials::Unknown);
        check(Some("Bearer admin-secreT"), Credentials::Unknown);
        check(Some("Bearer admin"), Credentials::Unknown);
        check(Some("Bearer "), Credentials::Missing);
        check(Some("Basic YWRtaW46YWRtaW4="), Credentials::Missing);
        // Empty configured tokens match nothing.
        assert_eq!(
            Authenticator::new("", "").identify(""),
            Credentials::Unknown
        );
        assert_eq!(format!("{authenticator:?}"), "Authenticator { .. }");
    }
}
