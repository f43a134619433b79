//! containerd's image records, as skiff keeps them: one per reference an
//! image was pulled as, plus a `repository@sha256:…` record beside each, so
//! that the image resolves by digest too. Those digest records carry a
//! label, so that removing the last name an image was pulled as removes
//! them with it.

use std::collections::HashMap;

use containerd_client::services::v1::{
    CreateImageRequest, DeleteImageRequest, GetImageRequest, Image, ListImagesRequest,
    UpdateImageRequest,
};
use containerd_client::types::Descriptor;
use skiff_sdk::runtime::RuntimeError;

use crate::client::{Containerd, backend, is_already_exists, is_not_found};

/// The label on `repository@sha256:…` records a pull created beside the
/// reference asked for: when the last other name of the image is removed,
/// these go with it.
pub const DIGEST_NAME_LABEL: &str = "skiff.dev/digest-name";

/// Whether a removal waits for containerd's garbage collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    /// The image is gone: wait until its content and snapshots are.
    Wait,
    /// Other names keep the image: nothing to collect.
    Background,
}

/// How a record came to name an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// The reference a pull asked for.
    Asked,
    /// The `repository@sha256:…` name a pull adds beside it.
    Digest,
}

/// Creates the image record `name` → `target`, or moves it there.
pub async fn put(
    containerd: &Containerd,
    name: &str,
    target: &Descriptor,
    kind: NameKind,
) -> Result<(), RuntimeError> {
    let labels = match kind {
        NameKind::Asked => HashMap::new(),
        NameKind::Digest => HashMap::from([(DIGEST_NAME_LABEL.to_owned(), "true".to_owned())]),
    };
    let image = Image {
        name: name.to_owned(),
        labels,
        target: Some(target.clone()),
        created_at: None,
        updated_at: None,
    };
    // Twice at most: a record removed between the create that found it
    // and the get is created again.
    for _attempt in 0..2 {
        match containerd
            .images()
            .create(containerd.request(CreateImageRequest {
                image: Some(image.clone()),
                source_date_epoch: None,
            }))
            .await
        {
            Ok(_) => return Ok(()),
            Err(status) if is_already_exists(&status) => {}
            Err(status) => return Err(backend("create an image record")(status)),
        }
        let Some(existing) = get(containerd, name).await? else {
            continue;
        };
        let mut labels = existing.labels.clone();
        if kind == NameKind::Asked {
            // Pulled as this name now: no longer only a digest name.
            labels.remove(DIGEST_NAME_LABEL);
        }
        if existing.target.as_ref() == Some(target) && labels == existing.labels {
            return Ok(());
        }
        containerd
            .images()
            .update(containerd.request(UpdateImageRequest {
                image: Some(Image { labels, ..image }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["target".to_owned(), "labels".to_owned()],
                }),
                source_date_epoch: None,
            }))
            .await
            .map_err(backend("update an image record"))?;
        return Ok(());
    }
    Err(RuntimeError::Backend {
        operation: "create an image record",
        source: format!("image record {name} keeps disappearing").into(),
    })
}

/// The record `name`, if there is one.
pub async fn get(containerd: &Containerd, name: &str) -> Result<Option<Image>, RuntimeError> {
    match containerd
        .images()
        .get(containerd.request(GetImageRequest {
            name: name.to_owned(),
        }))
        .await
    {
        Ok(response) => Ok(response.into_inner().image),
        Err(status) if is_not_found(&status) => Ok(None),
        Err(status) => Err(backend("get an image record")(status)),
    }
}

/// Every image record of the namespace.
pub async fn list(containerd: &Containerd) -> Result<Vec<Image>, RuntimeError> {
    Ok(containerd
        .images()
        .list(containerd.request(ListImagesRequest { filters: vec![] }))
        .await
        .map_err(backend("list image records"))?
        .into_inner()
        .images)
}

/// Deletes records; with [`Collection::Wait`] the last deletion runs
/// containerd's garbage collector before it returns.
pub async fn delete(
    containerd: &Containerd,
    names: &[String],
    collection: Collection,
) -> Result<(), RuntimeError> {
    for (position, name) in names.iter().enumerate() {
        let last = position + 1 == names.len();
        match containerd
            .images()
            .delete(containerd.request(DeleteImageRequest {
                name: name.clone(),
                sync: last && collection == Collection::Wait,
                target: None,
            }))
            .await
        {
            Ok(_) => {}
            Err(status) if is_not_found(&status) => {}
            Err(status) => return Err(backend("delete an image record")(status)),
        }
    }
    Ok(())
}
