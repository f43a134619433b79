//! `skiff exec POD -- COMMAND...`: runs a command in a pod's container
//! through the API server (`pods/exec`, WebSocket `v5.channel.k8s.io`, with
//! kube-rs), copies stdin (with `-i`), stdout and stderr, and exits with
//! the command's exit code (saying so on stderr when it is not 0), as
//! `kubectl exec` does.
//!
//! `-t` asks for a terminal in the container. With `-i` and a local
//! terminal, that terminal is switched to raw mode for the session (keys,
//! Ctrl-C included, go to the remote terminal as typed) and restored after,
//! and its size is sent at the start and on every change (SIGWINCH). `-t`
//! without a terminal on stdin is dropped with kubectl's warning.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use futures::SinkExt as _;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, TerminalSize};
use rustix::termios::{OptionalActions, Termios};
use tokio::io::AsyncWriteExt as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::ExecArgs;
use crate::data_dir;

/// Runs `skiff exec` to the end of the remote command.
pub fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let code = runtime.block_on(exec(args));
    // A read of our stdin may still block a thread: do not wait for it.
    runtime.shutdown_background();
    code
}

async fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let kubeconfig = kubeconfig_path(args.kubeconfig)?;
    let client = skiff_sdk::client::from_kubeconfig(&kubeconfig).await?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let tty = args.tty && rustix::termios::isatty(std::io::stdin());
    if args.tty && !tty {
        // As kubectl says it, and goes on without one.
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let mut params = AttachParams::default()
        .stdin(args.stdin)
        .tty(tty)
        .stderr(!tty);
    if let Some(container) = &args.container {
        params = params.container(container);
    }
    let mut process = match pods.exec(&args.pod, &args.command, &params).await {
        Ok(process) => process,
        Err(kube::Error::Api(status)) => {
            eprintln!("Error from server ({}): {}", status.reason, status.message);
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => {
            return Err(error).with_context(|| format!("exec in pod {namespace}/{}", args.pod));
        }
    };
    let status = process.take_status().expect("taken once");
    // Restored when the session ends, however it ends.
    let raw = if tty && args.stdin {
        Some(RawTerminal::enter().context("switching the terminal to raw mode")?)
    } else {
        None
    };
    let resizes = process
        .terminal_size()
        .map(|sizes| tokio::spawn(send_sizes(sizes)));
    let stdin = process.stdin().map(|mut remote| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut remote).await;
            // kube-rs closes the command's stdin (v5's close signal).
            let _ = remote.shutdown().await;
        })
    });
    let (remote_stdout, remote_stderr) = (process.stdout(), process.stderr());
    let stdout = async {
        if let Some(mut remote) = remote_stdout {
            let mut local = tokio::io::stdout();
            let _ = tokio::io::copy(&mut remote, &mut local).await;
            let _ = local.flush().await;
        }
    };
    let stderr = async {
        if let Some(mut remote) = remote_stderr {
            let mut local = tokio::io::stderr();
            let _ = tokio::io::copy(&mut remote, &mut local).await;
            let _ = local.flush().await;
        }
    };
    tokio::join!(stdout, stderr);
    let status = status.await;
    if let Some(stdin) = stdin {
        stdin.abort();
    }
    if let Some(resizes) = resizes {
        resizes.abort();
    }
    drop(raw);
    match exit_code(status.as_ref()) {
        Ok(0) => Ok(ExitCode::SUCCESS),
        Ok(code) => {
            // As kubectl says it.
            eprintln!("command terminated with exit code {code}");
            Ok(ExitCode::from(code))
        }
        Err(message) => {
            eprintln!("error: {message}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The local terminal (stdin) in raw mode while this lives.
struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    fn enter() -> std::io::Result<Self> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Sends the local terminal's size now and after every change.
async fn send_sizes(mut sizes: futures::channel::mpsc::Sender<TerminalSize>) {
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return;
    };
    loop {
        if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) {
            let size = TerminalSize {
                width: size.ws_col,
                height: size.ws_row,
            };
            if sizes.send(size).await.is_err() {
                return;
            }
        }
        if changes.recv().await.is_none() {
            return;
        }
    }
}

/// The kubeconfig to use: `--kubeconfig` or `$KUBECONFIG`, else the one a
/// `skiff server` wrote into the default data dir, else
/// `~/.kube/config` (as `k3s kubectl` prefers its own).
fn kubeconfig_path(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path);
    }
    let server = data_dir::default_data_dir().map(|dir| dir.join("kubeconfig"));
    let home = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config"));
    server
        .into_iter()
        .chain(home)
        .find(|path| path.is_file())
        .context("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run skiff server here")
}

/// The exit code a command's final Status stands for, as kubectl reads
/// it; otherwise the message to print.
fn exit_code(status: Option<&Status>) -> Result<u8, String> {
    let Some(status) = status else {
        return Err("the connection ended before the command's status arrived".into());
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|details| details.causes.as_ref())
            .into_iter()
            .flatten()
            .find(|cause| cause.reason.as_deref() == Some("ExitCode"))
            .and_then(|cause| cause.message.as_deref()?.parse::<u8>().ok());
        return code.ok_or_else(|| "the command's exit code is missing from its status".into());
    }
    Err(status
        .message
        .clone()
        .unwrap_or_else(|| "the command failed without a message".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(value: serde_json::Value) -> Status {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn exit_codes_come_from_the_status() {
        assert_eq!(
            exit_code(Some(&status(
                serde_json::json!({"metadata": {}, "status": "Success"})
            ))),
            Ok(0)
        );
        assert_eq!(
            exit_code(Some(&status(serde_json::json!({
                "status": "Failure", "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            })))),
            Ok(3)
        );
        assert_eq!(
            exit_code(Some(&status(serde_json::json!({
                "status": "Failure", "code": 400,
                "message": "exec is not supported for Wasm pods",
            })))),
            Err("exec is not supported for Wasm pods".to_owned())
        );
        assert!(exit_code(None).is_err());
    }
}
