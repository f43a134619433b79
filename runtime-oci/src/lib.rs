//! The OCI runtime: containers through containerd's gRPC API behind the
//! runtime trait of `skiff-sdk`.
//!
//! - [`client`]: the connection to containerd, scoped to skiff's
//!   containerd namespace.

pub mod client;
pub mod sandbox;
pub mod spec;
