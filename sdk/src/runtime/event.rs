//! What a runtime announces on its own: container exits (CRI's container
//! events, trimmed to the one the agent needs).

use jiff::Timestamp;

use super::{ContainerId, SandboxId};

/// An event from [`Runtime::events`](super::Runtime::events).
///
/// Events are a prompt, not a record: they are not persisted, and a
/// subscriber that falls behind gets `RecvError::Lagged`. The agent then (and
/// after any restart) relists with [`Runtime::list`](super::Runtime::list),
/// which always tells the whole truth.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeEvent {
    /// A container's process ended (by itself, stopped or killed). Sent after
    /// its status shows `Exited` with the same exit code and time, and after
    /// its log file holds all its output.
    ContainerExited {
        /// The container.
        container_id: ContainerId,
        /// Its sandbox.
        sandbox_id: SandboxId,
        /// Its exit code, as in its status.
        exit_code: i32,
        /// When it ended, as in its status.
        finished_at: Timestamp,
    },
}
