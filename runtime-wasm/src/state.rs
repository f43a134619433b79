//! The runtime's records on disk: one JSON file per sandbox and per
//! container under the state directory, rewritten atomically on every
//! change, so that a runtime opened again (after an agent restart) lists
//! what the last one created, with the exit codes of what ended.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use skiff_sdk::runtime::{
    ContainerConfig, ContainerId, ContainerStatus, RuntimeError, SandboxConfig, SandboxId,
    SandboxStatus,
};

/// A sandbox as recorded: its status without containers, and the
/// configuration it was created with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub(crate) status: SandboxStatus,
    pub(crate) config: SandboxConfig,
}

/// A container as recorded: its status, its configuration and what its
/// image resolved to when it was created.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub(crate) status: ContainerStatus,
    pub(crate) config: ContainerConfig,
    pub(crate) wasm_digest: String,
    pub(crate) wasm_path: PathBuf,
}

/// The directory of records.
#[derive(Debug)]
pub(crate) struct Records {
    sandboxes: PathBuf,
    containers: PathBuf,
}

impl Records {
    pub(crate) fn open(state_dir: &Path) -> Result<Self, RuntimeError> {
        let records = Records {
            sandboxes: state_dir.join("sandboxes"),
            containers: state_dir.join("containers"),
        };
        for dir in [&records.sandboxes, &records.containers] {
            std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
        }
        Ok(records)
    }

    pub(crate) fn save_sandbox(&self, record: &SandboxRecord) -> Result<(), RuntimeError> {
        let path = self.sandboxes.join(format!("{}.json", record.status.id));
        write_json(&path, record)
    }

    pub(crate) fn save_container(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        let path = self.containers.join(format!("{}.json", record.status.id));
        write_json(&path, record)
    }

    pub(crate) fn remove_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        remove_file(&self.sandboxes.join(format!("{id}.json")))
    }

    pub(crate) fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        remove_file(&self.containers.join(format!("{id}.json")))
    }

    /// Every record on disk. Files that do not parse (a crash mid-write
    /// leaves only temporary files, which are skipped) are logged and left.
    pub(crate) fn load(&self) -> Result<(Vec<SandboxRecord>, Vec<ContainerRecord>), RuntimeError> {
        Ok((read_all(&self.sandboxes)?, read_all(&self.containers)?))
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    let json = serde_json::to_vec(value).map_err(|e| RuntimeError::Backend {
        operation: "encode a record",
        source: e.into(),
    })?;
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, json).map_err(|e| RuntimeError::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| RuntimeError::io(path, e))
}

fn remove_file(path: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::io(path, e)),
        _ => Ok(()),
    }
}

fn read_all<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Vec<T>, RuntimeError> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| RuntimeError::io(dir, e))? {
        let path = entry.map_err(|e| RuntimeError::io(dir, e))?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| RuntimeError::io(&path, e))?;
        match serde_json::from_slice(&bytes) {
            Ok(record) => records.push(record),
            Err(error) => tracing::warn!(path = %path.display(), %error, "record skipped"),
        }
    }
    Ok(records)
}
