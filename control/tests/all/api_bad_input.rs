//! Bad input gets a clear Kubernetes `Status` with the right code, reason and
//! field causes, fast, and changes nothing: a table of malformed, oversized,
//! mistyped and invalid requests sent as raw HTTP to the in-process router,
//! each checked for its answer and for an unchanged store revision.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures::StreamExt;
use serde_json::{Value, json};
use skiff_control::apiserver::auth::Identity;
use skiff_control::apiserver::handlers::Api;
use skiff_control::store::{EmbeddedConfig, EmbeddedStore, Store};
use tower::ServiceExt;

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    body: Body,
    code: u16,
    reason: &'static str,
    fields: &'static [&'static str],
}

fn case(
    name: &'static str,
    method: Method,
    path: &'static str,
    body: impl Into<Body>,
    code: u16,
    reason: &'static str,
) -> Case {
    Case {
        name,
        method,
        path,
        content_type: Some("application/json"),
        accept: None,
        body: body.into(),
        code,
        reason,
        fields: &[],
    }
}

impl Case {
    fn content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = Some(content_type);
        self
    }
    fn accept(mut self, accept: &'static str) -> Self {
        self.accept = Some(accept);
        self
    }
    fn fields(mut self, fields: &'static [&'static str]) -> Self {
        self.fields = fields;
        self
    }
}

const PODS: &str = "/api/v1/namespaces/default/pods";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const MAPS: &str = "/api/v1/namespaces/default/configmaps";

fn json_body(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

fn pod(mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": "r/hello:1"}]},
    });
    mutate(&mut pod);
    json_body(pod)
}

fn deployment(mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "app", "image": "r/hello:1"}]}},
        },
    });
    mutate(&mut deployment);
    json_body(deployment)
}

fn nested(depth: usize) -> Vec<u8> {
    let mut body = String::from(
        "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"n\"},\"data\":",
    );
    body.push_str(&"[".repeat(depth));
    body.push_str(&"]".repeat(depth));
    body.push('}');
    body.into_bytes()
}

const ALIAS_BOMB: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";

fn cases() -> Vec<Case> {
    use Method as M;
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let chunked = Body::from_stream(futures::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])),
    ));
    vec![
        case("malformed JSON", M::POST, PODS, "{\"kind\":", 400, "BadRequest"),
        case("empty body", M::POST, PODS, "", 400, "BadRequest"),
        case("top level array", M::POST, PODS, "[1,2]", 400, "BadRequest"),
        case("10,000-deep JSON", M::POST, MAPS, nested(10_000), 400, "BadRequest"),
        case("YAML alias bomb", M::POST, MAPS, ALIAS_BOMB, 400, "BadRequest").content_type("application/yaml"),
        case("10,000-deep YAML", M::POST, MAPS, format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: y}}\ndata: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)), 400, "BadRequest").content_type("application/yaml"),
        case("multi-document YAML", M::POST, MAPS, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n", 400, "BadRequest").content_type("application/yaml"),
        case("oversize body", M::POST, MAPS, big, 413, "RequestEntityTooLarge"),
        case("chunked oversize body", M::POST, MAPS, chunked, 413, "RequestEntityTooLarge"),
        case("JSON sent as protobuf", M::POST, PODS, pod(|_| {}), 400, "BadRequest").content_type("application/vnd.kubernetes.protobuf"),
        case("text body", M::POST, PODS, pod(|_| {}), 415, "UnsupportedMediaType").content_type("text/plain"),
        case("protobuf-only accept", M::GET, PODS, "", 406, "NotAcceptable").accept("application/vnd.kubernetes.protobuf"),
        case("kind of another endpoint", M::POST, PODS, pod(|p| p["kind"] = json!("Service")), 400, "BadRequest"),
        case("wrong apiVersion", M::POST, PODS, pod(|p| p["apiVersion"] = json!("apps/v1")), 400, "BadRequest"),
        case("namespace mismatch", M::POST, PODS, pod(|p| p["metadata"]["namespace"] = json!("other")), 400, "BadRequest"),
        case("mistyped replicas", M::POST, DEPLOYMENTS, deployment(|d| d["spec"]["replicas"] = json!("three")), 400, "BadRequest"),
        case("mistyped labels", M::POST, PODS, pod(|p| p["metadata"]["labels"] = json!(["a"])), 400, "BadRequest"),
        case("unknown field, strict", M::POST, "/api/v1/namespaces/default/pods?fieldValidation=Strict", pod(|p| p["spec"]["bogus"] = json!(1)), 400, "BadRequest"),
        case("bad fieldValidation", M::POST, "/api/v1/namespaces/default/pods?fieldValidation=Loud", pod(|_| {}), 400, "BadRequest"),
        case("bad name", M::POST, PODS, pod(|p| p["metadata"]["name"] = json!("Bad_Name")), 422, "Invalid").fields(&["metadata.name"]),
        case("name too long", M::POST, PODS, pod(|p| p["metadata"]["name"] = json!("a".repeat(254))), 422, "Invalid").fields(&["metadata.name"]),
        case("no name", M::POST, PODS, pod(|p| { p["metadata"].as_object_mut().unwrap().remove("name"); }), 422, "Invalid").fields(&["metadata.name"]),
        case("bad label value", M::POST, PODS, pod(|p| p["metadata"]["labels"] = json!({"app": "no spaces"})), 422, "Invalid").fields(&["metadata.labels"]),
        case("bad label key", M::POST, PODS, pod(|p| p["metadata"]["labels"] = json!({"-bad": "x"})), 422, "Invalid").fields(&["metadata.labels"]),
        case("bad annotation key", M::POST, PODS, pod(|p| p["metadata"]["annotations"] = json!({"a b": "x"})), 422, "Invalid").fields(&["metadata.annotations"]),
        case("no containers", M::POST, PODS, pod(|p| p["spec"]["containers"] = json!([])), 422, "Invalid").fields(&["spec.containers"]),
        case("no image", M::POST, PODS, pod(|p| { p["spec"]["containers"][0].as_object_mut().unwrap().remove("image"); }), 422, "Invalid").fields(&["spec.containers[0].image"]),
        case("duplicate containers", M::POST, PODS, pod(|p| p["spec"]["containers"] = json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}])), 422, "Invalid").fields(&["spec.containers[1].name"]),
        case("port out of range", M::POST, PODS, pod(|p| p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 70000}])), 422, "Invalid").fields(&["spec.containers[0].ports[0].containerPort"]),
        case("bad memory quantity", M::POST, PODS, pod(|p| p["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "lots"}})), 422, "Invalid"),
        case("requests above limits", M::POST, PODS, pod(|p| p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})), 422, "Invalid").fields(&["spec.containers[0].resources.requests"]),
        case("bad restart policy", M::POST, PODS, pod(|p| p["spec"]["restartPolicy"] = json!("Sometimes")), 422, "Invalid").fields(&["spec.restartPolicy"]),
        case("negative replicas", M::POST, DEPLOYMENTS, deployment(|d| d["spec"]["replicas"] = json!(-1)), 422, "Invalid").fields(&["spec.replicas"]),
        case("selector does not match", M::POST, DEPLOYMENTS, deployment(|d| d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"})), 422, "Invalid").fields(&["spec.template.metadata.labels"]),
        case("bad strategy", M::POST, DEPLOYMENTS, deployment(|d| d["spec"]["strategy"] = json!({"type": "Sometimes"})), 422, "Invalid").fields(&["spec.strategy"]),
        case("bad configmap key", M::POST, MAPS, json_body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a b": "x"}})), 422, "Invalid").fields(&["data[a b]"]),
        case("service without ports", M::POST, "/api/v1/namespaces/default/services", json_body(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"a": "b"}}})), 422, "Invalid").fields(&["spec.ports"]),
        case("bad limit", M::GET, "/api/v1/namespaces/default/pods?limit=abc", "", 400, "BadRequest"),
        case("negative limit", M::GET, "/api/v1/namespaces/default/pods?limit=-1", "", 400, "BadRequest"),
        case("bad watch flag", M::GET, "/api/v1/namespaces/default/pods?watch=maybe", "", 400, "BadRequest"),
        case("bad label selector", M::GET, "/api/v1/namespaces/default/pods?labelSelector=a%20in%20(", "", 400, "BadRequest"),
        case("unsupported field selector", M::GET, "/api/v1/namespaces/default/pods?fieldSelector=spec.bogus%3D1", "", 400, "BadRequest"),
        case("bad continue token", M::GET, "/api/v1/namespaces/default/pods?continue=xyz", "", 400, "BadRequest"),
        case("bad resourceVersion", M::GET, "/api/v1/namespaces/default/pods?resourceVersion=abc&resourceVersionMatch=Exact", "", 400, "BadRequest"),
        case("bad dryRun", M::POST, "/api/v1/namespaces/default/pods?dryRun=Some", pod(|_| {}), 400, "BadRequest"),
        case("bad timeoutSeconds", M::GET, "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=-5", "", 400, "BadRequest"),
        case("missing namespace", M::POST, "/api/v1/namespaces/nowhere/pods", pod(|_| {}), 404, "NotFound"),
        case("unknown resource", M::GET, "/api/v1/namespaces/default/widgets", "", 404, "NotFound"),
        case("malformed JSON patch", M::PATCH, "/api/v1/namespaces/default/configmaps/existing", "[{\"op\":", 400, "BadRequest").content_type("application/json-patch+json"),
        case("unsupported patch type", M::PATCH, "/api/v1/namespaces/default/configmaps/existing", "{}", 415, "UnsupportedMediaType").content_type("application/x-unknown-patch"),
        case("bad propagationPolicy", M::DELETE, "/api/v1/namespaces/default/configmaps/existing?propagationPolicy=Sideways", "", 400, "BadRequest"),
        case("update name mismatch", M::PUT, "/api/v1/namespaces/default/configmaps/existing", json_body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}})), 400, "BadRequest"),
        case("immutable selector", M::PATCH, "/apis/apps/v1/namespaces/default/deployments/existing", json_body(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}}}}})), 422, "Invalid").content_type("application/merge-patch+json").fields(&["spec.selector"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_changes_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("s.redb"))).unwrap());
    let api = Api::new(store.clone());
    api.bootstrap().await.unwrap();
    let router = api.router();
    // Objects some cases refer to.
    for (path, body) in [
        (
            MAPS,
            json_body(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "existing"}, "data": {"a": "b"}}),
            ),
        ),
        (
            DEPLOYMENTS,
            deployment(|d| d["metadata"]["name"] = json!("existing")),
        ),
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", "application/json")
            .extension(Identity::Admin)
            .body(Body::from(body))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let cases = cases();
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for case in cases {
        let before = store.current_revision().await.unwrap();
        let mut request = Request::builder()
            .method(case.method.clone())
            .uri(case.path)
            .extension(Identity::Admin);
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(accept) = case.accept {
            request = request.header("accept", accept);
        }
        let started = std::time::Instant::now();
        let response = router
            .clone()
            .oneshot(request.body(case.body).unwrap())
            .await
            .unwrap();
        let code = response.status().as_u16();
        let mut body = response.into_body().into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        let elapsed = started.elapsed();
        let status: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let after = store.current_revision().await.unwrap();
        let fields: Vec<&str> = status["details"]["causes"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["field"].as_str()).collect())
            .unwrap_or_default();
        let ok = code == case.code
            && status["kind"] == "Status"
            && status["reason"] == case.reason
            && status["code"] == case.code
            && case.fields.iter().all(|f| fields.contains(f))
            && after == before;
        if !ok {
            failures.push(format!(
                "{}: got {code} {} fields {fields:?} (revision {before} -> {after}) in {elapsed:?}; expected {} {} {:?}",
                case.name, status["reason"], case.code, case.reason, case.fields
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Unknown fields are dropped with a `Warning` header each under the
/// default field validation, and refused under Strict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_get_warnings() {
    let dir = tempfile::TempDir::new().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("s.redb"))).unwrap());
    let api = Api::new(store);
    api.bootstrap().await.unwrap();
    let request = Request::builder()
        .method(Method::POST)
        .uri(PODS)
        .header("content-type", "application/json")
        .extension(Identity::Admin)
        .body(Body::from(pod(|p| {
            p["spec"]["bogus"] = json!(1);
            p["extra"] = json!("x");
        })))
        .unwrap();
    let response = api.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let warnings: Vec<&str> = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("unknown field \\\"spec.bogus\\\"")),
        "{warnings:?}"
    );
}
