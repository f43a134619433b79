//! `exec` in a running container beyond the conformance suite: the
//! container's own settings (environment, hostname) and a missing program.

use std::time::Duration;

use skiff_runtime_oci::{OciRuntime, OciRuntimeOptions};
use skiff_sdk::runtime::{
    ContainerConfig, ContainerState, ExecRequest, ImageSpec, Runtime, SandboxConfig,
    SandboxMetadata, TerminalSize,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::busybox::{self, Layout};
use crate::support::containerd::{TestContainerd, namespace};
use crate::support::registry::TestRegistry;
use crate::support::skip_or_fail;

/// A bound on every wait of the test.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, containerd and docker-registry"]
async fn exec_runs_a_command_in_a_running_container() {
    crate::support::init_tracing();
    if !busybox::available() {
        skip_or_fail("/bin/busybox is not installed (Debian package busybox-static)");
        return;
    }
    let Some(containerd) = TestContainerd::shared() else {
        return;
    };
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let image = busybox::push_busybox(&registry, "exec:v1", Layout::SinglePlatform, None)
        .await
        .reference;
    let dir = tempfile::tempdir().unwrap();
    let runtime = OciRuntime::open(
        OciRuntimeOptions::new(dir.path().join("state"))
            .socket(containerd.socket())
            .namespace(namespace("exec"))
            .cgroup_parent(format!("/skiff-test/{}", namespace("exec"))),
    )
    .await
    .expect("open the OCI runtime");
    runtime
        .pull_image(&ImageSpec::new(&image), &registry.pull_options())
        .await
        .unwrap();
    let sandbox = runtime
        .run_sandbox(&SandboxConfig::new(
            SandboxMetadata::new("default", "exec", "uid-exec"),
            "runc",
            dir.path().join("logs"),
        ))
        .await
        .unwrap();
    let config = ContainerConfig::new("c", 0, ImageSpec::new(&image))
        .command(vec![
            "sh".into(),
            "-c".into(),
            "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done".into(),
        ])
        .env("GREETING", "from the container");
    let container = runtime.create_container(&sandbox, &config).await.unwrap();
    runtime.start_container(&container).await.unwrap();

    let script = "echo out \"$GREETING\"; echo err >&2; cat; hostname; exit 3";
    let mut process = runtime
        .exec(
            &container,
            ExecRequest::new(["sh", "-c", script]).stdin(true),
        )
        .await
        .expect("exec");
    let mut stdin = process.stdin.take().expect("stdin");
    stdin.write_all(b"typed in\n").await.unwrap();
    drop(stdin);
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let (out, err, code) = tokio::time::timeout(PATIENCE, async {
        tokio::join!(
            process.stdout.read_to_string(&mut stdout),
            process.stderr.read_to_string(&mut stderr),
            process.exit
        )
    })
    .await
    .expect("the exec ends");
    out.unwrap();
    err.unwrap();
    assert_eq!(code.unwrap(), 3);
    assert_eq!(stdout, "out from the container\ntyped in\nexec\n");
    assert_eq!(stderr, "err\n");

    // A command that does not exist fails the exec process, not the call
    // nor the container.
    let missing = runtime
        .exec(&container, ExecRequest::new(["/no/such/program"]))
        .await;
    if let Ok(process) = missing {
        assert_ne!(process.exit.await.unwrap_or(-1), 0);
    }
    let status = runtime.container_status(&container).await.unwrap();
    assert_eq!(status.state, ContainerState::Running);

    // A terminal: its size as given, then as resized; output and input
    // through it (no stderr of its own).
    let script = "stty size; read line; \
        for i in $(seq 100); do [ \"$(stty size)\" = '20 100' ] && break; sleep 0.1; done; \
        stty size; echo \"got $line\"";
    let mut process = runtime
        .exec(
            &container,
            ExecRequest::new(["sh", "-c", script])
                .stdin(true)
                .tty(Some(TerminalSize {
                    width: 111,
                    height: 33,
                })),
        )
        .await
        .expect("exec with a terminal");
    let resize = process.resize.take().expect("a terminal takes resizes");
    let mut stdin = process.stdin.take().expect("stdin");
    let mut output = Vec::new();
    let mut chunk = [0; 256];
    tokio::time::timeout(PATIENCE, async {
        while !String::from_utf8_lossy(&output).contains("33 111") {
            let n = process.stdout.read(&mut chunk).await.unwrap();
            assert_ne!(
                n,
                0,
                "the terminal ended early: {:?}",
                String::from_utf8_lossy(&output)
            );
            output.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the first size");
    resize.send_replace(TerminalSize {
        width: 100,
        height: 20,
    });
    stdin.write_all(b"typed\r").await.unwrap();
    tokio::time::timeout(PATIENCE, process.stdout.read_to_end(&mut output))
        .await
        .expect("the terminal ends")
        .unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, process.exit)
            .await
            .expect("exit")
            .unwrap(),
        0
    );
    let output = String::from_utf8_lossy(&output).replace('\r', "");
    assert!(
        output.contains("33 111\n")
            && output.contains("20 100\n")
            && output.contains("got typed\n"),
        "{output:?}"
    );

    runtime.remove_sandbox(&sandbox).await.unwrap();
}
