//! Helpers shared by the integration tests of the Wasm runtime.

pub mod registry;
