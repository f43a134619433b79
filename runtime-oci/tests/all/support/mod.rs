//! Fixtures shared by the integration tests of the OCI runtime: a private
//! containerd (`containerd`), a local registry (`registry`) and a busybox
//! image built from Debian's static busybox and pushed to it (`busybox`).

// Each test module uses a subset of the helpers.
#![allow(dead_code)]

pub mod busybox;
pub mod containerd;
pub mod registry;

/// The environment variable `make test` sets: every real component must be
/// there, and a missing one fails the test instead of skipping it.
const REAL_VARIABLE: &str = "SKIFF_TEST_REAL";

/// Says why a test is skipped, or fails it when `SKIFF_TEST_REAL` is set.
pub fn skip_or_fail(why: &str) {
    assert!(
        std::env::var_os(REAL_VARIABLE).is_none(),
        "{REAL_VARIABLE} is set but {why}"
    );
    eprintln!("skipping: {why}");
}

/// Sends the runtime's logs to the test's output, filtered by `RUST_LOG`
/// (nothing by default).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
