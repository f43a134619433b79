//! Integration tests of the node agent, in one binary.

/// A runtime that answers only after the agent started: calls wait for
/// it, pod workers neither overwrite the status of pods it may run nor
/// delete them before it answers.
mod deferred_runtime;
/// Exec probes through the runtime's exec: exit codes, the output limit,
/// timeouts, runtimes that cannot exec.
mod exec_probe;
/// `kubectl exec` on the node API: WebSocket sessions over TLS with the
/// channel subprotocols against a runtime running local processes (streams,
/// stdin and its close, exit codes, tty resizes, v4), and every refusal as
/// a `Status` before the upgrade (unknown pod or container, a runtime that
/// cannot exec, bad options, other credentials).
mod node_api_exec;
/// The pod worker's state machine over a fake runtime and a fake API, in
/// paused time: restarts and back-off, termination with grace, active
/// deadlines, adoption after an agent restart, probe-driven restarts.
mod pod_worker;
/// A runtime whose containers follow scripts, in tokio time.
mod support;
