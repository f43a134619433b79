//! The benchmark's peer: a `wasi:http` component served with the `wasmtime`
//! crates directly, as their documentation shows (a hyper HTTP/1.1 server,
//! and per request a fresh `Store`, `ProxyPre::instantiate_async` and
//! `call_handle`), on an engine configured as the runtime's is.
//!
//! It has none of the runtime's bookkeeping (records, container log, memory
//! limiter, request permits, timeouts, CPU metering), so the difference
//! between the two is what that bookkeeping costs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use skiff_runtime_wasm::WasmRuntimeOptions;
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The runtime's epoch tick (`runtime-wasm/src/engine.rs`).
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The runtime's pool sizing per component instance
/// (`runtime-wasm/src/engine.rs`).
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;

/// A compiled HTTP component, its engine and the linker of WASI and
/// `wasi:http`, ready to be served any number of times.
pub struct RawHarness {
    linker: Linker<RawState>,
    component: Component,
    _ticker: EpochTicker,
}

impl RawHarness {
    /// Compiles the component at `wasm_path` on an engine configured as the
    /// runtime opened with `options` configures its own: async, epoch
    /// interruption ticking every 10 ms, the pooling allocator sized from
    /// `max_instances` and `max_memory_bytes`, the component model, serial
    /// compilation.
    pub fn new(wasm_path: &str, options: &WasmRuntimeOptions) -> RawHarness {
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
            .parallel_compilation(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).expect("the raw harness's engine");
        let component = Component::from_file(&engine, wasm_path).expect("compile the component");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("link WASI");
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).expect("link wasi:http");
        RawHarness {
            _ticker: EpochTicker::start(&engine),
            linker,
            component,
        }
    }

    /// The component pre-instantiated: imports resolved and type-checked.
    pub fn pre(&self) -> ProxyPre<RawState> {
        let instance_pre = self
            .linker
            .instantiate_pre(&self.component)
            .expect("pre-instantiate the component");
        ProxyPre::new(instance_pre).expect("the component is a wasi:http proxy")
    }

    /// Binds `address` and serves `pre` on it until the server is dropped.
    pub fn serve(pre: ProxyPre<RawState>, address: SocketAddr) -> std::io::Result<RawServer> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let pre = Arc::new(pre);
        let accept_loop = tokio::spawn(async move {
            loop {
                let Ok((stream, _peer)) = listener.accept().await else {
                    continue;
                };
                // As the runtime does: without it, a response written in
                // two pieces waits for the client's delayed ACK.
                let _ = stream.set_nodelay(true);
                let pre = pre.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let pre = pre.clone();
                        async move { Ok::<_, Infallible>(handle(&pre, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(RawServer { accept_loop })
    }
}

/// A served component; dropping it stops accepting connections (open ones
/// end when their clients close them).
pub struct RawServer {
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// One request: a fresh store and instance, the guest's response, or a 500
/// saying why there is none.
async fn handle(
    pre: &ProxyPre<RawState>,
    request: Request<Incoming>,
) -> Response<HyperOutgoingBody> {
    let mut store = Store::new(
        pre.engine(),
        RawState {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        },
    );
    // As the runtime's stores: yield to the executor at every epoch tick.
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let incoming = match store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
    {
        Ok(incoming) => incoming,
        Err(error) => return failure(format!("{error:#}")),
    };
    let out = match store.data_mut().http().new_response_outparam(sender) {
        Ok(out) => out,
        Err(error) => return failure(format!("{error:#}")),
    };
    let pre = pre.clone();
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, out)
            .await
    });
    match receiver.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => failure(format!("the component answered with error {code:?}")),
        Err(_) => match task.await {
            Ok(Ok(())) => failure("the component returned without a response".into()),
            Ok(Err(error)) => failure(format!("the component failed: {error:#}")),
            Err(error) => failure(format!("the request task failed: {error}")),
        },
    }
}

fn failure(message: String) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(message))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// The store state of one request: WASI (no args, env or output),
/// `wasi:http` with its default hooks, and the resource table.
pub struct RawState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RawState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread, as the
/// runtime's ticker does, until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let engine = engine.weak();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        });
        EpochTicker {
            stop,
            thread: Some(thread),
        }
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
