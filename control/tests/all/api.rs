//! The API server's Kubernetes semantics, driven through the kube-rs client
//! over the in-process service, on both store backends: CRUD of every
//! resource, conflicts and AlreadyExists races, selectors, pagination,
//! watches (resume, 410, bookmarks), finalizers, the status subresource,
//! generation, dryRun and namespace deletion.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, Error};
use serde_json::json;
use skiff_control::apiserver::auth::{Identity, in_process_service};
use skiff_control::apiserver::handlers::Api as SkiffApi;
use skiff_control::store::{EmbeddedConfig, EmbeddedStore, Store};

/// A running in-process API with a client; the guard keeps the backend.
pub struct Harness {
    pub client: Client,
    pub api: SkiffApi,
    _guard: Box<dyn std::any::Any + Send>,
}

pub async fn harness(store: Arc<dyn Store>, guard: Box<dyn std::any::Any + Send>) -> Harness {
    let api = SkiffApi::new(store);
    api.bootstrap().await.expect("bootstrap");
    let service = in_process_service(api.router(), Identity::Admin);
    let client = skiff_sdk::client::in_process(service, "default");
    Harness {
        client,
        api,
        _guard: guard,
    }
}

pub async fn embedded() -> Harness {
    let dir = tempfile::TempDir::new().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("store.redb"))).unwrap();
    harness(Arc::new(store), Box::new(dir)).await
}

pub async fn etcd() -> Harness {
    let etcd = tokio::task::spawn_blocking(crate::support::etcd::EtcdProcess::start)
        .await
        .unwrap();
    let store = skiff_control::store::EtcdStore::connect(
        skiff_control::store::EtcdConfig::default().endpoints([etcd.endpoint()]),
    )
    .await
    .unwrap();
    harness(Arc::new(store), Box::new(etcd)).await
}

macro_rules! api_scenarios {
    ($(#[$attr:meta])* open = $open:expr) => {
        api_scenarios!(@tests [$(#[$attr])*] $open;
            default_namespaces_and_runtime_classes_exist,
            crud_of_every_resource,
            stale_updates_conflict_exactly_one_wins,
            create_races_have_one_winner,
            generate_name_fills_names,
            selectors_filter_lists,
            pagination_reads_one_snapshot,
            expired_continue_is_410,
            watch_resumes_and_410s,
            watch_bookmarks,
            finalizers_hold_deletion,
            status_subresource_is_isolated,
            generation_follows_spec,
            dry_run_persists_nothing,
            namespace_deletion_removes_contents_first,
            bad_objects_are_rejected_with_causes,
            kube_runtime_watcher_and_three_patch_types,
        );
    };
    (@tests $attrs:tt $open:expr; $($scenario:ident,)*) => {$(
        api_scenarios!(@one $attrs $open; $scenario);
    )*};
    (@one [$(#[$attr:meta])*] $open:expr; $scenario:ident) => {
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $scenario() {
            let harness = $open.await;
            super::$scenario(&harness).await;
        }
    };
}

mod on_embedded {
    api_scenarios!(open = super::embedded());
}

mod on_etcd {
    api_scenarios!(
        #[ignore = "needs etcd; run by make test"]
        open = super::etcd()
    );
}

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "registry.local/hello:1"}]},
    }))
    .unwrap()
}

fn config_map(name: &str, data: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"key": data},
    }))
    .unwrap()
}

fn code(error: &Error) -> u16 {
    match error {
        Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn default_namespaces_and_runtime_classes_exist(h: &Harness) {
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(&name.to_owned()), "{names:?}");
    }
    let classes: Api<RuntimeClass> = Api::all(h.client.clone());
    let wasmtime = classes.get("wasmtime").await.unwrap();
    assert_eq!(wasmtime.handler, "wasmtime");
    assert_eq!(
        wasmtime.scheduling.unwrap().node_selector.unwrap()["skiff.dev/wasm-enabled"],
        "true"
    );
    assert_eq!(classes.get("runc").await.unwrap().handler, "runc");
    // Bootstrapping again changes nothing.
    h.api.bootstrap().await.unwrap();
}

async fn crud_of_every_resource(h: &Harness) {
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("web", json!({"app": "web"})))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert_eq!(
        created.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    let mut fetched = pods.get("web").await.unwrap();
    assert_eq!(fetched.metadata.uid.as_deref(), Some(uid.as_str()));
    fetched
        .metadata
        .labels
        .get_or_insert_default()
        .insert("tier".into(), "front".into());
    let replaced = pods
        .replace("web", &PostParams::default(), &fetched)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.labels.unwrap()["tier"], "front");
    let patched = pods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.annotations.unwrap()["a"], "b");
    let json_patched = pods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/metadata/labels/x", "value": "y"}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(json_patched.metadata.labels.unwrap()["x"], "y");
    // A strategic merge patch edits the container named in it, by its
    // merge key, and leaves the list otherwise as it was.
    let image_before = json_patched.spec.as_ref().unwrap().containers[0]
        .image
        .clone();
    let strategic = pods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({
                "spec": {"containers": [{"name": "app", "image": "registry.example/web:2"}]},
                "metadata": {"labels": {"x": null}},
            })),
        )
        .await
        .unwrap();
    let containers = &strategic.spec.as_ref().unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].name, "app");
    assert_ne!(containers[0].image, image_before);
    assert_eq!(
        containers[0].image.as_deref(),
        Some("registry.example/web:2")
    );
    assert!(!strategic.metadata.labels.unwrap().contains_key("x"));
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(&pods.get("web").await.unwrap_err()), 404);

    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    maps.create(&PostParams::default(), &config_map("cfg", "1"))
        .await
        .unwrap();
    assert_eq!(maps.get("cfg").await.unwrap().data.unwrap()["key"], "1");
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"p": "w"}})).unwrap();
    let secret = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let services: Api<Service> = Api::namespaced(h.client.clone(), "default");
    let service: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    assert_eq!(
        service.spec.unwrap().ports.unwrap()[0].protocol.as_deref(),
        Some("TCP")
    );
    let nodes: Api<Node> = Api::all(h.client.clone());
    let node: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"skiff.dev/wasm-enabled": "true"}}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let leases: Api<Lease> = Api::namespaced(h.client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    let deployment = deployments
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    assert_eq!(deployment.metadata.generation, Some(1));
    let scale = deployments.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(deployments.get("web").await.unwrap().spec.replicas, Some(5));
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"runtimeClassName": "wasmtime", "containers": [{"name": "app", "image": "registry.local/hello:1"}]},
            },
        },
    }))
    .unwrap()
}

async fn stale_updates_conflict_exactly_one_wins(h: &Harness) {
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let base = maps
        .create(&PostParams::default(), &config_map("race", "0"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let maps = maps.clone();
            let mut update = base.clone();
            // Every update changes something: a no-op update succeeds without
            // a write, which is not what this race is about.
            update.data = Some([("key".to_owned(), (i + 1).to_string())].into());
            tokio::spawn(async move { maps.replace("race", &PostParams::default(), &update).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(error) => assert_eq!(code(&error), 409),
        }
    }
    assert_eq!(ok, 1);
}

async fn create_races_have_one_winner(h: &Harness) {
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let maps = maps.clone();
            tokio::spawn(async move {
                maps.create(&PostParams::default(), &config_map("same", &i.to_string()))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Api(status)) => {
                assert_eq!(
                    (status.code, status.reason.as_str()),
                    (409, "AlreadyExists")
                );
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(ok, 1);
}

async fn generate_name_fills_names(h: &Harness) {
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let mut map = config_map("", "x");
    map.metadata.name = None;
    map.metadata.generate_name = Some("gen-".into());
    let a = maps.create(&PostParams::default(), &map).await.unwrap();
    let b = maps.create(&PostParams::default(), &map).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("gen-") && b.starts_with("gen-") && a != b);
}

async fn selectors_filter_lists(h: &Harness) {
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    for (name, app, tier) in [
        ("a", "web", "front"),
        ("b", "web", "back"),
        ("c", "db", "back"),
    ] {
        pods.create(
            &PostParams::default(),
            &pod(name, json!({"app": app, "tier": tier})),
        )
        .await
        .unwrap();
    }
    let names = |list: kube::core::ObjectList<Pod>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    };
    let check = |selector: &'static str, expected: &'static [&'static str]| {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(selector))
                .await
                .unwrap();
            assert_eq!(names(list), expected, "{selector}");
        }
    };
    check("app=web", &["a", "b"]).await;
    check("app!=web", &["c"]).await;
    check("tier in (back),app notin (db)", &["b"]).await;
    check("app", &["a", "b", "c"]).await;
    check("!tier", &[]).await;
    let list = pods
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(names(list), ["b"]);
    let list = pods
        .list(&ListParams::default().fields("status.phase=Pending,metadata.name!=a"))
        .await
        .unwrap();
    assert_eq!(names(list), ["b", "c"]);
    let error = pods
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await
        .unwrap_err();
    assert_eq!(code(&error), 400);
    let all: Api<Pod> = Api::all(h.client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
}

async fn pagination_reads_one_snapshot(h: &Harness) {
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    for i in 0..25 {
        maps.create(
            &PostParams::default(),
            &config_map(&format!("p{i:02}"), "v"),
        )
        .await
        .unwrap();
    }
    let first = maps.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    let mut token = first.metadata.continue_.clone().expect("continue token");
    maps.create(&PostParams::default(), &config_map("p99", "late"))
        .await
        .unwrap();
    let mut seen: Vec<String> = first
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .collect();
    loop {
        let page = maps
            .list(&ListParams::default().limit(10).continue_token(&token))
            .await
            .unwrap();
        seen.extend(page.items.into_iter().filter_map(|m| m.metadata.name));
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(next) => token = next,
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, expected);
    let error = maps
        .list(&ListParams::default().continue_token("garbage"))
        .await
        .unwrap_err();
    assert_eq!(code(&error), 400);
}

async fn expired_continue_is_410(h: &Harness) {
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    for i in 0..5 {
        maps.create(&PostParams::default(), &config_map(&format!("e{i}"), "v"))
            .await
            .unwrap();
    }
    let first = maps.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.clone().expect("continue token");
    // History moves past the snapshot the token reads.
    maps.create(&PostParams::default(), &config_map("later", "v"))
        .await
        .unwrap();
    let current = h.api.store().current_revision().await.unwrap();
    h.api.store().compact(current).await.unwrap();
    match maps
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
    {
        Err(Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410 Expired, got {other:?}"),
    }
}

async fn watch_resumes_and_410s(h: &Harness) {
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let start = maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = maps
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();
    maps.create(&PostParams::default(), &config_map("w1", "1"))
        .await
        .unwrap();
    maps.create(&PostParams::default(), &config_map("w2", "1"))
        .await
        .unwrap();
    let mut last = String::new();
    for expected in ["w1", "w2"] {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(map) => {
                assert_eq!(map.metadata.name.as_deref(), Some(expected));
                last = map.metadata.resource_version.unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    drop(stream);
    maps.delete("w1", &DeleteParams::default()).await.unwrap();
    let mut resumed = maps
        .watch(&WatchParams::default(), &last)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(10), resumed.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Deleted(map) => assert_eq!(map.metadata.name.as_deref(), Some("w1")),
        other => panic!("{other:?}"),
    }
    // A watch from before the store's compaction is gone.
    let current = h.api.store().current_revision().await.unwrap();
    h.api.store().compact(current).await.unwrap();
    match maps.watch(&WatchParams::default(), "1").await {
        Err(error) => assert_eq!(code(&error), 410),
        Ok(stream) => {
            let mut stream = stream.boxed();
            match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
                .await
                .unwrap()
            {
                Ok(Some(WatchEvent::Error(status))) => assert_eq!(status.code, 410),
                other => panic!("{other:?}"),
            }
        }
    }
}

async fn watch_bookmarks(h: &Harness) {
    h.api.set_bookmark_interval(Duration::from_millis(200));
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let rv = maps
        .create(&PostParams::default(), &config_map("b", "1"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = maps
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            },
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Bookmark(bookmark) => assert!(
            bookmark.metadata.resource_version.parse::<i64>().unwrap()
                >= rv.parse::<i64>().unwrap()
        ),
        other => panic!("{other:?}"),
    }
}

async fn finalizers_hold_deletion(h: &Harness) {
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let mut map = config_map("fin", "1");
    map.metadata.finalizers = Some(vec!["skiff.dev/test".into()]);
    maps.create(&PostParams::default(), &map).await.unwrap();
    maps.delete("fin", &DeleteParams::default()).await.unwrap();
    let held = maps.get("fin").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    maps.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(code(&maps.get("fin").await.unwrap_err()), 404);
}

async fn status_subresource_is_isolated(h: &Harness) {
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("s", json!({})))
        .await
        .unwrap();
    // Status through the main resource is ignored.
    let patched = pods
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Pending"));
    // Spec through status is ignored.
    let patched = pods
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Running"}, "spec": {"activeDeadlineSeconds": 5}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(patched.spec.unwrap().active_deadline_seconds, None);
}

async fn generation_follows_spec(h: &Harness) {
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    deployments
        .create(&PostParams::default(), &deployment("g", 1))
        .await
        .unwrap();
    let labelled = deployments
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    let scaled = deployments
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    let status = deployments
        .patch_status(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(status.metadata.generation, Some(2));
    // An update that changes nothing keeps the resourceVersion.
    let same = deployments
        .replace("g", &PostParams::default(), &status)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        status.metadata.resource_version
    );
}

async fn dry_run_persists_nothing(h: &Harness) {
    let before = h.api.store().current_revision().await.unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let created = maps.create(&dry, &config_map("dry", "1")).await.unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("dry"));
    assert_eq!(code(&maps.get("dry").await.unwrap_err()), 404);
    assert_eq!(h.api.store().current_revision().await.unwrap(), before);
}

async fn namespace_deletion_removes_contents_first(h: &Harness) {
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "team");
    for i in 0..3 {
        maps.create(&PostParams::default(), &config_map(&format!("m{i}"), "v"))
            .await
            .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "team");
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    let error = maps
        .create(&PostParams::default(), &config_map("late", "v"))
        .await
        .unwrap_err();
    assert!(matches!(code(&error), 403 | 404), "{error:?}");
    for _ in 0..200 {
        if let Err(error) = namespaces.get("team").await {
            assert_eq!(code(&error), 404);
            assert!(
                maps.list(&ListParams::default())
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            );
            assert!(
                pods.list(&ListParams::default())
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("namespace was not deleted");
}

async fn bad_objects_are_rejected_with_causes(h: &Harness) {
    let before = h.api.store().current_revision().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    let mut bad = pod("Bad_Name", json!({}));
    bad.spec.as_mut().unwrap().containers[0].image = None;
    match pods.create(&PostParams::default(), &bad).await.unwrap_err() {
        Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            let fields: Vec<String> = status
                .details
                .unwrap()
                .causes
                .into_iter()
                .map(|c| c.field)
                .collect();
            assert!(fields.contains(&"metadata.name".to_owned()), "{fields:?}");
            assert!(
                fields.contains(&"spec.containers[0].image".to_owned()),
                "{fields:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    let error = deployments
        .create(&PostParams::default(), &deployment("neg", -1))
        .await
        .unwrap_err();
    assert_eq!(code(&error), 422);
    assert_eq!(h.api.store().current_revision().await.unwrap(), before);
}

/// kube-rs as controllers use it: `kube::runtime::watcher` sees the
/// initial list and then every change, and a Deployment takes strategic,
/// merge and JSON patches.
async fn kube_runtime_watcher_and_three_patch_types(h: &Harness) {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::runtime::watcher;

    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    maps.create(&PostParams::default(), &config_map("before", "0"))
        .await
        .unwrap();
    let (seen, mut events) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn({
        let maps = maps.clone();
        async move {
            let mut stream = watcher(maps, watcher::Config::default()).boxed();
            while let Some(event) = stream.try_next().await.unwrap() {
                let line = match event {
                    watcher::Event::Init => "init".to_owned(),
                    watcher::Event::InitApply(m) => {
                        format!("init-apply {}", m.metadata.name.unwrap())
                    }
                    watcher::Event::InitDone => "init-done".to_owned(),
                    watcher::Event::Apply(m) => format!(
                        "apply {} {}",
                        m.metadata.name.unwrap(),
                        m.data
                            .unwrap_or_default()
                            .get("key")
                            .cloned()
                            .unwrap_or_default()
                    ),
                    watcher::Event::Delete(m) => format!("delete {}", m.metadata.name.unwrap()),
                };
                if seen.send(line).is_err() {
                    return;
                }
            }
        }
    });
    async fn next(events: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("the watcher reported nothing")
            .unwrap()
    }
    assert_eq!(next(&mut events).await, "init");
    assert_eq!(next(&mut events).await, "init-apply before");
    assert_eq!(next(&mut events).await, "init-done");
    maps.create(&PostParams::default(), &config_map("during", "1"))
        .await
        .unwrap();
    assert_eq!(next(&mut events).await, "apply during 1");
    maps.patch(
        "during",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"key": "2"}})),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut events).await, "apply during 2");
    maps.delete("during", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(next(&mut events).await, "delete during");
    watch.abort();

    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "patched"},
        "spec": {
            "selector": {"matchLabels": {"app": "p"}},
            "template": {
                "metadata": {"labels": {"app": "p"}},
                "spec": {"containers": [
                    {"name": "a", "image": "registry.local/a:1", "env": [{"name": "X", "value": "1"}]},
                    {"name": "b", "image": "registry.local/b:1"},
                ]},
            },
        },
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let strategic = deployments
        .patch(
            "patched",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "b", "image": "registry.local/b:2"},
                {"name": "a", "env": [{"name": "Y", "value": "2"}]},
            ]}}}})),
        )
        .await
        .unwrap();
    let containers = &strategic.spec.template.spec.unwrap().containers;
    let summary: Vec<String> = containers
        .iter()
        .map(|c| {
            let env: Vec<String> = c.env.iter().flatten().map(|e| e.name.clone()).collect();
            format!(
                "{}={} [{}]",
                c.name,
                c.image.as_deref().unwrap_or(""),
                env.join(",")
            )
        })
        .collect();
    // Both containers stay, merged by name; env entries merge by name too.
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert!(
        summary.contains(&"a=registry.local/a:1 [Y,X]".to_owned())
            || summary.contains(&"a=registry.local/a:1 [X,Y]".to_owned()),
        "{summary:?}"
    );
    assert!(
        summary.contains(&"b=registry.local/b:2 []".to_owned()),
        "{summary:?}"
    );
    let merged = deployments
        .patch(
            "patched",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.spec.replicas, Some(4));
    let json_patched = deployments
        .patch(
            "patched",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/spec/replicas", "value": 4},
                    {"op": "replace", "path": "/spec/replicas", "value": 5},
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(json_patched.spec.replicas, Some(5));
}

/// A watcher that stops reading is dropped once it falls behind (its stream
/// ends instead of buffering without bound), and resuming from the last
/// resourceVersion it saw delivers the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watchers_are_dropped_and_can_resume() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let h = embedded().await;
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let start = maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let request = Request::builder()
        .uri(format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={start}"
        ))
        .extension(Identity::Admin)
        .body(Body::empty())
        .unwrap();
    let response = h.api.router().oneshot(request).await.unwrap();
    let mut body = response.into_body().into_data_stream();
    // Far more events than the cache's channel holds, while nobody reads.
    const WRITES: usize = 3_000;
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let maps = maps.clone();
            tokio::spawn(async move {
                for i in (w..WRITES).step_by(16) {
                    maps.create(
                        &PostParams::default(),
                        &config_map(&format!("m{i:05}"), "v"),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut last = String::new();
    let mut buffer = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), body.next())
        .await
        .expect("stream neither ended nor moved")
    {
        buffer.extend_from_slice(&chunk.unwrap());
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: serde_json::Value = serde_json::from_slice(&line).unwrap();
            seen.insert(
                event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            last = event["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    }
    // Dropped, not buffered without bound: it ended before delivering all
    // (a watcher is a stream that advances only as its client reads, so
    // it may end having delivered nothing).
    assert!(
        seen.len() < WRITES,
        "the slow watcher got {} events",
        seen.len()
    );
    if last.is_empty() {
        last = start.clone();
    }
    // Resume where it stopped: the rest arrives.
    let mut resumed = maps
        .watch(&WatchParams::default(), &last)
        .await
        .unwrap()
        .boxed();
    while seen.len() < WRITES {
        match tokio::time::timeout(Duration::from_secs(20), resumed.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(map) => {
                assert!(
                    seen.insert(map.metadata.name.unwrap()),
                    "duplicate after resume"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
