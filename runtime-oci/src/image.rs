//! Container images in containerd (CRI's ImageService, trimmed): pulled
//! with `oci-client` into containerd's content store, recorded as containerd
//! image records and unpacked into overlayfs snapshots, so that a container
//! starts from a snapshot on the image's top layer.
//!
//! A pull:
//! 1. resolves the reference at the registry (HTTPS, or plain HTTP to that
//!    registry alone when [`PullOptions::insecure`]; credentials from
//!    [`PullOptions::auth`]), checking every manifest against its digest. An
//!    image index is narrowed to the manifest for this node's platform
//!    (linux, its architecture and CPU variant); a single-platform image
//!    whose config names another platform is refused, as is a Wasm artifact
//!    ([`RuntimeError::InvalidImage`]: the Wasm runtime runs those);
//! 2. under a containerd lease (so that the garbage collector cannot take
//!    half a pull), writes the layers, the config, the manifest and the index
//!    into the content store, streaming each blob from the registry and
//!    checking its size and digest (containerd checks them again at commit);
//!    blobs already there are not downloaded again;
//! 3. unpacks the layers into snapshots named by their chain IDs (`unpack`),
//!    skipping those already there;
//! 4. labels the blobs as containerd does (`containerd.io/gc.ref.content.*`
//!    from index to manifest to config and layers,
//!    `containerd.io/gc.ref.snapshot.overlayfs` from the config to the top
//!    snapshot), so that the image record holds everything down to its
//!    snapshots once the lease is gone;
//! 5. creates or moves the image record named by the normalised reference
//!    (`docker.io/library/busybox:latest`, `127.0.0.1:5000/bb:v1`), plus a
//!    `repository@sha256:…` record, so that the image resolves by digest
//!    too. Its target is what the reference names: the image index when
//!    there is one, as containerd records it.
//!
//! The image's digest (the pod's `imageID`) is the digest of that target,
//! as the Wasm runtime reports it. A pull is idempotent, and two pulls of
//! the same image may race: they meet on the same content ingests and
//! snapshot names, and the loser of each race takes the winner's result.
//! A tag is resolved at the registry on every pull (a tag that moved leaves
//! the old image named by its `repository@sha256:…` until that is removed);
//! a `repository@sha256:…` reference already pulled is served without the
//! network, and a bare `sha256:…` digest only from what is here.
//!
//! Registry, network and authentication failures are
//! [`RuntimeError::Pull`]; containerd not answering is
//! [`RuntimeError::Unavailable`]. Sizes are those of the blobs in the
//! content store (compressed layers), as containerd and CRI report them.
//!
//! - `registry`: the `oci-client` session of a pull, checking what arrives.
//! - `manifest`: media types, what is a container image (and what a Wasm
//!   artifact), chain IDs, garbage-collection labels (pure).
//! - `platform`: [`Platform`] and the choice of an image index entry (pure).
//! - `names`: references normalised into image record names (pure).
//! - `records`: containerd's image records of the pulled images.
//! - `content`: containerd's content store: look up, read, label, and the
//!   streamed write.
//! - `unpack`: layers into committed snapshots.
//! - `lease`: the containerd lease a pull works under.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use containerd_client::services::v1::Image;
use containerd_client::types::Descriptor;
use futures::{StreamExt as _, TryStreamExt as _};
use oci_client::Reference;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_spec::image::ImageConfiguration;
use skiff_sdk::runtime::{
    ImageInfo, ImageSpec, ObjectKind, PullOptions, PulledImage, RuntimeError,
};

use crate::client::Containerd;

mod content;
mod lease;
mod manifest;
mod names;
mod platform;
mod records;
mod registry;
mod unpack;

pub use platform::Platform;

use lease::Lease;
use manifest::Manifest;
use names::{ImageName, digest_name};
use records::{Collection, DIGEST_NAME_LABEL, NameKind};
use registry::RegistrySession;

/// Layers downloaded at once by one pull (containerd's default too).
const CONCURRENT_LAYER_DOWNLOADS: usize = 3;

/// The images of one containerd namespace. Cheap to share behind an `Arc`;
/// every method may be called concurrently.
#[derive(Debug)]
pub struct Images {
    containerd: Containerd,
    platform: Platform,
    /// Image sizes by target digest: content is immutable, so a size once
    /// computed holds (spares `list` reading manifests every time).
    sizes: Mutex<HashMap<String, u64>>,
}

/// What a container needs of a pulled image.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedImage {
    /// The containerd image record's name.
    pub name: String,
    /// The image's digest as [`Images::pull`] reported it: the manifest's,
    /// or the image index's when the reference names one.
    pub digest: String,
    /// The top layer's committed snapshot: the parent of a container's
    /// writable snapshot.
    pub chain_id: String,
    /// The image config: entrypoint, command, environment, working
    /// directory, user.
    pub config: ImageConfiguration,
}

impl Images {
    /// The images of `containerd`'s namespace, for this node's platform.
    pub fn new(containerd: Containerd) -> Images {
        Images {
            containerd,
            platform: Platform::host(),
            sizes: Mutex::new(HashMap::new()),
        }
    }

    /// Pulls and unpacks images for `platform` instead of this node's.
    pub fn platform(mut self, platform: Platform) -> Images {
        self.platform = platform;
        self
    }

    /// Pulls `image` (see the module documentation for what that does).
    pub async fn pull(
        &self,
        image: &ImageSpec,
        options: &PullOptions,
    ) -> Result<PulledImage, RuntimeError> {
        let asked = image.reference.as_str();
        let (name, repository) = match parse_name(asked)? {
            ImageName::Digest(_) => {
                let not_found = || RuntimeError::not_found(ObjectKind::Image, asked);
                let (name, target) = self.lookup(asked).await?.ok_or_else(not_found)?;
                let resolved = self
                    .resolve_record(&name, &target)
                    .await?
                    .ok_or_else(not_found)?;
                return Ok(self.pulled_from_store(asked, &resolved, &target).await);
            }
            ImageName::Pinned {
                name,
                repository,
                digest,
            } => {
                if let Some((resolved, target)) = self
                    .resolve_pinned_locally(&name, &repository, &digest)
                    .await?
                {
                    tracing::debug!(reference = asked, "pinned image already pulled");
                    return Ok(self.pulled_from_store(asked, &resolved, &target).await);
                }
                (name, repository)
            }
            ImageName::Tagged { name, repository } => (name, repository),
        };

        let reference: Reference = asked
            .parse()
            .map_err(|error| RuntimeError::invalid_argument("image", format!("{error}")))?;
        let session = RegistrySession::new(asked, reference, &options.auth, options.insecure)?;
        let fetched = self.fetch(&session).await?;
        let lease = Lease::create(&self.containerd).await?;
        let stored = match self.store(&session, &fetched, &lease).await {
            Ok(()) => {
                self.record_pull(&name, &repository, &fetched.target())
                    .await
            }
            Err(error) => Err(error),
        };
        lease.delete(&self.containerd).await;
        stored?;

        let size = fetched.size();
        let digest = fetched.target().digest;
        self.remember_size(&digest, size);
        tracing::info!(
            reference = asked,
            %digest,
            chain_id = %fetched.chain_ids.last().map_or("", String::as_str),
            size,
            "pulled image"
        );
        Ok(PulledImage {
            reference: asked.to_owned(),
            digest,
            size,
        })
    }

    /// Every image of the namespace: its digest, every record naming it
    /// (the references pulled and `repository@sha256:…`), and its size.
    pub async fn list(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        let mut by_digest: BTreeMap<String, (Descriptor, BTreeSet<String>)> = BTreeMap::new();
        for record in records::list(&self.containerd).await? {
            let Some(target) = record.target else {
                continue;
            };
            by_digest
                .entry(target.digest.clone())
                .or_insert_with(|| (target, BTreeSet::new()))
                .1
                .insert(record.name);
        }
        let mut images = Vec::with_capacity(by_digest.len());
        for (digest, (target, names)) in by_digest {
            let size = self.size_of(&target).await?;
            images.push(ImageInfo {
                digest,
                names: names.into_iter().collect(),
                size,
            });
        }
        Ok(images)
    }

    /// Removes an image by reference or digest; an absent image is not an
    /// error. A tag removes that name only, and the image with it when no
    /// other name the image was pulled as is left; a digest (bare or
    /// `repository@sha256:…`) removes the image with all its names. The last
    /// deletion runs containerd's garbage collector before it returns, so
    /// the image's content and snapshots are gone unless another image
    /// shares them.
    pub async fn remove(&self, image: &ImageSpec) -> Result<(), RuntimeError> {
        let asked = image.reference.as_str();
        let records = records::list(&self.containerd).await?;
        let names_of = |digest: &str| -> Vec<&Image> {
            records
                .iter()
                .filter(|record| {
                    record
                        .target
                        .as_ref()
                        .is_some_and(|target| target.digest == digest)
                })
                .collect()
        };
        let (doomed, collection): (Vec<String>, Collection) = match parse_name(asked)? {
            ImageName::Digest(digest) => {
                let doomed = names_of(&digest)
                    .into_iter()
                    .map(|record| record.name.clone())
                    .collect();
                (doomed, Collection::Wait)
            }
            ImageName::Pinned { name, digest, .. } => {
                let mut doomed: Vec<String> = names_of(&digest)
                    .into_iter()
                    .map(|record| record.name.clone())
                    .collect();
                if !doomed.contains(&name) && records.iter().any(|record| record.name == name) {
                    doomed.push(name);
                }
                (doomed, Collection::Wait)
            }
            ImageName::Tagged { name, .. } => {
                let Some(record) = records.iter().find(|record| record.name == name) else {
                    return Ok(());
                };
                let others: Vec<&Image> = match &record.target {
                    Some(target) => names_of(&target.digest)
                        .into_iter()
                        .filter(|other| other.name != name)
                        .collect(),
                    None => Vec::new(),
                };
                let only_digest_names_left = others
                    .iter()
                    .all(|other| other.labels.contains_key(DIGEST_NAME_LABEL));
                if only_digest_names_left {
                    let mut doomed = vec![name];
                    doomed.extend(others.into_iter().map(|other| other.name.clone()));
                    (doomed, Collection::Wait)
                } else {
                    (vec![name], Collection::Background)
                }
            }
        };
        if doomed.is_empty() {
            return Ok(());
        }
        records::delete(&self.containerd, &doomed, collection).await?;
        tracing::info!(reference = asked, names = ?doomed, "removed image");
        Ok(())
    }

    /// What a container of `reference` needs. `reference` is a reference as
    /// pulled, `repository@sha256:…`, or the bare image digest. Fails with
    /// [`RuntimeError::NotFound`] when the image is not pulled (or its
    /// content or snapshots are gone).
    pub async fn resolve(&self, reference: &str) -> Result<ResolvedImage, RuntimeError> {
        let not_found = || RuntimeError::not_found(ObjectKind::Image, reference);
        let (name, target) = self.lookup(reference).await?.ok_or_else(not_found)?;
        self.resolve_record(&name, &target)
            .await?
            .ok_or_else(not_found)
    }

    /// The record `reference` names: by name, or for a bare digest any
    /// record of that target (a name pulled as such before a digest name).
    async fn lookup(&self, reference: &str) -> Result<Option<(String, Descriptor)>, RuntimeError> {
        let record = match parse_name(reference)? {
            ImageName::Digest(digest) => records::list(&self.containerd)
                .await?
                .into_iter()
                .filter(|record| {
                    record
                        .target
                        .as_ref()
                        .is_some_and(|target| target.digest == digest)
                })
                .min_by_key(|record| record.labels.contains_key(DIGEST_NAME_LABEL)),
            ImageName::Pinned { name, .. } | ImageName::Tagged { name, .. } => {
                records::get(&self.containerd, &name).await?
            }
        };
        Ok(record.and_then(|record| Some((record.name, record.target?))))
    }

    /// Resolves `repository@digest` (or its digest name) from the store, if
    /// it is fully there, recording `name` as a name of it.
    async fn resolve_pinned_locally(
        &self,
        name: &str,
        repository: &str,
        digest: &str,
    ) -> Result<Option<(ResolvedImage, Descriptor)>, RuntimeError> {
        let digest_name = digest_name(repository, digest);
        for candidate in [name, digest_name.as_str()] {
            let Some(record) = records::get(&self.containerd, candidate).await? else {
                continue;
            };
            let Some(target) = record.target else {
                continue;
            };
            if let Some(resolved) = self.resolve_record(&record.name, &target).await? {
                records::put(&self.containerd, name, &target, NameKind::Asked).await?;
                return Ok(Some((resolved, target)));
            }
        }
        Ok(None)
    }

    /// The image a record names, if its content and top snapshot are here.
    async fn resolve_record(
        &self,
        name: &str,
        target: &Descriptor,
    ) -> Result<Option<ResolvedImage>, RuntimeError> {
        let Some(loaded) = self.load(name, target).await? else {
            return Ok(None);
        };
        let Some(config_bytes) = content::read(
            &self.containerd,
            &loaded.manifest.config.digest,
            manifest::MAX_CONFIG_BYTES,
        )
        .await?
        else {
            return Ok(None);
        };
        let config = manifest::parse_config(&config_bytes, loaded.manifest.layers.len()).map_err(
            |reason| RuntimeError::InvalidImage {
                reference: name.to_owned(),
                reason,
            },
        )?;
        let chain_ids = manifest::chain_ids(config.rootfs().diff_ids());
        let Some(chain_id) = chain_ids.last().cloned() else {
            return Ok(None);
        };
        if !unpack::is_unpacked(&self.containerd, &chain_id).await? {
            return Ok(None);
        }
        Ok(Some(ResolvedImage {
            name: name.to_owned(),
            digest: target.digest.clone(),
            chain_id,
            config,
        }))
    }

    /// Reads the image manifest a record's target leads to on this platform
    /// (through its index, if the target is one); `None` when content is
    /// missing.
    async fn load(&self, name: &str, target: &Descriptor) -> Result<Option<Loaded>, RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidImage {
            reference: name.to_owned(),
            reason,
        };
        let Some(bytes) = content::read(
            &self.containerd,
            &target.digest,
            manifest::MAX_MANIFEST_BYTES,
        )
        .await?
        else {
            return Ok(None);
        };
        let (parsed, _) = Manifest::parse(&bytes).map_err(invalid)?;
        match parsed {
            Manifest::Image(manifest) => Ok(Some(Loaded {
                index_size: 0,
                manifest_size: bytes.len() as u64,
                manifest: *manifest,
            })),
            Manifest::Index(index) => {
                let entry = platform::choose(&index.manifests, &self.platform)
                    .map_err(|no_match| invalid(no_match.reason(&self.platform)))?;
                let Some(entry_bytes) = content::read(
                    &self.containerd,
                    &entry.digest,
                    manifest::MAX_MANIFEST_BYTES,
                )
                .await?
                else {
                    return Ok(None);
                };
                match Manifest::parse(&entry_bytes).map_err(invalid)? {
                    (Manifest::Image(manifest), _) => Ok(Some(Loaded {
                        index_size: bytes.len() as u64,
                        manifest_size: entry_bytes.len() as u64,
                        manifest: *manifest,
                    })),
                    (Manifest::Index(_), _) => Err(invalid(format!(
                        "the image index entry {} is another image index",
                        entry.digest
                    ))),
                }
            }
        }
    }

    /// The size of the image a target leads to: its index, manifest, config
    /// and layers.
    async fn size_of(&self, target: &Descriptor) -> Result<u64, RuntimeError> {
        if let Some(size) = self.lock_sizes().get(&target.digest) {
            return Ok(*size);
        }
        let size = match self.load(&target.digest, target).await {
            Ok(Some(loaded)) => loaded.size(),
            Ok(None) | Err(RuntimeError::InvalidImage { .. }) => {
                // Not (fully) here, or not an image for this node: count
                // what the record names.
                return Ok(target.size.max(0) as u64);
            }
            Err(error) => return Err(error),
        };
        self.remember_size(&target.digest, size);
        Ok(size)
    }

    fn remember_size(&self, digest: &str, size: u64) {
        self.lock_sizes().insert(digest.to_owned(), size);
    }

    /// The size cache; it holds plain values, so a panic elsewhere cannot
    /// leave it inconsistent and poisoning is ignored.
    fn lock_sizes(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer to a pull served from the store.
    async fn pulled_from_store(
        &self,
        asked: &str,
        resolved: &ResolvedImage,
        target: &Descriptor,
    ) -> PulledImage {
        let size = self
            .size_of(target)
            .await
            .unwrap_or(target.size.max(0) as u64);
        PulledImage {
            reference: asked.to_owned(),
            digest: resolved.digest.clone(),
            size,
        }
    }

    /// Fetches and checks what the reference names: the index (if any), the
    /// manifest for this platform and its config.
    async fn fetch(&self, session: &RegistrySession) -> Result<Fetched, RuntimeError> {
        let (top_bytes, top_digest) = session.fetch_manifest(&session.reference).await?;
        let (top, top_media_type) =
            Manifest::parse(&top_bytes).map_err(|reason| session.invalid(reason))?;
        let (index, manifest_blob, manifest) = match top {
            Manifest::Image(manifest) => {
                let blob = Blob {
                    media_type: top_media_type,
                    digest: top_digest,
                    bytes: top_bytes,
                };
                (None, blob, *manifest)
            }
            Manifest::Index(index) => {
                let entry = platform::choose(&index.manifests, &self.platform)
                    .map_err(|no_match| session.invalid(no_match.reason(&self.platform)))?;
                if !names::is_sha256_digest(&entry.digest) {
                    return Err(session.invalid(format!(
                        "the image index names manifest {:?}, not a sha256 digest",
                        entry.digest
                    )));
                }
                let entry_reference = session.reference.clone_with_digest(entry.digest.clone());
                let (bytes, digest) = session.fetch_manifest(&entry_reference).await?;
                let (parsed, media_type) =
                    Manifest::parse(&bytes).map_err(|reason| session.invalid(reason))?;
                let Manifest::Image(manifest) = parsed else {
                    return Err(session.invalid(format!(
                        "the image index entry {} is another image index",
                        entry.digest
                    )));
                };
                let index_blob = Blob {
                    media_type: top_media_type,
                    digest: top_digest,
                    bytes: top_bytes,
                };
                let blob = Blob {
                    media_type,
                    digest,
                    bytes,
                };
                (Some(index_blob), blob, *manifest)
            }
        };
        manifest::check_container_image(&manifest).map_err(|reason| session.invalid(reason))?;

        // The config: from the store when an earlier pull put it there.
        let config_bytes = match content::read(
            &self.containerd,
            &manifest.config.digest,
            manifest::MAX_CONFIG_BYTES,
        )
        .await?
        {
            Some(bytes) => bytes,
            None => {
                session
                    .fetch_blob(&manifest.config, manifest::MAX_CONFIG_BYTES)
                    .await?
            }
        };
        let config = manifest::parse_config(&config_bytes, manifest.layers.len())
            .map_err(|reason| session.invalid(reason))?;
        if index.is_none() {
            let os = config.os().to_string();
            let architecture = config.architecture().to_string();
            if self
                .platform
                .rank(&os, &architecture, config.variant().as_deref())
                .is_none()
            {
                return Err(session.invalid(format!(
                    "the image is for {os}/{architecture}, and this node is {}",
                    self.platform
                )));
            }
        }
        let chain_ids = manifest::chain_ids(config.rootfs().diff_ids());
        Ok(Fetched {
            index,
            manifest_blob,
            config_blob: Blob {
                media_type: manifest.config.media_type.clone(),
                digest: manifest.config.digest.clone(),
                bytes: config_bytes,
            },
            config,
            manifest,
            chain_ids,
        })
    }

    /// Writes everything fetched into the content store and unpacks it,
    /// under `lease`: layers, snapshots, then the config, manifest and index
    /// with the labels that hold their children.
    async fn store(
        &self,
        session: &RegistrySession,
        fetched: &Fetched,
        lease: &Lease,
    ) -> Result<(), RuntimeError> {
        let diff_ids = fetched.config.rootfs().diff_ids();
        // The futures are made first, not by a closure in the stream: a
        // closure returning a borrowing future makes the whole pull not
        // `Send` for every lifetime, which `async_trait` requires.
        let layers: Vec<_> = fetched
            .manifest
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(layer, diff_id)| self.store_layer(session, layer, diff_id, lease))
            .collect();
        futures::stream::iter(layers)
            .buffer_unordered(CONCURRENT_LAYER_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;

        let layers: Vec<unpack::Layer> = fetched
            .manifest
            .layers
            .iter()
            .zip(diff_ids)
            .zip(&fetched.chain_ids)
            .map(|((layer, diff_id), chain_id)| unpack::Layer {
                blob: descriptor(layer),
                diff_id: diff_id.clone(),
                chain_id: chain_id.clone(),
            })
            .collect();
        unpack::unpack(&self.containerd, lease, &layers, &session.asked).await?;

        let top_chain_id = fetched.chain_ids.last().cloned().unwrap_or_default();
        self.store_blob(
            &fetched.config_blob,
            HashMap::from([(manifest::GC_REF_SNAPSHOT.to_owned(), top_chain_id)]),
            lease,
        )
        .await?;
        self.store_blob(
            &fetched.manifest_blob,
            manifest::manifest_labels(&fetched.manifest),
            lease,
        )
        .await?;
        if let Some(index) = &fetched.index {
            self.store_blob(
                index,
                manifest::index_labels(&fetched.manifest_blob.digest),
                lease,
            )
            .await?;
        }
        Ok(())
    }

    /// Streams a layer from the registry into the content store, unless it
    /// is there already.
    async fn store_layer(
        &self,
        session: &RegistrySession,
        layer: &OciDescriptor,
        diff_id: &str,
        lease: &Lease,
    ) -> Result<(), RuntimeError> {
        let labels = HashMap::from([(manifest::UNCOMPRESSED_LABEL.to_owned(), diff_id.to_owned())]);
        self.put_blob(
            &layer.digest,
            layer.size,
            labels,
            Source::Registry(session, layer),
            lease,
        )
        .await
    }

    /// Writes a blob held in memory into the content store, or labels it
    /// when it is there already.
    async fn store_blob(
        &self,
        blob: &Blob,
        labels: HashMap<String, String>,
        lease: &Lease,
    ) -> Result<(), RuntimeError> {
        let size = blob.bytes.len() as i64;
        self.put_blob(
            &blob.digest,
            size,
            labels,
            Source::Memory(&blob.bytes),
            lease,
        )
        .await
    }

    /// Puts the blob `digest` of `size` bytes into the content store with
    /// `labels`, from `source` unless containerd has its bytes already:
    /// the blob in this namespace (then it is only labelled), in another
    /// namespace, or in a finished ingest of an earlier pull (then it is
    /// committed without writing). A finished ingest that does not commit
    /// is discarded and the blob written afresh. When another pull stores
    /// the blob first, it is taken from there (and held by this pull's
    /// lease, and labelled).
    async fn put_blob(
        &self,
        digest: &str,
        size: i64,
        labels: HashMap<String, String>,
        source: Source<'_>,
        lease: &Lease,
    ) -> Result<(), RuntimeError> {
        let mut discarded_stale_ingest = false;
        loop {
            let mut writer = match content::open(&self.containerd, &lease.id, digest, size).await? {
                content::Opened::Present => {
                    let existing = content::info(&self.containerd, digest)
                        .await?
                        .map(|info| info.labels)
                        .unwrap_or_default();
                    return content::add_labels(&self.containerd, digest, &existing, &labels).await;
                }
                content::Opened::Writer(writer) => writer,
            };
            if writer.holds_everything() && !discarded_stale_ingest {
                match writer.commit(labels.clone()).await {
                    Ok(content::Stored::Here) => return Ok(()),
                    // Open again: it is present now.
                    Ok(content::Stored::Elsewhere) => continue,
                    Err(error) => {
                        tracing::warn!(
                            %digest,
                            error = %skiff_sdk::error_chain(&error),
                            "a finished ingest did not commit; writing the blob again"
                        );
                        content::abort(&self.containerd, digest).await?;
                        discarded_stale_ingest = true;
                        continue;
                    }
                }
            }
            if write_all(&mut writer, &source).await? == content::Stored::Elsewhere {
                continue;
            }
            match writer.commit(labels.clone()).await? {
                content::Stored::Here => return Ok(()),
                content::Stored::Elsewhere => continue,
            }
        }
    }

    /// Records a pulled image under the name asked for and under
    /// `repository@digest`.
    async fn record_pull(
        &self,
        name: &str,
        repository: &str,
        target: &Descriptor,
    ) -> Result<(), RuntimeError> {
        records::put(&self.containerd, name, target, NameKind::Asked).await?;
        let digest_name = digest_name(repository, &target.digest);
        if digest_name != name {
            records::put(&self.containerd, &digest_name, target, NameKind::Digest).await?;
        }
        Ok(())
    }
}

/// A blob held in memory: a manifest, an index or a config.
struct Blob {
    media_type: String,
    digest: String,
    bytes: Vec<u8>,
}

impl Blob {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as i64,
            annotations: HashMap::new(),
        }
    }
}

/// Where the bytes of a blob come from.
enum Source<'a> {
    /// Fetched already (manifests, configs).
    Memory(&'a [u8]),
    /// Streamed from the registry (layers).
    Registry(&'a RegistrySession, &'a OciDescriptor),
}

/// What a pull fetched from the registry before storing anything.
struct Fetched {
    /// The image index the reference names, if it names one.
    index: Option<Blob>,
    /// The image manifest for this platform.
    manifest_blob: Blob,
    manifest: OciImageManifest,
    config_blob: Blob,
    config: ImageConfiguration,
    /// The layers' chain IDs, bottom first.
    chain_ids: Vec<String>,
}

impl Fetched {
    /// What the reference names: the index, else the manifest.
    fn target(&self) -> Descriptor {
        self.index
            .as_ref()
            .unwrap_or(&self.manifest_blob)
            .descriptor()
    }

    /// Bytes the image takes in the content store.
    fn size(&self) -> u64 {
        let blobs = self
            .index
            .iter()
            .chain([&self.manifest_blob, &self.config_blob]);
        blobs.map(|blob| blob.bytes.len() as u64).sum::<u64>()
            + self
                .manifest
                .layers
                .iter()
                .map(|layer| layer.size.max(0) as u64)
                .sum::<u64>()
    }
}

/// An image manifest read back from the content store.
struct Loaded {
    index_size: u64,
    manifest_size: u64,
    manifest: OciImageManifest,
}

impl Loaded {
    /// Bytes the image takes in the content store.
    fn size(&self) -> u64 {
        self.index_size
            + self.manifest_size
            + std::iter::once(&self.manifest.config)
                .chain(&self.manifest.layers)
                .map(|blob| blob.size.max(0) as u64)
                .sum::<u64>()
    }
}

/// Writes every byte of `source` into `writer`, or stops when another
/// writer stored the blob first.
async fn write_all(
    writer: &mut content::Writer,
    source: &Source<'_>,
) -> Result<content::Stored, RuntimeError> {
    match source {
        Source::Memory(bytes) => writer.write(bytes).await,
        Source::Registry(session, descriptor) => {
            let mut download = session.download(descriptor).await?;
            while let Some(chunk) = download.next_chunk().await? {
                if writer.write(&chunk).await? == content::Stored::Elsewhere {
                    return Ok(content::Stored::Elsewhere);
                }
            }
            Ok(content::Stored::Here)
        }
    }
}

/// A containerd descriptor of a manifest's descriptor.
fn descriptor(blob: &OciDescriptor) -> Descriptor {
    Descriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.clone(),
        size: blob.size,
        annotations: HashMap::new(),
    }
}

/// Parses a reference for the image store, refusing malformed ones.
fn parse_name(reference: &str) -> Result<ImageName, RuntimeError> {
    ImageName::parse(reference).map_err(|message| RuntimeError::invalid_argument("image", message))
}
