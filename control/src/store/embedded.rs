//! The embedded store: one redb file in the data dir, crash-safe, with group
//! commit.
//!
//! All writes go through one writer thread. It takes every request waiting in
//! its queue, applies them in one redb write transaction (each successful
//! write takes the next revision), commits with one fsync and only then
//! answers, so concurrent writers share an fsync and an acknowledged write is
//! on disk. Reads run on tokio's blocking pool over redb's MVCC snapshots.
//!
//! Values live in one place, the log (`log`): revision → record of the change
//! made at that revision (put or tombstone, time, create revision, version,
//! lease, the revision of the key's previous log entry in the same
//! incarnation, key, value). Revisions grow, so a batch appends to the log's
//! last pages instead of copying a page per write all over a tree. The newest
//! state (`current`) maps each live key to the revision of its log record.
//!
//! - A read at the newest revision follows `current` into the log.
//! - A watch catching up from the file reads the log in order; each record
//!   has the event, and its previous-entry revision leads to the value it
//!   replaced.
//! - A read at a past revision R reads the log after R: a key's first entry
//!   after R names, through its previous-entry revision, the version the key
//!   had at R (none for a create); keys the log does not name after R are as
//!   `current` has them. Its cost grows with the changes since R, which
//!   retention bounds.
//!
//! Compaction to C walks the log before C and removes, for each entry, the
//! version it superseded, and each tombstone itself. What remains is the
//! state at C, every change from C on, and the versions those changes
//! replaced. It runs in chunks, each its own transaction, and automatically,
//! bounded by a number of revisions and an age.
//!
//! A maintenance thread expires leases (deleting their keys through the
//! writer) and triggers automatic compaction.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{
    Database, DatabaseError, Durability, ReadTransaction, ReadableDatabase, ReadableTable,
    StorageError, TableDefinition, TableHandle, WriteTransaction,
};
use tokio::sync::{broadcast, mpsc as tokio_mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    Deleted, EventKind, KeyValue, LeaseId, RangeRequest, RangeResponse, Result, Revision, Store,
    StoreError, WatchEvent, WatchStream,
};

/// Meta entries: magic, format, revision, compacted, lease sequence.
const META: TableDefinition<&str, u64> = TableDefinition::new("skiff_meta");
/// The newest state: key → revision of its live version in `log`.
const CURRENT: TableDefinition<&str, u64> = TableDefinition::new("skiff_current");
/// Every retained change: revision → record (see [`Record`]).
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("skiff_log");
/// Live leases: id → TTL in milliseconds.
const LEASES: TableDefinition<i64, u64> = TableDefinition::new("skiff_leases");
/// Keys attached to leases: (lease, key) → ().
const LEASE_KEYS: TableDefinition<(i64, &str), ()> = TableDefinition::new("skiff_lease_keys");

const MAGIC_KEY: &str = "magic";
const FORMAT_KEY: &str = "format";
const REVISION_KEY: &str = "revision";
const COMPACTED_KEY: &str = "compacted";
const LEASE_SEQ_KEY: &str = "lease_seq";
/// "skiff" in ASCII: marks a file as a skiff store.
const MAGIC: u64 = 0x73_6b_69_66_66;
/// The on-disk layout version this code reads and writes.
const FORMAT: u64 = 1;

/// How many log entries one compaction transaction processes, so that a large
/// compaction never stalls writers for long.
const COMPACTION_CHUNK: u64 = 10_000;
/// How many log entries one watch catch-up read returns.
const WATCH_READ_CHUNK: u64 = 1_000;
/// Committed batches kept for watchers that follow in memory; a watcher that
/// falls further behind reads the history from the file instead.
const EVENT_BUFFER: usize = 1_024;
/// Events buffered per watch stream before the watcher waits for its reader.
const WATCH_STREAM_BUFFER: usize = 256;

/// Settings of an [`EmbeddedStore`].
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    path: PathBuf,
    retain_revisions: u64,
    retain_age: Duration,
    compaction_interval: Duration,
    max_batch: usize,
    maintenance_tick: Duration,
}

impl EmbeddedConfig {
    /// A store in the file at `path`, with default retention: the newest
    /// 100,000 revisions and at most 5 minutes of history (the API server's
    /// usual compaction window), checked every 30 s.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            retain_revisions: 100_000,
            retain_age: Duration::from_secs(300),
            compaction_interval: Duration::from_secs(30),
            max_batch: 1_024,
            maintenance_tick: Duration::from_millis(100),
        }
    }

    /// Keep at most this many revisions of history.
    pub fn retain_revisions(mut self, revisions: u64) -> Self {
        self.retain_revisions = revisions.max(1);
        self
    }

    /// Keep at most this much history by age.
    pub fn retain_age(mut self, age: Duration) -> Self {
        self.retain_age = age;
        self
    }

    /// How often automatic compaction checks the retention bounds.
    pub fn compaction_interval(mut self, interval: Duration) -> Self {
        self.compaction_interval = interval;
        self
    }

    /// At most this many writes share one commit.
    pub fn max_batch(mut self, writes: usize) -> Self {
        self.max_batch = writes.max(1);
        self
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The default store: a single redb file, see the module documentation.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
}

/// State shared by the handle, the writer, the maintenance thread and
/// watchers.
struct Shared {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
    ops: RwLock<Option<Sender<Op>>>,
    events: RwLock<Option<broadcast::Sender<Arc<[WatchEvent]>>>>,
    /// The newest committed revision.
    revision: AtomicI64,
    /// The oldest revision still readable.
    compacted: AtomicI64,
    /// Write transactions committed since open.
    commits: AtomicU64,
    leases: Mutex<HashMap<LeaseId, LeaseClock>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop_maintenance: Mutex<Option<Sender<()>>>,
}

/// When a lease expires unless kept alive.
struct LeaseClock {
    ttl: Duration,
    deadline: Instant,
}

enum Op {
    Write(WriteOp, oneshot::Sender<Result<Outcome>>),
    Compact(Revision, oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<()>),
}

enum WriteOp {
    Create {
        key: String,
        value: Bytes,
        lease: Option<LeaseId>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    GrantLease {
        ttl: Duration,
    },
    RevokeLease {
        lease: LeaseId,
    },
}

enum Outcome {
    Written(KeyValue),
    Deleted(Deleted),
    Granted(LeaseId),
    Revoked,
}

/// A lease change to mirror in memory once its transaction committed.
enum LeaseChange {
    Granted(LeaseId, Duration),
    Revoked(LeaseId),
}

impl EmbeddedStore {
    /// Opens the store file, creating it if it does not exist. A file that
    /// is not a skiff store, or is damaged, is reported and left untouched;
    /// a file held by another process fails fast with [`StoreError::Locked`].
    pub fn open(config: EmbeddedConfig) -> Result<Self> {
        let path = config.path.clone();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        }
        let db = open_database(&path)?;
        let Recovered {
            revision,
            compacted,
            leases,
        } = initialize(&db, &path)?;
        let now = Instant::now();
        let leases = leases
            .into_iter()
            .map(|(id, ttl)| {
                (
                    id,
                    LeaseClock {
                        ttl,
                        deadline: now + ttl,
                    },
                )
            })
            .collect();

        let db = Arc::new(db);
        let (ops_tx, ops_rx) = mpsc::channel();
        let (events_tx, _) = broadcast::channel(EVENT_BUFFER);
        let (stop_tx, stop_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            path,
            db: RwLock::new(Some(db.clone())),
            ops: RwLock::new(Some(ops_tx.clone())),
            events: RwLock::new(Some(events_tx.clone())),
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            commits: AtomicU64::new(0),
            leases: Mutex::new(leases),
            threads: Mutex::new(Vec::new()),
            stop_maintenance: Mutex::new(Some(stop_tx)),
        });

        let writer = Writer {
            shared: shared.clone(),
            db,
            events: events_tx,
            revision,
            max_batch: config.max_batch,
        };
        let writer = std::thread::Builder::new()
            .name("skiff-store-writer".into())
            .spawn(move || writer.run(ops_rx))
            .map_err(|source| StoreError::Open {
                path: config.path.clone(),
                source,
            })?;
        let maintenance = Maintenance {
            shared: shared.clone(),
            ops: ops_tx,
            config: config.clone(),
        };
        let maintenance = std::thread::Builder::new()
            .name("skiff-store-maintenance".into())
            .spawn(move || maintenance.run(stop_rx))
            .map_err(|source| StoreError::Open {
                path: config.path.clone(),
                source,
            })?;
        lock(&shared.threads).extend([writer, maintenance]);
        tracing::debug!(path = %shared.path.display(), revision, compacted, "embedded store open");
        Ok(Self { shared })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The oldest revision that can still be read or watched from.
    pub fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::Acquire)
    }

    /// How many write transactions (each one fsync) were committed since
    /// open; with concurrent writers it grows slower than the write count.
    pub fn commit_count(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    async fn submit(&self, op: WriteOp) -> Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.shared.send(Op::Write(op, reply))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    {
        let db = self.shared.database()?;
        tokio::task::spawn_blocking(move || f(&db.begin_read()?))
            .await
            .map_err(|_| StoreError::Closed)?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Without an explicit close, let the writer drain and exit on its own.
        if let Some(ops) = write_lock(&self.shared.ops).take() {
            let (reply, _) = oneshot::channel();
            let _ = ops.send(Op::Shutdown(reply));
        }
        write_lock(&self.shared.events).take();
        lock(&self.shared.stop_maintenance).take();
    }
}

impl Shared {
    fn send(&self, op: Op) -> Result<()> {
        let ops = read_lock(&self.ops).clone().ok_or(StoreError::Closed)?;
        ops.send(op).map_err(|_| StoreError::Closed)
    }

    fn database(&self) -> Result<Arc<Database>> {
        read_lock(&self.db).clone().ok_or(StoreError::Closed)
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.read(move |txn| newest(&txn.open_table(CURRENT)?, &txn.open_table(LOG)?, &key))
            .await
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.read(move |txn| range_at(txn, &request)).await
    }

    async fn create(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<KeyValue> {
        let op = WriteOp::Create {
            key: key.to_owned(),
            value,
            lease,
        };
        match self.submit(op).await? {
            Outcome::Written(kv) => Ok(kv),
            _ => unreachable!("create answers with the written key"),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue> {
        let op = WriteOp::Update {
            key: key.to_owned(),
            value,
            expected,
            lease,
        };
        match self.submit(op).await? {
            Outcome::Written(kv) => Ok(kv),
            _ => unreachable!("update answers with the written key"),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        let op = WriteOp::Delete {
            key: key.to_owned(),
            expected,
        };
        match self.submit(op).await? {
            Outcome::Deleted(deleted) => Ok(deleted),
            _ => unreachable!("delete answers with the deleted key"),
        }
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        // Subscribe before reading the revision so that nothing committed in
        // between is missed: it is either in the file or in the channel.
        let events = read_lock(&self.shared.events)
            .as_ref()
            .ok_or(StoreError::Closed)?
            .subscribe();
        let current = self.shared.revision.load(Ordering::Acquire);
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        let from = if from <= 0 { current + 1 } else { from };
        if from < compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compacted,
            });
        }
        let (tx, rx) = tokio_mpsc::channel(WATCH_STREAM_BUFFER);
        let watcher = Watcher {
            shared: self.shared.clone(),
            prefix: prefix.to_owned(),
            next: from,
            events,
            out: tx,
        };
        tokio::spawn(watcher.run());
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        if read_lock(&self.shared.ops).is_none() {
            return Err(StoreError::Closed);
        }
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.shared.send(Op::Compact(revision, reply))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        if ttl < Duration::from_secs(1) {
            return Err(StoreError::InvalidTtl {
                ttl_ms: ttl.as_millis(),
            });
        }
        match self.submit(WriteOp::GrantLease { ttl }).await? {
            Outcome::Granted(lease) => Ok(lease),
            _ => unreachable!("grant answers with the lease"),
        }
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        if read_lock(&self.shared.ops).is_none() {
            return Err(StoreError::Closed);
        }
        let mut leases = lock(&self.shared.leases);
        let clock = leases
            .get_mut(&lease)
            .ok_or(StoreError::LeaseNotFound { lease })?;
        clock.deadline = Instant::now() + clock.ttl;
        Ok(clock.ttl)
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        match self.submit(WriteOp::RevokeLease { lease }).await? {
            Outcome::Revoked => Ok(()),
            _ => unreachable!("revoke answers with revoked"),
        }
    }

    async fn close(&self) -> Result<()> {
        let Some(ops) = write_lock(&self.shared.ops).take() else {
            return Ok(());
        };
        let (reply, done) = oneshot::channel();
        // The writer answers everything queued before the shutdown request.
        if ops.send(Op::Shutdown(reply)).is_ok() {
            let _ = done.await;
        }
        drop(ops);
        write_lock(&self.shared.events).take();
        lock(&self.shared.stop_maintenance).take();
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        write_lock(&self.shared.db).take();
        tracing::debug!(path = %self.shared.path.display(), "embedded store closed");
        Ok(())
    }
}

/// Opens or creates the redb file, mapping failures to errors that name it.
///
/// An existing file is first checked through a read-only handle, which never
/// writes, so that a foreign database is refused untouched. A file that was
/// not shut down cleanly cannot be checked read-only; it is opened for
/// writing, which repairs it, and checked afterwards.
fn open_database(path: &Path) -> Result<Database> {
    let exists = std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if exists {
        match Database::builder().open_read_only(path) {
            Ok(db) => {
                check_tables(&db, path)?;
                drop(db);
            }
            Err(DatabaseError::RepairAborted) => {}
            Err(error) => return Err(open_error(path, error)),
        }
    }
    let db = Database::builder()
        .create(path)
        .map_err(|error| open_error(path, error))?;
    check_tables(&db, path)?;
    Ok(db)
}

fn open_error(path: &Path, error: DatabaseError) -> StoreError {
    let path = path.to_owned();
    match error {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path },
        DatabaseError::Storage(StorageError::Io(source))
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::IsADirectory
            ) =>
        {
            StoreError::Open { path, source }
        }
        source => StoreError::Corrupt { path, source },
    }
}

/// Refuses a database that has tables but not skiff's, or skiff's of another
/// format.
fn check_tables(db: &impl ReadableDatabase, path: &Path) -> Result<()> {
    let foreign = |reason: String| StoreError::Foreign {
        path: path.to_owned(),
        reason,
    };
    let read = db.begin_read()?;
    let tables: Vec<String> = read.list_tables()?.map(|t| t.name().to_owned()).collect();
    if tables.is_empty() {
        return Ok(());
    }
    if !tables.iter().any(|t| t == META.name()) {
        return Err(foreign(format!(
            "it is a redb database with other tables: {}",
            tables.join(", ")
        )));
    }
    let meta = read.open_table(META)?;
    if meta.get(MAGIC_KEY)?.map(|v| v.value()) != Some(MAGIC) {
        return Err(foreign("its marker is missing".into()));
    }
    match meta.get(FORMAT_KEY)?.map(|v| v.value()) {
        Some(FORMAT) => Ok(()),
        other => Err(foreign(format!(
            "its format is {other:?}, this skiff reads format {FORMAT}"
        ))),
    }
}

/// What a store file holds besides keys: revision, compacted revision, leases.
struct Recovered {
    revision: Revision,
    compacted: Revision,
    leases: Vec<(LeaseId, Duration)>,
}

/// Makes an empty database a skiff store, or reads back what an existing one
/// recorded.
fn initialize(db: &Database, path: &Path) -> Result<Recovered> {
    let read = db.begin_read()?;
    let fresh = read.list_tables()?.next().is_none();
    drop(read);
    if fresh {
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(MAGIC_KEY, MAGIC)?;
            meta.insert(FORMAT_KEY, FORMAT)?;
            meta.insert(REVISION_KEY, 1)?;
            meta.insert(COMPACTED_KEY, 0)?;
            meta.insert(LEASE_SEQ_KEY, 0)?;
            txn.open_table(CURRENT)?;
            txn.open_table(LOG)?;
            txn.open_table(LEASES)?;
            txn.open_table(LEASE_KEYS)?;
        }
        txn.commit()?;
        return Ok(Recovered {
            revision: 1,
            compacted: 0,
            leases: Vec::new(),
        });
    }
    let read = db.begin_read()?;
    let meta = read.open_table(META)?;
    let get = |key: &str| -> Result<Option<u64>> { Ok(meta.get(key)?.map(|v| v.value())) };
    let revision = get(REVISION_KEY)?.ok_or_else(|| StoreError::Foreign {
        path: path.to_owned(),
        reason: "it records no revision".into(),
    })?;
    let compacted = get(COMPACTED_KEY)?.unwrap_or(0);
    let leases = read
        .open_table(LEASES)?
        .iter()?
        .map(|entry| {
            let (id, ttl) = entry?;
            Ok((id.value(), Duration::from_millis(ttl.value())))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Recovered {
        revision: revision as Revision,
        compacted: compacted as Revision,
        leases,
    })
}

/// The single writer: batches queued writes into one commit each.
struct Writer {
    shared: Arc<Shared>,
    db: Arc<Database>,
    events: broadcast::Sender<Arc<[WatchEvent]>>,
    /// The newest committed revision.
    revision: Revision,
    max_batch: usize,
}

impl Writer {
    fn run(mut self, ops: Receiver<Op>) {
        let mut shutdown = None;
        while shutdown.is_none() {
            let Ok(first) = ops.recv() else { break };
            let mut writes = Vec::new();
            let mut pending = Some(first);
            while let Some(op) = pending.take() {
                match op {
                    Op::Write(write, reply) => writes.push((write, reply)),
                    Op::Compact(revision, reply) => {
                        // Keep order: commit earlier writes before compacting.
                        self.commit(std::mem::take(&mut writes));
                        let _ = reply.send(self.compact(revision));
                    }
                    Op::Shutdown(reply) => {
                        shutdown = Some(reply);
                        break;
                    }
                }
                if writes.len() < self.max_batch {
                    pending = ops.try_recv().ok();
                }
            }
            self.commit(writes);
        }
        // Answer what raced with the shutdown; the database closes when the
        // last handle to it goes.
        drop(ops);
        if let Some(reply) = shutdown {
            let _ = reply.send(());
        }
        tracing::debug!(path = %self.shared.path.display(), "store writer stopped");
    }

    /// Applies a batch of writes in one transaction and answers each.
    fn commit(&mut self, writes: Vec<(WriteOp, oneshot::Sender<Result<Outcome>>)>) {
        if writes.is_empty() {
            return;
        }
        let mut batch = Batch {
            revision: self.revision,
            now_ms: unix_millis(),
            events: Vec::with_capacity(writes.len()),
            lease_changes: Vec::new(),
        };
        let mut answers = Vec::with_capacity(writes.len());
        let committed = (|| -> Result<()> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::Immediate)
                .map_err(|e| StoreError::from(redb::Error::from(e)))?;
            {
                let mut tables = Tables::open(&txn)?;
                for (op, reply) in writes {
                    let result = batch.apply(&mut tables, op);
                    if let Err(StoreError::Embedded(e)) = result {
                        // A storage failure dooms the whole transaction.
                        answers.push((reply, Err(StoreError::Embedded(e.clone()))));
                        return Err(StoreError::Embedded(e));
                    }
                    answers.push((reply, result));
                }
                tables.meta.insert(REVISION_KEY, batch.revision as u64)?;
            }
            txn.commit()?;
            Ok(())
        })();
        match committed {
            Ok(()) => {
                self.revision = batch.revision;
                self.shared.revision.store(self.revision, Ordering::Release);
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                {
                    let mut leases = lock(&self.shared.leases);
                    for change in batch.lease_changes {
                        match change {
                            LeaseChange::Granted(id, ttl) => {
                                let deadline = Instant::now() + ttl;
                                leases.insert(id, LeaseClock { ttl, deadline });
                            }
                            LeaseChange::Revoked(id) => {
                                leases.remove(&id);
                            }
                        }
                    }
                }
                if !batch.events.is_empty() {
                    let _ = self.events.send(Arc::from(batch.events));
                }
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "store commit failed");
                let shared_error = match &error {
                    StoreError::Embedded(e) => e.clone(),
                    _ => Arc::new(redb::Error::TransactionInProgress),
                };
                for (reply, _) in answers {
                    let _ = reply.send(Err(StoreError::Embedded(shared_error.clone())));
                }
            }
        }
    }

    /// Compacts history before `target`, in chunks, each its own commit.
    fn compact(&mut self, target: Revision) -> Result<()> {
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if target > self.revision {
            return Err(StoreError::FutureRevision {
                requested: target,
                current: self.revision,
            });
        }
        if target <= compacted {
            return Err(StoreError::Compacted {
                requested: target,
                compacted,
            });
        }
        let mut floor = compacted.max(0) as u64;
        let target = target as u64;
        while floor < target {
            let upto = target.min(floor + COMPACTION_CHUNK);
            let txn = self.db.begin_write()?;
            compact_chunk(&txn, floor, upto)?;
            txn.commit()?;
            self.shared
                .compacted
                .store(upto as Revision, Ordering::Release);
            floor = upto;
        }
        tracing::debug!(revision = target, "store compacted");
        Ok(())
    }
}

/// Drops history in `[floor, upto)`: for each log entry there, the version it
/// superseded (its previous entry) and, for a tombstone, the entry itself.
/// What remains answers reads at `upto` and later, and gives every event from
/// `upto` on its previous value.
fn compact_chunk(txn: &WriteTransaction, floor: u64, upto: u64) -> Result<()> {
    let mut log = txn.open_table(LOG)?;
    let entries: Vec<(u64, u64, bool)> = log
        .range(floor..upto)?
        .map(|entry| {
            let (revision, record) = entry?;
            let record = Record(record.value());
            Ok((
                revision.value(),
                record.prev_revision(),
                record.is_tombstone(),
            ))
        })
        .collect::<Result<_>>()?;
    for (revision, prev_revision, tombstone) in entries {
        if prev_revision > 0 {
            log.remove(prev_revision)?;
        }
        if tombstone {
            log.remove(revision)?;
        }
    }
    txn.open_table(META)?.insert(COMPACTED_KEY, upto)?;
    Ok(())
}

/// One write transaction in the making.
struct Batch {
    revision: Revision,
    now_ms: u64,
    events: Vec<WatchEvent>,
    lease_changes: Vec<LeaseChange>,
}

impl Batch {
    fn apply(&mut self, t: &mut Tables<'_>, op: WriteOp) -> Result<Outcome> {
        match op {
            WriteOp::Create { key, value, lease } => {
                if t.current.get(key.as_str())?.is_some() {
                    return Err(StoreError::AlreadyExists { key });
                }
                t.check_lease(lease)?;
                let revision = self.revision + 1;
                let kv = KeyValue {
                    key,
                    value,
                    create_revision: revision,
                    mod_revision: revision,
                    version: 1,
                    lease,
                };
                self.put(t, &kv, None)?;
                Ok(Outcome::Written(kv))
            }
            WriteOp::Update {
                key,
                value,
                expected,
                lease,
            } => {
                // The guard needs only the index; the log is read on success.
                let Some(actual) = t.current.get(key.as_str())?.map(|v| v.value()) else {
                    return Err(StoreError::NotFound { key });
                };
                if actual as Revision != expected {
                    return Err(StoreError::Conflict {
                        key,
                        expected,
                        actual: actual as Revision,
                    });
                }
                t.check_lease(lease)?;
                let prev = t.version(key.clone(), actual)?;
                let revision = self.revision + 1;
                let kv = KeyValue {
                    key,
                    value,
                    create_revision: prev.create_revision,
                    mod_revision: revision,
                    version: prev.version + 1,
                    lease,
                };
                self.put(t, &kv, Some(prev))?;
                Ok(Outcome::Written(kv))
            }
            WriteOp::Delete { key, expected } => {
                let Some(actual) = t.current.get(key.as_str())?.map(|v| v.value()) else {
                    return Err(StoreError::NotFound { key });
                };
                if let Some(expected) = expected.filter(|e| *e != actual as Revision) {
                    return Err(StoreError::Conflict {
                        key,
                        expected,
                        actual: actual as Revision,
                    });
                }
                let prev = t.version(key, actual)?;
                let revision = self.remove(t, prev.clone())?;
                Ok(Outcome::Deleted(Deleted { revision, prev }))
            }
            WriteOp::GrantLease { ttl } => {
                let id = t.meta.get(LEASE_SEQ_KEY)?.map(|v| v.value()).unwrap_or(0) + 1;
                t.meta.insert(LEASE_SEQ_KEY, id)?;
                let id = id as LeaseId;
                t.leases.insert(id, ttl.as_millis() as u64)?;
                self.lease_changes.push(LeaseChange::Granted(id, ttl));
                Ok(Outcome::Granted(id))
            }
            WriteOp::RevokeLease { lease } => {
                if t.leases.remove(lease)?.is_none() {
                    return Err(StoreError::LeaseNotFound { lease });
                }
                let keys: Vec<String> = t
                    .lease_keys
                    .range((lease, "")..(lease.saturating_add(1), ""))?
                    .map(|entry| Ok(entry?.0.value().1.to_owned()))
                    .collect::<Result<_>>()?;
                for key in keys {
                    if let Some(prev) = t.current(&key)? {
                        self.remove(t, prev)?;
                    }
                }
                self.lease_changes.push(LeaseChange::Revoked(lease));
                Ok(Outcome::Revoked)
            }
        }
    }

    /// Writes `kv` (whose mod revision is the next revision) as the newest
    /// version of its key; `prev` is the version it replaces, if any.
    fn put(&mut self, t: &mut Tables<'_>, kv: &KeyValue, prev: Option<KeyValue>) -> Result<()> {
        let revision = kv.mod_revision;
        let key = kv.key.as_str();
        t.current.insert(key, revision as u64)?;
        let header = RecordHeader {
            tombstone: false,
            unix_ms: self.now_ms,
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
            prev_revision: prev.as_ref().map_or(0, |p| p.mod_revision as u64),
        };
        header.append(&mut t.log, revision as u64, key, &kv.value)?;
        let old_lease = prev.as_ref().and_then(|p| p.lease);
        if old_lease != kv.lease {
            let lease_keys = &mut t.lease_keys;
            if let Some(old) = old_lease {
                lease_keys.remove((old, key))?;
            }
            if let Some(new) = kv.lease {
                lease_keys.insert((new, key), ())?;
            }
        }
        self.revision = revision;
        self.events.push(WatchEvent {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev,
        });
        Ok(())
    }

    /// Deletes the key `prev` describes at the next revision.
    fn remove(&mut self, t: &mut Tables<'_>, prev: KeyValue) -> Result<Revision> {
        let revision = self.revision + 1;
        let key = prev.key.as_str();
        t.current.remove(key)?;
        let header = RecordHeader {
            tombstone: true,
            unix_ms: self.now_ms,
            create_revision: 0,
            version: 0,
            lease: None,
            prev_revision: prev.mod_revision as u64,
        };
        header.append(&mut t.log, revision as u64, key, &[])?;
        if let Some(lease) = prev.lease {
            t.lease_keys.remove((lease, key))?;
        }
        self.revision = revision;
        self.events.push(WatchEvent {
            kind: EventKind::Delete,
            kv: tombstone(prev.key.clone(), revision),
            prev: Some(prev),
        });
        Ok(revision)
    }
}

/// The `kv` of a delete event: the key and the revision of the delete.
fn tombstone(key: String, revision: Revision) -> KeyValue {
    KeyValue {
        key,
        value: Bytes::new(),
        create_revision: 0,
        mod_revision: revision,
        version: 0,
        lease: None,
    }
}

/// The tables of one write transaction, opened once per batch.
struct Tables<'txn> {
    meta: redb::Table<'txn, &'static str, u64>,
    current: redb::Table<'txn, &'static str, u64>,
    log: redb::Table<'txn, u64, &'static [u8]>,
    leases: redb::Table<'txn, i64, u64>,
    lease_keys: redb::Table<'txn, (i64, &'static str), ()>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        Ok(Self {
            meta: txn.open_table(META)?,
            current: txn.open_table(CURRENT)?,
            log: txn.open_table(LOG)?,
            leases: txn.open_table(LEASES)?,
            lease_keys: txn.open_table(LEASE_KEYS)?,
        })
    }

    fn check_lease(&self, lease: Option<LeaseId>) -> Result<()> {
        match lease {
            Some(lease) if self.leases.get(lease)?.is_none() => {
                Err(StoreError::LeaseNotFound { lease })
            }
            _ => Ok(()),
        }
    }

    fn current(&self, key: &str) -> Result<Option<KeyValue>> {
        newest(&self.current, &self.log, key)
    }

    fn version(&self, key: String, revision: u64) -> Result<KeyValue> {
        version_at(&self.log, key, revision)
    }
}

/// The live version of `key`, if any.
fn newest(
    current: &impl ReadableTable<&'static str, u64>,
    log: &impl ReadableTable<u64, &'static [u8]>,
    key: &str,
) -> Result<Option<KeyValue>> {
    match current.get(key)? {
        Some(revision) => Ok(Some(version_at(log, key.to_owned(), revision.value())?)),
        None => Ok(None),
    }
}

/// The version of `key` the log holds at `revision` (a put of that key).
fn version_at(
    log: &impl ReadableTable<u64, &'static [u8]>,
    key: String,
    revision: u64,
) -> Result<KeyValue> {
    match log.get(revision)? {
        Some(record) => Ok(Record(record.value()).key_value(key, revision as Revision)),
        None => Err(StoreError::MissingVersion {
            key,
            revision: revision as Revision,
        }),
    }
}

/// Reads a page of keys under a prefix at the newest or a past revision.
fn range_at(txn: &ReadTransaction, request: &RangeRequest) -> Result<RangeResponse> {
    let meta = txn.open_table(META)?;
    let current = meta.get(REVISION_KEY)?.map(|v| v.value()).unwrap_or(0) as Revision;
    let compacted = meta.get(COMPACTED_KEY)?.map(|v| v.value()).unwrap_or(0) as Revision;
    let revision = match request.revision {
        None | Some(0) => current,
        Some(r) if r > current => {
            return Err(StoreError::FutureRevision {
                requested: r,
                current,
            });
        }
        Some(r) if r < compacted => {
            return Err(StoreError::Compacted {
                requested: r,
                compacted,
            });
        }
        Some(r) => r,
    };
    let prefix = request.prefix.as_str();
    let limit = request.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let after = request
        .start_after
        .as_deref()
        .filter(|after| *after >= prefix);
    let lower = after.map_or(Bound::Included(prefix), Bound::Excluded);
    let table = txn.open_table(CURRENT)?;
    let log = txn.open_table(LOG)?;

    // The state at `revision` of the keys changed since, from their first
    // change after it: the version it replaced, or 0 if it created the key.
    let mut changed: BTreeMap<String, u64> = BTreeMap::new();
    if revision < current {
        for entry in log.range(revision as u64 + 1..=current as u64)? {
            let (_, record) = entry?;
            let record = Record(record.value());
            let key = record.key();
            if key.starts_with(prefix)
                && after.is_none_or(|after| key > after)
                && !changed.contains_key(key)
            {
                changed.insert(key.to_owned(), record.prev_revision());
            }
        }
    }
    let mut changed = changed.into_iter().filter(|(_, prev)| *prev > 0);

    // Every other key under the prefix is as `current` has it: its newest
    // version is at or before `revision`.
    let mut current_keys = table.range::<&str>((lower, Bound::Unbounded))?;
    let mut next_unchanged = move || -> Result<Option<(String, u64)>> {
        for entry in current_keys.by_ref() {
            let (key, mod_revision) = entry?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            let mod_revision = mod_revision.value();
            if mod_revision <= revision as u64 {
                return Ok(Some((key.to_owned(), mod_revision)));
            }
        }
        Ok(None)
    };

    // Merge both in key order; they never share a key.
    let mut kvs = Vec::new();
    let mut more = false;
    let mut unchanged_head = next_unchanged()?;
    let mut changed_head = changed.next();
    loop {
        let (key, mod_revision) = match (unchanged_head.take(), changed_head.take()) {
            (None, None) => break,
            (Some(unchanged), None) => {
                unchanged_head = next_unchanged()?;
                unchanged
            }
            (None, Some(changed_version)) => {
                changed_head = changed.next();
                changed_version
            }
            (Some(unchanged), Some(changed_version)) => {
                if unchanged.0 < changed_version.0 {
                    changed_head = Some(changed_version);
                    unchanged_head = next_unchanged()?;
                    unchanged
                } else {
                    unchanged_head = Some(unchanged);
                    changed_head = changed.next();
                    changed_version
                }
            }
        };
        if kvs.len() == limit {
            more = true;
            break;
        }
        kvs.push(version_at(&log, key, mod_revision)?);
    }
    Ok(RangeResponse {
        kvs,
        revision,
        more,
    })
}

/// Reads the events of up to [`WATCH_READ_CHUNK`] revisions from `from` on,
/// for keys under `prefix`. Returns them and the next revision to read.
fn read_history(
    txn: &ReadTransaction,
    prefix: &str,
    from: Revision,
    upto: Revision,
) -> Result<(Vec<WatchEvent>, Revision)> {
    let meta = txn.open_table(META)?;
    let compacted = meta.get(COMPACTED_KEY)?.map(|v| v.value()).unwrap_or(0) as Revision;
    if from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    let log = txn.open_table(LOG)?;
    let end = upto.min(from + WATCH_READ_CHUNK as Revision - 1);
    let mut events = Vec::new();
    for entry in log.range(from as u64..=end as u64)? {
        let (revision, record) = entry?;
        let revision = revision.value() as Revision;
        let record = Record(record.value());
        let key = record.key();
        if !key.starts_with(prefix) {
            continue;
        }
        // Compaction keeps the version replaced by any change from
        // `compacted` on.
        let prev = match record.prev_revision() {
            0 => None,
            prev_revision => Some(version_at(&log, key.to_owned(), prev_revision)?),
        };
        let (kind, kv) = if record.is_tombstone() {
            (EventKind::Delete, tombstone(key.to_owned(), revision))
        } else {
            (EventKind::Put, record.key_value(key.to_owned(), revision))
        };
        events.push(WatchEvent { kind, kv, prev });
    }
    Ok((events, end + 1))
}

/// Follows committed batches in memory, falling back to the file whenever it
/// missed some, and feeds one watch stream.
struct Watcher {
    shared: Arc<Shared>,
    prefix: String,
    /// The next revision to deliver.
    next: Revision,
    events: broadcast::Receiver<Arc<[WatchEvent]>>,
    out: tokio_mpsc::Sender<Result<WatchEvent>>,
}

impl Watcher {
    async fn run(mut self) {
        if let Err(error) = self.follow().await {
            let _ = self.out.send(Err(error)).await;
        }
    }

    async fn follow(&mut self) -> Result<()> {
        loop {
            self.catch_up().await?;
            match self.events.recv().await {
                Ok(batch) => {
                    let Some(first) = batch.first() else { continue };
                    if first.revision() > self.next {
                        // A gap: the file has what the channel skipped.
                        continue;
                    }
                    for event in batch.iter() {
                        if event.revision() < self.next {
                            continue;
                        }
                        self.next = event.revision() + 1;
                        if event.kv.key.starts_with(&self.prefix)
                            && self.out.send(Ok(event.clone())).await.is_err()
                        {
                            return Ok(());
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Delivers everything committed up to now that the watcher has not seen
    /// yet, from the file.
    async fn catch_up(&mut self) -> Result<()> {
        loop {
            let current = self.shared.revision.load(Ordering::Acquire);
            if self.next > current {
                return Ok(());
            }
            let db = self.shared.database()?;
            let (prefix, from) = (self.prefix.clone(), self.next);
            let (events, next) = tokio::task::spawn_blocking(move || {
                read_history(&db.begin_read()?, &prefix, from, current)
            })
            .await
            .map_err(|_| StoreError::Closed)??;
            for event in events {
                if self.out.send(Ok(event)).await.is_err() {
                    return Ok(());
                }
            }
            self.next = next;
        }
    }
}

/// Expires leases and triggers automatic compaction.
struct Maintenance {
    shared: Arc<Shared>,
    ops: Sender<Op>,
    config: EmbeddedConfig,
}

impl Maintenance {
    fn run(self, stop: Receiver<()>) {
        let mut last_compaction = Instant::now();
        loop {
            match stop.recv_timeout(self.config.maintenance_tick) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            let expired: Vec<LeaseId> = {
                let mut leases = lock(&self.shared.leases);
                let expired: Vec<LeaseId> = leases
                    .iter()
                    .filter(|(_, clock)| clock.deadline <= now)
                    .map(|(id, _)| *id)
                    .collect();
                for id in &expired {
                    leases.remove(id);
                }
                expired
            };
            for lease in expired {
                tracing::debug!(lease, "lease expired");
                let (reply, _) = oneshot::channel();
                if self
                    .ops
                    .send(Op::Write(WriteOp::RevokeLease { lease }, reply))
                    .is_err()
                {
                    return;
                }
            }
            if last_compaction.elapsed() >= self.config.compaction_interval {
                last_compaction = Instant::now();
                match self.compaction_target() {
                    Ok(Some(target)) => {
                        let (reply, _) = oneshot::channel();
                        if self.ops.send(Op::Compact(target, reply)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(error = %error, "cannot plan compaction"),
                }
            }
        }
    }

    /// The revision to compact to so that history holds at most
    /// `retain_revisions` revisions and nothing older than `retain_age`.
    fn compaction_target(&self) -> Result<Option<Revision>> {
        let current = self.shared.revision.load(Ordering::Acquire);
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        let by_count = current - self.config.retain_revisions as Revision + 1;
        let cutoff = unix_millis().saturating_sub(self.config.retain_age.as_millis() as u64);
        let db = self.shared.database()?;
        let txn = db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let mut by_age = current;
        for entry in log.range(compacted.max(0) as u64..)? {
            let (rev, value) = entry?;
            if Record(value.value()).unix_ms() >= cutoff {
                by_age = rev.value() as Revision;
                break;
            }
        }
        let target = by_count.max(by_age).min(current);
        Ok((target > compacted).then_some(target))
    }
}

// A log record is `[kind][unix ms][create revision][version][lease or 0]
// [prev revision][key length][key][value]`, integers little-endian, 8 bytes
// each but the 4-byte key length.
const PUT: u8 = 1;
const TOMBSTONE: u8 = 0;
const UNIX_MS_AT: usize = 1;
const CREATE_REVISION_AT: usize = 9;
const VERSION_AT: usize = 17;
const LEASE_AT: usize = 25;
const PREV_REVISION_AT: usize = 33;
const KEY_LEN_AT: usize = 41;
const RECORD_HEADER: usize = 45;

/// The fixed fields of a log record; the key and the value follow them.
struct RecordHeader {
    tombstone: bool,
    /// When the change was committed, for compaction by age.
    unix_ms: u64,
    create_revision: Revision,
    version: i64,
    lease: Option<LeaseId>,
    /// The revision of the key's previous log entry in the same incarnation
    /// (the version replaced or deleted), 0 for a create.
    prev_revision: u64,
}

impl RecordHeader {
    /// Writes the record of this change to `key` straight into the log page.
    fn append(
        &self,
        log: &mut redb::Table<'_, u64, &'static [u8]>,
        revision: u64,
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        let mut slot = log.insert_reserve(revision, RECORD_HEADER + key.len() + value.len())?;
        let out = slot.as_mut();
        out[0] = if self.tombstone { TOMBSTONE } else { PUT };
        for (at, field) in [
            (UNIX_MS_AT, self.unix_ms),
            (CREATE_REVISION_AT, self.create_revision as u64),
            (VERSION_AT, self.version as u64),
            (LEASE_AT, self.lease.unwrap_or(0) as u64),
            (PREV_REVISION_AT, self.prev_revision),
        ] {
            out[at..at + 8].copy_from_slice(&field.to_le_bytes());
        }
        out[KEY_LEN_AT..RECORD_HEADER].copy_from_slice(&(key.len() as u32).to_le_bytes());
        let (key_bytes, value_bytes) = out[RECORD_HEADER..].split_at_mut(key.len());
        key_bytes.copy_from_slice(key.as_bytes());
        value_bytes.copy_from_slice(value);
        Ok(())
    }
}

/// A log record as stored, read in place. Records are written by
/// [`RecordHeader::append`] only; a short one reads as zeros and empties
/// rather than panicking.
#[derive(Clone, Copy)]
struct Record<'a>(&'a [u8]);

impl<'a> Record<'a> {
    fn is_tombstone(self) -> bool {
        self.0.first() == Some(&TOMBSTONE)
    }

    fn u64_at(self, at: usize) -> u64 {
        self.0
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }

    fn unix_ms(self) -> u64 {
        self.u64_at(UNIX_MS_AT)
    }

    fn prev_revision(self) -> u64 {
        self.u64_at(PREV_REVISION_AT)
    }

    fn key_len(self) -> usize {
        self.0
            .get(KEY_LEN_AT..RECORD_HEADER)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes) as usize
    }

    fn key(self) -> &'a str {
        self.0
            .get(RECORD_HEADER..RECORD_HEADER + self.key_len())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    fn value(self) -> &'a [u8] {
        self.0
            .get(RECORD_HEADER + self.key_len()..)
            .unwrap_or_default()
    }

    /// The version this record stores; `key` is its key, already known.
    fn key_value(self, key: String, mod_revision: Revision) -> KeyValue {
        KeyValue {
            key,
            value: Bytes::copy_from_slice(self.value()),
            create_revision: self.u64_at(CREATE_REVISION_AT) as Revision,
            mod_revision,
            version: self.u64_at(VERSION_AT) as i64,
            lease: Some(self.u64_at(LEASE_AT) as LeaseId).filter(|l| *l != 0),
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Locks ignore poisoning: every critical section leaves its data consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
