#!/usr/bin/env bash
# A private containerd whose every file lives under one directory, for the
# tests of runtime-oci, the e2e shell tests and `make run`.
#
#   scripts/containerd.sh start DIR   start it in the background (its own
#                                     session), wait until `ctr version`
#                                     answers, print the socket path
#   scripts/containerd.sh stop DIR    delete its tasks and containers, stop
#                                     it, unmount what is left under DIR,
#                                     remove DIR
#
# Layout: DIR/config.toml, DIR/root (content, snapshots, metadata),
# DIR/state (shim bundles, task rootfs mounts), DIR/opt,
# DIR/containerd.sock (+ .ttrpc), DIR/containerd.pid, DIR/containerd.log.
# The CRI plugin is disabled: skiff talks to containerd's own API.
#
# `start` is idempotent (a running instance is reused) and `stop` is safe to
# repeat; `stop` only removes a DIR that `start` laid out. Needs root (as
# containerd does).
set -euo pipefail

readonly CONTAINERD=/usr/bin/containerd
readonly CTR=/usr/bin/ctr
# Written into config.toml: `stop` removes only directories that carry it.
readonly MARKER="# skiff scripts/containerd.sh"
# How long containerd may take to answer, and to exit once told to.
readonly START_TIMEOUT_SECONDS=30
readonly STOP_TIMEOUT_SECONDS=15
# Unix socket paths are limited to 108 bytes.
readonly MAX_SOCKET_PATH=100

log() { printf 'containerd.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	die "usage: $0 start|stop DIR"
}

# ctr against the socket, with a bound on how long it may hang.
ctr_at() {
	local socket="$1"
	shift
	timeout 20 "$CTR" --address "$socket" "$@"
}

# Whether pid $1 is alive and is a containerd.
is_containerd() {
	[[ -n "$1" && -r "/proc/$1/comm" && "$(cat "/proc/$1/comm" 2>/dev/null)" == containerd ]]
}

start() {
	local dir
	dir="$(realpath -m "$1")"
	local socket="$dir/containerd.sock"
	((${#socket} <= MAX_SOCKET_PATH)) || die "socket path $socket is longer than $MAX_SOCKET_PATH bytes; use a shorter DIR"
	[[ -x "$CONTAINERD" ]] || die "$CONTAINERD is missing: run \`make deps\` (Debian package containerd)"
	[[ "$(id -u)" -eq 0 ]] || die "containerd needs root"
	mkdir -p "$dir"

	local pid=""
	[[ -f "$dir/containerd.pid" ]] && pid="$(cat "$dir/containerd.pid")"
	if is_containerd "$pid" && ctr_at "$socket" version >/dev/null 2>&1; then
		printf '%s\n' "$socket"
		return 0
	fi

	mkdir -p "$dir/root" "$dir/state" "$dir/opt"
	cat >"$dir/config.toml" <<EOF
$MARKER: a private containerd, everything under $dir
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$socket"

[ttrpc]
  address = "$socket.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$dir/opt"
EOF
	rm -f "$socket" "$socket.ttrpc"
	# Its own session: an interrupt of the caller's terminal does not reach
	# it, `stop` does. (A background job of a non-interactive shell is no
	# process group leader, so setsid runs it in place and $! is its pid.)
	setsid "$CONTAINERD" --config "$dir/config.toml" </dev/null >>"$dir/containerd.log" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$dir/containerd.pid"

	local deadline=$((SECONDS + START_TIMEOUT_SECONDS))
	until ctr_at "$socket" version >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$dir/containerd.log" >&2 || true
			die "containerd exited while starting (log: $dir/containerd.log)"
		fi
		if ((SECONDS >= deadline)); then
			kill -KILL "$pid" 2>/dev/null || true
			tail -n 30 "$dir/containerd.log" >&2 || true
			die "containerd did not answer on $socket within ${START_TIMEOUT_SECONDS}s"
		fi
		sleep 0.1
	done
	printf '%s\n' "$socket"
}

# Force-deletes every task and container of every namespace, and lists the
# namespaces (one a line) on stdout.
delete_tasks_and_containers() {
	local socket="$1" namespace id
	for namespace in $(ctr_at "$socket" namespaces list --quiet 2>/dev/null); do
		printf '%s\n' "$namespace"
		for id in $(ctr_at "$socket" --namespace "$namespace" tasks list --quiet 2>/dev/null); do
			ctr_at "$socket" --namespace "$namespace" tasks delete --force "$id" >/dev/null 2>&1 ||
				log "could not delete task $namespace/$id"
		done
		for id in $(ctr_at "$socket" --namespace "$namespace" containers list --quiet 2>/dev/null); do
			ctr_at "$socket" --namespace "$namespace" containers delete "$id" >/dev/null 2>&1 ||
				log "could not delete container $namespace/$id"
		done
	done
}

# Shims serving this containerd (found by their -address argument), one pid
# a line: after containerd is gone they are leftovers.
shim_pids() {
	local socket="$1" cmdline_file pid
	for cmdline_file in /proc/[0-9]*/cmdline; do
		pid="${cmdline_file#/proc/}"
		pid="${pid%/cmdline}"
		{ tr '\0' ' ' <"$cmdline_file"; } 2>/dev/null | grep -q -- "containerd-shim.* -address $socket\( \|\$\)" &&
			printf '%s\n' "$pid"
	done
	return 0
}

# Mount points at or under $1, deepest first (mountinfo escapes spaces as
# \040; DIR paths with spaces are not supported).
mounts_under() {
	awk -v dir="$1" '$5 == dir || index($5, dir "/") == 1 { print $5 }' /proc/self/mountinfo |
		awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

stop() {
	local dir
	dir="$(realpath -m "$1")"
	[[ -d "$dir" ]] || return 0
	if ! { [[ -f "$dir/config.toml" ]] && head -n 1 "$dir/config.toml" | grep -qF "$MARKER"; }; then
		die "$dir was not laid out by this script; not touching it"
	fi
	local socket="$dir/containerd.sock" pid=""
	[[ -f "$dir/containerd.pid" ]] && pid="$(cat "$dir/containerd.pid")"

	local namespaces=""
	if is_containerd "$pid" && ctr_at "$socket" version >/dev/null 2>&1; then
		namespaces="$(delete_tasks_and_containers "$socket")"
	fi
	if is_containerd "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
		while is_containerd "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
		if is_containerd "$pid"; then
			log "containerd $pid did not exit on TERM; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi

	# Shims left by a containerd that died with tasks running: their
	# containers first (runc's state is under /run/containerd/runc/<namespace>),
	# then the shims.
	local shims
	shims="$(shim_pids "$socket")"
	if [[ -n "$shims" ]]; then
		local task_dir namespace id
		for task_dir in "$dir"/state/io.containerd.runtime.v2.task/*/*; do
			[[ -d "$task_dir" ]] || continue
			id="${task_dir##*/}"
			namespace="${task_dir%/*}"
			namespace="${namespace##*/}"
			timeout 10 runc --root "/run/containerd/runc/$namespace" delete --force "$id" >/dev/null 2>&1 || true
		done
		log "killing leftover shims: $(tr '\n' ' ' <<<"$shims")"
		# shellcheck disable=SC2086 # one pid per word
		kill -KILL $shims 2>/dev/null || true
	fi

	# The shims keep runc's state in /run/containerd/runc/<namespace>, outside
	# DIR: remove the namespaces' directories once empty.
	local namespace_dir
	for namespace_dir in $namespaces; do
		rmdir "/run/containerd/runc/$namespace_dir" 2>/dev/null || true
	done

	local mount_point
	while IFS= read -r mount_point; do
		[[ -n "$mount_point" ]] || continue
		umount "$mount_point" 2>/dev/null || umount --lazy "$mount_point" 2>/dev/null ||
			log "could not unmount $mount_point"
	done < <(mounts_under "$dir")
	rm -rf "$dir"
}

[[ $# -eq 2 ]] || usage
case "$1" in
start) start "$2" ;;
stop) stop "$2" ;;
*) usage ;;
esac
