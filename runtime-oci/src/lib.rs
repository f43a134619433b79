//! The OCI runtime: containers through containerd's gRPC API behind the
//! runtime trait of `skiff-sdk`.
