//! The embedded store: the conformance suite, plus what only a file-backed
//! store has: reopening keeps everything, bad files are refused untouched,
//! a second opener fails fast, commits are shared, automatic compaction,
//! history that stays exact across compactions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use skiff_control::store::{
    EmbeddedConfig, EmbeddedStore, EventKind, KeyValue, RangeRequest, Revision, Store, StoreError,
    WatchEvent,
};
use tempfile::TempDir;

async fn open() -> (Arc<dyn Store>, TempDir) {
    let dir = TempDir::new().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("store.redb"))).unwrap();
    (Arc::new(store), dir)
}

mod conformance {
    crate::store_conformance!(open = super::open());
}

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Closing and reopening keeps keys, history and the revision counter, which
/// never goes backwards.
#[tokio::test]
async fn reopen_keeps_keys_history_and_revision() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    let a = store.create("/k/a", bytes("1"), None).await.unwrap();
    let a2 = store
        .update("/k/a", bytes("2"), a.mod_revision, None)
        .await
        .unwrap();
    let b = store.create("/k/b", bytes("1"), None).await.unwrap();
    store.delete("/k/b", None).await.unwrap();
    let before = store.current_revision().await.unwrap();
    store.close().await.unwrap();
    drop(store);

    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), before);
    assert_eq!(store.get("/k/a").await.unwrap(), Some(a2.clone()));
    assert_eq!(store.get("/k/b").await.unwrap(), None);
    let past = store
        .range(RangeRequest::prefix("/k/").at_revision(b.mod_revision))
        .await
        .unwrap();
    assert_eq!(past.kvs, vec![a2.clone(), b.clone()]);
    let mut watch = store.watch("/k/", a.mod_revision).await.unwrap();
    let mut revisions = Vec::new();
    for _ in 0..4 {
        revisions.push(watch.next().await.unwrap().unwrap().revision());
    }
    assert_eq!(revisions, (a.mod_revision..=before).collect::<Vec<_>>());
    let c = store.create("/k/c", bytes("1"), None).await.unwrap();
    assert_eq!(c.mod_revision, before + 1);
}

/// A file that is not a database is refused with an error naming it, and is
/// left byte-for-byte untouched.
#[tokio::test]
async fn foreign_file_is_refused_untouched() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let content: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &content).unwrap();
    let err = EmbeddedStore::open(EmbeddedConfig::new(&path))
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(
        std::fs::read(&path).unwrap() == content,
        "the file was modified"
    );
}

/// A valid redb database that belongs to something else is refused and left
/// untouched.
#[tokio::test]
async fn redb_file_of_another_program_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("users");
            txn.open_table(table)
                .unwrap()
                .insert("alice", "admin")
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let content = std::fs::read(&path).unwrap();
    let err = EmbeddedStore::open(EmbeddedConfig::new(&path))
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
    assert!(err.to_string().contains("users"), "{err}");
    assert!(
        std::fs::read(&path).unwrap() == content,
        "the file was modified"
    );
}

/// A file damaged in place (here: its header) is refused, not repaired over.
#[tokio::test]
async fn damaged_store_file_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    store.create("/k/a", bytes("1"), None).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    let mut content = std::fs::read(&path).unwrap();
    for byte in &mut content[..64] {
        *byte ^= 0xa5;
    }
    std::fs::write(&path, &content).unwrap();
    let err = EmbeddedStore::open(EmbeddedConfig::new(&path))
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        std::fs::read(&path).unwrap() == content,
        "the file was modified"
    );
}

/// A second opener of the same file fails fast with a clear message.
#[tokio::test]
async fn second_opener_fails_fast() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let _store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    let err = EmbeddedStore::open(EmbeddedConfig::new(&path))
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
}

/// Concurrent writers share commits (group commit): 256 writes from 64
/// writers take far fewer than 256 commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_share_commits() {
    let dir = TempDir::new().unwrap();
    let store =
        Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("s.redb"))).unwrap());
    let before = store.commit_count();
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..4 {
                    store
                        .create(&format!("/g/{w}/{i}"), bytes("v"), None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let commits = store.commit_count() - before;
    assert!(commits < 200, "{commits} commits for 256 writes");
    assert_eq!(
        store
            .range(RangeRequest::prefix("/g/"))
            .await
            .unwrap()
            .kvs
            .len(),
        256
    );
}

/// Automatic compaction keeps at most `retain_revisions` of history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction_bounds_history_by_revisions() {
    let dir = TempDir::new().unwrap();
    let config = EmbeddedConfig::new(dir.path().join("s.redb"))
        .retain_revisions(50)
        .compaction_interval(Duration::from_millis(50));
    let store = EmbeddedStore::open(config).unwrap();
    let first = store.create("/auto/0", bytes("v"), None).await.unwrap();
    for i in 1..300 {
        store
            .create(&format!("/auto/{i}"), bytes("v"), None)
            .await
            .unwrap();
    }
    let current = store.current_revision().await.unwrap();
    wait_for(|| store.compacted_revision() > current - 50).await;
    assert!(store.compacted_revision() <= current);
    let err = store
        .range(RangeRequest::prefix("/auto/").at_revision(first.mod_revision))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    // The newest state is whole.
    assert_eq!(
        store
            .range(RangeRequest::prefix("/auto/"))
            .await
            .unwrap()
            .kvs
            .len(),
        300
    );
}

/// Automatic compaction drops history older than `retain_age`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction_bounds_history_by_age() {
    let dir = TempDir::new().unwrap();
    let config = EmbeddedConfig::new(dir.path().join("s.redb"))
        .retain_age(Duration::from_millis(200))
        .compaction_interval(Duration::from_millis(50));
    let store = EmbeddedStore::open(config).unwrap();
    let old = store.create("/age/a", bytes("v"), None).await.unwrap();
    store
        .update("/age/a", bytes("w"), old.mod_revision, None)
        .await
        .unwrap();
    wait_for(|| store.compacted_revision() > old.mod_revision).await;
    let err = store.watch("/age/", old.mod_revision).await.err();
    assert!(matches!(err, Some(StoreError::Compacted { .. })), "{err:?}");
}

/// Leases survive a reopen and still expire afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_reopen_and_still_expire() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("s.redb");
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    store.create("/l/a", bytes("v"), Some(lease)).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    let store = EmbeddedStore::open(EmbeddedConfig::new(&path)).unwrap();
    assert_eq!(
        store.keep_alive(lease).await.unwrap(),
        Duration::from_secs(1)
    );
    let next = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    assert_ne!(next, lease, "lease ids are never reused");
    let mut watch = store.watch("/l/", 0).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("lease did not expire")
        .unwrap()
        .unwrap();
    assert_eq!(event.kv.key, "/l/a");
    assert_eq!(store.get("/l/a").await.unwrap(), None);
}

/// One step of [`history_stays_exact_across_compactions`].
enum Step {
    Create(&'static str, &'static str),
    Update(&'static str, &'static str),
    Delete(&'static str),
    /// Compact to this many revisions before the newest, then check every
    /// retained revision against the model.
    CompactKeeping(Revision),
}

/// What the store should hold: the keys at every revision, and every event.
#[derive(Default)]
struct Model {
    states: BTreeMap<Revision, BTreeMap<String, KeyValue>>,
    events: Vec<WatchEvent>,
}

impl Model {
    fn newest(&self) -> BTreeMap<String, KeyValue> {
        self.states
            .values()
            .next_back()
            .cloned()
            .unwrap_or_default()
    }

    fn record(&mut self, kind: EventKind, kv: KeyValue, prev: Option<KeyValue>) {
        let mut state = self.newest();
        match kind {
            EventKind::Put => state.insert(kv.key.clone(), kv.clone()),
            EventKind::Delete => state.remove(&kv.key),
        };
        self.states.insert(kv.mod_revision, state);
        self.events.push(WatchEvent { kind, kv, prev });
    }
}

/// Past-revision reads and watches stay exact across several compactions
/// while keys are updated, deleted and created again: at every retained
/// revision a read (whole and in pages of 2) equals the model, a watch from
/// it replays exactly the model's events with their previous values, and
/// every compacted revision is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_stays_exact_across_compactions() {
    use Step::*;
    let steps = [
        Create("/m/a", "a1"),
        Create("/m/b", "b1"),
        Update("/m/a", "a2"),
        Create("/n/x", "x1"),
        Delete("/m/b"),
        Create("/m/c", "c1"),
        Update("/m/a", "a3"),
        CompactKeeping(4),
        Create("/m/b", "b2"),
        Update("/m/c", "c2"),
        Delete("/m/a"),
        Update("/n/x", "x2"),
        CompactKeeping(2),
        Create("/m/a", "a4"),
        Update("/m/b", "b3"),
        Delete("/m/c"),
        Create("/m/d", "d1"),
        Update("/m/a", "a5"),
        CompactKeeping(5),
        Delete("/m/d"),
        Delete("/m/b"),
        Update("/m/a", "a6"),
        Create("/m/c", "c3"),
        CompactKeeping(1),
        Update("/m/c", "c4"),
        Delete("/m/a"),
        Create("/m/a", "a7"),
        Create("/m/b", "b4"),
        CompactKeeping(0),
        Update("/m/b", "b5"),
        Delete("/m/b"),
        CompactKeeping(1),
    ];
    let dir = TempDir::new().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("s.redb"))).unwrap();
    let mut model = Model::default();
    let start = store.current_revision().await.unwrap();
    model.states.insert(start, BTreeMap::new());
    for step in steps {
        let newest = model.newest();
        match step {
            Create(key, value) => {
                let kv = store.create(key, bytes(value), None).await.unwrap();
                model.record(EventKind::Put, kv, None);
            }
            Update(key, value) => {
                let prev = newest[key].clone();
                let kv = store
                    .update(key, bytes(value), prev.mod_revision, None)
                    .await
                    .unwrap();
                model.record(EventKind::Put, kv, Some(prev));
            }
            Delete(key) => {
                let deleted = store.delete(key, None).await.unwrap();
                assert_eq!(deleted.prev, newest[key]);
                let tombstone = KeyValue {
                    key: key.to_owned(),
                    value: Bytes::new(),
                    create_revision: 0,
                    mod_revision: deleted.revision,
                    version: 0,
                    lease: None,
                };
                model.record(EventKind::Delete, tombstone, Some(deleted.prev));
            }
            CompactKeeping(keep) => {
                let current = store.current_revision().await.unwrap();
                store.compact(current - keep).await.unwrap();
                check_history(&store, &model).await;
            }
        }
    }
}

/// Compares every retained revision of `store` under `/m/` with `model`.
async fn check_history(store: &EmbeddedStore, model: &Model) {
    let compacted = store.compacted_revision();
    let current = store.current_revision().await.unwrap();
    for revision in *model.states.keys().next().unwrap()..compacted {
        let err = store
            .range(RangeRequest::prefix("/m/").at_revision(revision))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    }
    for revision in compacted..=current {
        let expected: Vec<KeyValue> = model.states[&revision]
            .values()
            .filter(|kv| kv.key.starts_with("/m/"))
            .cloned()
            .collect();
        let whole = store
            .range(RangeRequest::prefix("/m/").at_revision(revision))
            .await
            .unwrap();
        assert_eq!(whole.kvs, expected, "read at {revision}");
        assert!(!whole.more);
        let mut paged = Vec::new();
        let mut request = RangeRequest::prefix("/m/").at_revision(revision).limit(2);
        loop {
            let page = store.range(request.clone()).await.unwrap();
            assert_eq!(page.revision, revision);
            assert!(page.kvs.len() <= 2);
            paged.extend(page.kvs);
            if !page.more {
                break;
            }
            request = request.start_after(paged.last().unwrap().key.clone());
        }
        assert_eq!(paged, expected, "paged read at {revision}");

        let expected: Vec<&WatchEvent> = model
            .events
            .iter()
            .filter(|e| e.revision() >= revision && e.kv.key.starts_with("/m/"))
            .collect();
        let mut watch = store.watch("/m/", revision).await.unwrap();
        for expected in expected {
            let event = tokio::time::timeout(Duration::from_secs(20), watch.next())
                .await
                .expect("no watch event in time")
                .unwrap()
                .unwrap();
            assert_eq!(&event, expected, "watch from {revision}");
        }
    }
}

/// Polls a condition every 20 ms for at most 20 s.
async fn wait_for(mut condition: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached in 20 s");
}
