//! Turns a request's method and path into what it asks of which resource
//! (Kubernetes' RequestInfo): verb, group, version, namespace, resource,
//! name and subresource. Pure, so its tests are a table.

use axum::http::Method;

/// What a resource request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET one object.
    Get,
    /// GET a collection.
    List,
    /// GET with `watch=true`, or under `/watch/`.
    Watch,
    /// POST to a collection (or to a creating subresource such as binding).
    Create,
    /// PUT one object or subresource.
    Update,
    /// PATCH one object or subresource.
    Patch,
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
}

impl Verb {
    /// The lowercase name used in authorization and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A parsed resource request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// The verb.
    pub verb: Verb,
    /// The API group, "" for the core group.
    pub group: String,
    /// The API version, e.g. `v1`.
    pub version: String,
    /// The namespace from the path, if any.
    pub namespace: Option<String>,
    /// The plural resource, e.g. `pods`.
    pub resource: String,
    /// The object name, if the path names one.
    pub name: Option<String>,
    /// The subresource, e.g. `status`, `scale`, `binding`, `log`.
    pub subresource: Option<String>,
}

/// Parses a path under `/api` or `/apis`. Returns `None` for paths that are
/// not resource requests (discovery documents, health, metrics...).
pub fn parse(method: &Method, path: &str, watch_param: bool) -> Option<RequestInfo> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    // Deprecated `/watch/` prefix: `/api/v1/watch/namespaces/ns/pods`.
    let (mut watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        // `/namespaces/{ns}/{resource}...`, but `/namespaces/{name}` and
        // `/namespaces/{name}/status|finalize` are the namespace itself.
        ["namespaces", ns, resource, tail @ ..]
            if !(tail.is_empty() && matches!(*resource, "status" | "finalize")) =>
        {
            let mut rest = vec![*resource];
            rest.extend_from_slice(tail);
            return finish(
                method,
                group,
                version,
                Some(ns),
                &rest,
                &mut watch,
                watch_param,
            );
        }
        _ => (None, rest),
    };
    finish(
        method,
        group,
        version,
        namespace,
        rest,
        &mut watch,
        watch_param,
    )
}

fn finish(
    method: &Method,
    group: &str,
    version: &str,
    namespace: Option<&str>,
    rest: &[&str],
    watch: &mut bool,
    watch_param: bool,
) -> Option<RequestInfo> {
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    if resource.is_empty() || name.is_some_and(str::is_empty) {
        return None;
    }
    *watch |= watch_param;
    let verb = match (method.clone(), name, subresource) {
        (Method::GET, _, _) if *watch => Verb::Watch,
        (Method::GET | Method::HEAD, None, _) => Verb::List,
        (Method::GET | Method::HEAD, Some(_), _) => Verb::Get,
        (Method::POST, _, _) => Verb::Create,
        (Method::PUT, Some(_), _) => Verb::Update,
        (Method::PATCH, Some(_), _) => Verb::Patch,
        (Method::DELETE, None, _) => Verb::DeleteCollection,
        (Method::DELETE, Some(_), _) => Verb::Delete,
        _ => return None,
    };
    Some(RequestInfo {
        verb,
        group: group.to_owned(),
        version: version.to_owned(),
        namespace: namespace.map(str::to_owned),
        resource: resource.to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verb, group/version, namespace, resource, name, subresource.
    type Expected<'a> = (
        Verb,
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );

    fn check(method: Method, path: &str, expect: Option<Expected<'_>>) {
        let actual = parse(&method, path, false).map(|i| {
            (
                i.verb,
                format!("{}/{}", i.group, i.version),
                i.namespace,
                i.resource,
                i.name,
                i.subresource,
            )
        });
        let expect = expect.map(|(verb, gv, ns, resource, name, sub)| {
            (
                verb,
                gv.to_owned(),
                ns.map(str::to_owned),
                resource.to_owned(),
                name.map(str::to_owned),
                sub.map(str::to_owned),
            )
        });
        assert_eq!(actual, expect, "{method} {path}");
    }

    #[test]
    fn paths() {
        use Verb::*;
        check(
            Method::GET,
            "/api/v1/pods",
            Some((List, "/v1", None, "pods", None, None)),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/default/pods",
            Some((List, "/v1", Some("default"), "pods", None, None)),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/default/pods/web",
            Some((Get, "/v1", Some("default"), "pods", Some("web"), None)),
        );
        check(
            Method::PUT,
            "/api/v1/namespaces/default/pods/web/status",
            Some((
                Update,
                "/v1",
                Some("default"),
                "pods",
                Some("web"),
                Some("status"),
            )),
        );
        check(
            Method::POST,
            "/api/v1/namespaces/default/pods/web/binding",
            Some((
                Create,
                "/v1",
                Some("default"),
                "pods",
                Some("web"),
                Some("binding"),
            )),
        );
        check(
            Method::GET,
            "/api/v1/namespaces",
            Some((List, "/v1", None, "namespaces", None, None)),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/kube-system",
            Some((Get, "/v1", None, "namespaces", Some("kube-system"), None)),
        );
        check(
            Method::PUT,
            "/api/v1/namespaces/kube-system/status",
            Some((
                Update,
                "/v1",
                None,
                "namespaces",
                Some("kube-system"),
                Some("status"),
            )),
        );
        check(
            Method::PUT,
            "/api/v1/namespaces/kube-system/finalize",
            Some((
                Update,
                "/v1",
                None,
                "namespaces",
                Some("kube-system"),
                Some("finalize"),
            )),
        );
        check(
            Method::DELETE,
            "/api/v1/namespaces/default/configmaps",
            Some((
                DeleteCollection,
                "/v1",
                Some("default"),
                "configmaps",
                None,
                None,
            )),
        );
        check(
            Method::PATCH,
            "/apis/apps/v1/namespaces/ns/deployments/web/scale",
            Some((
                Patch,
                "apps/v1",
                Some("ns"),
                "deployments",
                Some("web"),
                Some("scale"),
            )),
        );
        check(
            Method::GET,
            "/apis/apps/v1/deployments",
            Some((List, "apps/v1", None, "deployments", None, None)),
        );
        check(
            Method::GET,
            "/api/v1/watch/namespaces/default/pods",
            Some((Watch, "/v1", Some("default"), "pods", None, None)),
        );
        check(
            Method::GET,
            "/api/v1/nodes/n1",
            Some((Get, "/v1", None, "nodes", Some("n1"), None)),
        );
        check(Method::GET, "/api/v1", None);
        check(Method::GET, "/apis/apps/v1", None);
        check(Method::GET, "/healthz", None);
        check(
            Method::GET,
            "/api/v1/namespaces/default/pods/web/log/extra",
            None,
        );
        check(Method::PUT, "/api/v1/pods", None);
    }

    #[test]
    fn watch_parameter_turns_get_into_watch() {
        let info = parse(&Method::GET, "/api/v1/namespaces/default/pods", true).unwrap();
        assert_eq!(info.verb, Verb::Watch);
    }
}
