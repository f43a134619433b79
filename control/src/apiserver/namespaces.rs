//! Which namespaces accept new objects, kept in memory from a store watch so
//! that a create does not read its namespace from the store.
//!
//! The set only ever answers "yes": a namespace it holds exists and is not
//! terminating as of the last event it applied. Anything else (not started
//! yet, lagging behind a namespace just created, re-listing after an error)
//! falls back to reading the store, so a miss costs what every create cost
//! before and a namespace created a moment ago is never refused. A namespace
//! that starts terminating can still take objects until its event arrives
//! (Kubernetes' lifecycle check has the same window); the namespace cleanup
//! deletes them, since it finalizes only after a pass that finds nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::Value;

use super::meta;
use crate::store::{EventKind, KeyValue, RangeRequest, Revision, Store, StoreError};

const PREFIX: &str = "/registry/namespaces/";
/// Pause before following again after the watch failed.
const RETRY: Duration = Duration::from_millis(500);

/// The namespaces known to accept new objects.
#[derive(Default)]
pub(crate) struct ActiveNamespaces {
    state: RwLock<State>,
    started: std::sync::OnceLock<()>,
}

#[derive(Default)]
struct State {
    active: HashSet<String>,
    /// Namespaces this server is deleting: events before the revision of
    /// that write (`Revision::MAX` while it is in flight) are ignored, so
    /// that a late event cannot make them active again.
    held: HashMap<String, Revision>,
}

impl ActiveNamespaces {
    /// Whether `namespace` is known to exist and not be terminating. The
    /// first call starts following the store (on the current runtime).
    pub(crate) fn contains(self: &Arc<Self>, store: &Arc<dyn Store>, namespace: &str) -> bool {
        self.started.get_or_init(|| {
            tokio::spawn(follow(Arc::downgrade(self), store.clone()));
        });
        self.state
            .read()
            .expect("the namespace set is never poisoned")
            .active
            .contains(namespace)
    }

    /// Stops answering yes for `namespace` until [`Self::release`]: it is
    /// about to be deleted.
    pub(crate) fn hold(&self, namespace: &str) {
        let mut state = self.state.write().expect("never poisoned");
        state.active.remove(namespace);
        state.held.insert(namespace.to_owned(), Revision::MAX);
    }

    /// Follows `namespace` again from the event at `revision` (the
    /// revision of the delete; 0 if nothing was written).
    pub(crate) fn release(&self, namespace: &str, revision: Revision) {
        let mut state = self.state.write().expect("never poisoned");
        if revision == 0 {
            state.held.remove(namespace);
        } else {
            state.held.insert(namespace.to_owned(), revision);
        }
    }

    fn replace(&self, active: HashSet<String>) {
        let mut state = self.state.write().expect("never poisoned");
        state.active = active;
        let held: Vec<String> = state.held.keys().cloned().collect();
        for name in held {
            state.active.remove(&name);
        }
    }

    fn apply(&self, name: String, active: bool, revision: Revision) {
        let mut state = self.state.write().expect("never poisoned");
        if let Some(&held) = state.held.get(&name) {
            if revision < held {
                return;
            }
            state.held.remove(&name);
        }
        if active {
            state.active.insert(name);
        } else {
            state.active.remove(&name);
        }
    }
}

/// The namespace a key names, and whether its stored object accepts new
/// objects (exists, decodes, not terminating).
fn entry(kv: &KeyValue) -> Option<(String, bool)> {
    let name = kv.key.strip_prefix(PREFIX)?.to_owned();
    let object: Value = serde_json::from_slice(&kv.value).ok()?;
    Some((name, !meta::deleting(&object)))
}

/// Lists the namespaces, then follows their changes, until the set is
/// dropped or the store closes; re-lists after any watch failure.
async fn follow(set: Weak<ActiveNamespaces>, store: Arc<dyn Store>) {
    loop {
        match follow_once(&set, &store).await {
            Ok(Followed::Dropped) | Err(StoreError::Closed) => return,
            Ok(Followed::Ended) => tracing::debug!("namespace watch ended; listing again"),
            Err(error) => tracing::debug!(%error, "namespace watch failed; listing again"),
        }
        match set.upgrade() {
            Some(set) => set.replace(HashSet::new()),
            None => return,
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Why following stopped without an error.
enum Followed {
    /// Nobody holds the set any more.
    Dropped,
    /// The store's watch ended.
    Ended,
}

async fn follow_once(
    set: &Weak<ActiveNamespaces>,
    store: &Arc<dyn Store>,
) -> Result<Followed, StoreError> {
    let listed = store.range(RangeRequest::prefix(PREFIX)).await?;
    let mut events = store.watch(PREFIX, listed.revision + 1).await?;
    {
        let Some(set) = set.upgrade() else {
            return Ok(Followed::Dropped);
        };
        set.replace(
            listed
                .kvs
                .iter()
                .filter_map(entry)
                .filter_map(|(name, active)| active.then_some(name))
                .collect(),
        );
    }
    while let Some(event) = events.next().await {
        let event = event?;
        let Some(set) = set.upgrade() else {
            return Ok(Followed::Dropped);
        };
        let revision = event.revision();
        match event.kind {
            EventKind::Put => {
                if let Some((name, active)) = entry(&event.kv) {
                    set.apply(name, active, revision);
                }
            }
            EventKind::Delete => {
                if let Some(name) = event.kv.key.strip_prefix(PREFIX) {
                    set.apply(name.to_owned(), false, revision);
                }
            }
        }
    }
    Ok(Followed::Ended)
}
