//! A `docker-registry` (Debian's) on a free 127.0.0.1 port, serving from a
//! temporary directory, killed and cleaned up when dropped. A minimal copy
//! of the runtime crate's test registry: test crates do not share modules.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where Debian installs the registry (`make deps` does).
const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// A directory under the system's temporary directory, removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(purpose: &str) -> ScratchDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("skiff-{purpose}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("a scratch directory");
        ScratchDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running registry.
pub struct Registry {
    process: Child,
    address: SocketAddr,
    _dir: ScratchDir,
}

impl Registry {
    /// Starts a registry, or returns `None` (having said why) when
    /// docker-registry is not installed and `SKIFF_TEST_REAL` is unset; with
    /// `SKIFF_TEST_REAL` set (`make test`) a missing registry fails.
    pub fn start() -> Option<Registry> {
        if !Path::new(DOCKER_REGISTRY).exists() {
            assert!(
                std::env::var_os("SKIFF_TEST_REAL").is_none(),
                "SKIFF_TEST_REAL is set but {DOCKER_REGISTRY} is missing: run `make deps`"
            );
            eprintln!(
                "skipping: {DOCKER_REGISTRY} is not installed (Debian package docker-registry)"
            );
            return None;
        }
        let dir = ScratchDir::new("registry");
        let mut log = String::new();
        for _attempt in 0..3 {
            let address = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n\
                     http:\n  addr: {address}\n  secret: skiff-test-secret\n",
                    dir.path().join("storage").display()
                ),
            )
            .expect("registry config");
            let log_path = dir.path().join("registry.log");
            let log_file = std::fs::File::create(&log_path).expect("registry log");
            let mut process = Command::new(DOCKER_REGISTRY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("log file"))
                .stderr(log_file)
                .spawn()
                .expect("spawn docker-registry");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = process.try_wait() {
                    break;
                }
                if answers(address) {
                    return Some(Registry {
                        process,
                        address,
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = process.kill();
            let _ = process.wait();
            log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("docker-registry did not start; its log:\n{log}");
    }

    /// `127.0.0.1:PORT/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.address)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Whether `/v2/` answers 200.
fn answers(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}
