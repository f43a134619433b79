//! Exec probes through the runtime's exec ([`RuntimeExec`]): judged as the
//! kubelet judges them, in paused time.

use std::sync::Arc;
use std::time::Duration;

use skiff_node::probe::{EXEC_OUTPUT_LIMIT, ExecProber as _, ProbeResult, RuntimeExec};
use skiff_sdk::runtime::{ContainerId, Runtime};

use crate::support::{FakeExec, FakeRuntime};

const TIMEOUT: Duration = Duration::from_secs(1);

async fn probe(
    runtime: FakeRuntime,
    container: Option<ContainerId>,
    command: &[&str],
) -> ProbeResult {
    let id = match container {
        Some(id) => id,
        None => runtime.running_container("c").await,
    };
    let runtime: Arc<dyn Runtime> = Arc::new(runtime);
    let command: Vec<String> = command.iter().map(|c| c.to_string()).collect();
    RuntimeExec::new(runtime, id).exec(&command, TIMEOUT).await
}

#[tokio::test(start_paused = true)]
async fn exit_codes_output_and_timeouts() {
    let scripted = || FakeRuntime::new().with_exec(FakeExec::Scripted);
    assert_eq!(
        probe(scripted(), None, &["exit", "0"]).await,
        ProbeResult::Success
    );
    assert_eq!(
        probe(scripted(), None, &["exit", "2", "not", "ready"]).await,
        ProbeResult::Failure("not ready".into())
    );
    assert_eq!(
        probe(scripted(), None, &["exit", "2"]).await,
        ProbeResult::Failure("command \"exit 2\" exited with code 2".into())
    );
    let long = "x".repeat(EXEC_OUTPUT_LIMIT + 100);
    let ProbeResult::Failure(output) = probe(scripted(), None, &["exit", "1", &long]).await else {
        panic!("a non-zero exit fails");
    };
    assert_eq!(output.len(), EXEC_OUTPUT_LIMIT);
    assert_eq!(
        probe(scripted(), None, &["hang"]).await,
        ProbeResult::Failure("command \"hang\" timed out".into())
    );
}

#[tokio::test(start_paused = true)]
async fn runtime_refusals() {
    // A runtime that cannot exec fails the probe with its reason.
    assert_eq!(
        probe(FakeRuntime::new(), None, &["true"]).await,
        ProbeResult::Failure("exec is not supported for Wasm pods".into())
    );
    // A container the runtime no longer knows: the kubelet's Unknown.
    assert_eq!(
        probe(
            FakeRuntime::new().with_exec(FakeExec::Scripted),
            Some(ContainerId::new("gone")),
            &["true"]
        )
        .await,
        ProbeResult::Unknown
    );
}
