//! Wasm artifacts in OCI registries: pull into the node's local store, push,
//! and fetch for the CLI.
//!
//! Two layouts are read: the CNCF Wasm OCI artifact (config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer) and
//! single-layer images whose tar layer holds exactly one `.wasm` file. An
//! image index is narrowed to its `wasip2` / `wasip1` / `wasi` entry.
//! Every manifest and blob is checked against its digest while it arrives,
//! and no artifact larger than the store's limit is downloaded. Pushes use
//! the CNCF layout.
//!
//! - [`layout`]: media types, index entries and Wasm preambles (pure).
//! - `unpack`: the one `.wasm` file of a tar layer.
//! - `registry`: the `oci-client` session behind pulls and pushes.
//! - `index`: the store's reference → manifest → blob index.
//! - [`ArtifactStore`]: the on-disk store the runtime pulls into.
//! - [`push_wasm`], [`fetch_wasm`]: `skiff push` and `skiff pull`.

use std::path::PathBuf;

use skiff_sdk::runtime::{PullOptions, RuntimeError};

mod index;
pub mod layout;
mod push;
mod registry;
mod store;
mod unpack;

pub use layout::ByteSize;
pub use push::{PushOptions, PushProgress, PushedArtifact, push_wasm};
pub use store::ArtifactStore;

/// The default largest artifact a pull accepts: 64 MiB.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 64 << 20;

/// A Wasm artifact in the store: what a reference resolved to and where its
/// bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The reference as it was asked for.
    pub reference: String,
    /// The manifest digest, `sha256:<hex>` (of the image index, when the
    /// reference names one): the pod status's `imageID`.
    pub digest: String,
    /// The digest of the Wasm bytes, `sha256:<hex>`: the compile cache key.
    pub wasm_digest: String,
    /// The file in the store with exactly the Wasm bytes.
    pub wasm_path: PathBuf,
    /// Bytes stored.
    pub size: u64,
}

/// Fetches the Wasm binary `reference` names from its registry, with the
/// same checks as a pull into the store, without storing it (for
/// `skiff pull`). Returns the bytes and the manifest digest.
///
/// A bare `sha256:` digest names no repository and is an
/// [`RuntimeError::InvalidArgument`].
pub async fn fetch_wasm(
    reference: &str,
    options: &PullOptions,
    max_bytes: u64,
) -> Result<(Vec<u8>, String), RuntimeError> {
    if reference.starts_with("sha256:") {
        return Err(RuntimeError::invalid_argument(
            "reference",
            format!("{reference} names no repository; use REPOSITORY@{reference}"),
        ));
    }
    let parsed: oci_client::Reference = reference.parse().map_err(|error| {
        RuntimeError::invalid_argument(
            "reference",
            format!("{reference:?} is not an OCI reference: {error}"),
        )
    })?;
    let session =
        registry::RegistrySession::new(reference, parsed, &options.auth, options.insecure)?;
    let resolved = session.resolve_manifest().await?;
    let scratch =
        tempfile::tempdir().map_err(|error| RuntimeError::io(std::env::temp_dir(), error))?;
    let downloaded =
        registry::download_wasm(&session, &resolved.manifest, max_bytes, scratch.path()).await?;
    let bytes = tokio::fs::read(downloaded.file.path())
        .await
        .map_err(|error| RuntimeError::io(downloaded.file.path(), error))?;
    Ok((bytes, resolved.digest))
}
