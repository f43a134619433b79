//! The REST handlers: one entry point parses the request into a
//! [`RequestInfo`], authorizes it, and runs the verb against the resource's
//! objects in the store with Kubernetes' semantics (resourceVersion and
//! conflicts, generateName, uid and timestamps, generation, the status
//! subresource, finalizers and graceful deletion, selectors, pagination,
//! dryRun, namespace lifecycle); `pods/log` goes to [`super::pod_logs`]
//! and `pods/exec` to [`super::pod_exec`].

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

use super::access_review;
use super::auth::{self, Identity, authorize};
use super::body::{self, BodyFormat, FieldValidation};
use super::defaults::Admission;
use super::discovery;
use super::error::{ApiError, Cause, CauseType};
use super::meta;
use super::namespaces::ActiveNamespaces;
use super::patch;
use super::pod_exec;
use super::pod_logs::{self, NodeClient};
use super::request::{self, RequestInfo, Verb};
use super::resources::{self, NewObject, ResourceDef, Subresource};
use super::selector::{FieldSelector, LabelSelector, object_field};
use super::table;
use super::watch::{WatchCaches, WatchParams};
use crate::store::{Revision, Store, StoreError};

/// How many times a patch or an internal read-modify-write retries on a
/// conflict it caused itself.
const MAX_RETRIES: usize = 5;

/// The Kubernetes REST API over a store.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    watches: WatchCaches,
    namespaces: Arc<ActiveNamespaces>,
    admission: std::sync::RwLock<Admission>,
    /// How `pods/log` and `pods/exec` reach node APIs; `None` answers 500.
    node_client: std::sync::RwLock<Option<NodeClient>>,
}

/// Query parameters the handlers read.
#[derive(Debug, Default)]
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Self { pairs }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "invalid value {other:?} for query parameter {name:?}: expected true or false"
            ))),
        }
    }

    fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|_| {
                ApiError::BadRequest(format!(
                    "invalid value {value:?} for query parameter {name:?}: expected an integer"
                ))
            }),
        }
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        let values: Vec<&str> = self
            .pairs
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.as_str())
            .collect();
        match values.as_slice() {
            [] => Ok(false),
            ["All"] => Ok(true),
            _ => Err(ApiError::BadRequest(format!(
                "invalid dryRun value {values:?}: the only supported value is \"All\""
            ))),
        }
    }
}

/// One request in flight: what it asks, of which resource, with which body.
struct Call {
    info: RequestInfo,
    def: &'static ResourceDef,
    /// Who is asking (already authorized for the request's path).
    identity: Identity,
    /// The Table the `Accept` header asks for, if any.
    table: Option<table::TableOptions>,
    query: Query,
    headers: HeaderMap,
    body: Body,
    /// The connection's pending upgrade, for `pods/exec` (absent over
    /// HTTP/2 and in-process).
    upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Api {
    /// An API over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            inner: Arc::new(Inner {
                watches: WatchCaches::new(store.clone()),
                namespaces: Arc::default(),
                admission: std::sync::RwLock::default(),
                node_client: std::sync::RwLock::default(),
                store,
            }),
        }
    }

    /// The store this API serves.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The admission settings for new objects (Kubernetes' defaults unless
    /// set).
    pub fn set_admission(&self, admission: Admission) {
        *self.inner.admission.write().expect("never poisoned") = admission;
    }

    /// How `pods/log` and `pods/exec` reach node APIs (unset, they answer
    /// 500).
    pub fn set_node_client(&self, client: NodeClient) {
        *self.inner.node_client.write().expect("never poisoned") = Some(client);
    }

    /// How often idle watches that allow bookmarks get one (30 s by default).
    pub fn set_bookmark_interval(&self, interval: std::time::Duration) {
        self.inner.watches.set_bookmark_interval(interval);
    }

    /// Routes for `/api` and `/apis` (resources and discovery). Requests must
    /// carry an [`Identity`] extension, set by the authentication layer or by
    /// the in-process client.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api", any(discovery::core_versions))
            .route("/apis", any(discovery::groups))
            .route("/api/{*rest}", any(serve))
            .route("/apis/{*rest}", any(serve))
            .with_state(self.clone())
    }

    /// Creates what every cluster has: the namespaces `default`,
    /// `kube-system`, `kube-public`, `kube-node-lease` and the RuntimeClasses
    /// `wasmtime` and `runc`, each only if absent.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        let namespaces = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let object =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            self.create_if_absent(namespaces, None, object).await?;
        }
        let runtime_classes =
            resources::lookup("node.k8s.io", "v1", "runtimeclasses").expect("served");
        for (name, label) in [
            (
                skiff_sdk::runtime_class::WASMTIME,
                skiff_sdk::labels::WASM_ENABLED,
            ),
            (
                skiff_sdk::runtime_class::RUNC,
                skiff_sdk::labels::OCI_ENABLED,
            ),
        ] {
            let object = json!({
                "apiVersion": "node.k8s.io/v1",
                "kind": "RuntimeClass",
                "metadata": {"name": name},
                "handler": name,
                "scheduling": {"nodeSelector": {label: "true"}},
            });
            self.create_if_absent(runtime_classes, None, object).await?;
        }
        // Namespaces left terminating by a previous run finish now.
        let terminating = self.list_all(namespaces, None).await?;
        for namespace in terminating.into_iter().filter(meta::deleting) {
            self.spawn_namespace_cleanup(meta::name(&namespace).to_owned());
        }
        Ok(())
    }

    async fn create_if_absent(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<(), ApiError> {
        let (object, _) = def
            .handler
            .decode_new_value(object, FieldValidation::Strict)?;
        match self.create_object(def, namespace, object, false).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The single entry point for resource requests.
async fn serve(State(api): State<Api>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let path = parts.uri.path().to_owned();
    let query = Query::parse(parts.uri.query());
    let watch_param = match query.bool("watch") {
        Ok(watch) => watch,
        Err(error) => return error.into_response(),
    };
    let Some(info) = request::parse(&parts.method, &path, watch_param) else {
        return discovery::serve(&parts.method, &path).await;
    };
    let Some(identity) = parts.extensions.get::<Identity>().cloned() else {
        return ApiError::Unauthorized.into_response();
    };
    let result = async {
        // Anyone authenticated may ask what they may do.
        if access_review::is_self_review(&info) {
            let format = body::body_format(parts.headers.get(header::CONTENT_TYPE))?;
            let bytes = body::read_body(body, body::MAX_BODY_BYTES).await?;
            let parsed = body::parse_body(&bytes, format)?;
            let answer = access_review::review(&identity, parsed.value)?;
            return Ok(respond(StatusCode::CREATED, &answer, &[]));
        }
        authorize(&identity, &info)?;
        // Get and list build their own tables; watch events become tables here.
        let asked_table = table::requested(
            parts.headers.get(header::ACCEPT),
            query.get("includeObject"),
        )?;
        let watch_table = asked_table.filter(|_| info.verb == Verb::Watch);
        let def = resources::lookup(&info.group, &info.version, &info.resource)
            .ok_or(ApiError::NoSuchPath)?;
        if def.namespaced != info.namespace.is_some()
            && !(def.namespaced && matches!(info.verb, Verb::List | Verb::Watch))
        {
            return Err(ApiError::NoSuchPath);
        }
        let call = Call {
            info,
            def,
            table: asked_table,
            identity,
            query,
            headers: parts.headers,
            body,
            upgrade,
        };
        let response = api.dispatch(call).await?;
        Ok(match watch_table {
            Some(options) => table::watch_response(response, def, options),
            None => response,
        })
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The stored form of an object (a JSON value always serializes).
fn to_bytes(object: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(object).expect("a JSON value serializes"))
}

/// An object as stored, with its resourceVersion set from the store.
fn stored_object(kv: &crate::store::KeyValue) -> Result<Value, ApiError> {
    let mut object: Value =
        serde_json::from_slice(&kv.value).map_err(|source| ApiError::Decode {
            key: kv.key.clone(),
            source,
        })?;
    meta::set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

/// A JSON response with a status code and optional warnings.
fn respond(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    respond_json(code, to_bytes(value), warnings)
}

/// A response of serialized JSON with a status code and optional warnings.
fn respond_json(code: StatusCode, body: Bytes, warnings: &[String]) -> Response {
    let mut response = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    for warning in warnings {
        response
            .headers_mut()
            .append(header::WARNING, body::warning_header(warning));
    }
    response
}

fn success_status(details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

impl Api {
    async fn dispatch(&self, call: Call) -> Result<Response, ApiError> {
        let sub = match call.info.subresource.as_deref() {
            None => None,
            Some(name) => Some(
                call.def
                    .subresources
                    .iter()
                    .copied()
                    .find(|s| s.name() == name)
                    .ok_or(ApiError::NoSuchPath)?,
            ),
        };
        match (call.info.verb, sub) {
            (Verb::Get, None) => self.get(call).await,
            (Verb::List, None) => self.list(call).await,
            (Verb::Watch, None) => self.watch(call).await,
            (Verb::Create, None) => self.create(call).await,
            (Verb::Update, None) => self.update(call, None).await,
            (Verb::Patch, None) => self.patch(call, None).await,
            (Verb::Delete, None) => self.delete(call).await,
            (Verb::DeleteCollection, None) => self.delete_collection(call).await,
            (Verb::Get, Some(Subresource::Status)) => self.get(call).await,
            (Verb::Update, Some(sub @ (Subresource::Status | Subresource::Finalize))) => {
                self.update(call, Some(sub)).await
            }
            (Verb::Patch, Some(sub @ (Subresource::Status | Subresource::Finalize))) => {
                self.patch(call, Some(sub)).await
            }
            (Verb::Get, Some(Subresource::Scale)) => self.get_scale(call).await,
            (Verb::Update | Verb::Patch, Some(Subresource::Scale)) => self.update_scale(call).await,
            (Verb::Create, Some(Subresource::Binding)) => self.bind(call).await,
            (Verb::Get, Some(Subresource::Log)) => {
                let client = self
                    .inner
                    .node_client
                    .read()
                    .expect("never poisoned")
                    .clone();
                pod_logs::serve(
                    self,
                    client.as_ref(),
                    call.info.namespace.as_deref().unwrap_or_default(),
                    call.info.name.as_deref().unwrap_or_default(),
                    &call.query.pairs,
                )
                .await
            }
            (Verb::Get | Verb::Create, Some(Subresource::Exec)) => {
                let client = self
                    .inner
                    .node_client
                    .read()
                    .expect("never poisoned")
                    .clone();
                pod_exec::serve(
                    self,
                    client.as_ref(),
                    call.info.namespace.as_deref().unwrap_or_default(),
                    call.info.name.as_deref().unwrap_or_default(),
                    &call.query.pairs,
                    &call.headers,
                    call.upgrade,
                )
                .await
            }
            _ => Err(ApiError::MethodNotAllowed),
        }
    }

    fn not_found(def: &ResourceDef, name: &str) -> ApiError {
        ApiError::NotFound {
            resource: def.group_resource(),
            name: name.to_owned(),
        }
    }

    /// Reads one object with its resourceVersion set.
    pub(crate) async fn read(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<(Value, Revision)>, ApiError> {
        let key = def.key(namespace, name);
        let Some(kv) = self.inner.store.get(&key).await? else {
            return Ok(None);
        };
        let revision = kv.mod_revision;
        Ok(Some((stored_object(&kv)?, revision)))
    }

    async fn read_existing(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(Value, Revision), ApiError> {
        self.read(def, namespace, name)
            .await?
            .ok_or_else(|| Self::not_found(def, name))
    }

    async fn get(&self, call: Call) -> Result<Response, ApiError> {
        let asked_table = call.table;
        let name = call.info.name.as_deref().unwrap_or_default();
        let (object, _) = self
            .read_existing(call.def, call.info.namespace.as_deref(), name)
            .await?;
        if let Some(options) = asked_table {
            let now = jiff::Timestamp::now();
            let table = table::object_table(call.def, &object, options, now);
            return Ok(table::respond(&table, options));
        }
        Ok(respond(StatusCode::OK, &object, &[]))
    }

    /// Every object of a resource (in a namespace or all), newest state.
    pub(crate) async fn list_all(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let response = self
            .inner
            .store
            .range(crate::store::RangeRequest::prefix(def.prefix(namespace)))
            .await?;
        response
            .kvs
            .into_iter()
            .map(|kv| stored_object(&kv))
            .collect()
    }

    async fn list(&self, call: Call) -> Result<Response, ApiError> {
        let def = call.def;
        let asked_table = call.table;
        let filter = Filter::from_query(def, &call.query)?;
        let limit = match call.query.int("limit")? {
            Some(limit) if limit < 0 => {
                return Err(ApiError::BadRequest(format!(
                    "invalid limit {limit}: must not be negative"
                )));
            }
            Some(limit) => limit as usize,
            None => 0,
        };
        let (mut revision, mut start_after) =
            match call.query.get("continue").filter(|c| !c.is_empty()) {
                Some(token) => {
                    let (revision, start) = decode_continue(token)?;
                    (Some(revision), Some(start))
                }
                None => (None, None),
            };
        if revision.is_none()
            && call.query.get("resourceVersionMatch") == Some("Exact")
            && let Some(rv) = call.query.get("resourceVersion")
        {
            revision = Some(parse_resource_version(rv)?);
        }
        let prefix = def.prefix(call.info.namespace.as_deref());
        let mut items = Vec::new();
        let mut read_at = revision;
        let mut more = false;
        let mut last_key = None;
        loop {
            let mut request = crate::store::RangeRequest::prefix(prefix.clone());
            if let Some(revision) = read_at {
                request = request.at_revision(revision);
            }
            if let Some(after) = &start_after {
                request = request.start_after(after.clone());
            }
            if limit > 0 {
                request = request
                    .limit((limit - items.len()).max(1) * if filter.is_empty() { 1 } else { 4 });
            }
            let page = match self.inner.store.range(request).await {
                Err(StoreError::Compacted { .. })
                    if revision.is_some() && call.query.get("continue").is_some() =>
                {
                    return Err(ApiError::Expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                    ));
                }
                other => other?,
            };
            read_at = Some(page.revision);
            let page_len = page.kvs.len();
            for (index, kv) in page.kvs.into_iter().enumerate() {
                let object = stored_object(&kv)?;
                last_key = Some(kv.key);
                if filter.matches(def, &object) {
                    items.push(object);
                }
                if limit > 0 && items.len() == limit {
                    more = page.more || index + 1 < page_len;
                    break;
                }
            }
            if (limit > 0 && items.len() == limit) || !page.more {
                break;
            }
            start_after = last_key.clone();
        }
        let revision = read_at.unwrap_or_default();
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if more && let Some(last) = last_key {
            metadata["continue"] = json!(encode_continue(revision, &last));
        }
        if let Some(options) = asked_table {
            let now = jiff::Timestamp::now();
            let table = table::list_table(def, &items, metadata, options, now);
            return Ok(table::respond(&table, options));
        }
        let list = json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(),
            "metadata": metadata,
            "items": items,
        });
        Ok(respond(StatusCode::OK, &list, &[]))
    }

    async fn watch(&self, call: Call) -> Result<Response, ApiError> {
        let filter = Filter::from_query(call.def, &call.query)?;
        let params = WatchParams {
            resource_version: call
                .query
                .get("resourceVersion")
                .filter(|v| !v.is_empty())
                .map(parse_resource_version)
                .transpose()?,
            bookmarks: call.query.bool("allowWatchBookmarks")?,
            timeout: match call.query.int("timeoutSeconds")? {
                Some(t) if t < 0 => {
                    return Err(ApiError::BadRequest(
                        "timeoutSeconds must not be negative".into(),
                    ));
                }
                Some(t) if t > 0 => Some(std::time::Duration::from_secs(t as u64)),
                _ => None,
            },
        };
        let namespace = call.info.namespace.clone();
        let def = call.def;
        let matcher = move |object: &Value| {
            namespace
                .as_deref()
                .is_none_or(|ns| meta::namespace(object) == Some(ns))
                && filter.matches(def, object)
        };
        let stream = self
            .inner
            .watches
            .watch(self, def, call.info.namespace.as_deref(), params, matcher)
            .await?;
        Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Body::from_stream(stream),
        )
            .into_response())
    }

    /// Reads the request body, checking its size and content type.
    async fn read_bytes(call: &mut Call) -> Result<(Bytes, BodyFormat), ApiError> {
        let format = body::body_format(call.headers.get(header::CONTENT_TYPE))?;
        let bytes = body::read_body(std::mem::take(&mut call.body), body::MAX_BODY_BYTES).await?;
        Ok((bytes, format))
    }

    /// Parses a request body read by [`Api::read_bytes`], with the field
    /// validation asked.
    fn parse(
        call: &Call,
        bytes: &[u8],
        format: BodyFormat,
    ) -> Result<(body::ParsedBody, FieldValidation), ApiError> {
        let mut parsed = body::parse_body(bytes, format)?;
        check_type(call.def, &mut parsed.value)?;
        let validation = body::field_validation(call.query.get("fieldValidation"))?;
        Ok((parsed, validation))
    }

    /// Reads the request body and decodes it the plain way if it is a plain
    /// JSON body (see `plain_json`), else parses it and decodes it the
    /// careful way.
    async fn read_decoded<T>(
        call: &mut Call,
        plain: impl FnOnce(&[u8]) -> Option<T>,
        careful: impl FnOnce(body::ParsedBody, FieldValidation) -> Result<(T, Vec<String>), ApiError>,
    ) -> Result<(T, Vec<String>), ApiError> {
        let (bytes, format) = Self::read_bytes(call).await?;
        // A plain body has no warnings for field validation to judge, but
        // the parameter must be valid.
        if format == BodyFormat::Json
            && let Some(object) = plain(&bytes)
        {
            body::field_validation(call.query.get("fieldValidation"))?;
            return Ok((object, Vec::new()));
        }
        let (parsed, validation) = Self::parse(call, &bytes, format)?;
        careful(parsed, validation)
    }

    /// Reads and decodes the request body into a normalized object of the
    /// call's kind.
    async fn read_object(&self, call: &mut Call) -> Result<(Value, Vec<String>), ApiError> {
        let handler = call.def.handler;
        Self::read_decoded(
            call,
            |json| handler.normalize_plain(json),
            |parsed, validation| handler.normalize_body(parsed, validation),
        )
        .await
    }

    /// Reads and decodes a create body into a new object of the call's kind.
    async fn read_new_object(
        &self,
        call: &mut Call,
    ) -> Result<(Box<dyn NewObject>, Vec<String>), ApiError> {
        let handler = call.def.handler;
        Self::read_decoded(
            call,
            |json| handler.decode_new_plain(json),
            |parsed, validation| handler.decode_new(parsed, validation),
        )
        .await
    }

    async fn create(&self, mut call: Call) -> Result<Response, ApiError> {
        let dry_run = call.query.dry_run()?;
        let (object, warnings) = self.read_new_object(&mut call).await?;
        if matches!(call.identity, Identity::Node(_)) {
            let named = json!({"metadata": {"name": object.meta().name}});
            auth::may_write(&call.identity, call.def.kind, &named, &call.info)?;
        }
        let namespace = call.info.namespace.clone();
        if let (Some(path_ns), Some(body_ns)) = (
            namespace.as_deref(),
            object
                .meta()
                .namespace
                .as_deref()
                .filter(|ns| !ns.is_empty()),
        ) && path_ns != body_ns
        {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        let created = self
            .create_object(call.def, namespace.as_deref(), object, dry_run)
            .await?;
        Ok(respond_json(StatusCode::CREATED, created, &warnings))
    }

    /// Creates an object: metadata set by the server, defaults, validation,
    /// namespace checks, then the store (unless `dry_run`). Returns the
    /// created object's JSON.
    pub(crate) async fn create_object(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        mut object: Box<dyn NewObject>,
        dry_run: bool,
    ) -> Result<Bytes, ApiError> {
        let generate = object.meta().generate_name.clone();
        {
            let metadata = object.meta_mut();
            metadata.resource_version = None;
            metadata.deletion_timestamp = None;
            metadata.deletion_grace_period_seconds = None;
            metadata.managed_fields = None;
            metadata.self_link = None;
            metadata.namespace = if def.namespaced {
                namespace
                    .map(str::to_owned)
                    .or_else(|| metadata.namespace.take())
            } else {
                None
            };
            metadata.uid = Some(uuid::Uuid::new_v4().to_string());
            metadata.creation_timestamp = Some(meta::now_time());
            metadata.generation = object_has_spec(def).then_some(1);
        }
        if def.has(Subresource::Status) {
            object.clear_status();
        }
        object.apply_defaults();
        let admission = *self.inner.admission.read().expect("never poisoned");
        object.admit(&admission);
        let explicit_name = object.meta().name.as_deref().is_some_and(|n| !n.is_empty());
        for attempt in 0..MAX_RETRIES {
            if !explicit_name {
                match generate.as_deref() {
                    Some(prefix) if !prefix.is_empty() => {
                        object.meta_mut().name = Some(meta::generate_name(prefix));
                    }
                    _ => {
                        return Err(invalid(
                            def,
                            "",
                            vec![Cause::new(
                                CauseType::Required,
                                "metadata.name",
                                "name or generateName is required",
                            )],
                        ));
                    }
                }
            }
            let name = object.meta().name.clone().unwrap_or_default();
            let causes = object.validate_create();
            if !causes.is_empty() {
                return Err(invalid(def, &name, causes));
            }
            let object_namespace = object.meta().namespace.clone().filter(|ns| !ns.is_empty());
            if def.namespaced {
                self.check_namespace_accepts(object_namespace.as_deref().unwrap_or(""))
                    .await?;
            }
            let stored = object.to_json();
            if dry_run {
                return Ok(stored);
            }
            let key = def.key(object_namespace.as_deref(), &name);
            match self.inner.store.create(&key, stored, None).await {
                Ok(kv) => {
                    // The stored bytes with their revision: one
                    // serialization per create.
                    if let Some(json) = meta::with_resource_version(&kv.value, kv.mod_revision) {
                        return Ok(json);
                    }
                    object.meta_mut().resource_version = Some(kv.mod_revision.to_string());
                    return Ok(object.to_json());
                }
                Err(StoreError::AlreadyExists { .. })
                    if !explicit_name && attempt + 1 < MAX_RETRIES =>
                {
                    continue;
                }
                Err(StoreError::AlreadyExists { .. }) => {
                    return Err(ApiError::AlreadyExists {
                        resource: def.group_resource(),
                        name,
                    });
                }
                Err(error) => return Err(error.into()),
            }
        }
        unreachable!("the loop returns")
    }

    /// For a node, whether the pod a write names is bound to it (what the
    /// path alone cannot show; see [`auth::may_write`]).
    async fn check_node_write(
        &self,
        identity: &Identity,
        def: &'static ResourceDef,
        info: &RequestInfo,
    ) -> Result<(), ApiError> {
        if !matches!(identity, Identity::Node(_)) || def.kind != "Pod" {
            return Ok(());
        }
        let name = info.name.as_deref().unwrap_or_default();
        let (current, _) = self
            .read_existing(def, info.namespace.as_deref(), name)
            .await?;
        auth::may_write(identity, def.kind, &current, info)
    }

    /// 404 if the namespace does not exist, 403 if it is terminating.
    async fn check_namespace_accepts(&self, namespace: &str) -> Result<(), ApiError> {
        if self.inner.namespaces.contains(&self.inner.store, namespace) {
            return Ok(());
        }
        let namespaces = resources::lookup("", "v1", "namespaces").expect("served");
        match self.read(namespaces, None, namespace).await? {
            None => Err(ApiError::NotFound {
                resource: "namespaces".into(),
                name: namespace.to_owned(),
            }),
            Some((ns, _)) if meta::deleting(&ns) => Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ))),
            Some(_) => Ok(()),
        }
    }

    async fn update(&self, mut call: Call, sub: Option<Subresource>) -> Result<Response, ApiError> {
        self.check_node_write(&call.identity, call.def, &call.info)
            .await?;
        let dry_run = call.query.dry_run()?;
        let (object, warnings) = self.read_object(&mut call).await?;
        let name = call.info.name.clone().unwrap_or_default();
        if meta::name(&object) != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&object)
            )));
        }
        if let (Some(path_ns), Some(body_ns)) =
            (call.info.namespace.as_deref(), meta::namespace(&object))
            && path_ns != body_ns
        {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        let expected = meta::meta_str(&object, "resourceVersion")
            .filter(|rv| !rv.is_empty())
            .map(parse_resource_version)
            .transpose()?;
        let (current, revision) = self
            .read_existing(call.def, call.info.namespace.as_deref(), &name)
            .await?;
        if let Some(expected) = expected.filter(|e| *e != revision) {
            let _ = expected;
            return Err(conflict(call.def, &name));
        }
        let (code, updated) = self
            .write_update(call.def, current, revision, object, sub, dry_run)
            .await?;
        Ok(respond(code, &updated, &warnings))
    }

    /// Merges an update into the current object as the subresource allows,
    /// validates it and writes it guarded by `revision`. Returns the stored
    /// object (or the deleted one when the last finalizer went).
    async fn write_update(
        &self,
        def: &'static ResourceDef,
        current: Value,
        revision: Revision,
        mut object: Value,
        sub: Option<Subresource>,
        dry_run: bool,
    ) -> Result<(StatusCode, Value), ApiError> {
        let name = meta::name(&current).to_owned();
        match sub {
            Some(Subresource::Status) => {
                let status = object.get("status").cloned();
                object = current.clone();
                match status {
                    Some(status) => object["status"] = status,
                    None => {
                        if let Some(map) = object.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            Some(Subresource::Finalize) => {
                let finalizers = object
                    .get("spec")
                    .and_then(|s| s.get("finalizers"))
                    .cloned();
                object = current.clone();
                object["spec"]["finalizers"] = finalizers.unwrap_or(json!([]));
            }
            _ => {
                if def.has(Subresource::Status) {
                    match current.get("status") {
                        Some(status) => object["status"] = status.clone(),
                        None => {
                            if let Some(map) = object.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
            }
        }
        // What the server owns stays as it was.
        {
            let old = current.get("metadata").cloned().unwrap_or_default();
            let metadata = meta::metadata_mut(&mut object);
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match old.get(field) {
                    Some(value) => metadata.insert(field.into(), value.clone()),
                    None => metadata.remove(field),
                };
            }
            metadata.remove("resourceVersion");
            metadata.remove("managedFields");
            metadata.remove("selfLink");
        }
        if object_has_spec(def) && object.get("spec") != current.get("spec") {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta::metadata_mut(&mut object).insert("generation".into(), json!(generation));
        }
        let causes = def.handler.validate_update(&object, &current);
        if !causes.is_empty() {
            return Err(invalid(def, &name, causes));
        }
        let namespace = meta::namespace(&current).map(str::to_owned);
        let key = def.key(namespace.as_deref(), &name);
        let mut current_stored = current.clone();
        meta::metadata_mut(&mut current_stored).remove("resourceVersion");
        if object == current_stored {
            // No change: no write, no new resourceVersion, no watch event.
            return Ok((StatusCode::OK, current));
        }
        if dry_run {
            meta::set_resource_version(&mut object, revision);
            return Ok((StatusCode::OK, object));
        }
        let finished = meta::deleting(&object)
            && meta::finalizers(&object).is_empty()
            && !(def.kind == "Pod"
                && object["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(0)
                    > 0);
        if finished {
            let deleted = self
                .inner
                .store
                .delete(&key, Some(revision))
                .await
                .map_err(|e| store_write_error(def, &name, e))?;
            let mut gone = object;
            meta::set_resource_version(&mut gone, deleted.revision);
            return Ok((StatusCode::OK, gone));
        }
        self.store_update(&key, &mut object, revision)
            .await
            .map_err(|e| store_write_error(def, &name, e))?;
        Ok((StatusCode::OK, object))
    }

    async fn patch(&self, mut call: Call, sub: Option<Subresource>) -> Result<Response, ApiError> {
        self.check_node_write(&call.identity, call.def, &call.info)
            .await?;
        let dry_run = call.query.dry_run()?;
        let patch_type = body::patch_type(call.headers.get(header::CONTENT_TYPE))?;
        let bytes = body::read_body(std::mem::take(&mut call.body), body::MAX_BODY_BYTES).await?;
        let validation = body::field_validation(call.query.get("fieldValidation"))?;
        let name = call.info.name.clone().unwrap_or_default();
        let namespace = call.info.namespace.clone();
        for _ in 0..MAX_RETRIES {
            let (current, revision) = self
                .read_existing(call.def, namespace.as_deref(), &name)
                .await?;
            let mut patched = patch::apply_patch(&current, &bytes, patch_type)?;
            check_type(call.def, &mut patched)?;
            let pinned = meta::meta_str(&patched, "resourceVersion")
                .filter(|rv| !rv.is_empty())
                .map(parse_resource_version)
                .transpose()?;
            if pinned.is_some_and(|rv| rv != revision) {
                return Err(conflict(call.def, &name));
            }
            let (patched, warnings) = call.def.handler.normalize_patched(patched, validation)?;
            match self
                .write_update(call.def, current, revision, patched, sub, dry_run)
                .await
            {
                // Someone wrote in between: patch the new state. A patch
                // that pins a resourceVersion fails the check above then.
                Err(ApiError::Conflict { .. }) => continue,
                Ok((code, object)) => return Ok(respond(code, &object, &warnings)),
                Err(error) => return Err(error),
            }
        }
        Err(conflict(call.def, &name))
    }

    async fn delete(&self, mut call: Call) -> Result<Response, ApiError> {
        self.check_node_write(&call.identity, call.def, &call.info)
            .await?;
        let options = self.delete_options(&mut call).await?;
        let name = call.info.name.clone().unwrap_or_default();
        let object = self
            .delete_object(call.def, call.info.namespace.as_deref(), &name, &options)
            .await?;
        Ok(respond(StatusCode::OK, &object, &[]))
    }

    async fn delete_options(&self, call: &mut Call) -> Result<DeleteOptions, ApiError> {
        let bytes = body::read_body(std::mem::take(&mut call.body), body::MAX_BODY_BYTES).await?;
        let mut options = DeleteOptions {
            dry_run: call.query.dry_run()?,
            grace_period: call.query.int("gracePeriodSeconds")?,
            propagation: call.query.get("propagationPolicy").map(str::to_owned),
            ..DeleteOptions::default()
        };
        if !bytes.is_empty() {
            let format = body::body_format(call.headers.get(header::CONTENT_TYPE))?;
            let value = body::parse_value(&bytes, format)?;
            if let Some(kind) = value.get("kind").and_then(Value::as_str)
                && kind != "DeleteOptions"
            {
                return Err(ApiError::BadRequest(format!(
                    "expected DeleteOptions, got {kind}"
                )));
            }
            if let Some(grace) = value.get("gracePeriodSeconds") {
                options.grace_period = Some(grace.as_i64().ok_or_else(|| {
                    ApiError::BadRequest("gracePeriodSeconds must be an integer".into())
                })?);
            }
            if let Some(policy) = value.get("propagationPolicy").and_then(Value::as_str) {
                options.propagation = Some(policy.to_owned());
            }
            if value.get("orphanDependents") == Some(&json!(true)) {
                options.propagation = Some("Orphan".into());
            }
            if let Some(pre) = value.get("preconditions") {
                options.uid = pre.get("uid").and_then(Value::as_str).map(str::to_owned);
                options.resource_version = pre
                    .get("resourceVersion")
                    .and_then(Value::as_str)
                    .map(parse_resource_version)
                    .transpose()?;
            }
            if value
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|v| v == "All"))
            {
                options.dry_run = true;
            }
        }
        match options.propagation.as_deref() {
            None | Some("Background" | "Foreground" | "Orphan") => {}
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "invalid propagationPolicy {other:?}: supported values are Background, Foreground and Orphan"
                )));
            }
        }
        if options.grace_period.is_some_and(|g| g < 0) {
            return Err(ApiError::BadRequest(
                "gracePeriodSeconds must not be negative".into(),
            ));
        }
        Ok(options)
    }

    /// Deletes an object as Kubernetes does: preconditions, then either
    /// marks it (finalizers, graceful pod deletion) or removes it.
    pub(crate) async fn delete_object(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        if def.kind != "Namespace" || options.dry_run {
            return self.delete_or_mark(def, namespace, name, options).await;
        }
        // From here on this server refuses new objects in the namespace,
        // without waiting for the namespace's event to reach its cache.
        self.inner.namespaces.hold(name);
        let result = self.delete_or_mark(def, namespace, name, options).await;
        let written = result
            .as_ref()
            .ok()
            .and_then(|object| meta::meta_str(object, "resourceVersion")?.parse().ok());
        self.inner.namespaces.release(name, written.unwrap_or(0));
        result
    }

    async fn delete_or_mark(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        for _ in 0..MAX_RETRIES {
            let (current, revision) = self.read_existing(def, namespace, name).await?;
            if let Some(uid) = &options.uid
                && meta::meta_str(&current, "uid") != Some(uid.as_str())
            {
                return Err(ApiError::Conflict {
                    resource: def.group_resource(),
                    name: name.to_owned(),
                    message: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::meta_str(&current, "uid").unwrap_or("")
                    ),
                });
            }
            if let Some(rv) = options.resource_version
                && rv != revision
            {
                return Err(ApiError::Conflict {
                    resource: def.group_resource(),
                    name: name.to_owned(),
                    message: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {revision}"
                    ),
                });
            }
            let mut marked = current.clone();
            let mut finalizers = meta::finalizers(&current);
            match options.propagation.as_deref() {
                Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                    finalizers.push("foregroundDeletion".into())
                }
                Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                    finalizers.push("orphan".into())
                }
                _ => {}
            }
            meta::set_finalizers(&mut marked, &finalizers);
            let grace = self.grace_period(def, &current, options);
            let namespace_pending = def.kind == "Namespace"
                && current["spec"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
            let needs_marking = !finalizers.is_empty() || grace > 0 || namespace_pending;
            let key = def.key(namespace, name);
            if needs_marking {
                if !meta::deleting(&current) {
                    let metadata = meta::metadata_mut(&mut marked);
                    metadata.insert("deletionTimestamp".into(), json!(meta::now_plus(grace)));
                    metadata.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    if def.kind == "Namespace" {
                        marked["status"]["phase"] = json!("Terminating");
                    }
                } else if def.kind == "Pod" {
                    let old = current["metadata"]["deletionGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(0);
                    if grace < old {
                        let metadata = meta::metadata_mut(&mut marked);
                        metadata.insert("deletionTimestamp".into(), json!(meta::now_plus(grace)));
                        metadata.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    }
                }
                if def.kind == "Pod" && grace == 0 && finalizers.is_empty() {
                    // A pod whose grace period ended goes now.
                } else {
                    if options.dry_run || marked == current {
                        return Ok(marked);
                    }
                    match self.store_update(&key, &mut marked, revision).await {
                        Ok(()) => {
                            if def.kind == "Namespace" {
                                self.spawn_namespace_cleanup(name.to_owned());
                            }
                            return Ok(marked);
                        }
                        Err(StoreError::Conflict { .. }) if options.resource_version.is_none() => {
                            continue;
                        }
                        Err(error) => return Err(store_write_error(def, name, error)),
                    }
                }
            }
            if options.dry_run {
                return Ok(current);
            }
            match self.inner.store.delete(&key, Some(revision)).await {
                Ok(deleted) => {
                    let mut gone = current;
                    meta::set_resource_version(&mut gone, deleted.revision);
                    return Ok(gone);
                }
                Err(StoreError::Conflict { .. }) if options.resource_version.is_none() => continue,
                Err(error) => return Err(store_write_error(def, name, error)),
            }
        }
        Err(conflict(def, name))
    }

    /// The grace period of a delete: pods bound to a node and still running
    /// get one (their `terminationGracePeriodSeconds` unless the request
    /// says otherwise); everything else goes at once.
    fn grace_period(&self, def: &ResourceDef, current: &Value, options: &DeleteOptions) -> i64 {
        if def.kind != "Pod" {
            return 0;
        }
        let bound = current["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            current["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        if !bound || finished {
            return 0;
        }
        options
            .grace_period
            .or_else(|| current["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0)
    }

    async fn delete_collection(&self, mut call: Call) -> Result<Response, ApiError> {
        let options = self.delete_options(&mut call).await?;
        let filter = Filter::from_query(call.def, &call.query)?;
        let objects = self
            .list_all(call.def, call.info.namespace.as_deref())
            .await?;
        let mut deleted = Vec::new();
        for object in objects.iter().filter(|o| filter.matches(call.def, o)) {
            match self
                .delete_object(
                    call.def,
                    meta::namespace(object),
                    meta::name(object),
                    &options,
                )
                .await
            {
                Ok(object) => deleted.push(object),
                Err(ApiError::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        let list = json!({
            "kind": format!("{}List", call.def.kind),
            "apiVersion": call.def.api_version(),
            "metadata": {},
            "items": deleted,
        });
        Ok(respond(StatusCode::OK, &list, &[]))
    }

    async fn get_scale(&self, call: Call) -> Result<Response, ApiError> {
        let name = call.info.name.clone().unwrap_or_default();
        let (object, _) = self
            .read_existing(call.def, call.info.namespace.as_deref(), &name)
            .await?;
        Ok(respond(StatusCode::OK, &scale_of(&object), &[]))
    }

    async fn update_scale(&self, mut call: Call) -> Result<Response, ApiError> {
        let dry_run = call.query.dry_run()?;
        let name = call.info.name.clone().unwrap_or_default();
        let namespace = call.info.namespace.clone();
        let patch_type = (call.info.verb == Verb::Patch)
            .then(|| body::patch_type(call.headers.get(header::CONTENT_TYPE)))
            .transpose()?;
        let bytes = body::read_body(std::mem::take(&mut call.body), body::MAX_BODY_BYTES).await?;
        for _ in 0..MAX_RETRIES {
            let (current, revision) = self
                .read_existing(call.def, namespace.as_deref(), &name)
                .await?;
            let scale = match patch_type {
                Some(patch_type) => patch::apply_patch(&scale_of(&current), &bytes, patch_type)?,
                None => body::parse_value(
                    &bytes,
                    body::body_format(call.headers.get(header::CONTENT_TYPE))?,
                )?,
            };
            let replicas = match scale.get("spec").and_then(|s| s.get("replicas")) {
                None => 0,
                Some(r) => r.as_i64().ok_or_else(|| {
                    ApiError::BadRequest("spec.replicas must be an integer".into())
                })?,
            };
            if replicas < 0 {
                return Err(ApiError::Invalid {
                    kind: "Scale".into(),
                    group: "autoscaling".into(),
                    name: name.clone(),
                    causes: vec![Cause::invalid(
                        "spec.replicas",
                        replicas,
                        "must be greater than or equal to 0",
                    )],
                });
            }
            if let Some(rv) = meta::meta_str(&scale, "resourceVersion").filter(|rv| !rv.is_empty())
                && parse_resource_version(rv)? != revision
            {
                return Err(conflict(call.def, &name));
            }
            let mut object = current.clone();
            object["spec"]["replicas"] = json!(replicas);
            match self
                .write_update(call.def, current, revision, object, None, dry_run)
                .await
            {
                Ok((code, object)) => return Ok(respond(code, &scale_of(&object), &[])),
                Err(ApiError::Conflict { .. }) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(conflict(call.def, &name))
    }

    async fn bind(&self, mut call: Call) -> Result<Response, ApiError> {
        let dry_run = call.query.dry_run()?;
        let name = call.info.name.clone().unwrap_or_default();
        let format = body::body_format(call.headers.get(header::CONTENT_TYPE))?;
        let bytes = body::read_body(std::mem::take(&mut call.body), body::MAX_BODY_BYTES).await?;
        let binding = body::parse_value(&bytes, format)?;
        let node = binding["target"]["name"].as_str().unwrap_or("").to_owned();
        if node.is_empty() {
            return Err(ApiError::Invalid {
                kind: "Binding".into(),
                group: String::new(),
                name,
                causes: vec![Cause::required("target.name")],
            });
        }
        let namespace = call.info.namespace.clone();
        for _ in 0..MAX_RETRIES {
            let (current, revision) = self
                .read_existing(call.def, namespace.as_deref(), &name)
                .await?;
            if meta::deleting(&current) {
                return Err(ApiError::Conflict {
                    resource: "pods".into(),
                    name: name.clone(),
                    message: "pod is being deleted, cannot be assigned to a host".into(),
                });
            }
            if let Some(existing) = current["spec"]["nodeName"]
                .as_str()
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::Conflict {
                    resource: "pods".into(),
                    name: name.clone(),
                    message: format!("pod {name} is already assigned to node \"{existing}\""),
                });
            }
            let mut object = current.clone();
            object["spec"]["nodeName"] = json!(node);
            let mut conditions: Vec<Value> = object["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conditions.retain(|c| c["type"] != "PodScheduled");
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": meta::now()}));
            object["status"]["conditions"] = json!(conditions);
            if dry_run {
                break;
            }
            let key = call.def.key(namespace.as_deref(), &name);
            match self.store_update(&key, &mut object, revision).await {
                Ok(()) => break,
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(store_write_error(call.def, &name, error)),
            }
        }
        Ok(respond(
            StatusCode::CREATED,
            &success_status(json!({"name": name, "kind": "pods"})),
            &[],
        ))
    }

    /// Writes `object` at `key` guarded by `revision` and sets its new
    /// resourceVersion (the stored bytes carry none).
    async fn store_update(
        &self,
        key: &str,
        object: &mut Value,
        revision: Revision,
    ) -> Result<(), StoreError> {
        meta::metadata_mut(object).remove("resourceVersion");
        let kv = self
            .inner
            .store
            .update(key, to_bytes(object), revision, None)
            .await?;
        meta::set_resource_version(object, kv.mod_revision);
        Ok(())
    }

    /// Deletes everything in a terminating namespace, then lets the
    /// namespace go (Kubernetes' namespace finalizer, run by the server).
    pub(crate) fn spawn_namespace_cleanup(&self, namespace: String) {
        let api = self.clone();
        tokio::spawn(async move {
            let mut delay = std::time::Duration::from_millis(50);
            loop {
                match api.finalize_namespace(&namespace).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(namespace = %namespace, error = %error, "namespace cleanup")
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        });
    }

    /// One pass of namespace cleanup; true when the namespace is gone.
    async fn finalize_namespace(&self, namespace: &str) -> Result<bool, ApiError> {
        let namespaces = resources::lookup("", "v1", "namespaces").expect("served");
        let Some((ns, revision)) = self.read(namespaces, None, namespace).await? else {
            return Ok(true);
        };
        if !meta::deleting(&ns) {
            return Ok(true);
        }
        let mut remaining = 0;
        let options = DeleteOptions::default();
        for def in resources::RESOURCES.iter().filter(|r| r.namespaced) {
            for object in self.list_all(def, Some(namespace)).await? {
                remaining += 1;
                // Pods are deleted again so a shorter grace period can end them.
                if !meta::deleting(&object) || def.kind == "Pod" {
                    match self
                        .delete_object(def, Some(namespace), meta::name(&object), &options)
                        .await
                    {
                        Ok(_) | Err(ApiError::NotFound { .. }) => {}
                        Err(error) => return Err(error),
                    }
                }
            }
        }
        if remaining > 0 {
            return Ok(false);
        }
        let mut done = ns.clone();
        done["spec"]["finalizers"] = json!([]);
        self.write_update(
            namespaces,
            ns,
            revision,
            done,
            Some(Subresource::Finalize),
            false,
        )
        .await?;
        Ok(true)
    }
}

/// Parsed DeleteOptions.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    dry_run: bool,
    grace_period: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<Revision>,
}

/// Label and field selectors of a list, watch or deletecollection.
#[derive(Clone)]
struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    fn from_query(def: &ResourceDef, query: &Query) -> Result<Self, ApiError> {
        let labels = query
            .get("labelSelector")
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                LabelSelector::parse(s)
                    .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))
            })
            .transpose()?;
        let fields = query
            .get("fieldSelector")
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                FieldSelector::parse(s)
                    .map_err(|e| ApiError::BadRequest(format!("invalid field selector: {e}")))
            })
            .transpose()?;
        if let Some(fields) = &fields {
            let probe = json!({});
            for field in fields.fields() {
                if object_field(def.plural, &probe, field).is_none() {
                    return Err(ApiError::BadRequest(format!(
                        "field label not supported: {field}"
                    )));
                }
            }
        }
        Ok(Self { labels, fields })
    }

    fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    fn matches(&self, def: &ResourceDef, object: &Value) -> bool {
        if let Some(labels) = &self.labels
            && !labels.matches(&meta::labels(object))
        {
            return false;
        }
        if let Some(fields) = &self.fields {
            return fields.matches(|field| object_field(def.plural, object, field).flatten());
        }
        true
    }
}

fn object_has_spec(def: &ResourceDef) -> bool {
    matches!(
        def.kind,
        "Pod" | "Deployment" | "ReplicaSet" | "Service" | "Node" | "Namespace"
    )
}

/// The body's apiVersion and kind must be the endpoint's; absent ones are
/// the endpoint's (as kube-apiserver decodes with the endpoint's kind as
/// the default, which clients that omit unset fields rely on).
fn check_type(def: &ResourceDef, value: &mut Value) -> Result<(), ApiError> {
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON or YAML object".into(),
        ));
    };
    match object.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            object.insert("kind".into(), json!(def.kind));
        }
        Some(kind) if kind != def.kind => {
            return Err(ApiError::BadRequest(format!(
                "the kind of the object ({kind}) does not match the kind of the endpoint ({})",
                def.kind
            )));
        }
        Some(_) => {}
    }
    match object.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            object.insert("apiVersion".into(), json!(def.api_version()));
            Ok(())
        }
        Some(version) if version == def.api_version() => Ok(()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "the API version in the data ({other}) does not match the expected API version ({})",
            def.api_version()
        ))),
    }
}

fn invalid(def: &ResourceDef, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        kind: def.kind.to_owned(),
        group: def.group.to_owned(),
        name: name.to_owned(),
        causes,
    }
}

fn conflict(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::Conflict {
        resource: def.group_resource(),
        name: name.to_owned(),
        message: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

fn store_write_error(def: &ResourceDef, name: &str, error: StoreError) -> ApiError {
    match error {
        StoreError::Conflict { .. } => conflict(def, name),
        StoreError::NotFound { .. } => Api::not_found(def, name),
        other => other.into(),
    }
}

/// A resourceVersion from a request: a non-negative integer.
fn parse_resource_version(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "invalid resource version {rv:?}: must be a non-negative integer"
            ))
        })
}

fn encode_continue(revision: Revision, last_key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let revision = value["rv"].as_i64().filter(|r| *r > 0).ok_or_else(bad)?;
    let start = value["start"]
        .as_str()
        .filter(|s| s.starts_with("/registry/"))
        .ok_or_else(bad)?;
    Ok((revision, start.to_owned()))
}

/// The autoscaling/v1 Scale view of a deployment or replica set.
fn scale_of(object: &Value) -> Value {
    let selector = object["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "uid": object["metadata"]["uid"],
            "resourceVersion": object["metadata"]["resourceVersion"],
            "creationTimestamp": object["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = encode_continue(42, "/registry/pods/default/web");
        assert_eq!(
            decode_continue(&token).unwrap(),
            (42, "/registry/pods/default/web".to_owned())
        );
        assert!(decode_continue("not base64!").is_err());
        let foreign = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"rv":1,"start":"/etc/passwd"}"#);
        assert!(decode_continue(&foreign).is_err());
    }

    #[test]
    fn resource_versions_are_non_negative_integers() {
        assert_eq!(parse_resource_version("17").unwrap(), 17);
        assert!(parse_resource_version("-1").is_err());
        assert!(parse_resource_version("abc").is_err());
    }
}
