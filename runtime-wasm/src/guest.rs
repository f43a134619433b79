//! What one guest instance lives in: its store state (WASI, wasi-http, the
//! resource table, the memory limiter), its log output and the stop pipe of
//! its stdin, built from the container's configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use jiff::Timestamp;
use skiff_sdk::runtime::log::{LogWriter, Stream};
use skiff_sdk::runtime::{ContainerConfig, RuntimeError};
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::cli::{AsyncStdinStream, IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The pod annotation that gives a Wasm guest network access: TCP, UDP and
/// name lookups through `wasi:sockets`, and outgoing `wasi:http` requests.
/// Without it (`"true"`) a guest has no network.
pub const NETWORK_ANNOTATION: &str = "skiff.dev/wasi-network";

/// Bytes a guest may write to stdout or stderr in one `write` call.
const OUTPUT_BUDGET: usize = 64 << 10;

/// Everything a container's instances are configured with, resolved once
/// when the container is created.
#[derive(Debug)]
pub(crate) struct GuestConfig {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) working_dir: Option<String>,
    pub(crate) preopens: Vec<Preopen>,
    pub(crate) memory_limit_bytes: u64,
    pub(crate) network: bool,
    pub(crate) max_resources: usize,
}

#[derive(Debug)]
pub(crate) struct Preopen {
    pub(crate) host_path: PathBuf,
    pub(crate) guest_path: String,
    pub(crate) read_only: bool,
}

impl GuestConfig {
    /// The guest view of `config`: argv is the command (its first word the
    /// program name; the container name when there is no command) then the
    /// arguments; environment variables keep their first position and
    /// their last value.
    pub(crate) fn new(
        config: &ContainerConfig,
        default_memory_limit_bytes: u64,
        max_memory_bytes: u64,
        max_resources: usize,
    ) -> Self {
        let mut argv = if config.command.is_empty() {
            vec![config.name.clone()]
        } else {
            config.command.clone()
        };
        argv.extend(config.args.iter().cloned());
        let mut env: Vec<(String, String)> = Vec::with_capacity(config.env.len());
        let mut position = BTreeMap::new();
        for (name, value) in &config.env {
            match position.get(name) {
                Some(&at) => env[at] = (name.clone(), value.clone()),
                None => {
                    position.insert(name.clone(), env.len());
                    env.push((name.clone(), value.clone()));
                }
            }
        }
        let preopens = config
            .mounts
            .iter()
            .map(|mount| Preopen {
                host_path: mount.host_path.clone(),
                guest_path: mount.container_path.clone(),
                read_only: mount.read_only,
            })
            .collect();
        GuestConfig {
            argv,
            env,
            working_dir: config.working_dir.clone(),
            preopens,
            memory_limit_bytes: config
                .resources
                .memory_limit_bytes
                .unwrap_or(default_memory_limit_bytes)
                .min(max_memory_bytes),
            network: config
                .annotations
                .get(NETWORK_ANNOTATION)
                .is_some_and(|v| v == "true"),
            max_resources,
        }
    }

    /// A WASI context for one instance, output to `log`, stdin from `stdin`.
    fn wasi(&self, log: &Arc<LogSink>, stdin: Stdin) -> Result<WasiCtxBuilder, RuntimeError> {
        let mut builder = WasiCtx::builder();
        builder
            .args(&self.argv)
            .envs(&self.env)
            .stdout(LogOutput::new(log, Stream::Stdout))
            .stderr(LogOutput::new(log, Stream::Stderr))
            .allow_tcp(self.network)
            .allow_udp(self.network)
            .allow_ip_name_lookup(self.network);
        if self.network {
            builder.inherit_network();
        }
        if let Stdin::UntilStopped(reader) = stdin {
            builder.stdin(AsyncStdinStream::new(reader));
        }
        if let Some(dir) = &self.working_dir {
            builder.initial_cwd(dir);
        }
        for preopen in &self.preopens {
            let perms = if preopen.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            builder
                .preopened_dir(&preopen.host_path, &preopen.guest_path, perms)
                .map_err(|e| RuntimeError::Io {
                    path: preopen.host_path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
        }
        Ok(builder)
    }

    /// A store for a component instance.
    pub(crate) fn component_store(
        &self,
        engine: &wasmtime::Engine,
        log: &Arc<LogSink>,
        stdin: Stdin,
        usage: &Arc<Usage>,
    ) -> Result<Store<ComponentState>, RuntimeError> {
        let wasi = self.wasi(log, stdin)?.build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.max_resources);
        let state = ComponentState {
            wasi,
            http: WasiHttpCtx::new(),
            table,
            limiter: MemoryLimiter::new(self.memory_limit_bytes, usage),
            outbound: OutboundHttp {
                allowed: self.network,
            },
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        prepare_epoch(&mut store);
        Ok(store)
    }

    /// A store for a core module instance (WASI preview 1).
    pub(crate) fn module_store(
        &self,
        engine: &wasmtime::Engine,
        log: &Arc<LogSink>,
        stdin: Stdin,
        usage: &Arc<Usage>,
    ) -> Result<Store<ModuleState>, RuntimeError> {
        let mut wasi = self.wasi(log, stdin)?.build_p1();
        wasi.ctx().table.set_max_capacity(self.max_resources);
        let state = ModuleState {
            wasi,
            limiter: MemoryLimiter::new(self.memory_limit_bytes, usage),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        prepare_epoch(&mut store);
        Ok(store)
    }
}

/// A running guest yields to the executor at every epoch tick
/// (`engine::EPOCH_TICK`), so that it
/// never holds a worker thread for long and its task can be killed or
/// timed out even in a loop without host calls.
fn prepare_epoch<T>(store: &mut Store<T>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
}

/// What a task's stdin is.
pub(crate) enum Stdin {
    /// Nothing: reads end at once (HTTP instances).
    Empty,
    /// A pipe that stays open, without data, until the task is asked to
    /// stop: then it ends, which is how a Wasm task learns to stop.
    UntilStopped(tokio::io::DuplexStream),
}

impl Stdin {
    /// A stop pipe: the guest's end, and the runtime's end whose drop asks
    /// the guest to stop.
    pub(crate) fn stop_pipe() -> (Stdin, tokio::io::DuplexStream) {
        let (guest, host) = tokio::io::duplex(64);
        (Stdin::UntilStopped(guest), host)
    }
}

/// The store state of a component instance.
pub(crate) struct ComponentState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    outbound: OutboundHttp,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// The store state of a core module instance.
pub(crate) struct ModuleState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
}

/// Outgoing `wasi:http` requests: refused unless the pod has network
/// access ([`NETWORK_ANNOTATION`]).
struct OutboundHttp {
    allowed: bool,
}

impl wasmtime_wasi_http::WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        if self.allowed {
            wasmtime_wasi_http::default_hooks().send_request(request, options, fut)
        } else {
            Box::new(async {
                Err(
                    wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::HttpRequestDenied
                        .into(),
                )
            })
        }
    }
}

/// Resource use of a container's instances, for `container_stats`.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    /// Time spent running guest code and its host calls, in nanoseconds.
    pub(crate) cpu_nanos: AtomicU64,
    /// Linear memory of the live instances, in bytes.
    pub(crate) memory_bytes: AtomicU64,
}

/// Caps the linear memory of one instance (all its memories together) and
/// remembers when a guest went past the cap: that ends the guest as
/// `OOMKilled`, as the kernel's OOM killer ends a container.
pub(crate) struct MemoryLimiter {
    limit: u64,
    current: u64,
    pub(crate) exceeded: bool,
    usage: Arc<Usage>,
}

impl MemoryLimiter {
    fn new(limit: u64, usage: &Arc<Usage>) -> Self {
        MemoryLimiter {
            limit,
            current: 0,
            exceeded: false,
            usage: usage.clone(),
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired as u64).saturating_sub(current as u64);
        let total = self.current.saturating_add(growth);
        if total > self.limit {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit exceeded: growing linear memory to {total} bytes, over the limit of {} bytes",
                self.limit
            );
        }
        self.current = total;
        self.usage.memory_bytes.fetch_add(growth, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold references, 8 bytes each; a million is plenty for any
        // real guest and bounds what a runaway one takes.
        Ok(desired <= 1_000_000)
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.usage
            .memory_bytes
            .fetch_sub(self.current, Ordering::Relaxed);
    }
}

/// A future that adds the time spent polling it to a CPU-time counter.
pub(crate) struct Metered<F> {
    future: Pin<Box<F>>,
    usage: Arc<Usage>,
}

impl<F> Metered<F> {
    pub(crate) fn new(future: F, usage: &Arc<Usage>) -> Self {
        Metered {
            future: Box::pin(future),
            usage: usage.clone(),
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let begun = Instant::now();
        let result = self.future.as_mut().poll(cx);
        let spent = u64::try_from(begun.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.usage.cpu_nanos.fetch_add(spent, Ordering::Relaxed);
        result
    }
}

/// A container's log file, shared by its instances' stdout and stderr.
#[derive(Debug)]
pub(crate) struct LogSink {
    writer: Mutex<Option<LogWriter>>,
    failed: AtomicBool,
}

impl LogSink {
    pub(crate) fn open(path: PathBuf, max_file_bytes: u64) -> Result<Arc<Self>, RuntimeError> {
        let writer = LogWriter::open(path)?.max_file_bytes(max_file_bytes);
        Ok(Arc::new(LogSink {
            writer: Mutex::new(Some(writer)),
            failed: AtomicBool::new(false),
        }))
    }

    /// Appends output. A failing log file (a full disk) loses output rather
    /// than failing the guest; the first failure is logged.
    pub(crate) fn write(&self, stream: Stream, output: &[u8]) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(writer) = writer.as_mut() else {
            return;
        };
        if let Err(error) = writer.write(Timestamp::now(), stream, output)
            && !self.failed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(path = %writer.path().display(), %error, "container output lost");
        }
    }

    /// Ends unfinished lines; later output is dropped.
    pub(crate) fn finish(&self) {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer
            && let Err(error) = writer.finish(Timestamp::now())
        {
            tracing::warn!(%error, "container log not finished");
        }
    }
}

/// A guest's stdout or stderr, written straight into the container's log.
#[derive(Clone)]
struct LogOutput {
    sink: Arc<LogSink>,
    stream: Stream,
}

impl LogOutput {
    fn new(sink: &Arc<LogSink>, stream: Stream) -> Self {
        LogOutput {
            sink: sink.clone(),
            stream,
        }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for LogOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.len() > OUTPUT_BUDGET {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "write of {} bytes exceeds the permitted {OUTPUT_BUDGET}",
                bytes.len()
            )));
        }
        self.sink.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(OUTPUT_BUDGET)
    }
}

impl AsyncWrite for LogOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        output: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.sink.write(self.stream, output);
        Poll::Ready(Ok(output.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl std::fmt::Debug for Stdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stdin::Empty => f.write_str("Empty"),
            Stdin::UntilStopped(_) => f.write_str("UntilStopped"),
        }
    }
}
