//! OpenAPI documents of the served resources, as kube-apiserver publishes
//! them for kubectl (`explain`, `apply`'s patch computation, and the check
//! that the server validates fields itself, `fieldValidation`):
//! - `/openapi/v2`: one Swagger 2.0 document, refs `#/definitions/...`;
//! - `/openapi/v3`: the index, `{"paths": {"api/v1": {"serverRelativeURL":
//!   "/openapi/v3/api/v1?hash=<HASH>"}, ...}}`;
//! - `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`: one
//!   OpenAPI 3.0 document per group-version, refs `#/components/schemas/...`.
//!
//! Schemas come from k8s-openapi's `JsonSchema` impls (schemars), named as
//! Kubernetes names them (`io.k8s.api.core.v1.Pod`); the kinds carry
//! `x-kubernetes-group-version-kind`, properties the patch extensions of
//! [`strategic::meta::field`], and the paths and operations follow the
//! resource table ([`RESOURCES`]) and what the handlers route. Documents are
//! built once, on first use, and served with an ETag (`If-None-Match` → 304);
//! the v3 documents are immutable under their `?hash=`. Only JSON is served:
//! a request that accepts only protobuf gets 406.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, ListMeta, Patch, Status, WatchEvent,
};
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::discovery::{SubresourceFacts, group_versions, media_ranges};
use super::error::ApiError;
use super::health::version_info;
use super::resources::{RESOURCES, ResourceDef, Subresource};
use super::strategic;

/// Routes `/openapi/v2`, `/openapi/v3` and `/openapi/v3/{*path}`.
pub fn router() -> Router {
    Router::new()
        .route("/openapi/v2", any(serve_v2))
        .route("/openapi/v3", any(serve_v3_index))
        .route("/openapi/v3/{*path}", any(serve_v3))
}

/// The v2 document, as served.
pub fn v2_document() -> Value {
    documents().v2.value()
}

/// The v3 document of `path` (`api/v1`, `apis/apps/v1`), as served.
pub fn v3_document(path: &str) -> Option<Value> {
    documents().v3.get(path).map(Served::value)
}

/// The v3 index, as served.
pub fn v3_index() -> Value {
    documents().v3_index.value()
}

async fn serve_v2(method: Method, headers: HeaderMap) -> Response {
    if let Err(error) = check_request(&method, &headers) {
        return error.into_response();
    }
    ready().await.v2.respond(&headers, Caching::Revalidate)
}

async fn serve_v3_index(method: Method, headers: HeaderMap) -> Response {
    if let Err(error) = check_request(&method, &headers) {
        return error.into_response();
    }
    ready()
        .await
        .v3_index
        .respond(&headers, Caching::Revalidate)
}

async fn serve_v3(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri
        .path()
        .trim_start_matches("/openapi/v3/")
        .trim_matches('/');
    let Some(served) = ready().await.v3.get(path) else {
        return ApiError::NoSuchPath.into_response();
    };
    if let Err(error) = check_request(&method, &headers) {
        return error.into_response();
    }
    let asked = uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "hash")
            .map(|(_, value)| value.into_owned())
    });
    match asked {
        None => served.respond(&headers, Caching::Revalidate),
        Some(hash) if hash == served.hash => served.respond(&headers, Caching::Immutable),
        // An outdated hash: the current document's URL, as kube-apiserver.
        Some(_) => (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, server_relative_url(path, &served.hash))],
        )
            .into_response(),
    }
}

/// GET or HEAD only, and JSON must be acceptable: 405 or 406 otherwise.
fn check_request(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    let accept = headers
        .get(header::ACCEPT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    if accepts_json(&accept) {
        Ok(())
    } else {
        Err(ApiError::NotAcceptable("application/json".to_owned()))
    }
}

/// Whether an `Accept` header admits `application/json`: no header, or a
/// range `application/json`, `application/*` or `*/*` with q > 0.
fn accepts_json(accept: &str) -> bool {
    let accept = accept.trim();
    accept.is_empty()
        || media_ranges(accept).iter().any(|range| {
            range.quality > 0.0
                && matches!(
                    range.essence.as_str(),
                    "application/json" | "application/*" | "*/*"
                )
        })
}

/// How a client may cache a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caching {
    /// Revalidate with the ETag.
    Revalidate,
    /// Addressed by its hash: cacheable for a year, as kube-apiserver.
    Immutable,
}

/// A built document, serialized (about 1.7 MB in all; their `Value`s
/// would take several times that).
struct Served {
    body: Bytes,
    /// Upper-case hex SHA-512 of `body`, kube-apiserver's ETag and `hash`.
    hash: String,
}

impl Served {
    fn new(value: &Value) -> Self {
        let body = Bytes::from(serde_json::to_vec(value).expect("a JSON value serializes"));
        let digest = ring::digest::digest(&ring::digest::SHA512, &body);
        let hash = digest
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect();
        Served { body, hash }
    }

    fn value(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a served document is JSON")
    }

    fn respond(&self, headers: &HeaderMap, caching: Caching) -> Response {
        let etag = HeaderValue::from_str(&format!("\"{}\"", self.hash)).expect("hex is a header");
        let matched = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes());
        let mut response = if matched {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                self.body.clone(),
            )
                .into_response()
        };
        let response_headers = response.headers_mut();
        response_headers.insert(header::ETAG, etag);
        response_headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        if caching == Caching::Immutable {
            response_headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, immutable"),
            );
            let year = jiff::SignedDuration::from_hours(24 * 365);
            if let Ok(expires) = jiff::Timestamp::now().checked_add(year)
                && let Ok(text) =
                    jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&expires)
                && let Ok(value) = HeaderValue::from_str(&text)
            {
                response_headers.insert(header::EXPIRES, value);
            }
        }
        response
    }
}

/// Every document, built together on first use.
struct Documents {
    v2: Served,
    /// By path, `api/v1` or `apis/<group>/<version>`.
    v3: BTreeMap<String, Served>,
    v3_index: Served,
}

static DOCUMENTS: OnceLock<Documents> = OnceLock::new();

fn documents() -> &'static Documents {
    DOCUMENTS.get_or_init(|| {
        let all = group_versions();
        let v2 = Served::new(&document(Dialect::V2, &all));
        let v3: BTreeMap<String, Served> = all
            .iter()
            .map(|&gv| {
                (
                    v3_path(gv.0, gv.1),
                    Served::new(&document(Dialect::V3, &[gv])),
                )
            })
            .collect();
        let paths: Map<String, Value> = v3
            .iter()
            .map(|(path, served)| {
                (
                    path.clone(),
                    json!({"serverRelativeURL": server_relative_url(path, &served.hash)}),
                )
            })
            .collect();
        let v3_index = Served::new(&json!({ "paths": paths }));
        Documents { v2, v3, v3_index }
    })
}

/// As [`documents`], building them on a blocking thread the first time:
/// the build takes a few hundred milliseconds in a debug build, which a
/// runtime worker should not spend.
async fn ready() -> &'static Documents {
    match DOCUMENTS.get() {
        Some(documents) => documents,
        None => tokio::task::spawn_blocking(documents)
            .await
            .expect("building the OpenAPI documents does not panic"),
    }
}

/// The v3 document path of a group-version: `api/v1`, `apis/apps/v1`.
fn v3_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn server_relative_url(path: &str, hash: &str) -> String {
    format!("/openapi/v3/{path}?hash={hash}")
}

/// Swagger 2.0 or OpenAPI 3.0: where definitions live and how a `$ref`
/// with a description beside it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    /// `#/definitions/...`, `$ref` with siblings.
    V2,
    /// `#/components/schemas/...`, `{"allOf": [{"$ref"}], "description"}`.
    V3,
}

impl Dialect {
    fn generator(self) -> SchemaGenerator {
        match self {
            Dialect::V2 => SchemaSettings::draft07()
                .with(|settings| {
                    settings.definitions_path = "/definitions".into();
                    settings.meta_schema = None;
                    // Kubernetes' v2 documents keep descriptions beside refs.
                    settings.transforms = Vec::new();
                })
                .into_generator(),
            Dialect::V3 => SchemaSettings::openapi3()
                .with(|settings| settings.meta_schema = None)
                .into_generator(),
        }
    }

    fn reference(self, name: &str) -> Value {
        match self {
            Dialect::V2 => json!({ "$ref": format!("#/definitions/{name}") }),
            Dialect::V3 => json!({ "$ref": format!("#/components/schemas/{name}") }),
        }
    }

    /// A reference with a description, as the dialect writes it.
    fn described_reference(self, name: &str, description: &str) -> Value {
        match self {
            Dialect::V2 => {
                let mut schema = self.reference(name);
                schema["description"] = json!(description);
                schema
            }
            Dialect::V3 => json!({"allOf": [self.reference(name)], "description": description}),
        }
    }
}

/// How to generate the schema of one kind.
struct KindSchema {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    schema_name: fn() -> Cow<'static, str>,
    generate: fn(&mut SchemaGenerator) -> Schema,
}

fn subschema<K: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<K>()
}

const fn kind<K: k8s_openapi::Resource + JsonSchema>() -> KindSchema {
    KindSchema {
        group: K::GROUP,
        version: K::VERSION,
        kind: K::KIND,
        schema_name: K::schema_name,
        generate: subschema::<K>,
    }
}

/// The typed form of every kind the resources and their subresources carry;
/// a test checks that it covers [`RESOURCES`].
static KINDS: &[KindSchema] = &[
    kind::<Namespace>(),
    kind::<Pod>(),
    kind::<Binding>(),
    kind::<Node>(),
    kind::<Service>(),
    kind::<Endpoints>(),
    kind::<ConfigMap>(),
    kind::<Secret>(),
    kind::<Event>(),
    kind::<EndpointSlice>(),
    kind::<Lease>(),
    kind::<RuntimeClass>(),
    kind::<Deployment>(),
    kind::<ReplicaSet>(),
    kind::<Scale>(),
];

fn kind_schema(group: &str, version: &str, kind: &str) -> &'static KindSchema {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
        .unwrap_or_else(|| panic!("no schema for {group}/{version} {kind}: add it to KINDS"))
}

/// The schema of what a subresource's requests and responses carry;
/// `None` for a connect subresource (`pods/exec`), whose options are query
/// parameters without a schema.
fn subresource_schema(def: &ResourceDef, sub: Subresource) -> Option<&'static KindSchema> {
    if sub == Subresource::Exec {
        return None;
    }
    let facts = SubresourceFacts::of(def, sub);
    Some(kind_schema(facts.group, facts.version, facts.kind))
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// The resources of the given group-versions, table order.
fn resources_in<'a>(
    group_versions: &'a [(&'static str, &'static str)],
) -> impl Iterator<Item = &'static ResourceDef> + 'a {
    RESOURCES
        .iter()
        .filter(move |def| group_versions.contains(&(def.group, def.version)))
}

/// A whole document of the dialect for the given group-versions.
fn document(dialect: Dialect, group_versions: &[(&'static str, &'static str)]) -> Value {
    let definitions = definitions(dialect, group_versions);
    let paths = paths(dialect, group_versions);
    let info = json!({"title": "Kubernetes", "version": version_info().git_version});
    let bearer = json!({
        "BearerToken": {
            "description": "Bearer Token authentication",
            "type": "apiKey",
            "name": "authorization",
            "in": "header",
        }
    });
    match dialect {
        Dialect::V2 => json!({
            "swagger": "2.0",
            "info": info,
            "paths": paths,
            "definitions": definitions,
            "securityDefinitions": bearer,
            "security": [{"BearerToken": []}],
        }),
        Dialect::V3 => json!({
            "openapi": "3.0.0",
            "info": info,
            "paths": paths,
            "components": {"schemas": definitions, "securitySchemes": bearer},
            "security": [{"BearerToken": []}],
        }),
    }
}

/// The schema names of the meta types every document uses.
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// The definitions of the resources of `group_versions`, of what they
/// reference, and of the meta types the operations use.
fn definitions(
    dialect: Dialect,
    group_versions: &[(&'static str, &'static str)],
) -> Map<String, Value> {
    let mut generator = dialect.generator();
    // Kinds that get `x-kubernetes-group-version-kind`, and whether a list
    // of them is served.
    let mut kinds: Vec<(&'static KindSchema, bool)> = Vec::new();
    for def in resources_in(group_versions) {
        let schema = kind_schema(def.group, def.version, def.kind);
        kinds.push((schema, true));
        for &sub in def.subresources {
            let Some(schema) = subresource_schema(def, sub) else {
                continue;
            };
            if !kinds.iter().any(|(k, _)| std::ptr::eq(*k, schema)) {
                kinds.push((schema, false));
            }
        }
    }
    for (schema, _) in &kinds {
        (schema.generate)(&mut generator);
    }
    subschema::<DeleteOptions>(&mut generator);
    subschema::<Status>(&mut generator);
    subschema::<Patch>(&mut generator);
    subschema::<WatchEvent<Pod>>(&mut generator);
    subschema::<ListMeta>(&mut generator);
    let mut definitions = generator.take_definitions(true);

    for (schema, listed) in &kinds {
        let name = (schema.schema_name)();
        let definition = definitions
            .get_mut(name.as_ref())
            .expect("the kind's schema was generated");
        definition["x-kubernetes-group-version-kind"] =
            json!([gvk(schema.group, schema.version, schema.kind)]);
        // k8s-openapi requires `metadata` (its field is not optional);
        // Kubernetes does not.
        if let Some(required) = definition.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|field| field != "metadata");
            if required.is_empty() {
                definition
                    .as_object_mut()
                    .expect("a schema object")
                    .remove("required");
            }
        }
        if *listed {
            let list = list_definition(dialect, schema, definition);
            definitions.insert(format!("{name}List"), list);
        }
    }
    // As in Kubernetes, these belong to every group-version.
    for (name, kind) in [
        (DELETE_OPTIONS, "DeleteOptions"),
        (WATCH_EVENT, "WatchEvent"),
    ] {
        if let Some(definition) = definitions.get_mut(name) {
            definition["x-kubernetes-group-version-kind"] = group_versions
                .iter()
                .map(|&(group, version)| gvk(group, version, kind))
                .collect();
        }
    }
    if let Some(status) = definitions.get_mut(STATUS) {
        status["x-kubernetes-group-version-kind"] = json!([gvk("", "v1", "Status")]);
    }
    add_patch_extensions(&mut definitions);
    definitions
}

/// `<Kind>List`, which k8s-openapi models generically (`List<T>`) and so
/// has no schema of its own.
fn list_definition(dialect: Dialect, schema: &KindSchema, kind_definition: &Value) -> Value {
    let name = (schema.schema_name)();
    let property = |field: &str| kind_definition["properties"][field].clone();
    json!({
        "description": format!("{}List is a list of {} objects.", schema.kind, schema.kind),
        "type": "object",
        "properties": {
            "apiVersion": property("apiVersion"),
            "items": {
                "description": format!("The {} objects.", schema.kind),
                "type": "array",
                "items": dialect.reference(&name),
            },
            "kind": property("kind"),
            "metadata": dialect.described_reference(
                LIST_META,
                "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            ),
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [gvk(schema.group, schema.version, &format!("{}List", schema.kind))],
    })
}

/// `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key` on every
/// property that has them, from the strategic merge patch metadata.
fn add_patch_extensions(definitions: &mut Map<String, Value>) {
    for (name, definition) in definitions.iter_mut() {
        let Some(properties) = definition
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (field, property) in properties.iter_mut() {
            let Some(meta) = strategic::meta::field(name, field) else {
                continue;
            };
            let Some(property) = property.as_object_mut() else {
                continue;
            };
            if let Some(strategy) = meta.strategy {
                property.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            }
            if let Some(merge_key) = meta.merge_key {
                property.insert("x-kubernetes-patch-merge-key".into(), json!(merge_key));
            }
        }
    }
}

/// A path or query parameter.
#[derive(Clone, Debug)]
struct Param {
    name: &'static str,
    location: &'static str,
    ty: &'static str,
    description: Cow<'static, str>,
    required: bool,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description: Cow::Borrowed(description),
        required: false,
    }
}

const PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed.",
);
const ALLOW_WATCH_BOOKMARKS: Param = query(
    "allowWatchBookmarks",
    "boolean",
    "allowWatchBookmarks requests watch events of type \"BOOKMARK\"; the server sends them at its discretion.",
);
const CONTINUE: Param = query(
    "continue",
    "string",
    "The continue token of a previous list call with a limit, to read the next chunk of results.",
);
const FIELD_SELECTOR: Param = query(
    "fieldSelector",
    "string",
    "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
);
const LABEL_SELECTOR: Param = query(
    "labelSelector",
    "string",
    "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
);
const LIMIT: Param = query(
    "limit",
    "integer",
    "The maximum number of objects to return for a list call; when more remain, the list metadata carries a continue token.",
);
const RESOURCE_VERSION: Param = query(
    "resourceVersion",
    "string",
    "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.",
);
const RESOURCE_VERSION_MATCH: Param = query(
    "resourceVersionMatch",
    "string",
    "resourceVersionMatch determines how resourceVersion is applied to list calls: Exact or NotOlderThan.",
);
const TIMEOUT_SECONDS: Param = query(
    "timeoutSeconds",
    "integer",
    "Timeout for the list/watch call, regardless of any activity or inactivity.",
);
const WATCH: Param = query(
    "watch",
    "boolean",
    "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
);
const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, modifications are not persisted. The only valid value is All.",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields: Ignore drops them silently, Warn (the default) drops them with a warning header for each, Strict fails the request with a BadRequest error naming all of them.",
);
const FORCE: Param = query(
    "force",
    "boolean",
    "Force re-acquires conflicting fields in apply requests; it must be unset for other patch requests.",
);
const GRACE_PERIOD_SECONDS: Param = query(
    "gracePeriodSeconds",
    "integer",
    "The duration in seconds before the object should be deleted; zero deletes immediately. Defaults to the kind's own grace period.",
);
const PROPAGATION_POLICY: Param = query(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection is performed: Orphan, Background or Foreground.",
);

const LOG_PARAMS: &[Param] = &[
    query(
        "container",
        "string",
        "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
    ),
    query(
        "follow",
        "boolean",
        "Follow the log stream of the pod. Defaults to false.",
    ),
    query(
        "insecureSkipTLSVerifyBackend",
        "boolean",
        "Accepted for compatibility; skiff always verifies the serving certificate of the node it reads the log from.",
    ),
    query(
        "limitBytes",
        "integer",
        "If set, the number of bytes to read from the server before terminating the log output.",
    ),
    query(
        "previous",
        "boolean",
        "Return previous terminated container logs. Defaults to false.",
    ),
    query(
        "sinceSeconds",
        "integer",
        "A relative time in seconds before the current time from which to show logs. Only one of sinceSeconds or sinceTime may be specified.",
    ),
    query(
        "sinceTime",
        "string",
        "An RFC3339 timestamp from which to show logs. Only one of sinceSeconds or sinceTime may be specified.",
    ),
    query(
        "tailLines",
        "integer",
        "If set, the number of lines from the end of the logs to show.",
    ),
    query(
        "timestamps",
        "boolean",
        "If true, add an RFC3339 timestamp at the beginning of every line of log output. Defaults to false.",
    ),
];
const EXEC_PARAMS: &[Param] = &[
    query(
        "command",
        "string",
        "Command is the remote command to execute. argv array. Not executed within a shell.",
    ),
    query(
        "container",
        "string",
        "Container in which to execute the command. Defaults to only container if there is only one container in the pod.",
    ),
    query(
        "stderr",
        "boolean",
        "Redirect the standard error stream of the pod for this call.",
    ),
    query(
        "stdin",
        "boolean",
        "Redirect the standard input stream of the pod for this call. Defaults to false.",
    ),
    query(
        "stdout",
        "boolean",
        "Redirect the standard output stream of the pod for this call.",
    ),
    query(
        "tty",
        "boolean",
        "TTY if true indicates that a tty will be allocated for the exec call. Defaults to false.",
    ),
];
const LIST_PARAMS: &[Param] = &[
    ALLOW_WATCH_BOOKMARKS,
    CONTINUE,
    FIELD_SELECTOR,
    LABEL_SELECTOR,
    LIMIT,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    TIMEOUT_SECONDS,
    WATCH,
];
const WRITE_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
const PATCH_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
const DELETE_PARAMS: &[Param] = &[DRY_RUN, GRACE_PERIOD_SECONDS, PROPAGATION_POLICY];
const DELETE_COLLECTION_PARAMS: &[Param] = &[
    CONTINUE,
    DRY_RUN,
    FIELD_SELECTOR,
    GRACE_PERIOD_SECONDS,
    LABEL_SELECTOR,
    LIMIT,
    PROPAGATION_POLICY,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    TIMEOUT_SECONDS,
];

/// The patch types the server accepts.
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// What an operation's responses may be encoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Produces {
    /// One object, JSON or YAML.
    Object,
    /// A list, or a watch stream with `?watch=true`.
    List,
    /// A watch stream only.
    Watch,
    /// Plain text (a container's log).
    Text,
    /// Anything (a connect subresource's upgraded stream).
    Any,
}

impl Produces {
    fn media_types(self) -> &'static [&'static str] {
        match self {
            Produces::Object => &["application/json", "application/yaml"],
            Produces::List => &[
                "application/json",
                "application/json;stream=watch",
                "application/yaml",
            ],
            Produces::Watch => &["application/json", "application/json;stream=watch"],
            Produces::Text => &["text/plain"],
            Produces::Any => &["*/*"],
        }
    }
}

/// What an operation's request body is.
#[derive(Clone, Debug)]
enum RequestBody {
    /// An object of the named schema (create, replace).
    Object(String),
    /// A patch, in one of [`PATCH_TYPES`].
    Patch,
    /// Optional DeleteOptions.
    DeleteOptions,
}

/// What an operation answers.
#[derive(Clone, Debug)]
enum ResponseSchema {
    /// An object of the named schema.
    Named(String),
    /// A string (a container's log).
    Text,
}

impl ResponseSchema {
    fn render(&self, dialect: Dialect) -> Value {
        match self {
            ResponseSchema::Named(name) => dialect.reference(name),
            ResponseSchema::Text => json!({"type": "string"}),
        }
    }
}

/// One operation of a path.
#[derive(Clone, Debug)]
struct Operation {
    method: &'static str,
    id: String,
    description: String,
    action: &'static str,
    tag: String,
    gvk: Value,
    params: &'static [Param],
    body: Option<RequestBody>,
    /// Status code, description, response schema.
    responses: Vec<(&'static str, &'static str, ResponseSchema)>,
    produces: Produces,
}

/// One path with the parameters all its operations share.
#[derive(Clone, Debug)]
struct PathItem {
    path: String,
    params: Vec<Param>,
    operations: Vec<Operation>,
}

/// `CoreV1`, `AppsV1`, `DiscoveryV1`, `NodeV1`: the middle of Kubernetes'
/// operation ids.
fn operation_prefix(group: &str, version: &str) -> String {
    let group = if group.is_empty() {
        "core"
    } else {
        group.trim_end_matches(".k8s.io")
    };
    group.split('.').chain([version]).map(capitalize).collect()
}

/// `core_v1`, `apps_v1`: the tag of a group-version's operations.
fn tag(group: &str, version: &str) -> String {
    let group = if group.is_empty() {
        "core"
    } else {
        group.trim_end_matches(".k8s.io")
    };
    format!("{}_{version}", group.replace('.', "_"))
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The kinds of operations Kubernetes publishes for a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    List,
    Create,
    DeleteCollection,
    Read,
    Replace,
    Patch,
    Delete,
    WatchList,
    Watch,
    /// `pods/log`: read a container's log.
    ReadLog,
    /// `pods/exec` by GET: a connect subresource (upgraded).
    ConnectGet,
    /// `pods/exec` by POST.
    ConnectPost,
}

/// What operations act on: a resource (in a namespace, or across all), or
/// one of its subresources.
#[derive(Clone, Debug)]
struct Target {
    /// The resource's kind, e.g. `Pod`.
    kind: &'static str,
    /// The schema requests and responses carry, e.g. the Scale's.
    schema: String,
    /// The kind's list schema.
    list_schema: String,
    gvk: Value,
    tag: String,
    /// `CoreV1`.
    id_prefix: String,
    /// `Namespaced` or empty.
    id_scope: &'static str,
    /// `Status`, `ForAllNamespaces` or empty.
    id_suffix: String,
    /// The subresource, e.g. `status`.
    subresource: Option<&'static str>,
}

impl Target {
    fn operation(&self, op: Op) -> Operation {
        let kind = self.kind;
        let (method, id_verb, action) = match op {
            Op::List => ("get", "list", "list"),
            Op::Create => ("post", "create", "post"),
            Op::DeleteCollection => ("delete", "delete", "deletecollection"),
            Op::Read => ("get", "read", "get"),
            Op::Replace => ("put", "replace", "put"),
            Op::Patch => ("patch", "patch", "patch"),
            Op::Delete => ("delete", "delete", "delete"),
            Op::WatchList => ("get", "watch", "watchlist"),
            Op::Watch => ("get", "watch", "watch"),
            Op::ReadLog => ("get", "read", "get"),
            Op::ConnectGet => ("get", "connect", "connect"),
            Op::ConnectPost => ("post", "connect", "connect"),
        };
        let (collection, list) = match op {
            Op::DeleteCollection => ("Collection", ""),
            Op::WatchList => ("", "List"),
            _ => ("", ""),
        };
        // Connect operations name their method: connectCoreV1GetNamespacedPodExec.
        let method_in_id = match op {
            Op::ConnectGet | Op::ConnectPost => capitalize(method),
            _ => String::new(),
        };
        let id = format!(
            "{id_verb}{}{method_in_id}{collection}{}{kind}{list}{}",
            self.id_prefix, self.id_scope, self.id_suffix
        );
        let of = |what: &str| match self.subresource {
            Some(sub) => format!("{what} {sub} of the specified {kind}"),
            None => format!("{what} the specified {kind}"),
        };
        let description = match op {
            Op::List => format!("list or watch objects of kind {kind}"),
            Op::Create => match self.subresource {
                Some(sub) => format!("create {sub} of a {kind}"),
                None => format!("create a {kind}"),
            },
            Op::DeleteCollection => format!("delete collection of {kind}"),
            Op::Read | Op::ReadLog => of("read"),
            Op::Replace => of("replace"),
            Op::Patch => of("partially update"),
            Op::Delete => format!("delete a {kind}"),
            Op::WatchList => format!(
                "watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."
            ),
            Op::Watch => format!(
                "watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
            ),
            Op::ConnectGet | Op::ConnectPost => format!(
                "connect {} requests to {} of {kind}",
                method.to_ascii_uppercase(),
                self.subresource.unwrap_or_default()
            ),
        };
        let schema = &self.schema;
        let respond = |codes: &[(&'static str, &'static str)], schema: &str| {
            codes
                .iter()
                .map(|&(code, text)| (code, text, ResponseSchema::Named(schema.to_owned())))
                .collect()
        };
        const OK: (&str, &str) = ("200", "OK");
        const CREATED: (&str, &str) = ("201", "Created");
        const ACCEPTED: (&str, &str) = ("202", "Accepted");
        let (params, body, responses, produces) = match op {
            Op::List => (
                LIST_PARAMS,
                None,
                respond(&[OK], &self.list_schema),
                Produces::List,
            ),
            Op::Create => (
                WRITE_PARAMS,
                Some(RequestBody::Object(schema.clone())),
                respond(&[OK, CREATED, ACCEPTED], schema),
                Produces::Object,
            ),
            Op::DeleteCollection => (
                DELETE_COLLECTION_PARAMS,
                Some(RequestBody::DeleteOptions),
                respond(&[OK], STATUS),
                Produces::Object,
            ),
            Op::Read => (&[][..], None, respond(&[OK], schema), Produces::Object),
            Op::Replace => (
                WRITE_PARAMS,
                Some(RequestBody::Object(schema.clone())),
                respond(&[OK, CREATED], schema),
                Produces::Object,
            ),
            Op::Patch => (
                PATCH_PARAMS,
                Some(RequestBody::Patch),
                respond(&[OK, CREATED], schema),
                Produces::Object,
            ),
            Op::Delete => (
                DELETE_PARAMS,
                Some(RequestBody::DeleteOptions),
                respond(&[OK, ACCEPTED], schema),
                Produces::Object,
            ),
            Op::WatchList | Op::Watch => (
                LIST_PARAMS,
                None,
                respond(&[OK], WATCH_EVENT),
                Produces::Watch,
            ),
            Op::ReadLog => (
                LOG_PARAMS,
                None,
                vec![(OK.0, OK.1, ResponseSchema::Text)],
                Produces::Text,
            ),
            Op::ConnectGet | Op::ConnectPost => (
                EXEC_PARAMS,
                None,
                vec![(OK.0, OK.1, ResponseSchema::Text)],
                Produces::Any,
            ),
        };
        Operation {
            method,
            id,
            description,
            action,
            tag: self.tag.clone(),
            gvk: self.gvk.clone(),
            params,
            body,
            responses,
            produces,
        }
    }
}

/// The paths and operations of the resources of `group_versions`, as the
/// handlers route them (`/watch/` paths included, which they also serve).
fn path_items(group_versions: &[(&'static str, &'static str)]) -> Vec<PathItem> {
    let mut items = Vec::new();
    for def in resources_in(group_versions) {
        let schema = (kind_schema(def.group, def.version, def.kind).schema_name)().into_owned();
        let resource = Target {
            kind: def.kind,
            list_schema: format!("{schema}List"),
            schema,
            gvk: gvk(def.group, def.version, def.kind),
            tag: tag(def.group, def.version),
            id_prefix: operation_prefix(def.group, def.version),
            id_scope: if def.namespaced { "Namespaced" } else { "" },
            id_suffix: String::new(),
            subresource: None,
        };
        let prefix = format!("/{}", v3_path(def.group, def.version));
        let mut scope_params = Vec::new();
        let (collection, watch_collection) = if def.namespaced {
            scope_params.push(Param {
                name: "namespace",
                location: "path",
                ty: "string",
                description: Cow::Borrowed(
                    "object name and auth scope, such as for teams and projects",
                ),
                required: true,
            });
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", def.plural),
                format!("{prefix}/watch/namespaces/{{namespace}}/{}", def.plural),
            )
        } else {
            (
                format!("{prefix}/{}", def.plural),
                format!("{prefix}/watch/{}", def.plural),
            )
        };
        scope_params.push(PRETTY);
        let mut item_params = vec![Param {
            name: "name",
            location: "path",
            ty: "string",
            description: Cow::Owned(format!("name of the {}", def.kind)),
            required: true,
        }];
        item_params.extend(scope_params.iter().cloned());
        let mut push = |path: String, params: &[Param], target: &Target, ops: &[Op]| {
            items.push(PathItem {
                path,
                params: params.to_vec(),
                operations: ops.iter().map(|&op| target.operation(op)).collect(),
            });
        };

        use Op::*;
        push(
            collection.clone(),
            &scope_params,
            &resource,
            &[List, Create, DeleteCollection],
        );
        push(
            format!("{collection}/{{name}}"),
            &item_params,
            &resource,
            &[Read, Replace, Patch, Delete],
        );
        push(
            watch_collection.clone(),
            &scope_params,
            &resource,
            &[WatchList],
        );
        push(
            format!("{watch_collection}/{{name}}"),
            &item_params,
            &resource,
            &[Watch],
        );
        if def.namespaced {
            let across = Target {
                id_scope: "",
                id_suffix: "ForAllNamespaces".to_owned(),
                ..resource.clone()
            };
            push(
                format!("{prefix}/{}", def.plural),
                &[PRETTY],
                &across,
                &[List],
            );
            push(
                format!("{prefix}/watch/{}", def.plural),
                &[PRETTY],
                &across,
                &[WatchList],
            );
        }
        for &sub in def.subresources {
            let facts = SubresourceFacts::of(def, sub);
            let schema = subresource_schema(def, sub);
            let connect = schema.is_none();
            let target = Target {
                // Connect options have no schema: their operations carry
                // no body and answer a string.
                schema: schema
                    .map(|schema| (schema.schema_name)().into_owned())
                    .unwrap_or_default(),
                gvk: gvk(facts.group, facts.version, facts.kind),
                id_suffix: capitalize(sub.name()),
                subresource: Some(sub.name()),
                ..resource.clone()
            };
            let ops: Vec<Op> = facts
                .verbs
                .iter()
                .map(|&verb| match verb {
                    "get" if connect => ConnectGet,
                    "create" if connect => ConnectPost,
                    "get" if sub == Subresource::Log => ReadLog,
                    "get" => Read,
                    "update" => Replace,
                    "patch" => Patch,
                    "create" => Create,
                    other => unreachable!("no operation for the subresource verb {other}"),
                })
                .collect();
            push(
                format!("{collection}/{{name}}/{}", sub.name()),
                &item_params,
                &target,
                &ops,
            );
        }
    }
    items
}

/// The `paths` object of the dialect.
fn paths(dialect: Dialect, group_versions: &[(&'static str, &'static str)]) -> Map<String, Value> {
    let mut paths = Map::new();
    for item in path_items(group_versions) {
        let mut path = Map::new();
        path.insert(
            "parameters".into(),
            item.params.iter().map(|p| parameter(dialect, p)).collect(),
        );
        for operation in &item.operations {
            path.insert(operation.method.into(), render(dialect, operation));
        }
        paths.insert(item.path, Value::Object(path));
    }
    paths
}

fn parameter(dialect: Dialect, param: &Param) -> Value {
    let mut value = json!({
        "name": param.name,
        "in": param.location,
        "description": param.description,
    });
    let schema = json!({"type": param.ty, "uniqueItems": true});
    match dialect {
        Dialect::V2 => {
            value["type"] = json!(param.ty);
            value["uniqueItems"] = json!(true);
        }
        Dialect::V3 => value["schema"] = schema,
    }
    if param.required {
        value["required"] = json!(true);
    }
    value
}

fn render(dialect: Dialect, operation: &Operation) -> Value {
    let mut value = json!({
        "description": operation.description,
        "operationId": operation.id,
        "tags": [operation.tag],
        "x-kubernetes-action": operation.action,
        "x-kubernetes-group-version-kind": operation.gvk,
    });
    let mut params: Vec<Value> = operation
        .params
        .iter()
        .map(|p| parameter(dialect, p))
        .collect();
    let (body_schema, body_types, body_required): (Option<&str>, &[&str], bool) =
        match &operation.body {
            None => (None, &["*/*"], false),
            Some(RequestBody::Object(name)) => (Some(name), &["*/*"], true),
            Some(RequestBody::Patch) => (Some(PATCH), PATCH_TYPES, true),
            Some(RequestBody::DeleteOptions) => (Some(DELETE_OPTIONS), &["*/*"], false),
        };
    let produces = operation.produces.media_types();
    match dialect {
        Dialect::V2 => {
            if let Some(name) = body_schema {
                params.insert(
                    0,
                    json!({
                        "name": "body",
                        "in": "body",
                        "required": body_required,
                        "schema": dialect.reference(name),
                    }),
                );
            }
            value["consumes"] = json!(body_types);
            value["produces"] = json!(produces);
            value["schemes"] = json!(["https"]);
            let mut responses: Map<String, Value> = operation
                .responses
                .iter()
                .map(|(code, description, schema)| {
                    (
                        (*code).to_owned(),
                        json!({"description": description, "schema": schema.render(dialect)}),
                    )
                })
                .collect();
            responses.insert("401".into(), json!({"description": "Unauthorized"}));
            value["responses"] = Value::Object(responses);
        }
        Dialect::V3 => {
            if let Some(name) = body_schema {
                let content: Map<String, Value> = body_types
                    .iter()
                    .map(|t| ((*t).to_owned(), json!({"schema": dialect.reference(name)})))
                    .collect();
                let mut body = json!({ "content": content });
                if body_required {
                    body["required"] = json!(true);
                }
                value["requestBody"] = body;
            }
            let mut responses: Map<String, Value> = operation
                .responses
                .iter()
                .map(|(code, description, schema)| {
                    let content: Map<String, Value> = produces
                        .iter()
                        .map(|t| ((*t).to_owned(), json!({"schema": schema.render(dialect)})))
                        .collect();
                    (
                        (*code).to_owned(),
                        json!({"description": description, "content": content}),
                    )
                })
                .collect();
            responses.insert("401".into(), json!({"description": "Unauthorized"}));
            value["responses"] = Value::Object(responses);
        }
    }
    if !params.is_empty() {
        value["parameters"] = Value::Array(params);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref" {
                        found.push(child.as_str().expect("a $ref is a string"));
                    } else {
                        refs(child, found);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|child| refs(child, found)),
            _ => {}
        }
    }

    fn check_refs_resolve(document: &Value, prefix: &str, definitions: &Value) {
        let mut found = Vec::new();
        refs(document, &mut found);
        assert!(!found.is_empty());
        for reference in found {
            let name = reference
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{reference} does not start with {prefix}"));
            assert!(definitions.get(name).is_some(), "{reference} unresolved");
        }
    }

    #[test]
    fn every_served_kind_has_a_schema() {
        for def in RESOURCES {
            kind_schema(def.group, def.version, def.kind);
            for &sub in def.subresources {
                subresource_schema(def, sub);
            }
        }
    }

    #[test]
    fn v3_documents_cover_every_group_version_and_resolve() {
        let index = v3_index();
        for (group, version) in group_versions() {
            let path = v3_path(group, version);
            let document = v3_document(&path).unwrap_or_else(|| panic!("{path}"));
            let url = index["paths"][&path]["serverRelativeURL"].as_str().unwrap();
            assert!(
                url.starts_with(&format!("/openapi/v3/{path}?hash=")),
                "{url}"
            );
            assert_eq!(document["openapi"], "3.0.0");
            check_refs_resolve(
                &document,
                "#/components/schemas/",
                &document["components"]["schemas"],
            );
            for def in RESOURCES
                .iter()
                .filter(|d| (d.group, d.version) == (group, version))
            {
                let name = (kind_schema(group, version, def.kind).schema_name)();
                let schemas = &document["components"]["schemas"];
                assert_eq!(
                    schemas[name.as_ref()]["x-kubernetes-group-version-kind"],
                    json!([gvk(group, version, def.kind)]),
                    "{name}"
                );
                assert_eq!(
                    schemas[format!("{name}List")]["x-kubernetes-group-version-kind"][0]["kind"],
                    format!("{}List", def.kind)
                );
            }
        }
        assert_eq!(
            index["paths"].as_object().unwrap().len(),
            group_versions().len()
        );
    }

    #[test]
    fn v3_refs_beside_descriptions_use_all_of() {
        let document = v3_document("api/v1").unwrap();
        let pod = &document["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodSpec"
        );
        assert!(pod["properties"]["spec"]["description"].is_string());
        assert!(pod.get("required").is_none(), "{}", pod["required"]);
        let runtime_class_name = &document["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]
            ["runtimeClassName"];
        assert_eq!(runtime_class_name["type"], "string");
    }

    #[test]
    fn v2_document_resolves_with_definitions() {
        let document = v2_document();
        assert_eq!(document["swagger"], "2.0");
        check_refs_resolve(&document, "#/definitions/", &document["definitions"]);
        let deployment = &document["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        // Descriptions stay beside the ref, as in Kubernetes' v2 document.
        assert_eq!(
            deployment["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let paths = document["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}"));
        assert!(
            paths.contains_key("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale")
        );
    }

    #[test]
    fn patch_operations_take_field_validation_for_their_kind() {
        // kubectl validates on the server when the PATCH operation of the
        // kind lists `fieldValidation`; otherwise it needs client-side
        // validation.
        for (group, version) in group_versions() {
            let document = v3_document(&v3_path(group, version)).unwrap();
            for def in RESOURCES
                .iter()
                .filter(|d| (d.group, d.version) == (group, version))
            {
                let collection = if def.namespaced {
                    format!(
                        "/{}/namespaces/{{namespace}}/{}",
                        v3_path(group, version),
                        def.plural
                    )
                } else {
                    format!("/{}/{}", v3_path(group, version), def.plural)
                };
                let patch = &document["paths"][format!("{collection}/{{name}}")]["patch"];
                assert_eq!(
                    patch["x-kubernetes-group-version-kind"],
                    gvk(group, version, def.kind)
                );
                assert_eq!(patch["x-kubernetes-action"], "patch");
                assert!(
                    patch["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
                    "{collection}"
                );
                assert!(
                    patch["requestBody"]["content"]
                        .get("application/strategic-merge-patch+json")
                        .is_some()
                );
                let list = &document["paths"][&collection]["get"];
                assert_eq!(list["x-kubernetes-action"], "list");
            }
        }
    }

    #[test]
    fn operation_ids_follow_kubernetes() {
        let document = v3_document("apis/apps/v1").unwrap();
        let paths = &document["paths"];
        for (path, method, id) in [
            (
                "/apis/apps/v1/namespaces/{namespace}/deployments",
                "get",
                "listAppsV1NamespacedDeployment",
            ),
            (
                "/apis/apps/v1/deployments",
                "get",
                "listAppsV1DeploymentForAllNamespaces",
            ),
            (
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
                "put",
                "replaceAppsV1NamespacedDeploymentScale",
            ),
        ] {
            assert_eq!(paths[path][method]["operationId"], id, "{path}");
        }
        let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"];
        assert_eq!(
            scale["x-kubernetes-group-version-kind"],
            json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})
        );
        // Tagged with the path's group-version, not the Scale's.
        assert_eq!(scale["tags"], json!(["apps_v1"]));
        let watch = &paths["/apis/apps/v1/watch/deployments"]["get"];
        assert_eq!(
            (&watch["operationId"], &watch["x-kubernetes-action"]),
            (
                &json!("watchAppsV1DeploymentListForAllNamespaces"),
                &json!("watchlist")
            )
        );
        let core = v3_document("api/v1").unwrap();
        assert_eq!(
            core["paths"]["/api/v1/namespaces/{name}/finalize"]["put"]["operationId"],
            "replaceCoreV1NamespaceFinalize"
        );
        assert_eq!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]["x-kubernetes-group-version-kind"]
                ["kind"],
            "Binding"
        );
        // pods/log answers text, as kube-apiserver's readCoreV1NamespacedPodLog.
        let log = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"];
        assert_eq!(log["operationId"], "readCoreV1NamespacedPodLog");
        assert_eq!(log["x-kubernetes-action"], "get");
        assert_eq!(
            log["responses"]["200"]["content"]["text/plain"]["schema"],
            json!({"type": "string"})
        );
        let params: Vec<&str> = log["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            params,
            [
                "container",
                "follow",
                "insecureSkipTLSVerifyBackend",
                "limitBytes",
                "previous",
                "sinceSeconds",
                "sinceTime",
                "tailLines",
                "timestamps"
            ]
        );
        let v2_log =
            &v2_document()["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"];
        assert_eq!(v2_log["produces"], json!(["text/plain"]));
        assert_eq!(
            v2_log["responses"]["200"]["schema"],
            json!({"type": "string"})
        );
        // pods/exec: connect operations, as kube-apiserver's.
        let exec = &v2_document()["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/exec"];
        for (method, id) in [
            ("get", "connectCoreV1GetNamespacedPodExec"),
            ("post", "connectCoreV1PostNamespacedPodExec"),
        ] {
            let operation = &exec[method];
            assert_eq!(operation["operationId"], id);
            assert_eq!(operation["x-kubernetes-action"], "connect");
            assert_eq!(
                operation["x-kubernetes-group-version-kind"],
                json!({"group": "", "kind": "PodExecOptions", "version": "v1"})
            );
            assert_eq!(operation["produces"], json!(["*/*"]));
            let params: Vec<&str> = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                params,
                ["command", "container", "stderr", "stdin", "stdout", "tty"]
            );
        }
        assert_eq!(
            exec["get"]["description"],
            "connect GET requests to exec of Pod"
        );
        assert_eq!(operation_prefix("discovery.k8s.io", "v1"), "DiscoveryV1");
        assert_eq!(operation_prefix("node.k8s.io", "v1"), "NodeV1");
        assert_eq!(tag("coordination.k8s.io", "v1"), "coordination_v1");
    }

    #[test]
    fn patch_extensions_follow_the_strategic_merge_metadata() {
        // Wherever the metadata table knows a field, both documents carry
        // it; a table still empty makes this check vacuous, not failing.
        let v3 = v3_document("api/v1").unwrap();
        for (schemas, label) in [
            (&v3["components"]["schemas"], "v3"),
            (&v2_document()["definitions"], "v2"),
        ] {
            for (name, definition) in schemas.as_object().unwrap() {
                let Some(properties) = definition["properties"].as_object() else {
                    continue;
                };
                for (field, property) in properties {
                    let meta = strategic::meta::field(name, field);
                    assert_eq!(
                        property
                            .get("x-kubernetes-patch-strategy")
                            .and_then(Value::as_str),
                        meta.and_then(|m| m.strategy),
                        "{label} {name}.{field}"
                    );
                    assert_eq!(
                        property
                            .get("x-kubernetes-patch-merge-key")
                            .and_then(Value::as_str),
                        meta.and_then(|m| m.merge_key),
                        "{label} {name}.{field}"
                    );
                }
            }
        }
    }

    /// The protobuf media types of the documents, which are not served.
    const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    const V3_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf";

    #[test]
    fn json_must_be_acceptable() {
        for (accept, expect) in [
            ("", true),
            ("application/json", true),
            ("*/*", true),
            ("application/json;q=0.5, application/yaml", true),
            (V2_PROTOBUF, false),
            (&format!("{V2_PROTOBUF}, application/json"), true),
            (&format!("{V3_PROTOBUF}, application/json;q=0"), false),
        ] {
            assert_eq!(accepts_json(accept), expect, "{accept}");
        }
    }
}
