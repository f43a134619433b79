//! Discovery documents generated from the resource table, so clients find
//! every resource, its verbs, short names, categories and subresources.
//!
//! Two formats, as kube-apiserver serves them:
//! - the legacy documents: `/api` (APIVersions), `/apis` (APIGroupList),
//!   `/apis/<group>` (APIGroup), `/api/v1` and `/apis/<group>/<version>`
//!   (APIResourceList);
//! - the aggregated documents (`apidiscovery.k8s.io` v2 and v2beta1
//!   APIGroupDiscoveryList) on `/api` and `/apis`, only when the `Accept`
//!   header asks for them, as client-go does first; everyone else gets the
//!   legacy document as plain `application/json`.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::{RESOURCES, ResourceDef, Subresource};

/// The verbs every resource serves, in Kubernetes' (sorted) order.
pub(crate) const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// What a subresource of a resource is, as discovery and OpenAPI describe
/// it: the kind its requests and responses carry, and the verbs the
/// handlers route for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SubresourceFacts {
    /// Group of the kind ("" for core).
    pub group: &'static str,
    /// Version of the kind.
    pub version: &'static str,
    /// The kind, e.g. `Scale` for `deployments/scale`.
    pub kind: &'static str,
    /// The verbs served.
    pub verbs: &'static [&'static str],
}

impl SubresourceFacts {
    /// The facts of `sub` of `def`.
    pub(crate) fn of(def: &ResourceDef, sub: Subresource) -> Self {
        let own = |verbs| SubresourceFacts {
            group: def.group,
            version: def.version,
            kind: def.kind,
            verbs,
        };
        match sub {
            Subresource::Status => own(&["get", "patch", "update"]),
            Subresource::Finalize => own(&["patch", "update"]),
            Subresource::Scale => SubresourceFacts {
                group: "autoscaling",
                version: "v1",
                kind: "Scale",
                verbs: &["get", "patch", "update"],
            },
            Subresource::Binding => SubresourceFacts {
                group: "",
                version: "v1",
                kind: "Binding",
                verbs: &["create"],
            },
            // As kube-apiserver lists it: kind Pod, though the answer is text.
            Subresource::Log => own(&["get"]),
            // A connect subresource: its kind is the options' (which have
            // no schema), and GET and POST both upgrade.
            Subresource::Exec => SubresourceFacts {
                group: "",
                version: "v1",
                kind: "PodExecOptions",
                verbs: &["create", "get"],
            },
        }
    }
}

/// The `Content-Type` of every legacy document, and of aggregated ones
/// with the `g`, `v` and `as` parameters added.
const JSON: &str = "application/json";

fn respond(content_type: &str, value: &Value) -> Response {
    let content_type =
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static(JSON));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

/// The served group-versions, core (`""`) first, then the named groups in
/// table order, each once.
pub(crate) fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut versions: Vec<(&str, &str)> = vec![("", "v1")];
    for def in RESOURCES {
        if !versions.contains(&(def.group, def.version)) {
            versions.push((def.group, def.version));
        }
    }
    versions
}

/// The named groups and their versions, in a stable order.
fn group_names() -> Vec<(&'static str, &'static str)> {
    group_versions()
        .into_iter()
        .filter(|(group, _)| !group.is_empty())
        .collect()
}

/// `apiVersion` of a group-version: `v1` or `apps/v1`.
pub(crate) fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// kube-apiserver's `storageVersionHash`: the first 8 bytes of the SHA-256
/// of `group/version/kind` of the storage version, base64. Clients only
/// compare it for equality.
fn storage_version_hash(def: &ResourceDef) -> String {
    let gvk = format!("{}/{}/{}", def.group, def.version, def.kind);
    let digest = ring::digest::digest(&ring::digest::SHA256, gvk.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

/// Which discovery document a request for `/api` or `/apis` gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// APIVersions or APIGroupList, `application/json`.
    Legacy,
    /// APIGroupDiscoveryList of `apidiscovery.k8s.io/<version>`.
    Aggregated(&'static str),
}

impl Format {
    /// The aggregated document if `Accept` asks for one in JSON (the
    /// preferred one by q-value, then header order), else the legacy one.
    fn negotiate(headers: &HeaderMap) -> Format {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Format::Legacy;
        };
        let mut best: Option<(f32, Format)> = None;
        for range in media_ranges(accept) {
            if range.quality <= 0.0 || range.essence != JSON {
                continue;
            }
            let format = match (
                range.parameter("g"),
                range.parameter("v"),
                range.parameter("as"),
            ) {
                (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                    Format::Aggregated("v2")
                }
                (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                    Format::Aggregated("v2beta1")
                }
                (None, None, None) => Format::Legacy,
                _ => continue,
            };
            if best.is_none_or(|(quality, _)| range.quality > quality) {
                best = Some((range.quality, format));
            }
        }
        best.map_or(Format::Legacy, |(_, format)| format)
    }
}

/// One media range of an `Accept` header.
#[derive(Debug)]
pub(crate) struct MediaRange<'a> {
    /// `type/subtype`, lowercased.
    pub essence: String,
    /// The `q` parameter, 1 when absent or malformed.
    pub quality: f32,
    parameters: Vec<(String, &'a str)>,
}

impl MediaRange<'_> {
    /// A parameter other than `q` (names are case-insensitive).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| *value)
    }
}

/// The media ranges of an `Accept` header, in header order.
pub(crate) fn media_ranges(accept: &str) -> Vec<MediaRange<'_>> {
    accept
        .split(',')
        .filter_map(|text| {
            let mut parts = text.split(';');
            let essence = parts.next()?.trim().to_ascii_lowercase();
            if !essence.contains('/') {
                return None;
            }
            let mut range = MediaRange {
                essence,
                quality: 1.0,
                parameters: Vec::new(),
            };
            for parameter in parts {
                let Some((name, value)) = parameter.split_once('=') else {
                    continue;
                };
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim().trim_matches('"');
                if name == "q" {
                    range.quality = value.parse().unwrap_or(1.0);
                } else {
                    range.parameters.push((name, value));
                }
            }
            Some(range)
        })
        .collect()
}

/// `/api`: the core group's versions.
pub async fn core_versions(method: Method, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    match Format::negotiate(&headers) {
        Format::Legacy => respond(
            JSON,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
            }),
        ),
        Format::Aggregated(version) => aggregated(version, &[("", "v1")]),
    }
}

/// `/apis`: every named group.
pub async fn groups(method: Method, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    match Format::negotiate(&headers) {
        Format::Legacy => {
            let groups: Vec<Value> = group_names()
                .into_iter()
                .map(|(g, v)| group_document(g, v))
                .collect();
            respond(
                JSON,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        Format::Aggregated(version) => aggregated(version, &group_names()),
    }
}

fn group_document(group: &str, version: &str) -> Value {
    let gv = api_version(group, version);
    json!({
        "name": group,
        "versions": [{"groupVersion": gv, "version": version}],
        "preferredVersion": {"groupVersion": gv, "version": version},
    })
}

/// The resources of a group-version, table order.
fn resources_of(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceDef> {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// `/api/v1`, `/apis/<group>/<version>`: the APIResourceList.
fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for def in resources_of(group, version) {
        let mut resource = json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": RESOURCE_VERBS,
            "storageVersionHash": storage_version_hash(def),
        });
        if !def.short_names.is_empty() {
            resource["shortNames"] = json!(def.short_names);
        }
        if !def.categories.is_empty() {
            resource["categories"] = json!(def.categories);
        }
        resources.push(resource);
        for &sub in def.subresources {
            let facts = SubresourceFacts::of(def, sub);
            let mut entry = json!({
                "name": format!("{}/{}", def.plural, sub.name()),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": facts.kind,
                "verbs": facts.verbs,
            });
            if (facts.group, facts.version) != (def.group, def.version) {
                entry["group"] = json!(facts.group);
                entry["version"] = json!(facts.version);
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version(group, version),
        "resources": resources,
    }))
}

/// An APIGroupDiscoveryList of `apidiscovery.k8s.io/<version>` (v2 and
/// v2beta1 have the same shape) for the given group-versions.
fn aggregated(version: &'static str, group_versions: &[(&str, &str)]) -> Response {
    let mut items: Vec<Value> = Vec::new();
    for &(group, group_version) in group_versions {
        let resources: Vec<Value> = resources_of(group, group_version)
            .map(aggregated_resource)
            .collect();
        let entry = json!({
            "version": group_version,
            "resources": resources,
            "freshness": "Current",
        });
        // One item per group, its versions in preference order.
        match items
            .iter_mut()
            .find(|item| item["metadata"]["name"] == group)
        {
            Some(item) => item["versions"]
                .as_array_mut()
                .expect("versions is an array")
                .push(entry),
            None => items.push(json!({
                "metadata": {"name": group, "creationTimestamp": null},
                "versions": [entry],
            })),
        }
    }
    let document = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    respond(
        &format!("{JSON};g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
        &document,
    )
}

fn aggregated_resource(def: &'static ResourceDef) -> Value {
    let subresources: Vec<Value> = def
        .subresources
        .iter()
        .map(|&sub| {
            let facts = SubresourceFacts::of(def, sub);
            json!({
                "subresource": sub.name(),
                "responseKind": {"group": facts.group, "version": facts.version, "kind": facts.kind},
                "verbs": facts.verbs,
            })
        })
        .collect();
    let mut resource = json!({
        "resource": def.plural,
        "responseKind": {"group": def.group, "version": def.version, "kind": def.kind},
        "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": def.singular,
        "verbs": RESOURCE_VERBS,
    });
    if !def.short_names.is_empty() {
        resource["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        resource["categories"] = json!(def.categories);
    }
    if !subresources.is_empty() {
        resource["subresources"] = json!(subresources);
    }
    resource
}

/// Discovery under `/api/...` and `/apis/...` for paths that are not
/// resource requests; 404 for anything else.
pub async fn serve(method: &Method, path: &str) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let document = match parts.as_slice() {
        ["api"] => return core_versions(Method::GET, HeaderMap::new()).await,
        ["apis"] => return groups(Method::GET, HeaderMap::new()).await,
        ["api", version] => resource_list("", version),
        ["apis", group] => group_names()
            .into_iter()
            .find(|(g, _)| g == group)
            .map(|(g, v)| {
                let mut document = group_document(g, v);
                document["kind"] = json!("APIGroup");
                document["apiVersion"] = json!("v1");
                document
            }),
        ["apis", group, version] => resource_list(group, version),
        _ => None,
    };
    match document {
        Some(document) => respond(JSON, &document),
        None => ApiError::NoSuchPath.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(accept: &str) -> Format {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        Format::negotiate(&headers)
    }

    #[test]
    fn accept_chooses_the_discovery_format() {
        for (accept, expect) in [
            ("", Format::Legacy),
            ("application/json", Format::Legacy),
            ("*/*", Format::Legacy),
            // client-go's header.
            (
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
                 application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,\
                 application/json;q=0.9",
                Format::Aggregated("v2"),
            ),
            (
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
                Format::Aggregated("v2beta1"),
            ),
            (
                "application/json;q=0.5, application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io",
                Format::Aggregated("v2"),
            ),
            // Protobuf and unknown versions are not served: legacy JSON.
            (
                "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                Format::Legacy,
            ),
            (
                "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList",
                Format::Legacy,
            ),
            (
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0",
                Format::Legacy,
            ),
        ] {
            assert_eq!(negotiate(accept), expect, "{accept}");
        }
    }

    #[test]
    fn storage_version_hash_is_kube_apiservers() {
        // kube-apiserver's value for pods and deployments.
        let pods = super::super::resources::lookup("", "v1", "pods").unwrap();
        assert_eq!(storage_version_hash(pods), "xPOwRZ+Yhw8=");
        let deployments = super::super::resources::lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(storage_version_hash(deployments), "8aSe+NMegvE=");
    }

    #[test]
    fn every_subresource_has_facts() {
        for def in RESOURCES {
            for &sub in def.subresources {
                assert!(!SubresourceFacts::of(def, sub).verbs.is_empty());
            }
        }
    }
}
