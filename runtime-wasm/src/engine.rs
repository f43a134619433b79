//! The node's one wasmtime [`Engine`]: async, epoch-interrupted, with a
//! pooling instance allocator, and the thread that ticks its epoch.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use skiff_sdk::runtime::RuntimeError;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::WasmRuntimeOptions;

/// How often the epoch advances: a running guest yields to the async
/// executor, and notices that it was killed or timed out, once per tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances, memories and tables one component instance may use in
/// the pool: a Rust WASI component has a handful of each (its module, the
/// WASI adapter, shims).
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;

/// Builds the engine for `options`.
pub(crate) fn build(options: &WasmRuntimeOptions) -> Result<Engine, RuntimeError> {
    let instances = options.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(instances.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(instances)
        .max_memory_size(usize::try_from(options.max_memory_bytes).unwrap_or(usize::MAX))
        .max_memories_per_component(MEMORIES_PER_COMPONENT * 4)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT * 4);

    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .wasm_component_model(true)
        // Compilation runs on the runtime's bounded worker pool, one thread
        // per module.
        .parallel_compilation(false)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| RuntimeError::Backend {
        operation: "create the wasmtime engine",
        source: e.into_boxed_dyn_error(),
    })
}

/// A name for the engine's compiled-code compatibility: compiled artifacts
/// are cached under it, so that code compiled by another wasmtime version
/// or configuration is never loaded.
pub(crate) fn fingerprint(engine: &Engine) -> String {
    // SipHash with fixed keys: stable for one build of the binary, which is
    // all the cache needs (another build has another wasmtime anyway).
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own,
/// until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> Result<Self, RuntimeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("skiff-wasm-epoch".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(|e| RuntimeError::Backend {
                operation: "start the epoch thread",
                source: e.into(),
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
