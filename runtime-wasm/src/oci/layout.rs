//! What a manifest means for the Wasm runtime: which media types hold Wasm,
//! which entry of an image index to take, whether bytes are a component or a
//! core module, and how sizes read in messages. Pure decisions over values,
//! so that the network and the store only act on their verdicts.

use std::fmt;

use oci_client::manifest::{
    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
    IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE, ImageIndexEntry, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
    OciDescriptor, OciImageManifest,
};

/// Config media type of the CNCF Wasm OCI artifact layout.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// Layer media type of the CNCF Wasm OCI artifact layout: the layer is the
/// Wasm binary itself.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Layer media type of the older wasm-to-oci layout (Krustlet, early
/// runwasi), still found in registries; its layer is the Wasm binary too.
pub const LEGACY_WASM_LAYER_MEDIA_TYPE: &str = oci_client::manifest::WASM_LAYER_MEDIA_TYPE;

/// The manifest media types asked for when resolving a reference: OCI and
/// Docker image manifests and their index / list forms.
pub const ACCEPTED_MANIFEST_MEDIA_TYPES: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// The operating systems of image index entries that carry Wasm, most
/// preferred first (`wasip2` components run everywhere a `wasip1` module
/// does on this runtime, and `wasi` is the generic name some tools use).
const WASM_PLATFORM_OSES: &[&str] = &["wasip2", "wasip1", "wasi"];

/// The architecture of image index entries that carry Wasm.
const WASM_PLATFORM_ARCHITECTURE: &str = "wasm";

/// How the Wasm binary sits in the layer that holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerFormat {
    /// The layer is the Wasm binary (the CNCF artifact layout).
    WasmBinary,
    /// The layer is a tar archive holding exactly one `.wasm` file.
    Tar,
    /// The layer is a gzip-compressed tar archive holding exactly one
    /// `.wasm` file.
    TarGzip,
}

impl LayerFormat {
    /// The format of a layer by its media type, or `None` when the media
    /// type does not hold Wasm in a way this runtime reads.
    pub fn from_media_type(media_type: &str) -> Option<LayerFormat> {
        match media_type {
            WASM_LAYER_MEDIA_TYPE | LEGACY_WASM_LAYER_MEDIA_TYPE => Some(LayerFormat::WasmBinary),
            IMAGE_LAYER_MEDIA_TYPE | IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE => Some(LayerFormat::Tar),
            IMAGE_LAYER_GZIP_MEDIA_TYPE | IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE => {
                Some(LayerFormat::TarGzip)
            }
            _ => None,
        }
    }
}

/// The one layer of a manifest that holds the Wasm binary, and how.
#[derive(Clone, Debug)]
pub struct WasmLayer {
    /// The layer's descriptor, as the manifest states it.
    pub descriptor: OciDescriptor,
    /// How to get the Wasm bytes out of it.
    pub format: LayerFormat,
}

/// Picks the layer that holds the Wasm binary, or says in a sentence why
/// the manifest is not something the Wasm runtime runs.
///
/// A Wasm artifact has exactly one layer: an `application/wasm` binary, or a
/// tar / tar+gzip layer with a single `.wasm` file in it. Anything with more
/// layers is a container image.
pub fn wasm_layer_of(manifest: &OciImageManifest) -> Result<WasmLayer, String> {
    let layer = match manifest.layers.as_slice() {
        [] => return Err("the manifest has no layers".to_owned()),
        [layer] => layer,
        layers => {
            return Err(format!(
                "the manifest has {} layers, but a Wasm artifact has exactly one \
                 (config media type {}; a container image?)",
                layers.len(),
                manifest.config.media_type
            ));
        }
    };
    match LayerFormat::from_media_type(&layer.media_type) {
        Some(format) => Ok(WasmLayer {
            descriptor: layer.clone(),
            format,
        }),
        None => Err(format!(
            "layer media type {} is neither {WASM_LAYER_MEDIA_TYPE} nor a tar layer \
             holding one .wasm file",
            layer.media_type
        )),
    }
}

/// Chooses the entry of an image index to pull: the one for a Wasm platform
/// (`wasip2`, then `wasip1`, then `wasi`, with architecture `wasm`), else the
/// only entry, else none, with the reason.
pub fn choose_index_entry(entries: &[ImageIndexEntry]) -> Result<&ImageIndexEntry, String> {
    let platform_of = |entry: &ImageIndexEntry| {
        entry
            .platform
            .as_ref()
            .map(|platform| (platform.os.to_string(), platform.architecture.to_string()))
    };
    for wanted_os in WASM_PLATFORM_OSES {
        let found = entries.iter().find(|entry| {
            platform_of(entry).is_some_and(|(os, architecture)| {
                os == *wanted_os && architecture == WASM_PLATFORM_ARCHITECTURE
            })
        });
        if let Some(entry) = found {
            return Ok(entry);
        }
    }
    match entries {
        [] => Err("the image index lists no manifests".to_owned()),
        [only] => Ok(only),
        several => {
            let platforms: Vec<String> = several
                .iter()
                .map(|entry| match platform_of(entry) {
                    Some((os, architecture)) => format!("{os}/{architecture}"),
                    None => "unspecified".to_owned(),
                })
                .collect();
            Err(format!(
                "the image index has no manifest for a Wasm platform (wasip2, wasip1 or \
                 wasi on wasm), only {}",
                platforms.join(", ")
            ))
        }
    }
}

/// The kind of a Wasm binary, from its 8-byte preamble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WasmKind {
    /// A component (layer 1, version 0x0d): runs as WASI 0.2.
    Component,
    /// A core module (version 1): runs as WASI preview 1.
    CoreModule,
}

impl WasmKind {
    /// The WASI platform name a binary of this kind targets, as written in
    /// the `os` of the artifact's config and of image index entries.
    pub fn platform_os(self) -> &'static str {
        match self {
            WasmKind::Component => "wasip2",
            WasmKind::CoreModule => "wasip1",
        }
    }
}

/// The magic every Wasm binary starts with.
const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// Version and layer of a core module.
const CORE_MODULE_VERSION: &[u8; 4] = &[0x01, 0x00, 0x00, 0x00];
/// Version and layer of a component.
const COMPONENT_VERSION: &[u8; 4] = &[0x0d, 0x00, 0x01, 0x00];

/// The kind of a Wasm binary from its first bytes (at least 8 are needed),
/// or why the bytes are not one.
pub fn wasm_kind(preamble: &[u8]) -> Result<WasmKind, String> {
    if preamble.len() < 8 || &preamble[..4] != WASM_MAGIC {
        return Err(
            "the content is not a Wasm binary (it does not start with the \\0asm magic)".to_owned(),
        );
    }
    match &preamble[4..8] {
        version if version == CORE_MODULE_VERSION => Ok(WasmKind::CoreModule),
        version if version == COMPONENT_VERSION => Ok(WasmKind::Component),
        version => Err(format!(
            "the Wasm binary has version {}, neither a core module (01000000) nor a \
             component (0d000100)",
            hex::encode(version)
        )),
    }
}

/// Whether `digest` is a well-formed `sha256:<64 lower-case hex>` digest:
/// only those name files in the store, so that a registry cannot name a path.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A byte count written for people: `512 B`, `1.5 KiB`, `80.0 MiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: &[&str] = &["KiB", "MiB", "GiB", "TiB"];
        let bytes = self.0;
        if bytes < 1024 {
            return write!(f, "{bytes} B");
        }
        let mut value = bytes as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, Platform};

    use super::*;

    fn descriptor(media_type: &str) -> OciDescriptor {
        OciDescriptor {
            media_type: media_type.to_owned(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 8,
            ..OciDescriptor::default()
        }
    }

    fn manifest(config: &str, layers: &[&str]) -> OciImageManifest {
        OciImageManifest {
            config: descriptor(config),
            layers: layers
                .iter()
                .map(|media_type| descriptor(media_type))
                .collect(),
            ..OciImageManifest::default()
        }
    }

    #[track_caller]
    fn check_layer(config: &str, layers: &[&str], expect: Result<LayerFormat, &str>) {
        let verdict = wasm_layer_of(&manifest(config, layers)).map(|layer| layer.format);
        match (verdict, expect) {
            (Ok(format), Ok(expected)) => assert_eq!(format, expected),
            (Err(reason), Err(fragment)) => assert!(reason.contains(fragment), "{reason}"),
            (verdict, expect) => panic!("{verdict:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn layer_media_types_decide_the_format() {
        check_layer(
            WASM_CONFIG_MEDIA_TYPE,
            &[WASM_LAYER_MEDIA_TYPE],
            Ok(LayerFormat::WasmBinary),
        );
        check_layer(
            "application/vnd.wasm.config.v1+json",
            &[LEGACY_WASM_LAYER_MEDIA_TYPE],
            Ok(LayerFormat::WasmBinary),
        );
        check_layer(
            IMAGE_CONFIG_MEDIA_TYPE,
            &[IMAGE_LAYER_MEDIA_TYPE],
            Ok(LayerFormat::Tar),
        );
        check_layer(
            IMAGE_CONFIG_MEDIA_TYPE,
            &[IMAGE_LAYER_GZIP_MEDIA_TYPE],
            Ok(LayerFormat::TarGzip),
        );
        check_layer(
            "application/vnd.docker.container.image.v1+json",
            &[IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE],
            Ok(LayerFormat::TarGzip),
        );
        check_layer(
            IMAGE_CONFIG_MEDIA_TYPE,
            &[IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE],
            Ok(LayerFormat::Tar),
        );
        check_layer(WASM_CONFIG_MEDIA_TYPE, &[], Err("no layers"));
        check_layer(
            IMAGE_CONFIG_MEDIA_TYPE,
            &[IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE],
            Err("the manifest has 2 layers"),
        );
        check_layer(
            WASM_CONFIG_MEDIA_TYPE,
            &["application/octet-stream"],
            Err("layer media type application/octet-stream is neither"),
        );
        check_layer(
            IMAGE_CONFIG_MEDIA_TYPE,
            &["application/vnd.oci.image.layer.v1.tar+zstd"],
            Err("tar+zstd is neither"),
        );
    }

    fn entry(digest: &str, platform: Option<(&str, &str)>) -> ImageIndexEntry {
        ImageIndexEntry {
            media_type: OCI_IMAGE_MEDIA_TYPE.to_owned(),
            digest: digest.to_owned(),
            size: 100,
            platform: platform.map(|(os, architecture)| Platform {
                architecture: architecture.into(),
                os: os.into(),
                os_version: None,
                os_features: None,
                variant: None,
                features: None,
            }),
            annotations: None,
            artifact_type: None,
        }
    }

    #[track_caller]
    fn check_choice(entries: &[ImageIndexEntry], expect: Result<&str, &str>) {
        match (choose_index_entry(entries), expect) {
            (Ok(chosen), Ok(digest)) => assert_eq!(chosen.digest, digest),
            (Err(reason), Err(fragment)) => assert!(reason.contains(fragment), "{reason}"),
            (chosen, expect) => panic!("{chosen:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn index_entries_prefer_wasm_platforms() {
        let linux = entry("linux", Some(("linux", "amd64")));
        let p1 = entry("p1", Some(("wasip1", "wasm")));
        let p2 = entry("p2", Some(("wasip2", "wasm")));
        let wasi = entry("wasi", Some(("wasi", "wasm")));
        let no_platform = entry("bare", None);
        check_choice(&[linux.clone(), p1.clone(), p2.clone()], Ok("p2"));
        check_choice(&[wasi.clone(), p1.clone()], Ok("p1"));
        check_choice(&[linux.clone(), wasi.clone()], Ok("wasi"));
        check_choice(std::slice::from_ref(&no_platform), Ok("bare"));
        check_choice(std::slice::from_ref(&linux), Ok("linux"));
        check_choice(&[], Err("lists no manifests"));
        check_choice(
            &[linux, entry("arm", Some(("linux", "arm64"))), no_platform],
            Err("only linux/amd64, linux/arm64, unspecified"),
        );
        // `wasip2` on another architecture is not a Wasm platform.
        check_choice(
            &[
                entry("odd", Some(("wasip2", "amd64"))),
                entry("x", Some(("linux", "amd64"))),
            ],
            Err("no manifest for a Wasm platform"),
        );
    }

    #[test]
    fn wasm_kinds_from_the_preamble() {
        assert_eq!(wasm_kind(b"\0asm\x01\0\0\0"), Ok(WasmKind::CoreModule));
        assert_eq!(wasm_kind(b"\0asm\x0d\0\x01\0rest"), Ok(WasmKind::Component));
        assert!(wasm_kind(b"\0asm").unwrap_err().contains("\\0asm magic"));
        assert!(
            wasm_kind(b"#!/bin/sh\n")
                .unwrap_err()
                .contains("\\0asm magic")
        );
        assert!(
            wasm_kind(b"\0asm\x02\0\0\0")
                .unwrap_err()
                .contains("version 02000000")
        );
        assert_eq!(WasmKind::Component.platform_os(), "wasip2");
        assert_eq!(WasmKind::CoreModule.platform_os(), "wasip1");
    }

    #[test]
    fn only_well_formed_sha256_digests_name_files() {
        assert!(is_sha256_digest(&format!("sha256:{}", "0f".repeat(32))));
        for bad in [
            "sha256:".to_owned(),
            format!("sha256:{}", "0F".repeat(32)),
            format!("sha256:{}", "0".repeat(63)),
            format!("sha512:{}", "0".repeat(64)),
            format!("sha256:../{}", "0".repeat(61)),
        ] {
            assert!(!is_sha256_digest(&bad), "{bad}");
        }
    }

    #[test]
    fn sizes_read_for_people() {
        for (bytes, shown) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (64 << 20, "64.0 MiB"),
            (80 << 20, "80.0 MiB"),
            ((3 << 30) + (1 << 29), "3.5 GiB"),
        ] {
            assert_eq!(ByteSize(bytes).to_string(), shown);
        }
    }
}
