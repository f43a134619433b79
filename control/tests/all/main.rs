//! Integration tests of skiff-control, gathered in one binary.

// The API server's Kubernetes semantics through kube-rs, on both stores.
mod api;
// Bad input: 40+ malformed or invalid requests, each a clear Status, none persisted.
mod api_bad_input;

// Controllers against an in-process API with fake nodes: ReplicaSets, garbage
// collection, endpoints, node lifecycle.
mod controllers;

// Discovery (legacy and aggregated) and OpenAPI v2/v3 documents over HTTP,
// and the real kubectl against them: api-resources, api-versions, get all,
// explain, apply with validation on (skipped without kubectl).
mod discovery;

// The scenarios every store backend must pass (instantiated below).
mod store_conformance;
// The embedded store: conformance, reopen, bad files, locking, group commit,
// automatic compaction, leases across restarts.
mod store_embedded;
// The etcd backend: conformance on a real etcd.
mod store_etcd;
// The node API's control-plane side: /cacerts, node serving certificates,
// pods/log proxied to a fake node API over HTTPS (streaming, every error).
mod node_api;
// pods/exec relayed to a fake node API (local processes behind the channel
// protocol): kube-rs's exec and the real kubectl exec (exit codes, stdin),
// and every refusal as a Status.
mod pod_exec;
// The etcd backend on a real etcd: error mapping, key prefixes, watch lifetime.
mod store_etcd_smoke;
// Protobuf bodies from the real kubectl (captured and live) decode to the JSON kubectl prints.
mod protobuf;
// Real components (etcd) that tests start and clean up themselves.
mod support;
// Server-side tables over HTTP (get, list, watch) and through kubectl (get, -o wide, -w, describe).
mod table;
// `skiff server` start and restart: the data dir's files and modes, the
// kubeconfig with kube-rs over HTTPS, reuse on restart, certificate re-issue,
// an etcd store.
mod server_bootstrap;
// The running server over the network: tokens and 401s, node limits, metrics,
// readyz, ALPN h2, --insecure-http, watches ended at shutdown, kubectl.
mod server_http;
