//! The agent's memory after hostile guests: a process of its own (no other
//! test allocating beside it) runs every memory-hungry misbehaviour twice,
//! once to warm up (compiled code, pools, buffers) and once measured, and
//! checks that its resident memory is back near where it was. Needs
//! Debian's `docker-registry`, like the tests in `tests/all`.

#[path = "all/support/registry.rs"]
mod registry;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use registry::TestRegistry;
use skiff_runtime_wasm::{WasmRuntime, WasmRuntimeOptions};
use skiff_sdk::runtime::{
    ContainerConfig, ImageSpec, PullOptions, Runtime, RuntimeEvent, SandboxConfig, SandboxMetadata,
};

/// Resident memory allowed above the warmed-up baseline.
const SLACK_BYTES: u64 = 96 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry"]
async fn memory_comes_back_after_hostile_guests() {
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start().await;
    let runtime = WasmRuntime::open(
        WasmRuntimeOptions::new(dir.path().join("state"))
            .max_instances(32)
            .default_memory_limit_bytes(64 << 20)
            .request_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let sandbox = runtime
        .run_sandbox(&SandboxConfig::new(
            SandboxMetadata::new("default", "memory", "uid-memory"),
            "wasmtime",
            dir.path().join("logs"),
        ))
        .await
        .unwrap();
    let pull = |name: &'static str, path: &'static str| {
        let registry = &registry;
        let runtime = &runtime;
        async move {
            let reference = registry
                .push(&format!("{name}:v1"), &skiff_test_guests::bytes(path))
                .await;
            let image = ImageSpec::new(reference);
            runtime
                .pull_image(&image, &PullOptions::default().insecure(true))
                .await
                .unwrap();
            image
        }
    };
    let task = pull("task", skiff_test_guests::TASK).await;
    let http = pull("http", skiff_test_guests::HTTP).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let web = runtime
        .create_container(&sandbox, &ContainerConfig::new("web", 0, http).port(port))
        .await
        .unwrap();
    runtime.start_container(&web).await.unwrap();

    let mut baseline = 0;
    for round in 0..2 {
        for (name, args) in [
            ("grow", vec!["grow"]),
            ("recurse", vec!["recurse"]),
            ("flood", vec!["flood", "268435456"]),
            ("trap", vec!["trap", "out-of-bounds"]),
        ] {
            let config = ContainerConfig::new(name, round, task.clone())
                .args(args.iter().map(|a| a.to_string()).collect());
            let mut events = runtime.events();
            let id = runtime.create_container(&sandbox, &config).await.unwrap();
            runtime.start_container(&id).await.unwrap();
            tokio::time::timeout(Duration::from_secs(120), async {
                while let Ok(event) = events.recv().await {
                    let RuntimeEvent::ContainerExited { container_id, .. } = event else {
                        continue;
                    };
                    if container_id == id {
                        break;
                    }
                }
            })
            .await
            .expect("the task ends");
            runtime.remove_container(&id).await.unwrap();
        }
        for path in ["/grow", "/recurse", "/spin", "/panic", "/"] {
            for _ in 0..4 {
                get(port, path).await;
            }
        }
        if round == 0 {
            baseline = resident_bytes();
        }
    }
    let grown = resident_bytes().saturating_sub(baseline);
    assert!(
        grown < SLACK_BYTES,
        "memory back near its baseline: {grown} bytes more than after the warm-up round"
    );
    runtime.remove_sandbox(&sandbox).await.unwrap();
}

/// One GET on a fresh connection; the status, 0 if none came.
async fn get(port: u16, path: &'static str) -> u16 {
    tokio::task::spawn_blocking(move || {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    })
    .await
    .unwrap()
}

/// The resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}
