//! The OCI runtime: containers through containerd's gRPC API behind the
//! runtime trait of `skiff-sdk`.
//!
//! - [`client`]: the connection to containerd, scoped to skiff's
//!   containerd namespace.
//! - [`image`]: pulls into containerd's content store and unpacks to
//!   snapshots.
//! - [`spec`]: the OCI runtime spec of a container, pure.
//! - [`sandbox`]: pod sandboxes as persistent namespaces.
//! - [`runtime`]: the runtime itself, [`OciRuntime`].

pub mod client;
pub mod image;
pub mod runtime;
pub mod sandbox;
pub mod spec;

pub use runtime::{OciRuntime, OciRuntimeOptions};
