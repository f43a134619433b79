//! Server-side tables as clients read them: `Accept: ...;as=Table` on get,
//! list and watch over HTTP (includeObject modes, v1 and v1beta1,
//! pagination and selectors unchanged, Table watch events with headers
//! once), and the real kubectl against an in-process server printing the
//! columns and values Kubernetes prints: `get pods` (and `-o wide`) with
//! status reasons and restarts, `get nodes`, several kinds at once,
//! `get events`, `get pods -w`, and `describe` showing events (skipped
//! with a message when kubectl is not on PATH).

use std::process::Stdio;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::support::cluster::{Answer, Cluster, kubectl_available};

/// kubectl's `Accept` for `get`.
const KUBECTL_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const TABLE_V1: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const TABLE_V1BETA1: &str = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";

/// What the table tests ask of a cluster.
impl Cluster {
    async fn get_accepting(&self, path: &str, accept: &str) -> Answer {
        self.send(Method::GET, path, &[("accept", accept)], None)
            .await
    }

    /// A Table answer to a GET of `path` with `accept`.
    async fn table(&self, path: &str, accept: &str) -> Value {
        let answer = self.get_accepting(path, accept).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        let table = answer.json();
        assert_eq!(table["kind"], "Table", "{path}: {table}");
        table
    }

    /// Creates `object` at `collection` (with the collection's apiVersion
    /// and kind); the stored object.
    async fn create(&self, collection: &str, mut object: Value) -> Value {
        let (api_version, kind) = match collection.rsplit('/').next().unwrap() {
            "pods" => ("v1", "Pod"),
            "nodes" => ("v1", "Node"),
            "services" => ("v1", "Service"),
            "configmaps" => ("v1", "ConfigMap"),
            "secrets" => ("v1", "Secret"),
            "events" => ("v1", "Event"),
            "deployments" => ("apps/v1", "Deployment"),
            "replicasets" => ("apps/v1", "ReplicaSet"),
            other => panic!("no kind for {other}"),
        };
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        let answer = self
            .send(
                Method::POST,
                collection,
                &[("content-type", "application/json")],
                Some(&object),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.json()
    }

    /// Merges `status` into the status of the object at `path`.
    async fn set_status(&self, path: &str, status: Value) {
        let answer = self
            .send(
                Method::PATCH,
                &format!("{path}/status"),
                &[("content-type", "application/merge-patch+json")],
                Some(&json!({"status": status})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }

    /// Runs kubectl; asserts success with nothing on stderr, returns stdout.
    async fn kubectl_out(&self, args: &[&str]) -> String {
        self.kubectl(args).await.clean().to_owned()
    }
}

/// A time `seconds` ago, as the API writes times.
fn ago(seconds: i64) -> String {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now - seconds)
        .unwrap()
        .to_string()
}

/// An age kubectl prints for something created during the test.
fn is_fresh_age(cell: &str) -> bool {
    cell.strip_suffix('s')
        .is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The cells of one line of kubectl's table output (its columns are at
/// least three spaces apart; cells hold single spaces at most), with
/// fresh ages written `<age>`.
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(|cell| {
            if is_fresh_age(cell) {
                "<age>".to_owned()
            } else {
                cell.to_owned()
            }
        })
        .collect()
}

/// kubectl's table output as rows of cells, header first.
fn rows(output: &str) -> Vec<Vec<String>> {
    output.lines().map(cells).collect()
}

/// `rows` as `&str` for comparison with literals.
fn as_strs(rows: &[Vec<String>]) -> Vec<Vec<&str>> {
    rows.iter()
        .map(|row| row.iter().map(String::as_str).collect())
        .collect()
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": spec})
}

fn app() -> Value {
    json!({"name": "app", "image": "ghcr.io/skiff-dev/hello:1"})
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test]
async fn get_and_list_answer_tables_with_the_object_asked_for() {
    let cluster = Cluster::start().await;
    let created = cluster
        .create(
            PODS,
            pod("web", json!({"nodeName": "n1", "containers": [app()]})),
        )
        .await;
    cluster
        .set_status(
            &format!("{PODS}/web"),
            json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}], "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}
            ]}),
        )
        .await;

    // kubectl's Accept on a get: a v1 Table of one row with
    // PartialObjectMetadata, every column (wide ones at priority 1).
    let answer = cluster
        .get_accepting(&format!("{PODS}/web"), KUBECTL_TABLE)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.content_type(), TABLE_V1);
    let table = answer.json();
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    let columns: Vec<(&str, i64)> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
    );
    assert_eq!(table["columnDefinitions"][0]["format"], "name");
    assert!(
        !table["columnDefinitions"][1]["description"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let row = &table["rows"][0];
    let cells = row["cells"].as_array().unwrap();
    assert_eq!(
        cells[..4],
        [json!("web"), json!("1/1"), json!("Running"), json!("0")]
    );
    assert!(is_fresh_age(cells[4].as_str().unwrap()), "{row}");
    assert_eq!(
        cells[5..],
        [
            json!("10.0.0.5"),
            json!("n1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    assert_eq!(
        row["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": row["object"]["metadata"]})
    );
    assert_eq!(row["object"]["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(row["object"]["metadata"]["namespace"], "default");
    let rv = row["object"]["metadata"]["resourceVersion"].clone();
    assert_eq!(table["metadata"], json!({"resourceVersion": rv}));

    // includeObject: None drops the object, Object carries all of it.
    let none = cluster
        .table(&format!("{PODS}/web?includeObject=None"), TABLE_V1)
        .await;
    assert!(none["rows"][0].get("object").is_none(), "{none}");
    let whole = cluster
        .table(&format!("{PODS}/web?includeObject=Object"), TABLE_V1)
        .await;
    assert_eq!(whole["rows"][0]["object"]["kind"], "Pod");
    assert_eq!(whole["rows"][0]["object"]["spec"]["nodeName"], "n1");
    let bad = cluster
        .get_accepting(&format!("{PODS}/web?includeObject=All"), TABLE_V1)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(
        bad.json()["message"],
        "Unable to convert to Table as requested: includeObject: Unsupported value: \"All\": supported values: \"\", \"Metadata\", \"None\", \"Object\""
    );

    // v1beta1 when that is all the client takes.
    let beta = cluster.get_accepting(PODS, TABLE_V1BETA1).await;
    assert_eq!(beta.content_type(), TABLE_V1BETA1);
    let beta = beta.json();
    assert_eq!(beta["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(
        beta["rows"][0]["object"]["apiVersion"],
        "meta.k8s.io/v1beta1"
    );

    // Without a Table in Accept: the objects, as before.
    let plain = cluster
        .get_accepting(&format!("{PODS}/web"), "application/json")
        .await;
    assert_eq!(plain.json()["kind"], "Pod");
    let list = cluster.get_accepting(PODS, "application/json").await.json();
    assert_eq!(list["kind"], "PodList");
    // Errors stay Statuses.
    let missing = cluster
        .get_accepting(&format!("{PODS}/nope"), KUBECTL_TABLE)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["reason"], "NotFound");

    // Subresource status and cluster-scoped resources print the same way.
    let status = cluster
        .table(&format!("{PODS}/web/status"), KUBECTL_TABLE)
        .await;
    assert_eq!(status["rows"][0]["cells"][2], "Running");
    let runtime_classes = cluster
        .table("/apis/node.k8s.io/v1/runtimeclasses", KUBECTL_TABLE)
        .await;
    let names: Vec<(&str, &str)> = runtime_classes["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cells"][0].as_str().unwrap(),
                r["cells"][1].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("runc", "runc"), ("wasmtime", "wasmtime")]);
    cluster.stop().await;
}

#[tokio::test]
async fn table_lists_page_and_select_like_lists() {
    let cluster = Cluster::start().await;
    let configmaps = "/api/v1/namespaces/default/configmaps";
    for i in 1..=5 {
        let tier = if i % 2 == 1 { "a" } else { "b" };
        cluster
            .create(
                configmaps,
                json!({"metadata": {"name": format!("c{i}"), "labels": {"tier": tier}},
                       "data": {"k": "v"}}),
            )
            .await;
    }
    let names = |table: &Value| -> Vec<String> {
        table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["cells"][0].as_str().unwrap().to_owned())
            .collect()
    };

    let first = cluster
        .table(&format!("{configmaps}?limit=2"), KUBECTL_TABLE)
        .await;
    assert_eq!(names(&first), ["c1", "c2"]);
    assert_eq!(first["rows"][0]["cells"][1], 1, "{first}");
    let revision = first["metadata"]["resourceVersion"].as_str().unwrap();
    let token = first["metadata"]["continue"].as_str().unwrap();
    // A write between pages does not show: the pages read one revision.
    cluster
        .create(configmaps, json!({"metadata": {"name": "c0"}}))
        .await;
    let second = cluster
        .table(
            &format!("{configmaps}?limit=2&continue={token}"),
            KUBECTL_TABLE,
        )
        .await;
    assert_eq!(names(&second), ["c3", "c4"]);
    assert_eq!(second["metadata"]["resourceVersion"], revision);
    let token = second["metadata"]["continue"].as_str().unwrap();
    let last = cluster
        .table(
            &format!("{configmaps}?limit=2&continue={token}"),
            KUBECTL_TABLE,
        )
        .await;
    assert_eq!(names(&last), ["c5"]);
    assert!(last["metadata"].get("continue").is_none(), "{last}");
    // Each page has its column definitions.
    assert_eq!(
        last["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Name", "Data", "Age"]
    );

    let selected = cluster
        .table(
            &format!("{configmaps}?labelSelector=tier%3Da"),
            KUBECTL_TABLE,
        )
        .await;
    assert_eq!(names(&selected), ["c1", "c3", "c5"]);
    let by_name = cluster
        .table(
            &format!("{configmaps}?fieldSelector=metadata.name%3Dc2"),
            KUBECTL_TABLE,
        )
        .await;
    assert_eq!(names(&by_name), ["c2"]);
    let unsupported = cluster
        .get_accepting(
            &format!("{configmaps}?fieldSelector=data%3Dx"),
            KUBECTL_TABLE,
        )
        .await;
    assert_eq!(unsupported.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unsupported.json()["message"],
        "field label not supported: data"
    );
    // No matches: an empty table, columns still there.
    let empty = cluster
        .table(
            &format!("{configmaps}?labelSelector=tier%3Dz"),
            KUBECTL_TABLE,
        )
        .await;
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(empty["columnDefinitions"].as_array().unwrap().len(), 3);
    cluster.stop().await;
}

#[tokio::test]
async fn watches_stream_table_events_with_headers_once() {
    let cluster = Cluster::start().await;
    for name in ["a", "b"] {
        cluster
            .create(PODS, pod(name, json!({"containers": [app()]})))
            .await;
    }
    let answer = cluster
        .get_accepting(
            &format!("{PODS}?watch=true&timeoutSeconds=1"),
            KUBECTL_TABLE,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let events: Vec<Value> = answer
        .body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{}", answer.body);
    for (event, name) in events.iter().zip(["a", "b"]) {
        assert_eq!(event["type"], "ADDED");
        assert_eq!(event["object"]["kind"], "Table");
        assert_eq!(event["object"]["apiVersion"], "meta.k8s.io/v1");
        let rows = event["object"]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["cells"][0], name);
        assert_eq!(rows[0]["cells"][2], "Pending");
        assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(
            event["object"]["metadata"]["resourceVersion"],
            rows[0]["object"]["metadata"]["resourceVersion"]
        );
    }
    assert_eq!(
        events[0]["object"]["columnDefinitions"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    assert_eq!(events[1]["object"]["columnDefinitions"], json!([]));

    // A plain watch still streams the objects themselves.
    let plain = cluster
        .get_accepting(
            &format!("{PODS}?watch=true&timeoutSeconds=1"),
            "application/json",
        )
        .await;
    let first: Value = serde_json::from_str(plain.body.lines().next().unwrap()).unwrap();
    assert_eq!(first["object"]["kind"], "Pod");
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_get_pods_prints_kubernetes_columns_and_status_reasons() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let on_n1 = |containers: Value| json!({"nodeName": "n1", "containers": containers});
    cluster
        .create(PODS, pod("crash", on_n1(json!([app()]))))
        .await;
    cluster
        .set_status(
            &format!("{PODS}/crash"),
            json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.6"}], "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 5, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(20 * 60)}},
            }]}),
        )
        .await;
    cluster
        .create(PODS, pod("done", on_n1(json!([app()]))))
        .await;
    cluster
        .set_status(
            &format!("{PODS}/done"),
            json!({"phase": "Succeeded", "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }]}),
        )
        .await;
    let mut gone = pod("gone", on_n1(json!([app()])));
    gone["metadata"]["finalizers"] = json!(["example.com/hold"]);
    cluster.create(PODS, gone).await;
    cluster
        .set_status(&format!("{PODS}/gone"), json!({"phase": "Running"}))
        .await;
    let deleted = cluster
        .send(Method::DELETE, &format!("{PODS}/gone"), &[], None)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.body);
    let mut init = on_n1(json!([app()]));
    init["initContainers"] = json!([{"name": "setup", "image": "busybox:1.36"}]);
    cluster.create(PODS, pod("init", init)).await;
    cluster
        .set_status(
            &format!("{PODS}/init"),
            json!({"phase": "Pending",
                   "initContainerStatuses": [{"name": "setup", "ready": false, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}],
                   "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "x", "imageID": "", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        )
        .await;
    cluster
        .create(PODS, pod("pending", json!({"containers": [app()]})))
        .await;
    let mut web = on_n1(json!([app(), {"name": "proxy", "image": "envoy:1.30"}]));
    web["readinessGates"] = json!([{"conditionType": "example.com/lb"}]);
    cluster.create(PODS, pod("web", web)).await;
    let ready = |name: &str| json!({"name": name, "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}});
    cluster
        .set_status(
            &format!("{PODS}/web"),
            json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}],
                   "conditions": [{"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "True"}],
                   "containerStatuses": [ready("app"), ready("proxy")]}),
        )
        .await;

    let output = cluster.kubectl_out(&["get", "pods"]).await;
    assert_eq!(
        as_strs(&rows(&output)),
        [
            vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            vec!["crash", "0/1", "CrashLoopBackOff", "5 (20m ago)", "<age>"],
            vec!["done", "0/1", "Completed", "0", "<age>"],
            vec!["gone", "0/1", "Terminating", "0", "<age>"],
            vec!["init", "0/1", "Init:0/1", "0", "<age>"],
            vec!["pending", "0/1", "Pending", "0", "<age>"],
            vec!["web", "2/2", "Running", "0", "<age>"],
        ]
    );
    let wide = cluster.kubectl_out(&["get", "pods", "-o", "wide"]).await;
    let none = "<none>";
    assert_eq!(
        as_strs(&rows(&wide)),
        [
            vec![
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES"
            ],
            vec![
                "crash",
                "0/1",
                "CrashLoopBackOff",
                "5 (20m ago)",
                "<age>",
                "10.0.0.6",
                "n1",
                none,
                none
            ],
            vec![
                "done",
                "0/1",
                "Completed",
                "0",
                "<age>",
                none,
                "n1",
                none,
                none
            ],
            vec![
                "gone",
                "0/1",
                "Terminating",
                "0",
                "<age>",
                none,
                "n1",
                none,
                none
            ],
            vec![
                "init", "0/1", "Init:0/1", "0", "<age>", none, "n1", none, none
            ],
            vec![
                "pending", "0/1", "Pending", "0", "<age>", none, none, none, none
            ],
            vec![
                "web", "2/2", "Running", "0", "<age>", "10.0.0.5", "n1", none, "1/1"
            ],
        ]
    );
    // One pod by name; across namespaces the metadata in each row gives
    // kubectl the NAMESPACE column; --show-labels reads it too.
    let one = cluster.kubectl_out(&["get", "pod", "web"]).await;
    assert_eq!(
        as_strs(&rows(&one))[1],
        ["web", "2/2", "Running", "0", "<age>"]
    );
    let all = cluster.kubectl_out(&["get", "pods", "-A"]).await;
    assert_eq!(
        as_strs(&rows(&all))[..2],
        [
            vec!["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            vec![
                "default",
                "crash",
                "0/1",
                "CrashLoopBackOff",
                "5 (20m ago)",
                "<age>"
            ],
        ]
    );
    let labeled = cluster
        .kubectl_out(&["get", "pod", "pending", "--show-labels"])
        .await;
    assert_eq!(
        as_strs(&rows(&labeled)),
        [
            vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"],
            vec!["pending", "0/1", "Pending", "0", "<age>", "<none>"],
        ]
    );
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_get_nodes_shows_status_roles_and_versions() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    cluster
        .create(
            "/api/v1/nodes",
            json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}}}),
        )
        .await;
    cluster
        .set_status(
            "/api/v1/nodes/n1",
            json!({
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "n1"}],
                "nodeInfo": {
                    "kubeletVersion": "v1.37.0-skiff", "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "wasmtime://30.0.0",
                    "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": "",
                    "operatingSystem": "linux", "architecture": "amd64",
                },
            }),
        )
        .await;
    cluster
        .create(
            "/api/v1/nodes",
            json!({"metadata": {"name": "n2"}, "spec": {"unschedulable": true}}),
        )
        .await;
    cluster
        .set_status(
            "/api/v1/nodes/n2",
            json!({
                "conditions": [{"type": "Ready", "status": "False"}],
                "nodeInfo": {
                    "kubeletVersion": "v1.36.2", "osImage": "", "kernelVersion": "", "containerRuntimeVersion": "",
                    "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": "",
                    "operatingSystem": "linux", "architecture": "arm64",
                },
            }),
        )
        .await;

    let output = cluster.kubectl_out(&["get", "nodes"]).await;
    assert_eq!(
        as_strs(&rows(&output)),
        [
            vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            vec!["n1", "Ready", "control-plane", "<age>", "v1.37.0-skiff"],
            vec![
                "n2",
                "NotReady,SchedulingDisabled",
                "<none>",
                "<age>",
                "v1.36.2"
            ],
        ]
    );
    let wide = cluster.kubectl_out(&["get", "nodes", "-o", "wide"]).await;
    assert_eq!(
        as_strs(&rows(&wide)),
        [
            vec![
                "NAME",
                "STATUS",
                "ROLES",
                "AGE",
                "VERSION",
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME"
            ],
            vec![
                "n1",
                "Ready",
                "control-plane",
                "<age>",
                "v1.37.0-skiff",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "wasmtime://30.0.0"
            ],
            vec![
                "n2",
                "NotReady,SchedulingDisabled",
                "<none>",
                "<age>",
                "v1.36.2",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ],
        ]
    );
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_get_several_kinds_prints_each_with_its_columns() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let template = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "ghcr.io/skiff-dev/hello:1"}]},
    });
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    cluster
        .create(
            deployments,
            json!({"metadata": {"name": "web"}, "spec": {
                "replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template,
            }}),
        )
        .await;
    cluster
        .set_status(
            &format!("{deployments}/web"),
            json!({"replicas": 2, "readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}),
        )
        .await;
    let replica_sets = "/apis/apps/v1/namespaces/default/replicasets";
    cluster
        .create(
            replica_sets,
            json!({"metadata": {"name": "web-7c9"}, "spec": {
                "replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template,
            }}),
        )
        .await;
    cluster
        .set_status(
            &format!("{replica_sets}/web-7c9"),
            json!({"replicas": 2, "readyReplicas": 1}),
        )
        .await;
    cluster
        .create(
            "/api/v1/namespaces/default/services",
            json!({"metadata": {"name": "web"}, "spec": {
                "type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}],
            }}),
        )
        .await;
    cluster
        .create(
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}}),
        )
        .await;
    cluster
        .create(
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "creds"}, "data": {"user": "YWRtaW4=", "password": "czNjcjN0"}}),
        )
        .await;

    let output = cluster
        .kubectl_out(&["get", "deploy,rs,svc,cm,secrets,ns,runtimeclasses"])
        .await;
    let sections: Vec<Vec<Vec<String>>> = output.split("\n\n").map(rows).collect();
    let sections: Vec<Vec<Vec<&str>>> = sections.iter().map(|s| as_strs(s)).collect();
    assert_eq!(
        sections,
        [
            vec![
                vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                vec!["deployment.apps/web", "1/2", "2", "1", "<age>"],
            ],
            vec![
                vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
                vec!["replicaset.apps/web-7c9", "2", "2", "1", "<age>"],
            ],
            vec![
                vec![
                    "NAME",
                    "TYPE",
                    "CLUSTER-IP",
                    "EXTERNAL-IP",
                    "PORT(S)",
                    "AGE"
                ],
                vec![
                    "service/web",
                    "NodePort",
                    "10.96.0.20",
                    "<none>",
                    "80:30080/TCP",
                    "<age>"
                ],
            ],
            vec![
                vec!["NAME", "DATA", "AGE"],
                vec!["configmap/cfg", "2", "<age>"],
            ],
            vec![
                vec!["NAME", "TYPE", "DATA", "AGE"],
                vec!["secret/creds", "Opaque", "2", "<age>"],
            ],
            vec![
                vec!["NAME", "STATUS", "AGE"],
                vec!["namespace/default", "Active", "<age>"],
                vec!["namespace/kube-node-lease", "Active", "<age>"],
                vec!["namespace/kube-public", "Active", "<age>"],
                vec!["namespace/kube-system", "Active", "<age>"],
            ],
            vec![
                vec!["NAME", "HANDLER", "AGE"],
                vec!["runtimeclass.node.k8s.io/runc", "runc", "<age>"],
                vec!["runtimeclass.node.k8s.io/wasmtime", "wasmtime", "<age>"],
            ],
        ]
    );
    let wide = cluster
        .kubectl_out(&["get", "deploy,rs,svc", "-o", "wide"])
        .await;
    let sections: Vec<Vec<Vec<String>>> = wide.split("\n\n").map(rows).collect();
    assert_eq!(
        as_strs(&sections[0])[1],
        [
            "deployment.apps/web",
            "1/2",
            "2",
            "1",
            "<age>",
            "web",
            "ghcr.io/skiff-dev/hello:1",
            "app=web"
        ]
    );
    assert_eq!(
        as_strs(&sections[1])[1],
        [
            "replicaset.apps/web-7c9",
            "2",
            "2",
            "1",
            "<age>",
            "web",
            "ghcr.io/skiff-dev/hello:1",
            "app=web"
        ]
    );
    assert_eq!(as_strs(&sections[2])[0].last(), Some(&"SELECTOR"), "{wide}");
    assert_eq!(as_strs(&sections[2])[1].last(), Some(&"app=web"));
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_get_events_and_describe_show_events() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let web = cluster
        .create(
            PODS,
            pod("web", json!({"nodeName": "n1", "containers": [app()]})),
        )
        .await;
    let deployment = cluster
        .create(
            "/apis/apps/v1/namespaces/default/deployments",
            json!({"metadata": {"name": "web"}, "spec": {
                "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [app()]}},
            }}),
        )
        .await;
    let events = "/api/v1/namespaces/default/events";
    cluster
        .create(
            events,
            json!({
                "metadata": {"name": "web.1"},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "web",
                                   "uid": web["metadata"]["uid"]},
                "reason": "Scheduled", "message": "Successfully assigned default/web to n1",
                "source": {"component": "default-scheduler"}, "type": "Normal", "count": 1,
                "firstTimestamp": ago(20 * 60), "lastTimestamp": ago(20 * 60),
            }),
        )
        .await;
    cluster
        .create(
            events,
            json!({
                "metadata": {"name": "web.2"},
                "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "web",
                                   "uid": deployment["metadata"]["uid"]},
                "reason": "ScalingReplicaSet", "message": "Scaled up replica set web-7c9 to 2",
                "source": {"component": "deployment-controller"}, "type": "Normal", "count": 1,
                "firstTimestamp": ago(15 * 60), "lastTimestamp": ago(15 * 60),
            }),
        )
        .await;
    cluster
        .create(
            events,
            json!({
                "metadata": {"name": "other.1"},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "other", "uid": "u0"},
                "reason": "BackOff", "message": "Back-off restarting failed container app",
                "source": {"component": "kubelet", "host": "n1"}, "type": "Warning", "count": 4,
                "firstTimestamp": ago(40 * 60), "lastTimestamp": ago(12 * 60),
            }),
        )
        .await;

    let output = cluster.kubectl_out(&["get", "events"]).await;
    assert_eq!(
        as_strs(&rows(&output)),
        [
            vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            vec![
                "12m",
                "Warning",
                "BackOff",
                "pod/other",
                "Back-off restarting failed container app"
            ],
            vec![
                "20m",
                "Normal",
                "Scheduled",
                "pod/web",
                "Successfully assigned default/web to n1"
            ],
            vec![
                "15m",
                "Normal",
                "ScalingReplicaSet",
                "deployment/web",
                "Scaled up replica set web-7c9 to 2"
            ],
        ]
    );
    let wide = cluster.kubectl_out(&["get", "events", "-o", "wide"]).await;
    assert_eq!(
        as_strs(&rows(&wide))[..2],
        [
            vec![
                "LAST SEEN",
                "TYPE",
                "REASON",
                "OBJECT",
                "SUBOBJECT",
                "SOURCE",
                "MESSAGE",
                "FIRST SEEN",
                "COUNT",
                "NAME"
            ],
            vec![
                "12m",
                "Warning",
                "BackOff",
                "pod/other",
                "kubelet, n1",
                "Back-off restarting failed container app",
                "40m",
                "4",
                "other.1"
            ],
        ]
    );

    // describe finds each object's own events by its uid.
    let described = cluster.kubectl_out(&["describe", "pod", "web"]).await;
    let events_of = |text: &str| -> Vec<Vec<String>> {
        let (_, events) = text
            .split_once("\nEvents:")
            .unwrap_or_else(|| panic!("no events in:\n{text}"));
        events
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    assert_eq!(
        events_of(&described),
        [
            vec!["Type", "Reason", "Age", "From", "Message"],
            vec!["----", "------", "----", "----", "-------"],
            vec![
                "Normal",
                "Scheduled",
                "20m",
                "default-scheduler",
                "Successfully",
                "assigned",
                "default/web",
                "to",
                "n1"
            ],
        ]
    );
    // kubectl prints the node as `nodeName/hostIP`; no agent set a host IP.
    assert!(
        described
            .lines()
            .any(|l| l.split_whitespace().eq(["Node:", "n1/"])),
        "{described}"
    );
    let described = cluster
        .kubectl_out(&["describe", "deployment", "web"])
        .await;
    assert_eq!(
        events_of(&described)[2],
        [
            "Normal",
            "ScalingReplicaSet",
            "15m",
            "deployment-controller",
            "Scaled",
            "up",
            "replica",
            "set",
            "web-7c9",
            "to",
            "2"
        ]
    );
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_get_pods_watch_prints_rows_as_pods_change() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    cluster
        .create(
            PODS,
            pod("web", json!({"nodeName": "n1", "containers": [app()]})),
        )
        .await;
    let mut child = cluster
        .kubectl_command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run kubectl");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("kubectl printed a line in time")
            .unwrap()
            .expect("kubectl still runs");
        eprintln!("kubectl get pods -w: {line}");
        cells(&line)
    };
    assert_eq!(
        next_line().await,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(next_line().await, ["web", "0/1", "Pending", "0", "<age>"]);
    cluster
        .set_status(
            &format!("{PODS}/web"),
            json!({"phase": "Running", "containerStatuses": [{
                "name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}},
            }]}),
        )
        .await;
    assert_eq!(next_line().await, ["web", "1/1", "Running", "0", "<age>"]);
    cluster
        .create(PODS, pod("new", json!({"containers": [app()]})))
        .await;
    assert_eq!(next_line().await, ["new", "0/1", "Pending", "0", "<age>"]);
    child.kill().await.unwrap();
    cluster.stop().await;
}
