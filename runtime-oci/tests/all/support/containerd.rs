//! The containerd of this test binary, shared by its tests: the one at
//! `$SKIFF_TEST_CONTAINERD` (a socket path) when that is set, else a private
//! one started on first use by `scripts/containerd.sh` with everything
//! (root, state, socket) in a temporary directory and the CRI plugin off.
//!
//! The private one runs under a small `sh` watchdog in its own process
//! group, whose stdin is a pipe only this process writes to. When this
//! process ends, however it ends, the kernel closes that pipe; the watchdog
//! sees end-of-file and runs `scripts/containerd.sh stop`, which deletes the
//! tasks and containers of every namespace, stops containerd, unmounts what
//! is left under the directory (snapshots, task root filesystems) and
//! removes it. So containerd never outlives the tests, and an interrupt of
//! the terminal (which does not reach the watchdog's group) still cleans up.
//!
//! Each test works in a namespace of its own (`namespace`), so that lists
//! and garbage collection of one test do not see another's images.

use std::io::BufRead as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use skiff_runtime_oci::client::Containerd;

/// Where Debian installs containerd (`make deps` does).
const CONTAINERD: &str = "/usr/bin/containerd";

/// The environment variable naming the socket of a containerd to use
/// instead of starting one.
const SOCKET_VARIABLE: &str = "SKIFF_TEST_CONTAINERD";

/// Where containerd's runc shims keep runc's state, a directory per
/// namespace (outside containerd's own directories).
const RUNC_ROOT: &str = "/run/containerd/runc";

/// The script that starts and stops a private containerd.
/// `scripts/containerd.sh`, from runtime-oci's directory or from the
/// workspace root (the agent benchmark includes this module too).
fn script() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let at_root = here.join("scripts/containerd.sh");
    if at_root.exists() {
        at_root
    } else {
        here.join("../scripts/containerd.sh")
    }
}

/// Starts containerd through the script, says `ready <socket>` on stdout,
/// then waits for its stdin to close and stops it. `$1` is the script, `$2`
/// the directory.
const WATCHDOG: &str = r#"
script="$1" dir="$2"
if ! socket="$("$script" start "$dir")"; then
    "$script" stop "$dir"
    exit 1
fi
echo "ready $socket"
# Until the test process is gone: then its end of our stdin closes.
cat >/dev/null
exec "$script" stop "$dir"
"#;

/// A containerd the tests can use.
pub struct TestContainerd {
    socket: PathBuf,
    /// The directory of a containerd this binary started.
    dir: Option<PathBuf>,
    /// The watchdog and the write end of its stdin, held until the process
    /// ends.
    _watchdog: Option<(Child, ChildStdin)>,
}

static SHARED: OnceLock<Option<TestContainerd>> = OnceLock::new();

impl TestContainerd {
    /// The containerd of this test binary, started on first use. `None`
    /// (having said why) when the tests that need it are to be skipped:
    /// not root or no containerd installed, and `SKIFF_TEST_REAL` unset.
    /// With `SKIFF_TEST_REAL` set (`make test`) that is a failure.
    pub fn shared() -> Option<&'static TestContainerd> {
        SHARED.get_or_init(TestContainerd::start).as_ref()
    }

    fn start() -> Option<TestContainerd> {
        if let Some(socket) = std::env::var_os(SOCKET_VARIABLE) {
            let socket = PathBuf::from(socket);
            assert!(
                socket.exists(),
                "{SOCKET_VARIABLE}={} names no socket",
                socket.display()
            );
            return Some(TestContainerd {
                socket,
                dir: None,
                _watchdog: None,
            });
        }
        if !Path::new(CONTAINERD).exists() {
            super::skip_or_fail(&format!(
                "{CONTAINERD} is not installed (Debian packages containerd, runc; `make deps`)"
            ));
            return None;
        }
        if !is_root() {
            super::skip_or_fail("containerd needs root");
            return None;
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("skiff-containerd-{}-{nanos}", std::process::id()));
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("skiff-test-containerd")
            .arg(script())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Out of the terminal's process group: an interrupt of the
            // tests does not stop the watchdog before it cleans up.
            .process_group(0)
            .spawn()
            .expect("spawn the containerd watchdog");
        let stdin = watchdog.stdin.take().expect("the watchdog's stdin");
        let mut line = String::new();
        std::io::BufReader::new(watchdog.stdout.take().expect("the watchdog's stdout"))
            .read_line(&mut line)
            .expect("read from the containerd watchdog");
        let Some(socket) = line.trim_end().strip_prefix("ready ") else {
            panic!(
                "containerd did not start in {} (scripts/containerd.sh said why above)",
                dir.display()
            );
        };
        Some(TestContainerd {
            socket: PathBuf::from(socket),
            dir: Some(dir),
            _watchdog: Some((watchdog, stdin)),
        })
    }

    /// The socket containerd serves on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// containerd's root directory (content, snapshots), when this binary
    /// started it.
    pub fn root(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join("root"))
    }

    /// A connection in `namespace`.
    pub async fn connect(&self, namespace: &str) -> Containerd {
        Containerd::connect(&self.socket, namespace)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "connect to containerd at {}: {}",
                    self.socket.display(),
                    skiff_sdk::error_chain(&error)
                )
            })
    }

    /// Runs `ctr` against this containerd in `namespace` and returns its
    /// output (for checks, and to look around while developing).
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> String {
        let output = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(namespace)
            .args(args)
            .output()
            .expect("run ctr");
        assert!(
            output.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Removes `namespace` if it is empty (best effort: a shared
    /// `SKIFF_TEST_CONTAINERD` is left as found), with the directory the
    /// shims keep runc's state of its containers in.
    pub fn remove_namespace(&self, namespace: &str) {
        let _ = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["namespaces", "remove", namespace])
            .output();
        // Only when empty: containers of the namespace may still run.
        let _ = std::fs::remove_dir(Path::new(RUNC_ROOT).join(namespace));
    }
}

/// A containerd namespace of this test process for `test`: valid for
/// containerd (letters, digits, `-`), unique per process so that tests
/// against a shared `SKIFF_TEST_CONTAINERD` do not meet.
pub fn namespace(test: &str) -> String {
    format!(
        "skiff-test-{}-{}",
        std::process::id(),
        test.replace('_', "-")
    )
}

/// Whether this process runs as root (from /proc, without unsafe code).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
