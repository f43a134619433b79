//! `skiff`, the one binary: `skiff server` runs the control plane (and by
//! default a local agent), `skiff agent` runs a node. This crate only parses
//! flags and composes the library crates; the logic lives in them.

mod cli;
mod data_dir;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// Exit code of a subcommand that is not implemented yet (as for usage errors).
const EXIT_NOT_IMPLEMENTED: u8 = 2;

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
            let store = match &args.store {
                Some(etcd) => format!("etcd {}", etcd.endpoint_addresses().join(",")),
                None => "embedded".to_owned(),
            };
            let agent = if args.no_agent { "none" } else { "local" };
            eprintln!(
                "skiff server: not implemented yet; the API server is in progress.\n\
                 would listen on {} (data dir {}, store {store}, agent {agent})",
                args.listen,
                data_dir.display(),
            );
            Ok(ExitCode::from(EXIT_NOT_IMPLEMENTED))
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
    }
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
