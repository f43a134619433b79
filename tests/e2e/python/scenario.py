"""End to end: the official Python Kubernetes client against skiff.

    python scenario.py KUBECONFIG

CRUD, list selectors, the three patch types, the status and scale
subresources, watches (replayed from a resourceVersion and live), the
Conflict / NotFound / Invalid errors, and a namespace deletion. Prints one
line per step ("ok" or "FAIL" with what went wrong), then a count; a failed
step does not stop the scenario unless later steps need what it makes. The
exit code is 1 when any step failed. Everything is bounded in time (see
DEADLINE).
"""

import json
import signal
import sys
import threading
import time
import traceback

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

NS = "py-e2e"
# The whole scenario takes a few seconds; this stops a hung one.
DEADLINE = 180
# Per request, so that no single call can hang.
TIMEOUT = 20

PASSED = 0
FAILED = []


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def eq(actual, expected, what):
    if actual != expected:
        raise Failure(f"{what}: expected {expected!r}, got {actual!r}")


def step(name, fn, fatal=False):
    """Runs one step and prints its outcome. A failed step is counted and the
    scenario goes on with the next one, unless the step is fatal (later steps
    need what it makes): then the scenario ends at once."""
    global PASSED
    try:
        result = fn()
    except Failure as e:
        failed(name, str(e), fatal)
    except ApiException as e:
        failed(name, f"API error {e.status} {e.reason}: {e.body}", fatal)
    except Exception:  # noqa: BLE001 - any error is a failed step
        failed(name, traceback.format_exc(), fatal)
    else:
        PASSED += 1
        print(f"ok   {name}", flush=True)
        return result
    return None


def failed(name, message, fatal):
    FAILED.append(name)
    print(f"FAIL {name}: {message}", flush=True)
    if fatal:
        die(f"{name} failed, later steps need it")


def summary():
    print(f"python-client: {PASSED} passed, {len(FAILED)} failed", flush=True)


def die(message):
    summary()
    print(f"FAIL: {message}; failed steps: {', '.join(FAILED)}", file=sys.stderr, flush=True)
    sys.exit(1)


def api_error(fn, *args, **kwargs):
    """Calls fn, which must fail with an ApiException; returns it."""
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        return e
    raise Failure(f"{fn.__name__} succeeded, an API error was expected")


class ContentTypes:
    """Records the Content-Type of every request the client sends."""

    def __init__(self, api_client):
        self.sent = []
        rest = api_client.rest_client
        original = rest.request

        def request(method, url, headers=None, *args, **kwargs):
            # rest.request may rewrite the header (a dict body sent with the
            # default JSON Patch type becomes a strategic merge patch): record
            # what was actually sent, after the call has built the request.
            response = original(method, url, headers, *args, **kwargs)
            self.sent.append((method, (headers or {}).get("Content-Type")))
            return response

        rest.request = request

    def last(self):
        return self.sent[-1]


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} KUBECONFIG", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGALRM, lambda *_: die(f"the scenario took over {DEADLINE}s"))
    signal.alarm(DEADLINE)

    config.load_kube_config(config_file=sys.argv[1])
    api_client = client.ApiClient()
    sent = ContentTypes(api_client)
    v1 = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    t = {"_request_timeout": TIMEOUT}

    # --- discovery and a namespace ---------------------------------------------
    def version():
        info = client.VersionApi(api_client).get_code(**t)
        check(info.git_version.startswith("v1."), f"gitVersion {info.git_version!r}")

    step("server version", version)

    def create_namespace():
        ns = v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)), **t)
        eq(ns.metadata.name, NS, "namespace name")
        eq(v1.read_namespace(NS, **t).status.phase, "Active", "namespace phase")

    step("create a namespace", create_namespace, fatal=True)

    # --- ConfigMap CRUD -----------------------------------------------------------
    def configmap(name, labels=None, data=None):
        return client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels=labels), data=data
        )

    def create_configmap():
        cm = v1.create_namespaced_config_map(
            NS, configmap("settings", {"app": "py", "tier": "back"}, {"mode": "fast"}), **t
        )
        eq(cm.metadata.namespace, NS, "namespace")
        check(cm.metadata.uid, "no uid")
        check(cm.metadata.resource_version, "no resourceVersion")
        check(cm.metadata.creation_timestamp is not None, "no creationTimestamp")
        v1.create_namespaced_config_map(NS, configmap("other", {"app": "other"}, {"x": "y"}), **t)

    step("create ConfigMaps", create_configmap, fatal=True)

    def read_configmap():
        cm = v1.read_namespaced_config_map("settings", NS, **t)
        eq(cm.data, {"mode": "fast"}, "data")
        eq(cm.metadata.labels, {"app": "py", "tier": "back"}, "labels")
        return cm

    first = step("read a ConfigMap", read_configmap, fatal=True)

    def list_configmaps():
        names = lambda l: sorted(i.metadata.name for i in l.items)  # noqa: E731
        every = v1.list_namespaced_config_map(NS, **t)
        check({"settings", "other"} <= set(names(every)), f"list: {names(every)}")
        check(every.metadata.resource_version, "list without resourceVersion")
        eq(names(v1.list_namespaced_config_map(NS, label_selector="app=py", **t)),
           ["settings"], "label_selector app=py")
        eq(names(v1.list_namespaced_config_map(NS, label_selector="app in (py,other),tier!=back", **t)),
           ["other"], "label_selector set-based")
        eq(names(v1.list_namespaced_config_map(NS, field_selector="metadata.name=other", **t)),
           ["other"], "field_selector metadata.name=other")
        eq(names(v1.list_namespaced_config_map(NS, field_selector="metadata.name!=other",
                                               label_selector="app", **t)),
           ["settings"], "field_selector != with label_selector")
        across = v1.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={NS}", **t)
        check({"settings", "other"} <= set(names(across)), f"all namespaces: {names(across)}")

    step("list ConfigMaps with label and field selectors", list_configmaps)

    def replace_configmap():
        cm = v1.read_namespaced_config_map("settings", NS, **t)
        cm.data = {"mode": "slow", "extra": "1"}
        updated = v1.replace_namespaced_config_map("settings", NS, cm, **t)
        eq(updated.data, {"mode": "slow", "extra": "1"}, "replaced data")
        check(updated.metadata.resource_version != first.metadata.resource_version,
              "resourceVersion unchanged by an update")
        eq(v1.read_namespaced_config_map("settings", NS, **t).data["mode"], "slow", "data read back")

    step("replace (update) a ConfigMap", replace_configmap)

    def stale_update():
        # `first` carries the resourceVersion from before the replace.
        first.data = {"mode": "stale"}
        e = api_error(v1.replace_namespaced_config_map, "settings", NS, first, **t)
        eq(e.status, 409, "status of an update with a stale resourceVersion")
        check("Conflict" in (e.body or ""), f"body lacks reason Conflict: {e.body}")
        eq(v1.read_namespaced_config_map("settings", NS, **t).data["mode"], "slow", "data after the conflict")

    step("409 Conflict on a stale resourceVersion", stale_update)

    def already_exists():
        e = api_error(v1.create_namespaced_config_map, NS, configmap("settings"), **t)
        eq(e.status, 409, "status of a create of an existing name")
        check("AlreadyExists" in (e.body or ""), f"body lacks reason AlreadyExists: {e.body}")

    step("409 AlreadyExists on a duplicate create", already_exists)

    def delete_configmap():
        status = v1.delete_namespaced_config_map("settings", NS, **t)
        check(status is not None, "no response body")
        e = api_error(v1.read_namespaced_config_map, "settings", NS, **t)
        eq(e.status, 404, "status of a read after the delete")

    step("delete a ConfigMap", delete_configmap)

    def not_found():
        e = api_error(v1.read_namespaced_config_map, "missing", NS, **t)
        eq(e.status, 404, "status of a read of a missing object")
        check("NotFound" in (e.body or ""), f"body lacks reason NotFound: {e.body}")
        e = api_error(v1.delete_namespaced_pod, "missing", NS, **t)
        eq(e.status, 404, "status of a delete of a missing object")

    step("404 NotFound on a missing object", not_found)

    def invalid():
        e = api_error(v1.create_namespaced_config_map, NS, configmap("Not_A_Valid_Name"), **t)
        eq(e.status, 422, "status of a create with an invalid name")
        body = json.loads(e.body or "{}")
        eq(body.get("reason"), "Invalid", "reason")
        eq([c.get("field") for c in body.get("details", {}).get("causes", [])], ["metadata.name"],
           "fields of the causes")
        empty = client.V1Pod(
            metadata=client.V1ObjectMeta(name="no-containers"),
            spec=client.V1PodSpec(containers=[]),
        )
        e = api_error(v1.create_namespaced_pod, NS, empty, **t)
        eq(e.status, 422, "status of a create of a pod without containers")

    step("422 Invalid on an invalid object", invalid)

    # --- a Pod and the three patch types ---------------------------------------------
    def create_pod():
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="hello", labels={"app": "hello"}),
            spec=client.V1PodSpec(
                runtime_class_name="wasmtime",
                containers=[client.V1Container(
                    name="app",
                    image="registry.local/hello:1",
                    env=[client.V1EnvVar(name="MODE", value="fast")],
                )],
            ),
        )
        created = v1.create_namespaced_pod(NS, pod, **t)
        eq(created.spec.runtime_class_name, "wasmtime", "runtimeClassName")
        read = v1.read_namespaced_pod("hello", NS, **t)
        eq(read.metadata.uid, created.metadata.uid, "uid read back")
        eq([c.name for c in read.spec.containers], ["app"], "containers")
        eq(read.spec.containers[0].image, "registry.local/hello:1", "image")
        eq(read.status.phase, "Pending", "phase")

    step("create and read a Pod (runtimeClassName wasmtime)", create_pod, fatal=True)

    def strategic_merge():
        # A dict body: this client sends it as a strategic merge patch.
        pod = v1.patch_namespaced_pod("hello", NS, {
            "metadata": {"labels": {"patched": "strategic"}},
            "spec": {"containers": [{"name": "app", "image": "registry.local/hello:2"}]},
        }, **t)
        eq(sent.last(), ("PATCH", "application/strategic-merge-patch+json"), "request sent")
        eq(pod.metadata.labels, {"app": "hello", "patched": "strategic"}, "labels")
        eq(pod.spec.containers[0].image, "registry.local/hello:2", "image")
        # The container list merges on its key (name): env is kept.
        eq([(e.name, e.value) for e in pod.spec.containers[0].env or []], [("MODE", "fast")],
           "env of the container merged by name")

    step("strategic merge patch (dict body)", strategic_merge)

    def merge_patch():
        pod = v1.patch_namespaced_pod("hello", NS, {
            "metadata": {"labels": {"patched": None, "merged": "yes"}},
        }, _content_type="application/merge-patch+json", **t)
        eq(sent.last(), ("PATCH", "application/merge-patch+json"), "request sent")
        eq(pod.metadata.labels, {"app": "hello", "merged": "yes"}, "labels (null removes a key)")
        eq(pod.spec.containers[0].image, "registry.local/hello:2", "image untouched")

    step("JSON merge patch (_content_type)", merge_patch)

    def json_patch():
        # A list body: this client sends it as a JSON Patch.
        pod = v1.patch_namespaced_pod("hello", NS, [
            {"op": "test", "path": "/spec/containers/0/image", "value": "registry.local/hello:2"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "registry.local/hello:3"},
            {"op": "add", "path": "/metadata/labels/json", "value": "yes"},
            {"op": "remove", "path": "/metadata/labels/merged"},
        ], **t)
        eq(sent.last(), ("PATCH", "application/json-patch+json"), "request sent")
        eq(pod.metadata.labels, {"app": "hello", "json": "yes"}, "labels")
        eq(pod.spec.containers[0].image, "registry.local/hello:3", "image")
        # A failing test operation fails the whole patch, unapplied.
        e = api_error(v1.patch_namespaced_pod, "hello", NS, [
            {"op": "test", "path": "/spec/containers/0/image", "value": "registry.local/hello:1"},
            {"op": "add", "path": "/metadata/labels/never", "value": "x"},
        ], **t)
        eq(e.status, 422, "status of a JSON Patch whose test operation fails")
        check("never" not in v1.read_namespaced_pod("hello", NS, **t).metadata.labels,
              "a failed JSON Patch was partly applied")

    step("JSON patch (list body)", json_patch)

    def status_patch():
        pod = v1.patch_namespaced_pod_status("hello", NS, {
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            # The status subresource ignores changes to the spec.
            "spec": {"containers": [{"name": "app", "image": "registry.local/ignored:9"}]},
        }, **t)
        eq(sent.last(), ("PATCH", "application/strategic-merge-patch+json"), "request sent")
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        eq(conditions.get("Ready"), "True", "Ready condition in the response")
        read = v1.read_namespaced_pod_status("hello", NS, **t)
        eq({c.type: c.status for c in read.status.conditions or []}.get("Ready"), "True",
           "Ready condition read back")
        eq(read.spec.containers[0].image, "registry.local/hello:3", "spec changed through /status")
        # And the main resource ignores changes to the status.
        v1.patch_namespaced_pod("hello", NS, {"status": {"phase": "Failed"}}, **t)
        eq(v1.read_namespaced_pod("hello", NS, **t).status.phase, "Pending",
           "status changed through the main resource")

    step("patch a Pod's status (status subresource)", status_patch)

    # --- a Deployment and its scale subresource ---------------------------------------
    def deployment_scale():
        labels = {"app": "web"}
        dep = client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web", labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        runtime_class_name="wasmtime",
                        containers=[client.V1Container(name="web", image="registry.local/web:1")],
                    ),
                ),
            ),
        )
        created = apps.create_namespaced_deployment(NS, dep, **t)
        eq(created.spec.replicas, 1, "replicas")
        scale = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}}, **t)
        eq(scale.kind, "Scale", "kind")
        eq(scale.spec.replicas, 3, "replicas in the patched Scale")
        scale = apps.read_namespaced_deployment_scale("web", NS, **t)
        eq(scale.metadata.name, "web", "Scale name")
        eq(scale.spec.replicas, 3, "replicas in the Scale read back")
        eq(scale.status.selector, "app=web", "Scale status.selector")
        eq(apps.read_namespaced_deployment("web", NS, **t).spec.replicas, 3, "Deployment replicas")

    step("create a Deployment, patch and read its scale", deployment_scale)

    # --- watches ---------------------------------------------------------------------
    def changes(name):
        """Creates, updates and deletes a ConfigMap NAME."""
        v1.create_namespaced_config_map(NS, configmap(name, {"watch": "yes"}, {"v": "1"}), **t)
        v1.patch_namespaced_config_map(name, NS, {"data": {"v": "2"}}, **t)
        v1.delete_namespaced_config_map(name, NS, **t)

    def collect(stream, w, name):
        """Events about NAME until its DELETED (or the watch's timeout)."""
        seen = []
        for event in stream:
            obj = event["object"]
            if obj.metadata.name != name:
                continue
            seen.append((event["type"], (obj.data or {}).get("v"), int(obj.metadata.resource_version)))
            if event["type"] == "DELETED":
                w.stop()
        return seen

    def expect_events(seen):
        eq([(kind, v) for kind, v, _ in seen], [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")],
           "events (type, data.v)")
        versions = [rv for _, _, rv in seen]
        eq(versions, sorted(set(versions)), "event resourceVersions increasing")

    def watch_replay():
        # Changes made before the watch request: a watch from the list's
        # resourceVersion must replay them, in order.
        rv = v1.list_namespaced_config_map(NS, **t).metadata.resource_version
        changes("replayed")
        w = watch.Watch()
        stream = w.stream(v1.list_namespaced_config_map, namespace=NS,
                          resource_version=rv, timeout_seconds=10)
        started = time.monotonic()
        seen = collect(stream, w, "replayed")
        expect_events(seen)
        check(time.monotonic() - started < 9, "the watch did not stop after DELETED")

    step("watch replays ADDED, MODIFIED, DELETED from a resourceVersion", watch_replay)

    def watch_live():
        # Changes made by a thread while the watch is open.
        rv = v1.list_namespaced_config_map(NS, **t).metadata.resource_version
        errors = []

        def writer():
            try:
                time.sleep(1)
                changes("live")
            except Exception as e:  # noqa: BLE001 - reported by the step
                errors.append(e)

        w = watch.Watch()
        stream = w.stream(v1.list_namespaced_config_map, namespace=NS, label_selector="watch=yes",
                          resource_version=rv, timeout_seconds=10)
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        seen = collect(stream, w, "live")
        thread.join(TIMEOUT)
        check(not errors, f"the writer failed: {errors}")
        expect_events(seen)

    step("watch receives ADDED, MODIFIED, DELETED made by a thread", watch_live)

    def watch_expired():
        # A watch with no event ends at timeout_seconds.
        w = watch.Watch()
        rv = v1.list_namespaced_config_map(NS, **t).metadata.resource_version
        started = time.monotonic()
        events = list(w.stream(v1.list_namespaced_config_map, namespace=NS,
                               label_selector="nothing=here", resource_version=rv,
                               timeout_seconds=2))
        took = time.monotonic() - started
        eq(events, [], "events of a quiet watch")
        check(1.5 <= took < 8, f"a 2s watch lasted {took:.1f}s")

    step("a quiet watch ends at timeout_seconds", watch_expired)

    # --- the namespace goes, with what is in it -------------------------------------------
    def delete_namespace():
        v1.delete_namespace(NS, **t)
        deadline = time.monotonic() + 60
        while True:
            try:
                ns = v1.read_namespace(NS, **t)
            except ApiException as e:
                eq(e.status, 404, "status of a read of the deleted namespace")
                break
            check(time.monotonic() < deadline,
                  f"namespace still there after 60s: phase {ns.status.phase}, "
                  f"conditions {ns.status.conditions}")
            time.sleep(0.5)
        left = [f"{i.kind or 'Pod'}/{i.metadata.name}" for i in
                v1.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={NS}", **t).items]
        left += [f"ConfigMap/{i.metadata.name}" for i in
                 v1.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={NS}", **t).items]
        left += [f"Deployment/{i.metadata.name}" for i in
                 apps.list_deployment_for_all_namespaces(field_selector=f"metadata.namespace={NS}", **t).items]
        eq(left, [], "objects left in the deleted namespace")

    step("delete the namespace and wait until it is gone", delete_namespace)

    if FAILED:
        die(f"{len(FAILED)} step(s) failed")
    summary()


if __name__ == "__main__":
    main()
