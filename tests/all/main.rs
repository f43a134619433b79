//! Integration tests of the `skiff` binary, run as a user would run it.

/// `skiff server` with its local agent runs a Wasm pod and serves its logs.
mod local_agent;
/// `skiff push` and `skiff pull` against a real registry: bytes, digests,
/// messages, progress and failures.
mod push_pull;
/// A throwaway `docker-registry` for the tests above.
mod registry;
