//! Node labels that skiff's agent sets from what it detects on the node.

/// Set to `"true"` on nodes that run Wasm workloads in wasmtime.
pub const WASM_ENABLED: &str = "skiff.dev/wasm-enabled";
/// Set to `"true"` on nodes whose containerd answers, so OCI containers can run.
pub const OCI_ENABLED: &str = "skiff.dev/oci-enabled";
/// Set to `"true"` on nodes with an NVIDIA device.
pub const GPU_ENABLED: &str = "skiff.dev/gpu-enabled";
/// Set to `"true"` on nodes that serve `wasi:http` components.
pub const WASI_HTTP: &str = "skiff.dev/wasi-http";
/// The standard hostname label.
pub const HOSTNAME: &str = "kubernetes.io/hostname";
/// The standard operating-system label.
pub const OS: &str = "kubernetes.io/os";
/// The standard CPU-architecture label.
pub const ARCH: &str = "kubernetes.io/arch";
