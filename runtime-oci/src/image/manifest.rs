//! What the manifests and configs of a container image mean for containerd:
//! media types, which images are container images at all (and not Wasm
//! artifacts), the layers' chain IDs, and the garbage-collection labels
//! containerd follows from an image record down to its snapshots. Pure.

use std::collections::HashMap;

use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
    IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE,
    IMAGE_LAYER_NONDISTRIBUTABLE_GZIP_MEDIA_TYPE, IMAGE_LAYER_NONDISTRIBUTABLE_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageIndex, OciImageManifest, Versioned,
};
use oci_spec::image::ImageConfiguration;
use sha2::{Digest as _, Sha256};

use super::names::is_sha256_digest;

/// The manifest media types asked for when resolving a reference.
pub const ACCEPTED_MANIFEST_MEDIA_TYPES: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// Config media type of the CNCF Wasm OCI artifact layout.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// Config media types of Wasm artifacts: the CNCF layout's and the older
/// wasm-to-oci one's.
const WASM_CONFIG_MEDIA_TYPES: &[&str] = &[
    WASM_CONFIG_MEDIA_TYPE,
    oci_client::manifest::WASM_CONFIG_MEDIA_TYPE,
];

/// Layer media types that hold a Wasm binary (the CNCF layout's and the
/// older wasm-to-oci one's).
const WASM_LAYER_MEDIA_TYPES: &[&str] = &[
    "application/wasm",
    oci_client::manifest::WASM_LAYER_MEDIA_TYPE,
];

/// Layer media types containerd's diff service applies to a snapshot:
/// tar archives, plain, gzip or zstd compressed.
const FILESYSTEM_LAYER_MEDIA_TYPES: &[&str] = &[
    IMAGE_LAYER_MEDIA_TYPE,
    IMAGE_LAYER_GZIP_MEDIA_TYPE,
    "application/vnd.oci.image.layer.v1.tar+zstd",
    IMAGE_LAYER_NONDISTRIBUTABLE_MEDIA_TYPE,
    IMAGE_LAYER_NONDISTRIBUTABLE_GZIP_MEDIA_TYPE,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// The label naming an image manifest's config blob, which containerd's
/// garbage collector follows.
pub const GC_REF_CONFIG: &str = "containerd.io/gc.ref.content.config";
/// Prefix of the labels naming a manifest's layers (`.l.<n>`).
pub const GC_REF_LAYER_PREFIX: &str = "containerd.io/gc.ref.content.l.";
/// Prefix of the labels naming an index's manifests (`.m.<n>`).
pub const GC_REF_MANIFEST_PREFIX: &str = "containerd.io/gc.ref.content.m.";
/// The label on a config blob naming the top snapshot of the unpacked
/// image in the overlayfs snapshotter.
pub const GC_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.overlayfs";
/// The label on a layer blob naming its uncompressed digest (its diff ID),
/// as containerd sets it.
pub const UNCOMPRESSED_LABEL: &str = "containerd.io/uncompressed";

/// Manifests and configs larger than this are refused (the distribution
/// registry's own manifest limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Configs larger than this are refused.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// A manifest as fetched: an image manifest or an image index.
#[derive(Clone, Debug)]
pub enum Manifest {
    /// An image manifest (OCI or Docker schema 2).
    Image(Box<OciImageManifest>),
    /// An image index (OCI) or manifest list (Docker).
    Index(OciImageIndex),
}

impl Manifest {
    /// Parses manifest bytes and returns them with the media type the
    /// content store records for them (the document's own `mediaType`, else
    /// the OCI type of its shape).
    pub fn parse(bytes: &[u8]) -> Result<(Manifest, String), String> {
        let versioned: Versioned = serde_json::from_slice(bytes)
            .map_err(|error| format!("the manifest is not JSON: {error}"))?;
        if versioned.schema_version != 2 {
            return Err(format!(
                "manifest schema version {} is not supported (only 2)",
                versioned.schema_version
            ));
        }
        let media_type = versioned
            .media_type
            .filter(|media_type| !media_type.is_empty());
        let parsed = match media_type.as_deref() {
            Some(OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE) => {
                serde_json::from_slice(bytes).map(Manifest::Index)
            }
            Some(OCI_IMAGE_MEDIA_TYPE | IMAGE_MANIFEST_MEDIA_TYPE) => {
                serde_json::from_slice(bytes).map(|manifest| Manifest::Image(Box::new(manifest)))
            }
            Some(other) => return Err(format!("manifest media type {other} is not supported")),
            None => match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(value) if value.get("manifests").is_some() => {
                    serde_json::from_slice(bytes).map(Manifest::Index)
                }
                _ => serde_json::from_slice(bytes)
                    .map(|manifest| Manifest::Image(Box::new(manifest))),
            },
        }
        .map_err(|error| format!("the manifest cannot be read: {error}"))?;
        let media_type = media_type.unwrap_or_else(|| match parsed {
            Manifest::Image(_) => OCI_IMAGE_MEDIA_TYPE.to_owned(),
            Manifest::Index(_) => OCI_IMAGE_INDEX_MEDIA_TYPE.to_owned(),
        });
        Ok((parsed, media_type))
    }
}

/// Says why an image manifest is not a container image containerd can
/// unpack, or `Ok` when it is one. A Wasm artifact is named as such, so the
/// message points to the Wasm runtime.
pub fn check_container_image(manifest: &OciImageManifest) -> Result<(), String> {
    let config_type = manifest.config.media_type.as_str();
    if WASM_CONFIG_MEDIA_TYPES.contains(&config_type) {
        return Err(format!(
            "it is a Wasm artifact (config media type {config_type}), which the Wasm runtime \
             runs"
        ));
    }
    if let Some(layer) = manifest
        .layers
        .iter()
        .find(|layer| WASM_LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()))
    {
        return Err(format!(
            "it is a Wasm artifact (layer media type {}), which the Wasm runtime runs",
            layer.media_type
        ));
    }
    if config_type != IMAGE_CONFIG_MEDIA_TYPE && config_type != IMAGE_DOCKER_CONFIG_MEDIA_TYPE {
        return Err(format!(
            "config media type {config_type} is not a container image config"
        ));
    }
    if manifest.layers.is_empty() {
        return Err("the manifest has no layers".to_owned());
    }
    for layer in &manifest.layers {
        if !FILESYSTEM_LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
            return Err(format!(
                "layer {} has media type {}, which is not a filesystem layer",
                layer.digest, layer.media_type
            ));
        }
    }
    for descriptor in std::iter::once(&manifest.config).chain(&manifest.layers) {
        check_descriptor(descriptor)?;
    }
    Ok(())
}

/// Refuses a descriptor whose digest is not sha256 or whose size is
/// negative.
pub fn check_descriptor(descriptor: &OciDescriptor) -> Result<(), String> {
    if !is_sha256_digest(&descriptor.digest) {
        return Err(format!(
            "blob digest {:?} is not a sha256 digest",
            descriptor.digest
        ));
    }
    if descriptor.size < 0 {
        return Err(format!(
            "blob {} has a negative size {}",
            descriptor.digest, descriptor.size
        ));
    }
    Ok(())
}

/// Reads an image config and checks that its layers' diff IDs match the
/// manifest's layers one for one.
pub fn parse_config(bytes: &[u8], layers: usize) -> Result<ImageConfiguration, String> {
    let config: ImageConfiguration = serde_json::from_slice(bytes)
        .map_err(|error| format!("the image config cannot be read: {error}"))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != layers {
        return Err(format!(
            "the config lists {} layer diff IDs but the manifest has {layers} layers",
            diff_ids.len()
        ));
    }
    if let Some(bad) = diff_ids.iter().find(|diff_id| !is_sha256_digest(diff_id)) {
        return Err(format!("layer diff ID {bad:?} is not a sha256 digest"));
    }
    Ok(config)
}

/// The chain IDs of a stack of layers, bottom first: the first is the
/// first diff ID, each next one `sha256(parent + " " + diff_id)`. They name
/// the committed snapshots, so that images sharing lower layers share
/// their snapshots.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {diff_id}").as_bytes()))
            ),
        };
        chain.push(next);
    }
    chain
}

/// The labels of an image manifest blob: its config and every layer, so
/// that containerd's garbage collector keeps them while the manifest is.
pub fn manifest_labels(manifest: &OciImageManifest) -> HashMap<String, String> {
    let mut labels = HashMap::from([(GC_REF_CONFIG.to_owned(), manifest.config.digest.clone())]);
    for (index, layer) in manifest.layers.iter().enumerate() {
        labels.insert(
            format!("{GC_REF_LAYER_PREFIX}{index}"),
            layer.digest.clone(),
        );
    }
    labels
}

/// The labels of an image index blob: the manifest pulled from it (the
/// other platforms' are not in the store).
pub fn index_labels(manifest_digest: &str) -> HashMap<String, String> {
    HashMap::from([(
        format!("{GC_REF_MANIFEST_PREFIX}0"),
        manifest_digest.to_owned(),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(fill: char) -> String {
        format!("sha256:{}", fill.to_string().repeat(64))
    }

    fn manifest(config_type: &str, layer_types: &[&str]) -> OciImageManifest {
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": {"mediaType": config_type, "digest": digest('c'), "size": 10},
            "layers": layer_types.iter().enumerate().map(|(index, media_type)| serde_json::json!({
                "mediaType": media_type,
                "digest": digest(char::from_digit(index as u32, 10).unwrap()),
                "size": 20,
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[track_caller]
    fn check(config_type: &str, layer_types: &[&str], expected: Result<(), &str>) {
        let outcome = check_container_image(&manifest(config_type, layer_types));
        match expected {
            Ok(()) => assert_eq!(outcome, Ok(()), "{config_type} {layer_types:?}"),
            Err(fragment) => {
                let reason = outcome.expect_err(fragment);
                assert!(reason.contains(fragment), "{reason}");
            }
        }
    }

    #[test]
    fn container_images_pass_and_wasm_artifacts_are_named() {
        check(
            IMAGE_CONFIG_MEDIA_TYPE,
            &[IMAGE_LAYER_GZIP_MEDIA_TYPE],
            Ok(()),
        );
        check(
            IMAGE_DOCKER_CONFIG_MEDIA_TYPE,
            &[
                IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ],
            Ok(()),
        );
        check(
            WASM_CONFIG_MEDIA_TYPE,
            &["application/wasm"],
            Err("Wasm artifact (config media type"),
        );
        check(
            IMAGE_CONFIG_MEDIA_TYPE,
            &["application/wasm"],
            Err("Wasm artifact (layer media type application/wasm)"),
        );
        check(
            "application/vnd.cncf.helm.config.v1+json",
            &[IMAGE_LAYER_GZIP_MEDIA_TYPE],
            Err("not a container image config"),
        );
        check(IMAGE_CONFIG_MEDIA_TYPE, &[], Err("no layers"));
        check(
            IMAGE_CONFIG_MEDIA_TYPE,
            &["application/octet-stream"],
            Err("not a filesystem layer"),
        );
    }

    #[test]
    fn manifests_are_told_apart_by_media_type_or_shape() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let (parsed, media_type) = Manifest::parse(index).unwrap();
        assert!(matches!(parsed, Manifest::Index(_)));
        assert_eq!(media_type, OCI_IMAGE_INDEX_MEDIA_TYPE);

        let list = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": IMAGE_MANIFEST_LIST_MEDIA_TYPE, "manifests": [],
        }))
        .unwrap();
        let (parsed, media_type) = Manifest::parse(&list).unwrap();
        assert!(matches!(parsed, Manifest::Index(_)));
        assert_eq!(media_type, IMAGE_MANIFEST_LIST_MEDIA_TYPE);

        let image = serde_json::to_vec(&manifest(IMAGE_CONFIG_MEDIA_TYPE, &[])).unwrap();
        let (parsed, media_type) = Manifest::parse(&image).unwrap();
        assert!(matches!(parsed, Manifest::Image(_)));
        assert_eq!(media_type, OCI_IMAGE_MEDIA_TYPE);

        let schema1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(
            Manifest::parse(schema1)
                .unwrap_err()
                .contains("schema version 1")
        );
        assert!(Manifest::parse(b"<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn chain_ids_follow_containerd() {
        // containerd's identity.ChainID of two diff IDs, computed by hand:
        // sha256("sha256:aaa… sha256:bbb…").
        let expected_second = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(
                format!("{} {}", digest('a'), digest('b')).as_bytes()
            ))
        );
        let chain = chain_ids(&[digest('a'), digest('b'), digest('c')]);
        assert_eq!(chain[0], digest('a'));
        assert_eq!(chain[1], expected_second);
        assert_eq!(
            chain[2],
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(
                    format!("{expected_second} {}", digest('c')).as_bytes()
                ))
            )
        );
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn configs_must_list_one_diff_id_per_layer() {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [digest('d')]},
        }))
        .unwrap();
        let parsed = parse_config(&config, 1).unwrap();
        assert_eq!(
            parsed.config().as_ref().unwrap().cmd().as_deref(),
            Some(&["sh".to_owned()][..])
        );
        assert!(
            parse_config(&config, 2)
                .unwrap_err()
                .contains("1 layer diff IDs")
        );
        assert!(parse_config(b"{}", 0).is_err());
    }

    #[test]
    fn gc_labels_name_every_child() {
        let manifest = manifest(
            IMAGE_CONFIG_MEDIA_TYPE,
            &[IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE],
        );
        assert_eq!(
            manifest_labels(&manifest),
            HashMap::from([
                (GC_REF_CONFIG.to_owned(), digest('c')),
                ("containerd.io/gc.ref.content.l.0".to_owned(), digest('0')),
                ("containerd.io/gc.ref.content.l.1".to_owned(), digest('1')),
            ])
        );
        assert_eq!(
            index_labels(&digest('m')),
            HashMap::from([("containerd.io/gc.ref.content.m.0".to_owned(), digest('m'))])
        );
    }
}
