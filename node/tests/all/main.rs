//! Integration tests of the node agent, in one binary.

/// The pod worker's state machine over a fake runtime and a fake API, in
/// paused time: restarts and back-off, termination with grace, active
/// deadlines, adoption after an agent restart, probe-driven restarts.
mod pod_worker;
/// A runtime whose containers follow scripts, in tokio time.
mod support;
