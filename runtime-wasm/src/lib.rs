//! The Wasm runtime: components and core modules in wasmtime behind the
//! runtime trait of `skiff-sdk`.
//!
//! One [`WasmRuntime`] per node holds one wasmtime engine (async, epoch
//! interruption, pooling allocator). Images are Wasm OCI artifacts pulled
//! into a local store ([`oci`]) and compiled once: compiled code is cached
//! on disk by artifact digest and engine fingerprint. What a container runs
//! depends on what its artifact exports ([`Kind`]):
//!
//! - a `wasi:http/incoming-handler` component is served on the container's
//!   ports, with a fresh instance per request, up to a number at once and
//!   under a request timeout;
//! - a `wasi:cli/run` component or a core module with `_start` runs as a
//!   task until it exits. A task is asked to stop by the end of its stdin,
//!   and killed at the end of its grace period.
//!
//! Guests get their args, env and preopened mounts (read-only honoured),
//! write stdout and stderr to the container's CRI log, have no network
//! unless the pod asks ([`NETWORK_ANNOTATION`]), and live under a memory
//! limit. A guest that misbehaves (traps, loops, exhausts its memory) ends
//! its own container or request, never the runtime.

mod compile;
mod engine;
mod guest;
mod http;
pub mod oci;
mod options;
mod outcome;
mod runtime;
mod state;
mod task;

pub use compile::Kind;
pub use guest::NETWORK_ANNOTATION;
pub use options::WasmRuntimeOptions;
pub use outcome::{START_ERROR, START_ERROR_EXIT_CODE, TRAP_EXIT_CODE};
pub use runtime::{DEFAULT_HTTP_PORT, WASMTIME_VERSION, WasmRuntime};
