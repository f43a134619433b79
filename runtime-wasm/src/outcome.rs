//! How a guest ended, as a container status says it: exit code, reason and
//! message, from a WASI exit, a trap, the memory limit or a kill.

use skiff_sdk::runtime::{KILLED_EXIT_CODE, reason};
use wasmtime_wasi::I32Exit;

/// The exit code of a guest that trapped: 128 + SIGABRT, as a process that
/// aborts (and as the wasmtime CLI reports a trap).
pub const TRAP_EXIT_CODE: i32 = 134;
/// The exit code of a container that could not start (as containerd's
/// `StartError`).
pub const START_ERROR_EXIT_CODE: i32 = 128;
/// The reason of a container that could not start.
pub const START_ERROR: &str = "StartError";

/// The longest message kept in a status (the kubelet caps termination
/// messages at 4 KiB).
const MAX_MESSAGE_BYTES: usize = 4096;

/// How a guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) exit_code: i32,
    pub(crate) reason: String,
    pub(crate) message: Option<String>,
}

impl Outcome {
    /// The guest exited with `code`.
    pub(crate) fn exited(code: i32) -> Self {
        Outcome {
            exit_code: code,
            reason: reason::for_exit_code(code).to_owned(),
            message: None,
        }
    }

    /// The runtime killed the guest (a stop past its grace period).
    pub(crate) fn killed() -> Self {
        Outcome {
            exit_code: KILLED_EXIT_CODE,
            reason: reason::ERROR.to_owned(),
            message: Some("killed at the end of its grace period".to_owned()),
        }
    }

    /// The guest could not be started.
    pub(crate) fn start_error(message: impl Into<String>) -> Self {
        Outcome {
            exit_code: START_ERROR_EXIT_CODE,
            reason: START_ERROR.to_owned(),
            message: Some(truncate(message.into())),
        }
    }

    /// How a guest that returned `error` ended; `out_of_memory` when its
    /// memory limiter refused a growth.
    pub(crate) fn from_error(error: &wasmtime::Error, out_of_memory: bool) -> Self {
        if let Some(exit) = error.downcast_ref::<I32Exit>() {
            return Outcome::exited(exit.0);
        }
        if out_of_memory {
            return Outcome {
                exit_code: KILLED_EXIT_CODE,
                reason: reason::OOM_KILLED.to_owned(),
                message: Some(truncate(format!("{}", error.root_cause()))),
            };
        }
        // The status says what happened in a line; the guest's backtrace
        // goes to its log (see `Outcome::details`).
        let message = match error.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => format!("wasm trap: {trap}"),
            None => error.root_cause().to_string(),
        };
        Outcome {
            exit_code: TRAP_EXIT_CODE,
            reason: reason::ERROR.to_owned(),
            message: Some(truncate(message)),
        }
    }
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_traps_and_memory() {
        let exit = wasmtime::Error::new(I32Exit(3));
        assert_eq!(Outcome::from_error(&exit, false), Outcome::exited(3));
        assert_eq!(Outcome::exited(0).reason, "Completed");

        let trap = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached);
        let outcome = Outcome::from_error(&trap, false);
        assert_eq!(outcome.exit_code, TRAP_EXIT_CODE);
        assert_eq!(outcome.reason, "Error");
        assert!(
            outcome
                .message
                .as_deref()
                .unwrap()
                .starts_with("wasm trap: "),
            "{outcome:?}"
        );

        let grow = wasmtime::format_err!("memory limit exceeded");
        let outcome = Outcome::from_error(&grow, true);
        assert_eq!(
            (outcome.exit_code, outcome.reason.as_str()),
            (137, "OOMKilled")
        );
    }

    #[test]
    fn messages_are_capped_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let message = Outcome::start_error(long).message.unwrap();
        assert!(message.len() <= MAX_MESSAGE_BYTES);
        assert!(message.chars().all(|c| c == 'é'));
    }
}
