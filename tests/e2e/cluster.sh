#!/usr/bin/env bash
# End to end: a cluster on one machine, one `skiff server --no-agent` and three
# `skiff agent`s on their own loopback addresses, running the hello-http Wasm
# component (examples/hello-http) pulled from a local registry, driven by the
# real kubectl:
#
#   a. a registry (Debian's docker-registry) with hello-http v1 and v2 pushed;
#   b. the server and three agents; three Ready nodes;
#   c. a Deployment of $REPLICAS, spread over the nodes;
#   d. every pod answers HTTP at its podIP:containerPort; `kubectl logs`;
#   e. scale to $SCALE_UP and back to $SCALE_DOWN;
#   f. a rolling update to the v2 artifact under traffic, no failed request;
#   g. SIGKILL of the busiest agent: its node goes NotReady, its pods are
#      replaced on the others once its Lease has expired;
#   h. a pod that wants skiff.dev/gpu-enabled=true stays Pending, with the
#      scheduler's reason, until the killed agent comes back so labelled;
#   i. SIGKILL of an agent and its restart at once: its pods converge in
#      place, the same pods (no duplicates), their Wasm containers restarted;
#   j. SIGTERM of an agent: it reports its node not ready as it stops;
#   k. a task pod (examples/hello) with env from a ConfigMap and $(VAR) in
#      its args runs to Succeeded and logs what it got.
#
#   tests/e2e/cluster.sh [path/to/skiff]     (run by `make test`, as root)
#
# Pods are reached the way a client without a Service would: at the
# status.podIP and containerPort of each pod, as the API reports them, so the
# script holds whatever addresses the agent gives its pods (those must differ
# between two pods on one node, which the script checks).
#
# Everything happens on loopback (127.0.0.1 for the server and the registry,
# 127.0.0.2-4 for the nodes, 127.1.N.0/24 for the pods of node N when the
# agent takes --pod-address-range), in a temporary directory removed at the end;
# every process started here is stopped at the end, and every wait is
# bounded.
set -euo pipefail

SKIFF=${1:-target/debug/skiff}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MANIFESTS=$HERE/manifests/cluster

# --- knobs (environment overrides) ---------------------------------------------
REPLICAS=${REPLICAS:-6}
SCALE_UP=${SCALE_UP:-12}
SCALE_DOWN=${SCALE_DOWN:-2}
NODES=(n1 n2 n3)
declare -A NODE_IP=([n1]=127.0.0.2 [n2]=127.0.0.3 [n3]=127.0.0.4)
# Pod addresses of each node, when the agent has --pod-address-range (pods
# of one node then serve the same port on addresses of their own).
declare -A POD_RANGE=([n1]=127.1.1.0/24 [n2]=127.1.2.0/24 [n3]=127.1.3.0/24)
# Node health: short, so that a killed agent is noticed in seconds.
NODE_MONITOR_GRACE_SECONDS=15
TOLERATION_SECONDS=5
LEASE_DURATION_SECONDS=10
# Bounds of the waits, in seconds.
START_TIMEOUT=30
NODES_READY_TIMEOUT=60
PODS_READY_TIMEOUT=180
ROLLOUT_TIMEOUT=180
FAILOVER_TIMEOUT=120
GPU_TIMEOUT=90
# The traffic during the rolling update: at most this many requests and
# seconds, and at least this many answered.
TRAFFIC_MAX_REQUESTS=2000
TRAFFIC_MAX_SECONDS=$((ROLLOUT_TIMEOUT + 60))
TRAFFIC_MIN_ANSWERED=10
# Prebuilt artifacts, instead of building them here.
HELLO_HTTP_V1=${HELLO_HTTP_V1:-}
HELLO_HTTP_V2=${HELLO_HTTP_V2:-}

WORK=$(mktemp -d)
DATA=$WORK/server
PASSED=0
SERVER_PID=
REGISTRY_PID=
TRAFFIC_PID=
declare -A AGENT_PID=()
AGENT_FLAGS=()
# Nothing here may go through a proxy.
export NO_PROXY=${NO_PROXY:+$NO_PROXY,}127.0.0.0/8,localhost
export no_proxy=$NO_PROXY
# Plain logs, for the excerpts shown on a failure.
export NO_COLOR=1

# Stops what this script started, by pid: SIGTERM, then SIGKILL for what is
# still there after 15 seconds.
cleanup() {
    local pid pids=() deadline
    for pid in "$TRAFFIC_PID" "${AGENT_PID[@]}" "$SERVER_PID" "$REGISTRY_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    deadline=$((SECONDS + 15))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK" || echo "cluster e2e: could not remove $WORK" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The test's own stderr, for failures found inside commands whose output
# is being captured.
exec 3>&2

fail() {
    {
        echo "FAIL: $*"
        if [[ -f $WORK/out ]]; then
            echo "--- output:"
            cat "$WORK/out"
        fi
        if [[ -f $DATA/kubeconfig ]]; then
            echo "--- nodes and pods:"
            kubectl --request-timeout=5s get nodes,pods -o wide 2>&1 || true
        fi
        local log
        for log in "$WORK"/server.log "$WORK"/agent-*.log "$WORK"/registry.log; do
            [[ -f $log ]] || continue
            echo "--- $(basename "$log") (last 30 lines):"
            tail -n 30 "$log" || true
        done
    } >&3
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

# eventually SECONDS DESCRIPTION COMMAND...: the command must succeed within
# SECONDS, tried once a second; output of the last try in $WORK/out.
eventually() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    echo "  $what" >&2
    until "$@" >"$WORK/out" 2>&1; do
        ((SECONDS < deadline)) || fail "$what: not within ${timeout}s: $*"
        sleep 1
    done
    PASSED=$((PASSED + 1))
}

# has PATTERN...: every extended regex matches some line of the last output.
has() {
    local pattern
    for pattern in "$@"; do
        grep -Eq -- "$pattern" "$WORK/out" || fail "output lacks /$pattern/"
    done
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

# is EXPECTED: the last output is exactly EXPECTED (trailing newline aside).
is() {
    [[ $(cat "$WORK/out") == "$1" ]] || fail "expected exactly [$1]"
}

k() { kubectl --request-timeout=15s "$@"; }

# http_get HOST:PORT PATH: the body of a 2xx answer, else a failure.
http_get() {
    curl --silent --show-error --fail --noproxy '*' --connect-timeout 2 --max-time 5 \
        "http://$1$2"
}

# A loopback port nothing listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# list_pods SELECTOR: one line per pod,
# name|node|podIP|containerPort|Ready|deletionTimestamp|image.
list_pods() {
    k get pods -l "$1" -o jsonpath='{range .items[*]}{.metadata.name}{"|"}{.spec.nodeName}{"|"}{.status.podIP}{"|"}{.spec.containers[0].ports[0].containerPort}{"|"}{.status.conditions[?(@.type=="Ready")].status}{"|"}{.metadata.deletionTimestamp}{"|"}{.spec.containers[0].image}{"\n"}{end}'
}

# hello_pods_ready COUNT [TAG]: exactly COUNT pods of the Deployment that are
# not being deleted, each Ready, with an IP (and image tag TAG).
hello_pods_ready() {
    local want=$1 tag=${2:-} live=0 ready=0 name node ip port rd del image
    list_pods app=hello >"$WORK/pods" || return 1
    cat "$WORK/pods"
    while IFS='|' read -r name node ip port rd del image; do
        [[ -z $del ]] || continue
        live=$((live + 1))
        if [[ $rd == True && -n $ip && ( -z $tag || $image == *:"$tag" ) ]]; then
            ready=$((ready + 1))
        fi
    done <"$WORK/pods"
    echo "live $live, ready $ready, want $want"
    ((live == want && ready == want))
}

# hello_pods_total COUNT: exactly COUNT pods of the Deployment exist at all,
# those being deleted included.
hello_pods_total() {
    list_pods app=hello >"$WORK/pods" || return 1
    cat "$WORK/pods"
    [[ $(grep -c . "$WORK/pods") == "$1" ]]
}

# answer_all [TAG]: every live pod of the Deployment answers GET / with the
# greeting (and `version: TAG`).
answer_all() {
    local tag=${1:-} name node ip port rd del image body
    list_pods app=hello >"$WORK/pods" || return 1
    while IFS='|' read -r name node ip port rd del image; do
        [[ -z $del ]] || continue
        body=$(http_get "$ip:$port" /) || { echo "$name at $ip:$port did not answer"; return 1; }
        [[ $body == *"hello from skiff"* ]] || { echo "$name answered: $body"; return 1; }
        if [[ -n $tag && $body != *"version: $tag"* ]]; then
            echo "$name answered: $body"
            return 1
        fi
        echo "$name $ip:$port: ${body//$'\n'/ }"
    done <"$WORK/pods"
}

# pod_logged POD REGEX: `kubectl logs POD` has a line matching REGEX.
pod_logged() {
    k logs "$1" >"$WORK/logs" || return 1
    cat "$WORK/logs"
    grep -Eq -- "$2" "$WORK/logs"
}

# distinct_addresses: no two live pods of the Deployment share podIP:port
# (two pods of one node on the node's own address would).
distinct_addresses() {
    local shared
    list_pods app=hello | awk -F'|' '$6 == "" { print $3 ":" $4 " " $1 " on " $2 }' |
        sort >"$WORK/addresses" || return 1
    cat "$WORK/addresses"
    shared=$(cut -d' ' -f1 "$WORK/addresses" | uniq -d)
    [[ -z $shared ]] && return 0
    echo "pods share ${shared//$'\n'/, }: each pod needs an address of its own" \
        "(agent --pod-address-range), or run with REPLICAS and SCALE_UP at most one per node"
    return 1
}

# on_every_node: every node runs at least one pod of the Deployment.
on_every_node() {
    local node
    list_pods app=hello >"$WORK/pods" || return 1
    cat "$WORK/pods"
    for node in "${NODES[@]}"; do
        cut -d'|' -f2 "$WORK/pods" | grep -qx "$node" || { echo "no pod on $node"; return 1; }
    done
}

# nodes_ready NAME...: each named node's Ready condition is True.
nodes_ready() {
    local table name
    table=$(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}') || return 1
    echo "$table"
    for name in "$@"; do
        agent_alive "$name"
        grep -qx "$name=True" <<<"$table" || return 1
    done
}

# node_not_ready NAME: the node's Ready condition is no longer True.
node_not_ready() {
    local ready
    ready=$(k get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') || return 1
    echo "Ready=$ready"
    [[ -n $ready && $ready != True ]]
}

# replaced_off NODE COUNT: COUNT Ready pods of the Deployment run on other
# nodes than NODE, and none that is not being deleted is left on NODE.
replaced_off() {
    local gone=$1 want=$2 elsewhere=0 left=0 name node ip port rd del image
    list_pods app=hello >"$WORK/pods" || return 1
    cat "$WORK/pods"
    while IFS='|' read -r name node ip port rd del image; do
        [[ -z $del ]] || continue
        if [[ $node == "$gone" ]]; then
            left=$((left + 1))
        elif [[ $rd == True ]]; then
            elsewhere=$((elsewhere + 1))
        fi
    done <"$WORK/pods"
    echo "Ready elsewhere $elsewhere (want $want), live on $gone $left"
    ((elsewhere == want && left == 0))
}

# agent_alive NAME: fails the test at once when that agent has exited.
agent_alive() {
    kill -0 "${AGENT_PID[$1]}" 2>/dev/null || fail "agent $1 exited (see agent-$1.log)"
}

# start_agent NAME [FLAG...]: starts the agent of node NAME on its address,
# with its own data dir (kept across restarts), logging to agent-NAME.log.
start_agent() {
    local name=$1 ip=${NODE_IP[$1]}
    shift
    if [[ -n $POD_RANGE_FLAG ]]; then
        set -- "$POD_RANGE_FLAG" "${POD_RANGE[$name]}" "$@"
    fi
    mkdir -p "$WORK/agents/$name"
    echo "--- $(date +%T) starting agent $name $*" >>"$WORK/agent-$name.log"
    "$SKIFF" agent --server "$API" --token-file "$DATA/node-token" --ca-file "$DATA/tls/ca.crt" \
        --data-dir "$WORK/agents/$name" --name "$name" --node-ip "$ip" --listen "$ip:10250" \
        --insecure-registry "$REGISTRY" "${AGENT_FLAGS[@]}" "$@" \
        >>"$WORK/agent-$name.log" 2>&1 &
    AGENT_PID[$name]=$!
}

# build_hello_http VERSION: builds examples/hello-http answering VERSION into
# $WORK/build-VERSION and prints the .wasm's path. A target dir of its own,
# so the examples' own build output stays as `make build-examples` left it.
build_hello_http() {
    local target=$WORK/build-$1
    (cd "$ROOT/examples" && HELLO_VERSION=$1 "${CARGO:-cargo}" build --quiet --release \
        --target wasm32-wasip2 -p hello-http --target-dir "$target") >&2 || return 1
    echo "$target/wasm32-wasip2/release/hello_http.wasm"
}

[[ -x $SKIFF ]] || { echo "no skiff binary at $SKIFF (build it first)" >&2; exit 1; }
for tool in kubectl curl python3 /usr/bin/docker-registry; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (make deps)" >&2; exit 1; }
done
export KUBECONFIG=$DATA/kubeconfig
export KUBECACHEDIR=$WORK/kube-cache

# --- a. the registry and the two artifacts ---------------------------------------
echo "  building hello-http v1 and v2" >&2
[[ -n $HELLO_HTTP_V1 ]] || HELLO_HTTP_V1=$(build_hello_http v1) || fail "building hello-http v1"
[[ -n $HELLO_HTTP_V2 ]] || HELLO_HTTP_V2=$(build_hello_http v2) || fail "building hello-http v2"
run "both artifacts are there" test -s "$HELLO_HTTP_V1" -a -s "$HELLO_HTTP_V2"
refuse "v1 and v2 are different artifacts" cmp -s "$HELLO_HTTP_V1" "$HELLO_HTTP_V2"

# The registry picks no port itself: try a few free ones, as the Rust tests do.
mkdir -p "$WORK/registry"
REGISTRY=
for _attempt in 1 2 3; do
    port=$(free_port)
    cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: skiff-e2e-secret
EOF
    /usr/bin/docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry.log" 2>&1 </dev/null &
    REGISTRY_PID=$!
    for _ in $(seq 1 $((START_TIMEOUT * 10))); do
        kill -0 "$REGISTRY_PID" 2>/dev/null || break
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 1 \
            "http://127.0.0.1:$port/v2/" 2>/dev/null) == 200 ]]; then
            REGISTRY=127.0.0.1:$port
            break
        fi
        sleep 0.1
    done
    [[ -z $REGISTRY ]] || break
    kill -KILL "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
done
[[ -n $REGISTRY ]] || fail "docker-registry did not start"
echo "  registry at $REGISTRY" >&2
run "push v1" "$SKIFF" push "$HELLO_HTTP_V1" "$REGISTRY/hello-http:v1" --insecure
has "^pushed $REGISTRY/hello-http:v1@sha256:[0-9a-f]{64}$"
V1_DIGEST=$(sed -n 's/^pushed .*@//p' "$WORK/out")
run "push v2" "$SKIFF" push "$HELLO_HTTP_V2" "$REGISTRY/hello-http:v2" --insecure
has "^pushed $REGISTRY/hello-http:v2@sha256:[0-9a-f]{64}$"
[[ $(sed -n 's/^pushed .*@//p' "$WORK/out") != "$V1_DIGEST" ]] || fail "v2 has the digest of v1"
# The command component of examples/hello, for a task pod (step k).
HELLO_WASM=${HELLO_WASM:-$ROOT/examples/target/wasm32-wasip2/release/hello.wasm}
if [[ ! -f $HELLO_WASM ]]; then
    (cd "$ROOT/examples" && "${CARGO:-cargo}" build --quiet --release --target wasm32-wasip2 \
        -p hello --target-dir "$WORK/build-hello") >&2 || fail "building examples/hello"
    HELLO_WASM=$WORK/build-hello/wasm32-wasip2/release/hello.wasm
fi
run "push hello" "$SKIFF" push "$HELLO_WASM" "$REGISTRY/hello:v1" --insecure

# --- b. the server and three agents -----------------------------------------------
"$SKIFF" server --no-agent --data-dir "$DATA" --listen 127.0.0.1:0 \
    --node-monitor-grace-period "$NODE_MONITOR_GRACE_SECONDS" \
    --default-unreachable-toleration-seconds "$TOLERATION_SECONDS" \
    --default-not-ready-toleration-seconds "$TOLERATION_SECONDS" \
    >"$WORK/server.log" 2>&1 </dev/null &
SERVER_PID=$!
for _ in $(seq 1 $((START_TIMEOUT * 10))); do
    grep -q "skiff server ready" "$WORK/server.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited"
    sleep 0.1
done
grep -q "skiff server ready" "$WORK/server.log" || fail "the server did not become ready"
API=$(sed -n 's/^skiff server ready: API \(https:[^ ,]*\).*/\1/p' "$WORK/server.log")
[[ -n $API ]] || fail "no API URL in the server's ready line"
echo "  server at $API" >&2

# Optional flags of the agent, used when it has them.
AGENT_HELP=$("$SKIFF" agent --help 2>&1 || true)
if grep -q -- --lease-duration-seconds <<<"$AGENT_HELP"; then
    AGENT_FLAGS+=(--lease-duration-seconds "$LEASE_DURATION_SECONDS")
fi
POD_RANGE_FLAG=
if grep -q -- --pod-address-range <<<"$AGENT_HELP"; then
    POD_RANGE_FLAG=--pod-address-range
fi
for node in "${NODES[@]}"; do
    start_agent "$node"
done
eventually "$NODES_READY_TIMEOUT" "three Ready nodes" nodes_ready "${NODES[@]}"
run "nodes' addresses and labels" k get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.status.addresses[?(@.type=="InternalIP")].address} wasm={.metadata.labels.skiff\.dev/wasm-enabled}{"\n"}{end}'
for node in "${NODES[@]}"; do
    has "^$node ${NODE_IP[$node]//./\\.} wasm=true$"
done
run "no node is labelled gpu-enabled yet" k get nodes -l skiff.dev/gpu-enabled=true -o name
is "" # (an NVIDIA device on this machine would defeat step h)

# --- c. the Deployment ------------------------------------------------------------------
sed -e "s|@REGISTRY@|$REGISTRY|g" -e "s|@REPLICAS@|$REPLICAS|g" "$MANIFESTS/hello.yaml" >"$WORK/hello.yaml"
run "apply the Deployment" k apply -f "$WORK/hello.yaml"
is "deployment.apps/hello created"
eventually "$PODS_READY_TIMEOUT" "$REPLICAS pods Ready" hello_pods_ready "$REPLICAS" v1
run "each pod has an address of its own" distinct_addresses
if ((REPLICAS >= ${#NODES[@]})); then
    run "spread over every node" on_every_node
fi
run "the Deployment counts them" k get deployment hello -o 'jsonpath={.status.readyReplicas}/{.status.replicas}'
is "$REPLICAS/$REPLICAS"

# --- d. HTTP and logs -----------------------------------------------------------------------
eventually 30 "every pod answers at podIP:containerPort" answer_all v1
POD=$(list_pods app=hello | awk -F'|' 'NR == 1 { print $1 }') || fail "listing the pods"
[[ -n $POD ]] || fail "no pod to read the logs of"
eventually 15 "kubectl logs $POD shows the request" pod_logged "$POD" '^GET /$'

# --- e. scale up and down -------------------------------------------------------------------
run "scale to $SCALE_UP" k scale deployment hello --replicas="$SCALE_UP"
is "deployment.apps/hello scaled"
eventually "$PODS_READY_TIMEOUT" "$SCALE_UP pods Ready" hello_pods_ready "$SCALE_UP" v1
run "each pod has an address of its own" distinct_addresses
eventually 30 "every pod answers" answer_all v1
run "scale to $SCALE_DOWN" k scale deployment hello --replicas="$SCALE_DOWN"
is "deployment.apps/hello scaled"
eventually "$PODS_READY_TIMEOUT" "only $SCALE_DOWN pods left" hello_pods_total "$SCALE_DOWN"
run "they are Ready" hello_pods_ready "$SCALE_DOWN" v1
eventually 30 "they answer" answer_all v1

# --- f. rolling update under traffic -----------------------------------------------------------
# "No failed request" means: every request the traffic loop sends goes to a
# pod that the API reported Ready and not being deleted when the loop picked
# it (from a fresh listing, round robin); it must answer 200 with the
# greeting. A request that fails anyway is excused only if, checked right
# after the failure, its pod is being deleted or gone: a pod that is
# terminating may stop listening before the loop learns of it (a client
# behind a Service would see the same window close with the endpoints).
# Any other failure, or a moment with no Ready pod at all (maxUnavailable is
# 0), is a failed request. The loop must also have had answers from both
# versions, so it ran across the rollout.
traffic() {
    local dir=$WORK/traffic sent=0 deadline=$((SECONDS + TRAFFIC_MAX_SECONDS))
    local name node ip port rd del image body target state
    local targets=()
    while ((sent < TRAFFIC_MAX_REQUESTS && SECONDS < deadline)) && [[ ! -e $dir/stop ]]; do
        sent=$((sent + 1))
        if ! list_pods app=hello >"$dir/pods" 2>"$dir/error"; then
            echo "failed - listing pods: $(tr '\n' ' ' <"$dir/error")" >>"$dir/requests"
            continue
        fi
        targets=()
        while IFS='|' read -r name node ip port rd del image; do
            if [[ $rd == True && -z $del && -n $ip ]]; then
                targets+=("$name|$ip:$port")
            fi
        done <"$dir/pods"
        if ((${#targets[@]} == 0)); then
            echo "failed - no Ready pod" >>"$dir/requests"
            sleep 0.2
            continue
        fi
        target=${targets[sent % ${#targets[@]}]}
        name=${target%%|*}
        if body=$(http_get "${target#*|}" / 2>"$dir/error") && [[ $body == *"hello from skiff"* ]]; then
            echo "answered $name $(sed -n 's/^version: //p' <<<"$body")" >>"$dir/requests"
            continue
        fi
        if state=$(k get pod "$name" -o 'jsonpath={.metadata.deletionTimestamp}' 2>&1); then
            if [[ -n $state ]]; then
                echo "excused $name being deleted" >>"$dir/requests"
            else
                echo "failed $name ${target#*|}: $(tr '\n' ' ' <"$dir/error") ${body:-}" >>"$dir/requests"
            fi
        elif [[ $state == *NotFound* || $state == *"not found"* ]]; then
            echo "excused $name gone" >>"$dir/requests"
        else
            echo "failed $name: the pod could not be read: $state" >>"$dir/requests"
        fi
    done
    return 0
}
# traffic_has REGEX: the loop, still running, has logged a matching line.
traffic_has() {
    kill -0 "$TRAFFIC_PID" 2>/dev/null || fail "the traffic loop ended early"
    tail -n 5 "$WORK/traffic/requests"
    grep -Eq -- "$1" "$WORK/traffic/requests"
}
mkdir -p "$WORK/traffic"
: >"$WORK/traffic/requests"
traffic &
TRAFFIC_PID=$!
# Some v1 answers before the update.
eventually 30 "traffic flows" traffic_has '^answered .* v1$'
run "set image v2" k set image deployment/hello hello="$REGISTRY/hello-http:v2"
is "deployment.apps/hello image updated"
run "rollout status" timeout $((ROLLOUT_TIMEOUT + 10)) \
    kubectl rollout status deployment/hello --timeout="${ROLLOUT_TIMEOUT}s"
has 'successfully rolled out'
eventually 30 "traffic reaches v2" traffic_has '^answered .* v2$'
touch "$WORK/traffic/stop"
for _ in $(seq 1 300); do
    kill -0 "$TRAFFIC_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$TRAFFIC_PID" 2>/dev/null && fail "the traffic loop did not stop"
wait "$TRAFFIC_PID" || fail "the traffic loop failed"
TRAFFIC_PID=
cp "$WORK/traffic/requests" "$WORK/out"
echo "  traffic: $(grep -c '^answered' "$WORK/out") answered, $(grep -c '^excused' "$WORK/out") excused, $(grep -c '^failed' "$WORK/out") failed" >&2
grep -q '^failed' "$WORK/out" && fail "failed requests during the rollout"
(($(grep -c '^answered' "$WORK/out") >= TRAFFIC_MIN_ANSWERED)) || fail "fewer than $TRAFFIC_MIN_ANSWERED answers during the rollout"
has '^answered .* v1$' '^answered .* v2$'
PASSED=$((PASSED + 1))
eventually 60 "$SCALE_DOWN pods of v2, the old ones gone" hello_pods_total "$SCALE_DOWN"
run "all on v2" hello_pods_ready "$SCALE_DOWN" v2
eventually 30 "every pod answers v2" answer_all v2

# --- g. an agent killed ------------------------------------------------------------------------
VICTIM=$(list_pods app=hello | awk -F'|' '$6 == "" { print $2 }' | sort | uniq -c | sort -rn |
    awk 'NR == 1 { print $2 }') || fail "listing the pods"
[[ -n $VICTIM && -n ${AGENT_PID[$VICTIM]:-} ]] || fail "no node runs a pod of the Deployment"
echo "  SIGKILL agent $VICTIM" >&2
kill -KILL "${AGENT_PID[$VICTIM]}"
wait "${AGENT_PID[$VICTIM]}" 2>/dev/null || true
unset "AGENT_PID[$VICTIM]"
eventually $((NODE_MONITOR_GRACE_SECONDS + 30)) "$VICTIM is no longer Ready" node_not_ready "$VICTIM"
eventually "$FAILOVER_TIMEOUT" "its pods replaced on the other nodes" replaced_off "$VICTIM" "$SCALE_DOWN"
eventually 30 "the replacements answer" answer_all v2

# --- h. a pod for a GPU node ---------------------------------------------------------------------
sed -e "s|@REGISTRY@|$REGISTRY|g" "$MANIFESTS/gpu.yaml" >"$WORK/gpu.yaml"
run "apply a pod that wants a GPU node" k apply -f "$WORK/gpu.yaml"
is "pod/gpu created"
# gpu_state: phase, node and PodScheduled condition of the pod `gpu`.
gpu_state() {
    k get pod gpu -o 'jsonpath={.status.phase} node=[{.spec.nodeName}] scheduled={.status.conditions[?(@.type=="PodScheduled")].status} {.status.conditions[?(@.type=="PodScheduled")].reason}: {.status.conditions[?(@.type=="PodScheduled")].message}'
}
# gpu_unschedulable: it is Pending, unbound, Unschedulable for its selector.
gpu_unschedulable() {
    local state
    state=$(gpu_state) || return 1
    echo "$state"
    grep -Eq "^Pending node=\[\] scheduled=False Unschedulable: .*didn't match Pod's node affinity/selector" <<<"$state"
}
eventually 30 "it is Unschedulable for its node selector" gpu_unschedulable
eventually 15 "a FailedScheduling event says why" \
    k get events -o 'jsonpath={range .items[*]}{.reason} {.involvedObject.kind}/{.involvedObject.name}: {.message}{"\n"}{end}'
has "^FailedScheduling Pod/gpu: .*didn't match Pod's node affinity/selector"
sleep 3
run "it stays Pending" gpu_unschedulable

start_agent "$VICTIM" --labels skiff.dev/gpu-enabled=true
eventually "$NODES_READY_TIMEOUT" "$VICTIM is back and Ready" nodes_ready "$VICTIM"
run "$VICTIM is labelled gpu-enabled" k get nodes -l skiff.dev/gpu-enabled=true -o name
is "node/$VICTIM"
# gpu_running: the pod `gpu` is bound to the victim, Running and Ready.
gpu_running() {
    local state
    state=$(k get pod gpu -o 'jsonpath={.spec.nodeName} {.status.phase} {.status.conditions[?(@.type=="Ready")].status}') || return 1
    echo "$state"
    [[ $state == "$VICTIM Running True" ]]
}
eventually "$GPU_TIMEOUT" "the pod runs on $VICTIM" gpu_running
GPU_ADDRESS=$(k get pod gpu -o 'jsonpath={.status.podIP}:{.spec.containers[0].ports[0].containerPort}')
eventually 30 "it answers at $GPU_ADDRESS" http_get "$GPU_ADDRESS" /
has '^hello from skiff$'
# gone_from NODE: no pod of the Deployment is bound to NODE any more.
gone_from() {
    list_pods app=hello >"$WORK/pods" || return 1
    cat "$WORK/pods"
    ! cut -d'|' -f2 "$WORK/pods" | grep -qx "$1"
}
eventually 60 "the pods evicted from $VICTIM are gone once it is back" gone_from "$VICTIM"

# --- i. an agent killed and restarted at once ---------------------------------------------------
HOST=$(list_pods app=hello | awk -F'|' '$6 == "" { print $2 }' | sort | head -1)
[[ -n $HOST && -n ${AGENT_PID[$HOST]:-} ]] || fail "no node runs a pod of the Deployment"
# pods_on NODE: the names and uids of the Deployment's pods bound to NODE.
pods_on() {
    k get pods -l app=hello -o jsonpath='{range .items[*]}{.spec.nodeName} {.metadata.name} {.metadata.uid}{"\n"}{end}' |
        awk -v node="$1" '$1 == node { print $2, $3 }' | sort
}
BEFORE=$(pods_on "$HOST")
echo "  SIGKILL agent $HOST and restart it at once (pods: ${BEFORE//$'\n'/, })" >&2
kill -KILL "${AGENT_PID[$HOST]}"
wait "${AGENT_PID[$HOST]}" 2>/dev/null || true
start_agent "$HOST"
# restarted_in_place: the same pods on HOST, Ready, each restarted once more
# (a Wasm guest does not outlive its agent), and no other pod of the
# Deployment anywhere.
restarted_in_place() {
    local now restarts
    now=$(pods_on "$HOST") || return 1
    echo "on $HOST: ${now//$'\n'/, } (before: ${BEFORE//$'\n'/, })"
    [[ $now == "$BEFORE" ]] || return 1
    hello_pods_ready "$SCALE_DOWN" v2 || return 1
    restarts=$(k get pods -l app=hello --field-selector "spec.nodeName=$HOST" \
        -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}') || return 1
    echo "restart counts on $HOST: $restarts"
    [[ -n $restarts && ! $restarts =~ (^| )0( |$) ]]
}
eventually 60 "the same pods run again on $HOST, restarted, no duplicates" restarted_in_place
eventually 30 "they answer" answer_all v2
FIRST=$(head -1 <<<"$BEFORE" | cut -d' ' -f1)
run "kubectl logs --previous shows what $FIRST logged before the restart" k logs --previous "$FIRST"
has '^GET /$'
run "kubectl logs --tail 1 shows the last line" k logs --tail 1 "$FIRST"
[[ $(grep -c . "$WORK/out") == 1 ]] || fail "--tail 1 gave $(grep -c . "$WORK/out") lines"

# --- j. an agent stopped cleanly ---------------------------------------------------------------
STOPPED=$(printf '%s\n' "${!AGENT_PID[@]}" | sort | head -1)
echo "  SIGTERM agent $STOPPED" >&2
kill -TERM "${AGENT_PID[$STOPPED]}"
# stopped_within SECONDS: the agent's process ends within SECONDS.
stopped_within() {
    local deadline=$((SECONDS + $1))
    while kill -0 "${AGENT_PID[$STOPPED]}" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}
run "it exits" stopped_within 30
wait "${AGENT_PID[$STOPPED]}" 2>/dev/null || fail "agent $STOPPED exited with an error (see agent-$STOPPED.log)"
unset "AGENT_PID[$STOPPED]"
run "its node says it is stopping" k get node "$STOPPED" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}'
is "False KubeletNotReady: skiff agent is stopping"

# --- k. a task pod with its configuration from a ConfigMap -------------------------------------
run "create a ConfigMap" k create configmap greeting --from-literal=greeting=ahoy
sed -e "s|@REGISTRY@|$REGISTRY|g" "$MANIFESTS/task.yaml" >"$WORK/task.yaml"
run "apply a task pod" k apply -f "$WORK/task.yaml"
# task_succeeded: the pod ran to completion.
task_succeeded() {
    k get pod task -o 'jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.reason}'
    [[ $(k get pod task -o 'jsonpath={.status.phase}') == Succeeded ]]
}
eventually 60 "it runs to Succeeded" task_succeeded
is "Succeeded Completed"
run "its log has the greeting from the ConfigMap, in env and args" k logs task
has '^hello from skiff$' '^arg\[1\]: ahoy$' '^arg\[2\]: on task$' '^GREETING: ahoy$'
run "delete it" k delete pod task --timeout=30s

echo "cluster e2e: $PASSED steps passed"
