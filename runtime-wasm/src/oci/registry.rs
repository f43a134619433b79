//! Talking to an OCI registry through `oci-client`: one session per pull or
//! push, resolving a reference to a manifest and downloading a blob with its
//! size bounded and its digest checked while the bytes arrive. Registry,
//! network and authentication failures become [`RuntimeError::Pull`];
//! content that is not what its descriptor or reference promises becomes
//! [`RuntimeError::InvalidImage`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use skiff_sdk::runtime::{BoxError, RegistryAuth, RuntimeError};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt as _;

use super::layout::{self, ACCEPTED_MANIFEST_MEDIA_TYPES, ByteSize, LayerFormat, is_sha256_digest};
use super::unpack::{self, UnpackError};

/// Manifests larger than this are refused (the distribution registry's own
/// limit is 4 MiB).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a registry may leave a request without sending anything.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A client bound to one reference, with the credentials and the transport
/// (HTTPS, or plain HTTP to that registry only when insecure) of one call.
pub(crate) struct RegistrySession {
    /// The registry client.
    pub client: Client,
    /// The parsed reference.
    pub reference: Reference,
    /// The reference as the caller wrote it, for messages.
    pub asked: String,
    /// Credentials in the client's terms.
    pub auth: oci_client::secrets::RegistryAuth,
}

impl RegistrySession {
    /// A session for `reference` (already parsed from `asked`).
    pub fn new(
        asked: &str,
        reference: Reference,
        auth: &RegistryAuth,
        insecure: bool,
    ) -> Result<RegistrySession, RuntimeError> {
        let protocol = if insecure {
            ClientProtocol::HttpsExcept(vec![reference.resolve_registry().to_owned()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            // Index entries are chosen by `layout::choose_index_entry`.
            platform_resolver: None,
            // One streamed PUT per blob rather than a request per chunk.
            use_monolithic_push: true,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..ClientConfig::default()
        };
        // skiff's one TLS crypto provider is ring; reqwest (built without a
        // bundled provider) takes the process default, so make sure there
        // is one. Installing it again is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::try_from(config).map_err(|error| RuntimeError::Pull {
            reference: asked.to_owned(),
            source: Box::new(error),
        })?;
        let auth = match auth {
            RegistryAuth::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            RegistryAuth::Basic { username, password } => {
                oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
            }
            RegistryAuth::Bearer { token } => {
                oci_client::secrets::RegistryAuth::Bearer(token.clone())
            }
        };
        Ok(RegistrySession {
            client,
            reference,
            asked: asked.to_owned(),
            auth,
        })
    }

    /// Fetches the manifest the reference names, choosing a Wasm entry when
    /// it is an image index, and checks every manifest against its digest.
    pub async fn resolve_manifest(&self) -> Result<ResolvedManifest, RuntimeError> {
        let (top_bytes, top_digest) = self.fetch_manifest(&self.reference).await?;
        let manifest = match parse_manifest(&top_bytes).map_err(|reason| self.invalid(reason))? {
            OciManifest::Image(manifest) => manifest,
            OciManifest::ImageIndex(index) => {
                let entry = layout::choose_index_entry(&index.manifests)
                    .map_err(|reason| self.invalid(reason))?;
                if !is_sha256_digest(&entry.digest) {
                    return Err(self.invalid(format!(
                        "the image index names manifest {:?}, not a sha256 digest",
                        entry.digest
                    )));
                }
                let entry_reference = self.reference.clone_with_digest(entry.digest.clone());
                let (bytes, _) = self.fetch_manifest(&entry_reference).await?;
                match parse_manifest(&bytes).map_err(|reason| self.invalid(reason))? {
                    OciManifest::Image(manifest) => manifest,
                    OciManifest::ImageIndex(_) => {
                        return Err(self.invalid(format!(
                            "the image index entry {} is another image index",
                            entry.digest
                        )));
                    }
                }
            }
        };
        Ok(ResolvedManifest {
            digest: top_digest,
            manifest,
        })
    }

    /// Fetches one manifest and returns its bytes and the digest computed
    /// from them, which must match the digest the reference pins, if any.
    async fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<u8>, String), RuntimeError> {
        if let Some(pinned) = reference.digest()
            && !is_sha256_digest(pinned)
        {
            return Err(RuntimeError::invalid_argument(
                "image",
                format!("{}: only sha256 digests are supported", self.asked),
            ));
        }
        let (bytes, _) = self
            .client
            .pull_manifest_raw(reference, &self.auth, ACCEPTED_MANIFEST_MEDIA_TYPES)
            .await
            .map_err(|error| self.registry_failure(error))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(self.invalid(format!(
                "the manifest is {}, over the {} manifest limit",
                ByteSize(bytes.len() as u64),
                ByteSize(MAX_MANIFEST_BYTES as u64)
            )));
        }
        let digest = sha256_digest(&bytes);
        if let Some(pinned) = reference.digest()
            && pinned != digest
        {
            return Err(self.invalid(format!(
                "manifest {pinned} does not match its digest (its content hashes to {digest})"
            )));
        }
        Ok((bytes.to_vec(), digest))
    }

    /// Downloads the blob `descriptor` names into `out`, refusing it as soon
    /// as it grows beyond the descriptor's size (which the caller checked
    /// against its limit) and, at the end, unless it is exactly that size and
    /// hashes to the descriptor's digest.
    pub async fn download_blob(
        &self,
        descriptor: &OciDescriptor,
        out: &mut tokio::fs::File,
        out_path: &Path,
    ) -> Result<(), RuntimeError> {
        let expected_size = u64::try_from(descriptor.size).map_err(|_| {
            self.invalid(format!(
                "layer {} has a negative size {}",
                descriptor.digest, descriptor.size
            ))
        })?;
        let mut stream = self
            .client
            .pull_blob_stream(&self.reference, descriptor)
            .await
            .map_err(|error| self.registry_failure(error))?;
        if let Some(announced) = stream.content_length
            && announced > expected_size
        {
            return Err(self.oversized_layer(descriptor, announced));
        }
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // oci-client's own check of the digest, at the end of the
                // stream: report it as ours below.
                Err(error) if is_digest_mismatch(&error) => break,
                Err(error) => {
                    return Err(RuntimeError::Pull {
                        reference: self.asked.clone(),
                        source: Box::new(error),
                    });
                }
            };
            received += chunk.len() as u64;
            if received > expected_size {
                return Err(self.oversized_layer(descriptor, received));
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|error| RuntimeError::io(out_path, error))?;
        }
        out.flush()
            .await
            .map_err(|error| RuntimeError::io(out_path, error))?;
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if received != expected_size || actual != descriptor.digest {
            return Err(self.invalid(format!(
                "layer {} does not match its digest (received {} hashing to {actual}, \
                 the descriptor says {expected_size} bytes)",
                descriptor.digest, received
            )));
        }
        out.sync_all()
            .await
            .map_err(|error| RuntimeError::io(out_path, error))?;
        Ok(())
    }

    /// [`RuntimeError::InvalidImage`] for this reference.
    pub fn invalid(&self, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::InvalidImage {
            reference: self.asked.clone(),
            reason: reason.into(),
        }
    }

    /// A layer that is larger than its descriptor says.
    fn oversized_layer(&self, descriptor: &OciDescriptor, bytes: u64) -> RuntimeError {
        self.invalid(format!(
            "layer {} is larger than the {} bytes its descriptor says (at least {bytes} bytes)",
            descriptor.digest, descriptor.size
        ))
    }

    /// Maps a client error: content that fails its digest is the image's
    /// fault, everything else the registry's or the network's.
    pub fn registry_failure(&self, error: OciDistributionError) -> RuntimeError {
        match error {
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected,
                actual,
            }) => self.invalid(format!(
                "content {expected} does not match its digest (it hashes to {actual})"
            )),
            error => RuntimeError::Pull {
                reference: self.asked.clone(),
                source: Box::new(error) as BoxError,
            },
        }
    }
}

/// A reference resolved to the image manifest that holds the Wasm layer.
pub(crate) struct ResolvedManifest {
    /// Digest of what the reference names: the image manifest, or the image
    /// index it was chosen from.
    pub digest: String,
    /// The image manifest.
    pub manifest: OciImageManifest,
}

/// The verified Wasm binary of an image, in a temporary file.
pub(crate) struct DownloadedWasm {
    /// The file with exactly the Wasm bytes; deleted when dropped unless
    /// persisted.
    pub file: NamedTempFile,
    /// Digest of the Wasm bytes.
    pub digest: String,
    /// Size of the Wasm bytes.
    pub size: u64,
}

/// Downloads the Wasm binary of `manifest` into a temporary file under
/// `scratch_dir`: the layer itself for the Wasm artifact layout, the one
/// `.wasm` file of a tar layer otherwise. Every limit and digest is checked
/// before this returns.
pub(crate) async fn download_wasm(
    session: &RegistrySession,
    manifest: &OciImageManifest,
    max_bytes: u64,
    scratch_dir: &Path,
) -> Result<DownloadedWasm, RuntimeError> {
    let layer = layout::wasm_layer_of(manifest).map_err(|reason| session.invalid(reason))?;
    let descriptor = &layer.descriptor;
    if !is_sha256_digest(&descriptor.digest) {
        return Err(session.invalid(format!(
            "layer digest {:?} is not a sha256 digest",
            descriptor.digest
        )));
    }
    if let Ok(size) = u64::try_from(descriptor.size)
        && size > max_bytes
    {
        return Err(session.invalid(format!(
            "artifact is {}, over the {} limit",
            ByteSize(size),
            ByteSize(max_bytes)
        )));
    }

    let (layer_file, layer_path) = new_scratch_file(scratch_dir)?;
    let mut writer = tokio::fs::File::from_std(
        layer_file
            .as_file()
            .try_clone()
            .map_err(|error| RuntimeError::io(&layer_path, error))?,
    );
    session
        .download_blob(descriptor, &mut writer, &layer_path)
        .await?;
    drop(writer);

    let downloaded = match layer.format {
        LayerFormat::WasmBinary => DownloadedWasm {
            file: layer_file,
            digest: descriptor.digest.clone(),
            size: descriptor.size as u64,
        },
        LayerFormat::Tar | LayerFormat::TarGzip => {
            let gzip = layer.format == LayerFormat::TarGzip;
            let scratch_dir = scratch_dir.to_owned();
            let asked = session.asked.clone();
            tokio::task::spawn_blocking(move || {
                unpack_layer_file(&asked, &layer_file, gzip, max_bytes, &scratch_dir)
            })
            .await
            .map_err(|error| RuntimeError::Backend {
                operation: "unpack a Wasm image layer",
                source: Box::new(error),
            })??
        }
    };
    check_wasm_preamble(&downloaded.file, &session.asked)?;
    Ok(downloaded)
}

/// Takes the `.wasm` file out of a downloaded tar layer (blocking).
fn unpack_layer_file(
    asked: &str,
    layer: &NamedTempFile,
    gzip: bool,
    max_bytes: u64,
    scratch_dir: &Path,
) -> Result<DownloadedWasm, RuntimeError> {
    let layer_path = layer.path();
    let archive =
        std::fs::File::open(layer_path).map_err(|error| RuntimeError::io(layer_path, error))?;
    let archive = std::io::BufReader::new(archive);
    let (wasm_file, wasm_path) = new_scratch_file(scratch_dir)?;
    let mut out = std::io::BufWriter::new(wasm_file.as_file());
    let extracted = if gzip {
        unpack::extract_single_wasm(flate2::read::GzDecoder::new(archive), max_bytes, &mut out)
    } else {
        unpack::extract_single_wasm(archive, max_bytes, &mut out)
    };
    let extracted = extracted.map_err(|error| match error {
        UnpackError::InvalidLayer(reason) => RuntimeError::InvalidImage {
            reference: asked.to_owned(),
            reason,
        },
        UnpackError::Write(source) => RuntimeError::io(&wasm_path, source),
    })?;
    use std::io::Write as _;
    out.flush()
        .map_err(|error| RuntimeError::io(&wasm_path, error))?;
    drop(out);
    wasm_file
        .as_file()
        .sync_all()
        .map_err(|error| RuntimeError::io(&wasm_path, error))?;
    Ok(DownloadedWasm {
        file: wasm_file,
        digest: extracted.digest,
        size: extracted.size,
    })
}

/// Refuses a file that does not start like a Wasm component or module.
fn check_wasm_preamble(file: &NamedTempFile, asked: &str) -> Result<(), RuntimeError> {
    use std::io::Read as _;
    let mut preamble = Vec::with_capacity(8);
    std::fs::File::open(file.path())
        .and_then(|opened| opened.take(8).read_to_end(&mut preamble))
        .map_err(|error| RuntimeError::io(file.path(), error))?;
    layout::wasm_kind(&preamble)
        .map(|_| ())
        .map_err(|reason| RuntimeError::InvalidImage {
            reference: asked.to_owned(),
            reason,
        })
}

/// A new temporary file in `dir`, removed when dropped.
fn new_scratch_file(dir: &Path) -> Result<(NamedTempFile, PathBuf), RuntimeError> {
    let file = tempfile::Builder::new()
        .prefix("download-")
        .tempfile_in(dir)
        .map_err(|error| RuntimeError::io(dir, error))?;
    let path = file.path().to_owned();
    Ok((file, path))
}

/// Parses a manifest or image index, or says why it is neither.
fn parse_manifest(bytes: &[u8]) -> Result<OciManifest, String> {
    serde_json::from_slice(bytes)
        .map_err(|error| format!("the manifest is not an OCI image manifest or index: {error}"))
}

/// Whether a stream error is oci-client's digest verification failing.
fn is_digest_mismatch(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<DigestError>())
        .is_some_and(|inner| matches!(inner, DigestError::VerificationError { .. }))
}

/// `registry/repository` of a reference.
pub(crate) fn repository_of(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}

/// The `sha256:<hex>` digest of some bytes.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
