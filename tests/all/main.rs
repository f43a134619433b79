//! Integration tests of the `skiff` binary, run as a user would run it.

/// `kubectl exec` and `skiff exec` through an in-process server and the
/// real node API, over a runtime whose exec runs local processes.
mod exec;
/// `skiff server` with its local agent runs a Wasm pod, serves its logs and
/// refuses exec into it.
mod local_agent;
/// `skiff push` and `skiff pull` against a real registry: bytes, digests,
/// messages, progress and failures.
mod push_pull;
/// A throwaway `docker-registry` for the tests above.
mod registry;
