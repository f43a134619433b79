//! Builds the Wasm test guests from their Rust sources in `guests/` and tells
//! the library where the `.wasm` files are.
//!
//! `guests/` is a cargo workspace of its own, built by a nested `cargo build`
//! for the Wasm targets into `$OUT_DIR/guests-target` (the outer cargo holds
//! the lock on its own target dir). The nested cargo must not see what the
//! outer cargo told this script about the host build (flags, target, target
//! dir, jobserver, clippy's wrapper, package metadata), so that environment is
//! scrubbed before it runs. The paths reach `src/lib.rs` as
//! `SKIFF_TEST_GUEST_*` compile-time environment variables.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target of the component guests (`wasi:cli/run`, `wasi:http`).
const COMPONENT_TARGET: &str = "wasm32-wasip2";
/// The target of the core-module build of the task guest.
const CORE_MODULE_TARGET: &str = "wasm32-wasip1";

/// One nested `cargo build`: a target and the guest packages built for it.
struct NestedBuild {
    target: &'static str,
    packages: &'static [&'static str],
}

/// The nested builds, in order: every guest as a component, then the task
/// once more as a core module.
const NESTED_BUILDS: &[NestedBuild] = &[
    NestedBuild {
        target: COMPONENT_TARGET,
        packages: &["task", "http"],
    },
    NestedBuild {
        target: CORE_MODULE_TARGET,
        packages: &["task"],
    },
];

/// One built guest and the compile-time variable that carries its path.
struct GuestArtifact {
    variable: &'static str,
    target: &'static str,
    file_name: &'static str,
}

/// The guests the library exposes.
const GUEST_ARTIFACTS: &[GuestArtifact] = &[
    GuestArtifact {
        variable: "SKIFF_TEST_GUEST_TASK",
        target: COMPONENT_TARGET,
        file_name: "task.wasm",
    },
    GuestArtifact {
        variable: "SKIFF_TEST_GUEST_TASK_P1",
        target: CORE_MODULE_TARGET,
        file_name: "task.wasm",
    },
    GuestArtifact {
        variable: "SKIFF_TEST_GUEST_HTTP",
        target: COMPONENT_TARGET,
        file_name: "http.wasm",
    },
];

/// Variables the outer cargo (or the user, for the outer build) sets that
/// would change or break the nested build.
const SCRUBBED_VARIABLES: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_RUSTDOCFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_RUSTC_CURRENT_DIR",
    "CARGO_INCREMENTAL",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTC_LINKER",
];

/// Prefixes of variables scrubbed the same way: the host target's cfgs, this
/// package's features and metadata, profile overrides (the guests have their
/// own profile) and `links` metadata of dependencies.
const SCRUBBED_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_PROFILE_",
    "DEP_",
];

fn main() {
    let manifest_dir = PathBuf::from(required_variable("CARGO_MANIFEST_DIR"));
    let guests_workspace = manifest_dir.join("guests");
    let guests_target_dir = PathBuf::from(required_variable("OUT_DIR")).join("guests-target");

    emit_rerun_if_changed(&guests_workspace);

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    for target in [COMPONENT_TARGET, CORE_MODULE_TARGET] {
        if !target_is_installed(&rustc, target) {
            fail(&format!(
                "the {target} target is missing: run `make deps` \
                 (or `rustup target add {COMPONENT_TARGET} {CORE_MODULE_TARGET}`)"
            ));
        }
    }

    for nested_build in NESTED_BUILDS {
        run_nested_build(&guests_workspace, &guests_target_dir, nested_build);
    }

    for artifact in GUEST_ARTIFACTS {
        let path = guests_target_dir
            .join(artifact.target)
            .join("release")
            .join(artifact.file_name);
        if !path.is_file() {
            fail(&format!(
                "the nested build succeeded but {} is missing",
                path.display()
            ));
        }
        let Some(path) = path.to_str() else {
            fail(&format!(
                "the guest path {} is not UTF-8, so it cannot be a `&str` constant",
                path.display()
            ));
        };
        println!("cargo::rustc-env={}={path}", artifact.variable);
    }
}

/// Asks cargo to rerun this script when a guest's source or manifest, or the
/// guests' workspace manifest or lockfile, changes; never for a `target/` a
/// manual build may have left in `guests/`.
fn emit_rerun_if_changed(guests_workspace: &Path) {
    for workspace_file in ["Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo::rerun-if-changed={}",
            guests_workspace.join(workspace_file).display()
        );
    }
    let entries = std::fs::read_dir(guests_workspace).unwrap_or_else(|error| {
        fail(&format!(
            "cannot list the guests at {}: {error}",
            guests_workspace.display()
        ))
    });
    for entry in entries.flatten() {
        let crate_dir = entry.path();
        if crate_dir.join("Cargo.toml").is_file() {
            println!(
                "cargo::rerun-if-changed={}",
                crate_dir.join("Cargo.toml").display()
            );
            println!(
                "cargo::rerun-if-changed={}",
                crate_dir.join("src").display()
            );
        }
    }
}

/// Whether rustc has the standard library for `target` (rustup installs it
/// per target; without it the nested build fails on a missing `core`).
fn target_is_installed(rustc: &OsString, target: &str) -> bool {
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", target])
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(output) if output.status.success() => {
            let library_dir = String::from_utf8_lossy(&output.stdout);
            Path::new(library_dir.trim()).is_dir()
        }
        _ => false,
    }
}

/// Runs one nested `cargo build --release` of the guests workspace.
fn run_nested_build(guests_workspace: &Path, guests_target_dir: &Path, nested_build: &NestedBuild) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(guests_workspace)
        .arg("build")
        .arg("--release")
        // The lockfile is committed: never rewrite it, and need no network
        // when the crates are already in cargo's cache.
        .arg("--locked")
        .arg("--target")
        .arg(nested_build.target)
        .arg("--manifest-path")
        .arg(guests_workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(guests_target_dir);
    for package in nested_build.packages {
        command.arg("--package").arg(package);
    }
    // The outer build's parallelism, since the jobserver is not passed on.
    if let Some(jobs) = env::var_os("NUM_JOBS") {
        command.arg("--jobs").arg(jobs);
    }
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if SCRUBBED_VARIABLES.contains(&name)
            || SCRUBBED_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name);
        }
    }
    // A build script's stdout is read by cargo as directives: keep the nested
    // cargo's output on stderr, which cargo shows when the build fails.
    command.stdout(Stdio::from(std::io::stderr()));

    eprintln!("running: {command:?}");
    let status = command.status().unwrap_or_else(|error| {
        fail(&format!(
            "cannot run the nested cargo for the guests: {error}"
        ))
    });
    if !status.success() {
        fail(&format!(
            "building the {} guests ({}) failed with {status}; see the output above",
            nested_build.target,
            nested_build.packages.join(", ")
        ));
    }
}

/// A variable cargo always sets for build scripts.
fn required_variable(name: &str) -> OsString {
    env::var_os(name).unwrap_or_else(|| fail(&format!("cargo did not set {name}")))
}

/// Reports `message` as a build error and stops the script.
fn fail(message: &str) -> ! {
    println!("cargo::error={message}");
    std::process::exit(1);
}
