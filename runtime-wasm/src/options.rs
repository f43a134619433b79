//! How a [`WasmRuntime`](crate::WasmRuntime) is opened: where it keeps its
//! state, the limits it puts on guests and the size of its instance pool.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// Options of [`WasmRuntime::open`](crate::WasmRuntime::open). `Default` +
/// builder-style setters; only the state directory has no sensible default.
#[derive(Clone, Debug)]
pub struct WasmRuntimeOptions {
    /// Directory for the runtime's records, pulled artifacts and compiled
    /// code. Opening a runtime again over it finds what the last one left.
    pub state_dir: PathBuf,
    /// The address HTTP components listen on when their sandbox uses the
    /// host network (the node's address).
    pub host_ip: IpAddr,
    /// The memory limit of a guest whose container sets none.
    pub default_memory_limit_bytes: u64,
    /// The largest linear memory one guest instance may have; also the size
    /// of a memory slot in the instance pool. Container limits above it are
    /// capped to it.
    pub max_memory_bytes: u64,
    /// How long one HTTP request may take, guest start-up included, before
    /// its instance is stopped and the client gets 504.
    pub request_timeout: Duration,
    /// Requests one HTTP container serves at once; more are answered 503.
    pub max_concurrent_requests: usize,
    /// Component instances alive at once in the whole runtime (tasks and
    /// in-flight requests); the instance pool is sized from it.
    pub max_instances: u32,
    /// Artifacts larger than this are refused before they are downloaded or
    /// compiled.
    pub max_artifact_bytes: u64,
    /// Modules compiled at once, each on one thread, so that a huge module
    /// cannot take every core of the node.
    pub compile_workers: usize,
    /// Entries (open files, streams, requests) one guest may hold in its
    /// resource table; bounds the host file descriptors a guest can use.
    pub max_guest_resources: usize,
    /// Rotation size of container log files.
    pub max_log_file_bytes: u64,
    /// Where compiled code is cached; `state_dir/compiled` unless set.
    /// Runtimes may share one (entries are named by artifact digest and
    /// engine fingerprint, and written atomically).
    pub compile_cache_dir: Option<PathBuf>,
}

impl WasmRuntimeOptions {
    /// Defaults for a node, state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        WasmRuntimeOptions {
            state_dir: state_dir.into(),
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            default_memory_limit_bytes: 128 << 20,
            max_memory_bytes: 4 << 30,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 512,
            max_instances: 1000,
            max_artifact_bytes: 64 << 20,
            compile_workers: std::thread::available_parallelism()
                .map_or(1, |n| (n.get() / 2).max(1)),
            max_guest_resources: 4096,
            max_log_file_bytes: 10 << 20,
            compile_cache_dir: None,
        }
    }

    /// Sets the address HTTP components listen on.
    pub fn host_ip(mut self, ip: IpAddr) -> Self {
        self.host_ip = ip;
        self
    }

    /// Sets the memory limit of guests whose container sets none.
    pub fn default_memory_limit_bytes(mut self, bytes: u64) -> Self {
        self.default_memory_limit_bytes = bytes;
        self
    }

    /// Sets the largest linear memory of one instance.
    pub fn max_memory_bytes(mut self, bytes: u64) -> Self {
        self.max_memory_bytes = bytes;
        self
    }

    /// Sets the HTTP request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets how many requests one HTTP container serves at once.
    pub fn max_concurrent_requests(mut self, requests: usize) -> Self {
        self.max_concurrent_requests = requests.max(1);
        self
    }

    /// Sets how many instances the runtime holds at once.
    pub fn max_instances(mut self, instances: u32) -> Self {
        self.max_instances = instances.max(1);
        self
    }

    /// Sets the largest artifact accepted.
    pub fn max_artifact_bytes(mut self, bytes: u64) -> Self {
        self.max_artifact_bytes = bytes;
        self
    }

    /// Sets how many modules are compiled at once.
    pub fn compile_workers(mut self, workers: usize) -> Self {
        self.compile_workers = workers.max(1);
        self
    }

    /// Sets the resource-table size of one guest.
    pub fn max_guest_resources(mut self, resources: usize) -> Self {
        self.max_guest_resources = resources.max(16);
        self
    }

    /// Sets where compiled code is cached.
    pub fn compile_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.compile_cache_dir = Some(dir.into());
        self
    }

    /// Sets the rotation size of container logs.
    pub fn max_log_file_bytes(mut self, bytes: u64) -> Self {
        self.max_log_file_bytes = bytes;
        self
    }
}
