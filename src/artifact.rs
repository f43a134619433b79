//! `skiff push` and `skiff pull`: Wasm binaries to and from OCI registries,
//! over `skiff_runtime_wasm::oci`. This file reads the flags, the file and
//! the password, and shows progress; the registry work is the library's.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use skiff_runtime_wasm::oci::{
    ByteSize, DEFAULT_MAX_ARTIFACT_BYTES, PushOptions, PushProgress, fetch_wasm, push_wasm,
};
use skiff_sdk::runtime::{PullOptions, RegistryAuth};

use crate::cli::{PullArgs, PushArgs, RegistryArgs};

/// `skiff push FILE.wasm REF`: pushes the file as a Wasm OCI artifact,
/// progress on stderr, `pushed REF@sha256:…` on stdout.
pub fn push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let wasm =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let auth = registry_auth(&args.registry, &mut std::io::stdin().lock())?;
    let options = PushOptions::default()
        .auth(auth)
        .insecure(args.registry.insecure);
    let mut progress = PushProgressLine::new(std::io::stderr().is_terminal());
    let pushed = runtime()?.block_on(push_wasm(&wasm, &args.reference, &options, &mut |step| {
        progress.show(step)
    }));
    progress.finish();
    let pushed =
        pushed.with_context(|| format!("pushing {} to {}", args.file.display(), args.reference))?;
    println!("pushed {}@{}", args.reference, pushed.digest);
    Ok(ExitCode::SUCCESS)
}

/// `skiff pull REF [-o FILE]`: writes the Wasm bytes REF names to FILE and
/// prints `pulled REF@sha256:… to FILE (N bytes)`.
pub fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    let output = match args.output {
        Some(output) => output,
        None => PathBuf::from(default_output_file(&args.reference)?),
    };
    let auth = registry_auth(&args.registry, &mut std::io::stdin().lock())?;
    let options = PullOptions::default()
        .auth(auth)
        .insecure(args.registry.insecure);
    let (wasm, digest) = runtime()?.block_on(fetch_wasm(
        &args.reference,
        &options,
        DEFAULT_MAX_ARTIFACT_BYTES,
    ))?;
    write_file(&output, &wasm)?;
    let pinned = if args.reference.contains('@') {
        args.reference.clone()
    } else {
        format!("{}@{digest}", args.reference)
    };
    println!(
        "pulled {pinned} to {} ({} bytes)",
        output.display(),
        wasm.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// A single-threaded async runtime: one push or pull needs no more.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The credentials the flags ask for: basic with the password read from
/// `stdin`, or anonymous.
fn registry_auth(
    flags: &RegistryArgs,
    stdin: &mut impl std::io::Read,
) -> anyhow::Result<RegistryAuth> {
    let Some(username) = &flags.username else {
        return Ok(RegistryAuth::Anonymous);
    };
    let mut password = String::new();
    stdin
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password
        .strip_suffix('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .unwrap_or(&password);
    if password.is_empty() {
        bail!("--password-stdin: standard input held no password");
    }
    Ok(RegistryAuth::Basic {
        username: username.clone(),
        password: password.to_owned(),
    })
}

/// The file `skiff pull` writes without `-o`: the last path segment of the
/// repository plus `.wasm` (`r.io/apps/hello:v1` → `hello.wasm`).
fn default_output_file(reference: &str) -> anyhow::Result<String> {
    let name = reference.split('@').next().unwrap_or(reference);
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    let repository = last_segment.split(':').next().unwrap_or(last_segment);
    if repository.is_empty() || repository.starts_with('.') {
        bail!("cannot name a file after {reference:?}; pass -o FILE");
    }
    Ok(format!("{repository}.wasm"))
}

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// so a failed pull leaves no half-written file.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_file_name(format!(
        ".{}.partial",
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let written = std::fs::File::create(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// The progress of a push on stderr: one line updated in place on a
/// terminal, else a line at 0, 25, 50, 75 and 100 %.
struct PushProgressLine {
    /// Whether stderr is a terminal.
    on_terminal: bool,
    /// The last quarter printed (when not on a terminal).
    last_quarter: Option<u64>,
    /// Whether a line is open on the terminal.
    line_open: bool,
}

impl PushProgressLine {
    fn new(on_terminal: bool) -> Self {
        PushProgressLine {
            on_terminal,
            last_quarter: None,
            line_open: false,
        }
    }

    fn show(&mut self, step: PushProgress) {
        let mut stderr = std::io::stderr().lock();
        // Progress that cannot be shown is no reason to fail the push.
        let _ = match step {
            PushProgress::Layer { sent, total } => {
                let line = format!("pushing {} / {}", ByteSize(sent), ByteSize(total));
                if self.on_terminal {
                    self.line_open = true;
                    write!(stderr, "\r\x1b[2K{line}").and_then(|()| stderr.flush())
                } else {
                    let quarter = (sent * 4).checked_div(total).unwrap_or(4);
                    if self.last_quarter.is_none_or(|last| quarter > last) {
                        self.last_quarter = Some(quarter);
                        writeln!(stderr, "{line}")
                    } else {
                        Ok(())
                    }
                }
            }
            PushProgress::Manifest => {
                self.finish_line(&mut stderr);
                writeln!(stderr, "pushing manifest")
            }
        };
    }

    /// Ends the line left open on the terminal, if any.
    fn finish(&mut self) {
        self.finish_line(&mut std::io::stderr().lock());
    }

    fn finish_line(&mut self, stderr: &mut impl std::io::Write) {
        if std::mem::take(&mut self.line_open) {
            let _ = writeln!(stderr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_names_come_from_the_repository() {
        for (reference, file) in [
            ("127.0.0.1:5000/apps/hello:v1", "hello.wasm"),
            ("registry.example/hello", "hello.wasm"),
            ("hello", "hello.wasm"),
            (
                "r.io/apps/hello@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "hello.wasm",
            ),
            ("localhost:5000/app:latest", "app.wasm"),
        ] {
            assert_eq!(default_output_file(reference).unwrap(), file, "{reference}");
        }
        assert!(default_output_file("r.io/").is_err());
    }

    fn flags(username: Option<&str>) -> RegistryArgs {
        RegistryArgs {
            insecure: false,
            username: username.map(str::to_owned),
            password_stdin: username.is_some(),
        }
    }

    #[test]
    fn passwords_come_from_stdin_without_the_trailing_newline() {
        let basic = |password: &str| RegistryAuth::Basic {
            username: "ci".into(),
            password: password.into(),
        };
        for (input, password) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret", "s3cret"),
            ("two words \n\n", "two words \n"),
        ] {
            let auth = registry_auth(&flags(Some("ci")), &mut input.as_bytes()).unwrap();
            assert_eq!(auth, basic(password), "{input:?}");
        }
        assert!(registry_auth(&flags(Some("ci")), &mut &b"\n"[..]).is_err());
        assert_eq!(
            registry_auth(&flags(None), &mut &b"ignored"[..]).unwrap(),
            RegistryAuth::Anonymous
        );
    }

    #[test]
    fn written_files_replace_whole() {
        let dir = std::env::temp_dir().join(format!("skiff-artifact-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.wasm");
        write_file(&path, b"first").unwrap();
        write_file(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no partial file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
