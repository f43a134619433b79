//! `skiff push FILE.wasm REF` then `skiff pull REF`: the bytes come back
//! identical under the digest push printed; progress goes to stderr, the
//! result to stdout; failures exit non-zero with the cause chain.

use std::path::Path;
use std::process::{Command, Output};

use crate::registry::{Registry, ScratchDir};

/// Runs the `skiff` binary in `dir` with `args`, standard input empty.
fn skiff(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run skiff")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A valid core module of about `size` bytes (one custom section).
fn module(size: usize) -> Vec<u8> {
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    let name = b"pad";
    let payload = vec![7u8; size];
    let section_len = 1 + name.len() + payload.len();
    module.push(0);
    let mut value = section_len as u64;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            module.push(byte);
            break;
        }
        module.push(byte | 0x80);
    }
    module.push(name.len() as u8);
    module.extend_from_slice(name);
    module.extend(payload);
    module
}

#[test]
fn push_then_pull_gives_back_the_same_bytes() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let dir = ScratchDir::new("push-pull");
    let wasm = module(600 * 1024);
    std::fs::write(dir.path().join("hello.wasm"), &wasm).unwrap();
    let reference = registry.reference("apps/hello:v1");

    let pushed = skiff(
        dir.path(),
        &["push", "hello.wasm", &reference, "--insecure"],
    );
    let (stdout, stderr) = (text(&pushed.stdout), text(&pushed.stderr));
    assert!(pushed.status.success(), "push failed:\n{stderr}");
    let digest = stdout
        .trim()
        .strip_prefix(&format!("pushed {reference}@"))
        .unwrap_or_else(|| panic!("unexpected push output {stdout:?}"))
        .to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    // Not a terminal: a line per quarter, ending at the full size.
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("pushing "))
        .collect();
    assert_eq!(
        progress.first(),
        Some(&"pushing 0 B / 600.0 KiB"),
        "{stderr}"
    );
    assert!(
        progress.contains(&"pushing 600.0 KiB / 600.0 KiB"),
        "{stderr}"
    );
    assert_eq!(progress.last(), Some(&"pushing manifest"), "{stderr}");
    assert!(progress.len() <= 6, "at most a line per quarter: {stderr}");

    // Default file name: the repository's last segment.
    let out = ScratchDir::new("pull");
    let pulled = skiff(out.path(), &["pull", &reference, "--insecure"]);
    assert!(
        pulled.status.success(),
        "pull failed:\n{}",
        text(&pulled.stderr)
    );
    assert_eq!(
        text(&pulled.stdout).trim(),
        format!(
            "pulled {reference}@{digest} to hello.wasm ({} bytes)",
            wasm.len()
        )
    );
    assert_eq!(std::fs::read(out.path().join("hello.wasm")).unwrap(), wasm);

    // By digest, into a named file.
    let pinned = format!("{}@{digest}", registry.reference("apps/hello"));
    let pulled = skiff(
        out.path(),
        &["pull", &pinned, "--insecure", "-o", "copy.wasm"],
    );
    assert!(pulled.status.success(), "{}", text(&pulled.stderr));
    assert_eq!(
        text(&pulled.stdout).trim(),
        format!("pulled {pinned} to copy.wasm ({} bytes)", wasm.len())
    );
    assert_eq!(std::fs::read(out.path().join("copy.wasm")).unwrap(), wasm);
}

#[test]
fn failures_exit_non_zero_with_the_cause_chain() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let dir = ScratchDir::new("failures");

    // A tag the registry does not have.
    let missing = registry.reference("nothing:here");
    let pulled = skiff(dir.path(), &["pull", &missing, "--insecure"]);
    let stderr = text(&pulled.stderr);
    assert!(!pulled.status.success());
    assert!(
        stderr.contains(&format!("skiff: error: pulling image {missing} failed: ")),
        "{stderr}"
    );
    assert!(!dir.path().join("nothing.wasm").exists());

    // Not Wasm.
    std::fs::write(dir.path().join("script.wasm"), b"#!/bin/sh\n").unwrap();
    let pushed = skiff(
        dir.path(),
        &[
            "push",
            "script.wasm",
            &registry.reference("script:v1"),
            "--insecure",
        ],
    );
    let stderr = text(&pushed.stderr);
    assert!(!pushed.status.success());
    assert!(stderr.contains("\\0asm magic"), "{stderr}");

    // HTTPS (the default) to a plain-HTTP registry.
    std::fs::write(dir.path().join("ok.wasm"), module(10)).unwrap();
    let pushed = skiff(
        dir.path(),
        &["push", "ok.wasm", &registry.reference("ok:v1")],
    );
    let stderr = text(&pushed.stderr);
    assert!(!pushed.status.success());
    assert!(
        stderr.starts_with("skiff: error: pushing ok.wasm to "),
        "{stderr}"
    );

    // A file that is not there.
    let pushed = skiff(
        dir.path(),
        &[
            "push",
            "absent.wasm",
            &registry.reference("x:v1"),
            "--insecure",
        ],
    );
    assert!(!pushed.status.success());
    assert!(
        text(&pushed.stderr).contains("reading absent.wasm: No such file"),
        "{}",
        text(&pushed.stderr)
    );
}
