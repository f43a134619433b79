//! Integration tests of the OCI runtime, one binary.
//!
//! - `conformance`: the runtime conformance suite on containerd.
//! - `exec`: beyond the conformance suite, the container's own settings in an exec.
//! - `hardening`: what a container cannot do, checked from inside one.
//! - `images`: pulling into a real containerd from a real registry, and
//!   listing, resolving and removing images.
//!
//! The tests need root, containerd (a private one is started for this
//! binary, `support::containerd`), Debian's `docker-registry` and
//! busybox-static: they are ignored under plain `cargo test` and run by
//! `make test` (`--include-ignored`, with `SKIFF_TEST_REAL=1`, where a
//! missing component fails them instead of skipping).

mod conformance;
mod exec;
mod hardening;
mod images;
mod support;
