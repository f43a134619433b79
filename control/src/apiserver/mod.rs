//! The Kubernetes-compatible API server: REST over the store, with
//! Kubernetes' semantics, so that kubectl and client libraries work
//! unchanged.
//!
//! Architecture invariant: this is the only module that opens the store.

pub mod access_review;
pub mod auth;
pub mod body;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod handlers;
pub mod health;
pub mod meta;
pub mod metrics;
mod namespaces;
pub mod node_credentials;
pub mod openapi;
pub mod patch;
mod plain_json;
pub mod pod_exec;
pub mod pod_logs;
pub mod protobuf;
pub mod request;
pub mod resources;
pub mod selector;
pub mod strategic;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;
