//! Integration tests of the Wasm runtime, one binary: the runtime
//! conformance suite (`conformance`), real guests well behaved and hostile
//! (`guests`), and Wasm artifacts in a real registry (`registry`).
//!
//! Every test here talks to Debian's `docker-registry`, started on a
//! loopback port by the test (`support::registry`); they are ignored under
//! plain `cargo test` and run by `make test` (`--include-ignored`).

mod conformance;
mod guests;
mod registry;
mod support;
