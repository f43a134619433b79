//! `skiff server` with its local agent: the node registers, a Wasm HTTP pod
//! pulled from a registry runs and answers at its address, `kubectl logs`
//! reaches it through the API server, `kubectl exec` and `skiff exec` get
//! the Wasm runtime's refusal, and SIGTERM stops it all cleanly.
//! Needs docker-registry, kubectl and the examples built (`make test`
//! provides them; otherwise the test says what is missing and passes).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::{Registry, ScratchDir};

/// The hello-http example as `make build-examples` builds it.
fn hello_http() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/target/wasm32-wasip2/release/hello_http.wasm");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("SKIFF_TEST_REAL").is_none(),
        "SKIFF_TEST_REAL is set but {} is missing: run `make build-examples`",
        path.display()
    );
    eprintln!(
        "skipping: {} is not built (make build-examples)",
        path.display()
    );
    None
}

fn kubectl_installed() -> bool {
    let found = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("SKIFF_TEST_REAL").is_none(),
            "SKIFF_TEST_REAL is set but kubectl is missing: run `make deps`"
        );
        eprintln!("skipping: kubectl is not installed (Debian package kubernetes-client)");
    }
    found
}

/// A `skiff server` child, killed if the test ends early.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--request-timeout=15s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write to kubectl");
    }
    drop(input);
    let output = child.wait_with_output().expect("kubectl output");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Polls `check` every 200 ms for up to `timeout`; the last answer on failure.
fn eventually(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<String, String>,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn http_get(address: &str, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer.starts_with("HTTP/1.1 200") {
        Ok(answer)
    } else {
        Err(answer)
    }
}

#[test]
fn the_local_agent_runs_a_wasm_pod_and_serves_its_logs() {
    let (Some(registry), Some(wasm)) = (Registry::start(), hello_http()) else {
        return;
    };
    if !kubectl_installed() {
        return;
    }
    let dir = ScratchDir::new("local-agent");
    let skiff = env!("CARGO_BIN_EXE_skiff");
    let image = registry.reference("hello-http:v1");
    let pushed = Command::new(skiff)
        .args(["push", wasm.to_str().unwrap(), &image, "--insecure"])
        .output()
        .expect("skiff push");
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let data = dir.path().join("data");
    let registry_host = image.split('/').next().unwrap().to_owned();
    let mut server = Server(
        Command::new(skiff)
            .args([
                "server",
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--name", "local", "--node-api-listen", "127.0.0.1:0"])
            .args(["--pod-address-range", "127.3.0.0/24"])
            .args(["--insecure-registry", &registry_host])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start skiff server"),
    );
    let mut ready = String::new();
    BufReader::new(server.0.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("the server's first line");
    assert!(
        ready.starts_with("skiff server ready: API https://127.0.0.1:"),
        "{ready}"
    );
    let kubeconfig = data.join("kubeconfig");

    let labels = eventually(Duration::from_secs(30), "the node registers", || {
        let (ok, out) = kubectl(
            &kubeconfig,
            &["get", "node", "local", "-o", "jsonpath={.metadata.labels}"],
            None,
        );
        if ok { Ok(out) } else { Err(out) }
    });
    assert!(
        labels.contains(r#""skiff.dev/wasm-enabled":"true""#),
        "{labels}"
    );
    assert!(
        labels.contains(r#""skiff.dev/wasi-http":"true""#),
        "{labels}"
    );

    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hello}}\nspec:\n  runtimeClassName: wasmtime\n  containers:\n  - name: hello\n    image: {image}\n    ports: [{{containerPort: 8080}}]\n    readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}\n"
    );
    let (ok, out) = kubectl(&kubeconfig, &["apply", "-f", "-"], Some(&manifest));
    assert!(ok, "{out}");
    let address = eventually(Duration::from_secs(60), "the pod is Ready", || {
        let (_, out) = kubectl(
            &kubeconfig,
            &[
                "get",
                "pod",
                "hello",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.podIP}"#,
            ],
            None,
        );
        match out.trim().split_once(' ') {
            Some(("True", ip)) => Ok(format!("{ip}:8080")),
            _ => Err(out),
        }
    });
    assert!(
        address.starts_with("127.3.0."),
        "the pod's own address: {address}"
    );
    let answer = eventually(Duration::from_secs(10), "the pod answers", || {
        http_get(&address, "/")
    });
    assert!(answer.contains("hello from skiff"), "{answer}");

    let logs = eventually(Duration::from_secs(10), "kubectl logs", || {
        let (ok, out) = kubectl(&kubeconfig, &["logs", "hello"], None);
        if ok && out.lines().any(|l| l == "GET /") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(logs.lines().any(|l| l == "GET /healthz"), "{logs}");

    // exec reaches the node API and the Wasm runtime, which refuses it with
    // a message both CLIs print.
    let (ok, out) = kubectl(&kubeconfig, &["exec", "hello", "--", "ls"], None);
    assert!(!ok, "{out}");
    assert!(
        out.contains("error: exec is not supported for Wasm pods"),
        "{out}"
    );
    let exec = Command::new(skiff)
        .args([
            "exec",
            "hello",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .args(["--", "ls"])
        .output()
        .expect("skiff exec");
    assert!(!exec.status.success());
    assert_eq!(
        String::from_utf8_lossy(&exec.stderr),
        "error: exec is not supported for Wasm pods\n"
    );

    let (ok, out) = kubectl(
        &kubeconfig,
        &["delete", "pod", "hello", "--timeout=30s"],
        None,
    );
    assert!(ok, "{out}");
    assert!(
        http_get(&address, "/").is_err(),
        "the pod's listener is gone"
    );

    let stopped = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status}");
}
