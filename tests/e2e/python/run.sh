#!/usr/bin/env bash
# End to end: `skiff server --no-agent` driven by the official Python
# Kubernetes client (PyPI `kubernetes`, pinned in requirements.txt) through
# scenario.py: CRUD, selectors, the three patch types, the status and scale
# subresources, watches, API errors and a namespace deletion.
#
#   tests/e2e/python/run.sh [path/to/skiff]     (run by `make test`)
#
# The client lives in a venv kept under the user's cache dir and rebuilt
# whenever requirements.txt (or the python3 that made it) changes. The server
# runs on loopback, in a temporary data dir that is removed at the end.
set -euo pipefail

SKIFF=${1:-target/debug/skiff}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
VENV=${SKIFF_PYTHON_E2E_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/skiff/python-e2e-venv}
WORK=$(mktemp -d)
SERVER_PID=

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
    if [[ -f $WORK/server.log ]]; then
        echo "--- server log (last 30 lines):" >&2
        tail -n 30 "$WORK/server.log" >&2 || true
    fi
    exit 1
}

[[ -x $SKIFF ]] || { echo "no skiff binary at $SKIFF (build it first)" >&2; exit 1; }
command -v "$PYTHON" >/dev/null || fail "$PYTHON is not installed (make deps)"

# --- the client's venv ----------------------------------------------------------
# Its stamp: the requirements and the interpreter that made it.
stamp() {
    sha256sum "$HERE/requirements.txt" | cut -d' ' -f1
    "$PYTHON" -c 'import sys; print(sys.version, sys.base_prefix)'
}
WANTED=$(stamp)
if [[ ! -x $VENV/bin/python || ! -f $VENV/skiff-stamp || $(cat "$VENV/skiff-stamp") != "$WANTED" ]]; then
    echo "  python venv: installing $(grep -v '^#' "$HERE/requirements.txt" | xargs) into $VENV" >&2
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" >"$WORK/venv.log" 2>&1 || {
        cat "$WORK/venv.log" >&2
        fail "$PYTHON -m venv does not work (on Debian: apt-get install python3-venv, or make deps)"
    }
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$HERE/requirements.txt" || { rm -rf "$VENV"; fail "pip install -r requirements.txt"; }
    # Written last: an interrupted install is redone next time.
    printf '%s\n' "$WANTED" >"$VENV/skiff-stamp"
fi

# --- the server -------------------------------------------------------------------
"$SKIFF" server --no-agent --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    grep -q "skiff server ready" "$WORK/server.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited"
    sleep 0.1
done
grep -q "skiff server ready" "$WORK/server.log" || fail "the server did not become ready"
[[ -f $WORK/data/kubeconfig ]] || fail "no kubeconfig in $WORK/data"

# --- the scenario -----------------------------------------------------------------
# No proxy may take loopback traffic elsewhere; scenario.py bounds itself too.
rc=0
env -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy -u ALL_PROXY -u all_proxy \
    timeout 300 "$VENV/bin/python" "$HERE/scenario.py" "$WORK/data/kubeconfig" || rc=$?
((rc == 0)) || fail "scenario.py exited $rc"
