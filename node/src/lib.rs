//! The node agent: registration, leases, pod workers, probes, the logs API
//! and the service proxy. Runtimes are injected as trait objects, so this
//! crate depends on `skiff-sdk` only.
