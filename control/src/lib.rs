//! skiff's control plane: the store that only the API server opens, and (in
//! later steps) the API server, scheduler and controllers.

pub mod apiserver;
pub mod controllers;
pub mod leader;
pub mod scheduler;
pub mod server;
pub mod store;
