#!/usr/bin/env bash
# End to end: a mixed cluster on one machine, containers and Wasm side by
# side. One `skiff server --no-agent` and two `skiff agent`s on their own
# loopback addresses, one of them with a private containerd, driven by the
# real kubectl:
#
#   a. a private containerd (scripts/containerd.sh), a registry (Debian's
#      docker-registry) with examples/hello-http and a busybox image built
#      here from Debian's busybox-static (nothing comes from the internet);
#   b. the server and two agents: n1 with containerd (labelled
#      skiff.dev/oci-enabled=true and skiff.dev/wasm-enabled=true), n2
#      without (wasm-enabled only);
#   c. a container Deployment (busybox httpd, runtimeClassName: runc) and a
#      Wasm Deployment (hello-http, runtimeClassName: wasmtime), all pods
#      Ready, the container pods on n1; every pod answers HTTP at its
#      podIP:8080; `kubectl logs` of both kinds; `kubectl exec` into a
#      container (stdin, exit code) and its clear refusal for a Wasm pod;
#   d. a container pod that may only run on n2 stays Pending, with the
#      scheduler's reason;
#   e. hardening spot checks in run-to-completion container pods:
#      no_new_privs, containerd's default capabilities, a read-only root
#      filesystem;
#   f. SIGKILL of agent n1 and its restart at once: the container pods
#      converge in place (same pods, no restart, the same containerd tasks);
#      then again with containerd stopped: n1 reports RuntimeUnhealthy and
#      loses skiff.dev/oci-enabled while the container pods keep running
#      with the status they had; containerd started again, n1 adopts them
#      (the same tasks) and is labelled again;
#   g. everything deleted: nothing is left in containerd's `skiff`
#      namespace but the image's layers, no shim process, no sandbox or
#      container state in the agent's data dir, no namespace mount, no
#      cgroup of the pods.
#
#   tests/e2e/mixed.sh [path/to/skiff]     (run by `make test`, as root)
#
# Containers use the node's network for now: each container pod binds the
# address its agent gave it (status.podIP through the downward API), so the
# agents take --pod-address-range and pods get distinct loopback addresses.
#
# Everything happens on loopback (127.0.0.1 for the server and the registry,
# 127.0.0.2-3 for the nodes, 127.1.N.0/24 for the pods of node N), in a
# temporary directory removed at the end; every process started here is
# stopped at the end (containerd with its tasks too, also on a failure), and
# every wait is bounded.
set -euo pipefail

SKIFF=${1:-target/debug/skiff}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MANIFESTS=$HERE/manifests/mixed

# --- knobs (environment overrides) ---------------------------------------------
NODES=(n1 n2)
declare -A NODE_IP=([n1]=127.0.0.2 [n2]=127.0.0.3)
declare -A POD_RANGE=([n1]=127.1.1.0/24 [n2]=127.1.2.0/24)
# Node health, as in cluster.sh.
NODE_MONITOR_GRACE_SECONDS=15
TOLERATION_SECONDS=5
LEASE_DURATION_SECONDS=10
# Bounds of the waits, in seconds.
START_TIMEOUT=30
NODES_READY_TIMEOUT=60
PODS_READY_TIMEOUT=120
TASK_TIMEOUT=60
CONVERGE_TIMEOUT=60
DELETE_TIMEOUT=90
CLEAN_TIMEOUT=30
# containerd's default capability set (CapEff of a container that neither
# adds nor drops any).
DEFAULT_CAP_EFF=00000000a80425fb
# A prebuilt examples/hello-http, instead of building it here.
HELLO_HTTP=${HELLO_HTTP:-$ROOT/examples/target/wasm32-wasip2/release/hello_http.wasm}
# The busybox image.
BUSYBOX_REPO=busybox
BUSYBOX_TAG=e2e
BUSYBOX_APPLETS=(sh httpd echo cat sleep hostname id ls grep mkdir)

WORK=$(mktemp -d)
DATA=$WORK/server
CONTAINERD_DIR=$WORK/containerd
CONTAINERD_STARTED=
SOCKET=
PASSED=0
SERVER_PID=
REGISTRY_PID=
declare -A AGENT_PID=()
AGENT_FLAGS=()
# The cgroups of the containers seen so far, and of their pods.
CGROUPS=
# Nothing here may go through a proxy.
export NO_PROXY=${NO_PROXY:+$NO_PROXY,}127.0.0.0/8,localhost
export no_proxy=$NO_PROXY
# Plain logs, for the excerpts shown on a failure.
export NO_COLOR=1

# Mount points at or under $1, deepest first.
mounts_under() {
    awk -v dir="$1" '$5 == dir || index($5, dir "/") == 1 { print $5 }' /proc/self/mountinfo |
        awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# run_cgroups: the cgroups of the containers that the agents' records name
# now or named before ($CGROUPS) and of their pods, children first.
run_cgroups() {
    local record path
    {
        [[ -z $CGROUPS ]] || echo "$CGROUPS"
        for record in "$WORK"/agents/*/oci/containers/*/container.json; do
            [[ -f $record ]] || continue
            path=$(sed -n 's/^ *"cgroups_path": *"\([^"]*\)".*/\1/p' "$record")
            [[ -n $path ]] || continue
            echo "$path"
            echo "${path%/*}"
        done
    } | sort -ru
}

# cgroup_dirs PATH: the directories of cgroup PATH in every hierarchy.
cgroup_dirs() {
    local dir
    for dir in "/sys/fs/cgroup$1" /sys/fs/cgroup/*"$1"; do
        [[ -d $dir ]] && echo "$dir"
    done
    return 0
}

# Stops what this script started, by pid: SIGTERM, then SIGKILL for what is
# still there after 15 seconds; then containerd with its tasks (its script
# stops it by its pid file), and what a failure may have left of the pods:
# namespace mounts under $WORK, (empty) cgroups.
cleanup() {
    # Cleanup goes on past any failure.
    set +e
    local pid pids=() deadline mount_point path dir
    CGROUPS=$(run_cgroups)
    for pid in "${AGENT_PID[@]}" "$SERVER_PID" "$REGISTRY_PID"; do
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
    if [[ -n $CONTAINERD_STARTED ]]; then
        bash "$ROOT/scripts/containerd.sh" stop "$CONTAINERD_DIR" ||
            echo "mixed e2e: could not stop containerd in $CONTAINERD_DIR" >&2
    fi
    while IFS= read -r mount_point; do
        [[ -n $mount_point ]] || continue
        umount "$mount_point" 2>/dev/null || umount --lazy "$mount_point" 2>/dev/null ||
            echo "mixed e2e: could not unmount $mount_point" >&2
    done < <(mounts_under "$WORK")
    for path in $CGROUPS; do
        for dir in $(cgroup_dirs "$path"); do
            rmdir "$dir" 2>/dev/null || echo "mixed e2e: could not remove the cgroup $dir" >&2
        done
    done
    rm -rf "$WORK" || echo "mixed e2e: could not remove $WORK" >&2
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
        if [[ -n $SOCKET ]]; then
            echo "--- containerd tasks:"
            ctr_skiff tasks ls 2>&1 || true
        fi
        local log
        for log in "$WORK"/server.log "$WORK"/agent-*.log "$WORK"/registry.log \
            "$CONTAINERD_DIR"/containerd.log; do
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

# lacks PATTERN...: no line of the last output matches any of the regexes.
lacks() {
    local pattern
    for pattern in "$@"; do
        ! grep -Eq -- "$pattern" "$WORK/out" || fail "output has /$pattern/"
    done
}

# is EXPECTED: the last output is exactly EXPECTED (trailing newline aside).
is() {
    [[ $(cat "$WORK/out") == "$1" ]] || fail "expected exactly [$1]"
}

k() { kubectl --request-timeout=15s "$@"; }

# ctr in skiff's containerd namespace of the private containerd, bounded.
ctr_skiff() { timeout 20 ctr --address "$SOCKET" --namespace skiff "$@"; }

# http_get HOST:PORT PATH: the body of a 2xx answer, else a failure.
http_get() {
    curl --silent --show-error --fail --noproxy '*' --connect-timeout 2 --max-time 5 \
        "http://$1$2"
}

# http_status HOST:PORT PATH: the status code of the answer.
http_status() {
    curl --silent --output /dev/null --write-out '%{http_code}' --noproxy '*' \
        --connect-timeout 2 --max-time 5 "http://$1$2"
}

# A loopback port nothing listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# list_pods SELECTOR: one line per pod, name|node|podIP|containerPort|
# Ready|deletionTimestamp|phase|restartCount|containerID.
list_pods() {
    k get pods -l "$1" -o jsonpath='{range .items[*]}{.metadata.name}{"|"}{.spec.nodeName}{"|"}{.status.podIP}{"|"}{.spec.containers[0].ports[0].containerPort}{"|"}{.status.conditions[?(@.type=="Ready")].status}{"|"}{.metadata.deletionTimestamp}{"|"}{.status.phase}{"|"}{.status.containerStatuses[0].restartCount}{"|"}{.status.containerStatuses[0].containerID}{"\n"}{end}'
}

# pods_ready SELECTOR COUNT: exactly COUNT pods that are not being deleted,
# each Running, Ready, with an IP.
pods_ready() {
    local want=$2 live=0 ready=0 name node ip port rd del phase
    list_pods "$1" >"$WORK/pods" || return 1
    cat "$WORK/pods"
    while IFS='|' read -r name node ip port rd del phase _; do
        [[ -z $del ]] || continue
        live=$((live + 1))
        if [[ $phase == Running && $rd == True && -n $ip ]]; then
            ready=$((ready + 1))
        fi
    done <"$WORK/pods"
    echo "$1: live $live, ready $ready, want $want"
    ((live == want && ready == want))
}

# all_on SELECTOR NODE: every pod of SELECTOR is bound to NODE.
all_on() {
    list_pods "$1" >"$WORK/pods" || return 1
    cat "$WORK/pods"
    [[ -s $WORK/pods ]] && ! cut -d'|' -f2 "$WORK/pods" | grep -vqx "$2"
}

# answer_all SELECTOR: every live pod answers GET / at podIP:containerPort:
# a web pod with a page naming it (and its hostname, which is its name),
# a hello pod with the greeting.
answer_all() {
    local name node ip port rd del body
    list_pods "$1" >"$WORK/pods" || return 1
    while IFS='|' read -r name node ip port rd del _; do
        [[ -z $del ]] || continue
        body=$(http_get "$ip:$port" /) || { echo "$name at $ip:$port did not answer"; return 1; }
        case $1 in
        app=web)
            [[ $body == "hello from $name"$'\n'"hostname: $name" ]] ||
                { echo "$name answered: $body"; return 1; } ;;
        *)
            [[ $body == *"hello from skiff"* ]] || { echo "$name answered: $body"; return 1; } ;;
        esac
        echo "$name on $node at $ip:$port: ${body//$'\n'/ / }"
    done <"$WORK/pods"
}

# distinct_addresses: no two live pods share podIP:port, and each node's
# pods have addresses of its range.
distinct_addresses() {
    local shared
    { list_pods app=web && list_pods app=hello; } |
        awk -F'|' '$6 == "" { print $3 ":" $4 " " $1 " on " $2 }' | sort >"$WORK/addresses" || return 1
    cat "$WORK/addresses"
    shared=$(cut -d' ' -f1 "$WORK/addresses" | uniq -d)
    [[ -z $shared ]] || { echo "pods share ${shared//$'\n'/, }"; return 1; }
    ! grep -Ev '^127\.1\.1\.[0-9]+:[0-9]+ .* on n1$|^127\.1\.2\.[0-9]+:[0-9]+ .* on n2$' "$WORK/addresses"
}

# pod_logged POD REGEX: `kubectl logs POD` has a line matching REGEX.
pod_logged() {
    k logs "$1" >"$WORK/logs" || return 1
    cat "$WORK/logs"
    grep -Eq -- "$2" "$WORK/logs"
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

# node_labels: per node, its runtime labels.
node_labels() {
    k get nodes -o jsonpath='{range .items[*]}{.metadata.name} oci={.metadata.labels.skiff\.dev/oci-enabled} wasm={.metadata.labels.skiff\.dev/wasm-enabled}{"\n"}{end}'
}

# labelled: n1 runs both kinds, n2 Wasm only.
labelled() {
    node_labels >"$WORK/labels" || return 1
    cat "$WORK/labels"
    grep -qx 'n1 oci=true wasm=true' "$WORK/labels" && grep -qx 'n2 oci= wasm=true' "$WORK/labels"
}

# agent_alive NAME: fails the test at once when that agent has exited.
agent_alive() {
    kill -0 "${AGENT_PID[$1]}" 2>/dev/null || fail "agent $1 exited (see agent-$1.log)"
}

# start_agent NAME: starts the agent of node NAME on its address, with its
# own data dir (kept across restarts) and containerd socket, logging to
# agent-NAME.log.
start_agent() {
    local name=$1 ip=${NODE_IP[$1]}
    mkdir -p "$WORK/agents/$name"
    echo "--- $(date +%T) starting agent $name" >>"$WORK/agent-$name.log"
    "$SKIFF" agent --server "$API" --token-file "$DATA/node-token" --ca-file "$DATA/tls/ca.crt" \
        --data-dir "$WORK/agents/$name" --name "$name" --node-ip "$ip" --listen "$ip:10250" \
        --pod-address-range "${POD_RANGE[$name]}" --insecure-registry "$REGISTRY" \
        --containerd-socket "${AGENT_SOCKET[$name]}" "${AGENT_FLAGS[@]}" \
        >>"$WORK/agent-$name.log" 2>&1 &
    AGENT_PID[$name]=$!
}

# sha256_of FILE: the hex sha256 of FILE.
sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# oci_architecture: this machine's architecture as OCI names it.
oci_architecture() {
    local arch
    arch=$(dpkg --print-architecture) || return 1
    case $arch in
    amd64 | arm64 | riscv64 | s390x | mips64le) echo "$arch" ;;
    armhf | armel) echo arm ;;
    i386) echo 386 ;;
    ppc64el) echo ppc64le ;;
    *) echo "no OCI name known for the architecture $arch" >&2; return 1 ;;
    esac
}

# build_busybox_image DIR: an OCI image of Debian's static busybox in DIR:
# layer.tar.gz, config.json and manifest.json. Reproducible: fixed modes,
# owners, mtimes and order, gzip without name or time.
build_busybox_image() {
    local dir=$1 rootfs=$1/rootfs applet arch layer_diff layer_digest config_digest
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" || return 1
    cp /bin/busybox "$rootfs/bin/busybox" || return 1
    for applet in "${BUSYBOX_APPLETS[@]}"; do
        ln -s busybox "$rootfs/bin/$applet" || return 1
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$rootfs/etc/passwd" || return 1
    chmod 0755 "$rootfs" "$rootfs/bin" "$rootfs/etc" "$rootfs/bin/busybox" &&
        chmod 0644 "$rootfs/etc/passwd" && chmod 1777 "$rootfs/tmp" || return 1
    tar --create --file "$dir/layer.tar" --directory "$rootfs" --sort=name --format=gnu \
        --mtime=@0 --owner=0 --group=0 --numeric-owner bin etc tmp || return 1
    gzip -n -9 -c "$dir/layer.tar" >"$dir/layer.tar.gz" || return 1
    layer_diff=$(sha256_of "$dir/layer.tar") && layer_digest=$(sha256_of "$dir/layer.tar.gz") &&
        arch=$(oci_architecture) || return 1
    printf '{"created":"1970-01-01T00:00:00Z","architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$arch" "$layer_diff" >"$dir/config.json" || return 1
    config_digest=$(sha256_of "$dir/config.json") || return 1
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
        "$config_digest" "$(stat -c %s "$dir/config.json")" \
        "$layer_digest" "$(stat -c %s "$dir/layer.tar.gz")" >"$dir/manifest.json"
}

# push_blob REPO FILE: uploads FILE as a blob of REPO (a monolithic upload:
# POST, then PUT with the digest).
push_blob() {
    local repo=$1 file=$2 digest location
    digest=sha256:$(sha256_of "$file") || return 1
    location=$(curl --silent --show-error --fail --noproxy '*' --max-time 10 -X POST \
        --dump-header - --output /dev/null "http://$REGISTRY/v2/$repo/blobs/uploads/" |
        tr -d '\r' | sed -n 's/^[Ll]ocation: //p') || return 1
    [[ -n $location ]] || { echo "no upload location for $repo"; return 1; }
    [[ $location == http* ]] || location=http://$REGISTRY$location
    [[ $location == *\?* ]] && location+="&digest=$digest" || location+="?digest=$digest"
    curl --silent --show-error --fail --noproxy '*' --max-time 30 -X PUT \
        -H 'Content-Type: application/octet-stream' --data-binary "@$file" "$location" || return 1
    echo "blob $digest"
}

# push_manifest REPO TAG FILE: puts FILE as the OCI image manifest REPO:TAG
# and prints the digest the registry gives it.
push_manifest() {
    curl --silent --show-error --fail --noproxy '*' --max-time 10 -X PUT \
        -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$3" \
        --dump-header - --output /dev/null "http://$REGISTRY/v2/$1/manifests/$2" |
        tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: /pushed /p'
}

[[ -x $SKIFF ]] || { echo "no skiff binary at $SKIFF (build it first)" >&2; exit 1; }
for tool in kubectl curl python3 ctr gzip tar /usr/bin/docker-registry /usr/bin/containerd /bin/busybox; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (make deps)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "mixed e2e needs root (containerd)" >&2; exit 1; }
export KUBECONFIG=$DATA/kubeconfig
export KUBECACHEDIR=$WORK/kube-cache

# --- a. containerd, the registry and the images ------------------------------------
CONTAINERD_STARTED=1
SOCKET=$(bash "$ROOT/scripts/containerd.sh" start "$CONTAINERD_DIR") || fail "containerd did not start"
[[ -S $SOCKET ]] || fail "no containerd socket at [$SOCKET]"
echo "  containerd at $SOCKET" >&2
run "containerd answers" ctr --address "$SOCKET" version

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

if [[ ! -f $HELLO_HTTP ]]; then
    echo "  building hello-http" >&2
    (cd "$ROOT/examples" && "${CARGO:-cargo}" build --quiet --release --target wasm32-wasip2 \
        -p hello-http --target-dir "$WORK/build-hello-http") >&2 || fail "building examples/hello-http"
    HELLO_HTTP=$WORK/build-hello-http/wasm32-wasip2/release/hello_http.wasm
fi
run "push hello-http" "$SKIFF" push "$HELLO_HTTP" "$REGISTRY/hello-http:v1" --insecure
has "^pushed $REGISTRY/hello-http:v1@sha256:[0-9a-f]{64}$"

run "/bin/busybox is static" bash -c '! ldd /bin/busybox'
run "build the busybox image" build_busybox_image "$WORK/busybox"
run "the layer has busybox, its applets, /tmp and /etc/passwd" tar -tvzf "$WORK/busybox/layer.tar.gz"
has '^-rwxr-xr-x 0/0 .* bin/busybox$' '^lrwxrwxrwx 0/0 .* bin/httpd -> busybox$' \
    '^drwxrwxrwt 0/0 .* tmp/$' '^-rw-r--r-- 0/0 .* etc/passwd$'
run "push its layer" push_blob "$BUSYBOX_REPO" "$WORK/busybox/layer.tar.gz"
run "push its config" push_blob "$BUSYBOX_REPO" "$WORK/busybox/config.json"
run "push its manifest" push_manifest "$BUSYBOX_REPO" "$BUSYBOX_TAG" "$WORK/busybox/manifest.json"
is "pushed sha256:$(sha256_of "$WORK/busybox/manifest.json")"
BUSYBOX_DIGEST=$(sed -n 's/^pushed //p' "$WORK/out")
run "the registry serves it by tag" curl --silent --show-error --fail --noproxy '*' --max-time 5 \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    --output "$WORK/busybox/served.json" "http://$REGISTRY/v2/$BUSYBOX_REPO/manifests/$BUSYBOX_TAG"
run "as pushed" cmp "$WORK/busybox/manifest.json" "$WORK/busybox/served.json"
# A second build gives the same bytes.
run "the image is reproducible" build_busybox_image "$WORK/busybox-again"
run "same manifest" cmp "$WORK/busybox/manifest.json" "$WORK/busybox-again/manifest.json"

# --- b. the server and two agents ------------------------------------------------------
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

AGENT_HELP=$("$SKIFF" agent --help 2>&1 || true)
if grep -q -- --lease-duration-seconds <<<"$AGENT_HELP"; then
    AGENT_FLAGS+=(--lease-duration-seconds "$LEASE_DURATION_SECONDS")
fi
# n1 with the private containerd, n2 with a socket nothing listens on.
declare -A AGENT_SOCKET=([n1]=$SOCKET [n2]=$WORK/none.sock)
for node in "${NODES[@]}"; do
    start_agent "$node"
done
eventually "$NODES_READY_TIMEOUT" "two Ready nodes" nodes_ready "${NODES[@]}"
eventually 30 "n1 is oci- and wasm-enabled, n2 wasm-enabled only" labelled
run "n1 found containerd" grep -F "containerd answers: this node runs containers" "$WORK/agent-n1.log"
run "n2 did not" grep -F "this node runs Wasm pods only" "$WORK/agent-n2.log"
run "the RuntimeClasses" k get runtimeclasses -o jsonpath='{range .items[*]}{.metadata.name} {.handler} {.scheduling.nodeSelector}{"\n"}{end}'
has '^runc runc \{"skiff.dev/oci-enabled":"true"\}$' '^wasmtime wasmtime \{"skiff.dev/wasm-enabled":"true"\}$'

# --- c. a container Deployment and a Wasm Deployment ----------------------------------------
for manifest in web hello; do
    sed -e "s|@REGISTRY@|$REGISTRY|g" "$MANIFESTS/$manifest.yaml" >"$WORK/$manifest.yaml"
    run "apply the $manifest Deployment" k apply -f "$WORK/$manifest.yaml"
    is "deployment.apps/$manifest created"
done
eventually "$PODS_READY_TIMEOUT" "2 container pods Running and Ready" pods_ready app=web 2
eventually "$PODS_READY_TIMEOUT" "2 Wasm pods Running and Ready" pods_ready app=hello 2
run "every container pod is on n1" all_on app=web n1
run "the Wasm pods (on any node)" list_pods app=hello
echo "  Wasm pods on: $(cut -d'|' -f2 "$WORK/out" | sort | tr '\n' ' ')" >&2
run "each pod has an address of its own, from its node's range" distinct_addresses
run "the container pods run in containerd" list_pods app=web
has '\|containerd://[^|]+$'
lacks '\|$'
for deployment in web hello; do
    run "the $deployment Deployment counts them" k get deployment "$deployment" \
        -o 'jsonpath={.status.readyReplicas}/{.status.replicas}'
    is "2/2"
done
eventually 30 "every container pod answers at podIP:8080, naming itself" answer_all app=web
eventually 30 "every Wasm pod answers at podIP:8080" answer_all app=hello

WEB_POD=$(list_pods app=web | awk -F'|' 'NR == 1 { print $1 "|" $3 ":" $4 }') || fail "listing the pods"
HELLO_POD=$(list_pods app=hello | awk -F'|' 'NR == 1 { print $1 "|" $3 ":" $4 }') || fail "listing the pods"
[[ -n $WEB_POD && -n $HELLO_POD ]] || fail "no pods to read the logs of"
# A path no probe asks for: its 404 is the test's own request.
run "a missing page of ${WEB_POD%%|*} is a 404" http_status "${WEB_POD#*|}" /mixed-e2e-missing
is 404
eventually 15 "kubectl logs ${WEB_POD%%|*} shows httpd's request log" \
    pod_logged "${WEB_POD%%|*}" '^127\.[0-9.]+:[0-9]+: response:404$'
has '^127\.[0-9.]+:[0-9]+: response:200$'
run "GET /mixed-e2e of ${HELLO_POD%%|*}" http_status "${HELLO_POD#*|}" /mixed-e2e
is 404
eventually 15 "kubectl logs ${HELLO_POD%%|*} shows hello-http's request log" \
    pod_logged "${HELLO_POD%%|*}" '^GET /mixed-e2e$'
has '^GET /$' '^GET /healthz$'
run "kubectl exec in ${WEB_POD%%|*} runs in its container" k exec "${WEB_POD%%|*}" -- hostname
is "${WEB_POD%%|*}"
run "kubectl exec -i passes stdin and the command's exit code" bash -c \
    "echo typed | kubectl --request-timeout=15s exec -i '${WEB_POD%%|*}' -- sh -c 'cat; exit 3'; echo \"exit \$?\""
has '^typed$' '^exit 3$'
# tty_exec CLI POD: `CLI exec -it POD` in a pseudo-terminal of 33 rows and
# 111 columns: the remote shell prints its terminal's size (once it has
# arrived) and "ready",
# then Ctrl-C is typed. In raw mode it reaches the remote terminal, which
# interrupts the shell (exit code 130); otherwise it would kill skiff.
tty_exec() {
    python3 - "$1" "$2" <<'PY'
import fcntl, os, pty, select, struct, sys, termios, time
cli, pod = sys.argv[1:3]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    # The size arrives just after the command starts (as with kubectl;
    # until then the terminal is 24x80): ask until it is there, 5 s at most.
    script = ('for i in $(seq 50); do s=$(stty size); [ "$s" = "33 111" ] && break; '
              'sleep 0.1; done; echo "$s"; echo ready; cat')
    os.execvp(cli, [cli, "exec", "-it", pod, "--", "sh", "-c", script])
output, deadline, sent = b"", time.monotonic() + 30, False
while time.monotonic() < deadline:
    ready, _, _ = select.select([fd], [], [], 0.5)
    if ready:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    if not sent and b"ready" in output:
        os.write(fd, b"\x03")
        sent = True
else:
    os.kill(pid, 9)
_, status = os.waitpid(pid, 0)
print(output.decode(errors="replace").replace("\r", ""))
print("exit", os.WEXITSTATUS(status) if os.WIFEXITED(status) else "signal %d" % os.WTERMSIG(status))
PY
}
for cli in kubectl "$SKIFF"; do
    run "$(basename "$cli") exec -it: a raw local terminal, its size sent, Ctrl-C reaches the container" \
        tty_exec "$cli" "${WEB_POD%%|*}"
    has '^33 111$' '^ready$' 'command terminated with exit code 130' '^exit 130$'
done
run "kubectl exec in a Wasm pod is refused, saying why" bash -c \
    "kubectl --request-timeout=15s exec '${HELLO_POD%%|*}' -- true; echo \"exit \$?\""
has '^error: exec is not supported for Wasm pods$' '^exit 1$'

# --- d. a container pod for a node without containerd ---------------------------------------
sed -e "s|@REGISTRY@|$REGISTRY|g" "$MANIFESTS/stranded.yaml" >"$WORK/stranded.yaml"
run "apply a container pod that wants n2" k apply -f "$WORK/stranded.yaml"
is "pod/stranded created"
# stranded_state: phase, node and PodScheduled condition of the pod.
stranded_state() {
    k get pod stranded -o 'jsonpath={.status.phase} node=[{.spec.nodeName}] scheduled={.status.conditions[?(@.type=="PodScheduled")].status} {.status.conditions[?(@.type=="PodScheduled")].reason}: {.status.conditions[?(@.type=="PodScheduled")].message}'
}
# stranded_unschedulable: Pending, unbound, Unschedulable: n1 fails the
# pod's own selector, n2 the RuntimeClass's (skiff.dev/oci-enabled=true).
stranded_unschedulable() {
    local state
    state=$(stranded_state) || return 1
    echo "$state"
    grep -Eq "^Pending node=\[\] scheduled=False Unschedulable: 0/2 nodes are available: 2 node\(s\) didn't match Pod's node affinity/selector" <<<"$state"
}
eventually 30 "it is Unschedulable: no node matches its and its RuntimeClass's selectors" \
    stranded_unschedulable
# n2 matches the pod's own selector: the RuntimeClass's is what keeps it off.
run "n2 has the pod's hostname label" k get nodes -l kubernetes.io/hostname=n2 -o name
is "node/n2"
eventually 15 "a FailedScheduling event says why" \
    k get events --field-selector involvedObject.name=stranded \
    -o 'jsonpath={range .items[*]}{.reason} {.involvedObject.kind}/{.involvedObject.name}: {.message}{"\n"}{end}'
has "^FailedScheduling Pod/stranded: 0/2 nodes are available: 2 node\(s\) didn't match Pod's node affinity/selector"

# --- e. hardening spot checks --------------------------------------------------------------------
sed -e "s|@REGISTRY@|$REGISTRY|g" "$MANIFESTS/hardening.yaml" >"$WORK/hardening.yaml"
run "apply two run-to-completion container pods" k apply -f "$WORK/hardening.yaml"
has '^pod/hardening-ro created$' '^pod/hardening-rw created$'
# finished POD PHASE: the pod has ended in PHASE.
finished() {
    local state
    state=$(k get pod "$1" -o 'jsonpath={.status.phase} {.spec.nodeName} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}') ||
        return 1
    echo "$state"
    [[ $state == "$2 "* ]]
}
eventually "$TASK_TIMEOUT" "the one with a read-only root filesystem fails" finished hardening-ro Failed
is "Failed n1 Error 1"
eventually "$TASK_TIMEOUT" "the other succeeds" finished hardening-rw Succeeded
is "Succeeded n1 Completed 0"
run "no_new_privs, default capabilities, the write refused" k logs hardening-ro
has '^NoNewPrivs:[[:space:]]+1$' "^CapEff:[[:space:]]+$DEFAULT_CAP_EFF$" \
    '/probe: Read-only file system$'
lacks '^written$'
run "the same, the write done" k logs hardening-rw
has '^NoNewPrivs:[[:space:]]+1$' "^CapEff:[[:space:]]+$DEFAULT_CAP_EFF$" '^written$'
run "the pod for n2 is still Pending, unbound" stranded_unschedulable

# --- f. agent n1 killed and restarted at once ---------------------------------------------------
# web_state: per container pod, name uid node restarts containerID.
web_state() {
    k get pods -l app=web -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.spec.nodeName} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].containerID}{"\n"}{end}' |
        sort
}
# web_tasks: the containerd tasks of the container pods, "ID PID STATUS".
web_tasks() {
    local ids
    ids=$(web_state | awk '{ sub("^containerd://", "", $5); print $5 }') || return 1
    [[ -n $ids ]] || return 1
    ctr_skiff tasks ls | awk 'NR > 1 { print $1, $2, $3 }' | grep -F -f <(echo "$ids") | sort
}
WEB_BEFORE=$(web_state) || fail "reading the container pods"
TASKS_BEFORE=$(web_tasks) || fail "listing containerd's tasks"
[[ $(grep -c RUNNING <<<"$TASKS_BEFORE") == 2 ]] || fail "expected 2 running tasks, got: $TASKS_BEFORE"
echo "  SIGKILL agent n1 and restart it at once (tasks: ${TASKS_BEFORE//$'\n'/, })" >&2
kill -KILL "${AGENT_PID[n1]}"
wait "${AGENT_PID[n1]}" 2>/dev/null || true
RESTART_LINE=$(($(wc -l <"$WORK/agent-n1.log") + 1))
start_agent n1
# adopted: the restarted agent has adopted the sandbox of each container pod.
adopted() {
    local name _rest
    agent_alive n1
    tail -n +"$RESTART_LINE" "$WORK/agent-n1.log" | grep -F "adopted the pod's sandbox" >"$WORK/adopted" || true
    cat "$WORK/adopted"
    while read -r name _rest; do
        grep -q "pod=default/$name " "$WORK/adopted" || return 1
    done <<<"$WEB_BEFORE"
}
eventually "$CONVERGE_TIMEOUT" "the restarted agent adopts the container pods' sandboxes" adopted
eventually "$NODES_READY_TIMEOUT" "n1 is Ready" nodes_ready n1
eventually "$CONVERGE_TIMEOUT" "the container pods are Ready" pods_ready app=web 2
run "the same pods, on n1, not restarted" web_state
is "$WEB_BEFORE"
lacks ' [1-9][0-9]* containerd://'
run "the same containerd tasks, the same processes" web_tasks
is "$TASKS_BEFORE"
eventually 30 "they answer" answer_all app=web
eventually "$CONVERGE_TIMEOUT" "the Wasm pods are Ready too" pods_ready app=hello 2
eventually 30 "and answer" answer_all app=hello

# --- f2. agent n1 restarted while containerd is down --------------------------------------------
# runtime_unhealthy STATUS: n1's RuntimeUnhealthy condition has STATUS.
runtime_unhealthy() {
    local status
    agent_alive n1
    status=$(k get node n1 -o jsonpath='{.status.conditions[?(@.type=="RuntimeUnhealthy")].status} {.status.conditions[?(@.type=="RuntimeUnhealthy")].message}') || return 1
    echo "$status"
    [[ ${status%% *} == "$1" ]]
}
echo "  stop containerd (its shims keep the containers), SIGKILL agent n1 and start it again" >&2
kill -TERM "$(cat "$CONTAINERD_DIR/containerd.pid")"
for _ in $(seq 150); do
    timeout 2 ctr --address "$SOCKET" version >/dev/null 2>&1 || break
    sleep 0.1
done
kill -KILL "${AGENT_PID[n1]}"
wait "${AGENT_PID[n1]}" 2>/dev/null || true
RESTART_LINE=$(($(wc -l <"$WORK/agent-n1.log") + 1))
start_agent n1
eventually "$NODES_READY_TIMEOUT" "n1 is Ready (it still runs Wasm pods)" nodes_ready n1
eventually "$NODES_READY_TIMEOUT" "n1 reports RuntimeUnhealthy" runtime_unhealthy True
has "containerd at .* has not answered since the agent started"
run "n1 lost its skiff.dev/oci-enabled label, not its Wasm one" node_labels
has '^n1 oci= wasm=true$'
run "the container pods keep their reported status, on n1" web_state
is "$WEB_BEFORE"
eventually 30 "the Wasm pods answer" answer_all app=hello
echo "  start containerd again" >&2
bash "$ROOT/scripts/containerd.sh" start "$CONTAINERD_DIR" >/dev/null
eventually "$CONVERGE_TIMEOUT" "n1 reports its runtimes healthy" runtime_unhealthy False
eventually "$CONVERGE_TIMEOUT" "n1 is labelled skiff.dev/oci-enabled again" labelled
eventually "$CONVERGE_TIMEOUT" "the restarted agent adopts the container pods' sandboxes" adopted
eventually "$CONVERGE_TIMEOUT" "the container pods are Ready" pods_ready app=web 2
run "the same pods, on n1, not restarted" web_state
is "$WEB_BEFORE"
run "the same containerd tasks, the same processes" web_tasks
is "$TASKS_BEFORE"
eventually 30 "they answer" answer_all app=web

# --- g. everything deleted, nothing left behind -----------------------------------------------
CGROUPS=$(run_cgroups)
[[ -n $CGROUPS ]] || fail "no container cgroups recorded"
run "delete the Deployments" k delete deployment web hello --timeout=60s
run "delete the other pods" k delete pod stranded hardening-ro hardening-rw --timeout=60s
# no_pods: no pod at all in the cluster.
no_pods() {
    k get pods -A -o name >"$WORK/left" || return 1
    cat "$WORK/left"
    [[ ! -s $WORK/left ]]
}
eventually "$DELETE_TIMEOUT" "all pods are gone" no_pods
# nothing_in_containerd: no container, task or lease in skiff's namespace,
# and only committed snapshots (the image's layers).
nothing_in_containerd() {
    local left
    left=$(ctr_skiff containers ls -q) || return 1
    [[ -z $left ]] || { echo "containers: $left"; return 1; }
    left=$(ctr_skiff tasks ls -q) || return 1
    [[ -z $left ]] || { echo "tasks: $left"; return 1; }
    left=$(ctr_skiff leases ls -q) || return 1
    [[ -z $left ]] || { echo "leases: $left"; return 1; }
    ctr_skiff snapshots ls >"$WORK/snapshots" || return 1
    cat "$WORK/snapshots"
    (($(awk 'NR > 1' "$WORK/snapshots" | grep -c .) >= 1)) || { echo "no snapshot of the image"; return 1; }
    ! awk 'NR > 1 && $NF != "Committed"' "$WORK/snapshots" | grep -q .
}
eventually "$CLEAN_TIMEOUT" "nothing left in containerd but the image's layer snapshots" nothing_in_containerd
# no_shims: no containerd shim serves the private containerd any more
# (containerd stops a task's shim once the task is deleted).
no_shims() {
    local cmdline pid left=
    for cmdline in /proc/[0-9]*/cmdline; do
        pid=${cmdline#/proc/}
        pid=${pid%/cmdline}
        if { tr '\0' ' ' <"$cmdline"; } 2>/dev/null | grep -q -- "containerd-shim.* -address $SOCKET\( \|\$\)"; then
            left+=" $pid"
            ps -o pid,ppid,stat,lstart,args -p "$pid" | tail -n +2
        fi
    done
    [[ -z $left ]]
}
eventually "$CLEAN_TIMEOUT" "no shim is left" no_shims
run "the image is still there" ctr_skiff images ls
has "^$REGISTRY/$BUSYBOX_REPO:$BUSYBOX_TAG .*$BUSYBOX_DIGEST"
# no_state: no sandbox or container records, no namespace mount, in the
# agent's data dir (empty directories are fine).
no_state() {
    local node dir left
    for node in "${NODES[@]}"; do
        for dir in "$WORK/agents/$node/oci/sandboxes" "$WORK/agents/$node/oci/containers"; do
            [[ -d $dir ]] || continue
            left=$(find "$dir" -mindepth 1 ! -type d) || return 1
            [[ -z $left ]] || { echo "left in $dir: $left"; return 1; }
        done
    done
    left=$(awk -v work="$WORK" '$3 == "nsfs" && index($2, work "/") == 1 { print $2 }' /proc/mounts)
    [[ -z $left ]] || { echo "nsfs mounts left: $left"; return 1; }
}
run "no sandbox or container state in the agents' data dirs, no namespace mount" no_state
# no_cgroups: no cgroup of this run's containers and pods is left.
no_cgroups() {
    local path left=
    for path in $CGROUPS; do
        left+=$(cgroup_dirs "$path")
    done
    echo "checked: ${CGROUPS//$'\n'/ }"
    [[ -z $left ]] || { echo "left: $left"; return 1; }
}
run "no cgroup of the containers or their pods is left" no_cgroups
run "n1 did have containers" test -d "$WORK/agents/n1/oci/containers"

echo "mixed e2e: $PASSED steps passed"
