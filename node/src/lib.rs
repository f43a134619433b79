//! The node agent: registers the Node and renews its Lease, runs the pods
//! bound to it through the runtimes it is given (trait objects of
//! `skiff_sdk::runtime::Runtime`), probes them, reports their status, and
//! serves their logs on the node API. Depends on `skiff-sdk` only.
//!
//! - [`agent`] composes it all: [`agent::run`].
//! - [`bootstrap`] joins a cluster with a join token (remote agents).
//! - [`registration`] describes the node and keeps it alive.
//! - [`pod_manager`] watches the node's pods and feeds one
//!   [`pod_worker::PodWorker`] per pod, whose lifecycle is one step
//!   function; [`pod_status`] computes what it reports.
//! - [`probe`], [`pod_config`] (environment), [`volumes`], [`backoff`],
//!   [`address_pool`] are the pieces a worker uses.
//! - [`deferred_runtime`] stands in for a runtime whose backend did not
//!   answer at start (containerd down) until it does.
//! - [`node_api`] serves [`logs`] to the API server (`kubectl logs`) and
//!   runs [`exec`] sessions (`kubectl exec`) in the containers
//!   [`pod_containers`] locates.

pub mod address_pool;
pub mod agent;
pub mod backoff;
pub mod bootstrap;
pub mod deferred_runtime;
pub mod exec;
pub mod logs;
pub mod node_api;
pub mod pod_api;
pub mod pod_config;
pub mod pod_containers;
pub mod pod_logs;
pub mod pod_manager;
pub mod pod_status;
pub mod pod_worker;
pub mod probe;
pub mod registration;
pub mod volumes;
