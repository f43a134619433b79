//! Talking to an OCI registry through `oci-client`, one session per pull:
//! manifests fetched and checked against their digests, blobs downloaded
//! with their size bounded and their digest checked while the bytes arrive.
//! Registry, network and authentication failures become
//! [`RuntimeError::Pull`]; content that is not what its descriptor or
//! reference promises becomes [`RuntimeError::InvalidImage`].

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol, SizedStream};
use oci_client::errors::{DigestError, OciDistributionError};
use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use skiff_sdk::runtime::{BoxError, RegistryAuth, RuntimeError};

use super::manifest::{ACCEPTED_MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES};
use super::names::is_sha256_digest;

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a registry may leave a request without sending anything.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A registry client bound to one reference, with the credentials and the
/// transport (HTTPS, or plain HTTP to that registry only when insecure) of
/// one pull.
pub struct RegistrySession {
    client: Client,
    /// The parsed reference.
    pub reference: Reference,
    /// The reference as the caller wrote it, for messages.
    pub asked: String,
    auth: oci_client::secrets::RegistryAuth,
}

impl RegistrySession {
    /// A session for `reference` (parsed from `asked`).
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
            // Index entries are chosen by `platform::choose`.
            platform_resolver: None,
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

    /// Fetches the manifest (or index) `reference` names and returns its
    /// bytes and the digest computed from them, which must match the digest
    /// the reference pins, if any.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<u8>, String), RuntimeError> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(reference, &self.auth, ACCEPTED_MANIFEST_MEDIA_TYPES)
            .await
            .map_err(|error| self.registry_failure(error))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(self.invalid(format!(
                "the manifest is {} bytes, over the {MAX_MANIFEST_BYTES} byte limit",
                bytes.len()
            )));
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if let Some(pinned) = reference.digest()
            && pinned != digest
        {
            return Err(self.invalid(format!(
                "manifest {pinned} does not match its digest (its content hashes to {digest})"
            )));
        }
        Ok((bytes.to_vec(), digest))
    }

    /// Starts downloading the blob `descriptor` names (its digest and size
    /// checked by the caller).
    pub async fn download(&self, descriptor: &OciDescriptor) -> Result<Download<'_>, RuntimeError> {
        debug_assert!(is_sha256_digest(&descriptor.digest) && descriptor.size >= 0);
        let expected_size = descriptor.size.max(0) as u64;
        let stream = self
            .client
            .pull_blob_stream(&self.reference, descriptor)
            .await
            .map_err(|error| self.registry_failure(error))?;
        if let Some(announced) = stream.content_length
            && announced > expected_size
        {
            return Err(self.oversized(&descriptor.digest, expected_size, announced));
        }
        Ok(Download {
            session: self,
            digest: descriptor.digest.clone(),
            expected_size,
            stream,
            hasher: Sha256::new(),
            received: 0,
            finished: false,
        })
    }

    /// Downloads a small blob (a config) whole, at most `limit` bytes.
    pub async fn fetch_blob(
        &self,
        descriptor: &OciDescriptor,
        limit: u64,
    ) -> Result<Vec<u8>, RuntimeError> {
        if descriptor.size.max(0) as u64 > limit {
            return Err(self.invalid(format!(
                "blob {} is {} bytes, over the {limit} byte limit",
                descriptor.digest, descriptor.size
            )));
        }
        let mut download = self.download(descriptor).await?;
        let mut bytes = Vec::with_capacity(descriptor.size.max(0) as usize);
        while let Some(chunk) = download.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// [`RuntimeError::InvalidImage`] for this reference.
    pub fn invalid(&self, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::InvalidImage {
            reference: self.asked.clone(),
            reason: reason.into(),
        }
    }

    /// A blob that is larger than its descriptor says.
    fn oversized(&self, digest: &str, expected: u64, bytes: u64) -> RuntimeError {
        self.invalid(format!(
            "blob {digest} is larger than the {expected} bytes its descriptor says \
             (at least {bytes} bytes)"
        ))
    }

    /// Maps a client error: content that fails its digest is the image's
    /// fault, everything else the registry's or the network's.
    fn registry_failure(&self, error: OciDistributionError) -> RuntimeError {
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

/// A blob arriving from the registry, checked as it comes: never more bytes
/// than the descriptor says, and at the end exactly that many, hashing to
/// its digest.
pub struct Download<'a> {
    session: &'a RegistrySession,
    digest: String,
    expected_size: u64,
    stream: SizedStream,
    hasher: Sha256,
    received: u64,
    finished: bool,
}

impl Download<'_> {
    /// The next chunk, or `None` once the whole blob arrived and matched its
    /// descriptor. An error ends the download.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, RuntimeError> {
        if self.finished {
            return Ok(None);
        }
        match self.stream.next().await {
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                if self.received > self.expected_size {
                    self.finished = true;
                    return Err(self.session.oversized(
                        &self.digest,
                        self.expected_size,
                        self.received,
                    ));
                }
                self.hasher.update(&chunk);
                Ok(Some(chunk))
            }
            // oci-client's own check of the digest, at the end of the
            // stream: reported as ours below.
            Some(Err(error)) if is_digest_mismatch(&error) => self.finish(),
            Some(Err(error)) => {
                self.finished = true;
                Err(RuntimeError::Pull {
                    reference: self.session.asked.clone(),
                    source: Box::new(error),
                })
            }
            None => self.finish(),
        }
    }

    /// Checks the size and digest of everything received.
    fn finish(&mut self) -> Result<Option<Bytes>, RuntimeError> {
        self.finished = true;
        let actual = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        if self.received != self.expected_size || actual != self.digest {
            return Err(self.session.invalid(format!(
                "blob {} does not match its descriptor (received {} bytes hashing to {actual}, \
                 the descriptor says {} bytes)",
                self.digest, self.received, self.expected_size
            )));
        }
        Ok(None)
    }
}

/// Whether a stream error is oci-client's digest verification failing.
fn is_digest_mismatch(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<DigestError>())
        .is_some_and(|inner| matches!(inner, DigestError::VerificationError { .. }))
}
