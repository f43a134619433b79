//! Running a command in a running container, as CRI's `Exec`: what
//! [`Runtime::exec`](super::Runtime::exec) is asked ([`ExecRequest`]) and
//! what it hands back ([`ExecProcess`]), for `kubectl exec` (through the
//! node API) and for exec probes.
//!
//! The runtime starts the process and returns at once with its streams; the
//! caller copies them (to a WebSocket, to a probe's buffer) and awaits the
//! exit. Nothing here knows about the wire: channels, statuses and
//! terminal-size messages are the node API's business.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::error::RuntimeError;

/// A terminal's size in character cells, as the resize messages of
/// `kubectl exec -t` give it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TerminalSize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// What to run in a container, and how it is connected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The program and its arguments (no shell is added).
    pub command: Vec<String>,
    /// Whether the caller writes the process's standard input
    /// ([`ExecProcess::stdin`] is then `Some`); otherwise the process reads
    /// an empty input.
    pub stdin: bool,
    /// Whether the process gets a terminal (its stdout and stderr are then
    /// the terminal, and [`ExecProcess::resize`] is `Some`).
    pub tty: bool,
    /// The terminal's size at start, when `tty`; runtimes pick a default
    /// (80x24) without one.
    pub terminal_size: Option<TerminalSize>,
}

impl ExecRequest {
    /// A request to run `command` without stdin or terminal.
    pub fn new(command: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            command: command.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Connects the process's standard input.
    pub fn stdin(mut self, stdin: bool) -> Self {
        self.stdin = stdin;
        self
    }

    /// Gives the process a terminal, of `size` if given.
    pub fn tty(mut self, size: Option<TerminalSize>) -> Self {
        self.tty = true;
        self.terminal_size = size;
        self
    }

    /// Checks what every runtime refuses: an empty command, or an empty
    /// program name ([`RuntimeError::InvalidArgument`]).
    pub fn validate(&self) -> Result<(), RuntimeError> {
        match self.command.first() {
            None => Err(RuntimeError::invalid_argument(
                "command",
                "must not be empty",
            )),
            Some(program) if program.is_empty() => Err(RuntimeError::invalid_argument(
                "command[0]",
                "must not be empty",
            )),
            Some(_) => Ok(()),
        }
    }
}

/// The process's standard input, written by the caller.
pub type ExecStdin = Pin<Box<dyn AsyncWrite + Send>>;

/// One of the process's output streams, read by the caller.
pub type ExecOutput = Pin<Box<dyn AsyncRead + Send>>;

/// Resolves with the process's exit code.
pub type ExecExit = Pin<Box<dyn Future<Output = Result<i32, RuntimeError>> + Send>>;

/// A process started by [`Runtime::exec`](super::Runtime::exec): its
/// streams, its terminal's size control and its exit.
///
/// # Contract
///
/// - The process runs in the container's environment (its root, namespaces,
///   cgroup and environment variables), with `command[0]` looked up as the
///   container's own processes would.
/// - `stdout` and `stderr` reach end-of-file once the process (and anything
///   that inherited them) closed them. A caller must keep reading both
///   while it waits for the exit: a process blocked on a full pipe never
///   exits.
/// - With a terminal (`tty`), the terminal carries both streams: `stdout`
///   carries everything and `stderr` is empty.
/// - Dropping `stdin` (or shutting it down) closes the process's standard
///   input. Dropping the whole [`ExecProcess`] before the exit detaches
///   from the process; a runtime may kill it then.
/// - `exit` resolves with the exit code (128 + n for a process killed by
///   signal n), or with an error if the runtime lost track of the process.
pub struct ExecProcess {
    /// Its standard input, when the request asked for it.
    pub stdin: Option<ExecStdin>,
    /// Its standard output (the terminal's output with a tty).
    pub stdout: ExecOutput,
    /// Its standard error (empty with a tty).
    pub stderr: ExecOutput,
    /// Resizes its terminal, when it has one: each value sent is the new
    /// size (only the latest matters).
    pub resize: Option<watch::Sender<TerminalSize>>,
    /// Resolves with its exit code once it has exited.
    pub exit: ExecExit,
}

impl fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecProcess")
            .field("stdin", &self.stdin.is_some())
            .field("resize", &self.resize.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_built_and_validated() {
        let request = ExecRequest::new(["sh", "-c", "exit 3"])
            .stdin(true)
            .tty(Some(TerminalSize {
                width: 80,
                height: 24,
            }));
        assert_eq!(request.command, ["sh", "-c", "exit 3"]);
        assert!(request.stdin && request.tty);
        assert!(request.validate().is_ok());
        let message = |request: ExecRequest| request.validate().unwrap_err().to_string();
        assert_eq!(
            message(ExecRequest::new(Vec::<String>::new())),
            "invalid command: must not be empty"
        );
        assert_eq!(
            message(ExecRequest::new(["", "x"])),
            "invalid command[0]: must not be empty"
        );
    }
}
