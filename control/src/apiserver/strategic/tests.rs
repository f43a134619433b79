//! Strategic merge patch cases: every directive and strategy, and the
//! exact patches client-side `kubectl apply` sends for everyday edits
//! (keys as kubectl marshals them; the last-applied annotation shortened).

use serde_json::{Value, json};

use super::{StrategicError, apply};

const POD: &str = "io.k8s.api.core.v1.Pod";
const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
const SERVICE: &str = "io.k8s.api.core.v1.Service";
const NODE: &str = "io.k8s.api.core.v1.Node";
const CONFIG_MAP: &str = "io.k8s.api.core.v1.ConfigMap";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Applies `patch` to `original` as `definition` and compares the result
/// with `expected`, item order included.
#[track_caller]
fn check(definition: &str, original: Value, patch: Value, expected: Value) {
    let patched = apply(&original, &patch, definition)
        .unwrap_or_else(|error| panic!("patch failed: {error}"));
    assert_eq!(patched, expected, "\n got: {patched:#}\nwant: {expected:#}");
}

/// Applies `patch` to `original` as `definition` and expects `expected`.
#[track_caller]
fn check_error(definition: &str, original: Value, patch: Value, expected: StrategicError) {
    assert_eq!(apply(&original, &patch, definition), Err(expected));
}

/// A Deployment `web` whose pod template has `containers` and `extra`
/// merged into its pod spec.
fn deployment(containers: Value, extra: Value) -> Value {
    let mut pod_spec = json!({"containers": containers, "restartPolicy": "Always"});
    for (key, value) in extra.as_object().unwrap() {
        pod_spec[key] = value.clone();
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": pod_spec
            }
        }
    })
}

/// A Pod `p` with `spec`.
fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

/// A ConfigMap whose metadata has `finalizers`.
fn config_map(finalizers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": finalizers}})
}

fn web(image: &str) -> Value {
    json!({"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"})
}

// ---- kubectl apply ---------------------------------------------------------

#[test]
fn kubectl_apply_changes_a_container_image() {
    let mut expected = deployment(json!([web("nginx:1.27")]), json!({}));
    expected["metadata"]["annotations"] = json!({LAST_APPLIED: "{\"kind\":\"Deployment\"}\n"});
    check(
        DEPLOYMENT,
        deployment(json!([web("nginx:1.25")]), json!({})),
        json!({
            "metadata": {"annotations": {LAST_APPLIED: "{\"kind\":\"Deployment\"}\n"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"image": "nginx:1.27", "name": "web"}]
            }}}
        }),
        expected,
    );
}

#[test]
fn kubectl_apply_adds_a_container() {
    let log = json!({"args": ["tail", "-f", "/dev/null"], "image": "busybox:1.36", "name": "log"});
    check(
        DEPLOYMENT,
        deployment(json!([web("nginx")]), json!({})),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [log]
        }}}}),
        deployment(json!([web("nginx"), log]), json!({})),
    );
}

#[test]
fn kubectl_apply_removes_a_container() {
    let log = json!({"image": "busybox:1.36", "name": "log"});
    check(
        DEPLOYMENT,
        deployment(json!([web("nginx"), log]), json!({})),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"$patch": "delete", "name": "log"}]
        }}}}),
        deployment(json!([web("nginx")]), json!({})),
    );
}

#[test]
fn kubectl_apply_adds_edits_and_removes_env_entries() {
    let keep = json!({"name": "KEEP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}});
    let mut before = web("nginx");
    before["env"] = json!([{"name": "MODE", "value": "slow"}, {"name": "OLD", "value": "1"}, keep]);
    let mut after = web("nginx");
    after["env"] =
        json!([{"name": "MODE", "value": "fast"}, keep, {"name": "LEVEL", "value": "debug"}]);
    check(
        DEPLOYMENT,
        deployment(json!([before]), json!({})),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "MODE"}, {"name": "KEEP"}, {"name": "LEVEL"}],
                "env": [
                    {"name": "MODE", "value": "fast"},
                    {"name": "LEVEL", "value": "debug"},
                    {"$patch": "delete", "name": "OLD"}
                ],
                "name": "web"
            }]
        }}}}),
        deployment(json!([after]), json!({})),
    );
}

#[test]
fn kubectl_apply_adds_a_port() {
    let mut before = web("nginx");
    before["ports"] = json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}]);
    let mut after = web("nginx");
    after["ports"] = json!([
        {"containerPort": 80, "name": "http", "protocol": "TCP"},
        {"containerPort": 9090, "name": "metrics"}
    ]);
    check(
        DEPLOYMENT,
        deployment(json!([before]), json!({})),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{
                "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 9090}],
                "name": "web",
                "ports": [{"containerPort": 9090, "name": "metrics"}]
            }]
        }}}}),
        deployment(json!([after]), json!({})),
    );
}

#[test]
fn kubectl_apply_renames_one_port_and_removes_another() {
    let mut before = web("nginx");
    before["ports"] = json!([
        {"containerPort": 80, "name": "http", "protocol": "TCP"},
        {"containerPort": 9090, "name": "metrics", "protocol": "TCP"}
    ]);
    let mut after = web("nginx");
    after["ports"] = json!([{"containerPort": 80, "name": "web", "protocol": "TCP"}]);
    check(
        DEPLOYMENT,
        deployment(json!([before]), json!({})),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{
                "$setElementOrder/ports": [{"containerPort": 80}],
                "name": "web",
                "ports": [{"containerPort": 80, "name": "web"}, {"$patch": "delete", "containerPort": 9090}]
            }]
        }}}}),
        deployment(json!([after]), json!({})),
    );
}

#[test]
fn kubectl_apply_adds_a_volume_and_its_mount() {
    let mut before = web("nginx");
    before["volumeMounts"] = json!([{"mountPath": "/data", "name": "data"}]);
    let mut after = web("nginx");
    after["volumeMounts"] = json!([
        {"mountPath": "/data", "name": "data"},
        {"mountPath": "/etc/app", "name": "config", "readOnly": true}
    ]);
    check(
        DEPLOYMENT,
        deployment(
            json!([before]),
            json!({"volumes": [{"emptyDir": {}, "name": "data"}]}),
        ),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "$setElementOrder/volumes": [{"name": "data"}, {"name": "config"}],
            "containers": [{
                "$setElementOrder/volumeMounts": [{"mountPath": "/data"}, {"mountPath": "/etc/app"}],
                "name": "web",
                "volumeMounts": [{"mountPath": "/etc/app", "name": "config", "readOnly": true}]
            }],
            "volumes": [{"configMap": {"name": "app-config"}, "name": "config"}]
        }}}}),
        deployment(
            json!([after]),
            json!({"volumes": [
                {"emptyDir": {}, "name": "data"},
                {"configMap": {"name": "app-config"}, "name": "config"}
            ]}),
        ),
    );
}

#[test]
fn kubectl_apply_switches_a_volume_from_empty_dir_to_config_map() {
    check(
        DEPLOYMENT,
        deployment(
            json!([web("nginx")]),
            json!({"volumes": [{"emptyDir": {"sizeLimit": "1Gi"}, "name": "data"}]}),
        ),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/volumes": [{"name": "data"}],
            "volumes": [{
                "$retainKeys": ["configMap", "name"],
                "configMap": {"name": "app-config"},
                "emptyDir": null,
                "name": "data"
            }]
        }}}}),
        deployment(
            json!([web("nginx")]),
            json!({"volumes": [{"configMap": {"name": "app-config"}, "name": "data"}]}),
        ),
    );
}

#[test]
fn retain_keys_clears_a_volume_source_the_patch_does_not_mention() {
    // Another writer added hostPath; the applier's retainKeys still wins.
    check(
        POD,
        pod(json!({"volumes": [{"emptyDir": {}, "hostPath": {"path": "/x"}, "name": "data"}]})),
        json!({"spec": {"volumes": [{
            "$retainKeys": ["configMap", "name"],
            "configMap": {"name": "cfg"},
            "name": "data"
        }]}}),
        pod(json!({"volumes": [{"configMap": {"name": "cfg"}, "name": "data"}]})),
    );
}

#[test]
fn kubectl_apply_removes_a_label() {
    let mut original = deployment(json!([web("nginx")]), json!({}));
    original["metadata"]["labels"]["tier"] = json!("frontend");
    let mut expected = deployment(json!([web("nginx")]), json!({}));
    expected["metadata"]["annotations"] = json!({LAST_APPLIED: "{}"});
    check(
        DEPLOYMENT,
        original,
        json!({"metadata": {"annotations": {LAST_APPLIED: "{}"}, "labels": {"tier": null}}}),
        expected,
    );
}

#[test]
fn kubectl_apply_switches_deployment_strategy_to_recreate() {
    // The applied config never set rollingUpdate (the server defaulted
    // it): only $retainKeys clears it.
    let mut expected = deployment(json!([web("nginx")]), json!({}));
    expected["spec"]["strategy"] = json!({"type": "Recreate"});
    check(
        DEPLOYMENT,
        deployment(json!([web("nginx")]), json!({})),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        expected,
    );
}

#[test]
fn kubectl_apply_switches_deployment_strategy_with_rolling_update_in_last_applied() {
    let mut expected = deployment(json!([web("nginx")]), json!({}));
    expected["spec"]["strategy"] = json!({"type": "Recreate"});
    check(
        DEPLOYMENT,
        deployment(json!([web("nginx")]), json!({})),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
        expected,
    );
}

#[test]
fn retain_keys_keeps_listed_keys_and_merges_them() {
    let mut original = deployment(json!([web("nginx")]), json!({}));
    original["spec"]["strategy"] = json!({"type": "Recreate"});
    let mut expected = deployment(json!([web("nginx")]), json!({}));
    expected["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%"}});
    check(
        DEPLOYMENT,
        original,
        json!({"spec": {"strategy": {
            "$retainKeys": ["rollingUpdate", "type"],
            "rollingUpdate": {"maxSurge": "50%"},
            "type": "RollingUpdate"
        }}}),
        expected,
    );
}

#[test]
fn kubectl_apply_adds_a_finalizer() {
    check(
        CONFIG_MAP,
        config_map(json!(["example.com/a"])),
        json!({"metadata": {
            "$setElementOrder/finalizers": ["example.com/a", "example.com/b"],
            "finalizers": ["example.com/b"]
        }}),
        config_map(json!(["example.com/a", "example.com/b"])),
    );
}

#[test]
fn kubectl_apply_removes_a_finalizer_and_keeps_a_controllers() {
    check(
        CONFIG_MAP,
        config_map(json!([
            "example.com/a",
            "example.com/b",
            "controller.example.com/c"
        ])),
        json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["example.com/b"],
            "$setElementOrder/finalizers": ["example.com/a"]
        }}),
        config_map(json!(["example.com/a", "controller.example.com/c"])),
    );
}

// ---- merge lists -------------------------------------------------------------

#[test]
fn primitive_merge_list_is_an_ordered_union() {
    check(
        CONFIG_MAP,
        config_map(json!(["a", "b"])),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
        config_map(json!(["a", "b", "c"])),
    );
}

#[test]
fn delete_from_primitive_list_removes_every_copy_and_ignores_absent_values() {
    check(
        CONFIG_MAP,
        config_map(json!(["a", "b", "a"])),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zzz"]}}),
        config_map(json!(["b"])),
    );
}

#[test]
fn new_item_without_order_goes_first_as_in_kubernetes() {
    // kubectl patch --type strategic adding a container: Kubernetes' docs
    // show the new container before the existing one.
    let redis = json!({"image": "redis", "name": "patch-demo-ctr-2"});
    check(
        DEPLOYMENT,
        deployment(json!([web("nginx")]), json!({})),
        json!({"spec": {"template": {"spec": {"containers": [redis]}}}}),
        deployment(json!([redis, web("nginx")]), json!({})),
    );
    check(
        CONFIG_MAP,
        config_map(json!(["a"])),
        json!({"metadata": {"finalizers": ["z"]}}),
        config_map(json!(["z", "a"])),
    );
}

#[test]
fn patch_order_wins_and_server_only_items_slot_in_by_position() {
    // The example of Kubernetes' "preserve order" design: live B, C, A;
    // patch A', B', D; C is server-only and comes first.
    let env = |items: Value| pod(json!({"containers": [{"name": "c", "env": items}]}));
    check(
        POD,
        env(
            json!([{"name": "B", "value": "b"}, {"name": "C", "value": "c"}, {"name": "A", "value": "a"}]),
        ),
        json!({"spec": {"containers": [{"name": "c", "env": [
            {"name": "A", "value": "a2"}, {"name": "B", "value": "b2"}, {"name": "D", "value": "d"}
        ]}]}}),
        env(json!([
            {"name": "C", "value": "c"},
            {"name": "A", "value": "a2"},
            {"name": "B", "value": "b2"},
            {"name": "D", "value": "d"}
        ])),
    );
}

#[test]
fn matched_items_merge_recursively() {
    let mut before = web("nginx");
    before["resources"] = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
    let mut after = web("nginx");
    after["resources"] = json!({"limits": {"cpu": "2"}, "requests": {"cpu": "500m"}});
    check(
        POD,
        pod(json!({"containers": [before]})),
        json!({"spec": {"containers": [{
            "name": "web",
            "resources": {"limits": {"cpu": "2", "memory": null}, "requests": {"cpu": "500m"}}
        }]}}),
        pod(json!({"containers": [after]})),
    );
}

#[test]
fn owner_references_merge_by_uid() {
    let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1"});
    let mut controller = owner.clone();
    controller["controller"] = json!(true);
    let other = json!({"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "2"});
    check(
        POD,
        json!({"metadata": {"name": "p", "ownerReferences": [owner]}}),
        json!({"metadata": {"ownerReferences": [{"controller": true, "uid": "1"}, other]}}),
        json!({"metadata": {"name": "p", "ownerReferences": [controller, other]}}),
    );
}

#[test]
fn service_ports_merge_by_port() {
    let http = json!({"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080});
    let https = json!({"name": "https", "port": 443, "targetPort": 8443});
    check(
        SERVICE,
        json!({"metadata": {"name": "s"}, "spec": {"ports": [http], "type": "ClusterIP"}}),
        json!({"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}], "ports": [https]}}),
        json!({"metadata": {"name": "s"}, "spec": {"ports": [http, https], "type": "ClusterIP"}}),
    );
}

#[test]
fn node_status_conditions_and_addresses_merge_by_type() {
    check(
        NODE,
        json!({"status": {
            "addresses": [{"address": "10.0.0.1", "type": "InternalIP"}],
            "conditions": [
                {"status": "False", "type": "Ready"},
                {"status": "False", "type": "MemoryPressure"}
            ]
        }}),
        json!({"status": {
            "$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}],
            "addresses": [{"address": "node-1", "type": "Hostname"}],
            "conditions": [{"reason": "KubeletReady", "status": "True", "type": "Ready"}]
        }}),
        json!({"status": {
            "addresses": [
                {"address": "node-1", "type": "Hostname"},
                {"address": "10.0.0.1", "type": "InternalIP"}
            ],
            "conditions": [
                {"status": "False", "type": "MemoryPressure"},
                {"reason": "KubeletReady", "status": "True", "type": "Ready"}
            ]
        }}),
    );
}

#[test]
fn host_aliases_and_topology_spread_constraints_merge_by_their_keys() {
    let spread = |skew: u32| json!({"maxSkew": skew, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"});
    check(
        POD,
        pod(json!({
            "hostAliases": [{"hostnames": ["a"], "ip": "10.0.0.1"}],
            "topologySpreadConstraints": [spread(1)]
        })),
        json!({"spec": {
            "hostAliases": [{"hostnames": ["b"], "ip": "10.0.0.1"}],
            "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "zone"}]
        }}),
        pod(json!({
            "hostAliases": [{"hostnames": ["b"], "ip": "10.0.0.1"}],
            "topologySpreadConstraints": [spread(2)]
        })),
    );
}

// ---- directives ------------------------------------------------------------

#[test]
fn patch_replace_in_a_list_replaces_the_whole_list() {
    check(
        POD,
        pod(json!({"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]})),
        json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "c"}]}}),
        pod(json!({"containers": [{"name": "c", "image": "c"}]})),
    );
}

#[test]
fn patch_replace_in_a_map_replaces_the_map() {
    check(
        POD,
        pod(json!({"nodeSelector": {"disk": "ssd", "zone": "a"}, "containers": [web("x")]})),
        json!({"spec": {"nodeSelector": {"$patch": "replace", "zone": "b"}}}),
        pod(json!({"nodeSelector": {"zone": "b"}, "containers": [web("x")]})),
    );
}

#[test]
fn patch_delete_in_a_map_deletes_it() {
    check(
        POD,
        pod(json!({"securityContext": {"runAsUser": 1000}, "containers": [web("x")]})),
        json!({"spec": {"securityContext": {"$patch": "delete"}}}),
        pod(json!({"containers": [web("x")]})),
    );
}

#[test]
fn patch_delete_of_an_absent_item_changes_nothing() {
    check(
        POD,
        pod(json!({"containers": [web("x")]})),
        json!({"spec": {"containers": [{"$patch": "delete", "name": "ghost"}]}}),
        pod(json!({"containers": [web("x")]})),
    );
}

#[test]
fn explicit_patch_merge_is_the_default() {
    check(
        POD,
        pod(json!({"nodeSelector": {"disk": "ssd"}, "containers": [web("x")]})),
        json!({"spec": {"nodeSelector": {"$patch": "merge", "zone": "b"}}}),
        pod(json!({"nodeSelector": {"disk": "ssd", "zone": "b"}, "containers": [web("x")]})),
    );
}

#[test]
fn set_element_order_alone_reorders() {
    check(
        POD,
        pod(json!({"containers": [web("x"), {"name": "log", "image": "y"}]})),
        json!({"spec": {"$setElementOrder/containers": [{"name": "log"}, {"name": "web"}]}}),
        pod(json!({"containers": [{"name": "log", "image": "y"}, web("x")]})),
    );
}

#[test]
fn set_element_order_keeps_server_only_items_by_their_positions() {
    let container = |name: &str| json!({"name": name, "image": name});
    // An injected sidecar after the applier's containers stays last...
    check(
        POD,
        pod(json!({"containers": [container("a"), container("b"), container("proxy")]})),
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
        pod(json!({"containers": [container("b"), container("a"), container("proxy")]})),
    );
    // ...and one between them goes before the first listed item that
    // followed it on the server.
    check(
        POD,
        pod(json!({"containers": [container("a"), container("proxy"), container("b")]})),
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
        pod(json!({"containers": [container("proxy"), container("b"), container("a")]})),
    );
}

#[test]
fn directives_never_reach_the_result_of_a_field_the_original_lacks() {
    check(
        POD,
        pod(json!({"containers": [web("x")]})),
        json!({"spec": {
            "containers": [{
                "$setElementOrder/env": [{"name": "X"}],
                "env": [{"name": "X", "value": "1"}, {"$patch": "delete", "name": "Y"}],
                "image": "y",
                "name": "log",
                "securityContext": {"$patch": "delete"}
            }],
            "dnsConfig": {"options": [{"name": "ndots", "value": "2"}], "searches": null},
            "initContainers": [{"$patch": "delete", "name": "init"}],
            "tolerations": [{"effect": null, "key": "k", "operator": "Exists"}]
        }}),
        pod(json!({
            "containers": [
                {"env": [{"name": "X", "value": "1"}], "image": "y", "name": "log"},
                web("x")
            ],
            "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]},
            "tolerations": [{"key": "k", "operator": "Exists"}]
        })),
    );
}

#[test]
fn fields_without_metadata_merge_objects_and_replace_lists_and_primitives() {
    let toleration = |key: &str| json!({"key": key, "operator": "Exists"});
    check(
        POD,
        pod(json!({
            "containers": [{"name": "web", "image": "x", "args": ["a", "b"]}],
            "tolerations": [toleration("one"), toleration("two")],
            "securityContext": {"runAsUser": 1, "fsGroup": 2},
            "priority": 1
        })),
        json!({"spec": {
            "containers": [{"name": "web", "args": ["c"]}],
            "tolerations": [toleration("three")],
            "securityContext": {"runAsUser": 3},
            "priority": 5
        }}),
        pod(json!({
            "containers": [{"name": "web", "image": "x", "args": ["c"]}],
            "tolerations": [toleration("three")],
            "securityContext": {"runAsUser": 3, "fsGroup": 2},
            "priority": 5
        })),
    );
}

#[test]
fn unknown_definitions_patch_like_json_merge_patch() {
    check(
        "io.example.v1.Widget",
        json!({"spec": {"items": [1, 2], "size": {"w": 1, "h": 2}}}),
        json!({"spec": {"items": [3], "size": {"h": null, "d": 3}}}),
        json!({"spec": {"items": [3], "size": {"w": 1, "d": 3}}}),
    );
}

// ---- errors ------------------------------------------------------------------

#[test]
fn unknown_patch_directive_in_a_map_is_an_error() {
    let error = apply(
        &pod(json!({"securityContext": {}})),
        &json!({"spec": {"securityContext": {"$patch": "remove"}}}),
        POD,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"unknown patch type: remove in map: {"$patch":"remove"}"#
    );
}

#[test]
fn unknown_patch_directive_in_a_list_is_an_error() {
    check_error(
        POD,
        pod(json!({"containers": [web("x")]})),
        json!({"spec": {"containers": [{"$patch": "remove", "name": "web"}]}}),
        StrategicError::UnknownPatchType {
            directive: "remove".into(),
            map: r#"{"$patch":"remove","name":"web"}"#.into(),
        },
    );
}

#[test]
fn set_element_order_must_be_a_list_with_a_list_name() {
    check_error(
        POD,
        pod(json!({"containers": [web("x")]})),
        json!({"spec": {"$setElementOrder/containers": {"name": "web"}}}),
        StrategicError::BadSetElementOrder,
    );
    check_error(
        POD,
        pod(json!({"containers": [web("x")]})),
        json!({"spec": {"$setElementOrder": [{"name": "web"}]}}),
        StrategicError::BadSetElementOrder,
    );
}

#[test]
fn set_element_order_must_agree_with_the_patch_list() {
    let error = apply(
        &pod(json!({"containers": [web("x")]})),
        &json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"image": "b", "name": "b"}, {"image": "a", "name": "a"}]
        }}),
        POD,
    )
    .unwrap_err();
    assert!(
        matches!(error, StrategicError::SetElementOrderMismatch { .. }),
        "{error}"
    );
}

#[test]
fn merge_list_items_need_their_merge_key() {
    let error = apply(
        &pod(json!({"containers": [web("x")]})),
        &json!({"spec": {"containers": [{"image": "y"}]}}),
        POD,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"map: {"image":"y"} does not contain declared merge key: name"#
    );
    check_error(
        POD,
        pod(json!({"containers": [web("x")]})),
        json!({"spec": {"containers": [{"$patch": "delete"}]}}),
        StrategicError::MissingMergeKey {
            item: r#"{"$patch":"delete"}"#.into(),
            merge_key: "name",
        },
    );
}

#[test]
fn a_merge_list_patched_with_an_object_is_an_error() {
    check_error(
        POD,
        pod(json!({"containers": [web("x")]})),
        json!({"spec": {"containers": {"name": "web"}}}),
        StrategicError::WrongType {
            field: "containers".into(),
            expected: "slice",
            actual: "map",
        },
    );
}

#[test]
fn malformed_primitive_list_and_retain_keys_directives_are_errors() {
    check_error(
        CONFIG_MAP,
        config_map(json!(["a"])),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
        StrategicError::BadDeleteFromPrimitiveList,
    );
    check_error(
        DEPLOYMENT,
        deployment(json!([web("x")]), json!({})),
        json!({"spec": {"strategy": {"$retainKeys": "type", "type": "Recreate"}}}),
        StrategicError::BadRetainKeys,
    );
    check_error(
        POD,
        pod(json!({"volumes": [{"emptyDir": {}, "name": "data"}]})),
        json!({"spec": {"volumes": [{"$retainKeys": ["name"], "configMap": {"name": "c"}, "name": "data"}]}}),
        StrategicError::RetainKeysMismatch,
    );
}

#[test]
fn merge_list_items_must_share_one_type() {
    check_error(
        CONFIG_MAP,
        config_map(json!(["a"])),
        json!({"metadata": {"finalizers": [1]}}),
        StrategicError::MixedListElements {
            field: "finalizers".into(),
        },
    );
    check_error(
        CONFIG_MAP,
        config_map(json!(["a"])),
        json!({"metadata": {"finalizers": [["b"]]}}),
        StrategicError::ListOfLists,
    );
    check_error(
        CONFIG_MAP,
        config_map(json!([])),
        json!({"metadata": {"finalizers": [{"name": "b"}]}}),
        StrategicError::NoMergeKeyDeclared {
            field: "finalizers".into(),
        },
    );
}

#[test]
fn documents_must_be_objects() {
    check_error(POD, json!([]), json!({}), StrategicError::NotAnObject);
    check_error(
        POD,
        pod(json!({})),
        json!(["x"]),
        StrategicError::NotAnObject,
    );
}
