//! Unpacking an image's layers into committed overlayfs snapshots, as
//! containerd's own unpacker does: for each layer, bottom first, nothing if
//! the snapshot named by its chain ID is there; else an active snapshot
//! under a unique `extract-…` key on top of the previous chain ID, the layer
//! applied into its mounts by containerd's diff service (which decompresses
//! it and reports the digest of the tar it read, checked against the
//! config's diff ID), and the snapshot committed as the chain ID. When two
//! pulls race, the second commit finds the name taken, drops its own
//! snapshot and goes on with the winner's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use containerd_client::services::v1::ApplyRequest;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::types::{Descriptor, Mount};
use skiff_sdk::runtime::RuntimeError;

use super::lease::Lease;
use crate::client::{Containerd, SNAPSHOTTER, backend, is_already_exists, is_not_found};

/// One layer to unpack.
pub struct Layer {
    /// The (compressed) layer blob, in the content store.
    pub blob: Descriptor,
    /// The digest of its uncompressed tar, from the image config.
    pub diff_id: String,
    /// The chain ID naming its committed snapshot.
    pub chain_id: String,
}

/// Whether the committed snapshot `chain_id` is there.
pub async fn is_unpacked(containerd: &Containerd, chain_id: &str) -> Result<bool, RuntimeError> {
    match containerd
        .snapshots()
        .stat(containerd.request(StatSnapshotRequest {
            snapshotter: SNAPSHOTTER.to_owned(),
            key: chain_id.to_owned(),
        }))
        .await
    {
        Ok(_) => Ok(true),
        Err(status) if is_not_found(&status) => Ok(false),
        Err(status) => Err(backend("look up a snapshot")(status)),
    }
}

/// Unpacks `layers` (bottom first) under `lease`; `asked` names the image
/// in errors. Snapshots found already there are added to the lease before
/// they are looked at, so that they stay while this pull builds on them.
pub async fn unpack(
    containerd: &Containerd,
    lease: &Lease,
    layers: &[Layer],
    asked: &str,
) -> Result<(), RuntimeError> {
    if let Some(top) = layers.last() {
        lease.hold_snapshot(containerd, &top.chain_id).await?;
        if is_unpacked(containerd, &top.chain_id).await? {
            return Ok(());
        }
    }
    let mut parent = String::new();
    for layer in layers {
        lease.hold_snapshot(containerd, &layer.chain_id).await?;
        if !is_unpacked(containerd, &layer.chain_id).await? {
            apply_layer(containerd, &lease.id, layer, &parent, asked).await?;
        }
        parent.clone_from(&layer.chain_id);
    }
    Ok(())
}

/// Applies one layer on top of the snapshot `parent` (empty for none) and
/// commits it as its chain ID.
async fn apply_layer(
    containerd: &Containerd,
    lease: &str,
    layer: &Layer,
    parent: &str,
    asked: &str,
) -> Result<(), RuntimeError> {
    let (key, mounts) = prepare(containerd, lease, &layer.chain_id, parent).await?;
    let applied = apply(containerd, lease, layer, mounts, asked).await;
    let committed = match applied {
        Ok(()) => commit(containerd, lease, &layer.chain_id, &key).await,
        Err(error) => Err(error),
    };
    match committed {
        Ok(Committed::Here) => Ok(()),
        Ok(Committed::Elsewhere) => {
            tracing::debug!(chain_id = %layer.chain_id, "another pull unpacked this layer first");
            remove(containerd, &key).await;
            Ok(())
        }
        Err(error) => {
            remove(containerd, &key).await;
            Err(error)
        }
    }
}

/// Prepares an active snapshot on `parent` under a fresh `extract-…` key.
async fn prepare(
    containerd: &Containerd,
    lease: &str,
    chain_id: &str,
    parent: &str,
) -> Result<(String, Vec<Mount>), RuntimeError> {
    loop {
        let key = extract_key(chain_id);
        match containerd
            .snapshots()
            .prepare(containerd.leased(
                PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.to_owned(),
                    key: key.clone(),
                    parent: parent.to_owned(),
                    labels: HashMap::new(),
                },
                lease,
            ))
            .await
        {
            Ok(response) => return Ok((key, response.into_inner().mounts)),
            // A key taken (by the same clock tick elsewhere): draw another.
            Err(status) if is_already_exists(&status) => continue,
            Err(status) => return Err(backend("prepare a snapshot to unpack into")(status)),
        }
    }
}

/// Applies the layer into `mounts` and checks what was applied against the
/// config's diff ID.
async fn apply(
    containerd: &Containerd,
    lease: &str,
    layer: &Layer,
    mounts: Vec<Mount>,
    asked: &str,
) -> Result<(), RuntimeError> {
    let response = containerd
        .diff()
        .apply(containerd.leased(
            ApplyRequest {
                diff: Some(layer.blob.clone()),
                mounts,
                payloads: HashMap::new(),
                sync_fs: false,
            },
            lease,
        ))
        .await
        .map_err(|status| match status.code() {
            // The layer could not be read as what its media type says.
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                RuntimeError::InvalidImage {
                    reference: asked.to_owned(),
                    reason: format!(
                        "layer {} cannot be unpacked: {}",
                        layer.blob.digest,
                        status.message()
                    ),
                }
            }
            _ => backend("apply a layer")(status),
        })?
        .into_inner();
    let applied = response.applied.map(|applied| applied.digest);
    if applied.as_deref() != Some(layer.diff_id.as_str()) {
        return Err(RuntimeError::InvalidImage {
            reference: asked.to_owned(),
            reason: format!(
                "layer {} unpacks to {}, but the image config says {}",
                layer.blob.digest,
                applied.as_deref().unwrap_or("nothing"),
                layer.diff_id
            ),
        });
    }
    Ok(())
}

/// Who committed a layer's snapshot.
enum Committed {
    /// This pull.
    Here,
    /// Another pull, first.
    Elsewhere,
}

/// Commits the active snapshot `key` as `chain_id`.
async fn commit(
    containerd: &Containerd,
    lease: &str,
    chain_id: &str,
    key: &str,
) -> Result<Committed, RuntimeError> {
    match containerd
        .snapshots()
        .commit(containerd.leased(
            CommitSnapshotRequest {
                snapshotter: SNAPSHOTTER.to_owned(),
                name: chain_id.to_owned(),
                key: key.to_owned(),
                labels: HashMap::new(),
            },
            lease,
        ))
        .await
    {
        Ok(_) => Ok(Committed::Here),
        Err(status) if is_already_exists(&status) => Ok(Committed::Elsewhere),
        Err(status) => Err(backend("commit an unpacked snapshot")(status)),
    }
}

/// Removes the active snapshot `key`, logging a failure (the pull's lease
/// going away lets containerd collect it anyway).
async fn remove(containerd: &Containerd, key: &str) {
    if let Err(status) = containerd
        .snapshots()
        .remove(containerd.request(RemoveSnapshotRequest {
            snapshotter: SNAPSHOTTER.to_owned(),
            key: key.to_owned(),
        }))
        .await
        && !is_not_found(&status)
    {
        tracing::warn!(%key, error = %status.message(), "could not remove an extraction snapshot");
    }
}

/// A key for an extraction snapshot, unique in this process and, with the
/// clock and the pid, across processes: `extract-<nanos>-<pid>-<n> <chain>`
/// as containerd spells its own.
fn extract_key(chain_id: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("extract-{nanos}-{}-{n} {chain_id}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_keys_are_unique_and_name_the_chain() {
        let first = extract_key("sha256:abc");
        let second = extract_key("sha256:abc");
        assert_ne!(first, second);
        assert!(first.starts_with("extract-") && first.ends_with(" sha256:abc"));
    }
}
