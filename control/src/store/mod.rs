//! The store: revisioned keys that only the API server opens.
//!
//! One trait, [`Store`], with two backends that pass one conformance suite:
//! [`EmbeddedStore`] (a single redb file, the default) and [`EtcdStore`]
//! (an etcd 3.4+ cluster). The semantics are etcd's, trimmed to what the API
//! server needs:
//!
//! - every successful write takes the next cluster-wide [`Revision`]; a key
//!   remembers the revision that created it and the one that last changed it;
//! - writes are guarded: [`Store::create`] only if absent, [`Store::update`]
//!   and [`Store::delete`] only if the key's mod revision is the expected one;
//! - [`Store::range`] reads a key prefix at the newest or at a past revision,
//!   in pages (`limit` plus a `start_after` continuation key);
//! - [`Store::watch`] streams every change under a prefix from a revision on,
//!   in revision order, with no gaps and no duplicates, each with the value it
//!   replaced;
//! - [`Store::compact`] forgets history before a revision; reading or watching
//!   from before it fails with [`StoreError::Compacted`] (the API answers 410);
//! - leases with a TTL delete the keys attached to them when they expire.

mod embedded;
mod error;
mod etcd;

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use embedded::{EmbeddedConfig, EmbeddedStore};
pub use error::StoreError;
pub use etcd::{EtcdConfig, EtcdStore};

/// A position in the store's history. Every successful write takes the next
/// one; the API server exposes it as `metadata.resourceVersion`.
pub type Revision = i64;

/// Identifies a lease granted by [`Store::grant_lease`].
pub type LeaseId = i64;

/// The result type of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of changes returned by [`Store::watch`]. It ends with an error
/// item when the watch cannot go on (for example its revision was compacted
/// while it lagged behind), and ends without one when the store closes.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// A key with its value and revision bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, for example `/registry/pods/default/web-1`.
    pub key: String,
    /// The stored bytes; empty in the `kv` of a delete event.
    pub value: Bytes,
    /// The revision that created this incarnation of the key.
    pub create_revision: Revision,
    /// The revision of the last change to the key (for a delete event, the
    /// revision of the delete).
    pub mod_revision: Revision,
    /// How many times this incarnation was written, starting at 1.
    pub version: i64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// Whether a watch event stored or removed a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted, explicitly or by lease expiry.
    Delete,
}

/// One change seen by a watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventKind,
    /// The key after the change. For a delete it carries the key and the
    /// revision of the delete, with an empty value.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev: Option<KeyValue>,
}

impl WatchEvent {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// What [`Store::range`] should read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// Every key starting with this prefix is in range.
    pub prefix: String,
    /// Read at this revision; `None` reads the newest state.
    pub revision: Option<Revision>,
    /// At most this many keys; `None` or `Some(0)` for all (as in Kubernetes).
    pub limit: Option<usize>,
    /// Continue after this key (exclusive), as returned by a previous page.
    pub start_after: Option<String>,
}

impl RangeRequest {
    /// All keys under `prefix`, newest state.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// Read at a past revision instead of the newest state.
    pub fn at_revision(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }

    /// Return at most `limit` keys.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue after `key` (exclusive).
    pub fn start_after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }
}

/// The keys [`Store::range`] found, in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    /// The keys found.
    pub kvs: Vec<KeyValue>,
    /// The revision the read was made at: pass it back with `start_after`
    /// set to the last key to read the next page from the same snapshot.
    pub revision: Revision,
    /// Whether more keys are in range after the last one returned.
    pub more: bool,
}

/// The outcome of a successful [`Store::delete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The revision of the delete.
    pub revision: Revision,
    /// The key as it was just before the delete.
    pub prev: KeyValue,
}

/// Revisioned key-value storage with guarded writes, history, watches and
/// leases. See the module documentation for the semantics both backends
/// share.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The newest state of one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys under a prefix, at the newest or a past revision, in pages.
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse>;

    /// Stores `value` at `key` only if the key does not exist
    /// ([`StoreError::AlreadyExists`] otherwise).
    async fn create(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<KeyValue>;

    /// Replaces the value at `key` only if its mod revision is `expected`
    /// ([`StoreError::Conflict`] otherwise, [`StoreError::NotFound`] if the
    /// key does not exist).
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue>;

    /// Removes `key`, only if its mod revision is `expected` when one is given.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted>;

    /// Streams every change under `prefix` with a revision of at least
    /// `from`; `from == 0` starts after the newest revision.
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream>;

    /// The newest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Forgets history before `revision`: reads at and watches from earlier
    /// revisions fail with [`StoreError::Compacted`] afterwards.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Grants a lease that expires `ttl` after its last keep-alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Renews a lease for its full TTL; returns that TTL.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration>;

    /// Ends a lease now, deleting the keys attached to it.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// Stops accepting requests, lets acknowledged writes reach disk and ends
    /// every watch. Later calls fail with [`StoreError::Closed`].
    async fn close(&self) -> Result<()>;
}
