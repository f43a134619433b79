//! The runtime conformance suite of `skiff-sdk` against the Wasm runtime,
//! twice: with the task guest as a WASI 0.2 component and as a WASI 0.1
//! core module. Images come from a real registry (Debian's
//! `docker-registry` on a loopback port), as on a node.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::support::registry::TestRegistry;
use async_trait::async_trait;
use skiff_runtime_wasm::{WasmRuntime, WasmRuntimeOptions};
use skiff_sdk::runtime::conformance::{Fixture, Workload, WorkloadSpec};
use skiff_sdk::runtime::{ImageSpec, PullOptions, Runtime};

/// A Wasm runtime over a private state directory, and a registry holding
/// the task guest.
struct WasmFixture {
    dir: tempfile::TempDir,
    runtime: Mutex<Option<Arc<dyn Runtime>>>,
    image: String,
    _registry: TestRegistry,
}

impl WasmFixture {
    async fn new(guest: &str, repository: &str) -> WasmFixture {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        tracing::debug!("fixture: starting a registry");
        let registry = TestRegistry::start().await;
        tracing::debug!("fixture: pushing");
        let image = registry
            .push(
                &format!("{repository}:v1"),
                &skiff_test_guests::bytes(guest),
            )
            .await;
        tracing::debug!("fixture: opening");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runtime = open(dir.path()).await;
        tracing::debug!("fixture: ready");
        WasmFixture {
            dir,
            runtime: Mutex::new(Some(runtime)),
            image,
            _registry: registry,
        }
    }
}

async fn open(dir: &Path) -> Arc<dyn Runtime> {
    // One cache of compiled code for all scenarios (and runs): the guest is
    // compiled once, not once per fixture.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-compile-cache");
    let options = WasmRuntimeOptions::new(dir.join("state"))
        .max_instances(16)
        .compile_cache_dir(cache);
    Arc::new(
        WasmRuntime::open(options)
            .await
            .expect("open the Wasm runtime"),
    )
}

#[async_trait]
impl Fixture for WasmFixture {
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
        let runtime = open(self.dir.path()).await;
        *self.runtime.lock().unwrap() = Some(runtime.clone());
        runtime
    }

    fn handler(&self) -> &str {
        "wasmtime"
    }

    fn workload(&self, workload: &Workload) -> WorkloadSpec {
        let args: Vec<String> = match workload {
            Workload::Exit(code) => vec!["exit".into(), code.to_string()],
            Workload::Print { stdout, stderr } => {
                vec!["print".into(), stdout.clone(), stderr.clone()]
            }
            Workload::PrintArgs(args) => std::iter::once("args".to_owned())
                .chain(args.iter().cloned())
                .collect(),
            Workload::PrintEnv(name) => vec!["env".into(), name.clone()],
            Workload::WriteFile { path, content } => {
                vec!["write".into(), path.clone(), content.clone()]
            }
            Workload::ReadFile { path } => vec!["read".into(), path.clone()],
            Workload::Sleep => vec!["sleep".into()],
            Workload::IgnoreStop => vec!["ignore-stop".into()],
        };
        WorkloadSpec {
            image: ImageSpec::new(&self.image),
            command: Vec::new(),
            args,
        }
    }

    fn pull_options(&self) -> PullOptions {
        PullOptions::default().insecure(true)
    }

    fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The task guest as a `wasi:cli/run` component.
mod component {
    use super::*;

    skiff_sdk::runtime_conformance!(
        #[ignore = "needs docker-registry"]
        fixture = WasmFixture::new(skiff_test_guests::TASK, "task")
    );
}

/// The task guest as a WASI preview 1 core module with `_start`.
mod module {
    use super::*;

    skiff_sdk::runtime_conformance!(
        #[ignore = "needs docker-registry"]
        fixture = WasmFixture::new(skiff_test_guests::TASK_P1, "task-p1")
    );
}
