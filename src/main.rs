//! `skiff`, the one binary: `skiff server` runs the control plane (and by
//! default a local agent), `skiff agent` runs a node, `skiff exec` runs a
//! command in a pod, `skiff push` and `skiff pull` move Wasm binaries to
//! and from OCI registries. This crate
//! only parses flags and composes the library crates; the logic lives in
//! them.

mod artifact;
mod cli;
mod data_dir;
mod exec;
mod node;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use skiff_control::apiserver::auth::Identity;
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
        Command::Server(mut args) => {
            raise_open_files_limit();
            let data_dir = resolve_data_dir(args.data_dir.clone())?;
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
                .data_dir(&data_dir)
                .listen(args.listen)
                .store(match args.store.take() {
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
            runtime.block_on(run_server(options, args, data_dir))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent(args) => {
            raise_open_files_limit();
            let data_dir = resolve_data_dir(args.data_dir.clone())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(run_agent(args, data_dir))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec(args) => exec::run(args),
        Command::Push(args) => artifact::push(args),
        Command::Pull(args) => artifact::pull(args),
    }
}

/// Raises the soft limit on open files to the hard one, as containerd's
/// and the kubelet's units do: every idle pod holds a listener and a log
/// file, and every watcher a connection (1,024, the usual soft limit, is
/// a few hundred pods).
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(error) => tracing::warn!(%error, "raising the open files limit failed"),
    }
}

/// `skiff server`: the control plane and, unless `--no-agent`, the local
/// agent, until SIGTERM; the agent stops first (reporting its node not
/// ready), then the server.
async fn run_server(
    options: ServerOptions,
    args: cli::ServerArgs,
    data_dir: PathBuf,
) -> anyhow::Result<()> {
    let shutdown = shutdown_signal().context("installing signal handlers")?;
    let mut running = skiff_control::server::start(options)
        .await
        .context("skiff server failed to start")?;
    let mut agent = if args.no_agent {
        None
    } else {
        let agent = local_agent(&running, &args, &data_dir)
            .await
            .context("starting the local agent")?;
        Some(agent)
    };
    skiff_control::server::announce(&running);
    let agent_ended = async {
        match &mut agent {
            Some((_, task)) => task.await,
            None => std::future::pending().await,
        }
    };
    enum Ended {
        Shutdown,
        Server(Result<(), skiff_control::server::ServerError>),
        Agent(Result<anyhow::Result<()>, tokio::task::JoinError>),
    }
    let ended = tokio::select! {
        () = shutdown => Ended::Shutdown,
        result = running.failed() => Ended::Server(result),
        result = agent_ended => Ended::Agent(result),
    };
    match ended {
        Ended::Shutdown => {
            tracing::info!("shutdown requested");
            if let Some((stop, task)) = agent {
                stop.send_replace(true);
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::error!(error = %format!("{error:#}"), "the local agent failed");
                    }
                    Err(error) => tracing::error!(%error, "the local agent's task failed"),
                }
            }
            running.stop().await.context("skiff server failed")
        }
        Ended::Server(result) => result.context("skiff server failed"),
        Ended::Agent(result) => {
            // A server asked to run a node that cannot is not half-running.
            let _ = running.stop().await;
            match result {
                Ok(Ok(())) => anyhow::bail!("the local agent stopped"),
                Ok(Err(error)) => Err(error.context("the local agent failed")),
                Err(error) => {
                    Err(anyhow::Error::from(error).context("the local agent's task failed"))
                }
            }
        }
    }
}

/// The agent of `skiff server`'s own node, in-process: it reaches the API
/// through the server's in-process service as its node identity.
async fn local_agent(
    running: &skiff_control::server::RunningServer,
    args: &cli::ServerArgs,
    data_dir: &std::path::Path,
) -> anyhow::Result<(
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let listen = running.local_addr().ip();
    let node_ip = args.node.node_ip.unwrap_or(if listen.is_unspecified() {
        node::node_ip_towards(running.api_url())
    } else {
        listen
    });
    let agent_dir = data_dir.join("agent");
    std::fs::create_dir_all(&agent_dir)
        .with_context(|| format!("creating {}", agent_dir.display()))?;
    let options = node::options(&args.node, node_ip, None, &agent_dir);
    let name = options.node_name().to_owned();
    let bootstrap = running
        .node_bootstrap(&name, &[node_ip.to_string()])
        .context("issuing the local node's credentials")?;
    let client =
        skiff_sdk::client::in_process(running.in_process_service(Identity::Node(name)), "default");
    let runtimes = node::runtimes(&agent_dir, node_ip, &args.node.containerd_socket).await?;
    let credentials = skiff_node::agent::AgentCredentials {
        token: bootstrap.token,
        serving_certificate_pem: bootstrap.serving_certificate_pem,
        serving_key_pem: bootstrap.serving_key_pem,
    };
    let (stop, mut stopping) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        skiff_node::agent::run(client, runtimes, credentials, options, async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
        .await
        .map_err(anyhow::Error::from)
    });
    Ok((stop, task))
}

/// `skiff agent`: joins the server, then runs the node until SIGTERM.
async fn run_agent(args: cli::AgentArgs, data_dir: PathBuf) -> anyhow::Result<()> {
    let shutdown = shutdown_signal().context("installing signal handlers")?;
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("reading the join token {}", args.token_file.display()))?;
    let node_ip = args
        .node
        .node_ip
        .unwrap_or_else(|| node::node_ip_towards(&args.server));
    let options = node::options(&args.node, node_ip, args.listen, &data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let joined = skiff_node::bootstrap::join(
        &args.server,
        &token,
        args.ca_file.as_deref(),
        options.node_name(),
        &[node_ip.to_string()],
        &data_dir,
    )
    .await
    .with_context(|| format!("joining {}", args.server))?;
    let runtimes = node::runtimes(&data_dir, node_ip, &args.node.containerd_socket).await?;
    skiff_node::agent::run(
        joined.client,
        runtimes,
        joined.credentials,
        options,
        shutdown,
    )
    .await
    .context("skiff agent failed")
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
