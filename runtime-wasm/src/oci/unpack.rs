//! Getting the Wasm binary out of a single-layer container image: the layer
//! is a tar archive (plain or gzip-compressed) with exactly one `.wasm`
//! file. Synchronous, over `Read` and `Write`, so it runs on a blocking
//! thread and is tested on in-memory archives.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use super::layout::ByteSize;

/// The `.wasm` file found in a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractedWasm {
    /// Its path inside the archive.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The digest of its bytes, `sha256:<hex>`.
    pub digest: String,
}

/// Why the Wasm binary could not be taken out of a layer.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer is not an archive with exactly one `.wasm` file within the
    /// size limit; the message says which.
    #[error("{0}")]
    InvalidLayer(String),
    /// Writing the extracted bytes failed.
    #[error("writing the extracted Wasm binary failed")]
    Write(#[source] io::Error),
}

/// Copies the one `.wasm` file of the tar archive read from `archive` into
/// `wasm_out` and describes it.
///
/// Directories and files of other names are passed over; a second `.wasm`
/// file, none at all, a `.wasm` entry that is a link, or an archive that
/// unpacks to more than `max_bytes` is refused. Nothing beyond `max_bytes`
/// is read, so a compressed archive cannot blow up on the way.
pub fn extract_single_wasm(
    archive: impl Read,
    max_bytes: u64,
    wasm_out: &mut impl Write,
) -> Result<ExtractedWasm, UnpackError> {
    let mut limited = LimitedReader {
        inner: archive,
        remaining: max_bytes,
        exceeded: false,
    };
    let outcome = extract_from_tar(&mut limited, max_bytes, wasm_out);
    if limited.exceeded {
        return Err(UnpackError::InvalidLayer(format!(
            "the layer unpacks to more than the {} limit",
            ByteSize(max_bytes)
        )));
    }
    outcome
}

/// The walk over the archive's entries, behind [`extract_single_wasm`]'s
/// unpacked-size guard.
fn extract_from_tar(
    archive: impl Read,
    max_bytes: u64,
    wasm_out: &mut impl Write,
) -> Result<ExtractedWasm, UnpackError> {
    let unreadable = |error: io::Error| {
        UnpackError::InvalidLayer(format!("the layer is not a readable tar archive: {error}"))
    };
    let mut archive = tar::Archive::new(archive);
    let mut found: Option<ExtractedWasm> = None;
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let path = entry.path().map_err(unreadable)?;
        let path = path.to_string_lossy().into_owned();
        let is_wasm_name = std::path::Path::new(&path)
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("wasm"));
        let entry_type = entry.header().entry_type();
        if !is_wasm_name || entry_type.is_dir() {
            continue;
        }
        if !entry_type.is_file() {
            return Err(UnpackError::InvalidLayer(format!(
                "the layer's {path} is a {entry_type:?} entry, not a regular file"
            )));
        }
        if let Some(first) = &found {
            return Err(UnpackError::InvalidLayer(format!(
                "the layer holds more than one .wasm file: {} and {path}",
                first.path
            )));
        }
        let size = entry.header().size().map_err(unreadable)?;
        if size > max_bytes {
            return Err(UnpackError::InvalidLayer(format!(
                "{path} is {}, over the {} limit",
                ByteSize(size),
                ByteSize(max_bytes)
            )));
        }
        let digest = copy_hashing(&mut entry, wasm_out)?;
        found = Some(ExtractedWasm { path, size, digest });
    }
    found.ok_or_else(|| UnpackError::InvalidLayer("the layer holds no .wasm file".to_owned()))
}

/// Copies `from` into `to`, returning the `sha256:<hex>` digest of the bytes;
/// read failures are the archive's fault, write failures the disk's.
fn copy_hashing(from: &mut impl Read, to: &mut impl Write) -> Result<String, UnpackError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(UnpackError::InvalidLayer(format!(
                    "the layer is not a readable tar archive: {error}"
                )));
            }
        };
        hasher.update(&buffer[..read]);
        to.write_all(&buffer[..read]).map_err(UnpackError::Write)?;
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// A reader that fails once more than a budget of bytes is asked of it, and
/// remembers that it did (the tar reader wraps the error it returns).
struct LimitedReader<R> {
    /// Where the bytes come from.
    inner: R,
    /// Bytes still allowed.
    remaining: u64,
    /// Whether the budget was exceeded.
    exceeded: bool,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte beyond the budget, to tell "exactly at the limit"
        // from "over it".
        let allowed = usize::try_from(self.remaining.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        let read = self.inner.read(&mut buffer[..allowed])?;
        if read as u64 > self.remaining {
            self.exceeded = true;
            return Err(io::Error::other(
                "the unpacked layer is over the size limit",
            ));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar archive with the given entries: `(path, Some(bytes))` files and
    /// `(path, None)` directories.
    fn archive(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            match content {
                Some(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    header.set_mode(0o644);
                    builder.append_data(&mut header, path, *bytes).unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[track_caller]
    fn check(archive: &[u8], max_bytes: u64, expect: Result<(&str, &[u8]), &str>) {
        let mut out = Vec::new();
        let outcome = extract_single_wasm(archive, max_bytes, &mut out);
        match (outcome, expect) {
            (Ok(found), Ok((path, bytes))) => {
                assert_eq!(found.path, path);
                assert_eq!(out, bytes);
                assert_eq!(found.size, bytes.len() as u64);
                assert_eq!(
                    found.digest,
                    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
                );
            }
            (Err(UnpackError::InvalidLayer(reason)), Err(fragment)) => {
                assert!(reason.contains(fragment), "{reason}")
            }
            (outcome, expect) => panic!("{outcome:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn takes_the_one_wasm_file_among_directories_and_other_files() {
        let tar = archive(&[
            ("app/", None),
            ("app/README", Some(b"hello")),
            ("app/server.wasm", Some(MODULE)),
        ]);
        check(&tar, 1 << 20, Ok(("app/server.wasm", MODULE)));
        let upper_case = archive(&[("APP.WASM", Some(MODULE))]);
        check(&upper_case, 1 << 20, Ok(("APP.WASM", MODULE)));
    }

    #[test]
    fn refuses_zero_or_several_wasm_files() {
        check(
            &archive(&[("bin/", None), ("bin/tool", Some(b"#!"))]),
            1 << 20,
            Err("holds no .wasm file"),
        );
        check(
            &archive(&[("a.wasm", Some(MODULE)), ("b/c.wasm", Some(MODULE))]),
            1 << 20,
            Err("more than one .wasm file: a.wasm and b/c.wasm"),
        );
    }

    #[test]
    fn refuses_a_wasm_link() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "app.wasm", "/etc/passwd")
            .unwrap();
        let tar = builder.into_inner().unwrap();
        check(&tar, 1 << 20, Err("app.wasm is a Symlink entry"));
    }

    #[test]
    fn refuses_what_unpacks_beyond_the_limit() {
        let big = vec![7u8; 8 * 1024];
        let tar = archive(&[("big.wasm", Some(&big))]);
        check(
            &tar,
            4 * 1024,
            Err("big.wasm is 8.0 KiB, over the 4.0 KiB limit"),
        );
        // A small .wasm behind a large other file: the unpacked stream is
        // what the budget bounds.
        let tar = archive(&[("filler", Some(&big)), ("a.wasm", Some(MODULE))]);
        check(
            &tar,
            4 * 1024,
            Err("unpacks to more than the 4.0 KiB limit"),
        );
    }

    #[test]
    fn gzip_layers_unpack_through_a_decoder() {
        use flate2::{Compression, read::GzDecoder, write::GzEncoder};
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder
            .write_all(&archive(&[("m.wasm", Some(MODULE))]))
            .unwrap();
        let compressed = encoder.finish().unwrap();
        let mut out = Vec::new();
        let found =
            extract_single_wasm(GzDecoder::new(&compressed[..]), 1 << 20, &mut out).unwrap();
        assert_eq!((found.path.as_str(), out.as_slice()), ("m.wasm", MODULE));
    }

    #[test]
    fn garbage_is_not_a_tar_archive() {
        let mut out = Vec::new();
        // 512 bytes of garbage is a header with a bad checksum.
        let outcome = extract_single_wasm(&[0x5a; 1024][..], 1 << 20, &mut out);
        let Err(UnpackError::InvalidLayer(reason)) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(reason.contains("not a readable tar archive"), "{reason}");
    }
}
