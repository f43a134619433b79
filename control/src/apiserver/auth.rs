//! Who is calling and what they may do.
//!
//! Authentication is a middleware ([`authenticate`]): the bearer token of a
//! request is compared (in constant time) with the admin token and the node
//! join token, and the resulting [`Identity`] goes into the request's
//! extensions. In-process components get theirs from
//! [`in_process_service`] instead, without a token or TCP. Authorization is
//! a pure function ([`authorize`]) that the REST handlers call with the
//! parsed [`RequestInfo`]; this module does not authorize by itself.
//!
//! Requests without a token are allowed only to the public health and
//! version paths, as Kubernetes allows them to `system:anonymous` through
//! the `system:public-info-viewer` role; everything else answers 401.

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
    /// A node agent presenting the join token (`node-token`), in the group
    /// `system:nodes`. It may do what an agent needs and nothing more; see
    /// [`authorize`].
    ///
    /// The join token is shared by every node, so the restriction is by
    /// resource, not by node: a node can update any Node or any pod's
    /// status. Restricting a node to its own objects (Kubernetes' Node
    /// authorizer) needs per-node credentials, which come later.
    Node,
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
            Identity::Node => Cow::Borrowed("system:node"),
            Identity::Component(name) => Cow::Owned(format!("system:skiff:{name}")),
        }
    }
}

/// Decides whether `identity` may do what `info` describes. Admin and
/// components may do anything. A node may:
///
/// - do anything to `nodes` and `nodes/status`;
/// - do anything to `leases` (coordination.k8s.io) in any namespace;
/// - create, update, patch, get, list and watch `events` (core and
///   events.k8s.io);
/// - get, list and watch `pods`, and update or patch `pods/status`;
/// - get, list and watch `configmaps`, `secrets`, `services`, `endpoints`,
///   `endpointslices` (discovery.k8s.io), `runtimeclasses` (node.k8s.io) and
///   `namespaces`.
///
/// Anything else is 403 Forbidden with Kubernetes' message, e.g.
/// `pods "x" is forbidden: User "system:node" cannot delete resource "pods"
/// in API group "" in the namespace "default"`.
pub fn authorize(identity: &Identity, info: &RequestInfo) -> Result<(), ApiError> {
    let allowed = match identity {
        Identity::Admin | Identity::Component(_) => true,
        Identity::Node => node_may(info),
    };
    if allowed {
        Ok(())
    } else {
        Err(forbidden(identity, info))
    }
}

/// The node rules of [`authorize`].
fn node_may(info: &RequestInfo) -> bool {
    use Verb::*;
    let verb = info.verb;
    let read = matches!(verb, Get | List | Watch);
    let subresource = info.subresource.as_deref();
    match (info.group.as_str(), info.resource.as_str()) {
        ("", "nodes") => matches!(subresource, None | Some("status")),
        ("coordination.k8s.io", "leases") => subresource.is_none(),
        ("", "events") | ("events.k8s.io", "events") => {
            subresource.is_none() && matches!(verb, Create | Update | Patch | Get | List | Watch)
        }
        ("", "pods") => match subresource {
            None => read,
            Some("status") => matches!(verb, Update | Patch),
            Some(_) => false,
        },
        ("", "configmaps" | "secrets" | "services" | "endpoints" | "namespaces")
        | ("discovery.k8s.io", "endpointslices")
        | ("node.k8s.io", "runtimeclasses") => subresource.is_none() && read,
        _ => false,
    }
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

/// Paths that answer without a token (Kubernetes' public-info-viewer):
/// `/healthz`, `/livez`, `/readyz`, `/version` and the paths below them.
pub fn is_public_path(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz", "/version"]
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

/// Maps bearer tokens to identities. Its `Debug` never shows the tokens.
pub struct Authenticator {
    admin_token: Vec<u8>,
    node_token: Vec<u8>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for these two tokens (surrounding whitespace, such
    /// as a file's final newline, is ignored).
    pub fn new(admin_token: &str, node_token: &str) -> Self {
        Self {
            admin_token: admin_token.trim().as_bytes().to_vec(),
            node_token: node_token.trim().as_bytes().to_vec(),
        }
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
    /// time taken does not tell which token (if any) was close.
    pub fn identify(&self, token: &str) -> Credentials {
        let token = token.as_bytes();
        let admin = constant_time_eq(token, &self.admin_token);
        let node = constant_time_eq(token, &self.node_token);
        match (admin, node) {
            (true, _) => Credentials::Valid(Identity::Admin),
            (false, true) => Credentials::Valid(Identity::Node),
            (false, false) => Credentials::Unknown,
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
        let actual = authorize(&Identity::Node, &info(method.clone(), path));
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

    #[test]
    fn node_may_do_what_an_agent_needs() {
        use Method as M;
        let node = || Identity::Node;
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
            (
                M::DELETE,
                "/apis/coordination.k8s.io/v1/namespaces/other/leases/l",
            ),
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
            (M::DELETE, "/api/v1/namespaces/default/pods/x"),
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
            Identity::Node,
            Method::DELETE,
            "/api/v1/namespaces/default/pods/x",
            Some(
                r#"pods "x" is forbidden: User "system:node" cannot delete resource "pods" in API group "" in the namespace "default""#,
            ),
        );
        check(
            Identity::Node,
            Method::GET,
            "/apis/apps/v1/deployments",
            Some(
                r#"deployments.apps is forbidden: User "system:node" cannot list resource "deployments" in API group "apps" at the cluster scope"#,
            ),
        );
        check(
            Identity::Node,
            Method::PUT,
            "/api/v1/namespaces/default/status",
            Some(
                r#"namespaces "default" is forbidden: User "system:node" cannot update resource "namespaces/status" in API group "" at the cluster scope"#,
            ),
        );
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
            Credentials::Valid(Identity::Node),
        );
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
