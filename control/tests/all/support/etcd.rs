//! A throwaway etcd for tests: Debian's `etcd` on free loopback ports with a
//! fresh data dir, fsync on, killed and removed when dropped. Each
//! [`EtcdProcess`] is a cluster of its own, so tests can run in parallel.

use std::ffi::OsStr;
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use tempfile::TempDir;

/// How long a fresh etcd gets to elect itself and answer a read.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// Fresh ports to try when another process took ours between picking and
/// binding them.
const START_ATTEMPTS: usize = 3;
/// etcd's member name; it only has to match `--initial-cluster`.
const MEMBER: &str = "skiff-test";

/// A running single-member etcd. Dropping it kills the process, waits for it
/// and deletes its data dir.
pub struct EtcdProcess {
    child: Child,
    endpoint: String,
    /// Holds the data dir and the log; dropped after the process is reaped.
    _dir: TempDir,
}

impl EtcdProcess {
    /// Starts etcd and returns once it answers a linearizable read (so it has
    /// elected itself leader), usually within a second. It blocks the calling
    /// thread meanwhile, which a multi-thread tokio test tolerates. Panics
    /// with the log's path and tail if etcd cannot start, and with a clear
    /// message if `etcd` is not installed.
    pub fn start() -> EtcdProcess {
        let binary = find_on_path("etcd").unwrap_or_else(|| {
            panic!(
                "`etcd` is not on PATH: install Debian's etcd-server (`make deps`) \
                 to run the tests that need a real etcd"
            )
        });
        for attempt in 1..=START_ATTEMPTS {
            match try_start(&binary) {
                Ok(etcd) => return etcd,
                Err(failure) if failure.port_taken() && attempt < START_ATTEMPTS => {
                    eprintln!(
                        "etcd lost a race for its ports, retrying: {}",
                        failure.log.display()
                    );
                }
                Err(failure) => failure.panic(),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The client endpoint, `127.0.0.1:<port>`, as `EtcdConfig::endpoints`
    /// takes it.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        // Errors mean the process is already gone, which is what we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why one start attempt failed, with what to show the developer.
struct StartFailure {
    what: String,
    /// The log, in a temporary dir that is kept on failure.
    log: PathBuf,
}

impl StartFailure {
    fn port_taken(&self) -> bool {
        std::fs::read_to_string(&self.log)
            .map(|log| log.contains("address already in use"))
            .unwrap_or(false)
    }

    fn panic(self) -> ! {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "etcd did not start: {}\nlog: {}\n--- last lines ---\n{}",
            self.what,
            self.log.display(),
            tail.join("\n")
        );
    }
}

/// One try at starting etcd on freshly picked ports.
fn try_start(binary: &Path) -> Result<EtcdProcess, StartFailure> {
    let dir = TempDir::with_prefix("skiff-etcd-").expect("create a temporary dir for etcd");
    let log = dir.path().join("etcd.log");
    let [client_port, peer_port] = free_ports();
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let log_file = File::create(&log).expect("create etcd's log file");
    let log_file_too = log_file.try_clone().expect("share etcd's log file");

    let mut command = Command::new(binary);
    command
        .arg("--name")
        .arg(MEMBER)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("{MEMBER}={peer_url}")])
        .args(["--initial-cluster-state", "new"])
        // A single member on loopback: elect fast. This also brings
        // etcd's minimum lease TTL down from 2 s to 1 s.
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .args([
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            "--log-level",
            "warn",
        ])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_file_too);
    // Flags only: an ETCD_* variable of the developer's must not leak in.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCD_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()));

    let endpoint = format!("127.0.0.1:{client_port}");
    match wait_until_ready(&mut child, &endpoint) {
        Ok(()) => Ok(EtcdProcess {
            child,
            endpoint,
            _dir: dir,
        }),
        Err(what) => {
            let _ = child.kill();
            let _ = child.wait();
            // Keep the dir so that the log can be read.
            let _ = dir.keep();
            Err(StartFailure { what, log })
        }
    }
}

/// Two distinct ports that were free a moment ago. They are released before
/// etcd binds them, so another process may win one; `start` then retries.
fn free_ports() -> [u16; 2] {
    let bind = || TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    let (client, peer) = (bind(), bind());
    let port = |listener: &TcpListener| listener.local_addr().expect("local address").port();
    [port(&client), port(&peer)]
}

/// Polls etcd with a linearizable read until it answers, the process exits
/// or [`READY_WITHIN`] passes. Runs its own runtime on a scoped thread so
/// that it works from sync code and from inside a tokio test alike.
fn wait_until_ready(child: &mut Child, endpoint: &str) -> Result<(), String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build a runtime to poll etcd");
                runtime.block_on(poll_ready(child, endpoint))
            })
            .join()
            .unwrap_or_else(|_| Err("the readiness poller panicked".to_owned()))
    })
}

async fn poll_ready(child: &mut Child, endpoint: &str) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(Duration::from_secs(1));
    loop {
        if let Some(status) = exited(child) {
            return Err(format!("etcd exited with {status}"));
        }
        let last_error = match Client::connect([endpoint], Some(options.clone())).await {
            Ok(mut client) => match client.get("skiff-test-readiness", None).await {
                Ok(_) => return Ok(()),
                Err(error) => error,
            },
            Err(error) => error,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "no answer on {endpoint} within {READY_WITHIN:?} (last error: {last_error})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn exited(child: &mut Child) -> Option<ExitStatus> {
    child.try_wait().ok().flatten()
}

/// The first executable called `name` in a `PATH` directory.
fn find_on_path(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name.as_ref()))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
