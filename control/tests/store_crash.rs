//! Crash safety of the embedded store.
//!
//! The test runs a writer in a child process (this same executable, started
//! with `child DIR CYCLE`), kills it with SIGKILL at a random moment, reopens
//! the store and checks that every write the child saw acknowledged is there,
//! that revisions are contiguous and increasing, and that the revision never
//! goes backwards across restarts. It repeats for 20 cycles, each of which
//! also exercises recovery of the file the previous kill left behind.
//!
//! It has its own `main` (no libtest harness) because it must act as its own
//! child process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use skiff_control::store::{EmbeddedConfig, EmbeddedStore, RangeRequest, Revision, Store};

const CYCLES: usize = 20;
const WRITERS: usize = 8;
/// The child stops by itself after this long if nobody kills it.
const CHILD_LIFETIME: Duration = Duration::from_secs(20);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let dir = PathBuf::from(&args[2]);
        let cycle: usize = args[3].parse().expect("cycle number");
        runtime().block_on(child(&dir, cycle));
        return;
    }
    // libtest-style flags (--nocapture, --include-ignored, filters) are
    // accepted and ignored, except that a filter not matching skips the test.
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|f| "sigkill_keeps_acknowledged_writes".contains(f.as_str()))
    {
        println!("0 passed, 0 failed");
        return;
    }
    let started = Instant::now();
    runtime().block_on(parent());
    println!(
        "store_crash: sigkill_keeps_acknowledged_writes ok ({CYCLES} cycles, {:.1?})",
        started.elapsed()
    );
    println!("1 passed, 0 failed");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn store_path(dir: &Path) -> PathBuf {
    dir.join("store.redb")
}

/// Writes unique keys from several tasks and prints `ack KEY REV` once each
/// write is acknowledged.
async fn child(dir: &Path, cycle: usize) {
    let store = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(store_path(dir))).expect("open"));
    let value = Bytes::from(vec![b'x'; 1024]);
    let deadline = Instant::now() + CHILD_LIFETIME;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("/crash/{cycle:02}/{w}/{i:08}");
                    let kv = store
                        .create(&key, value.clone(), None)
                        .await
                        .expect("write");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {key} {}", kv.mod_revision).expect("stdout");
                    out.flush().expect("stdout");
                    i += 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
}

async fn parent() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let exe = std::env::current_exe().expect("own executable");
    let mut rng = rand::rng();
    let mut floor: Revision = 0;
    let mut total_acked = 0usize;
    for cycle in 0..CYCLES {
        let mut child = Command::new(&exe)
            .arg("child")
            .arg(dir.path())
            .arg(cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (first_ack_tx, first_ack) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let mut acked = BTreeMap::new();
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            // A line cut by the kill has no newline and is not an ack.
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
                let mut parts = line.trim_end().split(' ');
                if let (Some("ack"), Some(key), Some(rev), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                    && let Ok(rev) = rev.parse::<Revision>()
                {
                    acked.insert(key.to_owned(), rev);
                    let _ = first_ack_tx.send(());
                }
                line.clear();
            }
            acked
        });
        // Kill at a random moment: every fifth cycle early, while the child
        // opens (and repairs) the file; otherwise in the middle of a stream of
        // group commits, a random time after the first acknowledged write.
        let delay = if cycle % 5 == 4 {
            Duration::from_millis(rng.random_range(0..100))
        } else {
            let _ = first_ack.recv_timeout(Duration::from_secs(10));
            Duration::from_millis(rng.random_range(0..300))
        };
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap child");
        let acked = reader.join().expect("reader thread");
        total_acked += acked.len();

        let store = EmbeddedStore::open(EmbeddedConfig::new(store_path(dir.path())))
            .unwrap_or_else(|e| panic!("cycle {cycle}: reopen after SIGKILL failed: {e}"));
        let current = store.current_revision().await.expect("revision");
        assert!(
            current >= floor,
            "cycle {cycle}: revision went backwards: {current} < {floor}"
        );
        for (key, rev) in &acked {
            let kv =
                store.get(key).await.expect("get").unwrap_or_else(|| {
                    panic!("cycle {cycle}: acknowledged write {key}@{rev} lost")
                });
            assert_eq!(kv.mod_revision, *rev, "cycle {cycle}: {key}");
            assert_eq!(kv.value.len(), 1024, "cycle {cycle}: {key}");
        }
        // Only creates happen, so the keys' revisions are exactly 2..=current.
        let all = store
            .range(RangeRequest::prefix("/crash/"))
            .await
            .expect("range");
        let mut revisions: Vec<Revision> = all.kvs.iter().map(|kv| kv.mod_revision).collect();
        revisions.sort_unstable();
        let expected: Vec<Revision> = (2..=current).collect();
        assert!(
            revisions == expected,
            "cycle {cycle}: revisions not contiguous: {} keys up to revision {current}",
            revisions.len()
        );
        floor = current;
        store.close().await.expect("close");
        println!(
            "cycle {cycle:2}: killed {delay:?} after {}, {} acknowledged, revision {current}",
            if cycle % 5 == 4 { "start" } else { "first ack" },
            acked.len()
        );
    }
    assert!(total_acked > 0, "no write was ever acknowledged");
    // The history survived too: a watch from the start replays every revision.
    let store = EmbeddedStore::open(EmbeddedConfig::new(store_path(dir.path()))).expect("open");
    let current = store.current_revision().await.expect("revision");
    let mut watch = store.watch("/crash/", 2).await.expect("watch");
    use futures::StreamExt;
    for expected in 2..=current {
        let event = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("replay stalled")
            .expect("stream ended")
            .expect("stream failed");
        assert_eq!(event.revision(), expected);
    }
    store.close().await.expect("close");
}
