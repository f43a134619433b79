#!/usr/bin/env bash
# End to end: `skiff server --no-agent` driven by the real kubectl through
# the verbs users run every day, on the manifests next to this script,
# checking outputs, exit codes and the objects that result.
#
#   tests/e2e/kubectl.sh [path/to/skiff]     (run by `make test`)
#
# Everything happens on loopback, in a temporary data dir that is removed
# at the end. Rollout verbs wait for the controllers (not in this server yet).
set -euo pipefail

SKIFF=${1:-target/debug/skiff}
HERE=$(cd "$(dirname "$0")" && pwd)
MANIFESTS=$HERE/manifests
WORK=$(mktemp -d)
SERVER_PID=
PASSED=0

cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [[ -f $WORK/out ]]; then
        echo "--- output:" >&2
        cat "$WORK/out" >&2
    fi
    echo "--- server log (last 30 lines):" >&2
    tail -n 30 "$WORK/server.log" >&2 || true
    exit 1
}

# run DESCRIPTION COMMAND...: the command must succeed; output in $WORK/out.
run() {
    local what=$1
    shift
    local rc=0
    echo "  $what" >&2
    "$@" >"$WORK/out" 2>&1 || rc=$?
    ((rc == 0)) || fail "$what: exit $rc from: $*"
    PASSED=$((PASSED + 1))
}

# refuse DESCRIPTION COMMAND...: the command must fail.
refuse() {
    local what=$1
    shift
    echo "  $what (must fail)" >&2
    if "$@" >"$WORK/out" 2>&1; then
        fail "$what: expected a failure from: $*"
    fi
    PASSED=$((PASSED + 1))
}

# has PATTERN...: every extended regex matches some line of the last output.
has() {
    local pattern
    for pattern in "$@"; do
        grep -Eq -- "$pattern" "$WORK/out" || fail "output lacks /$pattern/"
    done
}

# is EXPECTED: the last output is exactly EXPECTED (trailing newline aside).
is() {
    [[ $(cat "$WORK/out") == "$1" ]] || fail "expected exactly [$1]"
}

[[ -x $SKIFF ]] || { echo "no skiff binary at $SKIFF (build it first)" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "kubectl is not installed (make deps)" >&2; exit 1; }

# --- the server ------------------------------------------------------------
"$SKIFF" server --no-agent --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    grep -q "skiff server ready" "$WORK/server.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited"
    sleep 0.1
done
grep -q "skiff server ready" "$WORK/server.log" || fail "the server did not become ready"
export KUBECONFIG=$WORK/data/kubeconfig
export KUBECACHEDIR=$WORK/kube-cache
k() { kubectl "$@"; }

# --- cluster information ----------------------------------------------------
run "version" k version -o json
has '"serverVersion"' '"gitVersion": "v1\.'
run "cluster-info" k cluster-info
has 'Kubernetes control plane is running at https://127\.0\.0\.1:[0-9]+'
run "api-resources" k api-resources
has '^pods +po +v1 +true +Pod' '^deployments +deploy +apps/v1 +true +Deployment' \
    '^runtimeclasses +node\.k8s\.io/v1 +false +RuntimeClass'
run "api-versions" k api-versions
has '^apps/v1$' '^v1$' '^node\.k8s\.io/v1$'
run "explain" k explain pod.spec.runtimeClassName
has 'FIELD: +runtimeClassName <string>'
run "explain recursive" k explain deployment.spec.strategy --recursive
has 'rollingUpdate' 'maxSurge'
run "auth can-i" k auth can-i create pods
is "yes"

# --- apply: a file, again unchanged, then changed -----------------------------
run "apply a file" k apply -f "$MANIFESTS/pod.yaml"
is "pod/hello created"
run "apply again" k apply -f "$MANIFESTS/pod.yaml"
is "pod/hello unchanged"
# A pod's spec is immutable but for images: a label and the image change.
sed -e 's/tier: front/tier: edge/' -e 's|registry.local/hello:1|registry.local/hello:2|' \
    "$MANIFESTS/pod.yaml" >"$WORK/pod-changed.yaml"
run "apply a changed file" k apply -f "$WORK/pod-changed.yaml"
is "pod/hello configured"
run "the change is there" k get pod hello -o 'jsonpath={.metadata.labels.tier} {.spec.containers[0].image}'
is "edge registry.local/hello:2"

# --- apply: a directory with a multi-document file ----------------------------
run "apply a directory" k apply -f "$MANIFESTS/app"
has '^configmap/app-config created$' '^deployment\.apps/web created$' '^service/web created$'

# A pod template edited as users edit it: an env var, a port, a volume and
# its mount added; then, from the next manifest, some of them removed again
# (client-side apply's three-way merge prunes what the manifest dropped).
deployment() { # ENV_ENTRIES PORT_ENTRIES MOUNTS VOLUMES
    cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
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
      runtimeClassName: wasmtime
      containers:
      - name: web
        image: registry.local/web:1
$1$2$3$4
EOF
}
deployment "        env:
        - name: MODE
          value: fast
        - name: LEVEL
          value: \"3\"
" "        ports:
        - containerPort: 8080
        - containerPort: 9090
          name: metrics
" "        volumeMounts:
        - name: cache
          mountPath: /cache
" "      volumes:
      - name: cache
        emptyDir: {}
" >"$WORK/web-v2.yaml"
run "apply a changed template" k apply -f "$WORK/web-v2.yaml"
is "deployment.apps/web configured"
run "template changed" k get deployment web -o 'jsonpath={.spec.template.spec.containers[0].env[*].name} {.spec.template.spec.containers[0].ports[*].containerPort} {.spec.template.spec.volumes[*].name}'
is "MODE LEVEL 8080 9090 cache"
deployment "        env:
        - name: LEVEL
          value: \"4\"
" "        ports:
        - containerPort: 8080
" "" "" >"$WORK/web-v3.yaml"
run "apply with fields removed" k apply -f "$WORK/web-v3.yaml"
is "deployment.apps/web configured"
run "removed fields are pruned" k get deployment web -o 'jsonpath={.spec.template.spec.containers[0].env[*].name}={.spec.template.spec.containers[0].env[*].value} {.spec.template.spec.containers[0].ports[*].containerPort} [{.spec.template.spec.volumes}] [{.spec.template.spec.containers[0].volumeMounts}]'
is "LEVEL=4 8080 [] []"

# --- create -------------------------------------------------------------------
run "create a namespace" k create namespace e2e
is "namespace/e2e created"
run "create a configmap" k create configmap settings -n e2e --from-literal=a=b
is "configmap/settings created"
run "create from a file" k create -f "$MANIFESTS/pod.yaml" -n e2e
is "pod/hello created"
refuse "create what exists" k create -f "$MANIFESTS/pod.yaml" -n e2e
has 'AlreadyExists|already exists'

# --- get ----------------------------------------------------------------------
run "get pods" k get pods
has '^NAME +READY +STATUS +RESTARTS +AGE$' '^hello +0/1 +Pending +0 +'
run "get -o wide" k get pods -o wide
has '^NAME +READY +STATUS +RESTARTS +AGE +IP +NODE +NOMINATED NODE +READINESS GATES$'
run "get -o yaml" k get pod hello -o yaml
has '^kind: Pod$' '^  name: hello$' 'runtimeClassName: wasmtime'
run "get -o json" k get configmap app-config -o json
has '"mode": "fast"'
run "get -o jsonpath" k get deployment web -o 'jsonpath={.spec.replicas}'
is "2"
run "get -l" k get all -l app=web -o name
has '^deployment\.apps/web$' '^service/web$'
run "get --field-selector" k get pods --field-selector metadata.name=hello -o name
is "pod/hello"
run "get -A" k get pods -A
has '^NAMESPACE +NAME +READY' '^default +hello ' '^e2e +hello '
run "get several kinds" k get deploy,rs,svc,cm
has '^deployment\.apps/web ' '^service/web +ClusterIP ' '^configmap/app-config '

# get -w: a watch prints the pod again when it changes.
timeout 8 kubectl get pod hello -w --output-watch-events >"$WORK/watch.out" 2>&1 &
WATCH_PID=$!
sleep 2
run "label (during a watch)" k label pod hello watched=yes
is "pod/hello labeled"
wait "$WATCH_PID" || true
cp "$WORK/watch.out" "$WORK/out"
has '^EVENT +NAME +READY' '^ADDED +hello ' '^MODIFIED +hello '

# --- label, annotate, patch, scale, edit -----------------------------------------
run "label" k label pod hello env=test
is "pod/hello labeled"
run "annotate" k annotate pod hello note=checked
is "pod/hello annotated"
run "strategic patch" k patch pod hello -p '{"spec":{"containers":[{"name":"app","image":"registry.local/hello:3"}]}}'
is "pod/hello patched"
run "merge patch" k patch pod hello --type=merge -p '{"metadata":{"labels":{"merged":"yes"}}}'
run "json patch" k patch pod hello --type=json -p '[{"op":"add","path":"/metadata/annotations/json","value":"yes"}]'
run "the patches are there" k get pod hello -o 'jsonpath={.metadata.labels.env} {.metadata.annotations.note} {.spec.containers[0].image} {.metadata.labels.merged} {.metadata.annotations.json}'
is "test checked registry.local/hello:3 yes yes"
refuse "an invalid patch" k patch pod hello --type=json -p '[{"op":"replace","path":"/spec/containers/0/image","value":""}]'
has 'The Pod "hello" is invalid' 'spec\.containers\[0\]\.image: Required value'
run "scale" k scale deployment web --replicas=3
is "deployment.apps/web scaled"
run "scaled" k get deployment web -o 'jsonpath={.spec.replicas}'
is "3"
KUBE_EDITOR="sed -i s/mode:\ fast/mode:\ slow/" run "edit" kubectl edit configmap app-config
is "configmap/app-config edited"
run "edited" k get configmap app-config -o 'jsonpath={.data.mode}'
is "slow"

# --- wait, describe ------------------------------------------------------------
run "status patch" k patch pod hello --subresource=status --type=merge \
    -p '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}'
run "wait for a condition" k wait --for=condition=Ready pod/hello --timeout=20s
is "pod/hello condition met"
run "describe" k describe pod hello
has '^Name: +hello$' '^Namespace: +default$' '^Labels: +app=hello$' '^Events:'

# --- delete -------------------------------------------------------------------
run "delete by label" k delete configmap -l app=web
is 'configmap "app-config" deleted'
# The garbage collector finishes orphaning: the Deployment goes, its
# ReplicaSets stay without an owner (and are then deleted by label, their
# pods following them in the background).
run "delete --cascade=orphan" k delete deployment web --cascade=orphan --timeout=30s
is 'deployment.apps "web" deleted'
refuse "gone once orphaned" k get deployment web
has 'NotFound'
run "its ReplicaSets stay, ownerless" k get rs -l app=web -o 'jsonpath={range .items[*]}{.metadata.name}={.metadata.ownerReferences}{"\n"}{end}'
has '^web-[a-z0-9]+=$'
run "delete the orphans" k delete rs -l app=web --timeout=30s
has '^replicaset\.apps "web-[a-z0-9]+" deleted$'
run "their pods follow" k wait --for=delete pod -l app=web --timeout=30s
run "delete --cascade=background" k delete service web --cascade=background
is 'service "web" deleted'
run "delete --all" k delete pods --all -n e2e
is 'pod "hello" deleted'
run "delete a namespace" k delete namespace e2e --timeout=30s
is 'namespace "e2e" deleted'
refuse "get what was deleted" k get namespace e2e
has 'NotFound'
run "delete --cascade=foreground" k delete pod hello --cascade=foreground --timeout=30s
is 'pod "hello" deleted'
refuse "gone once the collector finished" k get pod hello
has 'NotFound'
run "nothing left" k get all -o name
is ""

echo "kubectl end to end: $PASSED steps passed"
