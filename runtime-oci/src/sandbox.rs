//! A pod's sandbox without a pause container: its IPC and UTS namespaces
//! are created once and kept alive by bind mounts on files in the
//! sandbox's directory (as `ip netns` keeps network namespaces), and every
//! container of the pod joins them by path. The directory also holds the
//! files mounted at `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
//!
//! ```text
//! <sandbox dir>/ipc          nsfs bind mount: the pod's IPC namespace
//! <sandbox dir>/uts          nsfs bind mount: the pod's UTS namespace (hostname)
//! <sandbox dir>/hosts, hostname, resolv.conf
//! ```
//!
//! Until pods get network namespaces, containers use the node's network.

use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use skiff_sdk::runtime::RuntimeError;

use crate::spec::SandboxView;

/// Where the namespaces and files of one sandbox live.
#[derive(Clone, Debug)]
pub struct SandboxDir {
    dir: PathBuf,
}

impl SandboxDir {
    /// The sandbox kept in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The sandbox's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn ipc(&self) -> PathBuf {
        self.dir.join("ipc")
    }

    fn uts(&self) -> PathBuf {
        self.dir.join("uts")
    }

    /// Creates the directory, the pod's namespaces (the UTS one named
    /// `hostname`) and its files. Root only.
    pub async fn create(&self, hostname: &str, pod_ip: IpAddr) -> Result<(), RuntimeError> {
        fs::create_dir_all(&self.dir).map_err(|e| RuntimeError::io(&self.dir, e))?;
        let files = [
            ("hostname", format!("{hostname}\n")),
            ("hosts", hosts_file(hostname, pod_ip)),
            (
                "resolv.conf",
                fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            ),
        ];
        for (name, content) in files {
            write_atomically(&self.dir.join(name), content.as_bytes())?;
        }
        let (ipc, uts, hostname) = (self.ipc(), self.uts(), hostname.to_owned());
        // Namespaces are unshared by a thread of its own, which ends right
        // after: the bind mounts keep them alive, and no other thread of
        // the agent ever enters them.
        tokio::task::spawn_blocking(move || {
            std::thread::spawn(move || persist_namespaces(&ipc, &uts, &hostname))
                .join()
                .unwrap_or_else(|_| {
                    Err(RuntimeError::Backend {
                        operation: "create the sandbox's namespaces",
                        source: "the thread creating them panicked".into(),
                    })
                })
        })
        .await
        .map_err(|e| RuntimeError::Backend {
            operation: "create the sandbox's namespaces",
            source: e.into(),
        })?
    }

    /// Whether the namespaces are still there (they are not after the
    /// node rebooted).
    pub fn namespaces_alive(&self) -> bool {
        [self.ipc(), self.uts()].iter().all(|path| is_nsfs(path))
    }

    /// Releases the namespaces and removes the directory. Idempotent.
    pub fn remove(&self) -> Result<(), RuntimeError> {
        for path in [self.ipc(), self.uts()] {
            while is_nsfs(&path) {
                if let Err(errno) = nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
                    return Err(RuntimeError::io(&path, std::io::Error::from(errno)));
                }
            }
        }
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io(&self.dir, e)),
        }
    }

    /// What the sandbox's containers are given; `cgroups_path` is the
    /// container's.
    pub fn view(&self, cgroups_path: String, hostname: String) -> SandboxView {
        SandboxView {
            ipc_namespace: self.ipc(),
            uts_namespace: self.uts(),
            network_namespace: None,
            hosts_file: self.dir.join("hosts"),
            hostname_file: self.dir.join("hostname"),
            resolv_conf: self.dir.join("resolv.conf"),
            cgroups_path,
            hostname,
        }
    }
}

/// On the calling thread: new IPC and UTS namespaces, the hostname set in
/// the UTS one, both bind-mounted on `ipc` and `uts`.
fn persist_namespaces(ipc: &Path, uts: &Path, hostname: &str) -> Result<(), RuntimeError> {
    let failed = |what: &'static str| {
        move |errno: nix::errno::Errno| RuntimeError::Backend {
            operation: what,
            source: Box::new(std::io::Error::from(errno)),
        }
    };
    nix::sched::unshare(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)
        .map_err(failed("unshare the sandbox's IPC and UTS namespaces"))?;
    nix::unistd::sethostname(hostname).map_err(failed("set the sandbox's hostname"))?;
    let thread = nix::unistd::gettid();
    for (kind, target) in [("ipc", ipc), ("uts", uts)] {
        fs::File::create(target).map_err(|e| RuntimeError::io(target, e))?;
        let source = PathBuf::from(format!("/proc/self/task/{thread}/ns/{kind}"));
        nix::mount::mount(
            Some(&source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(failed("bind-mount a sandbox namespace"))?;
    }
    Ok(())
}

/// Whether `path` is a bind-mounted namespace.
fn is_nsfs(path: &Path) -> bool {
    // NSFS_MAGIC, from linux/magic.h.
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 == NSFS_MAGIC)
}

/// `/etc/hosts` as the kubelet writes it for a pod.
fn hosts_file(hostname: &str, pod_ip: IpAddr) -> String {
    format!(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n\
         {pod_ip}\t{hostname}\n"
    )
}

/// Writes `content` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, content: &[u8]) -> Result<(), RuntimeError> {
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary).map_err(|e| RuntimeError::io(&temporary, e))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|e| RuntimeError::io(&temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| RuntimeError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names_the_pod() {
        let hosts = hosts_file("web-0", "10.1.2.3".parse().unwrap());
        assert!(hosts.contains("127.0.0.1\tlocalhost\n"));
        assert!(hosts.ends_with("10.1.2.3\tweb-0\n"));
    }

    /// Needs root (unshare and mount): skipped otherwise.
    #[tokio::test]
    async fn namespaces_persist_until_removed() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let sandbox = SandboxDir::new(dir.path().join("s1"));
        sandbox
            .create("pod-one", "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        assert!(sandbox.namespaces_alive());
        // The pod's hostname is in the pod's UTS namespace only.
        let output = std::process::Command::new("nsenter")
            .arg(format!("--uts={}", sandbox.uts().display()))
            .arg("hostname")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "pod-one\n");
        assert_ne!(nix::unistd::gethostname().unwrap(), "pod-one");
        assert_eq!(
            fs::read_to_string(sandbox.path().join("hostname")).unwrap(),
            "pod-one\n"
        );
        sandbox.remove().unwrap();
        assert!(!sandbox.path().exists());
        sandbox.remove().unwrap();
    }
}
