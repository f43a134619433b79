//! The runtime conformance suite (`skiff_sdk::runtime::conformance`) on
//! containerd: each scenario gets a runtime of its own (own state
//! directory, own containerd namespace) over the binary's containerd, and
//! runs its workloads as busybox shell commands.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use skiff_runtime_oci::{OciRuntime, OciRuntimeOptions};
use skiff_sdk::runtime::conformance::{ExecWorkload, Fixture, Workload, WorkloadSpec};
use skiff_sdk::runtime::{ImageSpec, PullOptions, Runtime};

use crate::support::busybox::{self, Layout};
use crate::support::containerd::{TestContainerd, namespace};
use crate::support::registry::TestRegistry;

struct OciFixture {
    dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    namespace: String,
    runtime: Mutex<Option<Arc<dyn Runtime>>>,
    image: String,
    pull_options: PullOptions,
    _registry: TestRegistry,
}

impl OciFixture {
    async fn new() -> OciFixture {
        crate::support::init_tracing();
        assert!(
            busybox::available(),
            "/bin/busybox is not installed (Debian package busybox-static): run `make deps`"
        );
        let containerd = TestContainerd::shared()
            .expect("the conformance suite needs root and containerd (`make deps`)");
        let registry = TestRegistry::start().expect("docker-registry (`make deps`)");
        let image = busybox::push_busybox(&registry, "busybox:v1", Layout::SinglePlatform, None)
            .await
            .reference;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let unique: String = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let namespace = namespace(&format!("conformance-{unique}"));
        let fixture = OciFixture {
            socket: containerd.socket().to_owned(),
            namespace,
            runtime: Mutex::new(None),
            image,
            pull_options: registry.pull_options(),
            _registry: registry,
            dir,
        };
        let runtime = fixture.open().await;
        *fixture.runtime.lock().unwrap() = Some(runtime);
        fixture
    }

    async fn open(&self) -> Arc<dyn Runtime> {
        let options = OciRuntimeOptions::new(self.dir.path().join("state"))
            .socket(&self.socket)
            .namespace(&self.namespace)
            .cgroup_parent(format!("/skiff-test/{}", self.namespace));
        Arc::new(
            OciRuntime::open(options)
                .await
                .expect("open the OCI runtime"),
        )
    }
}

/// What a failed scenario left: the sandboxes' namespace mounts (which
/// would keep the temporary directory from being removed) and the
/// fixture's cgroups. Containers and tasks go with the namespace, which
/// the next run's containerd never sees.
impl Drop for OciFixture {
    fn drop(&mut self) {
        let sandboxes = self.dir.path().join("state/sandboxes");
        for entry in std::fs::read_dir(&sandboxes)
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = skiff_runtime_oci::sandbox::SandboxDir::new(entry.path()).remove();
        }
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(hierarchy.path().join("skiff-test").join(&self.namespace));
        }
    }
}

#[async_trait]
impl Fixture for OciFixture {
    fn runtime(&self) -> Arc<dyn Runtime> {
        self.runtime
            .lock()
            .unwrap()
            .clone()
            .expect("the runtime is open")
    }

    async fn reopen(&self) -> Arc<dyn Runtime> {
        let old = self.runtime.lock().unwrap().take();
        drop(old);
        let runtime = self.open().await;
        *self.runtime.lock().unwrap() = Some(runtime.clone());
        runtime
    }

    fn handler(&self) -> &str {
        "runc"
    }

    fn workload(&self, workload: &Workload) -> WorkloadSpec {
        let sh = |script: &str| vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()];
        let (command, args): (Vec<String>, Vec<String>) = match workload {
            Workload::Exit(code) => (sh(&format!("exit {code}")), Vec::new()),
            Workload::Print { stdout, stderr } => (
                sh(r#"printf '%s' "$0"; printf '%s' "$1" >&2"#),
                vec![stdout.clone(), stderr.clone()],
            ),
            Workload::PrintArgs(args) => {
                let mut command = sh(r#"for a in "$@"; do echo "$a"; done"#);
                command.push("sh".to_owned());
                (command, args.clone())
            }
            // Debian's busybox has no printenv: the shell's own builtins.
            Workload::PrintEnv(name) => (
                sh(r#"eval "[ -n \"\${$0+set}\" ]" || exit 1; eval "printf '%s\n' \"\$$0\"""#),
                vec![name.clone()],
            ),
            Workload::WriteFile { path, content } => (
                sh(r#"printf '%s' "$1" > "$0""#),
                vec![path.clone(), content.clone()],
            ),
            Workload::ReadFile { path } => (vec!["cat".to_owned(), path.clone()], Vec::new()),
            Workload::Sleep => (
                sh("trap 'exit 0' TERM; echo ready; while :; do sleep 1 & wait $!; done"),
                Vec::new(),
            ),
            Workload::IgnoreStop => (
                sh("trap '' TERM; echo ready; while :; do sleep 1; done"),
                Vec::new(),
            ),
        };
        WorkloadSpec {
            image: ImageSpec::new(&self.image),
            command,
            args,
        }
    }

    fn pull_options(&self) -> PullOptions {
        self.pull_options.clone()
    }

    fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    fn exec_command(&self, exec: &ExecWorkload) -> Option<Vec<String>> {
        let ExecWorkload::Echo { stderr, code } = exec;
        Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            r#"cat; printf '%s' "$0" >&2; exit "$1""#.to_owned(),
            stderr.clone(),
            code.to_string(),
        ])
    }
}

skiff_sdk::runtime_conformance!(
    #[ignore = "needs root, containerd and docker-registry"]
    fixture = OciFixture::new()
);
