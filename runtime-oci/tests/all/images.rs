//! Images against a real containerd and a real registry: a pull stores the
//! image record, the blobs with containerd's garbage-collection labels and
//! a committed snapshot per layer; a second pull downloads nothing; an
//! image index yields this node's manifest; list, resolve and remove agree
//! with what was pulled; registry failures, Wasm artifacts and an absent
//! containerd fail with their own errors; racing pulls agree; and after a
//! remove nothing of the image is left in containerd.

use std::collections::HashMap;

use containerd_client::services::v1::snapshots::{
    Info as SnapshotInfo, Kind, ListSnapshotsRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    GetImageRequest, Image, InfoRequest, ListContentRequest, ListRequest, ListStatusesRequest,
    WriteAction, WriteContentRequest,
};
use futures::StreamExt as _;
use skiff_runtime_oci::client::{Containerd, SNAPSHOTTER};
use skiff_runtime_oci::image::{Images, Platform};
use skiff_sdk::error_chain;
use skiff_sdk::runtime::{ImageSpec, ObjectKind, PullOptions, RuntimeError};

use crate::support::busybox::{self, Layout, push_busybox};
use crate::support::containerd::{TestContainerd, namespace};
use crate::support::registry::TestRegistry;
use crate::support::skip_or_fail;

/// A test's containerd namespace, registry and images.
struct Setup {
    containerd: &'static TestContainerd,
    connection: Containerd,
    namespace: String,
    registry: TestRegistry,
    images: Images,
}

impl Setup {
    /// Everything a test needs, or `None` when it is to be skipped.
    async fn new(test: &str) -> Option<Setup> {
        crate::support::init_tracing();
        if !busybox::available() {
            skip_or_fail("/bin/busybox is not installed (Debian package busybox-static)");
            return None;
        }
        let containerd = TestContainerd::shared()?;
        let registry = TestRegistry::start()?;
        let namespace = namespace(test);
        let connection = containerd.connect(&namespace).await;
        Some(Setup {
            containerd,
            images: Images::new(connection.clone()),
            connection,
            namespace,
            registry,
        })
    }

    async fn pull(&self, reference: &str) -> skiff_sdk::runtime::PulledImage {
        self.images
            .pull(&ImageSpec::new(reference), &self.registry.pull_options())
            .await
            .unwrap_or_else(|error| panic!("pull {reference}: {}", error_chain(&error)))
    }

    async fn record(&self, name: &str) -> Option<Image> {
        match self
            .connection
            .images()
            .get(self.connection.request(GetImageRequest {
                name: name.to_owned(),
            }))
            .await
        {
            Ok(response) => response.into_inner().image,
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => panic!("get image {name}: {status}"),
        }
    }

    /// The labels of the blob `digest`, or `None` when it is not in the
    /// namespace.
    async fn content_labels(&self, digest: &str) -> Option<HashMap<String, String>> {
        match self
            .connection
            .content()
            .info(self.connection.request(InfoRequest {
                digest: digest.to_owned(),
            }))
            .await
        {
            Ok(response) => Some(response.into_inner().info.unwrap().labels),
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => panic!("content info {digest}: {status}"),
        }
    }

    async fn snapshot(&self, key: &str) -> Option<SnapshotInfo> {
        match self
            .connection
            .snapshots()
            .stat(self.connection.request(StatSnapshotRequest {
                snapshotter: SNAPSHOTTER.to_owned(),
                key: key.to_owned(),
            }))
            .await
        {
            Ok(response) => response.into_inner().info,
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => panic!("stat snapshot {key}: {status}"),
        }
    }

    async fn snapshots(&self) -> Vec<SnapshotInfo> {
        let mut stream = self
            .connection
            .snapshots()
            .list(self.connection.request(ListSnapshotsRequest {
                snapshotter: SNAPSHOTTER.to_owned(),
                filters: vec![],
            }))
            .await
            .expect("list snapshots")
            .into_inner();
        let mut snapshots = Vec::new();
        while let Some(page) = stream.next().await {
            snapshots.extend(page.expect("a page of snapshots").info);
        }
        snapshots
    }

    async fn content_digests(&self) -> Vec<String> {
        let mut stream = self
            .connection
            .content()
            .list(
                self.connection
                    .request(ListContentRequest { filters: vec![] }),
            )
            .await
            .expect("list content")
            .into_inner();
        let mut digests = Vec::new();
        while let Some(page) = stream.next().await {
            digests.extend(
                page.expect("a page of content")
                    .info
                    .into_iter()
                    .map(|info| info.digest),
            );
        }
        digests.sort();
        digests
    }

    /// Leases and unfinished ingests in the namespace (a finished pull
    /// leaves none).
    async fn leases_and_ingests(&self) -> (usize, usize) {
        let leases = self
            .connection
            .leases()
            .list(self.connection.request(ListRequest { filters: vec![] }))
            .await
            .expect("list leases")
            .into_inner()
            .leases
            .len();
        let ingests = self
            .connection
            .content()
            .list_statuses(
                self.connection
                    .request(ListStatusesRequest { filters: vec![] }),
            )
            .await
            .expect("list ingests")
            .into_inner()
            .statuses
            .len();
        (leases, ingests)
    }

    /// Removes every image of the namespace, and the namespace (so that a
    /// shared `SKIFF_TEST_CONTAINERD` is left as found).
    async fn clean(&self) {
        for image in self.images.list().await.expect("list images") {
            self.images
                .remove(&ImageSpec::new(&image.digest))
                .await
                .expect("remove an image");
        }
        self.containerd.remove_namespace(&self.namespace);
    }
}

/// A pull reports the digest and size of what the reference names, records
/// the image under its name and `repository@digest`, labels every blob for
/// containerd's collector, commits a snapshot per layer and leaves no lease.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn pull_records_labels_and_unpacks_every_layer() {
    let Some(setup) = Setup::new("pull").await else {
        return;
    };
    let image = push_busybox(
        &setup.registry,
        "bb:v1",
        Layout::SinglePlatform,
        Some("pull"),
    )
    .await;

    let pulled = setup.pull(&image.reference).await;
    assert_eq!(pulled.reference, image.reference);
    assert_eq!(pulled.digest, image.manifest_digest);
    assert_eq!(pulled.size, image.size);

    for name in [image.reference.clone(), image.pinned()] {
        let record = setup.record(&name).await.expect("an image record");
        let target = record.target.expect("a target");
        assert_eq!(target.digest, image.manifest_digest, "{name}");
        assert_eq!(
            target.media_type,
            "application/vnd.oci.image.manifest.v1+json"
        );
    }

    let manifest = setup.content_labels(&image.manifest_digest).await.unwrap();
    assert_eq!(
        manifest["containerd.io/gc.ref.content.config"],
        image.config_digest
    );
    for (index, layer) in image.layer_digests.iter().enumerate() {
        assert_eq!(
            manifest[&format!("containerd.io/gc.ref.content.l.{index}")],
            *layer
        );
        let labels = setup.content_labels(layer).await.expect("the layer blob");
        assert_eq!(labels["containerd.io/uncompressed"], image.diff_ids[index]);
    }
    let config = setup.content_labels(&image.config_digest).await.unwrap();
    assert_eq!(
        config["containerd.io/gc.ref.snapshot.overlayfs"],
        image.top_chain_id()
    );

    let mut parent = String::new();
    for chain_id in &image.chain_ids {
        let snapshot = setup
            .snapshot(chain_id)
            .await
            .expect("a committed snapshot");
        assert_eq!(snapshot.kind, Kind::Committed as i32, "{chain_id}");
        assert_eq!(snapshot.parent, parent, "{chain_id}");
        parent.clone_from(chain_id);
    }
    assert_eq!(setup.snapshots().await.len(), image.chain_ids.len());
    assert_eq!(setup.leases_and_ingests().await, (0, 0));

    // What ctr sees, as an operator would look.
    let listed = setup
        .containerd
        .ctr(&setup.namespace, &["images", "ls", "-q"]);
    assert!(
        listed.lines().any(|line| line == image.reference),
        "{listed}"
    );
    setup.clean().await;
}

/// A second pull of a tag resolves it at the registry and finds everything
/// else in place: it downloads no blob (they are gone from the registry),
/// moves no record and unpacks nothing.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn a_second_pull_downloads_and_changes_nothing() {
    let Some(setup) = Setup::new("second-pull").await else {
        return;
    };
    let image = push_busybox(
        &setup.registry,
        "bb:v1",
        Layout::SinglePlatform,
        Some("again"),
    )
    .await;
    let first = setup.pull(&image.reference).await;
    let record_before = setup.record(&image.reference).await.unwrap();
    let snapshots_before = setup.snapshots().await;

    for blob in image.layer_digests.iter().chain([&image.config_digest]) {
        std::fs::remove_file(setup.registry.blob_data_path(blob)).expect("delete a registry blob");
    }
    let second = setup.pull(&image.reference).await;
    assert_eq!(second, first);
    let record_after = setup.record(&image.reference).await.unwrap();
    assert_eq!(record_after.updated_at, record_before.updated_at);
    assert_eq!(setup.snapshots().await, snapshots_before);

    // By digest, an image already here is served without the registry:
    // the one it came from is gone.
    let mut setup = setup;
    drop(std::mem::replace(
        &mut setup.registry,
        TestRegistry::start().expect("a registry"),
    ));
    let pinned = setup.pull(&image.pinned()).await;
    assert_eq!(pinned.digest, image.manifest_digest);
    assert_eq!(pinned.size, image.size);
    setup.clean().await;
}

/// From an image index, the manifest for this node's platform is pulled
/// (the other platform's is listed first and never fetched); the image's
/// digest is the index's. A node of a platform the index lacks is refused.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn pulling_an_index_takes_this_platform() {
    let Some(setup) = Setup::new("index").await else {
        return;
    };
    let image = push_busybox(&setup.registry, "multi:v1", Layout::MultiPlatform, None).await;
    let pulled = setup.pull(&image.reference).await;
    assert_eq!(pulled.digest, image.digest);
    assert_eq!(pulled.size, image.size);
    let record = setup.record(&image.reference).await.unwrap();
    assert_eq!(
        record.target.unwrap().media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    let index = setup.content_labels(&image.digest).await.unwrap();
    assert_eq!(
        index["containerd.io/gc.ref.content.m.0"],
        image.manifest_digest
    );
    assert!(setup.content_labels(&image.manifest_digest).await.is_some());
    let other = image.other_manifest_digest.as_deref().unwrap();
    assert!(setup.content_labels(other).await.is_none());

    let resolved = setup.images.resolve(&image.reference).await.unwrap();
    assert_eq!(resolved.digest, image.digest);
    assert_eq!(
        resolved.config.architecture().to_string(),
        Platform::host().architecture
    );
    assert_eq!(resolved.chain_id, image.top_chain_id());

    let s390x = Images::new(setup.connection.clone()).platform(Platform {
        os: "linux".into(),
        architecture: "s390x".into(),
        variant: None,
    });
    let error = s390x
        .pull(
            &ImageSpec::new(&image.reference),
            &setup.registry.pull_options(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RuntimeError::InvalidImage { reason, .. }
            if reason.contains("no manifest for linux/s390x")),
        "{}",
        error_chain(&error)
    );
    setup.clean().await;
}

/// The list names each image once, by its digest, with every name it was
/// pulled as and its `repository@digest`, and its size.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn list_names_each_image_once() {
    let Some(setup) = Setup::new("list").await else {
        return;
    };
    assert!(setup.images.list().await.unwrap().is_empty());
    let image = push_busybox(&setup.registry, "bb:v1", Layout::SinglePlatform, None).await;
    push_busybox(&setup.registry, "bb:v2", Layout::SinglePlatform, None).await;
    setup.pull(&image.reference).await;
    setup.pull(&setup.registry.reference("bb:v2")).await;

    let listed = setup.images.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].digest, image.manifest_digest);
    assert_eq!(listed[0].size, image.size);
    let mut expected = vec![
        image.pinned(),
        image.reference.clone(),
        setup.registry.reference("bb:v2"),
    ];
    expected.sort();
    assert_eq!(listed[0].names, expected);
    setup.clean().await;
}

/// Removing a tag keeps the image while another tag names it; removing the
/// last tag removes its digest name too; a digest removes every name; an
/// absent image is not an error.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn remove_by_tag_and_by_digest() {
    let Some(setup) = Setup::new("remove").await else {
        return;
    };
    let image = push_busybox(&setup.registry, "bb:v1", Layout::SinglePlatform, None).await;
    push_busybox(&setup.registry, "bb:v2", Layout::SinglePlatform, None).await;
    let v2 = setup.registry.reference("bb:v2");
    setup.pull(&image.reference).await;
    setup.pull(&v2).await;

    setup
        .images
        .remove(&ImageSpec::new(&image.reference))
        .await
        .unwrap();
    let listed = setup.images.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].names, vec![v2.clone(), image.pinned()]);

    setup.images.remove(&ImageSpec::new(&v2)).await.unwrap();
    assert!(setup.images.list().await.unwrap().is_empty());
    setup.images.remove(&ImageSpec::new(&v2)).await.unwrap();

    setup.pull(&image.reference).await;
    setup.pull(&v2).await;
    setup
        .images
        .remove(&ImageSpec::new(&image.digest))
        .await
        .unwrap();
    assert!(setup.images.list().await.unwrap().is_empty());
    setup
        .images
        .remove(&ImageSpec::new(&image.digest))
        .await
        .unwrap();
    setup
        .images
        .remove(&ImageSpec::new(image.pinned()))
        .await
        .unwrap();

    let error = setup
        .images
        .remove(&ImageSpec::new("Not A Reference"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RuntimeError::InvalidArgument { .. }),
        "{error}"
    );
    setup.clean().await;
}

/// Resolve finds nothing before a pull; after it, the same image by tag,
/// by `repository@digest` and by bare digest, with its config and top
/// snapshot.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn resolve_before_and_after_a_pull() {
    let Some(setup) = Setup::new("resolve").await else {
        return;
    };
    let image = push_busybox(&setup.registry, "bb:v1", Layout::SinglePlatform, None).await;
    for reference in [
        image.reference.clone(),
        image.pinned(),
        image.digest.clone(),
    ] {
        let error = setup.images.resolve(&reference).await.unwrap_err();
        assert!(
            matches!(&error, RuntimeError::NotFound { kind: ObjectKind::Image, id } if *id == reference),
            "{}",
            error_chain(&error)
        );
    }

    setup.pull(&image.reference).await;
    for reference in [
        image.reference.clone(),
        image.pinned(),
        image.digest.clone(),
    ] {
        let resolved = setup.images.resolve(&reference).await.unwrap();
        assert_eq!(resolved.digest, image.manifest_digest, "{reference}");
        assert_eq!(resolved.chain_id, image.top_chain_id(), "{reference}");
        let config = resolved.config.config().clone().expect("a config section");
        assert_eq!(config.cmd().as_deref(), Some(&["sh".to_owned()][..]));
        assert_eq!(config.env().as_deref(), Some(&["PATH=/bin".to_owned()][..]));
    }
    assert_eq!(
        setup.images.resolve(&image.reference).await.unwrap().name,
        image.reference
    );
    assert_eq!(
        setup.images.resolve(&image.digest).await.unwrap().name,
        image.reference,
        "a bare digest prefers the name pulled as such"
    );
    setup.clean().await;
}

/// containerd's own client (`ctr run`) takes a pulled image as unpacked (it
/// unpacks nothing more) and runs it: records, labels and snapshots are
/// what containerd expects.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn containerd_runs_a_pulled_image() {
    let Some(setup) = Setup::new("ctr-run").await else {
        return;
    };
    let image = push_busybox(&setup.registry, "bb:v1", Layout::MultiPlatform, None).await;
    setup.pull(&image.reference).await;
    let snapshots_before = setup.snapshots().await;
    let output = setup.containerd.ctr(
        &setup.namespace,
        &[
            "run",
            "--rm",
            &image.reference,
            "ctr-run",
            "sh",
            "-c",
            "echo hello from busybox; id -un; ls /bin | wc -l",
        ],
    );
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        vec![
            "hello from busybox",
            "root",
            &(busybox::APPLETS.len() + 1).to_string(),
        ],
        "{output}"
    );
    assert_eq!(setup.snapshots().await, snapshots_before);
    setup.clean().await;
}

/// Each way a pull can fail gets its own error, and leaves nothing behind.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn pull_failures_are_told_apart() {
    let Some(setup) = Setup::new("pull-errors").await else {
        return;
    };
    let registry = &setup.registry;
    push_busybox(registry, "bb:v1", Layout::SinglePlatform, None).await;
    let wasm_artifact = push_wasm_artifact(registry, "wasm:artifact").await;
    let wasm_layer = push_wasm_layer_image(registry, "wasm:layer").await;
    let unused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    #[track_caller]
    fn check(outcome: Result<skiff_sdk::runtime::PulledImage, RuntimeError>, expected: &str) {
        let error = outcome.expect_err(expected);
        let shown = error_chain(&error);
        let kind = match &error {
            RuntimeError::Pull { .. } => "Pull",
            RuntimeError::InvalidImage { .. } => "InvalidImage",
            RuntimeError::InvalidArgument { .. } => "InvalidArgument",
            RuntimeError::NotFound { .. } => "NotFound",
            _ => "other",
        };
        assert_eq!(kind, expected, "{shown}");
    }
    let options = registry.pull_options();
    let pull = |reference: String| {
        let images = &setup.images;
        let options = options.clone();
        async move { images.pull(&ImageSpec::new(reference), &options).await }
    };
    check(pull(registry.reference("bb:nope")).await, "Pull");
    check(pull(registry.reference("nope:v1")).await, "Pull");
    check(pull(format!("{unused_port}/bb:v1")).await, "Pull");
    check(
        setup
            .images
            .pull(
                &ImageSpec::new(registry.reference("bb:v1")),
                &PullOptions::default(),
            )
            .await,
        "Pull",
    );
    check(pull(wasm_artifact).await, "InvalidImage");
    check(pull(wasm_layer).await, "InvalidImage");
    check(pull("Not A Reference".to_owned()).await, "InvalidArgument");
    check(pull(format!("sha256:{}", "0".repeat(64))).await, "NotFound");

    assert!(setup.images.list().await.unwrap().is_empty());
    assert!(setup.content_digests().await.is_empty());
    assert!(setup.snapshots().await.is_empty());
    assert_eq!(setup.leases_and_ingests().await, (0, 0));
    setup.clean().await;
}

/// With containerd gone, every call says the runtime is unavailable (not a
/// pull failure or a missing image), whether it never answered or stopped
/// after the connection was made.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn an_absent_containerd_is_unavailable() {
    let Some(setup) = Setup::new("unavailable").await else {
        return;
    };
    let missing = tempfile::tempdir().unwrap();
    let error = Containerd::connect(&missing.path().join("containerd.sock"), "skiff")
        .await
        .unwrap_err();
    assert!(matches!(error, RuntimeError::Unavailable { .. }), "{error}");

    // A containerd of its own, stopped once connected.
    let dir = tempfile::Builder::new()
        .prefix("skiff-ctd-")
        .tempdir()
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/containerd.sh");
    let started = std::process::Command::new(script)
        .arg("start")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let socket = String::from_utf8(started.stdout).unwrap();
    let connection = Containerd::connect(std::path::Path::new(socket.trim()), "skiff")
        .await
        .unwrap();
    let stopped = std::process::Command::new(script)
        .arg("stop")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let images = Images::new(connection);

    let image = push_busybox(&setup.registry, "bb:v1", Layout::SinglePlatform, None).await;
    let outcomes = [
        images
            .pull(
                &ImageSpec::new(&image.reference),
                &setup.registry.pull_options(),
            )
            .await
            .map(drop),
        images.list().await.map(drop),
        images.resolve(&image.reference).await.map(drop),
        images.remove(&ImageSpec::new(&image.reference)).await,
    ];
    for outcome in outcomes {
        let error = outcome.unwrap_err();
        assert!(
            matches!(error, RuntimeError::Unavailable { .. }),
            "{}",
            error_chain(&error)
        );
    }
}

/// Pulls of one image racing in one namespace both succeed with the same
/// answer, and leave one committed snapshot per layer, no extraction
/// snapshot and no lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and containerd"]
async fn racing_pulls_agree() {
    let Some(setup) = Setup::new("race").await else {
        return;
    };
    let image = push_busybox(
        &setup.registry,
        "bb:v1",
        Layout::SinglePlatform,
        Some("race"),
    )
    .await;
    let other = Images::new(setup.containerd.connect(&setup.namespace).await);
    let spec = ImageSpec::new(&image.reference);
    let options = setup.registry.pull_options();
    let (first, second, third) = tokio::join!(
        setup.images.pull(&spec, &options),
        other.pull(&spec, &options),
        setup.images.pull(&spec, &options),
    );
    let first = first.unwrap_or_else(|error| panic!("{}", error_chain(&error)));
    assert_eq!(second.unwrap(), first);
    assert_eq!(third.unwrap(), first);

    let snapshots = setup.snapshots().await;
    assert_eq!(snapshots.len(), image.chain_ids.len(), "{snapshots:?}");
    assert!(
        snapshots
            .iter()
            .all(|snapshot| snapshot.kind == Kind::Committed as i32),
        "{snapshots:?}"
    );
    assert_eq!(setup.leases_and_ingests().await, (0, 0));
    assert_eq!(
        setup
            .images
            .resolve(&image.reference)
            .await
            .unwrap()
            .chain_id,
        image.top_chain_id()
    );
    setup.clean().await;
}

/// A pull of blobs another namespace holds commits the bytes containerd
/// shares instead of writing them again, so it does not contend for the
/// ingest with another writer. (Regression: racing pulls of such blobs
/// failed with "truncate failed: ref … locked"; here a writer holding the
/// ingest of the layer stands for the other pull, deterministically.)
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn a_pull_of_blobs_another_namespace_holds_writes_nothing() {
    let Some(setup) = Setup::new("shared-a").await else {
        return;
    };
    let image = push_busybox(
        &setup.registry,
        "bb:v1",
        Layout::SinglePlatform,
        Some("shared"),
    )
    .await;
    setup.pull(&image.reference).await;

    let other = Setup {
        connection: setup.containerd.connect(&namespace("shared-b")).await,
        namespace: namespace("shared-b"),
        images: Images::new(setup.containerd.connect(&namespace("shared-b")).await),
        ..setup
    };
    // Another writer of the marker layer in the second namespace, through
    // the ingest a pull uses (`skiff-pull-<digest>`), holding it.
    let layer = &image.layer_digests[1];
    let (requests, receiver) = tokio::sync::mpsc::channel(1);
    let outgoing = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|request| (request, receiver))
    });
    requests
        .send(WriteContentRequest {
            action: WriteAction::Write as i32,
            r#ref: format!("skiff-pull-{layer}"),
            offset: 0,
            data: vec![0],
            ..WriteContentRequest::default()
        })
        .await
        .unwrap();
    let mut holder = other
        .connection
        .content()
        .write(other.connection.request(outgoing))
        .await
        .expect("open a competing write")
        .into_inner();
    holder
        .next()
        .await
        .expect("an answer")
        .expect("the competing write holds the ingest");

    let pulled = other.pull(&image.reference).await;
    assert_eq!(pulled.digest, image.manifest_digest);
    let labels = other.content_labels(layer).await.expect("the layer");
    assert_eq!(labels["containerd.io/uncompressed"], image.diff_ids[1]);
    drop((requests, holder));

    other.clean().await;
    let first = Setup {
        connection: other.containerd.connect(&namespace("shared-a")).await,
        namespace: namespace("shared-a"),
        images: Images::new(other.containerd.connect(&namespace("shared-a")).await),
        ..other
    };
    first.clean().await;
}

/// After a pull and a remove, containerd's collector leaves nothing of the
/// image: no record, blob, snapshot, lease or ingest in the namespace, and
/// the image's own blobs are gone from disk.
#[tokio::test]
#[ignore = "needs root and containerd"]
async fn nothing_is_left_after_a_remove() {
    let Some(setup) = Setup::new("leak").await else {
        return;
    };
    let image = push_busybox(
        &setup.registry,
        "bb:v1",
        Layout::MultiPlatform,
        Some("leak"),
    )
    .await;
    setup.pull(&image.reference).await;
    assert!(!setup.content_digests().await.is_empty());

    setup
        .images
        .remove(&ImageSpec::new(&image.reference))
        .await
        .unwrap();
    assert!(setup.images.list().await.unwrap().is_empty());
    assert_eq!(setup.content_digests().await, Vec::<String>::new());
    assert_eq!(setup.snapshots().await, Vec::new());
    assert_eq!(setup.leases_and_ingests().await, (0, 0));
    if let Some(root) = setup.containerd.root() {
        // The marker layer, the configs and manifests are this image's
        // alone; the busybox layer may be shared with other tests'.
        let blobs = root.join("io.containerd.content.v1.content/blobs/sha256");
        for digest in [
            &image.digest,
            &image.manifest_digest,
            &image.config_digest,
            &image.layer_digests[1],
        ] {
            let path = blobs.join(digest.strip_prefix("sha256:").unwrap());
            assert!(!path.exists(), "{} is left", path.display());
        }
    }
    setup.clean().await;
}

/// Pushes a CNCF Wasm artifact (Wasm config, one `application/wasm`
/// layer).
async fn push_wasm_artifact(registry: &TestRegistry, repo_tag: &str) -> String {
    let repository = repo_tag.split(':').next().unwrap();
    let config = registry
        .push_blob(
            repository,
            br#"{"architecture":"wasm","os":"wasip2"}"#,
            "application/vnd.wasm.config.v0+json",
        )
        .await;
    let layer = registry
        .push_blob(repository, b"\0asm\x0d\0\x01\0", "application/wasm")
        .await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    registry.push_manifest(repo_tag, &manifest).await;
    registry.reference(repo_tag)
}

/// Pushes an image with an OCI image config but a Wasm layer.
async fn push_wasm_layer_image(registry: &TestRegistry, repo_tag: &str) -> String {
    let repository = repo_tag.split(':').next().unwrap();
    let wasm = b"\0asm\x01\0\0\0";
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [crate::support::registry::sha256_digest(wasm)]},
    }))
    .unwrap();
    let config = registry
        .push_blob(
            repository,
            &config,
            "application/vnd.oci.image.config.v1+json",
        )
        .await;
    let layer = registry
        .push_blob(repository, wasm, "application/wasm")
        .await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    registry.push_manifest(repo_tag, &manifest).await;
    registry.reference(repo_tag)
}
