//! Field checks shared by the configurations' `validate` methods; each
//! returns [`RuntimeError::InvalidArgument`] naming the field.

use std::path::{Component, Path};

use super::RuntimeError;

pub(super) fn not_empty(field: &str, value: &str) -> Result<(), RuntimeError> {
    if value.is_empty() {
        return Err(RuntimeError::invalid_argument(field, "must not be empty"));
    }
    Ok(())
}

/// A path on the node; must be absolute.
pub(super) fn absolute_path(field: &str, path: &Path) -> Result<(), RuntimeError> {
    if !path.is_absolute() {
        return Err(RuntimeError::invalid_argument(
            field,
            format!("{path:?} is not an absolute path"),
        ));
    }
    Ok(())
}

/// A path inside the container; must start with `/`.
pub(super) fn container_path(field: &str, path: &str) -> Result<(), RuntimeError> {
    if !path.starts_with('/') {
        return Err(RuntimeError::invalid_argument(
            field,
            format!("{path:?} is not an absolute path in the container"),
        ));
    }
    Ok(())
}

/// A file under some directory: relative, naming a file, no `..`.
pub(super) fn relative_file(field: &str, path: &Path) -> Result<(), RuntimeError> {
    let inside = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if path.file_name().is_none() || !inside {
        return Err(RuntimeError::invalid_argument(
            field,
            format!("{path:?} must be a relative path without `..`"),
        ));
    }
    Ok(())
}
