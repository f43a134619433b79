//! Discovery and OpenAPI as clients read them: the legacy and aggregated
//! discovery documents (groups, resources, verbs, short names, categories,
//! subresources), the OpenAPI v2 and v3 documents (shapes, refs that
//! resolve, `x-kubernetes-group-version-kind`, patch extensions, ETags and
//! hashes, 406 for protobuf only), and the real `kubectl` against an
//! in-process server: `api-resources`, `api-versions`, `get all`,
//! `explain`, and `apply` with validation on (skipped with a message when
//! kubectl is not on PATH).
//!
//! Raw requests go to a plain-HTTP front of the server's in-process
//! service; kubectl uses the server's own kubeconfig (HTTPS), and
//! `server_routes_openapi_itself` checks that the real listener serves
//! `/openapi` behind authentication.

use hyper::header;
use hyper::{Method, StatusCode};
use serde_json::Value;
use skiff_control::apiserver::strategic::meta;

use super::server_bootstrap::{admin_token, get, start_server};
use super::support::cluster::{Answer, Cluster, kubectl_available};

/// client-go's `Accept` on `/api` and `/apis`.
const AGGREGATED_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json;q=0.9";
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

impl Cluster {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::GET, path, headers, None).await
    }
}

impl Answer {
    fn ok_json(&self, what: &str) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{what}: {}", self.body);
        assert!(
            self.content_type().starts_with("application/json"),
            "{what}: {:?}",
            self.headers
        );
        self.json()
    }
}

/// The entry of `name` in an APIResourceList.
fn resource<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

#[tokio::test]
async fn legacy_discovery_lists_resources_with_verbs_short_names_and_subresources() {
    let cluster = Cluster::start().await;
    let api = cluster.get("/api", &[]).await.ok_json("/api");
    assert_eq!(
        (api["kind"].as_str(), strings(&api["versions"])),
        (Some("APIVersions"), vec!["v1"])
    );

    let groups = cluster.get("/apis", &[]).await.ok_json("/apis");
    assert_eq!(groups["kind"], "APIGroupList");
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for group in [
        "apps",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "node.k8s.io",
    ] {
        assert!(names.contains(&group), "{group} in {names:?}");
    }
    let apps = cluster.get("/apis/apps", &[]).await.ok_json("/apis/apps");
    assert_eq!(apps["kind"], "APIGroup");
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");

    let core = cluster.get("/api/v1", &[]).await.ok_json("/api/v1");
    assert_eq!(core["groupVersion"], "v1");
    // Short names, categories and scope as Kubernetes has them.
    for (name, kind, short, categories, namespaced) in [
        ("pods", "Pod", vec!["po"], vec!["all"], true),
        ("nodes", "Node", vec!["no"], vec![], false),
        ("services", "Service", vec!["svc"], vec!["all"], true),
        ("namespaces", "Namespace", vec!["ns"], vec![], false),
        ("configmaps", "ConfigMap", vec!["cm"], vec![], true),
        ("endpoints", "Endpoints", vec!["ep"], vec![], true),
        ("events", "Event", vec!["ev"], vec![], true),
        ("secrets", "Secret", vec![], vec![], true),
    ] {
        let entry = resource(&core, name);
        assert_eq!(entry["kind"], kind, "{name}");
        assert_eq!(entry["namespaced"], namespaced, "{name}");
        assert_eq!(entry["singularName"], kind.to_ascii_lowercase(), "{name}");
        assert_eq!(strings(&entry["verbs"]), ALL_VERBS, "{name}");
        assert_eq!(
            entry.get("shortNames").map(strings).unwrap_or_default(),
            short,
            "{name}"
        );
        assert_eq!(
            entry.get("categories").map(strings).unwrap_or_default(),
            categories,
            "{name}"
        );
        assert!(entry["storageVersionHash"].is_string(), "{name}");
    }
    assert_eq!(
        resource(&core, "pods")["storageVersionHash"],
        "xPOwRZ+Yhw8="
    );
    // Subresources, exactly those served.
    for (name, kind, verbs) in [
        ("pods/status", "Pod", vec!["get", "patch", "update"]),
        ("pods/binding", "Binding", vec!["create"]),
        ("pods/log", "Pod", vec!["get"]),
        ("pods/exec", "PodExecOptions", vec!["create", "get"]),
        ("nodes/status", "Node", vec!["get", "patch", "update"]),
        ("services/status", "Service", vec!["get", "patch", "update"]),
        (
            "namespaces/status",
            "Namespace",
            vec!["get", "patch", "update"],
        ),
        ("namespaces/finalize", "Namespace", vec!["patch", "update"]),
    ] {
        let entry = resource(&core, name);
        assert_eq!(
            (entry["kind"].as_str(), strings(&entry["verbs"])),
            (Some(kind), verbs),
            "{name}"
        );
    }
    let subresources: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str().filter(|n| n.contains('/')))
        .collect();
    assert_eq!(
        subresources,
        [
            "namespaces/status",
            "namespaces/finalize",
            "pods/status",
            "pods/binding",
            "pods/log",
            "pods/exec",
            "nodes/status",
            "services/status"
        ]
    );

    let apps_v1 = cluster
        .get("/apis/apps/v1", &[])
        .await
        .ok_json("/apis/apps/v1");
    for (name, short) in [("deployments", "deploy"), ("replicasets", "rs")] {
        let entry = resource(&apps_v1, name);
        assert_eq!(strings(&entry["shortNames"]), [short]);
        assert_eq!(strings(&entry["categories"]), ["all"]);
        let scale = resource(&apps_v1, &format!("{name}/scale"));
        assert_eq!(
            (&scale["group"], &scale["version"], &scale["kind"]),
            (
                &Value::from("autoscaling"),
                &Value::from("v1"),
                &Value::from("Scale")
            )
        );
        resource(&apps_v1, &format!("{name}/status"));
    }
    let missing = cluster.get("/apis/batch/v1", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    cluster.stop().await;
}

#[tokio::test]
async fn aggregated_discovery_answers_client_gos_accept_header() {
    let cluster = Cluster::start().await;
    for (accept, version) in [
        (AGGREGATED_ACCEPT, "v2"),
        (
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            "v2beta1",
        ),
    ] {
        let apis = cluster.get("/apis", &[("accept", accept)]).await;
        assert_eq!(apis.status, StatusCode::OK);
        assert_eq!(
            apis.header(header::CONTENT_TYPE),
            format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
        );
        let apis = apis.json();
        assert_eq!(apis["kind"], "APIGroupDiscoveryList");
        assert_eq!(apis["apiVersion"], format!("apidiscovery.k8s.io/{version}"));
        let apps = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .expect("apps");
        let deployments = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .expect("deployments");
        assert_eq!(deployments["scope"], "Namespaced");
        assert_eq!(deployments["singularResource"], "deployment");
        assert_eq!(strings(&deployments["shortNames"]), ["deploy"]);
        assert_eq!(strings(&deployments["categories"]), ["all"]);
        assert_eq!(deployments["responseKind"]["kind"], "Deployment");
        let scale = deployments["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .expect("scale");
        assert_eq!(scale["responseKind"]["group"], "autoscaling");
        assert_eq!(strings(&scale["verbs"]), ["get", "patch", "update"]);

        let api = cluster.get("/api", &[("accept", accept)]).await.json();
        let core = &api["items"][0];
        assert_eq!(api["items"].as_array().unwrap().len(), 1);
        assert_eq!(core["metadata"]["name"], "");
        let pods = core["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .expect("pods");
        assert_eq!(strings(&pods["shortNames"]), ["po"]);
        let subresources: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert_eq!(subresources, ["status", "binding", "log", "exec"]);
    }
    // Plain JSON still gets the legacy document.
    let legacy = cluster
        .get("/apis", &[("accept", "application/json")])
        .await;
    assert_eq!(legacy.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(legacy.json()["kind"], "APIGroupList");
    cluster.stop().await;
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match child.as_str() {
                    Some(reference) if key == "$ref" => found.push(reference),
                    _ => refs(child, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|child| refs(child, found)),
        _ => {}
    }
}

fn assert_refs_resolve(document: &Value, prefix: &str, definitions: &Value, what: &str) {
    let mut found = Vec::new();
    refs(document, &mut found);
    assert!(found.len() > 20, "{what}: {} refs", found.len());
    for reference in found {
        let name = reference
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{what}: {reference} is not under {prefix}"));
        assert!(
            definitions.get(name).is_some(),
            "{what}: {reference} does not resolve"
        );
    }
}

/// The patch extensions of every property equal the strategic merge patch
/// metadata table's: absent while the table does not know the field,
/// present as soon as it does.
fn assert_patch_extensions(definitions: &Value, what: &str) -> usize {
    let mut present = 0;
    for (name, definition) in definitions.as_object().unwrap() {
        let Some(properties) = definition["properties"].as_object() else {
            continue;
        };
        for (field, property) in properties {
            let expect = meta::field(name, field);
            let strategy = property["x-kubernetes-patch-strategy"].as_str();
            let merge_key = property["x-kubernetes-patch-merge-key"].as_str();
            assert_eq!(
                (strategy, merge_key),
                (
                    expect.and_then(|m| m.strategy),
                    expect.and_then(|m| m.merge_key)
                ),
                "{what}: {name}.{field}"
            );
            present += usize::from(strategy.is_some());
        }
    }
    present
}

#[tokio::test]
async fn openapi_v2_is_json_with_kinds_refs_and_patch_extensions() {
    let cluster = Cluster::start().await;
    let answer = cluster.get("/openapi/v2", &[]).await;
    let document = answer.ok_json("/openapi/v2");
    assert_eq!(document["swagger"], "2.0");
    let definitions = &document["definitions"];
    assert_refs_resolve(&document, "#/definitions/", definitions, "v2");
    for (name, group, kind) in [
        ("io.k8s.api.core.v1.Pod", "", "Pod"),
        ("io.k8s.api.apps.v1.Deployment", "apps", "Deployment"),
        ("io.k8s.api.core.v1.PodList", "", "PodList"),
        ("io.k8s.api.autoscaling.v1.Scale", "autoscaling", "Scale"),
    ] {
        assert_eq!(
            definitions[name]["x-kubernetes-group-version-kind"],
            serde_json::json!([{"group": group, "kind": kind, "version": "v1"}]),
            "{name}"
        );
    }
    let pod_patch = &document["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert_eq!(pod_patch["x-kubernetes-action"], "patch");
    assert_eq!(pod_patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
    assert!(strings(&pod_patch["consumes"]).contains(&"application/strategic-merge-patch+json"));
    let present = assert_patch_extensions(definitions, "v2");
    eprintln!("v2: {present} properties carry x-kubernetes-patch-strategy");

    // ETag and If-None-Match.
    let etag = answer.header(header::ETAG).to_owned();
    assert!(etag.len() == 130 && etag.starts_with('"'), "{etag}");
    let again = cluster
        .get("/openapi/v2", &[("if-none-match", &etag)])
        .await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (StatusCode::NOT_MODIFIED, "")
    );

    // Protobuf is not served: 406 unless JSON is acceptable too.
    let protobuf = cluster.get("/openapi/v2", &[("accept", V2_PROTOBUF)]).await;
    assert_eq!(
        protobuf.status,
        StatusCode::NOT_ACCEPTABLE,
        "{}",
        protobuf.body
    );
    assert_eq!(protobuf.json()["reason"], "NotAcceptable");
    let either = cluster
        .get(
            "/openapi/v2",
            &[("accept", &format!("{V2_PROTOBUF}, application/json"))],
        )
        .await;
    assert_eq!(either.status, StatusCode::OK);
    cluster.stop().await;
}

#[tokio::test]
async fn openapi_v3_index_and_group_versions_with_hashes() {
    let cluster = Cluster::start().await;
    let index = cluster.get("/openapi/v3", &[]).await.ok_json("/openapi/v3");
    let paths = index["paths"].as_object().unwrap();
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "api/v1",
            "apis/apps/v1",
            "apis/coordination.k8s.io/v1",
            "apis/discovery.k8s.io/v1",
            "apis/node.k8s.io/v1"
        ]
    );
    let mut present = 0;
    for (path, entry) in paths {
        let url = entry["serverRelativeURL"].as_str().unwrap();
        let hash = url
            .strip_prefix(&format!("/openapi/v3/{path}?hash="))
            .unwrap_or_else(|| panic!("{url}"));
        assert_eq!(hash.len(), 128, "{url}");
        let answer = cluster.get(url, &[("accept", "application/json")]).await;
        let document = answer.ok_json(url);
        assert_eq!(answer.header(header::CACHE_CONTROL), "public, immutable");
        assert_eq!(answer.header(header::ETAG), format!("\"{hash}\""));
        assert_eq!(document["openapi"], "3.0.0");
        let schemas = &document["components"]["schemas"];
        assert_refs_resolve(&document, "#/components/schemas/", schemas, path);
        present += assert_patch_extensions(schemas, path);
        // Every operation names its kind and action.
        for (route, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                assert!(
                    operation["x-kubernetes-action"].is_string()
                        && operation["x-kubernetes-group-version-kind"]["kind"].is_string(),
                    "{route} {method}"
                );
            }
        }

        let unchanged = cluster
            .get(url, &[("if-none-match", &format!("\"{hash}\""))])
            .await;
        assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
        let outdated = cluster
            .get(&format!("/openapi/v3/{path}?hash=0123"), &[])
            .await;
        assert_eq!(outdated.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(outdated.header(header::LOCATION), url);
    }
    eprintln!("v3: {present} properties carry x-kubernetes-patch-strategy");

    let core = cluster
        .get("/openapi/v3/api/v1", &[])
        .await
        .ok_json("api/v1");
    let schemas = &core["components"]["schemas"];
    let pod = &schemas["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    assert_eq!(
        pod["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.PodSpec"
    );
    // Patch metadata as Kubernetes publishes it.
    for (definition, field, strategy, merge_key) in [
        (
            "io.k8s.api.core.v1.PodSpec",
            "containers",
            "merge",
            Some("name"),
        ),
        (
            "io.k8s.api.core.v1.Container",
            "ports",
            "merge",
            Some("containerPort"),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers",
            "merge",
            None,
        ),
    ] {
        let property = &schemas[definition]["properties"][field];
        assert_eq!(
            (
                property["x-kubernetes-patch-strategy"].as_str(),
                property["x-kubernetes-patch-merge-key"].as_str()
            ),
            (Some(strategy), merge_key),
            "{definition}.{field}"
        );
    }
    let patch = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"),
        "{patch}"
    );
    let apps = cluster
        .get("/openapi/v3/apis/apps/v1", &[])
        .await
        .ok_json("apps/v1");
    assert_eq!(
        apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert_eq!(
        apps["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
            ["x-kubernetes-patch-strategy"],
        "retainKeys"
    );
    let protobuf = cluster
        .get(
            "/openapi/v3/api/v1",
            &[(
                "accept",
                "application/com.github.proto-openapi.spec.v3@v1.0+protobuf",
            )],
        )
        .await;
    assert_eq!(protobuf.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        cluster.get("/openapi/v3/apis/batch/v1", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    cluster.stop().await;
}

#[tokio::test]
async fn server_routes_openapi_itself() {
    let (_dir, server) = start_server().await;
    let token = admin_token(&server);
    for path in ["/openapi/v2", "/openapi/v3", "/openapi/v3/api/v1"] {
        let answer = get(&server, path, Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        // Authenticated like every non-public path.
        assert_eq!(
            get(&server, path, None).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    server.stop().await.unwrap();
}

/// The columns of the `kubectl api-resources` row of `name`.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|columns| columns.first() == Some(&name))
        .unwrap_or_else(|| panic!("{name} not in\n{table}"))
}

#[tokio::test]
async fn kubectl_api_resources_and_api_versions() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let table = cluster.kubectl(&["api-resources"]).await;
    let table = table.clean();
    for expect in [
        ["pods", "po", "v1", "true", "Pod"].as_slice(),
        &["nodes", "no", "v1", "false", "Node"],
        &["services", "svc", "v1", "true", "Service"],
        &["namespaces", "ns", "v1", "false", "Namespace"],
        &["configmaps", "cm", "v1", "true", "ConfigMap"],
        &["endpoints", "ep", "v1", "true", "Endpoints"],
        &["events", "ev", "v1", "true", "Event"],
        &["secrets", "v1", "true", "Secret"],
        &["deployments", "deploy", "apps/v1", "true", "Deployment"],
        &["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
        &["leases", "coordination.k8s.io/v1", "true", "Lease"],
        &[
            "endpointslices",
            "discovery.k8s.io/v1",
            "true",
            "EndpointSlice",
        ],
        &["runtimeclasses", "node.k8s.io/v1", "false", "RuntimeClass"],
    ] {
        assert_eq!(row(table, expect[0]), expect, "{table}");
    }
    // Subresources are not listed.
    assert!(!table.contains("pods/status"), "{table}");

    let all = cluster
        .kubectl(&["api-resources", "--categories=all", "-o", "name"])
        .await;
    let mut all: Vec<&str> = all.clean().lines().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        ["deployments.apps", "pods", "replicasets.apps", "services"]
    );

    let versions = cluster.kubectl(&["api-versions"]).await;
    assert_eq!(
        versions.clean().lines().collect::<Vec<_>>(),
        [
            "apps/v1",
            "coordination.k8s.io/v1",
            "discovery.k8s.io/v1",
            "node.k8s.io/v1",
            "v1"
        ]
    );
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_explain_prints_field_docs() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let explain = cluster
        .kubectl(&["explain", "pod.spec.runtimeClassName"])
        .await;
    let text = explain.clean();
    for expect in [
        "KIND:       Pod",
        "VERSION:    v1",
        "FIELD: runtimeClassName <string>",
        "RuntimeClassName refers to a RuntimeClass object",
    ] {
        assert!(text.contains(expect), "{expect:?} in\n{text}");
    }
    let explain = cluster
        .kubectl(&["explain", "deployment.spec.strategy", "--recursive"])
        .await;
    let text = explain.clean();
    for expect in [
        "GROUP:      apps",
        "KIND:       Deployment",
        "FIELD: strategy <DeploymentStrategy>",
        "rollingUpdate\t<RollingUpdateDeployment>",
        "maxSurge\t<IntOrString>",
        "maxUnavailable\t<IntOrString>",
        "type\t<string>",
    ] {
        assert!(text.contains(expect), "{expect:?} in\n{text}");
    }
    cluster.stop().await;
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  runtimeClassName: wasmtime
  containers:
  - name: web
    image: ghcr.io/skiff-dev/hello:1
    ports:
    - containerPort: 8080
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: ghcr.io/skiff-dev/hello:1
";

#[tokio::test]
async fn kubectl_apply_validates_against_the_server_and_reapplies_unchanged() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let pod = cluster.manifest("pod.yaml", POD);
    let deployment = cluster.manifest("deployment.yaml", DEPLOYMENT);
    // Validation on (kubectl's default is strict): no --validate=false.
    let created = cluster.kubectl(&["apply", "-f", &pod]).await;
    assert_eq!(created.clean(), "pod/web created\n");
    let created = cluster
        .kubectl(&["apply", "--validate=strict", "-f", &deployment])
        .await;
    assert_eq!(created.clean(), "deployment.apps/web created\n");

    // Unchanged: kubectl computes an empty patch and sends nothing.
    let again = cluster.kubectl(&["apply", "-f", &pod]).await;
    assert_eq!(again.clean(), "pod/web unchanged\n");

    // An unknown field: refused under strict, with kube-apiserver's words.
    let bad = cluster.manifest(
        "bad.yaml",
        &POD.replace("name: web\n  labels", "name: bad\n  labels")
            .replace("  runtimeClassName", "  bogus: 1\n  runtimeClassName"),
    );
    let refused = cluster
        .kubectl(&["apply", "--validate=strict", "-f", &bad])
        .await;
    assert!(!refused.success, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!(
            "Error from server (BadRequest): error when creating \"{bad}\": Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.bogus\""
        )),
        "{refused:?}"
    );
    let absent = cluster.kubectl(&["get", "pod", "bad"]).await;
    assert!(!absent.success, "{absent:?}");
    // Under warn, created with kubectl's warning.
    let warned = cluster
        .kubectl(&["apply", "--validate=warn", "-f", &bad])
        .await;
    assert!(warned.success, "{warned:?}");
    assert_eq!(warned.stdout, "pod/bad created\n");
    assert!(
        warned
            .stderr
            .contains("Warning: unknown field \"spec.bogus\""),
        "{warned:?}"
    );

    // `get all` resolves the `all` category across groups.
    let all = cluster.kubectl(&["get", "all", "-o", "name"]).await;
    let mut names: Vec<&str> = all.clean().lines().collect();
    names.sort_unstable();
    assert!(
        names.contains(&"pod/web") && names.contains(&"deployment.apps/web"),
        "{names:?}"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_apply_of_a_changed_manifest_patches() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let pod = cluster.manifest("pod.yaml", POD);
    assert_eq!(
        cluster.kubectl(&["apply", "-f", &pod]).await.clean(),
        "pod/web created\n"
    );
    let changed = cluster.manifest(
        "changed.yaml",
        &POD.replace("app: web", "app: web\n    tier: front"),
    );
    let patched = cluster.kubectl(&["apply", "-f", &changed]).await;
    assert_eq!(patched.clean(), "pod/web configured\n");
    let labels = cluster
        .kubectl(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.metadata.labels.tier}",
        ])
        .await;
    assert_eq!(labels.clean(), "front");
    cluster.stop().await;
}
