//! Integration tests of skiff-control, gathered in one binary.

// The scenarios every store backend must pass (instantiated below).
mod store_conformance;
// The embedded store: conformance, reopen, bad files, locking, group commit,
// automatic compaction, leases across restarts.
mod store_embedded;
// The etcd backend: conformance on a real etcd.
mod store_etcd;
// The etcd backend on a real etcd: error mapping, key prefixes, watch lifetime.
mod store_etcd_smoke;
// Real components (etcd) that tests start and clean up themselves.
mod support;
