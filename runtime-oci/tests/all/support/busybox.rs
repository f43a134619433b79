//! A busybox OCI image for the tests, built from Debian's static busybox
//! (`/bin/busybox`, package busybox-static, installed by `make deps`) and
//! pushed to a test registry: one gzip layer with `/bin/busybox`, its
//! applets as symlinks, `/etc/passwd` and `/etc/group` (root and nobody) and
//! a world-writable `/tmp`; a config for this node's platform with
//! `PATH=/bin` and `sh` as the command. Everything in the layer is
//! deterministic, so the same busybox gives the same digests in every run.
//!
//! Variants: a multi-platform image index (a second manifest for another
//! architecture, listed first, sharing the layer) to test platform
//! selection, and a marker (a second layer with `/etc/skiff-marker`) that
//! makes an image's content unique to one test.

use std::io::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};
use skiff_runtime_oci::image::Platform;

use super::registry::{TestRegistry, sha256_digest};

/// Debian's static busybox.
const BUSYBOX: &str = "/bin/busybox";

/// The applets linked in `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "true", "false", "echo", "cat", "sleep", "httpd", "printenv", "id", "hostname", "ls",
    "grep", "mount", "wc",
];

/// The modification time of every file in the layers (fixed, for stable
/// digests).
const MTIME: u64 = 1_700_000_000;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// How the image is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The tag names the image manifest for this node's platform.
    SinglePlatform,
    /// The tag names an image index whose first entry is for another
    /// architecture and whose second is this node's.
    MultiPlatform,
}

/// A pushed busybox image and what a pull of it must produce.
#[derive(Clone, Debug)]
pub struct BusyboxImage {
    /// `127.0.0.1:PORT/<repo>:<tag>`.
    pub reference: String,
    /// `127.0.0.1:PORT/<repo>`.
    pub repository: String,
    /// The digest of what the reference names (the index, for
    /// [`Layout::MultiPlatform`]).
    pub digest: String,
    /// The image manifest for this node's platform.
    pub manifest_digest: String,
    /// The other architecture's manifest, for [`Layout::MultiPlatform`].
    pub other_manifest_digest: Option<String>,
    /// This platform's config.
    pub config_digest: String,
    /// The layer blobs, bottom first.
    pub layer_digests: Vec<String>,
    /// The layers' uncompressed digests, bottom first.
    pub diff_ids: Vec<String>,
    /// The layers' chain IDs, bottom first (the last is the top snapshot).
    pub chain_ids: Vec<String>,
    /// Bytes a pull stores: index (if any), manifest, config and layers.
    pub size: u64,
}

impl BusyboxImage {
    /// `repository@digest`.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }

    /// The top layer's chain ID.
    pub fn top_chain_id(&self) -> &str {
        self.chain_ids.last().expect("at least one layer")
    }
}

/// A gzip tar layer and its diff ID.
#[derive(Clone)]
pub struct Layer {
    /// The compressed layer.
    pub bytes: Vec<u8>,
    /// The digest of the uncompressed tar.
    pub diff_id: String,
}

/// Builds busybox and pushes it as `repo_tag` (`name:tag`) to `registry`.
/// With a marker the image gets a second layer holding it, so that its
/// layer, config and manifest are this image's alone.
pub async fn push_busybox(
    registry: &TestRegistry,
    repo_tag: &str,
    layout: Layout,
    marker: Option<&str>,
) -> BusyboxImage {
    let (repository, _tag) = repo_tag.split_once(':').expect("repo:tag");
    let mut layers = vec![busybox_layer().clone()];
    layers.extend(marker.map(marker_layer));
    let diff_ids: Vec<String> = layers.iter().map(|layer| layer.diff_id.clone()).collect();
    let mut layer_descriptors = Vec::new();
    for layer in &layers {
        layer_descriptors.push(
            registry
                .push_blob(repository, &layer.bytes, OCI_LAYER_GZIP)
                .await,
        );
    }
    let layers_size: u64 = layers.iter().map(|layer| layer.bytes.len() as u64).sum();

    let host = Platform::host();
    let (config, config_size) = push_config(registry, repository, &host, &diff_ids).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layer_descriptors,
    });

    let (digest, manifest_digest, other_manifest_digest, size) = match layout {
        Layout::SinglePlatform => {
            let (digest, manifest_size) = registry.push_manifest(repo_tag, &manifest).await;
            let size = manifest_size as u64 + config_size + layers_size;
            (digest.clone(), digest, None, size)
        }
        Layout::MultiPlatform => {
            let other = other_platform(&host);
            let (other_config, _) = push_config(registry, repository, &other, &diff_ids).await;
            let other_manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": other_config,
                "layers": layer_descriptors,
            });
            let other_digest = manifest_digest_of(&other_manifest);
            let (other_digest_pushed, other_size) = registry
                .push_manifest(&format!("{repository}@{other_digest}"), &other_manifest)
                .await;
            assert_eq!(other_digest_pushed, other_digest);
            let host_digest = manifest_digest_of(&manifest);
            let (_, host_size) = registry
                .push_manifest(&format!("{repository}@{host_digest}"), &manifest)
                .await;
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    index_entry(&other_digest, other_size, &other),
                    index_entry(&host_digest, host_size, &host),
                ],
            });
            let (index_digest, index_size) = registry.push_manifest(repo_tag, &index).await;
            let size = index_size as u64 + host_size as u64 + config_size + layers_size;
            (index_digest, host_digest, Some(other_digest), size)
        }
    };
    BusyboxImage {
        reference: registry.reference(repo_tag),
        repository: registry.reference(repository),
        digest,
        manifest_digest,
        other_manifest_digest,
        config_digest: config["digest"].as_str().unwrap().to_owned(),
        layer_digests: layer_descriptors
            .iter()
            .map(|descriptor| descriptor["digest"].as_str().unwrap().to_owned())
            .collect(),
        chain_ids: chain_ids(&diff_ids),
        diff_ids,
        size,
    }
}

/// The busybox layer, built once per test process.
pub fn busybox_layer() -> &'static Layer {
    static LAYER: OnceLock<Layer> = OnceLock::new();
    LAYER.get_or_init(|| {
        let busybox = std::fs::read(BUSYBOX).unwrap_or_else(|error| {
            panic!(
                "read {BUSYBOX} ({error}): install Debian's busybox-static (`make deps`)"
            )
        });
        tar_gz(|tar| {
            directory(tar, "bin/", 0o755);
            file(tar, "bin/busybox", 0o755, &busybox);
            for applet in APPLETS {
                symlink(tar, &format!("bin/{applet}"), "busybox");
            }
            directory(tar, "etc/", 0o755);
            file(
                tar,
                "etc/passwd",
                0o644,
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            );
            file(tar, "etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n");
            directory(tar, "tmp/", 0o1777);
        })
    })
}

/// A layer with `/etc/skiff-marker` holding `marker`.
pub fn marker_layer(marker: &str) -> Layer {
    tar_gz(|tar| {
        directory(tar, "etc/", 0o755);
        file(tar, "etc/skiff-marker", 0o644, marker.as_bytes());
    })
}

/// Whether busybox can be built here (the static binary is installed).
pub fn available() -> bool {
    Path::new(BUSYBOX).exists()
}

/// Pushes a config for `platform` and returns its descriptor and size.
async fn push_config(
    registry: &TestRegistry,
    repository: &str,
    platform: &Platform,
    diff_ids: &[String],
) -> (serde_json::Value, u64) {
    let mut config = serde_json::json!({
        "created": "2023-11-14T22:13:20Z",
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| serde_json::json!({
            "created_by": "skiff test fixture (Debian busybox-static)",
        })).collect::<Vec<_>>(),
    });
    if let Some(variant) = &platform.variant {
        config["variant"] = variant.clone().into();
    }
    let bytes = serde_json::to_vec(&config).unwrap();
    let descriptor = registry.push_blob(repository, &bytes, OCI_CONFIG).await;
    (descriptor, bytes.len() as u64)
}

/// An image index entry for a manifest of `platform`.
fn index_entry(digest: &str, size: usize, platform: &Platform) -> serde_json::Value {
    let mut entry_platform = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
    });
    if let Some(variant) = &platform.variant {
        entry_platform["variant"] = variant.clone().into();
    }
    serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": size,
        "platform": entry_platform,
    })
}

/// An architecture other than this node's.
fn other_platform(host: &Platform) -> Platform {
    let (architecture, variant) = if host.architecture == "amd64" {
        ("arm64", Some("v8"))
    } else {
        ("amd64", None)
    };
    Platform {
        os: "linux".to_owned(),
        architecture: architecture.to_owned(),
        variant: variant.map(str::to_owned),
    }
}

/// The digest a manifest gets when pushed by `TestRegistry::push_manifest`.
fn manifest_digest_of(manifest: &serde_json::Value) -> String {
    sha256_digest(&serde_json::to_vec(manifest).unwrap())
}

/// containerd's chain IDs of a stack of diff IDs, computed independently of
/// the runtime's.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

/// A gzip tar archive built by `build`, with its diff ID.
fn tar_gz(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    build(&mut tar);
    let tar = tar.into_inner().expect("finish the tar archive");
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(&tar).expect("gzip the layer");
    Layer {
        bytes: gzip.finish().expect("finish the gzip stream"),
        diff_id,
    }
}

/// A header owned by root with the fixed modification time.
fn header(entry_type: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header
}

fn directory(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut header = header(tar::EntryType::Directory, mode, 0);
    tar.append_data(&mut header, path, std::io::empty())
        .expect("a directory entry");
}

fn file(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, bytes: &[u8]) {
    let mut header = header(tar::EntryType::Regular, mode, bytes.len() as u64);
    tar.append_data(&mut header, path, bytes)
        .expect("a file entry");
}

fn symlink(tar: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut header = header(tar::EntryType::Symlink, 0o777, 0);
    tar.append_link(&mut header, path, target)
        .expect("a symlink entry");
}
