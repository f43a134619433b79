//! Discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/<group>`,
//! `/apis/<group>/<version>`) generated from the resource table, so clients
//! find every resource, its verbs, short names and subresources.

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::{RESOURCES, ResourceDef, Subresource};

fn respond(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&value).unwrap_or_default(),
    )
        .into_response()
}

/// `/api`: the core group's versions.
pub async fn core_versions() -> Response {
    respond(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }))
}

/// The named groups and their versions, in a stable order.
fn group_names() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for def in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !groups.contains(&(def.group, def.version)) {
            groups.push((def.group, def.version));
        }
    }
    groups
}

fn group_document(group: &str, version: &str) -> Value {
    let gv = format!("{group}/{version}");
    json!({
        "name": group,
        "versions": [{"groupVersion": gv, "version": version}],
        "preferredVersion": {"groupVersion": gv, "version": version},
    })
}

/// `/apis`: every named group.
pub async fn groups() -> Response {
    let groups: Vec<Value> = group_names()
        .into_iter()
        .map(|(g, v)| group_document(g, v))
        .collect();
    respond(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

/// Every resource serves every verb; subresources list their own.
fn verbs() -> Value {
    json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ])
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for def in defs {
        let mut resource = json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": verbs(),
        });
        if !def.short_names.is_empty() {
            resource["shortNames"] = json!(def.short_names);
        }
        if !def.categories.is_empty() {
            resource["categories"] = json!(def.categories);
        }
        resources.push(resource);
        for sub in def.subresources {
            let (kind, verbs, group, version) = match sub {
                Subresource::Status => (def.kind, json!(["get", "patch", "update"]), None, None),
                Subresource::Scale => (
                    "Scale",
                    json!(["get", "patch", "update"]),
                    Some("autoscaling"),
                    Some("v1"),
                ),
                Subresource::Binding => ("Binding", json!(["create"]), None, None),
                Subresource::Finalize => (def.kind, json!(["update"]), None, None),
            };
            let mut entry = json!({
                "name": format!("{}/{}", def.plural, sub.name()),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if let (Some(group), Some(version)) = (group, version) {
                entry["group"] = json!(group);
                entry["version"] = json!(version);
            }
            resources.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// Discovery under `/api/...` and `/apis/...` for paths that are not
/// resource requests; 404 for anything else.
pub async fn serve(method: &Method, path: &str) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let document = match parts.as_slice() {
        ["api"] => return core_versions().await,
        ["apis"] => return groups().await,
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
        Some(document) => respond(document),
        None => ApiError::NoSuchPath.into_response(),
    }
}
