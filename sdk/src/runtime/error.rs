//! The one error type of the runtime trait, shared by every runtime so that
//! the agent maps each variant to a pod condition in one place.

use std::fmt;
use std::path::PathBuf;

/// A boxed cause from a runtime's backend (a gRPC status, a wasmtime error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of runtime object an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A pod sandbox.
    Sandbox,
    /// A container.
    Container,
    /// A pulled image.
    Image,
}

impl ObjectKind {
    /// The lower-case name used in messages: `sandbox`, `container`, `image`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Sandbox => "sandbox",
            ObjectKind::Container => "container",
            ObjectKind::Image => "image",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a runtime call failed.
///
/// Bad input is refused before anything changes; a guest's misbehaviour is
/// not an error of the call but an exit of that container (see
/// [`ContainerStatus::reason`](super::ContainerStatus::reason)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The ID (or image reference) names nothing this runtime knows. Only
    /// calls that must read the object fail this way; stop and remove of a
    /// missing object succeed, as in CRI.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked up.
        kind: ObjectKind,
        /// The ID or reference asked for.
        id: String,
    },

    /// A sandbox for the same pod attempt, or a container with the same name
    /// and attempt in the sandbox, already exists.
    #[error("{kind} {name} already exists as {existing}")]
    AlreadyExists {
        /// What was to be created.
        kind: ObjectKind,
        /// The reserved name (pod `namespace/name` with uid and attempt, or
        /// the container's name and attempt).
        name: String,
        /// The ID of the object holding the name, so the caller can adopt it.
        existing: String,
    },

    /// The object exists but is in a state that does not allow the call
    /// (starting a container twice, creating a container in a stopped
    /// sandbox, stats of a container that is not running).
    #[error("cannot {operation} {kind} {id}: it is {state}")]
    InvalidState {
        /// The object's kind.
        kind: ObjectKind,
        /// The object's ID.
        id: String,
        /// Its current state, e.g. `exited`.
        state: &'static str,
        /// The refused operation, e.g. `start`.
        operation: &'static str,
    },

    /// A configuration field is malformed or names something the runtime
    /// does not serve (a relative mount path, an unknown runtime handler).
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The field's path in the configuration, e.g. `mounts[1].host_path`.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// The image is not something this runtime can run: a Linux image given
    /// to the Wasm runtime, a Wasm artifact given to containerd, a module
    /// that fails to compile, an unknown media type.
    #[error("image {reference} cannot run here: {reason}")]
    InvalidImage {
        /// The image reference.
        reference: String,
        /// Why it cannot run.
        reason: String,
    },

    /// A Wasm guest imports an interface or function the runtime does not
    /// provide on this node (returned by `create_container`, which links the
    /// guest before anything runs).
    #[error("image {reference} imports {import}, which this runtime does not provide")]
    UnsupportedImport {
        /// The image reference.
        reference: String,
        /// The missing import, e.g. `wasi:sockets/tcp@0.2.0` or `env::foo`.
        import: String,
    },

    /// Pulling an image failed: registry unreachable, authentication refused,
    /// no such repository or tag, an interrupted download.
    #[error("pulling image {reference} failed")]
    Pull {
        /// The image reference.
        reference: String,
        /// What the registry client reported.
        #[source]
        source: BoxError,
    },

    /// The runtime's backend cannot be reached (containerd's socket does not
    /// answer); the call may succeed later.
    #[error("the runtime is unavailable")]
    Unavailable {
        /// Why it could not be reached.
        #[source]
        source: BoxError,
    },

    /// Reading or writing a file of the runtime (state, logs, mount sources)
    /// failed.
    #[error("I/O failure on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },

    /// The runtime cannot do this at all, for any object (exec in a Wasm
    /// guest); the message is the reason, worded for the user, e.g. `exec
    /// is not supported for Wasm pods`.
    #[error("{reason}")]
    Unsupported {
        /// The refused operation, e.g. `exec`.
        operation: &'static str,
        /// Why, as a sentence the user sees.
        reason: String,
    },

    /// The engine behind the runtime (containerd, wasmtime) failed in a way
    /// none of the variants above describes; the source keeps its error.
    #[error("the runtime backend failed to {operation}")]
    Backend {
        /// What the runtime was doing, e.g. `create task`.
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl RuntimeError {
    /// Whether this is [`RuntimeError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound { .. })
    }

    /// Shorthand for [`RuntimeError::NotFound`].
    pub fn not_found(kind: ObjectKind, id: impl Into<String>) -> Self {
        RuntimeError::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// Shorthand for [`RuntimeError::InvalidArgument`].
    pub fn invalid_argument(field: impl Into<String>, message: impl Into<String>) -> Self {
        RuntimeError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`RuntimeError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[track_caller]
    fn check(error: RuntimeError, display: &str, source: Option<&str>) {
        assert_eq!(error.to_string(), display);
        assert_eq!(error.source().map(|s| s.to_string()).as_deref(), source);
    }

    #[test]
    fn displays_name_the_object_and_keep_causes_as_sources() {
        check(
            RuntimeError::not_found(ObjectKind::Container, "c1"),
            "container c1 not found",
            None,
        );
        check(
            RuntimeError::AlreadyExists {
                kind: ObjectKind::Sandbox,
                name: "default/web uid 1f attempt 0".into(),
                existing: "s9".into(),
            },
            "sandbox default/web uid 1f attempt 0 already exists as s9",
            None,
        );
        check(
            RuntimeError::InvalidState {
                kind: ObjectKind::Container,
                id: "c1".into(),
                state: "exited",
                operation: "start",
            },
            "cannot start container c1: it is exited",
            None,
        );
        check(
            RuntimeError::invalid_argument("mounts[0].host_path", "must be absolute"),
            "invalid mounts[0].host_path: must be absolute",
            None,
        );
        check(
            RuntimeError::InvalidImage {
                reference: "busybox:1.36".into(),
                reason: "not a Wasm artifact".into(),
            },
            "image busybox:1.36 cannot run here: not a Wasm artifact",
            None,
        );
        check(
            RuntimeError::UnsupportedImport {
                reference: "reg/app:1".into(),
                import: "wasi:sockets/tcp@0.2.0".into(),
            },
            "image reg/app:1 imports wasi:sockets/tcp@0.2.0, which this runtime does not provide",
            None,
        );
        check(
            RuntimeError::Pull {
                reference: "reg/app:1".into(),
                source: "401 Unauthorized".into(),
            },
            "pulling image reg/app:1 failed",
            Some("401 Unauthorized"),
        );
        check(
            RuntimeError::Unavailable {
                source: "connection refused".into(),
            },
            "the runtime is unavailable",
            Some("connection refused"),
        );
        check(
            RuntimeError::io(
                "/var/log/pods/x/0.log",
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            ),
            "I/O failure on /var/log/pods/x/0.log",
            Some("permission denied"),
        );
        check(
            RuntimeError::Unsupported {
                operation: "exec",
                reason: "exec is not supported for Wasm pods".into(),
            },
            "exec is not supported for Wasm pods",
            None,
        );
        check(
            RuntimeError::Backend {
                operation: "create task",
                source: "shim died".into(),
            },
            "the runtime backend failed to create task",
            Some("shim died"),
        );
    }

    #[test]
    fn is_not_found_only_for_not_found() {
        assert!(RuntimeError::not_found(ObjectKind::Image, "x").is_not_found());
        assert!(!RuntimeError::invalid_argument("name", "empty").is_not_found());
    }
}
