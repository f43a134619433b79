//! What a container cannot do, checked from inside a real one: the
//! capability set, `no_new_privs`, the masked and read-only `/proc` paths,
//! the seccomp filter, a read-only root filesystem when asked, and the
//! pod's hostname and shared IPC namespace.

use std::time::Duration;

use skiff_runtime_oci::{OciRuntime, OciRuntimeOptions};
use skiff_sdk::runtime::log::{Stream, parse_line};
use skiff_sdk::runtime::{
    ContainerConfig, ContainerState, ImageSpec, Runtime, SandboxConfig, SandboxMetadata, Security,
};

use crate::support::busybox::{self, Layout};
use crate::support::containerd::{TestContainerd, namespace};
use crate::support::registry::TestRegistry;
use crate::support::skip_or_fail;

/// How long a container may take to run to its end.
const PATIENCE: Duration = Duration::from_secs(60);

struct Setup {
    runtime: OciRuntime,
    image: String,
    dir: tempfile::TempDir,
    _registry: TestRegistry,
}

impl Setup {
    async fn new(test: &str) -> Option<Setup> {
        crate::support::init_tracing();
        if !busybox::available() {
            skip_or_fail("/bin/busybox is not installed (Debian package busybox-static)");
            return None;
        }
        let containerd = TestContainerd::shared()?;
        let registry = TestRegistry::start()?;
        let pushed =
            busybox::push_busybox(&registry, "hardening:v1", Layout::SinglePlatform, None).await;
        let dir = tempfile::tempdir().unwrap();
        let runtime = OciRuntime::open(
            OciRuntimeOptions::new(dir.path().join("state"))
                .socket(containerd.socket())
                .namespace(namespace(test))
                .cgroup_parent(format!("/skiff-test/{}", namespace(test))),
        )
        .await
        .expect("open the OCI runtime");
        runtime
            .pull_image(&ImageSpec::new(&pushed.reference), &registry.pull_options())
            .await
            .expect("pull busybox");
        Some(Setup {
            runtime,
            image: pushed.reference,
            dir,
            _registry: registry,
        })
    }

    /// Runs `script` in a new sandbox (pod `pod`) with `security`, to its
    /// end: its exit code and stdout.
    async fn run(&self, pod: &str, script: &str, security: Security) -> (i32, String) {
        let sandbox = self
            .runtime
            .run_sandbox(&SandboxConfig::new(
                SandboxMetadata::new("default", pod, format!("uid-{pod}")),
                "runc",
                self.dir.path().join("logs").join(pod),
            ))
            .await
            .expect("run a sandbox");
        let config = ContainerConfig::new("c", 0, ImageSpec::new(&self.image))
            .command(vec!["sh".into(), "-c".into(), script.into()])
            .security(security);
        let container = self
            .runtime
            .create_container(&sandbox, &config)
            .await
            .expect("create the container");
        self.runtime
            .start_container(&container)
            .await
            .expect("start the container");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let status = loop {
            let status = self.runtime.container_status(&container).await.unwrap();
            if status.state == ContainerState::Exited {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the container did not end within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let log = std::fs::read(&status.log_path).expect("the container's log");
        let stdout: String = log
            .split_inclusive(|b| *b == b'\n')
            .filter_map(|line| parse_line(line).ok())
            .filter(|line| line.stream == Stream::Stdout)
            .map(|line| {
                let mut text = String::from_utf8_lossy(line.content).into_owned();
                if line.tag == skiff_sdk::runtime::log::Tag::Full {
                    text.push('\n');
                }
                text
            })
            .collect();
        self.runtime.remove_sandbox(&sandbox).await.unwrap();
        (status.exit_code.expect("an exit code"), stdout)
    }
}

/// The value of `field` in /proc/self/status as the container printed it.
fn field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, containerd and docker-registry"]
async fn a_container_runs_with_the_default_restrictions() {
    let Some(setup) = Setup::new("hardening-default").await else {
        return;
    };
    let (code, out) = setup
        .run(
            "web-0",
            "cat /proc/self/status; \
             echo kcore=$(wc -c < /proc/kcore 2>/dev/null || echo none); \
             echo sysrq=$(echo x 2>/dev/null > /proc/sysrq-trigger && echo written || echo refused); \
             echo mount=$(mount -t tmpfs tmpfs /tmp 2>/dev/null && echo mounted || echo refused); \
             echo hostname=$(hostname); \
             echo rootfs=$(echo x 2>/dev/null > /written && echo written || echo refused)",
            Security::default(),
        )
        .await;
    assert_eq!(code, 0, "{out}");
    // containerd's default set: chown, dac_override, fowner, fsetid, kill,
    // setgid, setuid, setpcap, net_bind_service, net_raw, sys_chroot,
    // mknod, audit_write, setfcap.
    assert_eq!(field(&out, "CapEff"), "00000000a80425fb", "{out}");
    assert_eq!(field(&out, "CapBnd"), "00000000a80425fb", "{out}");
    assert_eq!(field(&out, "CapInh"), "0000000000000000", "{out}");
    assert_eq!(field(&out, "CapAmb"), "0000000000000000", "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "1", "{out}");
    assert_eq!(field(&out, "Seccomp"), "2", "a seccomp filter: {out}");
    // Masked: an empty file where the kernel has one, else absent.
    assert!(
        out.contains("kcore=0\n") || out.contains("kcore=none\n"),
        "{out}"
    );
    assert!(
        out.contains("sysrq=refused\n"),
        "read-only /proc/sysrq-trigger: {out}"
    );
    assert!(
        out.contains("mount=refused\n"),
        "no mounts without SYS_ADMIN: {out}"
    );
    assert!(
        out.contains("hostname=web-0\n"),
        "the pod's hostname: {out}"
    );
    assert!(
        out.contains("rootfs=written\n"),
        "a writable root by default: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, containerd and docker-registry"]
async fn the_security_context_is_applied() {
    let Some(setup) = Setup::new("hardening-context").await else {
        return;
    };
    let (code, out) = setup
        .run(
            "ctx",
            "grep -E '^(Cap|NoNewPrivs|Uid|Gid|Groups)' /proc/self/status; \
             echo rootfs=$(echo x 2>/dev/null > /written && echo written || echo refused); \
             echo tmp=$(echo x 2>/dev/null > /tmp/written && echo written || echo refused)",
            Security {
                run_as_user: Some(1000),
                run_as_group: Some(2000),
                supplemental_groups: vec![3000],
                read_only_root_filesystem: true,
                capabilities_drop: vec!["ALL".into()],
                capabilities_add: vec!["NET_BIND_SERVICE".into()],
                allow_privilege_escalation: Some(false),
                ..Security::default()
            },
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(field(&out, "Uid").starts_with("1000\t"), "{out}");
    assert!(field(&out, "Gid").starts_with("2000\t"), "{out}");
    assert_eq!(field(&out, "Groups"), "3000", "{out}");
    // Only NET_BIND_SERVICE (bit 10) may be held; a non-root process has
    // none effective.
    assert_eq!(field(&out, "CapBnd"), "0000000000000400", "{out}");
    assert_eq!(field(&out, "CapEff"), "0000000000000000", "{out}");
    assert!(out.contains("rootfs=refused\n"), "a read-only root: {out}");
    assert!(out.contains("tmp=refused\n"), "{out}");
}
