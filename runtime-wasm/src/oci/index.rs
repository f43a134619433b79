//! The artifact store's index: which reference resolves to which manifest
//! digest, and which Wasm blob each manifest holds. Plain data with pure
//! operations, saved as JSON by the store (atomically, under its lock).

use std::collections::{BTreeMap, BTreeSet};

use oci_client::Reference;
use serde::{Deserialize, Serialize};
use skiff_sdk::runtime::ImageInfo;

use super::layout::is_sha256_digest;
use super::registry::repository_of;

/// The version written into the index file; a file with another version is
/// not read.
pub const INDEX_FORMAT_VERSION: u32 = 1;

/// Everything the store knows, as saved in `index.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIndex {
    /// The file format version, [`INDEX_FORMAT_VERSION`].
    pub version: u32,
    /// Normalised reference (`registry/repository:tag` or
    /// `registry/repository@sha256:…`) → manifest digest.
    #[serde(default)]
    pub references: BTreeMap<String, String>,
    /// Manifest digest → what it holds.
    #[serde(default)]
    pub manifests: BTreeMap<String, ManifestRecord>,
}

impl Default for StoreIndex {
    fn default() -> Self {
        StoreIndex {
            version: INDEX_FORMAT_VERSION,
            references: BTreeMap::new(),
            manifests: BTreeMap::new(),
        }
    }
}

/// One pulled manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// Digest of the Wasm bytes, which name the blob file.
    pub wasm_digest: String,
    /// Size of the Wasm bytes.
    pub size: u64,
    /// `registry/repository` names it was pulled from, for the
    /// `name@sha256:…` names of the image.
    #[serde(default)]
    pub repositories: BTreeSet<String>,
}

/// A reference as the store looks it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalName {
    /// A bare manifest digest, `sha256:<hex>`: names an image by content,
    /// whatever repository it came from.
    Digest(String),
    /// `registry/repository@sha256:…` (possibly with a tag too): immutable.
    Pinned {
        /// The normalised reference.
        key: String,
        /// `registry/repository`.
        repository: String,
        /// The manifest digest.
        digest: String,
    },
    /// `registry/repository:tag`: moves when the tag does.
    Tagged {
        /// The normalised reference.
        key: String,
        /// `registry/repository`.
        repository: String,
    },
}

impl LocalName {
    /// Reads a reference: a bare `sha256:` digest, or an OCI reference
    /// normalised as the registry client does (`busybox` is
    /// `docker.io/library/busybox:latest`).
    pub fn parse(reference: &str) -> Result<LocalName, String> {
        if reference.starts_with("sha256:") {
            return if is_sha256_digest(reference) {
                Ok(LocalName::Digest(reference.to_owned()))
            } else {
                Err(format!(
                    "{reference} is not a sha256 digest (sha256: and 64 lower-case hex digits)"
                ))
            };
        }
        let parsed: Reference = reference
            .parse()
            .map_err(|error| format!("{reference:?} is not an OCI reference: {error}"))?;
        Ok(LocalName::from_reference(&parsed))
    }

    /// The name of a parsed reference.
    pub fn from_reference(reference: &Reference) -> LocalName {
        let key = reference.whole();
        let repository = repository_of(reference);
        match reference.digest() {
            Some(digest) => LocalName::Pinned {
                key,
                repository,
                digest: digest.to_owned(),
            },
            None => LocalName::Tagged { key, repository },
        }
    }
}

impl StoreIndex {
    /// The manifest digest a name resolves to locally.
    pub fn manifest_digest_of(&self, name: &LocalName) -> Option<&str> {
        match name {
            LocalName::Digest(digest) => self
                .manifests
                .get_key_value(digest)
                .map(|(digest, _)| digest.as_str()),
            LocalName::Tagged { key, .. } => self.references.get(key).map(String::as_str),
            LocalName::Pinned {
                key,
                repository,
                digest,
            } => {
                if let Some(recorded) = self.references.get(key) {
                    return Some(recorded);
                }
                // Any pull from the same repository that produced this
                // digest makes `repository@digest` resolvable.
                self.manifests
                    .get_key_value(digest)
                    .filter(|(_, record)| record.repositories.contains(repository))
                    .map(|(digest, _)| digest.as_str())
            }
        }
    }

    /// Records that `key` (from `repository`) resolved to `manifest_digest`,
    /// which holds the Wasm blob `wasm_digest` of `size` bytes.
    pub fn record(
        &mut self,
        key: &str,
        repository: &str,
        manifest_digest: &str,
        wasm_digest: &str,
        size: u64,
    ) {
        self.references
            .insert(key.to_owned(), manifest_digest.to_owned());
        let record = self
            .manifests
            .entry(manifest_digest.to_owned())
            .or_insert_with(|| ManifestRecord {
                wasm_digest: wasm_digest.to_owned(),
                size,
                repositories: BTreeSet::new(),
            });
        record.repositories.insert(repository.to_owned());
    }

    /// Removes what `name` names: a tag loses only that tag (the image goes
    /// when no other reference names it); a digest, bare or pinned, removes
    /// the image with all its names. Returns the Wasm blob digests that
    /// nothing uses any more.
    pub fn remove(&mut self, name: &LocalName) -> Vec<String> {
        let blobs_before = self.wasm_digests();
        match name {
            LocalName::Tagged { key, .. } => {
                if let Some(digest) = self.references.remove(key)
                    && !self.references.values().any(|target| *target == digest)
                {
                    self.manifests.remove(&digest);
                }
            }
            LocalName::Digest(_) | LocalName::Pinned { .. } => {
                if let Some(digest) = self.manifest_digest_of(name).map(str::to_owned) {
                    self.references.retain(|_, target| *target != digest);
                    self.manifests.remove(&digest);
                }
                if let LocalName::Pinned { key, .. } = name {
                    self.references.remove(key);
                }
            }
        }
        let blobs_after = self.wasm_digests();
        blobs_before.difference(&blobs_after).cloned().collect()
    }

    /// Drops manifests whose blob is missing on disk (`blob_present` says
    /// which are there) and the references to them. Returns whether
    /// anything changed.
    pub fn retain_present_blobs(&mut self, blob_present: impl Fn(&str) -> bool) -> bool {
        let before = self.clone();
        self.manifests
            .retain(|_, record| blob_present(&record.wasm_digest));
        let manifests = &self.manifests;
        self.references
            .retain(|_, digest| manifests.contains_key(digest));
        *self != before
    }

    /// The digests of every Wasm blob some manifest holds.
    pub fn wasm_digests(&self) -> BTreeSet<String> {
        self.manifests
            .values()
            .map(|record| record.wasm_digest.clone())
            .collect()
    }

    /// Every image, with every name it is known by: the references pulled
    /// and `repository@digest` for each repository it came from.
    pub fn images(&self) -> Vec<ImageInfo> {
        self.manifests
            .iter()
            .map(|(digest, record)| {
                let mut names: BTreeSet<String> = self
                    .references
                    .iter()
                    .filter(|(_, target)| *target == digest)
                    .map(|(key, _)| key.clone())
                    .collect();
                names.extend(
                    record
                        .repositories
                        .iter()
                        .map(|repository| format!("{repository}@{digest}")),
                );
                ImageInfo {
                    digest: digest.clone(),
                    names: names.into_iter().collect(),
                    size: record.size,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(fill: char) -> String {
        format!("sha256:{}", fill.to_string().repeat(64))
    }

    fn name(reference: &str) -> LocalName {
        LocalName::parse(reference).unwrap()
    }

    #[test]
    fn names_are_normalised_like_the_registry_client() {
        assert_eq!(
            name("busybox"),
            LocalName::Tagged {
                key: "docker.io/library/busybox:latest".into(),
                repository: "docker.io/library/busybox".into(),
            }
        );
        assert_eq!(
            name("127.0.0.1:5000/wasm/app:v1"),
            LocalName::Tagged {
                key: "127.0.0.1:5000/wasm/app:v1".into(),
                repository: "127.0.0.1:5000/wasm/app".into(),
            }
        );
        let pinned = format!("127.0.0.1:5000/app@{}", digest('a'));
        assert_eq!(
            name(&pinned),
            LocalName::Pinned {
                key: pinned.clone(),
                repository: "127.0.0.1:5000/app".into(),
                digest: digest('a'),
            }
        );
        assert_eq!(name(&digest('b')), LocalName::Digest(digest('b')));
        assert!(LocalName::parse("sha256:abc").is_err());
        assert!(LocalName::parse("Not A Reference").is_err());
    }

    #[test]
    fn lookups_by_tag_pinned_reference_and_bare_digest() {
        let mut index = StoreIndex::default();
        index.record("r.io/app:v1", "r.io/app", &digest('c'), &digest('e'), 8);
        assert_eq!(
            index.manifest_digest_of(&name("r.io/app:v1")),
            Some(digest('c').as_str())
        );
        assert_eq!(
            index.manifest_digest_of(&name(&format!("r.io/app@{}", digest('c')))),
            Some(digest('c').as_str())
        );
        assert_eq!(
            index.manifest_digest_of(&name(&digest('c'))),
            Some(digest('c').as_str())
        );
        // The same digest in another repository was never pulled from there.
        assert_eq!(
            index.manifest_digest_of(&name(&format!("r.io/other@{}", digest('c')))),
            None
        );
        assert_eq!(index.manifest_digest_of(&name("r.io/app:v2")), None);
        assert_eq!(index.manifest_digest_of(&name(&digest('e'))), None);
    }

    #[test]
    fn a_moved_tag_leaves_the_old_image_named_by_digest() {
        let mut index = StoreIndex::default();
        index.record("r.io/app:v1", "r.io/app", &digest('1'), &digest('a'), 8);
        index.record("r.io/app:v1", "r.io/app", &digest('2'), &digest('b'), 9);
        let names: Vec<Vec<String>> = index
            .images()
            .into_iter()
            .map(|image| image.names)
            .collect();
        assert_eq!(
            names,
            vec![
                vec![format!("r.io/app@{}", digest('1'))],
                vec![
                    "r.io/app:v1".to_owned(),
                    format!("r.io/app@{}", digest('2'))
                ],
            ]
        );
        assert_eq!(index.remove(&name(&digest('1'))), vec![digest('a')]);
        assert_eq!(index.wasm_digests(), BTreeSet::from([digest('b')]));
    }

    #[test]
    fn removing_a_tag_keeps_other_names_and_shared_blobs() {
        let mut index = StoreIndex::default();
        index.record("r.io/app:v1", "r.io/app", &digest('1'), &digest('a'), 8);
        index.record("r.io/app:v2", "r.io/app", &digest('1'), &digest('a'), 8);
        index.record("r.io/b:v1", "r.io/b", &digest('2'), &digest('a'), 8);
        assert_eq!(index.remove(&name("r.io/app:v1")), Vec::<String>::new());
        assert_eq!(index.remove(&name("r.io/app:v2")), Vec::<String>::new());
        assert!(!index.manifests.contains_key(&digest('1')));
        // The blob is still held by the other manifest.
        assert_eq!(index.remove(&name("r.io/b:v1")), vec![digest('a')]);
        assert_eq!(index, StoreIndex::default());
    }

    #[test]
    fn removing_by_digest_removes_every_name() {
        let mut index = StoreIndex::default();
        index.record("r.io/app:v1", "r.io/app", &digest('1'), &digest('a'), 8);
        index.record("r.io/app:latest", "r.io/app", &digest('1'), &digest('a'), 8);
        assert_eq!(index.remove(&name(&digest('1'))), vec![digest('a')]);
        assert!(index.references.is_empty());
        // Absent names are no-ops.
        assert!(index.remove(&name(&digest('1'))).is_empty());
        assert!(index.remove(&name("r.io/none:v1")).is_empty());
    }

    #[test]
    fn images_list_every_name() {
        let mut index = StoreIndex::default();
        index.record("r.io/app:v1", "r.io/app", &digest('1'), &digest('a'), 8);
        let pinned = format!("r.io/mirror@{}", digest('1'));
        index.record(&pinned, "r.io/mirror", &digest('1'), &digest('a'), 8);
        let images = index.images();
        assert_eq!(
            images,
            vec![ImageInfo {
                digest: digest('1'),
                names: vec![
                    "r.io/app:v1".to_owned(),
                    format!("r.io/app@{}", digest('1')),
                    pinned,
                ],
                size: 8,
            }]
        );
    }

    #[test]
    fn missing_blobs_drop_their_manifests_and_references() {
        let mut index = StoreIndex::default();
        index.record("r.io/a:v1", "r.io/a", &digest('1'), &digest('a'), 8);
        index.record("r.io/b:v1", "r.io/b", &digest('2'), &digest('b'), 8);
        let kept = digest('b');
        assert!(index.retain_present_blobs(|wasm| wasm == kept));
        assert_eq!(
            index.references.keys().collect::<Vec<_>>(),
            vec!["r.io/b:v1"]
        );
        assert!(!index.retain_present_blobs(|wasm| wasm == kept));
    }

    #[test]
    fn the_index_round_trips_through_json() {
        let mut index = StoreIndex::default();
        index.record("r.io/a:v1", "r.io/a", &digest('1'), &digest('a'), 8);
        let json = serde_json::to_string(&index).unwrap();
        assert_eq!(serde_json::from_str::<StoreIndex>(&json).unwrap(), index);
        assert_eq!(
            serde_json::from_str::<StoreIndex>(r#"{"version": 1}"#).unwrap(),
            StoreIndex::default()
        );
    }
}
