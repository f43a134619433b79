//! The API server's Prometheus metrics, served at `/metrics` in the
//! OpenMetrics text format, with the names kube-apiserver uses where one
//! exists:
//!
//! - `apiserver_request_total{verb,resource,code}`: every request, counted
//!   when its response head is ready (a [`record`] middleware);
//! - `apiserver_request_duration_seconds{verb,resource}`: time to the
//!   response head (a watch counts until its stream starts);
//! - `apiserver_registered_watchers{resource}`: open watches. The [`record`]
//!   middleware counts every successful watch response it serves until the
//!   body is dropped, so handlers need not; [`Metrics::watcher_started`] /
//!   [`Metrics::watcher_stopped`] and [`Metrics::track_watcher`] are for
//!   watches served some other way;
//! - `skiff_store_request_duration_seconds{operation}`: every store call,
//!   observed by [`MeteredStore`] (or by hand with [`Metrics::observe_store`]).
//!
//! `verb` is Kubernetes' reported verb: the HTTP method, except `LIST` and
//! `WATCH` for collection reads and `APPLY` for server-side apply;
//! `resource` is the plural resource, empty for non-resource paths.
//! Nothing is logged per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::request::{self, RequestInfo, Verb};
use crate::store::{
    Deleted, KeyValue, LeaseId, RangeRequest, RangeResponse, Result as StoreResult, Revision,
    Store, WatchStream,
};

/// kube-apiserver's request latency buckets, in seconds.
const REQUEST_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
/// Store latency buckets: finer below a millisecond than kube-apiserver's
/// etcd buckets, since the embedded store answers reads in microseconds.
const STORE_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: &'static str,
    resource: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: &'static str,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

struct Families {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<LatencyLabels>,
    watchers: Family<ResourceLabels, Gauge>,
    store_duration: HistogramFamily<OperationLabels>,
}

/// The server's metrics; cheap to clone (one shared registry). The
/// [`record`] middleware also puts a clone into each request's extensions,
/// so handlers reach it as `Extension<Metrics>` (absent in-process).
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // prometheus-client appends `_total` to counters' samples (and a
        // full stop to help texts).
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, resource and HTTP response code",
            requests.clone(),
        );
        let request_duration: HistogramFamily<LatencyLabels> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb and resource (to the response head)",
            request_duration.clone(),
        );
        let watchers = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "apiserver_registered_watchers",
            "Number of currently registered watchers for a given resource",
            watchers.clone(),
        );
        let store_duration: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(|| Histogram::new(STORE_BUCKETS));
        registry.register(
            "skiff_store_request_duration_seconds",
            "Store request latency distribution in seconds for each operation",
            store_duration.clone(),
        );
        Self {
            families: Arc::new(Families {
                registry,
                requests,
                request_duration,
                watchers,
                store_duration,
            }),
        }
    }

    /// Counts one finished request and its latency.
    pub fn observe_request(
        &self,
        verb: &'static str,
        resource: &str,
        code: u16,
        duration: Duration,
    ) {
        let families = &self.families;
        families
            .requests
            .get_or_create(&RequestLabels {
                verb,
                resource: resource.to_owned(),
                code,
            })
            .inc();
        families
            .request_duration
            .get_or_create(&LatencyLabels {
                verb,
                resource: resource.to_owned(),
            })
            .observe(duration.as_secs_f64());
    }

    /// A watch on `resource` (plural, e.g. `pods`) started.
    pub fn watcher_started(&self, resource: &str) {
        self.watcher_gauge(resource).inc();
    }

    /// A watch on `resource` ended.
    pub fn watcher_stopped(&self, resource: &str) {
        self.watcher_gauge(resource).dec();
    }

    /// Counts a watch on `resource` until the returned guard is dropped,
    /// which suits a watch stream that may end anywhere.
    pub fn track_watcher(&self, resource: &str) -> WatcherGuard {
        self.watcher_started(resource);
        WatcherGuard {
            metrics: self.clone(),
            resource: resource.to_owned(),
        }
    }

    fn watcher_gauge(&self, resource: &str) -> Gauge {
        self.families.watchers.get_or_create_owned(&ResourceLabels {
            resource: resource.to_owned(),
        })
    }

    /// Records the latency of one store operation (`get`, `range`,
    /// `create`...).
    pub fn observe_store(&self, operation: &str, duration: Duration) {
        self.families
            .store_duration
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
            })
            .observe(duration.as_secs_f64());
    }

    /// The whole registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.families.registry);
        text
    }

    /// `GET /metrics`. Behind authentication: any identity may read it.
    pub fn router(&self) -> Router {
        let metrics = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    let mut headers = HeaderMap::new();
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
                    (headers, metrics.encode()).into_response()
                }
            }),
        )
    }
}

/// Keeps a watch counted in `apiserver_registered_watchers` while alive.
#[derive(Debug)]
pub struct WatcherGuard {
    metrics: Metrics,
    resource: String,
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.metrics.watcher_stopped(&self.resource);
    }
}

/// The metrics middleware: records every request with its verb, resource
/// and status code, counts each successful watch in
/// `apiserver_registered_watchers` until its response body is dropped, and
/// hands the [`Metrics`] to the handlers through the request's extensions.
pub async fn record(State(metrics): State<Metrics>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let info = request_info(&request);
    let verb = reported_verb(request.method(), request.headers(), info.as_ref());
    let resource = info.map(|info| info.resource).unwrap_or_default();
    request.extensions_mut().insert(metrics.clone());
    let response = next.run(request).await;
    metrics.observe_request(
        verb,
        &resource,
        response.status().as_u16(),
        started.elapsed(),
    );
    if verb != "WATCH" || !response.status().is_success() {
        return response;
    }
    // The watch is registered for as long as its body is being served.
    let guard = metrics.track_watcher(&resource);
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _registered = &guard;
            frame
        }))
    })
}

/// The request as Kubernetes' RequestInfo, honouring `?watch=true`; `None`
/// for non-resource paths.
pub fn request_info<B>(request: &axum::http::Request<B>) -> Option<RequestInfo> {
    let watch = request.uri().query().is_some_and(|query| {
        form_urlencoded::parse(query.as_bytes()).any(|(key, value)| {
            key == "watch" && matches!(&*value, "1" | "t" | "T" | "true" | "True" | "TRUE")
        })
    });
    request::parse(request.method(), request.uri().path(), watch)
}

/// Kubernetes' reported verb (apiserver's `CleanVerb`).
fn reported_verb(method: &Method, headers: &HeaderMap, info: Option<&RequestInfo>) -> &'static str {
    match info.map(|info| info.verb) {
        Some(Verb::List) => return "LIST",
        Some(Verb::Watch) => return "WATCH",
        Some(Verb::Patch)
            if headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/apply-patch")) =>
        {
            return "APPLY";
        }
        _ => {}
    }
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// A [`Store`] that times every call of the store it wraps into
/// `skiff_store_request_duration_seconds` (a watch is timed until its
/// stream is open). The server hands this to the API, so handlers need not
/// time anything themselves.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Metrics,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(&self, operation: &str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        self.metrics.observe_store(operation, started.elapsed());
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        self.timed("get", self.inner.get(key)).await
    }

    async fn range(&self, request: RangeRequest) -> StoreResult<RangeResponse> {
        self.timed("range", self.inner.range(request)).await
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        lease: Option<LeaseId>,
    ) -> StoreResult<KeyValue> {
        self.timed("create", self.inner.create(key, value, lease))
            .await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> StoreResult<KeyValue> {
        self.timed("update", self.inner.update(key, value, expected, lease))
            .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> StoreResult<Deleted> {
        self.timed("delete", self.inner.delete(key, expected)).await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> StoreResult<WatchStream> {
        self.timed("watch", self.inner.watch(prefix, from)).await
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        self.timed("current_revision", self.inner.current_revision())
            .await
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        self.timed("compact", self.inner.compact(revision)).await
    }

    async fn grant_lease(&self, ttl: Duration) -> StoreResult<LeaseId> {
        self.timed("grant_lease", self.inner.grant_lease(ttl)).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
        self.timed("keep_alive", self.inner.keep_alive(lease)).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> StoreResult<()> {
        self.timed("revoke_lease", self.inner.revoke_lease(lease))
            .await
    }

    async fn close(&self) -> StoreResult<()> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    #[test]
    fn reported_verbs_follow_kubernetes() {
        let check = |method: Method, uri: &str, content_type: Option<&str>, expect: &str| {
            let mut request = axum::http::Request::builder()
                .method(method.clone())
                .uri(uri);
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            let request = request.body(()).unwrap();
            let info = request_info(&request);
            assert_eq!(
                reported_verb(&method, request.headers(), info.as_ref()),
                expect,
                "{method} {uri}"
            );
        };
        check(Method::GET, "/api/v1/pods", None, "LIST");
        check(
            Method::GET,
            "/api/v1/pods?watch=true&resourceVersion=3",
            None,
            "WATCH",
        );
        check(Method::GET, "/api/v1/pods?watch=1", None, "WATCH");
        check(Method::GET, "/api/v1/pods?watch=false", None, "LIST");
        check(Method::GET, "/api/v1/namespaces/a/pods/p", None, "GET");
        check(Method::DELETE, "/api/v1/namespaces/a/pods", None, "DELETE");
        check(
            Method::PATCH,
            "/api/v1/namespaces/a/pods/p",
            Some("application/apply-patch+yaml"),
            "APPLY",
        );
        check(
            Method::PATCH,
            "/api/v1/namespaces/a/pods/p",
            Some("application/merge-patch+json"),
            "PATCH",
        );
        check(Method::GET, "/healthz", None, "GET");
    }

    #[tokio::test]
    async fn families_are_exposed() {
        let metrics = Metrics::new();
        let app = metrics
            .router()
            .route("/api/v1/namespaces/{ns}/pods", get(|| async { "[]" }))
            .layer(axum::middleware::from_fn_with_state(
                metrics.clone(),
                record,
            ));
        let response = app
            .clone()
            .oneshot(
                axum::http::Request::get("/api/v1/namespaces/a/pods")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let watch = app
            .clone()
            .oneshot(
                axum::http::Request::get("/api/v1/namespaces/a/pods?watch=1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let watching = r#"apiserver_registered_watchers{resource="pods"} 1"#;
        assert!(metrics.encode().contains(watching), "{}", metrics.encode());
        drop(watch);
        assert!(!metrics.encode().contains(watching), "{}", metrics.encode());
        metrics.observe_store("get", Duration::from_micros(300));
        let guard = metrics.track_watcher("pods");
        metrics.watcher_started("nodes");
        metrics.watcher_stopped("nodes");

        let response = app
            .oneshot(
                axum::http::Request::get("/metrics")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.headers()[header::CONTENT_TYPE], OPENMETRICS);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        for expect in [
            r#"apiserver_request_total{verb="LIST",resource="pods",code="200"} 1"#,
            r#"apiserver_request_duration_seconds_count{verb="LIST",resource="pods"} 1"#,
            r#"apiserver_registered_watchers{resource="pods"} 1"#,
            r#"apiserver_registered_watchers{resource="nodes"} 0"#,
            r#"skiff_store_request_duration_seconds_count{operation="get"} 1"#,
            "# EOF",
        ] {
            assert!(text.contains(expect), "{expect} missing in\n{text}");
        }
        drop(guard);
        assert!(
            metrics
                .encode()
                .contains(r#"apiserver_registered_watchers{resource="pods"} 0"#)
        );
    }
}
