//! From Wasm bytes to something ready to instantiate: compiled on a bounded
//! worker pool, cached on disk by artifact digest and engine fingerprint
//! (so a second start never compiles), classified by its exports, and
//! linked against the host's interfaces once per artifact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use skiff_sdk::runtime::RuntimeError;
use tokio::sync::{OnceCell, Semaphore};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Module};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::guest::{ComponentState, ModuleState};

/// The interface an HTTP component exports.
const HTTP_HANDLER_EXPORT: &str = "wasi:http/incoming-handler";
/// The interface a command component exports.
const CLI_RUN_EXPORT: &str = "wasi:cli/run";
/// The only module core modules may import from.
const WASI_P1_MODULE: &str = "wasi_snapshot_preview1";

/// What an artifact is, by what it exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `wasi:http/incoming-handler` component: served on the container's
    /// port, one instance per request.
    HttpComponent,
    /// A `wasi:cli/run` component: runs as a task until it exits.
    CommandComponent,
    /// A core module with `_start` (WASI preview 1): runs as a task.
    CommandModule,
}

impl Kind {
    /// A short name for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HttpComponent => "wasi:http component",
            Kind::CommandComponent => "wasi:cli command component",
            Kind::CommandModule => "WASI preview 1 command module",
        }
    }
}

/// An artifact compiled and linked, ready for instances.
#[derive(Clone)]
pub(crate) enum Prepared {
    Http(ProxyPre<ComponentState>),
    Command(CommandPre<ComponentState>),
    Module(wasmtime::InstancePre<ModuleState>),
}

impl Prepared {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Prepared::Http(_) => Kind::HttpComponent,
            Prepared::Command(_) => Kind::CommandComponent,
            Prepared::Module(_) => Kind::CommandModule,
        }
    }
}

/// Compiled code, before linking.
#[derive(Clone)]
enum Compiled {
    Component(Component),
    Module(Module),
}

/// Compiles, caches and links artifacts for one engine.
pub(crate) struct Compiler {
    engine: Engine,
    cache_dir: PathBuf,
    fingerprint: String,
    max_artifact_bytes: u64,
    workers: Arc<Semaphore>,
    component_linker: Linker<ComponentState>,
    module_linker: wasmtime::Linker<ModuleState>,
    compiled: Mutex<HashMap<String, Arc<OnceCell<Compiled>>>>,
    prepared: Mutex<HashMap<String, Arc<OnceCell<Prepared>>>>,
    compilations: AtomicU64,
}

impl Compiler {
    pub(crate) fn new(
        engine: &Engine,
        cache_dir: PathBuf,
        max_artifact_bytes: u64,
        workers: usize,
    ) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(&cache_dir).map_err(|e| RuntimeError::io(&cache_dir, e))?;
        let linking = |e: wasmtime::Error| RuntimeError::Backend {
            operation: "link the WASI host interfaces",
            source: e.into_boxed_dyn_error(),
        };
        let mut component_linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker).map_err(linking)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker)
            .map_err(linking)?;
        let mut module_linker = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut module_linker, |state: &mut ModuleState| {
            &mut state.wasi
        })
        .map_err(linking)?;
        Ok(Compiler {
            engine: engine.clone(),
            fingerprint: crate::engine::fingerprint(engine),
            cache_dir,
            max_artifact_bytes,
            workers: Arc::new(Semaphore::new(workers.max(1))),
            component_linker,
            module_linker,
            compiled: Mutex::new(HashMap::new()),
            prepared: Mutex::new(HashMap::new()),
            compilations: AtomicU64::new(0),
        })
    }

    /// How many artifacts this compiler has compiled (not loaded from the
    /// cache).
    pub(crate) fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Makes sure the Wasm at `wasm_path`, whose content digest is
    /// `wasm_digest`, is compiled: in memory, else loaded from the disk
    /// cache, else compiled (and cached). `reference` names the image in
    /// errors. Does not link: an artifact with imports the host lacks
    /// compiles fine, and fails when a container is created from it.
    pub(crate) async fn compile(
        &self,
        reference: &str,
        wasm_digest: &str,
        wasm_path: &Path,
    ) -> Result<(), RuntimeError> {
        self.compiled(reference, wasm_digest, wasm_path)
            .await
            .map(drop)
    }

    async fn compiled(
        &self,
        reference: &str,
        wasm_digest: &str,
        wasm_path: &Path,
    ) -> Result<Compiled, RuntimeError> {
        let cell = self
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(wasm_digest.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.load_or_compile(reference, wasm_digest, wasm_path))
            .await
            .cloned()
    }

    /// The compiled and linked form of an artifact (see
    /// [`compile`](Self::compile)), ready for instances; linked once per
    /// artifact.
    pub(crate) async fn prepare(
        &self,
        reference: &str,
        wasm_digest: &str,
        wasm_path: &Path,
    ) -> Result<Prepared, RuntimeError> {
        let cell = self
            .prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(wasm_digest.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let compiled = self.compiled(reference, wasm_digest, wasm_path).await?;
            self.link(reference, compiled)
        })
        .await
        .cloned()
    }

    /// Forgets the in-memory forms of an artifact (its image was removed);
    /// the disk cache keeps its code.
    pub(crate) fn forget(&self, wasm_digest: &str) {
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(wasm_digest);
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(wasm_digest);
    }

    fn cache_path(&self, wasm_digest: &str) -> PathBuf {
        let hex = wasm_digest.strip_prefix("sha256:").unwrap_or(wasm_digest);
        self.cache_dir
            .join(format!("{hex}-{}.cwasm", self.fingerprint))
    }

    async fn load_or_compile(
        &self,
        reference: &str,
        wasm_digest: &str,
        wasm_path: &Path,
    ) -> Result<Compiled, RuntimeError> {
        let cached = self.cache_path(wasm_digest);
        tracing::debug!(%reference, exists = cached.exists(), "compiling or loading");
        if cached.exists() {
            let engine = self.engine.clone();
            let path = cached.clone();
            let loaded = tokio::task::spawn_blocking(move || load_cached(&engine, &path))
                .await
                .map_err(|e| RuntimeError::Backend {
                    operation: "load compiled code",
                    source: e.into(),
                })?;
            match loaded {
                Ok(compiled) => {
                    tracing::debug!(%reference, "loaded compiled code");
                    return Ok(compiled);
                }
                Err(error) => {
                    tracing::warn!(path = %cached.display(), %error, "compiled code not usable, compiling again");
                    let _ = std::fs::remove_file(&cached);
                }
            }
        }

        let _permit = self
            .workers
            .acquire()
            .await
            .map_err(|e| RuntimeError::Backend {
                operation: "wait for a compile worker",
                source: e.into(),
            })?;
        let engine = self.engine.clone();
        let source = wasm_path.to_owned();
        let max = self.max_artifact_bytes;
        let reference_owned = reference.to_owned();
        let compiled = tokio::task::spawn_blocking(move || {
            compile(&engine, &reference_owned, &source, &cached, max)
        })
        .await
        .map_err(|e| RuntimeError::Backend {
            operation: "compile",
            source: e.into(),
        })??;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        Ok(compiled)
    }

    /// Classifies compiled code by its exports and links it against the
    /// host: an import the host does not provide fails here, by name.
    fn link(&self, reference: &str, compiled: Compiled) -> Result<Prepared, RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidImage {
            reference: reference.to_owned(),
            reason,
        };
        match compiled {
            Compiled::Component(component) => {
                let ty = component.component_type();
                let exports: Vec<String> = ty
                    .exports(&self.engine)
                    .map(|(name, _)| name.to_owned())
                    .collect();
                let exports_interface =
                    |interface: &str| exports.iter().any(|e| unversioned(e) == interface);
                let pre = self
                    .component_linker
                    .instantiate_pre(&component)
                    .map_err(|e| link_error(reference, &e))?;
                if exports_interface(HTTP_HANDLER_EXPORT) {
                    ProxyPre::new(pre).map(Prepared::Http).map_err(|e| {
                        invalid(format!(
                            "its {HTTP_HANDLER_EXPORT} export does not match: {e}"
                        ))
                    })
                } else if exports_interface(CLI_RUN_EXPORT) {
                    CommandPre::new(pre).map(Prepared::Command).map_err(|e| {
                        invalid(format!("its {CLI_RUN_EXPORT} export does not match: {e}"))
                    })
                } else {
                    Err(invalid(format!(
                        "the component exports neither {HTTP_HANDLER_EXPORT} nor {CLI_RUN_EXPORT} (it exports {exports:?})"
                    )))
                }
            }
            Compiled::Module(module) => {
                if let Some(import) = module.imports().find(|i| i.module() != WASI_P1_MODULE) {
                    return Err(RuntimeError::UnsupportedImport {
                        reference: reference.to_owned(),
                        import: format!("{}::{}", import.module(), import.name()),
                    });
                }
                let starts = module
                    .get_export("_start")
                    .is_some_and(|e| e.func().is_some());
                if !starts {
                    return Err(invalid(
                        "the core module exports no `_start` function".to_owned(),
                    ));
                }
                self.module_linker
                    .instantiate_pre(&module)
                    .map(Prepared::Module)
                    .map_err(|e| link_error(reference, &e))
            }
        }
    }
}

/// Loads cached compiled code.
#[allow(unsafe_code)]
fn load_cached(engine: &Engine, path: &Path) -> Result<Compiled, wasmtime::Error> {
    let bytes_head = {
        use std::io::Read;
        let mut head = Vec::with_capacity(64);
        std::fs::File::open(path)?
            .take(1 << 20)
            .read_to_end(&mut head)?;
        head
    };
    let kind = Engine::detect_precompiled(&bytes_head)
        .ok_or_else(|| wasmtime::format_err!("not compiled code"))?;
    // SAFETY: the file is one this runtime wrote (below, in `compile`) into
    // its private state directory, named by the artifact's digest and this
    // engine's compatibility fingerprint; wasmtime checks the fingerprint
    // again while loading. Nothing else writes there.
    match kind {
        wasmtime::Precompiled::Component => {
            unsafe { Component::deserialize_file(engine, path) }.map(Compiled::Component)
        }
        wasmtime::Precompiled::Module => {
            unsafe { Module::deserialize_file(engine, path) }.map(Compiled::Module)
        }
    }
}

/// Compiles the Wasm at `source` and writes its code to `cached`.
fn compile(
    engine: &Engine,
    reference: &str,
    source: &Path,
    cached: &Path,
    max_artifact_bytes: u64,
) -> Result<Compiled, RuntimeError> {
    let invalid = |reason: String| RuntimeError::InvalidImage {
        reference: reference.to_owned(),
        reason,
    };
    let size = std::fs::metadata(source)
        .map_err(|e| RuntimeError::io(source, e))?
        .len();
    if size > max_artifact_bytes {
        return Err(invalid(format!(
            "the Wasm is {size} bytes, over the limit of {max_artifact_bytes} bytes"
        )));
    }
    let bytes = std::fs::read(source).map_err(|e| RuntimeError::io(source, e))?;
    let kind = crate::oci::layout::wasm_kind(&bytes).map_err(invalid)?;
    let (compiled, code) = if kind == crate::oci::layout::WasmKind::Component {
        let component = Component::new(engine, &bytes)
            .map_err(|e| invalid(format!("the component does not compile: {e:#}")))?;
        let code = component.serialize();
        (Compiled::Component(component), code)
    } else {
        let module = Module::new(engine, &bytes)
            .map_err(|e| invalid(format!("the module does not compile: {e:#}")))?;
        let code = module.serialize();
        (Compiled::Module(module), code)
    };
    match code {
        Ok(code) => {
            if let Err(error) = write_atomically(cached, &code) {
                tracing::warn!(path = %cached.display(), %error, "compiled code not cached");
            }
        }
        Err(error) => tracing::warn!(%error, "compiled code not serialized"),
    }
    Ok(compiled)
}

/// Writes a file through a temporary one and a rename, so that readers
/// never see it half written.
fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let temporary = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&temporary, content)?;
    std::fs::rename(&temporary, path)
}

/// The interface name of an export or import, without its version:
/// `wasi:http/incoming-handler@0.2.3` → `wasi:http/incoming-handler`.
fn unversioned(name: &str) -> &str {
    name.split_once('@')
        .map_or(name, |(interface, _)| interface)
}

/// Turns a linking failure into `UnsupportedImport` naming the missing
/// import when wasmtime's message names one, else `InvalidImage`.
fn link_error(reference: &str, error: &wasmtime::Error) -> RuntimeError {
    let message = format!("{error:#}");
    match missing_import(&message) {
        Some(import) => RuntimeError::UnsupportedImport {
            reference: reference.to_owned(),
            import,
        },
        None => RuntimeError::InvalidImage {
            reference: reference.to_owned(),
            reason: format!("it does not link against the host: {message}"),
        },
    }
}

/// The import a wasmtime linking error complains about: the first name in
/// backquotes, without its version, e.g. from "component imports instance
/// `wasi:keyvalue/store@0.2.0-draft`, but a matching implementation was not
/// found in the linker".
fn missing_import(message: &str) -> Option<String> {
    let (_, rest) = message.split_once('`')?;
    let (name, _) = rest.split_once('`')?;
    Some(unversioned(name).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_imports_are_named_without_version() {
        assert_eq!(
            missing_import(
                "component imports instance `wasi:keyvalue/store@0.2.0-draft`, but a matching implementation was not found in the linker"
            )
            .as_deref(),
            Some("wasi:keyvalue/store")
        );
        assert_eq!(
            missing_import("unknown import: `env::host_log` has not been defined").as_deref(),
            Some("env::host_log")
        );
        assert_eq!(missing_import("no names here"), None);
    }

    #[test]
    fn unversioned_strips_the_version() {
        assert_eq!(
            unversioned("wasi:http/incoming-handler@0.2.3"),
            "wasi:http/incoming-handler"
        );
        assert_eq!(unversioned("wasi:cli/run"), "wasi:cli/run");
    }
}
