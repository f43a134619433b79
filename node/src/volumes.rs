//! A pod's volumes as files on the node, laid out as the kubelet's volume
//! plugins lay them out, and the mounts a container gets from its
//! `volumeMounts`.
//!
//! Each volume but `hostPath` is a directory `<pod_dir>/volumes/<name>`:
//! - `emptyDir`: a directory (mode 0777, or the spec's `mode`), kept across
//!   container restarts and re-[`prepare`]s. `medium: Memory` is a plain
//!   directory as well (a tmpfs needs mount privileges the agent may lack);
//!   `sizeLimit` is not enforced.
//! - `configMap`, `secret`, `downwardAPI`: files written as the kubelet's
//!   `AtomicWriter` writes them: the content lives in a fresh timestamped
//!   directory `..<time>.<n>`, the symlink `..data` points to it (swapped
//!   by renaming a `..data_tmp` symlink over it), and each top-level file
//!   is a symlink `key -> ..data/key`, so a reader sees either the old or
//!   the new content, never a mix ([`PodVolumes::refresh`]). Secrets land
//!   on disk, not on a tmpfs. Ownership fields (`defaultUser`, `user`,
//!   `fsGroup`) are not applied.
//! - `hostPath` is the node's path itself, checked (and created for the
//!   `...OrCreate` types) as the kubelet checks it; it is never under the
//!   pod directory, so [`remove`] never touches it.
//!
//! Every other kind is [`VolumeError::Unsupported`].
//!
//! Bad specs (unsupported kinds, paths with `..` or absolute paths, unknown
//! hostPath types) are rejected before anything is written.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use skiff_sdk::runtime::Mount;

use crate::pod_config::{self, ConfigError, ObjectSource, SourceError};

/// The directory under the pod directory that holds the volumes.
const VOLUMES_DIR: &str = "volumes";
/// The symlink to the current content of an atomically written volume.
const DATA_LINK: &str = "..data";
/// The symlink renamed over [`DATA_LINK`] to swap content.
const DATA_TMP_LINK: &str = "..data_tmp";
/// File mode when neither the item nor `defaultMode` sets one (the API
/// server's default).
const DEFAULT_FILE_MODE: i32 = 0o644;
/// An emptyDir's mode when the spec sets none.
const EMPTY_DIR_MODE: u32 = 0o777;
/// Mode of the directories of atomically written volumes.
const PROJECTED_DIR_MODE: u32 = 0o755;
/// The kubelet's `AtomicWriter` limits.
const MAX_PATH_LENGTH: usize = 4096;
const MAX_FILE_NAME_LENGTH: usize = 255;

/// Why a volume cannot be prepared or mounted. Messages name the volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The volume's kind is not one this node supports.
    #[error("volume \"{volume}\": kind {kind} is not supported on this node")]
    Unsupported {
        /// The volume.
        volume: String,
        /// Its kind as the pod spec names it, e.g. `persistentVolumeClaim`.
        kind: &'static str,
    },
    /// The volume's name cannot be a directory name.
    #[error("volume \"{volume}\": the name cannot be used as a directory name")]
    InvalidName {
        /// The volume.
        volume: String,
    },
    /// The ConfigMap of a non-optional configMap volume does not exist.
    #[error("volume \"{volume}\": configmap \"{name}\" not found")]
    ConfigMapNotFound {
        /// The volume.
        volume: String,
        /// The ConfigMap.
        name: String,
    },
    /// The Secret of a non-optional secret volume does not exist.
    #[error("volume \"{volume}\": secret \"{name}\" not found")]
    SecretNotFound {
        /// The volume.
        volume: String,
        /// The Secret.
        name: String,
    },
    /// An item names a key the ConfigMap does not have.
    #[error("volume \"{volume}\": configmap references non-existent config key: {key}")]
    ConfigMapKeyNotFound {
        /// The volume.
        volume: String,
        /// The key.
        key: String,
    },
    /// An item names a key the Secret does not have.
    #[error("volume \"{volume}\": secret references non-existent secret key: {key}")]
    SecretKeyNotFound {
        /// The volume.
        volume: String,
        /// The key.
        key: String,
    },
    /// The ConfigMap or Secret could not be read.
    #[error("volume \"{volume}\": couldn't get {kind} {namespace}/{name}")]
    Source {
        /// The volume.
        volume: String,
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The pod's namespace.
        namespace: String,
        /// The object.
        name: String,
        /// Why.
        #[source]
        source: SourceError,
    },
    /// A file path inside the volume (an item's `path`, a key) would leave
    /// the volume or clash with its bookkeeping.
    #[error("volume \"{volume}\": invalid path \"{path}\": {reason}")]
    InvalidPath {
        /// The volume.
        volume: String,
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A downward API item cannot be rendered.
    #[error("volume \"{volume}\": cannot render downward API item \"{path}\"")]
    DownwardApi {
        /// The volume.
        volume: String,
        /// The item's path.
        path: String,
        /// Why (an unsupported field path).
        #[source]
        source: Box<ConfigError>,
    },
    /// A hostPath volume's path is not absolute.
    #[error("volume \"{volume}\": hostPath \"{path}\" is not an absolute path")]
    HostPathNotAbsolute {
        /// The volume.
        volume: String,
        /// The path.
        path: String,
    },
    /// A hostPath volume's `type` is not one Kubernetes defines.
    #[error("volume \"{volume}\": {type_} is an invalid volume type")]
    InvalidHostPathType {
        /// The volume.
        volume: String,
        /// The type as given.
        type_: String,
    },
    /// The node's path is not what the hostPath volume's `type` requires.
    #[error("volume \"{volume}\": hostPath type check failed: {} is not {expected}", path.display())]
    HostPathTypeMismatch {
        /// The volume.
        volume: String,
        /// The node's path.
        path: PathBuf,
        /// What it should be, e.g. `a directory`.
        expected: &'static str,
    },
    /// A container mounts a volume the pod does not declare.
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    UndeclaredVolume {
        /// The container.
        container: String,
        /// The volume named by its `volumeMounts`.
        volume: String,
    },
    /// A mount's `subPath` (or expanded `subPathExpr`) is unusable.
    #[error("volume \"{volume}\": subPath \"{sub_path}\" of container \"{container}\" {reason}")]
    InvalidSubPath {
        /// The container.
        container: String,
        /// The volume.
        volume: String,
        /// The sub path.
        sub_path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A filesystem operation failed.
    #[error("I/O failure on {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The blocking filesystem task did not complete (it panicked or the
    /// runtime is shutting down).
    #[error("the filesystem task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// A pod's volumes, prepared on the node by [`prepare`]: where each one
/// is, and how containers mount it.
#[derive(Clone, Debug)]
pub struct PodVolumes {
    volumes_dir: PathBuf,
    volumes: BTreeMap<String, PreparedVolume>,
}

#[derive(Clone, Debug)]
struct PreparedVolume {
    /// The node path containers mount.
    host_path: PathBuf,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    EmptyDir {
        mode: u32,
    },
    HostPath {
        check: HostPathType,
    },
    /// configMap, secret, downwardAPI: atomically written, read-only.
    Projected(Box<Volume>),
}

impl Kind {
    /// Whether a missing subPath is created (as the kubelet does) rather
    /// than refused; never inside atomically written volumes, where a
    /// stray directory would block a later key of that name.
    fn creates_sub_paths(&self) -> bool {
        !matches!(self, Kind::Projected(_))
    }
}

/// `hostPath.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostPathType {
    Unset,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

/// A file of an atomically written volume.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileProjection {
    data: Vec<u8>,
    mode: u32,
}

/// Relative path in the volume → file.
type Payload = BTreeMap<PathBuf, FileProjection>;

/// Prepares `pod`'s volumes under `<pod_dir>/volumes`, reading ConfigMaps
/// and Secrets from `source`. Idempotent: calling it again (after an agent
/// restart) keeps emptyDir content and rewrites projected volumes only if
/// their content changed. Specs are checked before anything is written.
pub async fn prepare(
    pod: &Pod,
    pod_dir: &Path,
    source: &dyn ObjectSource,
) -> Result<PodVolumes, VolumeError> {
    let volumes_dir = pod_dir.join(VOLUMES_DIR);
    let volumes_dir = std::path::absolute(&volumes_dir).map_err(io_error(&volumes_dir))?;
    let mut volumes = BTreeMap::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        volumes.insert(volume.name.clone(), classify(volume, &volumes_dir)?);
    }
    let prepared = PodVolumes {
        volumes_dir,
        volumes,
    };
    let mut payloads = BTreeMap::new();
    for (name, volume) in &prepared.volumes {
        if let Kind::Projected(spec) = &volume.kind {
            payloads.insert(name.clone(), build_payload(spec, pod, source).await?);
        }
    }
    let this = prepared.clone();
    blocking(move || this.set_up(&payloads)).await?;
    Ok(prepared)
}

/// Removes `<pod_dir>/volumes` and everything in it, without following
/// symlinks: a symlink a container left in an emptyDir is removed, not
/// what it points to, and hostPath volumes (never under the pod
/// directory) are untouched. A missing directory is not an error.
pub async fn remove(pod_dir: &Path) -> Result<(), VolumeError> {
    let dir = pod_dir.join(VOLUMES_DIR);
    blocking(move || {
        // `remove_dir_all` unlinks symlinks instead of following them (and
        // removes only the link if `dir` itself is one).
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(VolumeError::Io { path: dir, source }),
        }
    })
    .await
}

impl PodVolumes {
    /// The node path of `volume`, if the pod declares it.
    pub fn host_path(&self, volume: &str) -> Option<&Path> {
        self.volumes.get(volume).map(|v| v.host_path.as_path())
    }

    /// The mounts of `container`'s `volumeMounts`. configMap, secret and
    /// downwardAPI volumes are always read-only, as in Kubernetes. A
    /// `subPath` is resolved (symlinks included) and must stay inside the
    /// volume; a missing one is created in emptyDir and hostPath volumes,
    /// as the kubelet does. A mount with `subPathExpr` needs the
    /// container's environment: use [`mounts_with_env`](Self::mounts_with_env).
    ///
    /// Blocking: touches the filesystem for mounts with a sub path.
    pub fn mounts(&self, container: &Container) -> Result<Vec<Mount>, VolumeError> {
        let expr =
            container.volume_mounts.iter().flatten().find(|m| {
                non_empty(&m.sub_path).is_none() && non_empty(&m.sub_path_expr).is_some()
            });
        if let Some(mount) = expr {
            return Err(VolumeError::InvalidSubPath {
                container: container.name.clone(),
                volume: mount.name.clone(),
                sub_path: mount.sub_path_expr.clone().unwrap_or_default(),
                reason: "is a subPathExpr, which needs the container's environment",
            });
        }
        self.mounts_with_env(container, &[])
    }

    /// [`mounts`](Self::mounts), with `subPathExpr`s expanded against
    /// `env` (the container's environment, from
    /// [`container_env`](crate::pod_config::container_env)).
    ///
    /// Blocking: touches the filesystem for mounts with a sub path.
    pub fn mounts_with_env(
        &self,
        container: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<Mount>, VolumeError> {
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume =
                self.volumes
                    .get(&mount.name)
                    .ok_or_else(|| VolumeError::UndeclaredVolume {
                        container: container.name.clone(),
                        volume: mount.name.clone(),
                    })?;
            let sub_path = match (non_empty(&mount.sub_path), non_empty(&mount.sub_path_expr)) {
                (Some(path), _) => Some(path.to_owned()),
                (None, Some(expr)) => Some(pod_config::expand(expr, env)),
                (None, None) => None,
            };
            let host_path = match sub_path {
                None => volume.host_path.clone(),
                Some(sub_path) => {
                    resolve_sub_path(volume, &sub_path).map_err(|error| match error {
                        SubPathError::Invalid(reason) => VolumeError::InvalidSubPath {
                            container: container.name.clone(),
                            volume: mount.name.clone(),
                            sub_path,
                            reason,
                        },
                        SubPathError::Io(error) => error,
                    })?
                }
            };
            mounts.push(Mount {
                host_path,
                container_path: mount.mount_path.clone(),
                read_only: matches!(volume.kind, Kind::Projected(_))
                    || mount.read_only == Some(true),
            });
        }
        Ok(mounts)
    }

    /// Rewrites the configMap, secret and downwardAPI volumes from the
    /// current objects in `source` and `pod`'s current metadata (labels and
    /// annotations change), as the kubelet's periodic remount does. Each
    /// volume whose content changed is swapped atomically; unchanged ones
    /// are left alone. A volume that cannot be rebuilt (its ConfigMap was
    /// deleted) keeps its old content and its error is returned after the
    /// others are written.
    pub async fn refresh(&self, pod: &Pod, source: &dyn ObjectSource) -> Result<(), VolumeError> {
        let mut writes = Vec::new();
        let mut first_error = None;
        for volume in self.volumes.values() {
            if let Kind::Projected(spec) = &volume.kind {
                match build_payload(spec, pod, source).await {
                    Ok(payload) => writes.push((volume.host_path.clone(), payload)),
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        blocking(move || {
            writes
                .iter()
                .try_for_each(|(dir, payload)| atomic_write(dir, payload))
        })
        .await?;
        first_error.map_or(Ok(()), Err)
    }

    /// The filesystem work of [`prepare`].
    fn set_up(&self, payloads: &BTreeMap<String, Payload>) -> Result<(), VolumeError> {
        create_dir_with_mode(&self.volumes_dir, 0o750)?;
        for (name, volume) in &self.volumes {
            match &volume.kind {
                Kind::EmptyDir { mode } => create_dir_with_mode(&volume.host_path, *mode)?,
                Kind::HostPath { check } => check_host_path(name, &volume.host_path, *check)?,
                Kind::Projected(_) => atomic_write(&volume.host_path, &payloads[name])?,
            }
        }
        Ok(())
    }
}

/// What a volume is, checked without touching the filesystem.
fn classify(volume: &Volume, volumes_dir: &Path) -> Result<PreparedVolume, VolumeError> {
    let name = &volume.name;
    let mut components = Path::new(name).components();
    let plain = matches!(components.next(), Some(Component::Normal(_)))
        && components.next().is_none()
        && !name.contains('/')
        && !name.starts_with("..");
    if !plain {
        return Err(VolumeError::InvalidName {
            volume: name.clone(),
        });
    }
    let dir = volumes_dir.join(name);
    if let Some(host) = &volume.host_path {
        if !Path::new(&host.path).is_absolute() {
            return Err(VolumeError::HostPathNotAbsolute {
                volume: name.clone(),
                path: host.path.clone(),
            });
        }
        let check = match host.type_.as_deref().unwrap_or("") {
            "" => HostPathType::Unset,
            "DirectoryOrCreate" => HostPathType::DirectoryOrCreate,
            "Directory" => HostPathType::Directory,
            "FileOrCreate" => HostPathType::FileOrCreate,
            "File" => HostPathType::File,
            "Socket" => HostPathType::Socket,
            "CharDevice" => HostPathType::CharDevice,
            "BlockDevice" => HostPathType::BlockDevice,
            other => {
                return Err(VolumeError::InvalidHostPathType {
                    volume: name.clone(),
                    type_: other.to_owned(),
                });
            }
        };
        return Ok(PreparedVolume {
            host_path: PathBuf::from(&host.path),
            kind: Kind::HostPath { check },
        });
    }
    let kind = if let Some(empty_dir) = &volume.empty_dir {
        Kind::EmptyDir {
            mode: empty_dir.mode.map_or(EMPTY_DIR_MODE, |m| m as u32 & 0o7777),
        }
    } else if let Some(source) = &volume.config_map {
        for item in source.items.iter().flatten() {
            payload_path(name, &item.path)?;
        }
        Kind::Projected(Box::new(volume.clone()))
    } else if let Some(source) = &volume.secret {
        for item in source.items.iter().flatten() {
            payload_path(name, &item.path)?;
        }
        Kind::Projected(Box::new(volume.clone()))
    } else if let Some(source) = &volume.downward_api {
        for item in source.items.iter().flatten() {
            payload_path(name, &item.path)?;
            if item.resource_field_ref.is_some() {
                return Err(VolumeError::Unsupported {
                    volume: name.clone(),
                    kind: "downwardAPI.items.resourceFieldRef",
                });
            }
        }
        Kind::Projected(Box::new(volume.clone()))
    } else if let Some(kind) = unsupported_kind(volume) {
        return Err(VolumeError::Unsupported {
            volume: name.clone(),
            kind,
        });
    } else {
        // The API server defaults a volume without a source to emptyDir.
        Kind::EmptyDir {
            mode: EMPTY_DIR_MODE,
        }
    };
    Ok(PreparedVolume {
        host_path: dir,
        kind,
    })
}

/// The kind of a volume source this node does not support, as the pod
/// spec names it.
fn unsupported_kind(v: &Volume) -> Option<&'static str> {
    [
        (v.persistent_volume_claim.is_some(), "persistentVolumeClaim"),
        (v.projected.is_some(), "projected"),
        (v.nfs.is_some(), "nfs"),
        (v.ephemeral.is_some(), "ephemeral"),
        (v.csi.is_some(), "csi"),
        (v.image.is_some(), "image"),
        (v.iscsi.is_some(), "iscsi"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.azure_file.is_some(), "azureFile"),
        (v.cephfs.is_some(), "cephfs"),
        (v.cinder.is_some(), "cinder"),
        (v.fc.is_some(), "fc"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.flocker.is_some(), "flocker"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.rbd.is_some(), "rbd"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
    ]
    .into_iter()
    .find_map(|(set, kind)| set.then_some(kind))
}

/// A file path inside an atomically written volume, checked as the
/// kubelet's `AtomicWriter` checks it and cleaned (`a//./b` → `a/b`).
fn payload_path(volume: &str, path: &str) -> Result<PathBuf, VolumeError> {
    let invalid = |reason| VolumeError::InvalidPath {
        volume: volume.to_owned(),
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if path.starts_with('/') {
        return Err(invalid("must be a relative path"));
    }
    if path.len() > MAX_PATH_LENGTH {
        return Err(invalid("must be at most 4096 characters"));
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(invalid("must not contain '..'"));
    }
    if parts.iter().any(|p| p.len() > MAX_FILE_NAME_LENGTH) {
        return Err(invalid("file names must be at most 255 characters"));
    }
    match parts.first() {
        None => Err(invalid("must name a file")),
        Some(first) if first.starts_with("..") => Err(invalid("must not start with '..'")),
        Some(_) => Ok(parts.iter().collect()),
    }
}

/// Mode bits from the API's `int32` mode (validation keeps them in 0..=0o777).
fn mode_bits(mode: i32) -> u32 {
    mode as u32 & 0o777
}

/// The files of a configMap, secret or downwardAPI volume
/// (`MakePayload` / `CollectData`).
async fn build_payload(
    volume: &Volume,
    pod: &Pod,
    source: &dyn ObjectSource,
) -> Result<Payload, VolumeError> {
    let name = &volume.name;
    let namespace = pod_config::pod_namespace(pod);
    let source_error = |kind, object: &str| {
        let (volume, namespace, name) = (name.clone(), namespace.to_owned(), object.to_owned());
        move |source| VolumeError::Source {
            volume,
            kind,
            namespace,
            name,
            source,
        }
    };
    let mut payload = Payload::new();
    if let Some(spec) = &volume.config_map {
        let default_mode = mode_bits(spec.default_mode.unwrap_or(DEFAULT_FILE_MODE));
        let optional = spec.optional == Some(true);
        let found = source
            .config_map(namespace, &spec.name)
            .await
            .map_err(source_error("configmap", &spec.name))?;
        let Some(config_map) = found else {
            if optional {
                return Ok(payload);
            }
            return Err(VolumeError::ConfigMapNotFound {
                volume: name.clone(),
                name: spec.name.clone(),
            });
        };
        let text = config_map.data.iter().flatten();
        let binary = config_map.binary_data.iter().flatten();
        let mut values: BTreeMap<&String, Vec<u8>> =
            text.map(|(k, v)| (k, v.as_bytes().to_vec())).collect();
        for (key, value) in binary {
            values.entry(key).or_insert_with(|| value.0.clone());
        }
        project(
            name,
            &mut payload,
            values,
            spec.items.as_deref(),
            default_mode,
            optional,
            |key| VolumeError::ConfigMapKeyNotFound {
                volume: name.clone(),
                key,
            },
        )?;
    } else if let Some(spec) = &volume.secret {
        let default_mode = mode_bits(spec.default_mode.unwrap_or(DEFAULT_FILE_MODE));
        let optional = spec.optional == Some(true);
        let secret_name = spec.secret_name.clone().unwrap_or_default();
        let found = source
            .secret(namespace, &secret_name)
            .await
            .map_err(source_error("secret", &secret_name))?;
        let Some(secret) = found else {
            if optional {
                return Ok(payload);
            }
            return Err(VolumeError::SecretNotFound {
                volume: name.clone(),
                name: secret_name,
            });
        };
        let values = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k, v.0.clone()))
            .collect();
        project(
            name,
            &mut payload,
            values,
            spec.items.as_deref(),
            default_mode,
            optional,
            |key| VolumeError::SecretKeyNotFound {
                volume: name.clone(),
                key,
            },
        )?;
    } else if let Some(spec) = &volume.downward_api {
        let default_mode = mode_bits(spec.default_mode.unwrap_or(DEFAULT_FILE_MODE));
        for item in spec.items.iter().flatten() {
            let mut data = Vec::new();
            if let Some(field) = &item.field_ref {
                data = pod_config::pod_metadata_field(pod, &field.field_path)
                    .map_err(|source| VolumeError::DownwardApi {
                        volume: name.clone(),
                        path: item.path.clone(),
                        source: Box::new(source),
                    })?
                    .into_bytes();
            }
            payload.insert(
                payload_path(name, &item.path)?,
                FileProjection {
                    data,
                    mode: item.mode.map_or(default_mode, mode_bits),
                },
            );
        }
    }
    Ok(payload)
}

/// Adds an object's `values` to `payload`: all keys under their names, or
/// the `items` (key → path, mode). A missing item key is skipped when
/// `optional`, an error otherwise.
fn project(
    volume: &str,
    payload: &mut Payload,
    values: BTreeMap<&String, Vec<u8>>,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    default_mode: u32,
    optional: bool,
    missing: impl Fn(String) -> VolumeError,
) -> Result<(), VolumeError> {
    match items {
        None | Some([]) => {
            for (key, data) in values {
                let file = FileProjection {
                    data,
                    mode: default_mode,
                };
                payload.insert(payload_path(volume, key)?, file);
            }
        }
        Some(items) => {
            for item in items {
                let data = match values.get(&item.key) {
                    Some(data) => data.clone(),
                    None if optional => continue,
                    None => return Err(missing(item.key.clone())),
                };
                let file = FileProjection {
                    data,
                    mode: item.mode.map_or(default_mode, mode_bits),
                };
                payload.insert(payload_path(volume, &item.path)?, file);
            }
        }
    }
    Ok(())
}

/// Writes `payload` into `target` as the kubelet's `AtomicWriter` does:
/// unchanged content is left alone; otherwise a fresh timestamped
/// directory gets the files, `..data` is swapped to it by renaming
/// `..data_tmp`, top-level names become symlinks through `..data`, names
/// that went away are unlinked and the old directory is removed.
fn atomic_write(target: &Path, payload: &Payload) -> Result<(), VolumeError> {
    create_dir_with_mode(target, PROJECTED_DIR_MODE)?;
    let data_link = target.join(DATA_LINK);
    let old_dir = match fs::read_link(&data_link) {
        Ok(dir) => Some(dir).filter(|d| is_timestamp_dir_name(d)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(VolumeError::Io {
                path: data_link,
                source,
            });
        }
    };
    let old_files = match &old_dir {
        Some(dir) => read_tree(&target.join(dir))?,
        None => Payload::new(),
    };
    let changed = old_dir.is_none() || old_files != *payload;
    if changed {
        let new_dir = create_timestamp_dir(target)?;
        write_tree(&target.join(&new_dir), payload)?;
        let tmp_link = target.join(DATA_TMP_LINK);
        match fs::remove_file(&tmp_link) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(VolumeError::Io {
                    path: tmp_link,
                    source,
                });
            }
        }
        symlink(&new_dir, &tmp_link).map_err(io_error(&tmp_link))?;
        fs::rename(&tmp_link, &data_link).map_err(io_error(&data_link))?;
    }
    let top_level = |files: &Payload| -> BTreeSet<OsString> {
        files
            .keys()
            .filter_map(|p| p.components().next())
            .map(|c| c.as_os_str().to_owned())
            .collect()
    };
    let new_names = top_level(payload);
    for name in &new_names {
        let link = target.join(name);
        match fs::symlink_metadata(&link) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                symlink(Path::new(DATA_LINK).join(name), &link).map_err(io_error(&link))?;
            }
            Err(source) => return Err(VolumeError::Io { path: link, source }),
        }
    }
    if changed {
        for name in top_level(&old_files).difference(&new_names) {
            let link = target.join(name);
            if fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
                fs::remove_file(&link).map_err(io_error(&link))?;
            }
        }
        if let Some(old_dir) = old_dir {
            let old_dir = target.join(old_dir);
            fs::remove_dir_all(&old_dir).map_err(io_error(&old_dir))?;
        }
    }
    Ok(())
}

/// `..<time>.<n>`: a single name starting with `..`, not one of the links.
fn is_timestamp_dir_name(name: &Path) -> bool {
    let mut components = name.components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(first)), None) => {
            let first = first.to_string_lossy();
            first.starts_with("..") && first != DATA_LINK && first != DATA_TMP_LINK
        }
        _ => false,
    }
}

/// Creates a fresh `..<time>.<n>` directory in `target`; returns its name.
fn create_timestamp_dir(target: &Path) -> Result<PathBuf, VolumeError> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    loop {
        let time = jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S");
        let name = PathBuf::from(format!(
            "..{time}.{}",
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let dir = target.join(&name);
        match fs::DirBuilder::new().mode(PROJECTED_DIR_MODE).create(&dir) {
            Ok(()) => {
                set_mode(&dir, PROJECTED_DIR_MODE)?;
                return Ok(name);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(VolumeError::Io { path: dir, source }),
        }
    }
}

/// Writes each file of `payload` under `dir`, with its mode.
fn write_tree(dir: &Path, payload: &Payload) -> Result<(), VolumeError> {
    for (relative, file) in payload {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(PROJECTED_DIR_MODE)
                .create(parent)
                .map_err(io_error(parent))?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&path)
            .map_err(io_error(&path))?;
        out.write_all(&file.data).map_err(io_error(&path))?;
        set_mode(&path, file.mode)?;
    }
    Ok(())
}

/// The regular files under `dir` (recursively, symlinks not followed),
/// with their content and mode; empty if `dir` does not exist.
fn read_tree(dir: &Path) -> Result<Payload, VolumeError> {
    fn walk(root: &Path, relative: &Path, out: &mut Payload) -> Result<(), VolumeError> {
        let dir = root.join(relative);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(VolumeError::Io { path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(io_error(&dir))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(io_error(&path))?;
            let name = relative.join(entry.file_name());
            if meta.is_dir() {
                walk(root, &name, out)?;
            } else if meta.is_file() {
                let data = fs::read(&path).map_err(io_error(&path))?;
                let mode = meta.permissions().mode() & 0o777;
                out.insert(name, FileProjection { data, mode });
            }
        }
        Ok(())
    }
    let mut out = Payload::new();
    walk(dir, Path::new(""), &mut out)?;
    Ok(out)
}

/// The kubelet's hostPath type check (`checkTypeInternal`); the
/// `...OrCreate` types create a missing directory (0755, parents too) or
/// file (0644, parent must exist).
fn check_host_path(volume: &str, path: &Path, check: HostPathType) -> Result<(), VolumeError> {
    let file_type = fs::metadata(path).ok().map(|m| m.file_type());
    let is = |test: fn(&fs::FileType) -> bool| file_type.as_ref().is_some_and(test);
    let (ok, expected) = match check {
        HostPathType::Unset => return Ok(()),
        HostPathType::DirectoryOrCreate if file_type.is_none() => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(io_error(path))?;
            return set_mode(path, 0o755);
        }
        HostPathType::FileOrCreate if file_type.is_none() => {
            // Never truncates: a file that appeared meanwhile keeps its content.
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(io_error(path))?;
            return Ok(());
        }
        HostPathType::DirectoryOrCreate | HostPathType::Directory => {
            (is(fs::FileType::is_dir), "a directory")
        }
        HostPathType::FileOrCreate | HostPathType::File => (
            file_type.is_some()
                && !is(fs::FileType::is_dir)
                && !is(FileTypeExt::is_socket)
                && !is(FileTypeExt::is_char_device)
                && !is(FileTypeExt::is_block_device),
            "a file",
        ),
        HostPathType::Socket => (is(FileTypeExt::is_socket), "a socket file"),
        HostPathType::CharDevice => (is(FileTypeExt::is_char_device), "a character device"),
        HostPathType::BlockDevice => (is(FileTypeExt::is_block_device), "a block device"),
    };
    if ok {
        Ok(())
    } else {
        Err(VolumeError::HostPathTypeMismatch {
            volume: volume.to_owned(),
            path: path.to_owned(),
            expected,
        })
    }
}

enum SubPathError {
    Invalid(&'static str),
    Io(VolumeError),
}

impl From<VolumeError> for SubPathError {
    fn from(error: VolumeError) -> Self {
        SubPathError::Io(error)
    }
}

/// The node path of `sub_path` in `volume`, symlinks resolved, refused if
/// it leaves the volume. Missing directories are created (with the
/// volume's mode) where the volume kind allows it, one component at a
/// time so that a symlink on the way cannot lead the creation outside.
fn resolve_sub_path(volume: &PreparedVolume, sub_path: &str) -> Result<PathBuf, SubPathError> {
    let relative = Path::new(sub_path);
    if relative.is_absolute() {
        return Err(SubPathError::Invalid("must not be an absolute path"));
    }
    if relative.components().any(|c| c == Component::ParentDir) {
        return Err(SubPathError::Invalid("must not contain '..'"));
    }
    let root = fs::canonicalize(&volume.host_path).map_err(io_error(&volume.host_path))?;
    let candidate = root.join(relative);
    let missing =
        matches!(fs::symlink_metadata(&candidate), Err(e) if e.kind() == io::ErrorKind::NotFound);
    if missing && volume.kind.creates_sub_paths() {
        let mode = fs::metadata(&root)
            .map_err(io_error(&root))?
            .permissions()
            .mode()
            & 0o7777;
        let mut current = root.clone();
        for component in relative.components() {
            let Component::Normal(part) = component else {
                continue;
            };
            let next = current.join(part);
            match fs::symlink_metadata(&next) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    current = resolve_inside(&root, &next)?;
                }
                Ok(_) => current = next,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(mode)
                        .create(&next)
                        .map_err(io_error(&next))?;
                    set_mode(&next, mode)?;
                    current = next;
                }
                Err(source) => return Err(VolumeError::Io { path: next, source }.into()),
            }
        }
    }
    resolve_inside(&root, &candidate)
}

/// `path` with symlinks resolved, if that stays under `root`.
fn resolve_inside(root: &Path, path: &Path) -> Result<PathBuf, SubPathError> {
    let resolved = match fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(SubPathError::Invalid("does not exist"));
        }
        Err(source) => {
            return Err(VolumeError::Io {
                path: path.to_owned(),
                source,
            }
            .into());
        }
    };
    if resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(SubPathError::Invalid("resolves outside the volume"))
    }
}

/// Creates `dir` (and its parents) and sets its mode, whatever the umask.
fn create_dir_with_mode(dir: &Path, mode: u32) -> Result<(), VolumeError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(io_error(dir))?;
    set_mode(dir, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), VolumeError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_error(path))
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_owned(),
        source,
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, VolumeError> + Send + 'static,
) -> Result<T, VolumeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(VolumeError::Task)?
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use serde_json::json;

    use super::*;
    use crate::pod_config::tests::{FakeSource, config_map, secret};

    fn source() -> FakeSource {
        let source = FakeSource::default();
        let mut settings = config_map("settings", &[("app.conf", "level=debug"), ("port", "8080")]);
        settings.binary_data = Some(BTreeMap::from([(
            "logo.bin".to_owned(),
            k8s_openapi::ByteString(vec![0, 159, 146, 150]),
        )]));
        source.put_config_map("ns", settings);
        source.put_secret(
            "ns",
            secret(
                "tls",
                &[("tls.key", &[0xff, 0x00, 0xfe]), ("tls.crt", b"CERT")],
            ),
        );
        source
    }

    fn pod(volumes: serde_json::Value, mounts: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "web-1", "namespace": "ns", "uid": "u-1",
                "labels": {"tier": "front", "app": "web"},
            },
            "spec": {
                "volumes": volumes,
                "containers": [{"name": "app", "image": "app:1", "volumeMounts": mounts}]
            }
        }))
        .unwrap()
    }

    fn container(pod: &Pod) -> &Container {
        &pod.spec.as_ref().unwrap().containers[0]
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn read(path: &Path) -> Vec<u8> {
        fs::read(path).unwrap()
    }

    async fn prepare_err(volumes: serde_json::Value, pod_dir: &Path) -> String {
        let pod = pod(volumes, json!([]));
        prepare(&pod, pod_dir, &source())
            .await
            .unwrap_err()
            .to_string()
    }

    #[tokio::test]
    async fn empty_dirs_are_directories_kept_across_prepares() {
        let tmp = tempfile::tempdir().unwrap();
        let pod = pod(
            json!([
                {"name": "scratch", "emptyDir": {}},
                {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                {"name": "strict", "emptyDir": {"mode": 0o750}},
                {"name": "plain"}
            ]),
            json!([]),
        );
        let volumes = prepare(&pod, tmp.path(), &source()).await.unwrap();
        let scratch = volumes.host_path("scratch").unwrap().to_owned();
        assert_eq!(scratch, tmp.path().join("volumes/scratch"));
        assert_eq!(mode(&scratch), 0o777);
        assert_eq!(mode(volumes.host_path("ram").unwrap()), 0o777);
        assert_eq!(mode(volumes.host_path("strict").unwrap()), 0o750);
        assert!(volumes.host_path("plain").unwrap().is_dir());
        assert_eq!(mode(&tmp.path().join("volumes")), 0o750);

        fs::write(scratch.join("state"), "kept").unwrap();
        prepare(&pod, tmp.path(), &source()).await.unwrap();
        assert_eq!(read(&scratch.join("state")), b"kept");
    }

    #[tokio::test]
    async fn host_paths_are_checked_as_the_kubelet_checks_them() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("file"), "f").unwrap();
        let _listener = UnixListener::bind(host.join("sock")).unwrap();
        let pod_dir = tmp.path().join("pod");
        let path = |name: &str| host.join(name).to_string_lossy().into_owned();

        let ok = pod(
            json!([
                {"name": "a", "hostPath": {"path": path("made/deep"), "type": "DirectoryOrCreate"}},
                {"name": "b", "hostPath": {"path": path("new-file"), "type": "FileOrCreate"}},
                {"name": "c", "hostPath": {"path": path("file"), "type": "File"}},
                {"name": "d", "hostPath": {"path": path(""), "type": "Directory"}},
                {"name": "e", "hostPath": {"path": path("sock"), "type": "Socket"}},
                {"name": "f", "hostPath": {"path": "/dev/null", "type": "CharDevice"}},
                {"name": "g", "hostPath": {"path": path("absent")}},
                {"name": "h", "hostPath": {"path": path("file"), "type": "FileOrCreate"}}
            ]),
            json!([]),
        );
        let volumes = prepare(&ok, &pod_dir, &source()).await.unwrap();
        assert_eq!(mode(&host.join("made/deep")), 0o755);
        assert!(host.join("new-file").is_file());
        assert_eq!(
            read(&host.join("file")),
            b"f",
            "FileOrCreate leaves a file alone"
        );
        assert_eq!(volumes.host_path("f"), Some(Path::new("/dev/null")));
        assert!(
            !host.join("absent").exists(),
            "no type: no check, nothing made"
        );

        let cases = [
            ("Directory", path("absent"), "is not a directory"),
            ("Directory", path("file"), "is not a directory"),
            ("DirectoryOrCreate", path("file"), "is not a directory"),
            ("File", path(""), "is not a file"),
            ("File", path("absent"), "is not a file"),
            ("FileOrCreate", path(""), "is not a file"),
            ("Socket", path("file"), "is not a socket file"),
            ("CharDevice", path("file"), "is not a character device"),
            (
                "BlockDevice",
                "/dev/null".to_owned(),
                "is not a block device",
            ),
        ];
        for (type_, path, message) in cases {
            let volumes = json!([{"name": "v", "hostPath": {"path": path, "type": type_}}]);
            assert_eq!(
                prepare_err(volumes, &pod_dir).await,
                format!("volume \"v\": hostPath type check failed: {path} {message}"),
            );
        }
        let volumes = json!([{"name": "v", "hostPath": {"path": "/x", "type": "Fifo"}}]);
        assert_eq!(
            prepare_err(volumes, &pod_dir).await,
            "volume \"v\": Fifo is an invalid volume type"
        );
        let volumes = json!([{"name": "v", "hostPath": {"path": "rel/x"}}]);
        assert_eq!(
            prepare_err(volumes, &pod_dir).await,
            "volume \"v\": hostPath \"rel/x\" is not an absolute path"
        );
    }

    #[tokio::test]
    async fn config_maps_and_secrets_become_files_behind_data_links() {
        let tmp = tempfile::tempdir().unwrap();
        let pod = pod(
            json!([
                {"name": "all", "configMap": {"name": "settings"}},
                {"name": "some", "configMap": {"name": "settings", "defaultMode": 0o600, "items": [
                    {"key": "app.conf", "path": "conf/app.conf", "mode": 0o640},
                    {"key": "port", "path": "port.txt"},
                    {"key": "logo.bin", "path": "img/logo"}
                ]}},
                {"name": "certs", "secret": {"secretName": "tls", "defaultMode": 0o400}},
                {"name": "absent", "configMap": {"name": "gone", "optional": true}},
                {"name": "absent-secret", "secret": {"secretName": "gone", "optional": true}},
                {"name": "partial", "secret": {"secretName": "tls", "optional": true, "items": [
                    {"key": "nope", "path": "nope"}, {"key": "tls.crt", "path": "crt"}
                ]}}
            ]),
            json!([]),
        );
        let volumes = prepare(&pod, tmp.path(), &source()).await.unwrap();
        let all = volumes.host_path("all").unwrap();
        assert_eq!(read(&all.join("app.conf")), b"level=debug");
        assert_eq!(read(&all.join("logo.bin")), [0, 159, 146, 150]);
        assert_eq!(mode(&all.join("port")), 0o644);
        assert_eq!(
            fs::read_link(all.join("port")).unwrap(),
            Path::new("..data/port")
        );
        let data = fs::read_link(all.join("..data")).unwrap();
        assert!(data.to_string_lossy().starts_with(".."), "{data:?}");
        assert!(!all.join("..data_tmp").exists());

        let some = volumes.host_path("some").unwrap();
        assert_eq!(read(&some.join("conf/app.conf")), b"level=debug");
        assert_eq!(mode(&some.join("conf/app.conf")), 0o640);
        assert_eq!(mode(&some.join("port.txt")), 0o600);
        assert_eq!(read(&some.join("img/logo")), [0, 159, 146, 150]);
        assert!(!some.join("port").exists());

        let certs = volumes.host_path("certs").unwrap();
        assert_eq!(read(&certs.join("tls.key")), [0xff, 0x00, 0xfe]);
        assert_eq!(mode(&certs.join("tls.key")), 0o400);

        for empty in ["absent", "absent-secret"] {
            let dir = volumes.host_path(empty).unwrap();
            let names: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| !n.to_string_lossy().starts_with(".."))
                .collect();
            assert!(names.is_empty(), "{empty}: {names:?}");
        }
        let partial = volumes.host_path("partial").unwrap();
        assert_eq!(read(&partial.join("crt")), b"CERT");
        assert!(!partial.join("nope").exists());
    }

    #[tokio::test]
    async fn missing_objects_and_keys_are_errors_naming_them() {
        let tmp = tempfile::tempdir().unwrap();
        let cases = [
            (
                json!({"name": "v", "configMap": {"name": "gone"}}),
                "volume \"v\": configmap \"gone\" not found",
            ),
            (
                json!({"name": "v", "secret": {"secretName": "gone"}}),
                "volume \"v\": secret \"gone\" not found",
            ),
            (
                json!({"name": "v", "configMap": {"name": "settings", "items": [{"key": "k", "path": "k"}]}}),
                "volume \"v\": configmap references non-existent config key: k",
            ),
            (
                json!({"name": "v", "secret": {"secretName": "tls", "items": [{"key": "k", "path": "k"}]}}),
                "volume \"v\": secret references non-existent secret key: k",
            ),
            (
                json!({"name": "v", "persistentVolumeClaim": {"claimName": "data"}}),
                "volume \"v\": kind persistentVolumeClaim is not supported on this node",
            ),
            (
                json!({"name": "v", "projected": {"sources": []}}),
                "volume \"v\": kind projected is not supported on this node",
            ),
            (
                json!({"name": "v", "nfs": {"server": "s", "path": "/"}}),
                "volume \"v\": kind nfs is not supported on this node",
            ),
            (
                json!({"name": "v", "downwardAPI": {"items": [{"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}}]}}),
                "volume \"v\": kind downwardAPI.items.resourceFieldRef is not supported on this node",
            ),
            (
                json!({"name": "v", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "spec.nodeName"}}]}}),
                "volume \"v\": cannot render downward API item \"n\"",
            ),
            (
                json!({"name": "..", "emptyDir": {}}),
                "volume \"..\": the name cannot be used as a directory name",
            ),
        ];
        for (volume, message) in cases {
            assert_eq!(prepare_err(json!([volume]), tmp.path()).await, message);
        }
    }

    #[tokio::test]
    async fn traversing_paths_are_rejected_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let cases = [
            ("../x", "must not contain '..'"),
            ("a/../../x", "must not contain '..'"),
            ("/etc/passwd", "must be a relative path"),
            ("..data", "must not start with '..'"),
            ("./..x", "must not start with '..'"),
            ("", "must not be empty"),
            ("./", "must name a file"),
        ];
        for (path, reason) in cases {
            for volume in [
                json!({"name": "v", "configMap": {"name": "settings", "items": [{"key": "port", "path": path}]}}),
                json!({"name": "v", "secret": {"secretName": "tls", "items": [{"key": "tls.crt", "path": path}]}}),
                json!({"name": "v", "downwardAPI": {"items": [{"path": path, "fieldRef": {"fieldPath": "metadata.name"}}]}}),
            ] {
                let volumes = json!([{"name": "scratch", "emptyDir": {}}, volume]);
                assert_eq!(
                    prepare_err(volumes, tmp.path()).await,
                    format!("volume \"v\": invalid path \"{path}\": {reason}")
                );
            }
        }
        assert!(!tmp.path().join("volumes").exists());
        assert_eq!(
            payload_path("v", "a//./b").unwrap(),
            PathBuf::from("a/b"),
            "paths are cleaned"
        );
    }

    #[tokio::test]
    async fn downward_api_renders_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let pod = pod(
            json!([{"name": "info", "downwardAPI": {"defaultMode": 0o444, "items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o400},
                {"path": "meta/ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
                {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}
            ]}}]),
            json!([]),
        );
        let volumes = prepare(&pod, tmp.path(), &source()).await.unwrap();
        let dir = volumes.host_path("info").unwrap();
        assert_eq!(read(&dir.join("labels")), b"app=\"web\"\ntier=\"front\"");
        assert_eq!(read(&dir.join("name")), b"web-1");
        assert_eq!(mode(&dir.join("name")), 0o400);
        assert_eq!(mode(&dir.join("labels")), 0o444);
        assert_eq!(read(&dir.join("meta/ns")), b"ns");
        assert_eq!(read(&dir.join("uid")), b"u-1");
        assert_eq!(read(&dir.join("tier")), b"front");
        assert_eq!(read(&dir.join("annotations")), b"");

        // Relabelled pod: refresh rewrites.
        let mut relabelled = pod.clone();
        relabelled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("tier".into(), "back".into());
        volumes.refresh(&relabelled, &source()).await.unwrap();
        assert_eq!(read(&dir.join("tier")), b"back");
    }

    #[tokio::test]
    async fn refresh_swaps_content_atomically_and_only_when_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let source = source();
        let pod = pod(
            json!([{"name": "cfg", "configMap": {"name": "settings"}},
                   {"name": "keep", "emptyDir": {}}]),
            json!([]),
        );
        let volumes = prepare(&pod, tmp.path(), &source).await.unwrap();
        let dir = volumes.host_path("cfg").unwrap().to_owned();
        let first = fs::read_link(dir.join("..data")).unwrap();

        volumes.refresh(&pod, &source).await.unwrap();
        assert_eq!(
            fs::read_link(dir.join("..data")).unwrap(),
            first,
            "unchanged content is not rewritten"
        );

        source.put_config_map(
            "ns",
            config_map("settings", &[("app.conf", "level=info"), ("new", "1")]),
        );
        volumes.refresh(&pod, &source).await.unwrap();
        let second = fs::read_link(dir.join("..data")).unwrap();
        assert_ne!(second, first);
        assert_eq!(read(&dir.join("app.conf")), b"level=info");
        assert_eq!(read(&dir.join("new")), b"1");
        assert!(
            fs::symlink_metadata(dir.join("port")).is_err(),
            "removed key unlinked"
        );
        assert!(fs::symlink_metadata(dir.join("logo.bin")).is_err());
        assert!(!dir.join(&first).exists(), "old content removed");
        let entries: BTreeSet<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let expected: BTreeSet<String> = ["..data", "app.conf", "new"]
            .into_iter()
            .map(String::from)
            .chain([second.to_string_lossy().into_owned()])
            .collect();
        assert_eq!(entries, expected);

        // The ConfigMap goes away: the error is reported, the content stays.
        let empty = FakeSource::default();
        assert_eq!(
            volumes.refresh(&pod, &empty).await.unwrap_err().to_string(),
            "volume \"cfg\": configmap \"settings\" not found"
        );
        assert_eq!(read(&dir.join("app.conf")), b"level=info");
    }

    #[tokio::test]
    async fn source_failures_name_the_object() {
        let tmp = tempfile::tempdir().unwrap();
        let source = source().failing_on("settings");
        let pod = pod(
            json!([{"name": "cfg", "configMap": {"name": "settings"}}]),
            json!([]),
        );
        let err = prepare(&pod, tmp.path(), &source).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume \"cfg\": couldn't get configmap ns/settings"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[tokio::test]
    async fn mounts_map_volume_mounts() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host");
        fs::create_dir(&host).unwrap();
        let pod = pod(
            json!([
                {"name": "scratch", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "settings"}},
                {"name": "logs", "hostPath": {"path": host.to_string_lossy()}}
            ]),
            json!([
                {"name": "scratch", "mountPath": "/scratch"},
                {"name": "scratch", "mountPath": "/ro", "readOnly": true},
                {"name": "cfg", "mountPath": "/etc/app", "readOnly": false},
                {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                {"name": "scratch", "mountPath": "/cache", "subPath": "a/b"},
                {"name": "logs", "mountPath": "/logs", "subPath": "web"}
            ]),
        );
        let volumes = prepare(&pod, tmp.path(), &source()).await.unwrap();
        let mounts = volumes.mounts(container(&pod)).unwrap();
        let scratch = fs::canonicalize(volumes.host_path("scratch").unwrap()).unwrap();
        let cfg = volumes.host_path("cfg").unwrap();
        let host = fs::canonicalize(&host).unwrap();
        let data = fs::canonicalize(cfg.join("..data")).unwrap();
        assert_eq!(
            mounts,
            vec![
                Mount::read_write(volumes.host_path("scratch").unwrap(), "/scratch"),
                Mount::read_only(volumes.host_path("scratch").unwrap(), "/ro"),
                Mount::read_only(cfg, "/etc/app"),
                Mount::read_only(data.join("app.conf"), "/etc/app.conf"),
                Mount::read_write(scratch.join("a/b"), "/cache"),
                Mount::read_write(host.join("web"), "/logs"),
            ]
        );
        assert_eq!(
            mode(&scratch.join("a/b")),
            0o777,
            "made with the volume's mode"
        );
        assert!(host.join("web").is_dir());

        let undeclared = self::pod(json!([]), json!([{"name": "nope", "mountPath": "/x"}]));
        assert_eq!(
            volumes
                .mounts(container(&undeclared))
                .unwrap_err()
                .to_string(),
            "cannot find volume \"nope\" to mount into container \"app\""
        );
    }

    #[tokio::test]
    async fn sub_paths_stay_inside_the_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let volumes_spec = json!([
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "settings"}}
        ]);
        let prepared = prepare(&pod(volumes_spec.clone(), json!([])), tmp.path(), &source())
            .await
            .unwrap();
        let scratch = prepared.host_path("scratch").unwrap();
        symlink(&outside, scratch.join("escape")).unwrap();
        symlink("inner", scratch.join("alias")).unwrap();
        fs::create_dir(scratch.join("inner")).unwrap();

        let check = |volume: &str, sub_path: &str, expect: Result<PathBuf, String>| {
            let pod = pod(
                volumes_spec.clone(),
                json!([{"name": volume, "mountPath": "/m", "subPath": sub_path}]),
            );
            let got = prepared
                .mounts(container(&pod))
                .map(|m| m[0].host_path.clone())
                .map_err(|e| e.to_string());
            assert_eq!(got, expect, "{volume} {sub_path}");
        };
        let message = |volume: &str, sub_path: &str, reason: &str| {
            Err(format!(
                "volume \"{volume}\": subPath \"{sub_path}\" of container \"app\" {reason}"
            ))
        };
        let root = fs::canonicalize(scratch).unwrap();
        check(
            "scratch",
            "../x",
            message("scratch", "../x", "must not contain '..'"),
        );
        check(
            "scratch",
            "a/../../x",
            message("scratch", "a/../../x", "must not contain '..'"),
        );
        check(
            "scratch",
            "/etc",
            message("scratch", "/etc", "must not be an absolute path"),
        );
        check(
            "scratch",
            "escape",
            message("scratch", "escape", "resolves outside the volume"),
        );
        check(
            "scratch",
            "escape/new",
            message("scratch", "escape/new", "resolves outside the volume"),
        );
        assert!(!outside.join("new").exists(), "nothing made outside");
        check("scratch", "alias/x", Ok(root.join("inner/x")));
        check(
            "cfg",
            "missing",
            message("cfg", "missing", "does not exist"),
        );
        check(
            "cfg",
            "..data/../..",
            message("cfg", "..data/../..", "must not contain '..'"),
        );

        // subPathExpr expands against the container's environment.
        let pod = pod(
            volumes_spec.clone(),
            json!([{"name": "scratch", "mountPath": "/m", "subPathExpr": "logs/$(POD_NAME)"}]),
        );
        assert_eq!(
            prepared.mounts(container(&pod)).unwrap_err().to_string(),
            "volume \"scratch\": subPath \"logs/$(POD_NAME)\" of container \"app\" is a subPathExpr, which needs the container's environment"
        );
        let env = vec![("POD_NAME".to_owned(), "web-1".to_owned())];
        let mounts = prepared.mounts_with_env(container(&pod), &env).unwrap();
        assert_eq!(mounts[0].host_path, root.join("logs/web-1"));
    }

    #[tokio::test]
    async fn remove_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let precious = tmp.path().join("precious");
        fs::write(&precious, "keep me").unwrap();
        let precious_dir = tmp.path().join("precious-dir");
        fs::create_dir(&precious_dir).unwrap();
        fs::write(precious_dir.join("f"), "keep me too").unwrap();
        let host = tmp.path().join("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("f"), "host").unwrap();
        let pod_dir = tmp.path().join("pod");
        let pod = pod(
            json!([
                {"name": "scratch", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "settings"}},
                {"name": "host", "hostPath": {"path": host.to_string_lossy()}}
            ]),
            json!([]),
        );
        let volumes = prepare(&pod, &pod_dir, &source()).await.unwrap();
        let scratch = volumes.host_path("scratch").unwrap();
        symlink(&precious, scratch.join("link")).unwrap();
        symlink(&precious_dir, scratch.join("dir-link")).unwrap();
        fs::create_dir(scratch.join("sub")).unwrap();
        symlink(&precious_dir, scratch.join("sub/deeper")).unwrap();

        remove(&pod_dir).await.unwrap();
        assert!(!pod_dir.join("volumes").exists());
        assert_eq!(read(&precious), b"keep me");
        assert_eq!(read(&precious_dir.join("f")), b"keep me too");
        assert_eq!(read(&host.join("f")), b"host");
        remove(&pod_dir).await.unwrap();
    }
}
