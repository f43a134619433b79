//! Wasm artifacts against a real registry (`docker-registry` on loopback):
//! push and pull round trips, tags that move, local resolution, the store's
//! list / remove / reopen, single-layer tar images, everything a pull must
//! refuse (not Wasm, several or no `.wasm` files, over the size limit,
//! content that fails its digest) without storing anything, and the
//! registry's authentication schemes and transports.

use std::path::Path;

use crate::support::core_module;
use crate::support::registry::{TestRegistry, chain, sha256_digest};
use flate2::Compression;
use flate2::write::GzEncoder;
use skiff_runtime_wasm::oci::{ArtifactStore, PushOptions, PushProgress, fetch_wasm, push_wasm};
use skiff_sdk::runtime::{ImageSpec, ObjectKind, PullOptions, RegistryAuth, RuntimeError};

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A tar archive of `(path, Some(bytes))` files and `(path, None)`
/// directories.
fn tar_archive(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
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
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn image(reference: &str) -> ImageSpec {
    ImageSpec::new(reference)
}

/// The files in the store's blob directory.
fn stored_blobs(store_dir: &Path) -> usize {
    std::fs::read_dir(store_dir.join("blobs/sha256"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A plain `oci-client` client for looking at what is in the registry.
fn inspecting_client(registry: &TestRegistry) -> oci_client::Client {
    oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::HttpsExcept(vec![registry.address()]),
        ..Default::default()
    })
}

/// The image index entry for the manifest `reference` names, on a platform.
async fn index_entry(
    registry: &TestRegistry,
    reference: &str,
    os: &str,
    architecture: &str,
) -> serde_json::Value {
    let (bytes, digest) = inspecting_client(registry)
        .pull_manifest_raw(
            &reference.parse().unwrap(),
            &oci_client::secrets::RegistryAuth::Anonymous,
            &["application/vnd.oci.image.manifest.v1+json"],
        )
        .await
        .unwrap();
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": bytes.len(),
        "platform": {"os": os, "architecture": architecture},
    })
}

#[track_caller]
fn assert_invalid_image(error: &RuntimeError, fragment: &str) {
    match error {
        RuntimeError::InvalidImage { reason, .. } => {
            assert!(
                reason.contains(fragment),
                "reason {reason:?} lacks {fragment:?}"
            )
        }
        other => panic!(
            "expected InvalidImage with {fragment:?}, got {}",
            chain(other)
        ),
    }
}

#[track_caller]
fn assert_pull_error(error: &RuntimeError) {
    assert!(
        matches!(error, RuntimeError::Pull { .. }),
        "expected a Pull error, got {}",
        chain(error)
    );
}

/// A registry, a store in a temporary directory, and the store's directory.
async fn setup() -> Option<(TestRegistry, ArtifactStore, tempfile::TempDir)> {
    if !TestRegistry::available() {
        return None;
    }
    let registry = TestRegistry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path().join("artifacts")).unwrap();
    Some((registry, store, dir))
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn push_then_pull_round_trips_the_wasm_artifact_layout() {
    let Some((registry, store, _dir)) = setup().await else {
        return;
    };
    let wasm = core_module(&[42; 300 * 1024]);
    let reference = registry.reference("apps/hello:v1");
    let mut reports = Vec::new();
    let pushed = push_wasm(&wasm, &reference, &registry.push_options(), &mut |step| {
        reports.push(step)
    })
    .await
    .unwrap_or_else(|error| panic!("push: {}", chain(&error)));
    assert!(is_sha256_digest(&pushed.digest), "{}", pushed.digest);
    assert_eq!(pushed.wasm_digest, sha256_digest(&wasm));
    assert_eq!(pushed.size, wasm.len() as u64);
    // Progress climbs to the layer's size, then the manifest goes up.
    let total = wasm.len() as u64;
    assert_eq!(
        reports.first(),
        Some(&PushProgress::Layer { sent: 0, total })
    );
    assert_eq!(reports.last(), Some(&PushProgress::Manifest));
    assert!(reports.contains(&PushProgress::Layer { sent: total, total }));
    let sent: Vec<u64> = reports
        .iter()
        .filter_map(|step| match step {
            PushProgress::Layer { sent, .. } => Some(*sent),
            PushProgress::Manifest => None,
        })
        .collect();
    assert!(sent.windows(2).all(|pair| pair[0] <= pair[1]), "{sent:?}");
    assert!(sent.len() > 2, "progress in several steps: {sent:?}");

    // The manifest in the registry has the CNCF layout.
    let client = inspecting_client(&registry);
    let (manifest, digest) = client
        .pull_manifest_raw(
            &reference.parse().unwrap(),
            &oci_client::secrets::RegistryAuth::Anonymous,
            &["application/vnd.oci.image.manifest.v1+json"],
        )
        .await
        .unwrap();
    assert_eq!(digest, pushed.digest);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(manifest["layers"][0]["digest"], pushed.wasm_digest.as_str());

    let artifact = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap_or_else(|error| panic!("pull: {}", chain(&error)));
    assert_eq!(artifact.reference, reference);
    assert_eq!(artifact.digest, pushed.digest);
    assert_eq!(artifact.wasm_digest, pushed.wasm_digest);
    assert_eq!(artifact.size, wasm.len() as u64);
    assert_eq!(std::fs::read(&artifact.wasm_path).unwrap(), wasm);

    // `fetch_wasm`, for `skiff pull`, gets the same bytes without a store.
    let (fetched, fetched_digest) = fetch_wasm(&reference, &registry.pull_options(), 1 << 20)
        .await
        .unwrap_or_else(|error| panic!("fetch: {}", chain(&error)));
    assert_eq!(
        (fetched, fetched_digest),
        (wasm.clone(), pushed.digest.clone())
    );

    // Pushing the same bytes again finds the layer already there.
    let mut again = Vec::new();
    push_wasm(&wasm, &reference, &registry.push_options(), &mut |step| {
        again.push(step)
    })
    .await
    .unwrap();
    assert_eq!(
        again,
        vec![
            PushProgress::Layer { sent: total, total },
            PushProgress::Manifest
        ]
    );
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn a_component_is_pushed_as_wasip2_and_a_core_module_as_wasip1() {
    let Some((registry, store, _dir)) = setup().await else {
        return;
    };
    let component = b"\0asm\x0d\0\x01\0".to_vec();
    let reference = registry.push("component:v1", &component).await;
    let artifact = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&artifact.wasm_path).unwrap(), component);
    let client = inspecting_client(&registry);
    let parsed: oci_client::Reference = reference.parse().unwrap();
    let (_, _, config) = client
        .pull_manifest_and_config(&parsed, &oci_client::secrets::RegistryAuth::Anonymous)
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("wasip2"), Some("wasm"))
    );
    assert!(
        config["created"].as_str().unwrap().ends_with('Z'),
        "{config}"
    );

    let reference = registry.push("module:v1", &core_module(b"m")).await;
    let (_, _, config) = client
        .pull_manifest_and_config(
            &reference.parse().unwrap(),
            &oci_client::secrets::RegistryAuth::Anonymous,
        )
        .await
        .unwrap();
    assert!(config.contains(r#""os":"wasip1""#), "{config}");
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn pulling_again_follows_a_moved_tag() {
    let Some((registry, store, _dir)) = setup().await else {
        return;
    };
    let first = core_module(b"first");
    let second = core_module(b"second");
    let reference = registry.push("moving:latest", &first).await;
    let before = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap();
    registry.push("moving:latest", &second).await;
    let after = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap();
    assert_ne!(before.digest, after.digest);
    assert_eq!(std::fs::read(&after.wasm_path).unwrap(), second);
    assert_eq!(store.resolve(&reference).unwrap().digest, after.digest);
    // The old image stays, named by its digest, until removed.
    let pinned_before = format!("{}@{}", registry.reference("moving"), before.digest);
    assert_eq!(store.resolve(&pinned_before).unwrap().digest, before.digest);
    assert_eq!(store.list().len(), 2);
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn resolve_by_reference_pinned_reference_and_bare_digest() {
    let Some((registry, store, _dir)) = setup().await else {
        return;
    };
    let wasm = core_module(b"resolve");
    let reference = registry.push("resolve/me:v1", &wasm).await;
    assert!(store.resolve(&reference).is_none(), "nothing pulled yet");
    let pulled = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap();
    let pinned = format!("{}@{}", registry.reference("resolve/me"), pulled.digest);
    for name in [reference.as_str(), pinned.as_str(), pulled.digest.as_str()] {
        let resolved = store
            .resolve(name)
            .unwrap_or_else(|| panic!("{name} resolves"));
        assert_eq!(resolved.reference, name);
        assert_eq!(
            (
                &resolved.digest,
                &resolved.wasm_digest,
                &resolved.wasm_path,
                resolved.size
            ),
            (
                &pulled.digest,
                &pulled.wasm_digest,
                &pulled.wasm_path,
                pulled.size
            )
        );
    }
    assert!(
        store
            .resolve(&registry.reference("resolve/me:v2"))
            .is_none()
    );
    assert!(
        store.resolve(&pulled.wasm_digest).is_none(),
        "a blob digest is no image"
    );
    assert!(store.resolve("not a reference").is_none());

    // With the registry gone, digests still pull from the store.
    drop(registry);
    let by_digest = store
        .pull(&image(&pulled.digest), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(by_digest.wasm_path, pulled.wasm_path);
    let by_pinned = store
        .pull(&image(&pinned), &PullOptions::default().insecure(true))
        .await
        .unwrap();
    assert_eq!(by_pinned.digest, pulled.digest);
    // A tag is re-resolved, so it needs the registry.
    let error = store
        .pull(&image(&reference), &PullOptions::default().insecure(true))
        .await
        .unwrap_err();
    assert_pull_error(&error);
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn a_bare_digest_not_in_the_store_is_not_found() {
    let Some((_registry, store, _dir)) = setup().await else {
        return;
    };
    let digest = sha256_digest(b"nothing");
    let error = store
        .pull(&image(&digest), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RuntimeError::NotFound { kind: ObjectKind::Image, id } if *id == digest),
        "{error:?}"
    );
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn list_remove_and_reopen() {
    let Some((registry, store, dir)) = setup().await else {
        return;
    };
    let wasm = core_module(b"listed");
    let v1 = registry.push("listed:v1", &wasm).await;
    registry.tag("listed:v1", "listed:v2").await;
    let v2 = registry.reference("listed:v2");
    let other = registry.push("other:v1", &core_module(b"other")).await;
    let options = registry.pull_options();
    let pulled = store.pull(&image(&v1), &options).await.unwrap();
    store.pull(&image(&v2), &options).await.unwrap();
    let other_pulled = store.pull(&image(&other), &options).await.unwrap();
    assert_eq!(stored_blobs(&dir.path().join("artifacts")), 2);

    let listed = store.list();
    let listed_image = listed
        .iter()
        .find(|info| info.digest == pulled.digest)
        .expect("listed");
    let pinned = format!("{}@{}", registry.reference("listed"), pulled.digest);
    assert_eq!(listed_image.names, vec![v1.clone(), v2.clone(), pinned]);
    assert_eq!(listed_image.size, wasm.len() as u64);
    assert_eq!(listed.len(), 2);

    // The store survives reopening.
    drop(store);
    let store = ArtifactStore::open(dir.path().join("artifacts")).unwrap();
    assert_eq!(store.list(), listed);
    assert_eq!(store.resolve(&v1).unwrap().wasm_path, pulled.wasm_path);

    // Removing one tag keeps the image under the other.
    store.remove(&image(&v1)).unwrap();
    assert!(store.resolve(&v1).is_none());
    assert!(pulled.wasm_path.is_file());
    store.remove(&image(&v2)).unwrap();
    assert!(
        !pulled.wasm_path.exists(),
        "the blob goes with its last name"
    );
    // Absent is fine; removing by digest removes every name.
    store.remove(&image(&v2)).unwrap();
    store.remove(&image(&other_pulled.digest)).unwrap();
    assert!(store.list().is_empty());
    assert_eq!(stored_blobs(&dir.path().join("artifacts")), 0);
    drop(store);
    assert!(
        ArtifactStore::open(dir.path().join("artifacts"))
            .unwrap()
            .list()
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn single_layer_tar_images_hold_one_wasm_file() {
    let Some((registry, store, _dir)) = setup().await else {
        return;
    };
    let wasm = core_module(b"in a tar");
    let tar = tar_archive(&[
        ("app/", None),
        ("app/bin/", None),
        ("app/bin/server.wasm", Some(&wasm)),
    ]);
    for (tag, layer, media_type) in [
        ("tar", tar.clone(), TAR),
        ("targz", gzip(&tar), TAR_GZIP),
        ("docker", gzip(&tar), DOCKER_TAR_GZIP),
    ] {
        let reference = registry
            .push_image_with_layer(&format!("tarred:{tag}"), &layer, media_type)
            .await;
        let artifact = store
            .pull(&image(&reference), &registry.pull_options())
            .await
            .unwrap_or_else(|error| panic!("pull {media_type}: {}", chain(&error)));
        assert_eq!(
            std::fs::read(&artifact.wasm_path).unwrap(),
            wasm,
            "{media_type}"
        );
        assert_eq!(artifact.wasm_digest, sha256_digest(&wasm));
        assert_eq!(artifact.size, wasm.len() as u64);
    }
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn images_with_two_or_no_wasm_files_or_no_wasm_at_all_are_invalid() {
    let Some((registry, store, dir)) = setup().await else {
        return;
    };
    let wasm = core_module(b"x");
    let two = tar_archive(&[("a.wasm", Some(&wasm)), ("b/c.wasm", Some(&wasm))]);
    let none = tar_archive(&[("bin/", None), ("bin/app", Some(b"\x7fELF"))]);
    let not_wasm = tar_archive(&[("app.wasm", Some(b"#!/bin/sh\necho hi\n"))]);
    for (tag, layer, fragment) in [
        (
            "two",
            gzip(&two),
            "more than one .wasm file: a.wasm and b/c.wasm",
        ),
        ("none", gzip(&none), "holds no .wasm file"),
        ("notwasm", gzip(&not_wasm), "\\0asm magic"),
    ] {
        let reference = registry
            .push_image_with_layer(&format!("bad:{tag}"), &layer, TAR_GZIP)
            .await;
        let error = store
            .pull(&image(&reference), &registry.pull_options())
            .await
            .unwrap_err();
        assert_invalid_image(&error, fragment);
    }

    // A Wasm artifact whose layer is not Wasm.
    let config = registry
        .push_blob("bad", b"{}", "application/vnd.wasm.config.v0+json")
        .await;
    let layer = registry
        .push_blob("bad", b"plain text, not wasm", "application/wasm")
        .await;
    registry
        .push_manifest(
            "bad:text",
            &serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [layer],
            }),
        )
        .await;
    let error = store
        .pull(
            &image(&registry.reference("bad:text")),
            &registry.pull_options(),
        )
        .await
        .unwrap_err();
    assert_invalid_image(&error, "does not start with the \\0asm magic");

    // A container image: several layers.
    let layer_a = registry.push_blob("bad", &gzip(&none), TAR_GZIP).await;
    let layer_b = registry.push_blob("bad", &gzip(&two), TAR_GZIP).await;
    let config = registry
        .push_blob("bad", b"{}", "application/vnd.oci.image.config.v1+json")
        .await;
    registry
        .push_manifest(
            "bad:layers",
            &serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [layer_a, layer_b],
            }),
        )
        .await;
    let error = store
        .pull(
            &image(&registry.reference("bad:layers")),
            &registry.pull_options(),
        )
        .await
        .unwrap_err();
    assert_invalid_image(&error, "the manifest has 2 layers");

    // An unknown layer media type.
    let layer = registry
        .push_blob("bad", &wasm, "application/octet-stream")
        .await;
    registry
        .push_manifest(
            "bad:mediatype",
            &serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [layer],
            }),
        )
        .await;
    let error = store
        .pull(
            &image(&registry.reference("bad:mediatype")),
            &registry.pull_options(),
        )
        .await
        .unwrap_err();
    assert_invalid_image(&error, "layer media type application/octet-stream");

    assert!(store.list().is_empty());
    assert_eq!(stored_blobs(&dir.path().join("artifacts")), 0);
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn push_refuses_bytes_that_are_not_wasm() {
    // No registry needed: refused before anything is sent.
    let error = push_wasm(
        b"<html>not wasm</html>",
        "127.0.0.1:1/x:v1",
        &PushOptions::default().insecure(true),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert_invalid_image(&error, "\\0asm magic");
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn the_size_limit_holds_for_descriptors_and_for_what_arrives() {
    let Some((registry, store, dir)) = setup().await else {
        return;
    };
    let store = store.max_artifact_bytes(4096);
    let store_dir = dir.path().join("artifacts");

    // The descriptor says it is too big: refused before downloading.
    let big = core_module(&[1; 8192]);
    let reference = registry.push("big:v1", &big).await;
    let error = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap_err();
    assert_invalid_image(&error, "artifact is 8.0 KiB, over the 4.0 KiB limit");

    // The descriptor lies (100 bytes) about a blob of 8 KiB.
    let config = registry
        .push_blob("liar", b"{}", "application/vnd.wasm.config.v0+json")
        .await;
    let mut layer = registry.push_blob("liar", &big, "application/wasm").await;
    layer["size"] = serde_json::json!(100);
    registry
        .push_manifest(
            "liar:v1",
            &serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [layer],
            }),
        )
        .await;
    let error = store
        .pull(
            &image(&registry.reference("liar:v1")),
            &registry.pull_options(),
        )
        .await
        .unwrap_err();
    assert_invalid_image(&error, "is larger than the 100 bytes its descriptor says");

    // A small tar+gzip layer that unpacks beyond the limit.
    let bomb = gzip(&tar_archive(&[("big.wasm", Some(&big))]));
    assert!(bomb.len() < 4096, "compresses well: {}", bomb.len());
    let reference = registry
        .push_image_with_layer("bomb:v1", &bomb, TAR_GZIP)
        .await;
    let error = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap_err();
    assert_invalid_image(&error, "over the 4.0 KiB limit");

    assert!(store.list().is_empty());
    assert_eq!(stored_blobs(&store_dir), 0);
    assert_eq!(
        std::fs::read_dir(store_dir.join("tmp")).unwrap().count(),
        0,
        "no download left behind"
    );
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn a_corrupted_blob_in_the_registry_fails_its_digest_and_stores_nothing() {
    let Some((registry, store, dir)) = setup().await else {
        return;
    };
    let wasm = core_module(&[9; 2048]);
    let reference = registry.push("corrupt:v1", &wasm).await;
    let data = registry.blob_data_path(&sha256_digest(&wasm));
    let mut bytes = std::fs::read(&data).expect("the registry stores the blob there");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let error = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap_err();
    assert_invalid_image(
        &error,
        &format!("layer {} does not match its digest", sha256_digest(&wasm)),
    );
    assert!(store.list().is_empty());
    assert_eq!(stored_blobs(&dir.path().join("artifacts")), 0);
    let error = fetch_wasm(&reference, &registry.pull_options(), 1 << 20)
        .await
        .unwrap_err();
    assert_invalid_image(&error, "does not match its digest");
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn an_image_index_resolves_to_its_wasm_entry() {
    let Some((registry, store, _dir)) = setup().await else {
        return;
    };
    let wasm = core_module(b"indexed");
    let linux = registry
        .push_image_with_layer(
            "multi:linux",
            &gzip(&tar_archive(&[("bin/", None)])),
            TAR_GZIP,
        )
        .await;
    let wasm_reference = registry.push("multi:wasm", &wasm).await;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            index_entry(&registry, &linux, "linux", "amd64").await,
            index_entry(&registry, &wasm_reference, "wasip1", "wasm").await,
        ],
    });
    let index_digest = registry.push_manifest("multi:v1", &index).await;
    let artifact = store
        .pull(
            &image(&registry.reference("multi:v1")),
            &registry.pull_options(),
        )
        .await
        .unwrap_or_else(|error| panic!("pull the index: {}", chain(&error)));
    assert_eq!(
        artifact.digest, index_digest,
        "the index's digest names the image"
    );
    assert_eq!(std::fs::read(&artifact.wasm_path).unwrap(), wasm);

    // Two non-Wasm platforms: nothing to choose.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            index_entry(&registry, &linux, "linux", "amd64").await,
            index_entry(&registry, &linux, "linux", "arm64").await,
        ],
    });
    registry.push_manifest("multi:linux-only", &index).await;
    let error = store
        .pull(
            &image(&registry.reference("multi:linux-only")),
            &registry.pull_options(),
        )
        .await
        .unwrap_err();
    assert_invalid_image(&error, "no manifest for a Wasm platform");
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn concurrent_pulls_of_one_reference_agree() {
    let Some((registry, store, dir)) = setup().await else {
        return;
    };
    let wasm = core_module(&[5; 64 * 1024]);
    let reference = registry.push("concurrent:v1", &wasm).await;
    let options = registry.pull_options();
    let spec = image(&reference);
    let pulls = (0..6).map(|_| store.pull(&spec, &options));
    let artifacts = futures::future::join_all(pulls).await;
    let first = artifacts[0].as_ref().unwrap().clone();
    for artifact in &artifacts {
        assert_eq!(artifact.as_ref().unwrap(), &first);
    }
    assert_eq!(std::fs::read(&first.wasm_path).unwrap(), wasm);
    assert_eq!(stored_blobs(&dir.path().join("artifacts")), 1);
    assert_eq!(store.list().len(), 1);
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn unknown_tags_and_unreachable_registries_are_pull_errors() {
    let Some((registry, store, _dir)) = setup().await else {
        return;
    };
    let error = store
        .pull(
            &image(&registry.reference("nothing:here")),
            &registry.pull_options(),
        )
        .await
        .unwrap_err();
    assert_pull_error(&error);
    let error = store
        .pull(
            &image("127.0.0.1:1/nothing:v1"),
            &PullOptions::default().insecure(true),
        )
        .await
        .unwrap_err();
    assert_pull_error(&error);
    let error = store
        .pull(&image("NOT a reference"), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, RuntimeError::InvalidArgument { .. }),
        "{error:?}"
    );
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn https_is_the_default_so_a_plain_http_registry_fails() {
    let Some((registry, store, _dir)) = setup().await else {
        return;
    };
    let reference = registry.push("secure:v1", &core_module(b"tls")).await;
    let error = store
        .pull(&image(&reference), &PullOptions::default())
        .await
        .unwrap_err();
    assert_pull_error(&error);
    let error = push_wasm(
        &core_module(b"tls"),
        &reference,
        &PushOptions::default(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(error, RuntimeError::Backend { .. }), "{error:?}");
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn basic_auth_lets_in_the_right_credentials_only() {
    if !TestRegistry::available() {
        return;
    }
    let registry = TestRegistry::start_with_basic_auth("ci", "s3cret").await;
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let wasm = core_module(b"private");
    let reference = registry.push("private/app:v1", &wasm).await;

    let artifact = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap_or_else(|error| panic!("pull with credentials: {}", chain(&error)));
    assert_eq!(std::fs::read(&artifact.wasm_path).unwrap(), wasm);

    let wrong = PullOptions::default()
        .insecure(true)
        .auth(RegistryAuth::Basic {
            username: "ci".into(),
            password: "wrong".into(),
        });
    let anonymous = PullOptions::default().insecure(true);
    for options in [wrong, anonymous] {
        let error = fetch_wasm(&reference, &options, 1 << 20).await.unwrap_err();
        assert_pull_error(&error);
        let pinned = format!(
            "{}@{}",
            registry.reference("private/app"),
            sha256_digest(b"x")
        );
        let error = store.pull(&image(&pinned), &options).await.unwrap_err();
        assert_pull_error(&error);
    }
    let error = push_wasm(
        &wasm,
        &registry.reference("private/app:v2"),
        &PushOptions::default().insecure(true),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(error, RuntimeError::Backend { .. }), "{error:?}");
}

#[tokio::test]
#[ignore = "needs docker-registry"]
async fn the_bearer_token_flow_gets_a_token_with_basic_credentials() {
    if !TestRegistry::available() {
        return;
    }
    let registry = TestRegistry::start_with_token_auth("robot", "t0ken-pass").await;
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let wasm = core_module(b"behind a token");
    // The push itself goes through the token server (pull,push scope).
    let reference = registry.push("tokened/app:v1", &wasm).await;
    let artifact = store
        .pull(&image(&reference), &registry.pull_options())
        .await
        .unwrap_or_else(|error| panic!("pull with a token: {}", chain(&error)));
    assert_eq!(std::fs::read(&artifact.wasm_path).unwrap(), wasm);

    // A token obtained elsewhere is sent as is.
    let token = registry
        .bearer_token("tokened/app", &["pull"])
        .expect("a token server");
    let bearer = PullOptions::default()
        .insecure(true)
        .auth(RegistryAuth::Bearer { token });
    let (fetched, digest) = fetch_wasm(&reference, &bearer, 1 << 20)
        .await
        .unwrap_or_else(|error| panic!("fetch with a bearer token: {}", chain(&error)));
    assert_eq!((fetched, digest), (wasm.clone(), artifact.digest.clone()));
    // ... and grants only its scope.
    let other = registry.push("tokened/other:v1", &wasm).await;
    let error = fetch_wasm(&other, &bearer, 1 << 20).await.unwrap_err();
    assert_pull_error(&error);

    for options in [
        PullOptions::default().insecure(true),
        PullOptions::default()
            .insecure(true)
            .auth(RegistryAuth::Basic {
                username: "robot".into(),
                password: "nope".into(),
            }),
        PullOptions::default()
            .insecure(true)
            .auth(RegistryAuth::Bearer {
                token: "not-a-jwt".into(),
            }),
    ] {
        let error = fetch_wasm(&reference, &options, 1 << 20).await.unwrap_err();
        assert_pull_error(&error);
    }
}
