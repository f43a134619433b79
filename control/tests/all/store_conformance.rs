//! One conformance suite for both store backends: every property of the
//! `Store` trait, written once as scenarios over `Arc<dyn Store>` and
//! instantiated for the embedded store (`store_embedded`) and for a real etcd
//! (`store_etcd`) by [`store_conformance!`].

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use skiff_control::store::{
    EventKind, RangeRequest, Revision, Store, StoreError, WatchEvent, WatchStream,
};

/// Generates one `#[tokio::test]` per scenario for a backend. `$open` is an
/// async expression yielding `(Arc<dyn Store>, guard)`; the guard keeps the
/// backend's resources (temporary dir, etcd process) alive.
#[macro_export]
macro_rules! store_conformance {
    ($(#[$attr:meta])* open = $open:expr) => {
        $crate::store_conformance!(@tests [$(#[$attr])*] $open;
            create_then_get,
            create_existing_is_already_exists,
            update_is_guarded_by_mod_revision,
            delete_is_guarded_by_mod_revision,
            range_is_by_prefix_in_key_order,
            range_pages_read_one_snapshot,
            range_at_past_revisions,
            range_at_future_revision_fails,
            watch_streams_changes_in_order_with_prev,
            watch_replays_history_from_a_past_revision,
            watch_filters_by_prefix,
            compaction_makes_old_revisions_unreadable,
            cas_race_of_16_writers_has_one_winner_per_round,
            create_race_has_one_winner,
            watcher_follows_10000_writes_from_8_writers,
            watch_resumes_from_last_seen_revision,
            lease_expiry_deletes_keys_with_events,
            keep_alive_holds_a_lease,
            revoke_deletes_attached_keys,
            unknown_leases_are_rejected,
            close_ends_watches_and_refuses_calls,
        );
    };
    (@tests $attrs:tt $open:expr; $($scenario:ident,)*) => {$(
        $crate::store_conformance!(@one $attrs $open; $scenario);
    )*};
    (@one [$(#[$attr:meta])*] $open:expr; $scenario:ident) => {
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $scenario() {
            let (store, _guard) = $open.await;
            $crate::store_conformance::$scenario(store).await;
        }
    };
}

/// Upper bound for waiting on one event; a safety net, not a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("no watch event in time")
        .expect("watch stream ended")
        .expect("watch stream failed")
}

async fn keys(store: &dyn Store, request: RangeRequest) -> Vec<String> {
    let response = store.range(request).await.expect("range");
    response.kvs.into_iter().map(|kv| kv.key).collect()
}

/// A created key reads back with create = mod revision and version 1, and
/// every write takes a new, higher revision.
pub async fn create_then_get(store: Arc<dyn Store>) {
    let before = store.current_revision().await.unwrap();
    let a = store.create("/t/a", bytes("one"), None).await.unwrap();
    assert!(a.mod_revision > before);
    assert_eq!(a.create_revision, a.mod_revision);
    assert_eq!(a.version, 1);
    assert_eq!(a.value, bytes("one"));
    let b = store.create("/t/b", bytes("two"), None).await.unwrap();
    assert!(b.mod_revision > a.mod_revision);
    assert_eq!(store.get("/t/a").await.unwrap(), Some(a));
    assert_eq!(store.get("/t/missing").await.unwrap(), None);
    assert_eq!(store.current_revision().await.unwrap(), b.mod_revision);
}

/// Creating an existing key fails and changes nothing.
pub async fn create_existing_is_already_exists(store: Arc<dyn Store>) {
    let first = store.create("/t/a", bytes("one"), None).await.unwrap();
    let err = store.create("/t/a", bytes("two"), None).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { ref key } if key == "/t/a"),
        "{err:?}"
    );
    assert_eq!(store.get("/t/a").await.unwrap(), Some(first.clone()));
    assert_eq!(store.current_revision().await.unwrap(), first.mod_revision);
}

/// Update succeeds only with the key's mod revision; failures change nothing.
pub async fn update_is_guarded_by_mod_revision(store: Arc<dyn Store>) {
    let created = store.create("/t/a", bytes("one"), None).await.unwrap();
    let updated = store
        .update("/t/a", bytes("two"), created.mod_revision, None)
        .await
        .unwrap();
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(updated.create_revision, created.create_revision);
    assert_eq!(updated.version, 2);

    let err = store
        .update("/t/a", bytes("stale"), created.mod_revision, None)
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, "/t/a");
            assert_eq!(expected, created.mod_revision);
            assert_eq!(actual, updated.mod_revision);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    let err = store
        .update("/t/missing", bytes("x"), 1, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(store.get("/t/a").await.unwrap(), Some(updated.clone()));
    assert_eq!(
        store.current_revision().await.unwrap(),
        updated.mod_revision
    );
}

/// Delete with an expected revision is guarded; without one it is not.
pub async fn delete_is_guarded_by_mod_revision(store: Arc<dyn Store>) {
    let a = store.create("/t/a", bytes("one"), None).await.unwrap();
    let a2 = store
        .update("/t/a", bytes("two"), a.mod_revision, None)
        .await
        .unwrap();
    let err = store
        .delete("/t/a", Some(a.mod_revision))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.get("/t/a").await.unwrap(), Some(a2.clone()));

    let deleted = store.delete("/t/a", Some(a2.mod_revision)).await.unwrap();
    assert!(deleted.revision > a2.mod_revision);
    assert_eq!(deleted.prev, a2);
    assert_eq!(store.get("/t/a").await.unwrap(), None);

    let err = store.delete("/t/a", None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    store.create("/t/b", bytes("b"), None).await.unwrap();
    store.delete("/t/b", None).await.unwrap();
    assert_eq!(store.get("/t/b").await.unwrap(), None);

    // A key deleted and created again starts a new incarnation.
    let again = store.create("/t/a", bytes("three"), None).await.unwrap();
    assert_eq!(again.version, 1);
    assert!(again.create_revision > deleted.revision);
}

/// Range returns exactly the keys under the prefix, sorted.
pub async fn range_is_by_prefix_in_key_order(store: Arc<dyn Store>) {
    for key in ["/r/b", "/r/a", "/r/c/d", "/rx", "/q", "/r"] {
        store.create(key, bytes(key), None).await.unwrap();
    }
    assert_eq!(
        keys(&*store, RangeRequest::prefix("/r/")).await,
        vec!["/r/a", "/r/b", "/r/c/d"]
    );
    assert_eq!(
        keys(&*store, RangeRequest::prefix("/r")).await,
        vec!["/r", "/r/a", "/r/b", "/r/c/d", "/rx"]
    );
    assert!(
        keys(&*store, RangeRequest::prefix("/none/"))
            .await
            .is_empty()
    );
    let all = store.range(RangeRequest::prefix("/r/")).await.unwrap();
    assert!(!all.more);
    assert_eq!(all.revision, store.current_revision().await.unwrap());
    assert_eq!(all.kvs[0].value, bytes("/r/a"));
}

/// Pages read with the first page's revision see one consistent snapshot,
/// whatever is written between them.
pub async fn range_pages_read_one_snapshot(store: Arc<dyn Store>) {
    for i in 0..25 {
        store
            .create(&format!("/p/{i:02}"), bytes("v"), None)
            .await
            .unwrap();
    }
    let first = store
        .range(RangeRequest::prefix("/p/").limit(10))
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 10);
    assert!(first.more);
    // Writes after the first page must not show in later pages.
    store.delete("/p/15", None).await.unwrap();
    store.create("/p/99", bytes("new"), None).await.unwrap();
    store.create("/p/10a", bytes("new"), None).await.unwrap();

    let mut seen: Vec<String> = first.kvs.iter().map(|kv| kv.key.clone()).collect();
    let mut last = seen.last().unwrap().clone();
    loop {
        let page = store
            .range(
                RangeRequest::prefix("/p/")
                    .limit(10)
                    .at_revision(first.revision)
                    .start_after(last.clone()),
            )
            .await
            .unwrap();
        assert_eq!(page.revision, first.revision);
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        last = page.kvs.last().unwrap().key.clone();
    }
    let expected: Vec<String> = (0..25).map(|i| format!("/p/{i:02}")).collect();
    assert_eq!(seen, expected);

    // The newest state has the changes.
    let now = keys(&*store, RangeRequest::prefix("/p/")).await;
    assert_eq!(now.len(), 26);
    assert!(now.contains(&"/p/99".to_owned()) && !now.contains(&"/p/15".to_owned()));
}

/// A read at a past revision sees the values of that moment.
pub async fn range_at_past_revisions(store: Arc<dyn Store>) {
    let v1 = store.create("/h/k", bytes("v1"), None).await.unwrap();
    let v2 = store
        .update("/h/k", bytes("v2"), v1.mod_revision, None)
        .await
        .unwrap();
    let gone = store.delete("/h/k", None).await.unwrap();
    let other = store.create("/h/other", bytes("o"), None).await.unwrap();

    let at = |rev: Revision| {
        let store = store.clone();
        async move {
            store
                .range(RangeRequest::prefix("/h/").at_revision(rev))
                .await
                .unwrap()
        }
    };
    let r1 = at(v1.mod_revision).await;
    assert_eq!(r1.kvs, vec![v1.clone()]);
    assert_eq!(r1.revision, v1.mod_revision);
    assert_eq!(at(v2.mod_revision).await.kvs, vec![v2.clone()]);
    assert!(at(gone.revision).await.kvs.is_empty());
    assert_eq!(at(other.mod_revision).await.kvs, vec![other.clone()]);
    let limited = store
        .range(
            RangeRequest::prefix("/h/")
                .at_revision(v2.mod_revision)
                .limit(1),
        )
        .await
        .unwrap();
    assert_eq!(limited.kvs, vec![v2]);
    assert!(!limited.more);
}

/// Reading at a revision that does not exist yet fails clearly.
pub async fn range_at_future_revision_fails(store: Arc<dyn Store>) {
    let kv = store.create("/f/a", bytes("v"), None).await.unwrap();
    let err = store
        .range(RangeRequest::prefix("/f/").at_revision(kv.mod_revision + 100))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
}

/// A watch sees creates, updates and deletes in order, each with the value it
/// replaced.
pub async fn watch_streams_changes_in_order_with_prev(store: Arc<dyn Store>) {
    let mut watch = store.watch("/w/", 0).await.unwrap();
    let a = store.create("/w/a", bytes("1"), None).await.unwrap();
    let a2 = store
        .update("/w/a", bytes("2"), a.mod_revision, None)
        .await
        .unwrap();
    let deleted = store.delete("/w/a", None).await.unwrap();

    let created = next_event(&mut watch).await;
    assert_eq!(created.kind, EventKind::Put);
    assert_eq!(created.kv, a);
    assert_eq!(created.prev, None);

    let updated = next_event(&mut watch).await;
    assert_eq!(updated.kind, EventKind::Put);
    assert_eq!(updated.kv, a2);
    assert_eq!(updated.prev, Some(a.clone()));

    let removed = next_event(&mut watch).await;
    assert_eq!(removed.kind, EventKind::Delete);
    assert_eq!(removed.kv.key, "/w/a");
    assert_eq!(removed.revision(), deleted.revision);
    assert_eq!(removed.prev, Some(a2));
}

/// Watching from a past revision first replays what happened since.
pub async fn watch_replays_history_from_a_past_revision(store: Arc<dyn Store>) {
    let a = store.create("/w/a", bytes("1"), None).await.unwrap();
    let b = store.create("/w/b", bytes("1"), None).await.unwrap();
    store
        .update("/w/a", bytes("2"), a.mod_revision, None)
        .await
        .unwrap();
    let mut watch = store.watch("/w/", b.mod_revision).await.unwrap();
    let first = next_event(&mut watch).await;
    assert_eq!(first.kv, b);
    let second = next_event(&mut watch).await;
    assert_eq!(second.kv.key, "/w/a");
    assert_eq!(second.prev, Some(a));
    // Then it goes on live.
    let c = store.create("/w/c", bytes("1"), None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, c);
}

/// A watch sees only its prefix.
pub async fn watch_filters_by_prefix(store: Arc<dyn Store>) {
    let mut watch = store.watch("/w/x/", 0).await.unwrap();
    store.create("/w/y/1", bytes("no"), None).await.unwrap();
    store.create("/w/x", bytes("no"), None).await.unwrap();
    store.create("/w/xy/1", bytes("no"), None).await.unwrap();
    let hit = store.create("/w/x/1", bytes("yes"), None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, hit);
}

/// After compaction, reads before the compacted revision and watches from
/// before it fail with `Compacted`; reads and watches from it on work.
pub async fn compaction_makes_old_revisions_unreadable(store: Arc<dyn Store>) {
    let a = store.create("/c/a", bytes("1"), None).await.unwrap();
    let a2 = store
        .update("/c/a", bytes("2"), a.mod_revision, None)
        .await
        .unwrap();
    let b = store.create("/c/b", bytes("1"), None).await.unwrap();
    store.delete("/c/b", None).await.unwrap();
    let c = store.create("/c/c", bytes("1"), None).await.unwrap();
    store.compact(c.mod_revision).await.unwrap();

    let err = store
        .range(RangeRequest::prefix("/c/").at_revision(a2.mod_revision))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Compacted { requested, .. } if requested == a2.mod_revision),
        "{err:?}"
    );
    match store.watch("/c/", b.mod_revision).await {
        Err(StoreError::Compacted { .. }) => {}
        Ok(mut stream) => {
            let item = tokio::time::timeout(PATIENCE, stream.next())
                .await
                .expect("no answer from a compacted watch");
            assert!(
                matches!(item, Some(Err(StoreError::Compacted { .. }))),
                "{item:?}"
            );
        }
        Err(other) => panic!("expected Compacted, got {other:?}"),
    }
    // The state at the compacted revision is intact.
    let at_c = store
        .range(RangeRequest::prefix("/c/").at_revision(c.mod_revision))
        .await
        .unwrap();
    assert_eq!(at_c.kvs, vec![a2.clone(), c.clone()]);
    let mut watch = store.watch("/c/", c.mod_revision).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, c);

    let err = store.compact(a.mod_revision).await.unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    let err = store.compact(c.mod_revision + 1000).await.unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
    // Writes go on after compaction.
    let d = store.create("/c/d", bytes("1"), None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, d);
}

/// 16 writers race a compare-and-swap on one key: exactly one wins per round.
pub async fn cas_race_of_16_writers_has_one_winner_per_round(store: Arc<dyn Store>) {
    let mut current = store.create("/cas", bytes("0"), None).await.unwrap();
    for round in 0..20 {
        let tasks: Vec<_> = (0..16)
            .map(|writer| {
                let store = store.clone();
                let expected = current.mod_revision;
                tokio::spawn(async move {
                    store
                        .update("/cas", bytes(&format!("{round}-{writer}")), expected, None)
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(kv) => winners.push(kv),
                Err(StoreError::Conflict { .. }) => {}
                Err(other) => panic!("unexpected error: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let winner = winners.pop().unwrap();
        assert_eq!(store.get("/cas").await.unwrap(), Some(winner.clone()));
        assert_eq!(winner.version, current.version + 1);
        current = winner;
    }
}

/// 16 creators of one key: exactly one succeeds.
pub async fn create_race_has_one_winner(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..16)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create("/race", bytes(&writer.to_string()), None)
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(ok, 1);
}

/// A watcher follows 10,000 writes from 8 concurrent writers: every event
/// exactly once, in increasing revision order.
pub async fn watcher_follows_10000_writes_from_8_writers(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 1_250;
    let mut watch = store.watch("/load/", 0).await.unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::with_capacity(PER_WRITER);
                for i in 0..PER_WRITER {
                    let kv = store
                        .create(&format!("/load/{w}/{i:05}"), bytes("x"), None)
                        .await
                        .unwrap();
                    revisions.push(kv.mod_revision);
                }
                revisions
            })
        })
        .collect();
    let mut seen_keys = HashSet::new();
    let mut last = 0;
    for _ in 0..WRITERS * PER_WRITER {
        let event = tokio::time::timeout(Duration::from_secs(60), watch.next())
            .await
            .expect("watcher stalled")
            .expect("stream ended")
            .expect("stream failed");
        assert_eq!(event.kind, EventKind::Put);
        assert!(
            event.revision() > last,
            "out of order: {} after {last}",
            event.revision()
        );
        last = event.revision();
        assert!(
            seen_keys.insert(event.kv.key.clone()),
            "duplicate {}",
            event.kv.key
        );
    }
    let mut acknowledged = BTreeSet::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert_eq!(acknowledged.len(), WRITERS * PER_WRITER);
    assert_eq!(*acknowledged.last().unwrap(), last);
    // Nothing more arrives.
    let extra = tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
    assert!(extra.is_err(), "unexpected extra event: {extra:?}");
}

/// A watch resumed from the last seen revision + 1 delivers exactly what the
/// first one did not.
pub async fn watch_resumes_from_last_seen_revision(store: Arc<dyn Store>) {
    let mut watch = store.watch("/res/", 0).await.unwrap();
    for i in 0..10 {
        store
            .create(&format!("/res/{i}"), bytes("v"), None)
            .await
            .unwrap();
    }
    let mut last_seen = 0;
    for i in 0..5 {
        let event = next_event(&mut watch).await;
        assert_eq!(event.kv.key, format!("/res/{i}"));
        last_seen = event.revision();
    }
    drop(watch);
    for i in 10..15 {
        store
            .create(&format!("/res/{i}"), bytes("v"), None)
            .await
            .unwrap();
    }
    let mut resumed = store.watch("/res/", last_seen + 1).await.unwrap();
    for i in 5..15 {
        let event = next_event(&mut resumed).await;
        assert_eq!(event.kv.key, format!("/res/{i}"));
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), resumed.next()).await;
    assert!(extra.is_err(), "unexpected extra event: {extra:?}");
}

/// A lease that is not kept alive expires and deletes its keys, with delete
/// events; keys without the lease stay.
pub async fn lease_expiry_deletes_keys_with_events(store: Arc<dyn Store>) {
    let lease = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    let mut watch = store.watch("/lease/", 0).await.unwrap();
    let held = store
        .create("/lease/a", bytes("a"), Some(lease))
        .await
        .unwrap();
    assert_eq!(held.lease, Some(lease));
    store
        .create("/lease/b", bytes("b"), Some(lease))
        .await
        .unwrap();
    store.create("/lease/free", bytes("c"), None).await.unwrap();
    for _ in 0..3 {
        assert_eq!(next_event(&mut watch).await.kind, EventKind::Put);
    }
    let mut deleted = BTreeSet::new();
    for _ in 0..2 {
        let event = next_event(&mut watch).await;
        assert_eq!(event.kind, EventKind::Delete);
        assert_eq!(event.prev.as_ref().and_then(|p| p.lease), Some(lease));
        deleted.insert(event.kv.key);
    }
    assert_eq!(
        deleted,
        BTreeSet::from(["/lease/a".to_owned(), "/lease/b".to_owned()])
    );
    assert_eq!(
        keys(&*store, RangeRequest::prefix("/lease/")).await,
        vec!["/lease/free"]
    );
    let err = store.keep_alive(lease).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound { .. }), "{err:?}");
}

/// Keep-alives hold a lease past its TTL.
pub async fn keep_alive_holds_a_lease(store: Arc<dyn Store>) {
    let lease = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    store
        .create("/ka/a", bytes("a"), Some(lease))
        .await
        .unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ttl = store.keep_alive(lease).await.unwrap();
        assert!(ttl >= Duration::from_secs(2), "{ttl:?}");
    }
    assert!(store.get("/ka/a").await.unwrap().is_some());
    store.revoke_lease(lease).await.unwrap();
}

/// Revoking a lease deletes its keys at once; keys moved off the lease stay.
pub async fn revoke_deletes_attached_keys(store: Arc<dyn Store>) {
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store
        .create("/rv/a", bytes("a"), Some(lease))
        .await
        .unwrap();
    let moved = store
        .create("/rv/b", bytes("b"), Some(lease))
        .await
        .unwrap();
    store
        .update("/rv/b", bytes("b2"), moved.mod_revision, None)
        .await
        .unwrap();
    store.revoke_lease(lease).await.unwrap();
    assert_eq!(
        keys(&*store, RangeRequest::prefix("/rv/")).await,
        vec!["/rv/b"]
    );
    let err = store.revoke_lease(lease).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound { .. }), "{err:?}");
}

/// Unknown leases and too-short TTLs are refused and change nothing.
pub async fn unknown_leases_are_rejected(store: Arc<dyn Store>) {
    let before = store.current_revision().await.unwrap();
    let err = store
        .create("/ul/a", bytes("a"), Some(987_654))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound { .. }), "{err:?}");
    let err = store.keep_alive(987_654).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound { .. }), "{err:?}");
    let err = store.revoke_lease(987_654).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound { .. }), "{err:?}");
    let err = store
        .grant_lease(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTtl { .. }), "{err:?}");
    assert_eq!(store.get("/ul/a").await.unwrap(), None);
    assert_eq!(store.current_revision().await.unwrap(), before);
}

/// Closing ends open watches and refuses later calls.
pub async fn close_ends_watches_and_refuses_calls(store: Arc<dyn Store>) {
    store.create("/cl/a", bytes("a"), None).await.unwrap();
    let mut watch = store.watch("/cl/", 0).await.unwrap();
    store.close().await.unwrap();
    let end = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("watch did not end after close");
    assert!(
        matches!(end, None | Some(Err(StoreError::Closed))),
        "{end:?}"
    );
    let err = store.create("/cl/b", bytes("b"), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
    let err = store.get("/cl/a").await.unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
    // Closing twice is harmless.
    store.close().await.unwrap();
}
