//! Server-side printing: objects, lists and watch events as `meta.k8s.io`
//! Tables, with the columns and cells Kubernetes prints for each kind, so
//! `kubectl get` shows against this server what it shows against
//! kube-apiserver. As kube-apiserver, every column is computed (the wide
//! ones carry priority 1 and kubectl shows them only with `-o wide`), rows
//! carry the object as `includeObject` asks (PartialObjectMetadata by
//! default, which kubectl reads for namespaces and labels), and resources
//! without a printer get Name and Created At.
//!
//! Everything but [`watch_response`] is pure: ages are measured against the
//! `now` the caller passes.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;
use serde_json::{Map, Value, json};

use super::body::{self, ResponseFormat, TableVersion};
use super::error::ApiError;
use super::resources::ResourceDef;
use super::selector::LabelSelector;

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// The object's metadata as a `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses `includeObject`; an absent or empty value is `Metadata`. 400
    /// with kube-apiserver's words for anything else.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value.unwrap_or_default() {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(ApiError::BadRequest(format!(
                "Unable to convert to Table as requested: includeObject: Unsupported value: {other:?}: supported values: \"\", \"Metadata\", \"None\", \"Object\""
            ))),
        }
    }
}

/// How one request wants its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableOptions {
    /// The `meta.k8s.io` version asked for.
    pub version: TableVersion,
    /// What rows carry besides cells.
    pub include_object: IncludeObject,
}

/// The table a request asks for, if any: its `Accept` negotiated to a Table
/// (406 if nothing in it can be served), with `includeObject` from its
/// query.
pub fn requested(
    accept: Option<&HeaderValue>,
    include_object: Option<&str>,
) -> Result<Option<TableOptions>, ApiError> {
    match body::negotiate(accept)? {
        ResponseFormat::Table(version) => Ok(Some(TableOptions {
            version,
            include_object: IncludeObject::parse(include_object)?,
        })),
        ResponseFormat::Json | ResponseFormat::Yaml => Ok(None),
    }
}

/// The Table of one object: one row, and `metadata.resourceVersion` the
/// object's.
pub fn object_table(
    def: &ResourceDef,
    object: &Value,
    options: TableOptions,
    now: Timestamp,
) -> Value {
    one_row(def, object, options, Headers::Include, now)
}

fn one_row(
    def: &ResourceDef,
    object: &Value,
    options: TableOptions,
    headers: Headers,
    now: Timestamp,
) -> Value {
    table(
        def,
        std::slice::from_ref(object),
        resource_version_of(object),
        options,
        headers,
        now,
    )
}

/// `{"resourceVersion": ...}` of an object (`{}` if it has none).
fn resource_version_of(object: &Value) -> Value {
    let mut metadata = Map::new();
    if let Some(rv) = object.pointer("/metadata/resourceVersion") {
        metadata.insert("resourceVersion".into(), rv.clone());
    }
    Value::Object(metadata)
}

/// The Table of a list page: a row per item, and the list's `metadata`
/// (resourceVersion, continue) as is.
pub fn list_table(
    def: &ResourceDef,
    items: &[Value],
    metadata: Value,
    options: TableOptions,
    now: Timestamp,
) -> Value {
    table(def, items, metadata, options, Headers::Include, now)
}

/// A 200 response of a Table, with the content type that names its version.
pub fn respond(table: &Value, options: TableOptions) -> Response {
    let body = Bytes::from(serde_json::to_vec(table).expect("a JSON value serializes"));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            ResponseFormat::Table(options.version).content_type(),
        )],
        body,
    )
        .into_response()
}

/// Turns a JSON watch response into one of Table events: each ADDED,
/// MODIFIED and DELETED object becomes a Table of one row (only the first
/// with column definitions, as kube-apiserver sends them), BOOKMARKs a
/// Table of no rows with the bookmark's resourceVersion; ERROR Statuses
/// pass unchanged. Errors answered before the stream pass unchanged too.
pub fn watch_response(
    response: Response,
    def: &'static ResourceDef,
    options: TableOptions,
) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let mut events = WatchTables::new(def, options);
    let stream = body
        .into_data_stream()
        .map(move |chunk| chunk.map(|bytes| events.rewrite(&bytes, Timestamp::now())))
        .filter(|chunk| futures::future::ready(!chunk.as_ref().is_ok_and(Bytes::is_empty)));
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Rewrites a newline-delimited JSON watch stream into Table events.
pub struct WatchTables {
    def: &'static ResourceDef,
    options: TableOptions,
    headers_sent: bool,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
}

impl WatchTables {
    /// A rewriter for one watch of `def`.
    pub fn new(def: &'static ResourceDef, options: TableOptions) -> Self {
        Self {
            def,
            options,
            headers_sent: false,
            partial: Vec::new(),
        }
    }

    /// The rewritten complete lines of `chunk` (after what an earlier chunk
    /// left unfinished); an unfinished last line waits for the next chunk.
    pub fn rewrite(&mut self, chunk: &[u8], now: Timestamp) -> Bytes {
        self.partial.extend_from_slice(chunk);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Bytes::new();
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        let mut out = Vec::with_capacity(complete.len());
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            out.extend_from_slice(&self.event(line, now));
            out.push(b'\n');
        }
        Bytes::from(out)
    }

    /// One event, rewritten (or as it came if it is not a watch event).
    fn event(&mut self, line: &[u8], now: Timestamp) -> Vec<u8> {
        let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(line) else {
            return line.to_vec();
        };
        let object = event.remove("object").unwrap_or(Value::Null);
        let converted = match event.get("type").and_then(Value::as_str) {
            Some("ERROR") => return line.to_vec(),
            Some("BOOKMARK") => table(
                self.def,
                &[],
                resource_version_of(&object),
                self.options,
                Headers::Omit,
                now,
            ),
            _ => {
                let headers = if self.headers_sent {
                    Headers::Omit
                } else {
                    Headers::Include
                };
                self.headers_sent = true;
                one_row(self.def, &object, self.options, headers, now)
            }
        };
        event.insert("object".into(), converted);
        serde_json::to_vec(&event).unwrap_or_else(|_| line.to_vec())
    }
}

/// Whether a Table carries its column definitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Headers {
    Include,
    Omit,
}

fn table(
    def: &ResourceDef,
    items: &[Value],
    metadata: Value,
    options: TableOptions,
    headers: Headers,
    now: Timestamp,
) -> Value {
    let printer = Printer::of(def);
    let columns: Vec<Value> = match headers {
        Headers::Include => printer.columns().iter().map(Column::to_json).collect(),
        Headers::Omit => Vec::new(),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|item| row(printer, item, options, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": options.version.api_version(),
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn row(printer: Printer, object: &Value, options: TableOptions, now: Timestamp) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(printer.cells(object, now)));
    if let Some(conditions) = printer.conditions(object) {
        row.insert("conditions".into(), conditions);
    }
    match options.include_object {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
            row.insert(
                "object".into(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": options.version.api_version(),
                    "metadata": metadata,
                }),
            );
        }
        IncludeObject::Object => {
            row.insert("object".into(), object.clone());
        }
    }
    Value::Object(row)
}

/// One column of a Table.
struct Column {
    name: &'static str,
    /// The OpenAPI type of the cells: `string`, `integer`, `date`.
    kind: &'static str,
    /// `name` for the column that holds the object's name.
    format: &'static str,
    description: &'static str,
    /// 0 for default output, 1 for `-o wide` only.
    priority: u8,
}

impl Column {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A column of strings shown by default.
const fn text(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 0,
    }
}

/// A column of integers shown by default.
const fn integer(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "integer",
        format: "",
        description,
        priority: 0,
    }
}

/// A column of strings shown with `-o wide` only.
const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name of the object, unique among objects of its kind in its namespace (or in the cluster, for cluster-scoped kinds).",
    priority: 0,
};
const AGE: Column = text(
    "Age",
    "Time since the object was created (metadata.creationTimestamp).",
);
const CONTAINERS: Column = wide("Containers", "Names of each container in the template.");
const IMAGES: Column = wide(
    "Images",
    "Images referenced by each container in the template.",
);

const POD_COLUMNS: &[Column] = &[
    NAME,
    text(
        "Ready",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    text(
        "Status",
        "The aggregate status of the containers in this pod.",
    ),
    text(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "The pod's first IP address (status.podIPs)."),
    wide("Node", "The node the pod is bound to (spec.nodeName)."),
    wide(
        "Nominated Node",
        "The node the scheduler nominated for the pod after preempting others (status.nominatedNodeName).",
    ),
    wide(
        "Readiness Gates",
        "How many of the pod's readiness gates (spec.readinessGates) have their condition true.",
    ),
];

const NODE_COLUMNS: &[Column] = &[
    NAME,
    text("Status", "The status of the node"),
    text("Roles", "The roles of the node"),
    AGE,
    text("Version", "The kubelet version the node reports."),
    wide("Internal-IP", "The node's first InternalIP address."),
    wide("External-IP", "The node's first ExternalIP address."),
    wide("OS-Image", "The OS image the node reports."),
    wide("Kernel-Version", "The kernel version the node reports."),
    wide(
        "Container-Runtime",
        "The container runtime and version the node reports.",
    ),
];

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    text("Ready", "Number of the pod with ready state"),
    text(
        "Up-to-date",
        "Total number of pods targeted by this deployment that have the desired template spec (status.updatedReplicas).",
    ),
    text(
        "Available",
        "Total number of pods targeted by this deployment that have been ready for at least minReadySeconds (status.availableReplicas).",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(
        "Selector",
        "The label selector of the deployment's pods (spec.selector).",
    ),
];

const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    integer(
        "Desired",
        "The number of pods the replica set wants (spec.replicas).",
    ),
    integer(
        "Current",
        "The number of pods the replica set has (status.replicas).",
    ),
    integer(
        "Ready",
        "The number of the replica set's pods that are ready (status.readyReplicas).",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(
        "Selector",
        "The label selector of the replica set's pods (spec.selector).",
    ),
];

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    text(
        "Type",
        "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName.",
    ),
    text(
        "Cluster-IP",
        "The service's first cluster IP (spec.clusterIPs).",
    ),
    text(
        "External-IP",
        "The addresses the service is reachable at from outside the cluster.",
    ),
    text(
        "Port(s)",
        "The ports the service exposes, with node ports where allocated.",
    ),
    AGE,
    wide(
        "Selector",
        "The labels of the pods the service routes to (spec.selector).",
    ),
];

const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    text(
        "Endpoints",
        "The ready addresses and ports of the endpoints (subsets).",
    ),
    AGE,
];

const NAMESPACE_COLUMNS: &[Column] = &[NAME, text("Status", "The status of the namespace"), AGE];

const EVENT_COLUMNS: &[Column] = &[
    text(
        "Last Seen",
        "Time since the event was last observed (lastTimestamp).",
    ),
    text("Type", "The event's type: Normal or Warning."),
    text("Reason", "Why the event happened, in one word (reason)."),
    text(
        "Object",
        "The object the event is about, as kind/name (involvedObject).",
    ),
    wide(
        "Subobject",
        "The part of the object the event is about (involvedObject.fieldPath).",
    ),
    wide(
        "Source",
        "The component (and host) that reported the event.",
    ),
    text("Message", "What happened, for humans (message)."),
    wide(
        "First Seen",
        "Time since the event was first observed (firstTimestamp).",
    ),
    wide("Count", "How many times the event has occurred."),
    Column {
        priority: 1,
        ..NAME
    },
];

const CONFIG_MAP_COLUMNS: &[Column] = &[
    NAME,
    text("Data", "The number of keys in data and binaryData."),
    AGE,
];

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    text("Type", "The secret's type (type)."),
    text("Data", "The number of keys in data."),
    AGE,
];

const RUNTIME_CLASS_COLUMNS: &[Column] = &[
    NAME,
    text(
        "Handler",
        "The container runtime handler that runs pods of this class.",
    ),
    AGE,
];

const LEASE_COLUMNS: &[Column] = &[
    NAME,
    text(
        "Holder",
        "The identity of the lease's holder (spec.holderIdentity).",
    ),
    AGE,
];

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    text("AddressType", "The type of the slice's addresses."),
    text("Ports", "The ports of the slice."),
    text("Endpoints", "The addresses of the slice's endpoints."),
    AGE,
];

const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        kind: "date",
        format: "",
        description: "When the object was created (metadata.creationTimestamp).",
        priority: 0,
    },
];

/// How objects of one resource print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Printer {
    Pod,
    Node,
    Deployment,
    ReplicaSet,
    Service,
    Endpoints,
    Namespace,
    Event,
    ConfigMap,
    Secret,
    RuntimeClass,
    Lease,
    EndpointSlice,
    /// Name and Created At, as kube-apiserver's default table.
    Default,
}

impl Printer {
    fn of(def: &ResourceDef) -> Self {
        match (def.group, def.plural) {
            ("", "pods") => Printer::Pod,
            ("", "nodes") => Printer::Node,
            ("apps", "deployments") => Printer::Deployment,
            ("apps", "replicasets") => Printer::ReplicaSet,
            ("", "services") => Printer::Service,
            ("", "endpoints") => Printer::Endpoints,
            ("", "namespaces") => Printer::Namespace,
            ("", "events") => Printer::Event,
            ("", "configmaps") => Printer::ConfigMap,
            ("", "secrets") => Printer::Secret,
            ("node.k8s.io", "runtimeclasses") => Printer::RuntimeClass,
            ("coordination.k8s.io", "leases") => Printer::Lease,
            ("discovery.k8s.io", "endpointslices") => Printer::EndpointSlice,
            _ => Printer::Default,
        }
    }

    fn columns(self) -> &'static [Column] {
        match self {
            Printer::Pod => POD_COLUMNS,
            Printer::Node => NODE_COLUMNS,
            Printer::Deployment => DEPLOYMENT_COLUMNS,
            Printer::ReplicaSet => REPLICA_SET_COLUMNS,
            Printer::Service => SERVICE_COLUMNS,
            Printer::Endpoints => ENDPOINTS_COLUMNS,
            Printer::Namespace => NAMESPACE_COLUMNS,
            Printer::Event => EVENT_COLUMNS,
            Printer::ConfigMap => CONFIG_MAP_COLUMNS,
            Printer::Secret => SECRET_COLUMNS,
            Printer::RuntimeClass => RUNTIME_CLASS_COLUMNS,
            Printer::Lease => LEASE_COLUMNS,
            Printer::EndpointSlice => ENDPOINT_SLICE_COLUMNS,
            Printer::Default => DEFAULT_COLUMNS,
        }
    }

    /// The cells of one object, one per column, wide ones included.
    fn cells(self, object: &Value, now: Timestamp) -> Vec<Value> {
        let name = || json!(text_at(object, &["metadata", "name"]));
        let age = || json!(age(object, now));
        match self {
            Printer::Pod => pod_cells(object, now),
            Printer::Node => node_cells(object, now),
            Printer::Deployment => {
                let (containers, images) = containers_and_images(items_at(
                    object,
                    &["spec", "template", "spec", "containers"],
                ));
                let selector = match at(object, &["spec", "selector"]) {
                    None | Some(Value::Null) => String::new(),
                    Some(selector) => {
                        label_selector(selector).unwrap_or_else(|| "<invalid>".into())
                    }
                };
                vec![
                    name(),
                    json!(format!(
                        "{}/{}",
                        int_at(object, &["status", "readyReplicas"]),
                        int_or(object, &["spec", "replicas"], 1)
                    )),
                    json!(int_at(object, &["status", "updatedReplicas"])),
                    json!(int_at(object, &["status", "availableReplicas"])),
                    age(),
                    json!(containers),
                    json!(images),
                    json!(selector),
                ]
            }
            Printer::ReplicaSet => {
                let (containers, images) = containers_and_images(items_at(
                    object,
                    &["spec", "template", "spec", "containers"],
                ));
                let selector = match at(object, &["spec", "selector"]) {
                    None | Some(Value::Null) => "<none>".to_owned(),
                    Some(selector) => match label_selector(selector) {
                        Some(text) if text.is_empty() => "<none>".to_owned(),
                        Some(text) => text,
                        None => "<error>".to_owned(),
                    },
                };
                vec![
                    name(),
                    json!(int_or(object, &["spec", "replicas"], 1)),
                    json!(int_at(object, &["status", "replicas"])),
                    json!(int_at(object, &["status", "readyReplicas"])),
                    age(),
                    json!(containers),
                    json!(images),
                    json!(selector),
                ]
            }
            Printer::Service => service_cells(object, now),
            Printer::Endpoints => vec![name(), json!(endpoints(object)), age()],
            Printer::Namespace => vec![name(), json!(text_at(object, &["status", "phase"])), age()],
            Printer::Event => event_cells(object, now),
            Printer::ConfigMap => {
                let count = |field: &str| {
                    at(object, &[field])
                        .and_then(Value::as_object)
                        .map_or(0, Map::len)
                };
                vec![name(), json!(count("data") + count("binaryData")), age()]
            }
            Printer::Secret => vec![
                name(),
                json!(text_at(object, &["type"])),
                json!(
                    at(object, &["data"])
                        .and_then(Value::as_object)
                        .map_or(0, Map::len)
                ),
                age(),
            ],
            Printer::RuntimeClass => vec![name(), json!(text_at(object, &["handler"])), age()],
            Printer::Lease => vec![
                name(),
                json!(text_at(object, &["spec", "holderIdentity"])),
                age(),
            ],
            Printer::EndpointSlice => {
                let ports = items_at(object, &["ports"]).iter().map(|port| {
                    match (
                        at(port, &["port"]).and_then(Value::as_i64),
                        at(port, &["name"]).and_then(Value::as_str),
                    ) {
                        (Some(number), _) => number.to_string(),
                        (None, Some(name)) => name.to_owned(),
                        (None, None) => "*".to_owned(),
                    }
                });
                let addresses = items_at(object, &["endpoints"])
                    .iter()
                    .flat_map(|endpoint| items_at(endpoint, &["addresses"]))
                    .map(|address| address.as_str().unwrap_or_default().to_owned());
                vec![
                    name(),
                    json!(text_at(object, &["addressType"])),
                    json!(first_three(ports, "<unset>")),
                    json!(first_three(addresses, "<unset>")),
                    age(),
                ]
            }
            Printer::Default => {
                let created = timestamp_at(object, &["metadata", "creationTimestamp"]).map_or_else(
                    || "0001-01-01T00:00:00Z".to_owned(),
                    |at| at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                );
                vec![name(), json!(created)]
            }
        }
    }

    /// Row conditions: pods that ran to completion are marked Completed.
    fn conditions(self, object: &Value) -> Option<Value> {
        if self != Printer::Pod {
            return None;
        }
        let (reason, message) = match text_at(object, &["status", "phase"]) {
            "Succeeded" => ("Succeeded", "The pod has completed successfully."),
            "Failed" => ("Failed", "The pod failed."),
            _ => return None,
        };
        Some(json!([{
            "type": "Completed",
            "status": "True",
            "reason": reason,
            "message": message,
        }]))
    }
}

/// The cells of a pod: Name, Ready, Status, Restarts, Age, then IP, Node,
/// Nominated Node, Readiness Gates.
fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let summary = PodSummary::of(pod, now);
    let or_none = |text: &str| {
        if text.is_empty() {
            "<none>".to_owned()
        } else {
            text.to_owned()
        }
    };
    let ip = items_at(pod, &["status", "podIPs"])
        .first()
        .map(|ip| text_at(ip, &["ip"]))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| text_at(pod, &["status", "podIP"]));
    let gates = items_at(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let conditions = items_at(pod, &["status", "conditions"]);
        let passing = gates
            .iter()
            .filter(|gate| {
                let wanted = text_at(gate, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| text_at(c, &["type"]) == wanted)
                    .is_some_and(|c| text_at(c, &["status"]) == "True")
            })
            .count();
        format!("{passing}/{}", gates.len())
    };
    vec![
        json!(text_at(pod, &["metadata", "name"])),
        json!(format!("{}/{}", summary.ready, summary.total)),
        json!(summary.status),
        json!(summary.restarts),
        json!(age(pod, now)),
        json!(or_none(ip)),
        json!(or_none(text_at(pod, &["spec", "nodeName"]))),
        json!(or_none(text_at(pod, &["status", "nominatedNodeName"]))),
        json!(readiness_gates),
    ]
}

/// What `kubectl get pods` says of a pod's containers.
#[derive(Debug, PartialEq, Eq)]
struct PodSummary {
    ready: usize,
    /// Containers plus sidecars (init containers that restart always).
    total: usize,
    /// Kubernetes' status reason: the phase, or what a container waits
    /// for or ended with (`CrashLoopBackOff`, `Init:0/1`, `Completed`...),
    /// `Terminating` while deleted.
    status: String,
    /// `3`, or `3 (5m ago)` when the last restart's end is known.
    restarts: String,
}

impl PodSummary {
    fn of(pod: &Value, now: Timestamp) -> Self {
        let init_specs = items_at(pod, &["spec", "initContainers"]);
        let is_sidecar = |name: &str| {
            init_specs.iter().any(|spec| {
                text_at(spec, &["name"]) == name && text_at(spec, &["restartPolicy"]) == "Always"
            })
        };
        let total = items_at(pod, &["spec", "containers"]).len()
            + init_specs
                .iter()
                .filter(|spec| text_at(spec, &["restartPolicy"]) == "Always")
                .count();
        let phase = text_at(pod, &["status", "phase"]);
        let conditions = items_at(pod, &["status", "conditions"]);
        let condition_true = |kind: &str| {
            conditions
                .iter()
                .find(|c| text_at(c, &["type"]) == kind)
                .is_some_and(|c| text_at(c, &["status"]) == "True")
        };
        let mut status = match text_at(pod, &["status", "reason"]) {
            "" => phase.to_owned(),
            reason => reason.to_owned(),
        };
        if conditions.iter().any(|c| {
            text_at(c, &["type"]) == "PodScheduled" && text_at(c, &["reason"]) == "SchedulingGated"
        }) {
            status = "SchedulingGated".to_owned();
        }

        let mut ready = 0;
        let mut restarts = 0;
        let mut last_restart = None;
        let mut sidecar_restarts = 0;
        let mut sidecar_last_restart = None;
        let mut initializing = false;
        for (index, container) in items_at(pod, &["status", "initContainerStatuses"])
            .iter()
            .enumerate()
        {
            let state = ContainerState::of(container);
            restarts += state.restarts;
            latest(&mut last_restart, state.last_finished);
            let sidecar = is_sidecar(text_at(container, &["name"]));
            if sidecar {
                sidecar_restarts += state.restarts;
                latest(&mut sidecar_last_restart, state.last_finished);
            }
            if state.terminated.is_some_and(|t| t.exit_code == 0) {
                continue;
            }
            if sidecar && at(container, &["started"]).and_then(Value::as_bool) == Some(true) {
                if state.ready {
                    ready += 1;
                }
                continue;
            }
            status = match (&state.terminated, state.waiting) {
                (Some(terminated), _) => format!("Init:{}", terminated.describe()),
                (None, Some(reason)) if !reason.is_empty() && reason != "PodInitializing" => {
                    format!("Init:{reason}")
                }
                _ => format!("Init:{index}/{}", init_specs.len()),
            };
            initializing = true;
            break;
        }

        if !initializing || condition_true("Initialized") {
            restarts = sidecar_restarts;
            last_restart = sidecar_last_restart;
            let mut has_running = false;
            // In reverse, so the first container with something to say wins.
            for container in items_at(pod, &["status", "containerStatuses"]).iter().rev() {
                let state = ContainerState::of(container);
                restarts += state.restarts;
                latest(&mut last_restart, state.last_finished);
                match (state.waiting, &state.terminated) {
                    (Some(reason), _) if !reason.is_empty() => status = reason.to_owned(),
                    (_, Some(terminated)) => status = terminated.describe(),
                    _ if state.ready && state.running => {
                        has_running = true;
                        ready += 1;
                    }
                    _ => {}
                }
            }
            if status == "Completed" && has_running {
                status = if condition_true("Ready") {
                    "Running"
                } else {
                    "NotReady"
                }
                .to_owned();
            }
        }

        let deleting = at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null());
        if deleting && text_at(pod, &["status", "reason"]) == "NodeLost" {
            status = "Unknown".to_owned();
        } else if deleting && !matches!(phase, "Failed" | "Succeeded") {
            status = "Terminating".to_owned();
        }

        let restarts = match last_restart {
            Some(at) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(at), now)),
            _ => restarts.to_string(),
        };
        Self {
            ready,
            total,
            status,
            restarts,
        }
    }
}

/// Moves `latest` to `candidate` if that is later.
fn latest(latest: &mut Option<Timestamp>, candidate: Option<Timestamp>) {
    if let Some(candidate) = candidate
        && latest.is_none_or(|current| current < candidate)
    {
        *latest = Some(candidate);
    }
}

/// What the printer reads of one container status.
struct ContainerState<'a> {
    restarts: i64,
    ready: bool,
    running: bool,
    /// `state.waiting.reason` ("" if the container waits with no reason).
    waiting: Option<&'a str>,
    terminated: Option<Terminated<'a>>,
    /// `lastState.terminated.finishedAt`.
    last_finished: Option<Timestamp>,
}

#[derive(Clone, Copy)]
struct Terminated<'a> {
    reason: &'a str,
    exit_code: i64,
    signal: i64,
}

impl Terminated<'_> {
    /// The reason, else `Signal:9` or `ExitCode:1`.
    fn describe(&self) -> String {
        if !self.reason.is_empty() {
            self.reason.to_owned()
        } else if self.signal != 0 {
            format!("Signal:{}", self.signal)
        } else {
            format!("ExitCode:{}", self.exit_code)
        }
    }
}

impl<'a> ContainerState<'a> {
    fn of(status: &'a Value) -> Self {
        let present = |path: &[&str]| at(status, path).is_some_and(|v| !v.is_null());
        let terminated = at(status, &["state", "terminated"])
            .filter(|t| !t.is_null())
            .map(|t| Terminated {
                reason: text_at(t, &["reason"]),
                exit_code: int_at(t, &["exitCode"]),
                signal: int_at(t, &["signal"]),
            });
        Self {
            restarts: int_at(status, &["restartCount"]),
            ready: at(status, &["ready"]).and_then(Value::as_bool) == Some(true),
            running: present(&["state", "running"]),
            waiting: present(&["state", "waiting"])
                .then(|| text_at(status, &["state", "waiting", "reason"])),
            terminated,
            last_finished: timestamp_at(status, &["lastState", "terminated", "finishedAt"]),
        }
    }
}

/// The cells of a node: Name, Status, Roles, Age, Version, then
/// Internal-IP, External-IP, OS-Image, Kernel-Version, Container-Runtime.
fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let mut status = match items_at(node, &["status", "conditions"])
        .iter()
        .rfind(|c| text_at(c, &["type"]) == "Ready")
    {
        Some(ready) if text_at(ready, &["status"]) == "True" => "Ready".to_owned(),
        Some(_) => "NotReady".to_owned(),
        None => "Unknown".to_owned(),
    };
    if at(node, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_owned());
                }
            } else if key == "kubernetes.io/role"
                && let Some(role) = value.as_str().filter(|r| !r.is_empty())
            {
                roles.insert(role.to_owned());
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |kind: &str| {
        items_at(node, &["status", "addresses"])
            .iter()
            .find(|a| text_at(a, &["type"]) == kind)
            .map_or("<none>", |a| text_at(a, &["address"]))
            .to_owned()
    };
    let info = |field: &str| match text_at(node, &["status", "nodeInfo", field]) {
        "" => "<unknown>".to_owned(),
        value => value.to_owned(),
    };
    vec![
        json!(text_at(node, &["metadata", "name"])),
        json!(status),
        json!(roles),
        json!(age(node, now)),
        json!(text_at(node, &["status", "nodeInfo", "kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// The cells of a service: Name, Type, Cluster-IP, External-IP, Port(s),
/// Age, then Selector.
fn service_cells(service: &Value, now: Timestamp) -> Vec<Value> {
    let kind = match text_at(service, &["spec", "type"]) {
        "" => "ClusterIP",
        kind => kind,
    };
    let cluster_ip = items_at(service, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| Some(text_at(service, &["spec", "clusterIP"])))
        .filter(|ip| !ip.is_empty())
        .unwrap_or("<none>");
    let external_ips: Vec<&str> = items_at(service, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match kind {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = items_at(service, &["status", "loadBalancer", "ingress"])
                .iter()
                .map(|i| match text_at(i, &["ip"]) {
                    "" => text_at(i, &["hostname"]),
                    ip => ip,
                })
                .filter(|a| !a.is_empty())
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external_ips).collect();
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text_at(service, &["spec", "externalName"]).to_owned(),
        _ => "<unknown>".to_owned(),
    };
    let ports: Vec<String> = items_at(service, &["spec", "ports"])
        .iter()
        .map(|port| {
            let protocol = match text_at(port, &["protocol"]) {
                "" => "TCP",
                protocol => protocol,
            };
            match int_at(port, &["nodePort"]) {
                0 => format!("{}/{protocol}", int_at(port, &["port"])),
                node_port => format!("{}:{node_port}/{protocol}", int_at(port, &["port"])),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    };
    vec![
        json!(text_at(service, &["metadata", "name"])),
        json!(kind),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        json!(age(service, now)),
        json!(format_labels(at(service, &["spec", "selector"]))),
    ]
}

/// The Endpoints cell: the first three `ip:port` (or bare IPs for subsets
/// without ports), then `+ N more...`; `<none>` without subsets.
fn endpoints(object: &Value) -> String {
    let subsets = items_at(object, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut shown = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses: Vec<&str> = items_at(subset, &["addresses"])
            .iter()
            .map(|a| text_at(a, &["ip"]))
            .collect();
        let ports = items_at(subset, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            shown.extend(addresses.iter().map(|ip| ip.to_string()));
            continue;
        }
        for port in ports {
            count += addresses.len();
            let port = int_at(port, &["port"]);
            shown.extend(addresses.iter().map(|ip| {
                if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                }
            }));
        }
    }
    shown.truncate(3);
    if count > 3 {
        format!("{} + {} more...", shown.join(","), count - 3)
    } else {
        shown.join(",")
    }
}

/// The first three of `values` joined by commas, then `+ N more...`;
/// `empty` if there are none.
fn first_three(values: impl Iterator<Item = String>, empty: &str) -> String {
    let values: Vec<String> = values.collect();
    match values.len() {
        0 => empty.to_owned(),
        1..=3 => values.join(","),
        n => format!("{} + {} more...", values[..3].join(","), n - 3),
    }
}

/// The cells of an event: Last Seen, Type, Reason, Object, then Subobject
/// and Source (wide), Message, then First Seen, Count and Name (wide).
fn event_cells(event: &Value, now: Timestamp) -> Vec<Value> {
    let first_seen = match timestamp_at(event, &["firstTimestamp"]) {
        Some(first) => since(Some(first), now),
        None => since(timestamp_at(event, &["eventTime"]), now),
    };
    let mut last_seen = match timestamp_at(event, &["lastTimestamp"]) {
        Some(last) => since(Some(last), now),
        None => first_seen.clone(),
    };
    let mut count = int_at(event, &["count"]);
    if let Some(series) = at(event, &["series"]).filter(|s| s.is_object()) {
        last_seen = since(timestamp_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = text_at(event, &["involvedObject", "kind"]).to_lowercase();
    let object = match text_at(event, &["involvedObject", "name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let first_non_empty = |a: &str, b: &str| if a.is_empty() { b } else { a }.to_owned();
    let component = first_non_empty(
        text_at(event, &["source", "component"]),
        text_at(event, &["reportingComponent"]),
    );
    let host = first_non_empty(
        text_at(event, &["source", "host"]),
        text_at(event, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last_seen),
        json!(text_at(event, &["type"])),
        json!(text_at(event, &["reason"])),
        json!(object),
        json!(text_at(event, &["involvedObject", "fieldPath"])),
        json!(source),
        json!(text_at(event, &["message"]).trim()),
        json!(first_seen),
        json!(count),
        json!(text_at(event, &["metadata", "name"])),
    ]
}

/// Container names and images, each joined by commas.
fn containers_and_images(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| text_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// A `metav1.LabelSelector` as selector text (`app=web,tier in (a,b)`), or
/// `None` if it is not a valid selector.
fn label_selector(selector: &Value) -> Option<String> {
    let selector: MetaLabelSelector = serde_json::from_value(selector.clone()).ok()?;
    LabelSelector::from_k8s(&selector)
        .ok()
        .map(|s| s.to_string())
}

/// A label map as `k=v` pairs sorted by key, or `<none>`.
fn format_labels(labels: Option<&Value>) -> String {
    let pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        "<none>".to_owned()
    } else {
        // serde_json's map iterates in key order unless it preserves input
        // order; sort to be sure.
        let mut pairs = pairs;
        pairs.sort();
        pairs.join(",")
    }
}

/// The value at `path`, if present.
fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// The string at `path`, "" if absent or not a string.
fn text_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `path`, 0 if absent.
fn int_at(value: &Value, path: &[&str]) -> i64 {
    int_or(value, path, 0)
}

/// The integer at `path`, or `default` if absent.
fn int_or(value: &Value, path: &[&str], default: i64) -> i64 {
    at(value, path).and_then(Value::as_i64).unwrap_or(default)
}

/// The array at `path`, empty if absent.
fn items_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The RFC 3339 time at `path`, if set and valid.
fn timestamp_at(value: &Value, path: &[&str]) -> Option<Timestamp> {
    text_at(value, path).parse().ok()
}

/// The object's age, `<unknown>` without a creation time.
fn age(object: &Value, now: Timestamp) -> String {
    since(
        timestamp_at(object, &["metadata", "creationTimestamp"]),
        now,
    )
}

/// The time from `then` to `now` as [`human_duration`], `<unknown>` if
/// there is no `then`.
fn since(then: Option<Timestamp>, now: Timestamp) -> String {
    then.map_or_else(
        || "<unknown>".to_owned(),
        |then| human_duration(now.duration_since(then)),
    )
}

/// A duration as Kubernetes' `duration.HumanDuration` prints ages: two or
/// three significant figures (`45s`, `5m10s`, `3h`, `2d5h`, `400d`,
/// `2y3d`), `0s` up to a second in the future, `<invalid>` beyond.
pub fn human_duration(duration: SignedDuration) -> String {
    let seconds = duration.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::RESOURCES;

    const NOW: &str = "2026-01-10T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    /// The time `seconds` before [`NOW`], as the API writes it.
    fn ago(seconds: i64) -> String {
        (now() - SignedDuration::from_secs(seconds)).to_string()
    }

    fn def(plural: &str) -> &'static ResourceDef {
        RESOURCES.iter().find(|d| d.plural == plural).unwrap()
    }

    /// `object` of `plural` prints as `expected`, one cell per column.
    fn check(plural: &str, object: Value, expected: Value) {
        let printer = Printer::of(def(plural));
        let cells = printer.cells(&object, now());
        assert_eq!(
            cells.len(),
            printer.columns().len(),
            "{plural}: a cell per column"
        );
        assert_eq!(Value::Array(cells), expected, "{plural}: {object}");
    }

    /// The Ready, Status and Restarts cells of a pod.
    fn check_pod(pod: Value, ready: &str, status: &str, restarts: &str) {
        let cells = pod_cells(&pod, now());
        assert_eq!(
            (cells[1].as_str(), cells[2].as_str(), cells[3].as_str()),
            (Some(ready), Some(status), Some(restarts)),
            "{pod}"
        );
    }

    #[test]
    fn ages_read_like_kubernetes_human_duration() {
        let cases: &[(i64, &str)] = &[
            (-3, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (310, "5m10s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60 + 9, "3h5m"),
            (8 * 3600 + 59 * 60, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            ((2 * 24 + 5) * 3600, "2d5h"),
            (8 * 24 * 3600, "8d"),
            (400 * 24 * 3600, "400d"),
            (730 * 24 * 3600, "2y"),
            (733 * 24 * 3600, "2y3d"),
            (8 * 365 * 24 * 3600, "8y"),
            (10 * 365 * 24 * 3600 + 99, "10y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(
                human_duration(SignedDuration::from_secs(*seconds)),
                *expected,
                "{seconds}s"
            );
        }
        // Fractions are dropped, towards zero, as Go's int(d.Seconds()).
        assert_eq!(human_duration(SignedDuration::from_millis(1900)), "1s");
        assert_eq!(human_duration(SignedDuration::from_millis(-1900)), "0s");
        assert_eq!(since(None, now()), "<unknown>");
        assert_eq!(age(&json!({"metadata": {}}), now()), "<unknown>");
        assert_eq!(
            age(&json!({"metadata": {"creationTimestamp": ago(90)}}), now()),
            "90s"
        );
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(45)},
            "spec": spec,
            "status": status,
        })
    }

    fn one() -> Value {
        json!({"containers": [{"name": "app", "image": "app:1"}]})
    }

    fn two() -> Value {
        json!({"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]})
    }

    #[test]
    fn pod_rows_with_all_columns() {
        check(
            "pods",
            pod(one(), json!({"phase": "Pending"})),
            json!([
                "web", "0/1", "Pending", "0", "45s", "<none>", "<none>", "<none>", "<none>"
            ]),
        );
        check(
            "pods",
            pod(
                json!({
                    "nodeName": "n1",
                    "containers": [{"name": "app"}],
                    "readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}],
                }),
                json!({
                    "phase": "Running",
                    "podIP": "10.0.0.8",
                    "podIPs": [{"ip": "10.0.0.8"}, {"ip": "fd00::8"}],
                    "nominatedNodeName": "n2",
                    "conditions": [
                        {"type": "a", "status": "True"},
                        {"type": "b", "status": "False"},
                    ],
                    "containerStatuses": [{
                        "name": "app", "ready": true, "restartCount": 0,
                        "state": {"running": {"startedAt": ago(40)}},
                    }],
                }),
            ),
            json!([
                "web", "1/1", "Running", "0", "45s", "10.0.0.8", "n1", "n2", "1/2"
            ]),
        );
        // podIP alone (no podIPs) still shows.
        let cells = pod_cells(
            &pod(one(), json!({"phase": "Running", "podIP": "10.0.0.9"})),
            now(),
        );
        assert_eq!(cells[5], "10.0.0.9");
    }

    #[test]
    fn pod_status_reasons_follow_kubernetes() {
        let running = |name: &str| json!({"name": name, "ready": true, "restartCount": 0, "state": {"running": {}}});
        let waiting = |name: &str, reason: &str| json!({"name": name, "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}});
        // Waiting reasons; of several containers, the first one's wins.
        check_pod(
            pod(
                one(),
                json!({"phase": "Pending", "containerStatuses": [waiting("app", "ContainerCreating")]}),
            ),
            "0/1",
            "ContainerCreating",
            "0",
        );
        check_pod(
            pod(
                two(),
                json!({"phase": "Pending", "containerStatuses": [
                    waiting("a", "ImagePullBackOff"), waiting("b", "ContainerCreating")
                ]}),
            ),
            "0/2",
            "ImagePullBackOff",
            "0",
        );
        // A crash loop with the last restart's time.
        check_pod(
            pod(
                one(),
                json!({"phase": "Running", "containerStatuses": [{
                    "name": "app", "ready": false, "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(310)}},
                }]}),
            ),
            "0/1",
            "CrashLoopBackOff",
            "5 (5m10s ago)",
        );
        // Restarts without a known finish time print bare.
        check_pod(
            pod(
                one(),
                json!({"phase": "Running", "containerStatuses": [{
                    "name": "app", "ready": true, "restartCount": 2, "state": {"running": {}},
                }]}),
            ),
            "1/1",
            "Running",
            "2",
        );
        // Terminated containers: their reason, else the signal or exit code.
        let terminated = |terminated: Value| {
            pod(
                one(),
                json!({"phase": "Running", "containerStatuses": [{
                    "name": "app", "restartCount": 0, "state": {"terminated": terminated},
                }]}),
            )
        };
        check_pod(
            terminated(json!({"exitCode": 137, "reason": "OOMKilled"})),
            "0/1",
            "OOMKilled",
            "0",
        );
        check_pod(terminated(json!({"exitCode": 2})), "0/1", "ExitCode:2", "0");
        check_pod(
            terminated(json!({"exitCode": 0, "signal": 9})),
            "0/1",
            "Signal:9",
            "0",
        );
        // Completed, and back to Running or NotReady while one still runs.
        let completed = json!({"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        check_pod(
            pod(
                one(),
                json!({"phase": "Succeeded", "containerStatuses": [completed.clone()]}),
            ),
            "0/1",
            "Completed",
            "0",
        );
        check_pod(
            pod(
                two(),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [completed.clone(), running("b")]}),
            ),
            "1/2",
            "Running",
            "0",
        );
        check_pod(
            pod(
                two(),
                json!({"phase": "Running", "containerStatuses": [completed, running("b")]}),
            ),
            "1/2",
            "NotReady",
            "0",
        );
        // The pod's own reason (an eviction) and scheduling gates.
        check_pod(
            pod(one(), json!({"phase": "Failed", "reason": "Evicted"})),
            "0/1",
            "Evicted",
            "0",
        );
        check_pod(
            pod(
                one(),
                json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                ]}),
            ),
            "0/1",
            "SchedulingGated",
            "0",
        );
    }

    #[test]
    fn init_containers_and_sidecars() {
        let spec = json!({
            "initContainers": [{"name": "setup"}, {"name": "migrate"}],
            "containers": [{"name": "app"}],
        });
        let init = |statuses: Value| {
            pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": statuses}),
            )
        };
        let done = json!({"name": "setup", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        check_pod(
            init(json!([
                {"name": "setup", "restartCount": 0, "state": {"running": {}}},
                {"name": "migrate", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
            ])),
            "0/1",
            "Init:0/2",
            "0",
        );
        check_pod(
            init(json!([
                done.clone(),
                {"name": "migrate", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
            ])),
            "0/1",
            "Init:1/2",
            "0",
        );
        check_pod(
            init(json!([done.clone(), {
                "name": "migrate", "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}},
            }])),
            "0/1",
            "Init:CrashLoopBackOff",
            "3 (30s ago)",
        );
        check_pod(
            init(json!([done.clone(), {
                "name": "migrate", "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }])),
            "0/1",
            "Init:Error",
            "0",
        );
        check_pod(
            init(json!([done.clone(), {
                "name": "migrate", "restartCount": 0,
                "state": {"terminated": {"exitCode": 3}},
            }])),
            "0/1",
            "Init:ExitCode:3",
            "0",
        );
        check_pod(
            init(json!([done, {
                "name": "migrate", "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "signal": 15}},
            }])),
            "0/1",
            "Init:Signal:15",
            "0",
        );

        // A sidecar (an init container that restarts always) counts among
        // the containers, and only its restarts count once initialized.
        let spec = json!({
            "initContainers": [
                {"name": "setup"},
                {"name": "proxy", "restartPolicy": "Always"},
            ],
            "containers": [{"name": "app"}],
        });
        check_pod(
            pod(
                spec,
                json!({
                    "phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [
                        {"name": "setup", "restartCount": 4, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "proxy", "restartCount": 1, "started": true, "ready": true, "state": {"running": {}},
                         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(3600)}}},
                    ],
                    "containerStatuses": [
                        {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    ],
                }),
            ),
            "2/2",
            "Running",
            "1 (60m ago)",
        );
    }

    #[test]
    fn deleted_pods_are_terminating_unless_finished() {
        let deleted = |phase: &str, reason: &str| {
            let mut pod = pod(one(), json!({"phase": phase, "reason": reason}));
            pod["metadata"]["deletionTimestamp"] = json!(ago(1));
            pod
        };
        check_pod(deleted("Running", ""), "0/1", "Terminating", "0");
        check_pod(deleted("Pending", ""), "0/1", "Terminating", "0");
        check_pod(deleted("Succeeded", ""), "0/1", "Succeeded", "0");
        check_pod(deleted("Failed", ""), "0/1", "Failed", "0");
        check_pod(deleted("Running", "NodeLost"), "0/1", "Unknown", "0");
    }

    #[test]
    fn finished_pods_carry_a_completed_row_condition() {
        let pods = Printer::Pod;
        assert_eq!(
            pods.conditions(&pod(one(), json!({"phase": "Succeeded"}))),
            Some(json!([{
                "type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }]))
        );
        assert_eq!(
            pods.conditions(&pod(one(), json!({"phase": "Failed"})))
                .unwrap()[0]["reason"],
            "Failed"
        );
        assert_eq!(
            pods.conditions(&pod(one(), json!({"phase": "Running"}))),
            None
        );
        assert_eq!(Printer::Node.conditions(&json!({})), None);
    }

    #[test]
    fn node_rows() {
        check(
            "nodes",
            json!({
                "metadata": {"name": "n1", "creationTimestamp": ago(3 * 3600), "labels": {
                    "node-role.kubernetes.io/worker": "",
                    "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/": "",
                    "kubernetes.io/hostname": "n1",
                }},
                "status": {
                    "conditions": [
                        {"type": "MemoryPressure", "status": "False"},
                        {"type": "Ready", "status": "True"},
                    ],
                    "addresses": [
                        {"type": "Hostname", "address": "n1"},
                        {"type": "InternalIP", "address": "192.168.1.10"},
                        {"type": "InternalIP", "address": "192.168.1.11"},
                        {"type": "ExternalIP", "address": "203.0.113.7"},
                    ],
                    "nodeInfo": {
                        "kubeletVersion": "v1.37.0-skiff",
                        "osImage": "Debian GNU/Linux 12 (bookworm)",
                        "kernelVersion": "6.1.0",
                        "containerRuntimeVersion": "wasmtime://30.0.0",
                    },
                },
            }),
            json!([
                "n1",
                "Ready",
                "control-plane,worker",
                "3h",
                "v1.37.0-skiff",
                "192.168.1.10",
                "203.0.113.7",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0",
                "wasmtime://30.0.0"
            ]),
        );
        check(
            "nodes",
            json!({
                "metadata": {"name": "n2", "creationTimestamp": ago(50), "labels": {"kubernetes.io/role": "edge"}},
                "spec": {"unschedulable": true},
                "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
            }),
            json!([
                "n2",
                "NotReady,SchedulingDisabled",
                "edge",
                "50s",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]),
        );
        let cells = node_cells(&json!({"metadata": {"name": "n3"}}), now());
        assert_eq!(cells[1..3], [json!("Unknown"), json!("<none>")]);
    }

    fn template(containers: Value) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
    }

    #[test]
    fn deployment_and_replica_set_rows() {
        let containers = json!([
            {"name": "web", "image": "ghcr.io/skiff-dev/hello:1"},
            {"name": "proxy", "image": "envoy:1.30"},
        ]);
        check(
            "deployments",
            json!({
                "metadata": {"name": "web", "creationTimestamp": ago(2 * 86400 + 5 * 3600)},
                "spec": {
                    "replicas": 3,
                    "selector": {
                        "matchLabels": {"app": "web"},
                        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "api"]}],
                    },
                    "template": template(containers.clone()),
                },
                "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
            }),
            json!([
                "web",
                "2/3",
                3,
                2,
                "2d5h",
                "web,proxy",
                "ghcr.io/skiff-dev/hello:1,envoy:1.30",
                "app=web,tier in (api,front)"
            ]),
        );
        // A new deployment: nothing ready yet, one replica by default.
        check(
            "deployments",
            json!({
                "metadata": {"name": "new", "creationTimestamp": ago(5)},
                "spec": {"selector": {"matchLabels": {"app": "new"}}, "template": template(json!([{"name": "a", "image": "a"}]))},
            }),
            json!(["new", "0/1", 0, 0, "5s", "a", "a", "app=new"]),
        );
        check(
            "replicasets",
            json!({
                "metadata": {"name": "web-5d4f", "creationTimestamp": ago(600)},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}},
                         "template": template(containers)},
                "status": {"replicas": 3, "readyReplicas": 1},
            }),
            json!([
                "web-5d4f",
                3,
                3,
                1,
                "10m",
                "web,proxy",
                "ghcr.io/skiff-dev/hello:1,envoy:1.30",
                "app=web,pod-template-hash=5d4f"
            ]),
        );
        check(
            "replicasets",
            json!({"metadata": {"name": "bare"}, "spec": {"replicas": 0}}),
            json!(["bare", 0, 0, 0, "<unknown>", "", "", "<none>"]),
        );
    }

    fn service(spec: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "creationTimestamp": ago(70)},
            "spec": spec,
            "status": status,
        })
    }

    #[test]
    fn service_rows() {
        check(
            "services",
            service(
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                       "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                       "selector": {"tier": "front", "app": "web"}}),
                json!({}),
            ),
            json!([
                "web",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "80/TCP,53/UDP",
                "70s",
                "app=web,tier=front"
            ]),
        );
        check(
            "services",
            service(
                json!({"type": "NodePort", "clusterIP": "10.96.0.11", "externalIPs": ["198.51.100.1"],
                       "ports": [{"port": 80, "nodePort": 30080}, {"port": 443, "nodePort": 30443, "protocol": "TCP"}]}),
                json!({}),
            ),
            json!([
                "web",
                "NodePort",
                "10.96.0.11",
                "198.51.100.1",
                "80:30080/TCP,443:30443/TCP",
                "70s",
                "<none>"
            ]),
        );
        let external =
            |spec: Value, status: Value| service_cells(&service(spec, status), now())[3].clone();
        assert_eq!(
            external(json!({"type": "LoadBalancer"}), json!({})),
            "<pending>"
        );
        assert_eq!(
            external(
                json!({"type": "LoadBalancer", "externalIPs": ["198.51.100.2"]}),
                json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}, {"ip": "203.0.113.9"}]}}),
            ),
            "203.0.113.9,lb.example.com,198.51.100.2"
        );
        assert_eq!(
            external(
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({})
            ),
            "db.example.com"
        );
        // No type reads as the default ClusterIP; no ports, no IP: <none>.
        check(
            "services",
            service(json!({}), json!({})),
            json!([
                "web",
                "ClusterIP",
                "<none>",
                "<none>",
                "<none>",
                "70s",
                "<none>"
            ]),
        );
    }

    #[test]
    fn endpoints_rows_show_three_then_how_many_more() {
        let endpoints = |subsets: Value| json!({"metadata": {"name": "web", "creationTimestamp": ago(9)}, "subsets": subsets});
        check(
            "endpoints",
            endpoints(json!(null)),
            json!(["web", "<none>", "9s"]),
        );
        check(
            "endpoints",
            endpoints(json!([{
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                "notReadyAddresses": [{"ip": "10.0.0.3"}],
                "ports": [{"port": 8080}],
            }])),
            json!(["web", "10.0.0.1:8080,10.0.0.2:8080", "9s"]),
        );
        check(
            "endpoints",
            endpoints(json!([
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
                {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]},
            ])),
            json!([
                "web",
                "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...",
                "9s"
            ]),
        );
        assert_eq!(
            super::endpoints(&endpoints(json!([
                {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]},
                {"addresses": [{"ip": "10.0.0.5"}]},
            ]))),
            "[fd00::1]:80,10.0.0.5"
        );
        assert_eq!(
            super::endpoints(&endpoints(json!([{"ports": [{"port": 80}]}]))),
            ""
        );
    }

    #[test]
    fn event_rows() {
        let event = json!({
            "metadata": {"name": "web.17a", "namespace": "default", "creationTimestamp": ago(400)},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff",
            "message": "Back-off restarting failed container\n",
            "type": "Warning",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": ago(400),
            "lastTimestamp": ago(20),
            "count": 7,
        });
        check(
            "events",
            event,
            json!([
                "20s",
                "Warning",
                "BackOff",
                "pod/web",
                "spec.containers{app}",
                "kubelet, n1",
                "Back-off restarting failed container",
                "6m40s",
                7,
                "web.17a"
            ]),
        );
        // events.k8s.io-style: eventTime, a series, reporting fields.
        check(
            "events",
            json!({
                "metadata": {"name": "n1.1"},
                "involvedObject": {"kind": "Node"},
                "reason": "Starting",
                "type": "Normal",
                "eventTime": "2026-01-10T10:59:59.123456Z",
                "series": {"count": 3, "lastObservedTime": ago(30)},
                "reportingComponent": "skiff-agent",
                "reportingInstance": "n1",
            }),
            json!([
                "30s",
                "Normal",
                "Starting",
                "node",
                "",
                "skiff-agent, n1",
                "",
                "60m",
                3,
                "n1.1"
            ]),
        );
        // A singleton without timestamps: count 1, ages unknown.
        check(
            "events",
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Deployment", "name": "web"},
                   "reason": "ScalingReplicaSet", "source": {"component": "deployment-controller"}}),
            json!([
                "<unknown>",
                "",
                "ScalingReplicaSet",
                "deployment/web",
                "",
                "deployment-controller",
                "",
                "<unknown>",
                1,
                "e"
            ]),
        );
    }

    #[test]
    fn rows_of_the_other_kinds() {
        let meta = |name: &str| json!({"name": name, "creationTimestamp": ago(3600 * 24 * 400)});
        check(
            "namespaces",
            json!({"metadata": meta("default"), "status": {"phase": "Active"}}),
            json!(["default", "Active", "400d"]),
        );
        check(
            "namespaces",
            json!({"metadata": meta("old"), "status": {"phase": "Terminating"}}),
            json!(["old", "Terminating", "400d"]),
        );
        check(
            "configmaps",
            json!({"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
            json!(["cfg", 3, "400d"]),
        );
        check(
            "configmaps",
            json!({"metadata": meta("empty")}),
            json!(["empty", 0, "400d"]),
        );
        check(
            "secrets",
            json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
            json!(["tls", "kubernetes.io/tls", 2, "400d"]),
        );
        check(
            "runtimeclasses",
            json!({"metadata": meta("wasmtime"), "handler": "wasmtime"}),
            json!(["wasmtime", "wasmtime", "400d"]),
        );
        check(
            "leases",
            json!({"metadata": meta("n1"), "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}),
            json!(["n1", "n1", "400d"]),
        );
        check(
            "leases",
            json!({"metadata": meta("free"), "spec": {}}),
            json!(["free", "", "400d"]),
        );
        check(
            "endpointslices",
            json!({
                "metadata": meta("web-abc"),
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}],
                "endpoints": [
                    {"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]},
                ],
            }),
            json!([
                "web-abc",
                "IPv4",
                "80,metrics,*",
                "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
                "400d"
            ]),
        );
        check(
            "endpointslices",
            json!({"metadata": meta("none"), "addressType": "IPv6"}),
            json!(["none", "IPv6", "<unset>", "<unset>", "400d"]),
        );
    }

    #[test]
    fn every_served_resource_has_its_printer_and_others_get_name_and_created_at() {
        for def in RESOURCES {
            assert_ne!(Printer::of(def), Printer::Default, "{}", def.plural);
            let columns = Printer::of(def).columns();
            assert!(
                columns.iter().any(|c| c.format == "name"),
                "{}: a name column",
                def.plural
            );
        }
        let created =
            json!({"metadata": {"name": "w", "creationTimestamp": "2025-03-04T05:06:07Z"}});
        assert_eq!(
            Printer::Default.cells(&created, now()),
            [json!("w"), json!("2025-03-04T05:06:07Z")]
        );
        assert_eq!(
            Printer::Default.cells(&json!({"metadata": {"name": "w"}}), now())[1],
            "0001-01-01T00:00:00Z"
        );
        assert_eq!(
            Printer::Default.columns()[1].to_json(),
            json!({"name": "Created At", "type": "date", "format": "",
                   "description": "When the object was created (metadata.creationTimestamp).", "priority": 0})
        );
    }

    fn options(include_object: IncludeObject) -> TableOptions {
        TableOptions {
            version: TableVersion::V1,
            include_object,
        }
    }

    #[test]
    fn tables_carry_columns_rows_and_the_object_asked_for() {
        let namespace = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "resourceVersion": "7", "uid": "u1", "creationTimestamp": ago(61), "labels": {"a": "b"}},
            "status": {"phase": "Active"},
        });
        let namespaces = def("namespaces");
        let table = object_table(
            namespaces,
            &namespace,
            options(IncludeObject::Metadata),
            now(),
        );
        assert_eq!(
            table,
            json!({
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": "7"},
                "columnDefinitions": [
                    {"name": "Name", "type": "string", "format": "name", "description": NAME.description, "priority": 0},
                    {"name": "Status", "type": "string", "format": "", "description": "The status of the namespace", "priority": 0},
                    {"name": "Age", "type": "string", "format": "", "description": AGE.description, "priority": 0},
                ],
                "rows": [{
                    "cells": ["default", "Active", "61s"],
                    "object": {
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": namespace["metadata"],
                    },
                }],
            })
        );
        let bare = object_table(namespaces, &namespace, options(IncludeObject::None), now());
        assert_eq!(
            bare["rows"],
            json!([{"cells": ["default", "Active", "61s"]}])
        );
        let whole = object_table(
            namespaces,
            &namespace,
            options(IncludeObject::Object),
            now(),
        );
        assert_eq!(whole["rows"][0]["object"], namespace);

        let beta = TableOptions {
            version: TableVersion::V1beta1,
            include_object: IncludeObject::Metadata,
        };
        let list = list_table(
            namespaces,
            &[namespace.clone(), namespace],
            json!({"resourceVersion": "9", "continue": "abc"}),
            beta,
            now(),
        );
        assert_eq!(list["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(
            list["metadata"],
            json!({"resourceVersion": "9", "continue": "abc"})
        );
        assert_eq!(list["rows"].as_array().unwrap().len(), 2);
        assert_eq!(
            list["rows"][1]["object"]["apiVersion"],
            "meta.k8s.io/v1beta1"
        );
        let empty = list_table(
            namespaces,
            &[],
            json!({"resourceVersion": "9"}),
            beta,
            now(),
        );
        assert_eq!(empty["rows"], json!([]));
        assert_eq!(empty["columnDefinitions"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn wide_columns_are_priority_one() {
        let wide: Vec<&str> = POD_COLUMNS
            .iter()
            .filter(|c| c.priority == 1)
            .map(|c| c.name)
            .collect();
        assert_eq!(wide, ["IP", "Node", "Nominated Node", "Readiness Gates"]);
        let default: Vec<&str> = EVENT_COLUMNS
            .iter()
            .filter(|c| c.priority == 0)
            .map(|c| c.name)
            .collect();
        assert_eq!(
            default,
            ["Last Seen", "Type", "Reason", "Object", "Message"]
        );
    }

    #[test]
    fn table_requests_and_include_object() {
        let header = |text: &str| HeaderValue::from_str(text).unwrap();
        let kubectl = header(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(
            requested(Some(&kubectl), None).unwrap(),
            Some(options(IncludeObject::Metadata))
        );
        assert_eq!(
            requested(Some(&kubectl), Some("None")).unwrap(),
            Some(options(IncludeObject::None))
        );
        assert_eq!(
            requested(Some(&header("application/json")), Some("bogus")).unwrap(),
            None
        );
        assert_eq!(requested(None, None).unwrap(), None);
        let error = requested(Some(&kubectl), Some("Everything")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Unable to convert to Table as requested: includeObject: Unsupported value: \"Everything\": supported values: \"\", \"Metadata\", \"None\", \"Object\""
        );
        assert_eq!(error.code_and_reason().0, StatusCode::BAD_REQUEST);
        let refused = requested(Some(&header("text/html")), None).unwrap_err();
        assert_eq!(refused.code_and_reason().0, StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn watch_events_become_tables_with_headers_once() {
        let mut events = WatchTables::new(def("pods"), options(IncludeObject::Metadata));
        let added = json!({"type": "ADDED", "object": pod(one(), json!({"phase": "Pending"}))});
        let mut modified = added.clone();
        modified["type"] = json!("MODIFIED");
        modified["object"]["metadata"]["resourceVersion"] = json!("12");
        let error = json!({"type": "ERROR", "object": {"kind": "Status", "code": 410}});
        let bookmark = json!({"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "15"}}});
        let text = format!("{added}\n{modified}\n{error}\n{bookmark}\n");
        // In pieces that cut lines in two: nothing until a line ends.
        let (head, tail) = text.as_bytes().split_at(10);
        assert!(events.rewrite(head, now()).is_empty());
        let out = events.rewrite(tail, now());
        let lines: Vec<Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["type"], "ADDED");
        assert_eq!(lines[0]["object"]["kind"], "Table");
        assert_eq!(
            lines[0]["object"]["columnDefinitions"]
                .as_array()
                .unwrap()
                .len(),
            POD_COLUMNS.len()
        );
        assert_eq!(
            lines[0]["object"]["rows"][0]["cells"].as_array().unwrap()[..3],
            [json!("web"), json!("0/1"), json!("Pending")]
        );
        assert_eq!(
            lines[0]["object"]["rows"][0]["object"]["kind"],
            "PartialObjectMetadata"
        );
        assert_eq!(lines[1]["type"], "MODIFIED");
        assert_eq!(lines[1]["object"]["columnDefinitions"], json!([]));
        assert_eq!(lines[1]["object"]["metadata"]["resourceVersion"], "12");
        assert_eq!(lines[1]["object"]["rows"].as_array().unwrap().len(), 1);
        assert_eq!(lines[2], error);
        assert_eq!(
            lines[3],
            json!({"type": "BOOKMARK", "object": {
                "kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": "15"}, "columnDefinitions": [], "rows": [],
            }})
        );
        // What is not an event passes as it came.
        assert_eq!(events.rewrite(b"not json\n", now()), "not json\n");
    }
}
