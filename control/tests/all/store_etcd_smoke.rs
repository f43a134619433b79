//! The etcd backend against a real etcd, on what the conformance suite does
//! not pin down: how etcd's answers map to `StoreError` (with the values each
//! variant carries), the key prefix that lets users share one etcd, a watch
//! living past the request timeout, and failing fast when etcd is down.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use skiff_control::store::{
    EtcdConfig, EtcdStore, EventKind, RangeRequest, Store, StoreError, WatchEvent, WatchStream,
};

use crate::support::etcd::EtcdProcess;

/// Upper bound for waiting on one event; a safety net, not a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

async fn connect(etcd: &EtcdProcess, config: EtcdConfig) -> EtcdStore {
    EtcdStore::connect(config.endpoints([etcd.endpoint()]))
        .await
        .expect("connect to the test etcd")
}

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

/// Each guarded write's failure is the right variant with the right values,
/// and an update never creates a key, even with `expected == 0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd; run by make test"]
async fn guarded_writes_map_to_store_errors() {
    let etcd = EtcdProcess::start();
    let store = connect(&etcd, EtcdConfig::default()).await;

    let a = store.create("/g/a", bytes("1"), None).await.unwrap();
    assert_eq!(
        (a.create_revision, a.version, a.lease),
        (a.mod_revision, 1, None)
    );
    let err = store.create("/g/a", bytes("2"), None).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { ref key } if key == "/g/a"),
        "{err:?}"
    );

    let a2 = store
        .update("/g/a", bytes("2"), a.mod_revision, None)
        .await
        .unwrap();
    assert_eq!((a2.create_revision, a2.version), (a.create_revision, 2));
    assert_eq!(store.get("/g/a").await.unwrap(), Some(a2.clone()));
    match store.update("/g/a", bytes("3"), a.mod_revision, None).await {
        Err(StoreError::Conflict {
            key,
            expected,
            actual,
        }) => {
            assert_eq!(
                (key.as_str(), expected, actual),
                ("/g/a", a.mod_revision, a2.mod_revision)
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    for expected in [0, a2.mod_revision] {
        let err = store
            .update("/g/none", bytes("x"), expected, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound { ref key } if key == "/g/none"),
            "{err:?}"
        );
    }
    assert_eq!(store.get("/g/none").await.unwrap(), None);

    match store.delete("/g/a", Some(a.mod_revision)).await {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), (a.mod_revision, a2.mod_revision));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    let deleted = store.delete("/g/a", Some(a2.mod_revision)).await.unwrap();
    assert_eq!(deleted.prev, a2);
    assert_eq!(deleted.revision, store.current_revision().await.unwrap());
    let err = store
        .delete("/g/a", Some(a2.mod_revision))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = store.delete("/g/a", None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

/// Two users with different key prefixes share one etcd without seeing each
/// other, and every key they get back has the prefix stripped, in reads,
/// pages and watch events alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd; run by make test"]
async fn key_prefixes_isolate_users_of_one_etcd() {
    let etcd = EtcdProcess::start();
    let team_a = connect(&etcd, EtcdConfig::default().key_prefix("/team-a")).await;
    let team_b = connect(&etcd, EtcdConfig::default().key_prefix("/team-b")).await;
    let whole = connect(&etcd, EtcdConfig::default()).await;

    let mut watch_a = team_a.watch("/", 0).await.unwrap();
    for key in ["/k/1", "/k/2", "/k/3"] {
        team_a.create(key, bytes("a"), None).await.unwrap();
    }
    let b = team_b.create("/k/1", bytes("b"), None).await.unwrap();
    assert_eq!(b.key, "/k/1");
    assert_eq!(team_b.get("/k/1").await.unwrap().unwrap().value, bytes("b"));
    assert_eq!(team_a.get("/k/1").await.unwrap().unwrap().value, bytes("a"));

    // Paging with an empty prefix covers exactly the user's own keys.
    let first = team_a
        .range(RangeRequest::prefix("").limit(2))
        .await
        .unwrap();
    let keys: Vec<_> = first.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!((keys, first.more), (vec!["/k/1", "/k/2"], true));
    let rest = team_a
        .range(
            RangeRequest::prefix("")
                .limit(2)
                .at_revision(first.revision)
                .start_after("/k/2"),
        )
        .await
        .unwrap();
    let keys: Vec<_> = rest.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!((keys, rest.more), (vec!["/k/3"], false));
    // A limit of 0 means no limit, as in Kubernetes.
    let unlimited = team_a
        .range(RangeRequest::prefix("/k/").limit(0))
        .await
        .unwrap();
    assert_eq!((unlimited.kvs.len(), unlimited.more), (3, false));

    let all = whole.range(RangeRequest::prefix("/team-")).await.unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        ["/team-a/k/1", "/team-a/k/2", "/team-a/k/3", "/team-b/k/1"]
    );

    for key in ["/k/1", "/k/2", "/k/3"] {
        let event = next_event(&mut watch_a).await;
        assert_eq!((event.kind, event.kv.key.as_str()), (EventKind::Put, key));
    }
    team_a.delete("/k/2", None).await.unwrap();
    let removed = next_event(&mut watch_a).await;
    assert_eq!(
        (removed.kind, removed.kv.key.as_str()),
        (EventKind::Delete, "/k/2")
    );
    assert_eq!(removed.prev.map(|kv| kv.key), Some("/k/2".to_owned()));
    assert!(removed.kv.value.is_empty());
}

/// Compaction errors carry the revision etcd compacted to, which etcd's own
/// error does not say; future revisions carry the current one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd; run by make test"]
async fn compaction_errors_carry_the_compacted_revision() {
    let etcd = EtcdProcess::start();
    let store = connect(&etcd, EtcdConfig::default()).await;
    let first = store.create("/c/a", bytes("1"), None).await.unwrap();
    for i in 0..20 {
        store
            .create(&format!("/c/{i}"), bytes("x"), None)
            .await
            .unwrap();
    }
    let compacted = store.current_revision().await.unwrap() - 5;
    store.compact(compacted).await.unwrap();
    for _ in 0..3 {
        store.create("/c/after", bytes("x"), None).await.ok();
    }

    match store
        .range(RangeRequest::prefix("/c/").at_revision(first.mod_revision))
        .await
    {
        Err(StoreError::Compacted {
            requested,
            compacted: at,
        }) => {
            assert_eq!((requested, at), (first.mod_revision, compacted));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    match store.compact(compacted - 1).await {
        Err(StoreError::Compacted {
            requested,
            compacted: at,
        }) => {
            assert_eq!((requested, at), (compacted - 1, compacted));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    let current = store.current_revision().await.unwrap();
    match store.compact(current + 10).await {
        Err(StoreError::FutureRevision {
            requested,
            current: at,
        }) => {
            assert_eq!((requested, at), (current + 10, current));
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    let err = store
        .range(RangeRequest::prefix("/c/").at_revision(current + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");

    let mut watch = store.watch("/c/", first.mod_revision).await.unwrap();
    let item = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("no answer");
    match item {
        Some(Err(StoreError::Compacted {
            requested,
            compacted: at,
        })) => {
            assert_eq!((requested, at), (first.mod_revision, compacted));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(
        watch.next().await.is_none(),
        "the stream ends after its error"
    );
}

/// A watch is bounded by the request timeout only while it is set up: an
/// idle watch outlives it. Closing ends it and refuses later calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd; run by make test"]
async fn idle_watch_outlives_the_request_timeout_until_close() {
    let etcd = EtcdProcess::start();
    let config = EtcdConfig::default().request_timeout(Duration::from_millis(500));
    let store = connect(&etcd, config).await;
    let mut watch = store.watch("/idle/", 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kv = store.create("/idle/a", bytes("1"), None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, kv);

    store.close().await.unwrap();
    let end = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("watch ended");
    assert!(end.is_none(), "{end:?}");
    let err = store.watch("/idle/", 0).await.err();
    assert!(matches!(err, Some(StoreError::Closed)), "{err:?}");
    let err = store.grant_lease(Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
}

/// Lease TTLs round up to etcd's whole seconds, keep-alive reports the full
/// TTL, and expiry and revocation delete attached keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd; run by make test"]
async fn leases_round_trip() {
    let etcd = EtcdProcess::start();
    let store = connect(&etcd, EtcdConfig::default()).await;

    let err = store
        .grant_lease(Duration::from_millis(999))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidTtl { ttl_ms: 999 }),
        "{err:?}"
    );
    let kept = store
        .grant_lease(Duration::from_millis(2500))
        .await
        .unwrap();
    assert_eq!(
        store.keep_alive(kept).await.unwrap(),
        Duration::from_secs(3)
    );
    let kv = store
        .create("/l/kept", bytes("x"), Some(kept))
        .await
        .unwrap();
    assert_eq!(kv.lease, Some(kept));
    assert_eq!(
        store.get("/l/kept").await.unwrap().unwrap().lease,
        Some(kept)
    );

    let short = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    let mut watch = store.watch("/l/", 0).await.unwrap();
    store
        .create("/l/short", bytes("x"), Some(short))
        .await
        .unwrap();
    assert_eq!(next_event(&mut watch).await.kind, EventKind::Put);
    let expired = next_event(&mut watch).await;
    assert_eq!(
        (expired.kind, expired.kv.key.as_str()),
        (EventKind::Delete, "/l/short")
    );
    let err = store.keep_alive(short).await.unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseNotFound { lease } if lease == short),
        "{err:?}"
    );

    store.revoke_lease(kept).await.unwrap();
    assert_eq!(store.get("/l/kept").await.unwrap(), None);
    let err = store.revoke_lease(kept).await.unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseNotFound { lease } if lease == kept),
        "{err:?}"
    );
    let err = store
        .update("/l/none", bytes("x"), 1, Some(kept))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = store
        .create("/l/none", bytes("x"), Some(kept))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseNotFound { lease } if lease == kept),
        "{err:?}"
    );
}

/// Ranges and watch catch-ups larger than gRPC's default 4 MiB message limit
/// go through (etcd itself sends up to 2 GiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd; run by make test"]
async fn answers_beyond_grpcs_default_message_limit() {
    let etcd = EtcdProcess::start();
    let store = connect(&etcd, EtcdConfig::default()).await;
    // etcd refuses requests over 1.5 MiB by default: six 1 MiB values.
    let value = Bytes::from(vec![b'x'; 1 << 20]);
    let mut first = 0;
    for i in 0..6 {
        let kv = store
            .create(&format!("/big/{i}"), value.clone(), None)
            .await
            .unwrap();
        if i == 0 {
            first = kv.mod_revision;
        }
    }
    let all = store.range(RangeRequest::prefix("/big/")).await.unwrap();
    assert_eq!(all.kvs.len(), 6);
    assert!(all.kvs.iter().all(|kv| kv.value == value));
    let mut watch = store.watch("/big/", first).await.unwrap();
    for i in 0..6 {
        let event = next_event(&mut watch).await;
        assert_eq!(event.kv.key, format!("/big/{i}"));
    }
}

/// Connecting to an endpoint where nothing listens fails at once instead of
/// handing out a store whose every call would fail. Needs no etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_fast_when_etcd_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    drop(listener);
    let config = EtcdConfig::default()
        .endpoints([endpoint])
        .connect_timeout(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(2));
    let result = tokio::time::timeout(Duration::from_secs(10), EtcdStore::connect(config))
        .await
        .expect("connect gave up in time");
    assert!(matches!(result, Err(StoreError::Etcd(_))), "{result:?}");
}
