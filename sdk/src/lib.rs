//! The shared vocabulary of skiff: API types, skiff's well-known labels,
//! annotations and RuntimeClass names, the typed client, and the runtime trait
//! that runtimes implement (`runtime`).
//!
//! Architecture invariant: this crate depends on no server and no runtime crate.

pub mod annotations;
pub mod client;
pub mod labels;
pub mod quantity;
pub mod runtime;
pub mod runtime_class;
