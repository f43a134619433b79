//! The Wasm runtime against real guests (built from `test-guests`), well
//! behaved and hostile: HTTP components served per request, tasks, the
//! kinds and their failures, limits, the compile cache, and every way of
//! misbehaving the issue lists. Each misbehaviour fails only its own
//! container or request; the test process (the agent, in production) goes
//! on. (That its memory comes back near its baseline is checked in a
//! process of its own, `tests/memory.rs`, where no other test allocates.)

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::core_module;
use crate::support::registry::{TestRegistry, chain};
use skiff_runtime_wasm::{Kind, TRAP_EXIT_CODE, WasmRuntime, WasmRuntimeOptions};
use skiff_sdk::runtime::log::{Stream, parse_line};
use skiff_sdk::runtime::{
    ContainerConfig, ContainerId, ContainerState, ContainerStatus, ImageSpec, Mount, PullOptions,
    Runtime, RuntimeError, RuntimeEvent, SandboxConfig, SandboxId, SandboxMetadata,
};

/// A runtime, a registry and a sandbox to run containers in.
struct Node {
    dir: tempfile::TempDir,
    registry: TestRegistry,
    runtime: WasmRuntime,
    sandbox: SandboxId,
    logs: PathBuf,
}

impl Node {
    async fn start(options: impl FnOnce(WasmRuntimeOptions) -> WasmRuntimeOptions) -> Node {
        init_tracing();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let registry = TestRegistry::start().await;
        let runtime = WasmRuntime::open(options(
            WasmRuntimeOptions::new(dir.path().join("state")).max_instances(64),
        ))
        .await
        .expect("open the runtime");
        let logs = dir.path().join("logs");
        let sandbox = runtime
            .run_sandbox(&SandboxConfig::new(
                SandboxMetadata::new("default", "guests", format!("uid-{}", std::process::id())),
                "wasmtime",
                &logs,
            ))
            .await
            .expect("run a sandbox");
        Node {
            dir,
            registry,
            runtime,
            sandbox,
            logs,
        }
    }

    /// Pushes Wasm bytes and pulls them; returns the reference.
    async fn image(&self, repository: &str, wasm: &[u8]) -> ImageSpec {
        let reference = self.registry.push(&format!("{repository}:v1"), wasm).await;
        let image = ImageSpec::new(reference);
        self.runtime
            .pull_image(&image, &PullOptions::default().insecure(true))
            .await
            .unwrap_or_else(|e| panic!("pull {}: {}", image.reference, chain(&e)));
        image
    }

    async fn create(&self, config: ContainerConfig) -> ContainerId {
        self.runtime
            .create_container(&self.sandbox, &config)
            .await
            .unwrap_or_else(|e| panic!("create {}: {}", config.name, chain(&e)))
    }

    /// Runs a task to its exit (or until `limit`, then fails).
    async fn run_to_exit(&self, config: ContainerConfig) -> ContainerStatus {
        let mut events = self.runtime.events();
        let id = self.create(config).await;
        self.runtime.start_container(&id).await.expect("start");
        let wait = async {
            loop {
                match events.recv().await.expect("events") {
                    RuntimeEvent::ContainerExited { container_id, .. } if container_id == id => {
                        break;
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), wait)
            .await
            .expect("the task exits");
        self.runtime.container_status(&id).await.expect("status")
    }

    async fn wait_until_logged(&self, id: &ContainerId, text: &str) {
        let wait = async {
            loop {
                let status = self.runtime.container_status(id).await.expect("status");
                if self.log(&status).0.contains(text) {
                    return;
                }
                assert_eq!(status.state, ContainerState::Running, "{status:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("the guest logs");
    }

    /// A container's stdout and stderr, from its log file.
    fn log(&self, status: &ContainerStatus) -> (String, String) {
        read_log(&self.logs.join(&status.log_path))
    }
}

fn read_log(path: &Path) -> (String, String) {
    let content = std::fs::read(path).unwrap_or_default();
    let (mut out, mut err) = (String::new(), String::new());
    for line in content.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line = parse_line(line).expect("a CRI log line");
        let text = String::from_utf8_lossy(line.content);
        let target = match line.stream {
            Stream::Stdout => &mut out,
            Stream::Stderr => &mut err,
        };
        target.push_str(&text);
        if line.tag == skiff_sdk::runtime::log::Tag::Full {
            target.push('\n');
        }
    }
    (out, err)
}

fn task(name: &str, image: &ImageSpec, args: &[&str]) -> ContainerConfig {
    ContainerConfig::new(name, 0, image.clone()).args(args.iter().map(|a| a.to_string()).collect())
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.1 request on a fresh connection: status and body; status 0
/// when the connection closed without a response.
async fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let method = method.to_owned();
    let path = path.to_owned();
    let body = body.to_owned();
    tokio::task::spawn_blocking(move || {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .expect("connect to the component");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read the response");
        let response = String::from_utf8_lossy(&response).into_owned();
        if response.is_empty() {
            return (0, String::new());
        }
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {response:?}"));
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry"]
async fn http_component_is_served_with_an_instance_per_request() {
    let node = Node::start(|o| o).await;
    let image = node
        .image("http", &skiff_test_guests::bytes(skiff_test_guests::HTTP))
        .await;
    assert_eq!(
        node.runtime.kind_of(&image).await.unwrap(),
        Kind::HttpComponent
    );
    let port = free_port();
    let config = ContainerConfig::new("web", 0, image)
        .port(port)
        .env("GREETING", "hi there");
    let id = node.create(config).await;
    node.runtime.start_container(&id).await.expect("start");
    let status = node.runtime.container_status(&id).await.unwrap();
    assert_eq!(status.state, ContainerState::Running);

    assert_eq!(
        request(port, "GET", "/", "").await,
        (200, "hello from skiff\n".into())
    );
    assert_eq!(
        request(port, "POST", "/echo", "ping pong").await,
        (200, "ping pong".into())
    );
    assert_eq!(
        request(port, "GET", "/env/GREETING", "").await,
        (200, "hi there".into())
    );
    assert_eq!(request(port, "GET", "/env/MISSING", "").await.0, 404);
    assert_eq!(request(port, "GET", "/log", "").await.0, 200);
    let (out, err) = node.log(&status);
    assert!(out.contains("request logged\n"), "{out:?}");
    assert!(err.contains("request warned\n"), "{err:?}");

    let stats = node.runtime.container_stats(&id).await.expect("stats");
    assert!(stats.cpu_usage_nanos > 0, "{stats:?}");

    node.runtime
        .stop_container(&id, Duration::from_secs(5))
        .await
        .unwrap();
    let status = node.runtime.container_status(&id).await.unwrap();
    assert_eq!(
        (status.state, status.exit_code),
        (ContainerState::Exited, Some(0)),
        "{status:?}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a stopped HTTP container no longer listens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry"]
async fn hostile_requests_fail_alone() {
    let node = Node::start(|o| {
        o.request_timeout(Duration::from_secs(2))
            .default_memory_limit_bytes(64 << 20)
    })
    .await;
    let image = node
        .image("http", &skiff_test_guests::bytes(skiff_test_guests::HTTP))
        .await;
    let port = free_port();
    let id = node
        .create(ContainerConfig::new("web", 0, image).port(port))
        .await;
    node.runtime.start_container(&id).await.expect("start");

    // An infinite loop is stopped at the request timeout.
    let (status, body) = request(port, "GET", "/spin", "").await;
    assert_eq!(status, 504, "{body}");
    // A memory bomb hits the limit, deep recursion overflows the stack, a
    // panic traps: each is a 500 for that request only.
    let (status, body) = request(port, "GET", "/grow", "").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("OOMKilled"), "{body}");
    let (status, body) = request(port, "GET", "/recurse", "").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("stack"), "{body}");
    let (status, body) = request(port, "GET", "/panic", "").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("wasm trap"), "{body}");
    for _ in 0..3 {
        assert_eq!(request(port, "GET", "/", "").await.0, 200);
    }

    let status = node.runtime.container_status(&id).await.unwrap();
    assert_eq!(status.state, ContainerState::Running, "{status:?}");
    let (_, err) = node.log(&status);
    assert!(
        err.contains("GET /spin failed"),
        "failures are logged: {err:?}"
    );
    let stats = node.runtime.container_stats(&id).await.unwrap();
    assert_eq!(
        stats.memory_bytes, 0,
        "the failed requests' instances gave their memory back"
    );

    // A stop while a request spins: killed at the end of the grace period,
    // its connection closed (as a killed process's are) or answered 503.
    let spinning = tokio::spawn(request(port, "GET", "/spin", ""));
    wait_until_in_flight(&node, &id).await;
    node.runtime
        .stop_container(&id, Duration::from_millis(500))
        .await
        .unwrap();
    let status = node.runtime.container_status(&id).await.unwrap();
    assert_eq!(status.exit_code, Some(137), "{status:?}");
    let (status, _) = spinning.await.unwrap();
    assert!(status == 0 || status == 503, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry"]
async fn hostile_tasks_fail_alone() {
    let node = Node::start(|o| {
        o.default_memory_limit_bytes(64 << 20)
            .max_guest_resources(256)
    })
    .await;
    let image = node
        .image("task", &skiff_test_guests::bytes(skiff_test_guests::TASK))
        .await;

    let status = node.run_to_exit(task("grow", &image, &["grow"])).await;
    assert_eq!(
        (status.exit_code, status.reason.as_deref()),
        (Some(137), Some("OOMKilled")),
        "{status:?}"
    );
    let status = node
        .run_to_exit(task("recurse", &image, &["recurse"]))
        .await;
    assert_eq!(status.exit_code, Some(TRAP_EXIT_CODE), "{status:?}");
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("stack"),
        "{status:?}"
    );
    for kind in [
        "unreachable",
        "out-of-bounds",
        "divide-by-zero",
        "overflow",
        "null-call",
        "abort",
        "panic",
    ] {
        let status = node
            .run_to_exit(task(&format!("trap-{kind}"), &image, &["trap", kind]))
            .await;
        assert_eq!(status.exit_code, Some(TRAP_EXIT_CODE), "{kind}: {status:?}");
        assert!(
            status
                .message
                .as_deref()
                .unwrap_or_default()
                .starts_with("wasm trap: "),
            "{kind}: {status:?}"
        );
    }

    // An infinite loop at start-up: killed at the end of its grace period.
    let id = node.create(task("spin", &image, &["spin"])).await;
    node.runtime.start_container(&id).await.unwrap();
    node.wait_until_logged(&id, "ready\n").await;
    node.runtime
        .stop_container(&id, Duration::from_millis(500))
        .await
        .unwrap();
    let status = node.runtime.container_status(&id).await.unwrap();
    assert_eq!(status.exit_code, Some(137), "{status:?}");

    // 1 GiB of stdout: the log is rotated at its cap, the guest completes.
    let status = node
        .run_to_exit(task("flood", &image, &["flood", "1073741824"]))
        .await;
    assert_eq!(status.exit_code, Some(0), "{status:?}");
    let log = node.logs.join(&status.log_path);
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size <= 11 << 20, "the log is capped: {size} bytes");

    // Opening files in a loop ends at the guest's resource limit.
    let data = node.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("file"), "content").unwrap();
    let open_loop = task("open-loop", &image, &["open-loop", "/data/file", "100000"])
        .mount(Mount::read_only(&data, "/data"));
    let status = node.run_to_exit(open_loop).await;
    assert_eq!(status.exit_code, Some(TRAP_EXIT_CODE), "{status:?}");
    assert_eq!(
        status.message.as_deref(),
        Some("resource table has no free keys"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry"]
async fn preopens_do_not_leak_the_host_filesystem() {
    let node = Node::start(|o| o).await;
    let image = node
        .image("task", &skiff_test_guests::bytes(skiff_test_guests::TASK))
        .await;
    let root = node.dir.path().join("volume");
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(root.join("secret"), "outside the mount").unwrap();
    std::fs::write(data.join("inside"), "inside").unwrap();
    std::os::unix::fs::symlink(root.join("secret"), data.join("link-out")).unwrap();
    std::os::unix::fs::symlink("/etc", data.join("etc")).unwrap();
    let mounted = |name: &str, args: &[&str]| {
        task(name, &image, args).mount(Mount::read_only(&data, "/data"))
    };

    let status = node
        .run_to_exit(mounted("inside", &["open", "/data/inside"]))
        .await;
    assert_eq!(
        status.exit_code,
        Some(0),
        "{status:?} {:?}",
        node.log(&status)
    );
    for (name, path) in [
        ("dotdot", "/data/../secret"),
        ("absolute", "/etc/passwd"),
        ("symlink-file", "/data/link-out"),
        ("symlink-dir", "/data/etc/passwd"),
    ] {
        let status = node.run_to_exit(mounted(name, &["open", path])).await;
        assert_eq!(
            status.exit_code,
            Some(3),
            "{path} must be denied: {:?}",
            node.log(&status)
        );
        assert!(
            node.log(&status).0.starts_with("denied: "),
            "{:?}",
            node.log(&status)
        );
    }
    let status = node
        .run_to_exit(mounted("write-ro", &["write", "/data/new", "x"]))
        .await;
    assert_eq!(status.exit_code, Some(1), "{status:?}");
    assert!(
        !data.join("new").exists(),
        "nothing written through a read-only mount"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry"]
async fn kinds_imports_and_bad_artifacts() {
    let node = Node::start(|o| o.max_artifact_bytes(4 << 20)).await;
    let task_p1 = node
        .image(
            "task-p1",
            &skiff_test_guests::bytes(skiff_test_guests::TASK_P1),
        )
        .await;
    assert_eq!(
        node.runtime.kind_of(&task_p1).await.unwrap(),
        Kind::CommandModule
    );
    let task = node
        .image("task", &skiff_test_guests::bytes(skiff_test_guests::TASK))
        .await;
    assert_eq!(
        node.runtime.kind_of(&task).await.unwrap(),
        Kind::CommandComponent
    );

    // A component importing an interface the host lacks: refused at create,
    // by name.
    let keyvalue = wat::parse_str(
        r#"(component (import "wasi:keyvalue/store@0.2.0-draft" (instance (export "get" (func)))))"#,
    )
    .unwrap();
    let image = node.image("keyvalue", &keyvalue).await;
    let error = node
        .runtime
        .create_container(&node.sandbox, &ContainerConfig::new("kv", 0, image))
        .await
        .expect_err("an unsupported import");
    match &error {
        RuntimeError::UnsupportedImport { import, .. } => assert_eq!(import, "wasi:keyvalue/store"),
        other => panic!("expected UnsupportedImport, got {other:?}"),
    }
    // A core module importing from outside WASI.
    let env =
        wat::parse_str(r#"(module (import "env" "host_log" (func)) (func (export "_start")))"#)
            .unwrap();
    let image = node.image("env", &env).await;
    let error = node
        .runtime
        .create_container(&node.sandbox, &ContainerConfig::new("env", 0, image))
        .await
        .expect_err("an unsupported import");
    assert!(
        matches!(&error, RuntimeError::UnsupportedImport { import, .. } if import == "env::host_log"),
        "{error:?}"
    );
    // A module without `_start`.
    let library = wat::parse_str(r#"(module (func (export "add")))"#).unwrap();
    let image = node.image("library", &library).await;
    let error = node
        .runtime
        .create_container(&node.sandbox, &ContainerConfig::new("lib", 0, image))
        .await
        .expect_err("no _start");
    assert!(
        matches!(error, RuntimeError::InvalidImage { .. }),
        "{error:?}"
    );

    // Wasm that does not validate fails the pull.
    let invalid = b"\0asm\x01\0\0\0\x01\xff\xff\xff".to_vec();
    let reference = node.registry.push("invalid:v1", &invalid).await;
    let error = node
        .runtime
        .pull_image(
            &ImageSpec::new(reference),
            &PullOptions::default().insecure(true),
        )
        .await
        .expect_err("invalid Wasm");
    assert!(
        matches!(error, RuntimeError::InvalidImage { .. }),
        "{error:?}"
    );

    // Over the artifact size limit: refused before compiling.
    let big = core_module(&vec![0; 5 << 20]);
    let reference = node.registry.push("big:v1", &big).await;
    let error = node
        .runtime
        .pull_image(
            &ImageSpec::new(reference),
            &PullOptions::default().insecure(true),
        )
        .await
        .expect_err("over the size limit");
    assert!(
        matches!(error, RuntimeError::InvalidImage { .. }),
        "{error:?}"
    );
    assert_eq!(
        node.runtime.compilations(),
        5,
        "the big module was never compiled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry"]
async fn a_second_runtime_never_compiles_what_the_first_did() {
    let node = Node::start(|o| o).await;
    let image = node
        .image("task", &skiff_test_guests::bytes(skiff_test_guests::TASK))
        .await;
    assert_eq!(node.runtime.compilations(), 1);
    let status = node
        .run_to_exit(task("args", &image, &["args", "one"]))
        .await;
    assert_eq!(status.exit_code, Some(0));
    assert_eq!(
        node.runtime.compilations(),
        1,
        "a start after the pull compiles nothing"
    );

    let state = node.dir.path().join("state");
    let again = WasmRuntime::open(WasmRuntimeOptions::new(&state).max_instances(8))
        .await
        .unwrap();
    again
        .pull_image(&image, &PullOptions::default().insecure(true))
        .await
        .unwrap();
    let sandbox = again
        .run_sandbox(&SandboxConfig::new(
            SandboxMetadata::new("default", "again", "uid-again"),
            "wasmtime",
            node.dir.path().join("logs-again"),
        ))
        .await
        .unwrap();
    let mut events = again.events();
    let id = again
        .create_container(&sandbox, &task("args", &image, &["args", "two"]))
        .await
        .unwrap();
    again.start_container(&id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .unwrap()
        .unwrap();
    let status = again.container_status(&id).await.unwrap();
    assert_eq!(status.exit_code, Some(0), "{status:?}");
    assert_eq!(
        again.compilations(),
        0,
        "the second runtime loads compiled code from the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry"]
async fn network_only_when_the_pod_asks() {
    let node = Node::start(|o| o).await;
    let image = node
        .image("task", &skiff_test_guests::bytes(skiff_test_guests::TASK))
        .await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();

    let status = node
        .run_to_exit(task("no-network", &image, &["connect", &address]))
        .await;
    assert_eq!(status.exit_code, Some(5), "{:?}", node.log(&status));
    assert!(
        node.log(&status).0.starts_with("refused: "),
        "{:?}",
        node.log(&status)
    );

    let annotations = [(
        skiff_runtime_wasm::NETWORK_ANNOTATION.to_owned(),
        "true".to_owned(),
    )];
    let allowed = task("network", &image, &["connect", &address])
        .annotations(annotations.into_iter().collect());
    let status = node.run_to_exit(allowed).await;
    assert_eq!(status.exit_code, Some(0), "{:?}", node.log(&status));
    assert_eq!(node.log(&status).0, "connected\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry"]
async fn requests_over_the_concurrency_limit_get_503() {
    let node = Node::start(|o| o.max_concurrent_requests(1)).await;
    let image = node
        .image("http", &skiff_test_guests::bytes(skiff_test_guests::HTTP))
        .await;
    let port = free_port();
    let id = node
        .create(ContainerConfig::new("web", 0, image).port(port))
        .await;
    node.runtime.start_container(&id).await.expect("start");

    let slow = tokio::spawn(request(port, "GET", "/sleep/3000", ""));
    wait_until_in_flight(&node, &id).await;
    let (status, body) = request(port, "GET", "/", "").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(slow.await.unwrap(), (200, "slept\n".into()));
    assert_eq!(request(port, "GET", "/", "").await.0, 200);
}

/// Waits until a request of the container is in flight: its instance then
/// holds linear memory.
async fn wait_until_in_flight(node: &Node, id: &ContainerId) {
    for _ in 0..500 {
        let stats = node.runtime.container_stats(id).await.unwrap();
        if stats.memory_bytes > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no request in flight");
}
