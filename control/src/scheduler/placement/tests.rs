//! Placement tables: each filter, each score, the Unschedulable messages,
//! sampling and round-robin, and the snapshot's bookkeeping. Nodes and pods
//! are written as JSON merged over a Ready 4 cpu / 16Gi / 110 pods node and a
//! one-container pod.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use serde_json::{Value, json};
use skiff_sdk::labels::{OCI_ENABLED, WASM_ENABLED};

use super::*;

/// A Ready node with 4 cpu, 16Gi memory and 110 pods, with `extra` merged
/// in (JSON merge patch).
fn node(name: &str, extra: Value) -> Node {
    let mut base = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    });
    json_patch::merge(&mut base, &extra);
    serde_json::from_value(base).expect("node")
}

/// A pod `name` (uid `uid-<name>`) with one container `app` (image
/// `app:1`, no requests), with `extra` merged in.
fn pod(name: &str, extra: Value) -> Pod {
    let mut base = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    });
    json_patch::merge(&mut base, &extra);
    serde_json::from_value(base).expect("pod")
}

/// A pod whose one container requests `requests`.
fn requesting(name: &str, requests: Value) -> Pod {
    pod(
        name,
        json!({"spec": {"containers": [
            {"name": "app", "image": "app:1", "resources": {"requests": requests}},
        ]}}),
    )
}

/// `pod` bound to `node`.
fn bound(mut pod: Pod, node: &str) -> Pod {
    pod.spec.as_mut().expect("spec").node_name = Some(node.to_owned());
    pod
}

/// The RuntimeClasses a skiff cluster installs (`Api::bootstrap`), plus
/// `overhead` (500m cpu overhead) and `tolerant` (tolerates `dedicated`).
fn runtime_class(name: &str) -> Option<RuntimeClass> {
    let class = match name {
        "wasmtime" => json!({"handler": "wasmtime",
            "scheduling": {"nodeSelector": {WASM_ENABLED: "true"}}}),
        "runc" => json!({"handler": "runc",
            "scheduling": {"nodeSelector": {OCI_ENABLED: "true"}}}),
        "overhead" => json!({"handler": "runc", "overhead": {"podFixed": {"cpu": "500m"}}}),
        "tolerant" => json!({"handler": "runc", "scheduling": {"tolerations": [
            {"key": "dedicated", "operator": "Exists"}]}}),
        _ => return None,
    };
    let mut class = class;
    class["metadata"] = json!({"name": name});
    Some(serde_json::from_value(class).expect("runtime class"))
}

/// The pod's requirements, with its RuntimeClass looked up as the
/// scheduler loop will.
fn requirements(pod: &Pod) -> Requirements {
    let class = pod
        .spec
        .as_ref()
        .and_then(|s| s.runtime_class_name.as_deref())
        .and_then(runtime_class);
    Requirements::new(pod, class.as_ref())
}

fn snapshot(nodes: &[Node], pods: &[Pod]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for node in nodes {
        snapshot.upsert_node(node);
    }
    for pod in pods {
        snapshot.add_pod(pod);
    }
    snapshot
}

/// Places `pod` from start 0; `Ok(node)` or `Err(message)`.
fn decide(nodes: &[Node], bound: &[Pod], pod: &Pod) -> Result<String, String> {
    place(&requirements(pod), &snapshot(nodes, bound), 0)
        .map(|placement| placement.node)
        .map_err(|unschedulable| unschedulable.to_string())
}

/// One table row: what it shows, the nodes, pods already bound, the pod,
/// and the node it must go to or the exact message.
struct Case {
    name: &'static str,
    nodes: Vec<Node>,
    bound: Vec<Pod>,
    pod: Pod,
    expect: Result<&'static str, &'static str>,
}

fn case(
    name: &'static str,
    nodes: Vec<Node>,
    pod: Pod,
    expect: Result<&'static str, &'static str>,
) -> Case {
    Case {
        name,
        nodes,
        bound: Vec::new(),
        pod,
        expect,
    }
}

fn check(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let got = decide(&case.nodes, &case.bound, &case.pod);
        let expect = case.expect.map(str::to_owned).map_err(str::to_owned);
        if got != expect {
            failures.push(format!(
                "{}:\n  expected {expect:?}\n  got      {got:?}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const AFFINITY: &str =
    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.";

#[test]
fn node_unschedulable_and_not_ready() {
    let cordoned = || node("a", json!({"spec": {"unschedulable": true}}));
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    check(vec![
        case(
            "a cordoned node is skipped",
            vec![cordoned(), node("b", json!({}))],
            pod("p", json!({})),
            Ok("b"),
        ),
        case(
            "only a cordoned node",
            vec![cordoned()],
            pod("p", json!({})),
            Err("0/1 nodes are available: 1 node(s) were unschedulable."),
        ),
        case(
            "the unschedulable taint tolerated",
            vec![cordoned()],
            pod(
                "p",
                json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable",
                "operator": "Exists", "effect": "NoSchedule"}]}}),
            ),
            Ok("a"),
        ),
        case(
            "a NoExecute toleration of it is not enough",
            vec![cordoned()],
            pod(
                "p",
                json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable",
                "operator": "Exists", "effect": "NoExecute"}]}}),
            ),
            Err("0/1 nodes are available: 1 node(s) were unschedulable."),
        ),
        case(
            "Ready False",
            vec![node("a", not_ready.clone()), node("b", json!({}))],
            pod("p", json!({})),
            Ok("b"),
        ),
        case(
            "Ready False, only node",
            vec![node("a", not_ready.clone())],
            pod("p", json!({})),
            Err("0/1 nodes are available: 1 node(s) were not ready."),
        ),
        case(
            "no Ready condition is not ready",
            vec![node(
                "a",
                json!({"status": {"conditions": [{"type": "MemoryPressure", "status": "False"}]}}),
            )],
            pod("p", json!({})),
            Err("0/1 nodes are available: 1 node(s) were not ready."),
        ),
        case(
            "Ready Unknown is not ready",
            vec![node(
                "a",
                json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            )],
            pod("p", json!({})),
            Err("0/1 nodes are available: 1 node(s) were not ready."),
        ),
        case(
            "the not-ready taint tolerated",
            vec![node("a", not_ready)],
            pod(
                "p",
                json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/not-ready",
                "operator": "Exists"}]}}),
            ),
            Ok("a"),
        ),
        case(
            "unschedulable is checked before readiness and taints",
            vec![node(
                "a",
                json!({"spec": {"unschedulable": true,
                "taints": [{"key": "k", "effect": "NoSchedule"}]},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            )],
            pod("p", json!({})),
            Err("0/1 nodes are available: 1 node(s) were unschedulable."),
        ),
    ]);
}

#[test]
fn taints_and_tolerations() {
    let tainted = |effect: &str| {
        node(
            "a",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": effect}]}}),
        )
    };
    let tolerating = |toleration: Value| pod("p", json!({"spec": {"tolerations": [toleration]}}));
    let untolerated = "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}.";
    check(vec![
        case(
            "NoSchedule, no toleration",
            vec![tainted("NoSchedule")],
            pod("p", json!({})),
            Err(untolerated),
        ),
        case(
            "NoExecute, no toleration",
            vec![tainted("NoExecute")],
            pod("p", json!({})),
            Err(untolerated),
        ),
        case(
            "PreferNoSchedule does not filter",
            vec![tainted("PreferNoSchedule")],
            pod("p", json!({})),
            Ok("a"),
        ),
        case(
            "Equal, same key, value and effect",
            vec![tainted("NoSchedule")],
            tolerating(
                json!({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}),
            ),
            Ok("a"),
        ),
        case(
            "empty operator means Equal",
            vec![tainted("NoSchedule")],
            tolerating(json!({"key": "dedicated", "value": "gpu"})),
            Ok("a"),
        ),
        case(
            "Equal, other value",
            vec![tainted("NoSchedule")],
            tolerating(json!({"key": "dedicated", "operator": "Equal", "value": "cpu"})),
            Err(untolerated),
        ),
        case(
            "Exists on the key",
            vec![tainted("NoSchedule")],
            tolerating(json!({"key": "dedicated", "operator": "Exists"})),
            Ok("a"),
        ),
        case(
            "Exists on another key",
            vec![tainted("NoSchedule")],
            tolerating(json!({"key": "other", "operator": "Exists"})),
            Err(untolerated),
        ),
        case(
            "Exists with empty key tolerates every taint",
            vec![tainted("NoExecute")],
            tolerating(json!({"operator": "Exists"})),
            Ok("a"),
        ),
        case(
            "empty effect tolerates NoExecute",
            vec![tainted("NoExecute")],
            tolerating(json!({"key": "dedicated", "operator": "Exists"})),
            Ok("a"),
        ),
        case(
            "a NoSchedule toleration does not tolerate NoExecute",
            vec![tainted("NoExecute")],
            tolerating(json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"})),
            Err(untolerated),
        ),
        case(
            "an unknown operator tolerates nothing",
            vec![tainted("NoSchedule")],
            tolerating(json!({"key": "dedicated", "operator": "Gt", "value": "gpu"})),
            Err(untolerated),
        ),
        case(
            "the first untolerated taint is reported, with an empty value",
            vec![node(
                "a",
                json!({"spec": {"taints": [
                    {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                    {"key": "maintenance", "effect": "NoExecute"},
                ]}}),
            )],
            tolerating(json!({"key": "dedicated", "operator": "Exists"})),
            Err("0/1 nodes are available: 1 node(s) had untolerated taint {maintenance: }."),
        ),
        case(
            "the RuntimeClass's tolerations count",
            vec![tainted("NoSchedule")],
            pod("p", json!({"spec": {"runtimeClassName": "tolerant"}})),
            Ok("a"),
        ),
    ]);
}

#[test]
fn node_selector_and_affinity() {
    let labelled = |name: &str, labels: Value| node(name, json!({"metadata": {"labels": labels}}));
    let zone_a = || labelled("a", json!({"zone": "a", "cores": "8"}));
    let required = |terms: Value| {
        pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}}),
        )
    };
    let expression = |key: &str, operator: &str, values: Value| {
        required(
            json!([{"matchExpressions": [{"key": key, "operator": operator, "values": values}]}]),
        )
    };
    let exists = |key: &str, operator: &str| {
        required(json!([{"matchExpressions": [{"key": key, "operator": operator}]}]))
    };
    let field = |operator: &str, value: &str| {
        required(
            json!([{"matchFields": [{"key": "metadata.name", "operator": operator, "values": [value]}]}]),
        )
    };
    check(vec![
        case(
            "nodeSelector matches",
            vec![zone_a()],
            pod("p", json!({"spec": {"nodeSelector": {"zone": "a"}}})),
            Ok("a"),
        ),
        case(
            "nodeSelector other value",
            vec![zone_a()],
            pod("p", json!({"spec": {"nodeSelector": {"zone": "b"}}})),
            Err(AFFINITY),
        ),
        case(
            "nodeSelector missing label",
            vec![zone_a()],
            pod("p", json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            Err(AFFINITY),
        ),
        case(
            "nodeSelector picks among nodes",
            vec![zone_a(), labelled("b", json!({"zone": "b"}))],
            pod("p", json!({"spec": {"nodeSelector": {"zone": "b"}}})),
            Ok("b"),
        ),
        case(
            "In",
            vec![zone_a()],
            expression("zone", "In", json!(["b", "a"])),
            Ok("a"),
        ),
        case(
            "In, no value matches",
            vec![zone_a()],
            expression("zone", "In", json!(["b"])),
            Err(AFFINITY),
        ),
        case(
            "In, label missing",
            vec![zone_a()],
            expression("disk", "In", json!(["ssd"])),
            Err(AFFINITY),
        ),
        case(
            "NotIn",
            vec![zone_a()],
            expression("zone", "NotIn", json!(["b"])),
            Ok("a"),
        ),
        case(
            "NotIn, value listed",
            vec![zone_a()],
            expression("zone", "NotIn", json!(["a"])),
            Err(AFFINITY),
        ),
        case(
            "NotIn, label missing",
            vec![zone_a()],
            expression("disk", "NotIn", json!(["ssd"])),
            Ok("a"),
        ),
        case("Exists", vec![zone_a()], exists("zone", "Exists"), Ok("a")),
        case(
            "Exists, label missing",
            vec![zone_a()],
            exists("disk", "Exists"),
            Err(AFFINITY),
        ),
        case(
            "DoesNotExist",
            vec![zone_a()],
            exists("disk", "DoesNotExist"),
            Ok("a"),
        ),
        case(
            "DoesNotExist, label present",
            vec![zone_a()],
            exists("zone", "DoesNotExist"),
            Err(AFFINITY),
        ),
        case(
            "Gt",
            vec![zone_a()],
            expression("cores", "Gt", json!(["4"])),
            Ok("a"),
        ),
        case(
            "Gt, equal is not greater",
            vec![zone_a()],
            expression("cores", "Gt", json!(["8"])),
            Err(AFFINITY),
        ),
        case(
            "Gt compares integers, not strings",
            vec![zone_a()],
            expression("cores", "Gt", json!(["10"])),
            Err(AFFINITY),
        ),
        case(
            "Lt",
            vec![zone_a()],
            expression("cores", "Lt", json!(["10"])),
            Ok("a"),
        ),
        case(
            "Lt, greater",
            vec![zone_a()],
            expression("cores", "Lt", json!(["-3"])),
            Err(AFFINITY),
        ),
        case(
            "Gt on a non-integer label",
            vec![zone_a()],
            expression("zone", "Gt", json!(["1"])),
            Err(AFFINITY),
        ),
        case(
            "Gt on a missing label",
            vec![zone_a()],
            expression("disk", "Gt", json!(["1"])),
            Err(AFFINITY),
        ),
        case(
            "Gt with two values is invalid",
            vec![zone_a()],
            expression("cores", "Gt", json!(["1", "2"])),
            Err(AFFINITY),
        ),
        case(
            "In without values is invalid",
            vec![zone_a()],
            expression("zone", "In", json!([])),
            Err(AFFINITY),
        ),
        case(
            "expressions are ANDed",
            vec![zone_a()],
            required(json!([{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "cores", "operator": "Lt", "values": ["4"]},
            ]}])),
            Err(AFFINITY),
        ),
        case(
            "terms are ORed",
            vec![zone_a()],
            required(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]},
            ])),
            Ok("a"),
        ),
        case(
            "an invalid term is skipped, the others still count",
            vec![zone_a()],
            required(json!([
                {"matchExpressions": [{"key": "zone", "operator": "Bogus", "values": ["a"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
            ])),
            Ok("a"),
        ),
        case(
            "an empty term matches nothing",
            vec![zone_a()],
            required(json!([{}])),
            Err(AFFINITY),
        ),
        case(
            "no terms match nothing",
            vec![zone_a()],
            required(json!([])),
            Err(AFFINITY),
        ),
        case(
            "matchFields In",
            vec![zone_a(), labelled("b", json!({}))],
            field("In", "b"),
            Ok("b"),
        ),
        case(
            "matchFields In, other name",
            vec![zone_a()],
            field("In", "b"),
            Err(AFFINITY),
        ),
        case(
            "matchFields NotIn",
            vec![zone_a(), labelled("b", json!({}))],
            field("NotIn", "a"),
            Ok("b"),
        ),
        case(
            "matchFields and matchExpressions are ANDed",
            vec![zone_a()],
            required(json!([{
                "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}],
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}],
            }])),
            Err(AFFINITY),
        ),
        case(
            "nodeSelector and affinity must both match",
            vec![zone_a()],
            pod(
                "p",
                json!({"spec": {"nodeSelector": {"zone": "b"}, "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}}}}}),
            ),
            Err(AFFINITY),
        ),
    ]);
}

#[test]
fn host_ports() {
    let port = |host_ip: Option<&str>, protocol: Option<&str>| {
        let mut port = json!({"containerPort": 80, "hostPort": 8080});
        if let Some(ip) = host_ip {
            port["hostIP"] = json!(ip);
        }
        if let Some(protocol) = protocol {
            port["protocol"] = json!(protocol);
        }
        port
    };
    let with_port = |name: &str, port: Value| {
        pod(
            name,
            json!({"spec": {"containers": [{"name": "app", "image": "app:1", "ports": [port]}]}}),
        )
    };
    let taken =
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.";
    let on_a = |host_ip: Option<&str>, protocol: Option<&str>| {
        vec![bound(with_port("old", port(host_ip, protocol)), "a")]
    };
    let cases = [
        (
            "same port, both any IP",
            on_a(None, None),
            port(None, None),
            Err(taken),
        ),
        (
            "explicit TCP is the default protocol",
            on_a(None, Some("TCP")),
            port(None, None),
            Err(taken),
        ),
        (
            "UDP does not conflict with TCP",
            on_a(None, None),
            port(None, Some("UDP")),
            Ok("a"),
        ),
        (
            "different specific IPs",
            on_a(Some("10.0.0.1"), None),
            port(Some("10.0.0.2"), None),
            Ok("a"),
        ),
        (
            "same specific IP",
            on_a(Some("10.0.0.1"), None),
            port(Some("10.0.0.1"), None),
            Err(taken),
        ),
        (
            "0.0.0.0 wanted, specific used",
            on_a(Some("10.0.0.1"), None),
            port(Some("0.0.0.0"), None),
            Err(taken),
        ),
        (
            "specific wanted, 0.0.0.0 used",
            on_a(Some("0.0.0.0"), None),
            port(Some("10.0.0.2"), None),
            Err(taken),
        ),
        (
            "empty hostIP is 0.0.0.0",
            on_a(Some(""), None),
            port(Some("10.0.0.2"), None),
            Err(taken),
        ),
        ("no pod on the node", vec![], port(None, None), Ok("a")),
        (
            "a finished pod frees its port",
            vec![{
                let mut done = bound(with_port("old", port(None, None)), "a");
                done.status =
                    Some(serde_json::from_value(json!({"phase": "Succeeded"})).expect("status"));
                done
            }],
            port(None, None),
            Ok("a"),
        ),
    ];
    check(
        cases
            .into_iter()
            .map(|(name, bound, wanted, expect)| Case {
                name,
                nodes: vec![node("a", json!({}))],
                bound,
                pod: with_port("new", wanted),
                expect,
            })
            .collect(),
    );
}

/// skiff's interim rule: every pod, Wasm or container, listens on the
/// node's own network, so every containerPort is a host port, for the pod
/// placed and for the pods already there.
#[test]
fn container_ports_are_host_ports_on_the_node_address() {
    let wasm_node = |name: &str| {
        node(
            name,
            json!({"metadata": {"labels": {WASM_ENABLED: "true"}}}),
        )
    };
    let listening = |name: &str, how: Value, ports: Value| {
        let mut extra =
            json!({"spec": {"containers": [{"name": "app", "image": "app:1", "ports": ports}]}});
        json_patch::merge(&mut extra, &json!({"spec": how}));
        pod(name, extra)
    };
    let wasm = || json!({"runtimeClassName": "wasmtime"});
    let host_network = || json!({"hostNetwork": true});
    let plain = || json!({});
    let http = || json!([{"containerPort": 8080}]);
    let taken =
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.";
    let cases = [
        (
            "two Wasm pods on one port",
            vec![bound(listening("old", wasm(), http()), "a")],
            listening("new", wasm(), http()),
            Err(taken),
        ),
        (
            "a Wasm pod's port against a hostPort",
            vec![bound(
                listening(
                    "old",
                    plain(),
                    json!([{"containerPort": 80, "hostPort": 8080}]),
                ),
                "a",
            )],
            listening("new", wasm(), http()),
            Err(taken),
        ),
        (
            "a hostPort against a Wasm pod's port",
            vec![bound(listening("old", wasm(), http()), "a")],
            listening(
                "new",
                plain(),
                json!([{"containerPort": 80, "hostPort": 8080}]),
            ),
            Err(taken),
        ),
        (
            "a host-network pod against a Wasm pod",
            vec![bound(listening("old", wasm(), http()), "a")],
            listening("new", host_network(), http()),
            Err(taken),
        ),
        (
            "a Wasm pod's port against a container pod's",
            vec![bound(listening("old", plain(), http()), "a")],
            listening("new", wasm(), http()),
            Err(taken),
        ),
        (
            "a container pod's port against a Wasm pod's",
            vec![bound(listening("old", wasm(), http()), "a")],
            listening("new", plain(), http()),
            Err(taken),
        ),
        (
            "two container pods on one port",
            vec![bound(listening("old", plain(), http()), "a")],
            listening("new", plain(), http()),
            Err(taken),
        ),
        (
            "another port",
            vec![bound(listening("old", wasm(), http()), "a")],
            listening("new", wasm(), json!([{"containerPort": 8081}])),
            Ok("a"),
        ),
        (
            "another protocol",
            vec![bound(
                listening(
                    "old",
                    host_network(),
                    json!([{"containerPort": 53, "protocol": "UDP"}]),
                ),
                "a",
            )],
            listening("new", wasm(), json!([{"containerPort": 53}])),
            Ok("a"),
        ),
        (
            "a Wasm pod's hostPort and containerPort are both taken",
            vec![bound(
                listening(
                    "old",
                    wasm(),
                    json!([{"containerPort": 8080, "hostPort": 9090}]),
                ),
                "a",
            )],
            listening(
                "new",
                plain(),
                json!([{"containerPort": 80, "hostPort": 9090}]),
            ),
            Err(taken),
        ),
        (
            "a finished Wasm pod frees its port",
            vec![{
                let mut done = bound(listening("old", wasm(), http()), "a");
                done.status =
                    Some(serde_json::from_value(json!({"phase": "Failed"})).expect("status"));
                done
            }],
            listening("new", wasm(), http()),
            Ok("a"),
        ),
    ];
    let mut table: Vec<Case> = cases
        .into_iter()
        .map(|(name, bound, pod, expect)| Case {
            name,
            nodes: vec![wasm_node("a")],
            bound,
            pod,
            expect,
        })
        .collect();
    table.push(Case {
        name: "the node whose port is free",
        nodes: vec![wasm_node("a"), wasm_node("b")],
        bound: vec![bound(listening("old", wasm(), http()), "a")],
        pod: listening("new", wasm(), http()),
        expect: Ok("b"),
    });
    table.push(Case {
        name: "every node's port taken",
        nodes: vec![wasm_node("a"), wasm_node("b")],
        bound: vec![
            bound(listening("old-a", wasm(), http()), "a"),
            bound(listening("old-b", host_network(), http()), "b"),
        ],
        pod: listening("new", wasm(), http()),
        expect: Err(
            "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports.",
        ),
    });
    let own_addresses = || {
        node(
            "a",
            json!({"metadata": {
                "labels": {WASM_ENABLED: "true"},
                "annotations": {"skiff.dev/pod-address-range": "127.1.0.0/24"}
            }}),
        )
    };
    table.push(Case {
        name: "pods with addresses of their own share a container port",
        nodes: vec![own_addresses()],
        bound: vec![bound(listening("old", wasm(), http()), "a")],
        pod: listening("new", wasm(), http()),
        expect: Ok("a"),
    });
    table.push(Case {
        name: "but real host ports stay the node's",
        nodes: vec![own_addresses()],
        bound: vec![bound(
            listening(
                "old",
                wasm(),
                json!([{"containerPort": 80, "hostPort": 8080}]),
            ),
            "a",
        )],
        pod: listening(
            "new",
            plain(),
            json!([{"containerPort": 80, "hostPort": 8080}]),
        ),
        expect: Err(taken),
    });
    check(table);
}

#[test]
fn resources() {
    let gpu_node = |name: &str, gpus: &str| {
        node(
            name,
            json!({"status": {"allocatable": {"nvidia.com/gpu": gpus}}}),
        )
    };
    let with_init = |init: &str, restart_policy: Option<&str>| {
        let mut init =
            json!({"name": "init", "image": "init:1", "resources": {"requests": {"cpu": init}}});
        if let Some(policy) = restart_policy {
            init["restartPolicy"] = json!(policy);
        }
        pod(
            "p",
            json!({"spec": {
                "initContainers": [init],
                "containers": [
                    {"name": "a", "image": "app:1", "resources": {"requests": {"cpu": "1"}}},
                    {"name": "b", "image": "app:1", "resources": {"requests": {"cpu": "1"}}},
                ],
            }}),
        )
    };
    let small = || {
        node(
            "a",
            json!({"status": {"allocatable": {"cpu": "2500m", "memory": "1Gi"}}}),
        )
    };
    check(vec![
        case(
            "fits",
            vec![node("a", json!({}))],
            requesting("p", json!({"cpu": "4", "memory": "16Gi"})),
            Ok("a"),
        ),
        case(
            "cpu",
            vec![node("a", json!({}))],
            requesting("p", json!({"cpu": "4001m"})),
            Err("0/1 nodes are available: 1 Insufficient cpu."),
        ),
        case(
            "memory",
            vec![node("a", json!({}))],
            requesting("p", json!({"memory": "17Gi"})),
            Err("0/1 nodes are available: 1 Insufficient memory."),
        ),
        case(
            "every short resource is reported",
            vec![node("a", json!({}))],
            requesting(
                "p",
                json!({"cpu": "5", "memory": "17Gi", "nvidia.com/gpu": "1"}),
            ),
            Err(
                "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 Insufficient nvidia.com/gpu.",
            ),
        ),
        case(
            "ephemeral-storage",
            vec![node(
                "a",
                json!({"status": {"allocatable": {"ephemeral-storage": "10Gi"}}}),
            )],
            requesting("p", json!({"ephemeral-storage": "11Gi"})),
            Err("0/1 nodes are available: 1 Insufficient ephemeral-storage."),
        ),
        case(
            "an extended resource the node lacks counts as 0",
            vec![node("a", json!({}))],
            requesting("p", json!({"nvidia.com/gpu": "1"})),
            Err("0/1 nodes are available: 1 Insufficient nvidia.com/gpu."),
        ),
        case(
            "the GPU node",
            vec![node("a", json!({})), gpu_node("b", "1")],
            requesting("p", json!({"nvidia.com/gpu": "1"})),
            Ok("b"),
        ),
        case(
            "two GPUs wanted, one there",
            vec![gpu_node("a", "1")],
            requesting("p", json!({"nvidia.com/gpu": "2"})),
            Err("0/1 nodes are available: 1 Insufficient nvidia.com/gpu."),
        ),
        case(
            "unprefixed unknown resources are ignored",
            vec![node("a", json!({}))],
            requesting("p", json!({"widgets": "5"})),
            Ok("a"),
        ),
        case(
            "the pod count is checked even without requests",
            vec![node("a", json!({"status": {"allocatable": {"pods": "0"}}}))],
            pod("p", json!({})),
            Err("0/1 nodes are available: 1 Too many pods."),
        ),
        case(
            "init containers: the largest is a floor (3 > 1 + 1)",
            vec![small()],
            with_init("3", None),
            Err("0/1 nodes are available: 1 Insufficient cpu."),
        ),
        case(
            "init containers: below the sum, the sum counts (2 ≤ 2.5)",
            vec![small()],
            with_init("1500m", None),
            Ok("a"),
        ),
        case(
            "a sidecar init container adds to the sum (1 + 1 + 1 > 2.5)",
            vec![small()],
            with_init("1", Some("Always")),
            Err("0/1 nodes are available: 1 Insufficient cpu."),
        ),
        case(
            "RuntimeClass overhead is added",
            vec![node("a", json!({}))],
            pod(
                "p",
                json!({"spec": {"runtimeClassName": "overhead", "containers": [
                {"name": "app", "image": "app:1", "resources": {"requests": {"cpu": "3600m"}}}]}}),
            ),
            Err("0/1 nodes are available: 1 Insufficient cpu."),
        ),
        case(
            "without the class, the same pod fits",
            vec![node("a", json!({}))],
            requesting("p", json!({"cpu": "3600m"})),
            Ok("a"),
        ),
    ]);

    // Room taken by pods already on the node.
    let full = Case {
        name: "cpu taken by a bound pod",
        nodes: vec![node("a", json!({})), node("b", json!({}))],
        bound: vec![bound(requesting("old", json!({"cpu": "3"})), "a")],
        pod: requesting("p", json!({"cpu": "2"})),
        expect: Ok("b"),
    };
    let too_many = Case {
        name: "pods taken by bound pods",
        nodes: vec![node("a", json!({"status": {"allocatable": {"pods": "1"}}}))],
        bound: vec![bound(pod("old", json!({})), "a")],
        pod: pod("p", json!({})),
        expect: Err("0/1 nodes are available: 1 Too many pods."),
    };
    let gpus_taken = Case {
        name: "GPUs taken by a bound pod",
        nodes: vec![gpu_node("a", "2")],
        bound: vec![bound(
            requesting("old", json!({"nvidia.com/gpu": "2"})),
            "a",
        )],
        pod: requesting("p", json!({"nvidia.com/gpu": "1"})),
        expect: Err("0/1 nodes are available: 1 Insufficient nvidia.com/gpu."),
    };
    check(vec![full, too_many, gpus_taken]);
}

#[test]
fn runtime_classes() {
    let nodes = || {
        vec![
            node(
                "oci",
                json!({"metadata": {"labels": {OCI_ENABLED: "true"}}}),
            ),
            node(
                "wasm",
                json!({"metadata": {"labels": {WASM_ENABLED: "true"}}}),
            ),
        ]
    };
    let with_class = |class: &str| pod("p", json!({"spec": {"runtimeClassName": class}}));
    check(vec![
        case(
            "wasmtime goes to a wasm-enabled node",
            nodes(),
            with_class("wasmtime"),
            Ok("wasm"),
        ),
        case(
            "runc goes to an oci-enabled node",
            nodes(),
            with_class("runc"),
            Ok("oci"),
        ),
        case(
            "wasmtime with no wasm-enabled node",
            vec![node(
                "oci",
                json!({"metadata": {"labels": {OCI_ENABLED: "true", WASM_ENABLED: "false"}}}),
            )],
            with_class("wasmtime"),
            Err(AFFINITY),
        ),
        case(
            "the class's selector adds to the pod's",
            nodes(),
            pod(
                "p",
                json!({"spec": {"runtimeClassName": "wasmtime", "nodeSelector": {OCI_ENABLED: "true"}}}),
            ),
            Err("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."),
        ),
    ]);
}

#[test]
fn requirements_from_the_pod() {
    let pod = pod(
        "p",
        json!({"spec": {
            "runtimeClassName": "overhead",
            "initContainers": [
                {"name": "sidecar", "image": "proxy", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                 "ports": [{"containerPort": 15000, "hostPort": 15000}]},
                {"name": "init", "image": "init:1", "resources": {"requests": {"cpu": "2", "example.com/dongle": "1"}}},
            ],
            "containers": [
                {"name": "a", "image": "registry.local:5000/app", "resources": {"requests": {"cpu": "250m"}},
                 "ports": [{"containerPort": 80}, {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]},
                {"name": "b", "image": "app@sha256:abc", "resources": {"requests": {"memory": "1Gi", "example.com/dongle": "2"}}},
            ],
        }}),
    );
    let req = requirements(&pod);
    let requests = &req.requests;
    // cpu: max(250m + 0 + 100m sidecar, 2 + 100m sidecar while init runs) + 500m overhead.
    assert_eq!(requests.milli_cpu, 2100 + 500);
    // memory: 1Gi + 64Mi (sidecar); the init container runs with the sidecar's 64Mi.
    assert_eq!(requests.memory, (1024 + 64) * 1024 * 1024);
    // Scoring's non-zero cpu: b gets 100m, so max(450m, 2.1) + 500m.
    assert_eq!(requests.non_zero_milli_cpu, 2600);
    // Scoring's non-zero memory: a gets 200Mi; init gets 200Mi + 64Mi.
    assert_eq!(requests.non_zero_memory, (1024 + 200 + 64) * 1024 * 1024);
    assert_eq!(requests.scalar, vec![("example.com/dongle".to_owned(), 2)]);
    let ports: Vec<(&str, &str, i32)> = req
        .host_ports
        .iter()
        .map(|p| (p.protocol.as_str(), p.ip.as_str(), p.port))
        .collect();
    // Every containerPort too (skiff's interim rule: pods share their
    // node's network).
    assert_eq!(
        ports,
        [
            ("TCP", "0.0.0.0", 80),
            ("UDP", "10.0.0.1", 53),
            ("TCP", "0.0.0.0", 15000)
        ]
    );
    assert_eq!(
        req.images,
        [
            "proxy:latest",
            "init:1",
            "registry.local:5000/app:latest",
            "app@sha256:abc"
        ]
    );
}

#[test]
fn pod_level_requests_replace_the_containers() {
    let pod = pod(
        "p",
        json!({"spec": {
            "resources": {"requests": {"cpu": "3"}},
            "containers": [{"name": "a", "image": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
        }}),
    );
    let req = requirements(&pod);
    assert_eq!(
        (req.requests.milli_cpu, req.requests.memory),
        (3000, 1024 * 1024 * 1024)
    );
}

/// The score tables: in each, the nodes differ in one respect, so the
/// winner is the score's choice (ties go to the first visited node, `a`).
#[test]
fn scores() {
    let zero = json!({"cpu": "0", "memory": "0"});
    // A pod of ReplicaSet `owner` requesting nothing (so it leaves the
    // other scores alone).
    let owned = |name: &str, owner: &str| {
        let mut pod = requesting(name, zero.clone());
        pod.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true,
        })).expect("owner")]);
        pod
    };
    let labelled = |name: &str, labels: Value| node(name, json!({"metadata": {"labels": labels}}));
    let prefer = |terms: Value| {
        pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": terms}}}}),
        )
    };
    let prefer_no_schedule =
        json!({"spec": {"taints": [{"key": "spot", "effect": "PreferNoSchedule"}]}});
    let cases = vec![
        case(
            "all equal: the first visited",
            vec![node("a", json!({})), node("b", json!({}))],
            pod("p", json!({})),
            Ok("a"),
        ),
        Case {
            name: "least allocated: the emptier node",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            bound: vec![bound(
                requesting("old", json!({"cpu": "1", "memory": "4Gi"})),
                "a",
            )],
            pod: requesting("p", json!({"cpu": "100m", "memory": "256Mi"})),
            expect: Ok("b"),
        },
        Case {
            name: "least allocated counts 100m/200Mi for containers without requests",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            bound: (0..8)
                .map(|i| bound(pod(&format!("old{i}"), json!({})), "a"))
                .collect(),
            pod: pod("p", json!({})),
            expect: Ok("b"),
        },
        Case {
            // Both score 72 on least allocated; a's cpu is half used and
            // its memory idle, b's are used alike.
            name: "balanced allocation",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            bound: vec![
                bound(
                    requesting("cpu-heavy", json!({"cpu": "2", "memory": "0"})),
                    "a",
                ),
                bound(
                    requesting("even", json!({"cpu": "1", "memory": "4Gi"})),
                    "b",
                ),
            ],
            pod: requesting("p", json!({"cpu": "100m", "memory": "256Mi"})),
            expect: Ok("b"),
        },
        case(
            "preferred node affinity",
            vec![
                labelled("a", json!({"zone": "a"})),
                labelled("b", json!({"zone": "b"})),
            ],
            prefer(json!([{"weight": 10, "preference": {"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["b"]}]}}])),
            Ok("b"),
        ),
        case(
            "preferred node affinity sums the matched weights",
            vec![
                labelled("a", json!({"zone": "a", "disk": "ssd"})),
                labelled("b", json!({"zone": "b"})),
                labelled("c", json!({"zone": "b", "disk": "ssd"})),
            ],
            prefer(json!([
                {"weight": 60, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}},
                {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
            ])),
            Ok("c"),
        ),
        Case {
            name: "spreading: fewer pods of the same owner",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            bound: vec![bound(owned("old", "rs-1"), "a")],
            pod: owned("p", "rs-1"),
            expect: Ok("b"),
        },
        Case {
            name: "spreading: other owners' pods don't count",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            bound: vec![bound(owned("old", "rs-2"), "a")],
            pod: owned("p", "rs-1"),
            expect: Ok("a"),
        },
        Case {
            // b has none of the owner's pods but its zone has one; c's zone has none.
            name: "spreading over zones",
            nodes: vec![
                labelled("a", json!({"topology.kubernetes.io/zone": "z1"})),
                labelled("b", json!({"topology.kubernetes.io/zone": "z1"})),
                labelled("c", json!({"topology.kubernetes.io/zone": "z2"})),
            ],
            bound: vec![bound(owned("old", "rs-1"), "a")],
            pod: owned("p", "rs-1"),
            expect: Ok("c"),
        },
        case(
            "artifact locality",
            vec![
                node(
                    "a",
                    json!({"status": {"images": [{"names": ["other:1"], "sizeBytes": 1000}]}}),
                ),
                node(
                    "b",
                    json!({"status": {"images": [
                    {"names": ["registry.local/app@sha256:1", "registry.local/app"], "sizeBytes": 1000}]}}),
                ),
            ],
            pod(
                "p",
                json!({"spec": {"containers": [{"name": "app", "image": "registry.local/app:latest"}]}}),
            ),
            Ok("b"),
        ),
        case(
            "PreferNoSchedule taints lower the score",
            vec![node("a", prefer_no_schedule.clone()), node("b", json!({}))],
            pod("p", json!({})),
            Ok("b"),
        ),
        case(
            "a tolerated PreferNoSchedule taint does not",
            vec![node("a", prefer_no_schedule.clone()), node("b", json!({}))],
            pod(
                "p",
                json!({"spec": {"tolerations": [{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]}}),
            ),
            Ok("a"),
        ),
        case(
            "weights: taint toleration (3) outweighs node affinity (2)",
            vec![
                node(
                    "a",
                    json!({"metadata": {"labels": {"zone": "b"}}, "spec": prefer_no_schedule["spec"].clone()}),
                ),
                node("b", json!({})),
            ],
            prefer(json!([{"weight": 100, "preference": {"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["b"]}]}}])),
            Ok("b"),
        ),
    ];
    check(cases);
}

#[test]
fn unschedulable_messages() {
    let plain = |name: &str| node(name, json!({}));
    let zoned = |name: &str| node(name, json!({"metadata": {"labels": {"zone": "b"}}}));
    let selecting = |requests: Value| {
        let mut pod = requesting("p", requests);
        pod.spec.as_mut().expect("spec").node_selector =
            Some([("zone".to_owned(), "b".to_owned())].into());
        pod
    };
    check(vec![
        case(
            "no nodes",
            vec![],
            pod("p", json!({})),
            Err("no nodes available to schedule pods"),
        ),
        case(
            "the Kubernetes example",
            vec![zoned("a"), zoned("b"), plain("c"), plain("d"), plain("e")],
            selecting(json!({"cpu": "5"})),
            Err(
                "0/5 nodes are available: 2 Insufficient cpu, 3 node(s) didn't match Pod's node affinity/selector.",
            ),
        ),
        case(
            "reasons sort as strings: 10 before 2",
            (0..12)
                .map(|i| {
                    if i < 2 {
                        zoned(&format!("n{i}"))
                    } else {
                        plain(&format!("n{i}"))
                    }
                })
                .collect(),
            selecting(json!({"cpu": "5"})),
            Err(
                "0/12 nodes are available: 10 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu.",
            ),
        ),
        case(
            "one node short of two resources counts under both",
            vec![
                plain("a"),
                node("b", json!({"spec": {"unschedulable": true}})),
            ],
            requesting("p", json!({"cpu": "5", "memory": "20Gi"})),
            Err(
                "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) were unschedulable.",
            ),
        ),
        case(
            "taints by key and value",
            vec![
                node(
                    "a",
                    json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
                ),
                node(
                    "b",
                    json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoExecute"}]}}),
                ),
                node(
                    "c",
                    json!({"spec": {"taints": [{"key": "k", "value": "w", "effect": "NoSchedule"}]}}),
                ),
                node(
                    "d",
                    json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                ),
            ],
            pod("p", json!({})),
            Err(
                "0/4 nodes are available: 1 node(s) had untolerated taint {k: w}, 1 node(s) were not ready, 2 node(s) had untolerated taint {k: v}.",
            ),
        ),
    ]);
}

fn identical_nodes(count: usize) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for i in 0..count {
        snapshot.upsert_node(&node(&format!("node-{i:04}"), json!({})));
    }
    snapshot
}

#[test]
fn feasible_nodes_to_find() {
    let table = [
        (NodesToScore::Adaptive, 0, 0),
        (NodesToScore::Adaptive, 50, 50),
        (NodesToScore::Adaptive, 99, 99),
        (NodesToScore::Adaptive, 100, 100),
        (NodesToScore::Adaptive, 200, 100),
        (NodesToScore::Adaptive, 1_000, 420),
        (NodesToScore::Adaptive, 5_000, 500),
        (NodesToScore::Adaptive, 6_000, 300),
        (NodesToScore::Adaptive, 10_000, 500),
        (NodesToScore::Percentage(100), 5_000, 5_000),
        (NodesToScore::Percentage(200), 5_000, 5_000),
        (NodesToScore::Percentage(10), 500, 100),
        (NodesToScore::Percentage(0), 5_000, 100),
    ];
    for (setting, nodes, expect) in table {
        assert_eq!(
            setting.feasible_nodes_to_find(nodes),
            expect,
            "{setting:?} of {nodes}"
        );
    }
}

#[test]
fn sampling_stops_early_on_large_clusters() {
    let snapshot = identical_nodes(1_000);
    let req = requirements(&pod("p", json!({})));
    let placement = place(&req, &snapshot, 0).expect("placed");
    assert_eq!(
        (
            placement.nodes_visited,
            placement.feasible_nodes,
            placement.next_start
        ),
        (420, 420, 420)
    );
    let placement = place(&req, &snapshot, 990).expect("placed");
    assert_eq!(
        (placement.node.as_str(), placement.next_start),
        ("node-0990", 410)
    );

    let full = place_with(&req, &snapshot, 0, NodesToScore::Percentage(100)).expect("placed");
    assert_eq!(
        (full.nodes_visited, full.feasible_nodes, full.next_start),
        (1_000, 1_000, 0)
    );

    // Few feasible nodes: the search visits them all.
    let mut snapshot = snapshot;
    snapshot.upsert_node(&node(
        "node-0500",
        json!({"metadata": {"labels": {"zone": "b"}}}),
    ));
    let selective = requirements(&pod("p", json!({"spec": {"nodeSelector": {"zone": "b"}}})));
    let placement = place(&selective, &snapshot, 7).expect("placed");
    assert_eq!(
        (
            placement.node.as_str(),
            placement.nodes_visited,
            placement.feasible_nodes,
            placement.next_start
        ),
        ("node-0500", 1_000, 1, 7)
    );
}

#[test]
fn round_robin_start() {
    let snapshot = snapshot(
        &[
            node("a", json!({})),
            node("b", json!({})),
            node("c", json!({})),
        ],
        &[],
    );
    let req = requirements(&pod("p", json!({})));
    let chosen: Vec<String> = [0, 1, 2, 4]
        .into_iter()
        .map(|start| place(&req, &snapshot, start).expect("placed").node)
        .collect();
    assert_eq!(chosen, ["a", "b", "c", "b"]);

    // Successive decisions with assume spread the pods.
    let mut snapshot = snapshot;
    let mut start = 0;
    let mut chosen = Vec::new();
    for i in 0..6 {
        let pod = requesting(&format!("p{i}"), json!({"cpu": "500m", "memory": "1Gi"}));
        let placement = place(&requirements(&pod), &snapshot, start).expect("placed");
        snapshot.assume(&pod, &placement.node);
        start = placement.next_start;
        chosen.push(placement.node);
    }
    assert_eq!(chosen, ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn snapshot_accounts_pods() {
    let usage = |snapshot: &Snapshot, node: &str| {
        let usage = &snapshot.node(node).expect("node").usage;
        (
            usage.requested.milli_cpu,
            usage.requested.memory,
            usage.pods,
        )
    };
    let p = |node: &str| bound(requesting("p", json!({"cpu": "1", "memory": "1Gi"})), node);
    let gib = 1024 * 1024 * 1024;
    let mut snapshot = snapshot(&[node("a", json!({})), node("b", json!({}))], &[]);

    snapshot.add_pod(&p("a"));
    snapshot.add_pod(&p("a"));
    assert_eq!(
        usage(&snapshot, "a"),
        (1000, gib, 1),
        "adding twice counts once"
    );

    snapshot.add_pod(&p("b"));
    assert_eq!(
        (usage(&snapshot, "a"), usage(&snapshot, "b")),
        ((0, 0, 0), (1000, gib, 1)),
        "moved"
    );

    let mut done = p("b");
    done.status = Some(serde_json::from_value(json!({"phase": "Failed"})).expect("status"));
    snapshot.add_pod(&done);
    assert_eq!(
        usage(&snapshot, "b"),
        (0, 0, 0),
        "a failed pod frees its node"
    );
    snapshot.add_pod(&done);
    assert_eq!(snapshot.pod_count(), 0);

    snapshot.add_pod(&p("b"));
    snapshot.remove_pod(&p("b"));
    assert_eq!(
        (usage(&snapshot, "b"), snapshot.pod_count()),
        ((0, 0, 0), 0),
        "removed"
    );

    // Assumed, then observed bound: counted once.
    let pending = requesting("p", json!({"cpu": "1", "memory": "1Gi"}));
    snapshot.assume(&pending, "a");
    assert_eq!(usage(&snapshot, "a"), (1000, gib, 1));
    snapshot.add_pod(&p("a"));
    assert_eq!(usage(&snapshot, "a"), (1000, gib, 1));

    // Keyed by namespace/name without a uid.
    let mut anonymous = p("b");
    anonymous.metadata.uid = None;
    snapshot.add_pod(&anonymous);
    snapshot.add_pod(&anonymous);
    assert_eq!(usage(&snapshot, "b"), (1000, gib, 1));
    snapshot.remove_pod(&anonymous);
    assert_eq!(usage(&snapshot, "b"), (0, 0, 0));

    // An unbound pod is not accounted.
    snapshot.add_pod(&requesting("q", json!({"cpu": "1"})));
    assert_eq!(snapshot.pod_count(), 1);
}

#[test]
fn snapshot_accounts_the_ports_of_pods_on_the_node_address() {
    let ports = |snapshot: &Snapshot, node: &str| {
        let mut ports: Vec<(String, i32)> = snapshot
            .node(node)
            .expect("node")
            .usage
            .host_ports
            .iter()
            .map(|p| (p.protocol.clone(), p.port))
            .collect();
        ports.sort();
        ports
    };
    let wasm = |name: &str| {
        pod(
            name,
            json!({"spec": {"runtimeClassName": "wasmtime", "containers": [{"name": "app", "image": "app:1",
                "ports": [{"containerPort": 8080}, {"containerPort": 9090, "protocol": "UDP"}]}]}}),
        )
    };
    let host_network = pod(
        "h",
        json!({"spec": {"hostNetwork": true, "containers": [{"name": "app", "image": "app:1",
            "ports": [{"containerPort": 53, "hostPort": 53}]}]}}),
    );
    let mut snapshot = snapshot(&[node("a", json!({})), node("b", json!({}))], &[]);
    snapshot.add_pod(&bound(wasm("w"), "a"));
    snapshot.add_pod(&bound(host_network.clone(), "a"));
    assert_eq!(
        ports(&snapshot, "a"),
        [
            ("TCP".to_owned(), 53),
            ("TCP".to_owned(), 8080),
            ("UDP".to_owned(), 9090)
        ],
        "a hostPort equal to the containerPort counts once"
    );
    snapshot.add_pod(&bound(wasm("w"), "b"));
    assert_eq!(ports(&snapshot, "a"), [("TCP".to_owned(), 53)], "moved");
    assert_eq!(ports(&snapshot, "b").len(), 2);
    snapshot.remove_pod(&bound(wasm("w"), "b"));
    snapshot.remove_pod(&host_network);
    assert!(ports(&snapshot, "a").is_empty() && ports(&snapshot, "b").is_empty());
}

#[test]
fn snapshot_keeps_pods_of_unknown_nodes() {
    let mut snapshot = Snapshot::default();
    let p = bound(requesting("p", json!({"cpu": "3"})), "late");
    snapshot.add_pod(&p);
    assert_eq!(snapshot.node_count(), 0);
    assert_eq!(snapshot.detached("late").map(|u| u.pods), Some(1));

    snapshot.upsert_node(&node("late", json!({})));
    assert_eq!(
        snapshot
            .node("late")
            .expect("node")
            .usage
            .requested
            .milli_cpu,
        3000
    );
    assert!(snapshot.detached("late").is_none());
    let req = requirements(&requesting("q", json!({"cpu": "2"})));
    assert_eq!(
        place(&req, &snapshot, 0).map_err(|e| e.to_string()),
        Err("0/1 nodes are available: 1 Insufficient cpu.".to_owned())
    );

    // Updating the node keeps its pods; removing it keeps them aside.
    snapshot.upsert_node(&node(
        "late",
        json!({"metadata": {"labels": {"zone": "b"}}}),
    ));
    assert_eq!(
        snapshot
            .node("late")
            .expect("node")
            .usage
            .requested
            .milli_cpu,
        3000
    );
    snapshot.remove_node("late");
    assert_eq!(
        snapshot.detached("late").map(|u| u.requested.milli_cpu),
        Some(3000)
    );
    snapshot.remove_pod(&p);
    assert!(
        snapshot.detached("late").is_none(),
        "the last pod gone, nothing is kept"
    );
    snapshot.upsert_node(&node("late", json!({})));
    assert_eq!(snapshot.node("late").expect("node").usage.pods, 0);
}

#[test]
fn snapshot_removes_nodes_in_constant_time() {
    let mut snapshot = snapshot(
        &[
            node("a", json!({})),
            node("b", json!({})),
            node("c", json!({})),
        ],
        &[bound(requesting("p", json!({"cpu": "1"})), "c")],
    );
    snapshot.remove_node("a");
    snapshot.remove_node("missing");
    assert_eq!(snapshot.node_count(), 2);
    // c took a's place and kept its pod.
    assert_eq!(snapshot.nodes()[0].name, "c");
    assert_eq!(
        snapshot.node("c").expect("node").usage.requested.milli_cpu,
        1000
    );
    snapshot.remove_pod(&bound(pod("p", json!({})), "c"));
    assert_eq!(snapshot.node("c").expect("node").usage.pods, 0);
}

#[test]
fn snapshot_releases_images_and_owners() {
    let with_images = |images: Value| node("a", json!({"status": {"images": images}}));
    let mut snapshot = Snapshot::default();
    snapshot.upsert_node(&with_images(
        json!([{"names": ["app:1", "app@sha256:x"]}, {"names": ["db"]}]),
    ));
    assert!(snapshot.image_id("app:1").is_some());
    assert!(
        snapshot.image_id("db:latest").is_some(),
        "names are normalized"
    );
    snapshot.upsert_node(&with_images(json!([{"names": ["app:1"]}])));
    assert!(
        snapshot.image_id("db:latest").is_none(),
        "an image no node has is forgotten"
    );
    assert!(snapshot.image_id("app:1").is_some());
    snapshot.remove_node("a");
    assert!(snapshot.image_id("app:1").is_none());

    let mut owned = bound(pod("p", json!({})), "a");
    owned.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true,
    })).expect("owner")]);
    snapshot.add_pod(&owned);
    assert!(snapshot.owner_id("rs-uid").is_some());
    snapshot.remove_pod(&owned);
    assert!(snapshot.owner_id("rs-uid").is_none());
}
