//! Pushing a Wasm binary to a registry as a CNCF Wasm OCI artifact: one
//! `application/wasm` layer with the bytes, a small
//! `application/vnd.wasm.config.v0+json` config, and an OCI image manifest
//! tying them together, with the layer's upload reported as it goes.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt as _;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use skiff_sdk::runtime::{BoxError, RegistryAuth, RuntimeError};

use super::layout::{self, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use super::registry::{RegistrySession, sha256_digest};

/// Bytes handed to the HTTP client at a time while uploading the layer,
/// which is also how often progress is reported.
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// How to push: credentials and transport, as for pulls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// Credentials for the registry (basic credentials also obtain a bearer
    /// token when the registry asks for one).
    pub auth: RegistryAuth,
    /// Speak plain HTTP to the registry instead of HTTPS. Off by default.
    pub insecure: bool,
}

impl PushOptions {
    /// Sets the credentials.
    pub fn auth(mut self, auth: RegistryAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets whether to speak plain HTTP to the registry.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }
}

/// How far a push is, reported through the callback of [`push_wasm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushProgress {
    /// Bytes of the Wasm layer handed to the registry so far, of `total`
    /// (reported as `total` at once when the registry already has it).
    Layer {
        /// Bytes sent.
        sent: u64,
        /// Bytes of the layer.
        total: u64,
    },
    /// The layer and config are in the registry; the manifest goes up.
    Manifest,
}

/// What a push produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedArtifact {
    /// The reference pushed to, as given.
    pub reference: String,
    /// The manifest digest, `sha256:<hex>`: `reference` resolves to it.
    pub digest: String,
    /// The digest of the Wasm layer.
    pub wasm_digest: String,
    /// Size of the Wasm layer in bytes.
    pub size: u64,
}

/// Pushes `wasm` (a component or a core module) to `reference` as a Wasm
/// OCI artifact, reporting progress through `progress`.
///
/// Bytes that are not a Wasm binary are refused with
/// [`RuntimeError::InvalidImage`] before anything is sent; a reference that
/// pins a digest is an [`RuntimeError::InvalidArgument`] (push to a tag);
/// registry, network and authentication failures are
/// [`RuntimeError::Backend`] with the client's error as the source.
pub async fn push_wasm(
    wasm: &[u8],
    reference: &str,
    options: &PushOptions,
    progress: &mut dyn FnMut(PushProgress),
) -> Result<PushedArtifact, RuntimeError> {
    let kind = layout::wasm_kind(wasm).map_err(|reason| RuntimeError::InvalidImage {
        reference: reference.to_owned(),
        reason,
    })?;
    let parsed: oci_client::Reference = reference.parse().map_err(|error| {
        RuntimeError::invalid_argument(
            "reference",
            format!("{reference:?} is not an OCI reference: {error}"),
        )
    })?;
    if parsed.digest().is_some() {
        return Err(RuntimeError::invalid_argument(
            "reference",
            format!("{reference}: push to a tag, not a digest"),
        ));
    }
    let session = RegistrySession::new(reference, parsed, &options.auth, options.insecure)?;
    let failed = |error: oci_client::errors::OciDistributionError| RuntimeError::Backend {
        operation: "push to the registry",
        source: Box::new(error) as BoxError,
    };
    let client = &session.client;
    client
        .store_auth_if_needed(session.reference.resolve_registry(), &session.auth)
        .await;

    let total = wasm.len() as u64;
    let wasm_digest = sha256_digest(wasm);
    let created = jiff::Timestamp::now().to_string();
    let layer = OciDescriptor {
        media_type: WASM_LAYER_MEDIA_TYPE.to_owned(),
        digest: wasm_digest.clone(),
        size: total as i64,
        ..OciDescriptor::default()
    };
    if client
        .blob_exists(&session.reference, &wasm_digest)
        .await
        .map_err(failed)?
    {
        progress(PushProgress::Layer { sent: total, total });
    } else {
        upload_layer(&session, wasm, &wasm_digest, progress)
            .await
            .map_err(failed)?;
    }

    let config = serde_json::to_vec(&serde_json::json!({
        "created": created,
        "architecture": "wasm",
        "os": kind.platform_os(),
        "layerDigests": [wasm_digest],
    }))
    .expect("a JSON value serialises");
    let config_descriptor = OciDescriptor {
        media_type: WASM_CONFIG_MEDIA_TYPE.to_owned(),
        digest: sha256_digest(&config),
        size: config.len() as i64,
        ..OciDescriptor::default()
    };
    client
        .push_blob(&session.reference, config, &config_descriptor.digest)
        .await
        .map_err(failed)?;

    progress(PushProgress::Manifest);
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
        config: config_descriptor,
        layers: vec![layer],
        annotations: Some(BTreeMap::from([(
            "org.opencontainers.image.created".to_owned(),
            created,
        )])),
        ..OciImageManifest::default()
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let digest = sha256_digest(&manifest_bytes);
    client
        .push_manifest_raw(
            &session.reference,
            manifest_bytes,
            http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .map_err(failed)?;
    tracing::debug!(reference, %digest, %wasm_digest, size = total, "pushed Wasm artifact");
    Ok(PushedArtifact {
        reference: reference.to_owned(),
        digest,
        wasm_digest,
        size: total,
    })
}

/// Streams the layer to the registry in one request, calling `progress` as
/// the HTTP client takes each chunk.
async fn upload_layer(
    session: &RegistrySession,
    wasm: &[u8],
    wasm_digest: &str,
    progress: &mut dyn FnMut(PushProgress),
) -> Result<(), oci_client::errors::OciDistributionError> {
    let total = wasm.len() as u64;
    progress(PushProgress::Layer { sent: 0, total });
    let (taken, mut taken_events) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let all = Bytes::copy_from_slice(wasm);
    let chunks: Vec<Bytes> = (0..all.len())
        .step_by(UPLOAD_CHUNK_BYTES)
        .map(|start| all.slice(start..(start + UPLOAD_CHUNK_BYTES).min(all.len())))
        .collect();
    // The stream reports a chunk as taken when the client asks for the
    // next one, i.e. once it has been written out.
    let body = futures::stream::iter(chunks).map(move |chunk| {
        let _ = taken.send(chunk.len() as u64);
        Ok(chunk)
    });
    let upload =
        session
            .client
            .push_blob_stream(&session.reference, body, wasm_digest, Some(total));
    tokio::pin!(upload);
    let mut sent = 0;
    let outcome = loop {
        tokio::select! {
            outcome = &mut upload => break outcome,
            Some(bytes) = taken_events.recv() => {
                sent += bytes;
                progress(PushProgress::Layer { sent, total });
            }
        }
    };
    outcome?;
    if sent < total {
        progress(PushProgress::Layer { sent: total, total });
    }
    Ok(())
}
