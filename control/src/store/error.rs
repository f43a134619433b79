//! The store's error type, shared by both backends so that the API server maps
//! each variant to one Kubernetes status in one place.

use std::path::PathBuf;

use super::{LeaseId, Revision};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `create` found the key already present.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key that exists.
        key: String,
    },

    /// `update` or `delete` found no such key.
    #[error("key {key} not found")]
    NotFound {
        /// The missing key.
        key: String,
    },

    /// A guarded write expected another mod revision than the key has.
    #[error("key {key} was modified: expected mod revision {expected}, found {actual}")]
    Conflict {
        /// The contended key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's actual mod revision.
        actual: Revision,
    },

    /// The requested revision is older than the compacted revision.
    #[error("revision {requested} has been compacted (history starts at {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        compacted: Revision,
    },

    /// The requested revision is newer than the store's newest.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The newest revision.
        current: Revision,
    },

    /// The lease does not exist (never granted, revoked or expired).
    #[error("lease {lease} not found")]
    LeaseNotFound {
        /// The lease asked for.
        lease: LeaseId,
    },

    /// A lease TTL must be at least one second.
    #[error("lease TTL must be at least 1s, got {ttl_ms}ms")]
    InvalidTtl {
        /// The TTL asked for, in milliseconds.
        ttl_ms: u128,
    },

    /// The store was closed.
    #[error("the store is closed")]
    Closed,

    /// The store file is held by another process.
    #[error(
        "store file {path} is in use by another process (is another skiff server running with this data dir?)"
    )]
    Locked {
        /// The store file.
        path: PathBuf,
    },

    /// The store file is damaged or is not a redb file at all.
    #[error("store file {path} is corrupt or not a skiff store; it was left untouched")]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What the storage engine reported.
        #[source]
        source: redb::DatabaseError,
    },

    /// The store file is a valid database that belongs to something else, or
    /// was written by an incompatible skiff version.
    #[error("store file {path} is not a skiff store ({reason}); it was left untouched")]
    Foreign {
        /// The store file.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },

    /// The store file lacks the value a key's newest version points to.
    #[error("store file is damaged: no value for key {key} at revision {revision}")]
    MissingVersion {
        /// The key.
        key: String,
        /// The revision its newest version should be at.
        revision: Revision,
    },

    /// The store file could not be opened or created.
    #[error("cannot open store file {path}")]
    Open {
        /// The store file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },

    /// The embedded storage engine failed.
    #[error("embedded store failure")]
    Embedded(#[source] std::sync::Arc<redb::Error>),

    /// etcd failed or could not be reached.
    #[error("etcd request failed")]
    Etcd(#[source] etcd_client::Error),

    /// etcd answered something the store did not expect.
    #[error("unexpected etcd response: {0}")]
    EtcdProtocol(&'static str),

    /// A `--store etcd://...` URL could not be parsed.
    #[error("invalid etcd store URL {url:?}: {reason}")]
    InvalidEtcdUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::Embedded(std::sync::Arc::new(error.into()))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
