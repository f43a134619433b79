//! Names of the RuntimeClasses a skiff cluster installs by default.

/// Pods with `runtimeClassName: wasmtime` run as Wasm in wasmtime.
pub const WASMTIME: &str = "wasmtime";
/// Pods with `runtimeClassName: runc` run as OCI containers through containerd.
pub const RUNC: &str = "runc";
