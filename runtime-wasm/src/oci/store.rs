//! The node's store of pulled Wasm artifacts: verified Wasm bytes by digest
//! under `blobs/sha256/<hex>`, and an index (`index.json`) from references
//! to manifest digests to blobs, so that what was pulled survives a restart
//! of the agent.
//!
//! Blobs are downloaded into `tmp/` and renamed into place only once every
//! check passed; the rename, the index update and its atomic save happen
//! under one lock, as do removals, so a blob is never deleted while a pull
//! is recording it.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use skiff_sdk::runtime::{ImageInfo, ImageSpec, ObjectKind, PullOptions, RuntimeError};

use super::index::{INDEX_FORMAT_VERSION, LocalName, StoreIndex};
use super::registry::{self, DownloadedWasm, RegistrySession};
use super::{Artifact, DEFAULT_MAX_ARTIFACT_BYTES};

/// Name of the index file in the store directory.
const INDEX_FILE: &str = "index.json";
/// Directory of blobs, by algorithm and hex digest.
const BLOBS_DIR: &str = "blobs/sha256";
/// Directory of downloads in progress (emptied when the store opens).
const SCRATCH_DIR: &str = "tmp";

/// Local store of pulled Wasm artifacts under a directory (the runtime
/// passes `<state_dir>/artifacts`). Cheap to share behind an `Arc`; every
/// method may be called concurrently.
#[derive(Debug)]
pub struct ArtifactStore {
    /// The store directory.
    dir: PathBuf,
    /// Largest artifact (download and unpacked Wasm) a pull accepts.
    max_artifact_bytes: u64,
    /// The index, as saved on disk; its lock also orders blob renames and
    /// deletions.
    index: Mutex<StoreIndex>,
}

impl ArtifactStore {
    /// Opens (creating it if needed) the store in `dir` and reloads its
    /// index. Leftover downloads are removed, index entries whose blob is
    /// missing are dropped, and blobs no entry uses are deleted.
    ///
    /// An index file that cannot be read as one is set aside as
    /// `index.json.corrupt` and the store starts empty (its blobs are then
    /// unused and deleted): the images are pulled again, which is better than
    /// an agent that cannot start.
    pub fn open(dir: impl Into<PathBuf>) -> Result<ArtifactStore, RuntimeError> {
        let dir = dir.into();
        let blobs = dir.join(BLOBS_DIR);
        let scratch = dir.join(SCRATCH_DIR);
        fs::create_dir_all(&blobs).map_err(|error| RuntimeError::io(&blobs, error))?;
        if scratch.exists() {
            fs::remove_dir_all(&scratch).map_err(|error| RuntimeError::io(&scratch, error))?;
        }
        fs::create_dir_all(&scratch).map_err(|error| RuntimeError::io(&scratch, error))?;

        let mut index = load_index(&dir)?;
        let changed = index.retain_present_blobs(|digest| blob_path(&dir, digest).is_file());
        if changed {
            save_index(&dir, &index)?;
        }
        let used = index.wasm_digests();
        for entry in fs::read_dir(&blobs).map_err(|error| RuntimeError::io(&blobs, error))? {
            let entry = entry.map_err(|error| RuntimeError::io(&blobs, error))?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !used.contains(&digest) {
                tracing::info!(%digest, "deleting an artifact blob no image uses");
                fs::remove_file(entry.path())
                    .map_err(|error| RuntimeError::io(entry.path(), error))?;
            }
        }
        Ok(ArtifactStore {
            dir,
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
            index: Mutex::new(index),
        })
    }

    /// Sets the largest artifact a pull accepts, in bytes (default 64 MiB):
    /// checked against the layer's descriptor before downloading, while
    /// downloading, and against the unpacked Wasm of a tar layer.
    pub fn max_artifact_bytes(mut self, bytes: u64) -> Self {
        self.max_artifact_bytes = bytes;
        self
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pulls `image` into the store and returns what it resolves to.
    ///
    /// A tag is resolved at the registry on every pull (a moved tag is
    /// followed); a `repository@sha256:…` reference already in the store is
    /// not fetched again, and a bare `sha256:<hex>` manifest digest resolves
    /// only from the store ([`RuntimeError::NotFound`] otherwise). Manifests
    /// and blobs are checked against their digests and the size limit before
    /// anything is stored.
    pub async fn pull(
        &self,
        image: &ImageSpec,
        options: &PullOptions,
    ) -> Result<Artifact, RuntimeError> {
        let asked = image.reference.as_str();
        let name = LocalName::parse(asked)
            .map_err(|message| RuntimeError::invalid_argument("image", message))?;
        let reference = match &name {
            LocalName::Digest(_) => {
                return self
                    .resolve(asked)
                    .ok_or_else(|| RuntimeError::not_found(ObjectKind::Image, asked));
            }
            LocalName::Pinned {
                key, repository, ..
            } => {
                if let Some(artifact) = self.resolve(asked) {
                    // Known content under this repository: record the
                    // reference as a name of the image, without the network.
                    self.record(key, repository, &artifact.digest, None)?;
                    return Ok(artifact);
                }
                parse_reference(asked)?
            }
            LocalName::Tagged { .. } => parse_reference(asked)?,
        };
        let (key, repository) = match LocalName::from_reference(&reference) {
            LocalName::Pinned {
                key, repository, ..
            }
            | LocalName::Tagged { key, repository } => (key, repository),
            LocalName::Digest(_) => unreachable!("a parsed reference names a repository"),
        };

        let session = RegistrySession::new(asked, reference, &options.auth, options.insecure)?;
        let resolved = session.resolve_manifest().await?;
        if let Some(known) = self.resolve(&resolved.digest) {
            tracing::debug!(reference = asked, digest = %resolved.digest, "manifest already stored");
            self.record(&key, &repository, &known.digest, None)?;
            return Ok(Artifact {
                reference: asked.to_owned(),
                ..known
            });
        }
        let downloaded = registry::download_wasm(
            &session,
            &resolved.manifest,
            self.max_artifact_bytes,
            &self.dir.join(SCRATCH_DIR),
        )
        .await?;
        let wasm_digest = downloaded.digest.clone();
        let size = downloaded.size;
        self.record(&key, &repository, &resolved.digest, Some(downloaded))?;
        tracing::info!(
            reference = asked,
            digest = %resolved.digest,
            wasm_digest = %wasm_digest,
            size,
            "pulled Wasm artifact"
        );
        Ok(Artifact {
            reference: asked.to_owned(),
            digest: resolved.digest,
            wasm_path: blob_path(&self.dir, &wasm_digest),
            wasm_digest,
            size,
        })
    }

    /// What `reference` (as pulled, `repository@sha256:…`, or the bare
    /// manifest digest `sha256:…`) resolves to in the store, if its Wasm
    /// bytes are there. Never touches the network.
    pub fn resolve(&self, reference: &str) -> Option<Artifact> {
        let name = LocalName::parse(reference).ok()?;
        let index = self.lock_index();
        let digest = index.manifest_digest_of(&name)?;
        let record = index.manifests.get(digest)?;
        let wasm_path = blob_path(&self.dir, &record.wasm_digest);
        wasm_path.is_file().then(|| Artifact {
            reference: reference.to_owned(),
            digest: digest.to_owned(),
            wasm_digest: record.wasm_digest.clone(),
            wasm_path,
            size: record.size,
        })
    }

    /// Every image in the store: its manifest digest, every reference it was
    /// pulled as plus `repository@digest`, and its size.
    pub fn list(&self) -> Vec<ImageInfo> {
        self.lock_index().images()
    }

    /// Removes an image by reference or digest; absent images are not an
    /// error. A tag removes only that name; a digest removes the image with
    /// all its names. Blobs no image uses any more are deleted.
    pub fn remove(&self, image: &ImageSpec) -> Result<(), RuntimeError> {
        let name = LocalName::parse(&image.reference)
            .map_err(|message| RuntimeError::invalid_argument("image", message))?;
        let mut index = self.lock_index();
        let mut updated = index.clone();
        let unused_blobs = updated.remove(&name);
        if updated == *index {
            return Ok(());
        }
        save_index(&self.dir, &updated)?;
        *index = updated;
        for digest in unused_blobs {
            let path = blob_path(&self.dir, &digest);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(RuntimeError::io(path, error)),
            }
        }
        Ok(())
    }

    /// Records `key` → `manifest_digest`, moving a freshly downloaded blob
    /// into place first (if one with the same digest is not there already),
    /// and saves the index: all under the index lock.
    fn record(
        &self,
        key: &str,
        repository: &str,
        manifest_digest: &str,
        downloaded: Option<DownloadedWasm>,
    ) -> Result<(), RuntimeError> {
        let mut index = self.lock_index();
        let mut updated = index.clone();
        let (wasm_digest, size) = match downloaded {
            Some(downloaded) => {
                let destination = blob_path(&self.dir, &downloaded.digest);
                if !destination.is_file() {
                    downloaded
                        .file
                        .persist(&destination)
                        .map_err(|error| RuntimeError::io(&destination, error.error))?;
                }
                (downloaded.digest, downloaded.size)
            }
            None => match updated.manifests.get(manifest_digest) {
                Some(record) => (record.wasm_digest.clone(), record.size),
                // Removed meanwhile: nothing to name.
                None => return Ok(()),
            },
        };
        updated.record(key, repository, manifest_digest, &wasm_digest, size);
        if updated != *index {
            save_index(&self.dir, &updated)?;
            *index = updated;
        }
        Ok(())
    }

    /// The index lock; a panic while holding it cannot leave the index half
    /// updated (updates are swapped in whole), so poisoning is ignored.
    fn lock_index(&self) -> MutexGuard<'_, StoreIndex> {
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Parses an OCI reference for the registry client.
fn parse_reference(asked: &str) -> Result<oci_client::Reference, RuntimeError> {
    asked.parse().map_err(|error| {
        RuntimeError::invalid_argument(
            "image",
            format!("{asked:?} is not an OCI reference: {error}"),
        )
    })
}

/// Where the blob with `digest` (`sha256:<hex>`, checked by the caller)
/// lives.
fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    dir.join(BLOBS_DIR).join(hex)
}

/// Reads the index of the store in `dir`; a missing file is an empty store.
fn load_index(dir: &Path) -> Result<StoreIndex, RuntimeError> {
    let path = dir.join(INDEX_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StoreIndex::default());
        }
        Err(error) => return Err(RuntimeError::io(path, error)),
    };
    match serde_json::from_slice::<StoreIndex>(&bytes) {
        Ok(index) if index.version == INDEX_FORMAT_VERSION => Ok(index),
        outcome => {
            let reason = match outcome {
                Ok(index) => format!("unknown format version {}", index.version),
                Err(error) => error.to_string(),
            };
            let aside = dir.join(format!("{INDEX_FILE}.corrupt"));
            tracing::warn!(
                path = %path.display(),
                aside = %aside.display(),
                %reason,
                "artifact index unreadable; starting with an empty store"
            );
            fs::rename(&path, &aside).map_err(|error| RuntimeError::io(&path, error))?;
            Ok(StoreIndex::default())
        }
    }
}

/// Saves the index atomically: a synced temporary file renamed over the old
/// one.
fn save_index(dir: &Path, index: &StoreIndex) -> Result<(), RuntimeError> {
    let path = dir.join(INDEX_FILE);
    let json = serde_json::to_vec_pretty(index).map_err(|error| {
        RuntimeError::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, error),
        )
    })?;
    let mut file = tempfile::Builder::new()
        .prefix(".index-")
        .tempfile_in(dir)
        .map_err(|error| RuntimeError::io(dir, error))?;
    file.write_all(&json)
        .and_then(|()| file.as_file().sync_all())
        .map_err(|error| RuntimeError::io(file.path(), error))?;
    file.persist(&path)
        .map_err(|error| RuntimeError::io(&path, error.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(fill: char) -> String {
        format!("sha256:{}", fill.to_string().repeat(64))
    }

    /// Stores a blob and records it, as a pull would after its download.
    fn stored(store: &ArtifactStore, key: &str, manifest: char, wasm: &[u8]) -> String {
        let mut file = tempfile::NamedTempFile::new_in(store.dir.join(SCRATCH_DIR)).unwrap();
        file.write_all(wasm).unwrap();
        let wasm_digest = registry::sha256_digest(wasm);
        let name = LocalName::parse(key).unwrap();
        let LocalName::Tagged { key, repository } = name else {
            panic!("{name:?}")
        };
        store
            .record(
                &key,
                &repository,
                &digest(manifest),
                Some(DownloadedWasm {
                    file,
                    digest: wasm_digest.clone(),
                    size: wasm.len() as u64,
                }),
            )
            .unwrap();
        wasm_digest
    }

    #[test]
    fn the_index_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let wasm_digest = stored(&store, "r.io/app:v1", '1', b"\0asm\x01\0\0\0");
        drop(store);

        let store = ArtifactStore::open(dir.path()).unwrap();
        let artifact = store.resolve("r.io/app:v1").expect("resolves after reopen");
        assert_eq!(artifact.digest, digest('1'));
        assert_eq!(artifact.wasm_digest, wasm_digest);
        assert_eq!(fs::read(&artifact.wasm_path).unwrap(), b"\0asm\x01\0\0\0");
        assert_eq!(store.resolve(&digest('1')).unwrap().reference, digest('1'));
        assert_eq!(store.list().len(), 1);
    }

    #[test]
    fn opening_drops_missing_blobs_stray_files_and_leftover_downloads() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let kept = stored(&store, "r.io/a:v1", '1', b"\0asm\x01\0\0\0a");
        let lost = stored(&store, "r.io/b:v1", '2', b"\0asm\x01\0\0\0b");
        drop(store);
        fs::remove_file(blob_path(dir.path(), &lost)).unwrap();
        let stray = blob_path(dir.path(), &digest('9'));
        fs::write(&stray, b"stray").unwrap();
        let leftover = dir.path().join(SCRATCH_DIR).join("download-x");
        fs::write(&leftover, b"partial").unwrap();

        let store = ArtifactStore::open(dir.path()).unwrap();
        assert!(store.resolve("r.io/a:v1").is_some());
        assert!(store.resolve("r.io/b:v1").is_none());
        assert!(!stray.exists() && !leftover.exists());
        assert!(blob_path(dir.path(), &kept).is_file());
        let saved: StoreIndex =
            serde_json::from_slice(&fs::read(dir.path().join(INDEX_FILE)).unwrap()).unwrap();
        assert_eq!(saved.references.len(), 1);
    }

    #[test]
    fn a_corrupt_index_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(INDEX_FILE), b"{not json").unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        assert!(store.list().is_empty());
        assert_eq!(
            fs::read(dir.path().join("index.json.corrupt")).unwrap(),
            b"{not json"
        );
    }

    #[test]
    fn remove_deletes_blobs_only_when_unused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let shared = stored(&store, "r.io/a:v1", '1', b"\0asm\x01\0\0\0");
        stored(&store, "r.io/a:v2", '1', b"\0asm\x01\0\0\0");
        store.remove(&ImageSpec::new("r.io/a:v1")).unwrap();
        assert!(blob_path(dir.path(), &shared).is_file());
        store.remove(&ImageSpec::new("r.io/a:v2")).unwrap();
        assert!(!blob_path(dir.path(), &shared).exists());
        store.remove(&ImageSpec::new("r.io/a:v2")).unwrap();
        assert!(store.list().is_empty());
        let error = store.remove(&ImageSpec::new("NOT valid")).unwrap_err();
        assert!(
            matches!(error, RuntimeError::InvalidArgument { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_moved_tag_keeps_the_old_image_until_removed_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let old = stored(&store, "r.io/a:v1", '1', b"\0asm\x01\0\0\0old");
        let new = stored(&store, "r.io/a:v1", '2', b"\0asm\x01\0\0\0new");
        assert_eq!(store.resolve("r.io/a:v1").unwrap().wasm_digest, new);
        let pinned_old = format!("r.io/a@{}", digest('1'));
        assert_eq!(store.resolve(&pinned_old).unwrap().wasm_digest, old);
        store.remove(&ImageSpec::new(digest('1'))).unwrap();
        assert!(!blob_path(dir.path(), &old).exists());
        assert!(store.resolve(&pinned_old).is_none());
        assert!(store.resolve("r.io/a:v1").is_some());
    }
}
