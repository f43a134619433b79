//! `skiff`, the one binary: `skiff server` runs the control plane (and by
//! default a local agent), `skiff agent` runs a node, `skiff push` and
//! `skiff pull` move Wasm binaries to and from OCI registries. This crate
//! only parses flags and composes the library crates; the logic lives in
//! them.

mod artifact;
mod cli;
mod data_dir;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use skiff_control::apiserver::defaults::Admission;
use skiff_control::controllers::ControllerOptions;
use skiff_control::server::{LocalAgent, ServerOptions, StoreBackend, Transport};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// mimalloc instead of glibc malloc: the API server allocates per request
/// from many threads, where glibc's arenas cost it a quarter of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code of a subcommand that is not implemented yet (as for usage errors).
const EXIT_NOT_IMPLEMENTED: u8 = 2;
/// Exit code when a second SIGTERM/SIGINT cuts the graceful shutdown short
/// (128 + SIGINT, as shells report an interrupted process).
const EXIT_SECOND_SIGNAL: i32 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("skiff: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand; the exit code tells how it ended.
fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Version => {
            println!("skiff {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Server(args) => {
            let data_dir = resolve_data_dir(args.data_dir)?;
            let controllers = ControllerOptions {
                node_monitor_grace_period: Duration::from_secs(args.node_monitor_grace_period),
                cluster_cidr: args.cluster_cidr.clone(),
                ..ControllerOptions::default()
            };
            let options = ServerOptions::default()
                .controllers(Some(controllers))
                .admission(Admission {
                    not_ready_toleration_seconds: args.default_not_ready_toleration_seconds,
                    unreachable_toleration_seconds: args.default_unreachable_toleration_seconds,
                })
                .data_dir(data_dir)
                .listen(args.listen)
                .store(match args.store {
                    Some(etcd) => StoreBackend::Etcd(etcd),
                    None => StoreBackend::Embedded,
                })
                .transport(if args.insecure_http {
                    Transport::InsecureHttp
                } else {
                    Transport::Https
                })
                .local_agent(if args.no_agent {
                    LocalAgent::Disabled
                } else {
                    LocalAgent::Enabled
                });
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(async {
                let shutdown = shutdown_signal().context("installing signal handlers")?;
                skiff_control::server::run(options, shutdown)
                    .await
                    .context("skiff server failed")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent(args) => {
            let data_dir = resolve_data_dir(args.data_dir)?;
            eprintln!(
                "skiff agent: not implemented yet; the node agent is in progress.\n\
                 would join {} (data dir {})",
                args.server,
                data_dir.display(),
            );
            Ok(ExitCode::from(EXIT_NOT_IMPLEMENTED))
        }
        Command::Push(args) => artifact::push(args),
        Command::Pull(args) => artifact::pull(args),
    }
}

/// Resolves on the first SIGTERM or SIGINT, so that the server shuts down
/// gracefully; a second one exits at once, for when that takes too long.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (first, first_received) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut first = Some(first);
        loop {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            match first.take() {
                Some(first) => {
                    tracing::info!(
                        signal = name,
                        "shutting down; send it again to exit at once"
                    );
                    let _ = first.send(());
                }
                None => {
                    tracing::warn!(
                        signal = name,
                        "second signal: exiting without a clean shutdown"
                    );
                    std::process::exit(EXIT_SECOND_SIGNAL);
                }
            }
        }
    });
    Ok(async move {
        // An error means the watcher task is gone, which only happens
        // when the runtime shuts down: stop as well.
        let _ = first_received.await;
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// `--data-dir` when given, else the default for this user.
fn resolve_data_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    flag.or_else(data_dir::default_data_dir)
        .context("no data directory: pass --data-dir, or set HOME or XDG_DATA_HOME")
}
