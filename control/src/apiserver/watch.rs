//! Watches: one store watch per resource fans out to every watcher through a
//! watch cache that keeps recent events, so watchers resuming from a recent
//! resourceVersion are served from memory. A watcher that cannot keep up is
//! dropped (its client resumes from the last resourceVersion it saw) instead
//! of buffering without bound; a resume from before the cache's window reads
//! the store's history, and one from before its compaction gets 410 Gone.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::handlers::Api;
use super::meta;
use super::resources::ResourceDef;
use crate::store::{EventKind, RangeRequest, Revision, Store, StoreError, WatchEvent};

/// Events kept per resource for watchers that resume.
const CACHE_EVENTS: usize = 4_096;
/// Events queued in the broadcast channel before a watcher counts as slow.
const BROADCAST_CAPACITY: usize = 1_024;

/// How a watch was asked for.
#[derive(Clone, Debug, Default)]
pub struct WatchParams {
    /// Deliver changes after this revision; `None` (or 0) first sends the
    /// current objects as ADDED events.
    pub resource_version: Option<Revision>,
    /// Whether BOOKMARK events may be sent.
    pub bookmarks: bool,
    /// End the watch after this long.
    pub timeout: Option<Duration>,
}

/// One change of one object, decoded once and shared by every watcher.
struct CachedEvent {
    revision: Revision,
    kind: EventKind,
    /// The object after the change (for a delete: before it), with its
    /// resourceVersion set to `revision`.
    object: Value,
    /// `object` serialized.
    object_json: Bytes,
    /// The object before the change, if it existed, with resourceVersion set
    /// to `revision` (what a watcher that stops matching receives).
    prev: Option<(Value, Bytes)>,
}

impl CachedEvent {
    fn from_store(event: WatchEvent) -> Option<Self> {
        let revision = event.revision();
        let decode = |bytes: &[u8]| -> Option<(Value, Bytes)> {
            let mut value: Value = serde_json::from_slice(bytes).ok()?;
            meta::set_resource_version(&mut value, revision);
            let json = Bytes::from(serde_json::to_vec(&value).ok()?);
            Some((value, json))
        };
        let prev = event.prev.as_ref().and_then(|p| decode(&p.value));
        let (object, object_json) = match event.kind {
            EventKind::Put => decode(&event.kv.value)?,
            EventKind::Delete => prev.clone()?,
        };
        Some(Self {
            revision,
            kind: event.kind,
            object,
            object_json,
            prev,
        })
    }
}

struct CacheState {
    events: VecDeque<Arc<CachedEvent>>,
    /// Every event with a revision of at least this is (or was) in `events`.
    complete_from: Revision,
    /// The newest revision seen.
    last: Revision,
}

/// The watch cache of one resource.
struct WatchCache {
    state: Mutex<CacheState>,
    events: broadcast::Sender<Arc<CachedEvent>>,
}

impl WatchCache {
    /// The oldest revision a watcher can start from in memory.
    fn available_from(state: &CacheState) -> Revision {
        if state.events.len() == CACHE_EVENTS {
            state
                .events
                .front()
                .map_or(state.complete_from, |e| e.revision)
        } else {
            state.complete_from
        }
    }
}

/// The watch caches of every resource, started on first use.
pub struct WatchCaches {
    store: Arc<dyn Store>,
    caches: Mutex<HashMap<&'static str, Arc<WatchCache>>>,
    bookmark_interval: Mutex<Duration>,
}

impl WatchCaches {
    /// Caches over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            caches: Mutex::new(HashMap::new()),
            bookmark_interval: Mutex::new(Duration::from_secs(30)),
        }
    }

    /// How often idle watches that allow bookmarks get one.
    pub fn set_bookmark_interval(&self, interval: Duration) {
        *lock(&self.bookmark_interval) = interval;
    }

    async fn cache(&self, def: &'static ResourceDef) -> Result<Arc<WatchCache>, ApiError> {
        if let Some(cache) = lock(&self.caches).get(def.plural) {
            return Ok(cache.clone());
        }
        let start = self.store.current_revision().await? + 1;
        let mut stream = self.store.watch(&def.prefix(None), start).await?;
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let cache = Arc::new(WatchCache {
            state: Mutex::new(CacheState {
                events: VecDeque::new(),
                complete_from: start,
                last: start - 1,
            }),
            events,
        });
        {
            let mut caches = lock(&self.caches);
            if let Some(existing) = caches.get(def.plural) {
                return Ok(existing.clone());
            }
            caches.insert(def.plural, cache.clone());
        }
        let weak = Arc::downgrade(&cache);
        let caches_owner = def.plural;
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let Some(cache) = weak.upgrade() else { return };
                match item {
                    Ok(event) => {
                        let Some(event) = CachedEvent::from_store(event).map(Arc::new) else {
                            continue;
                        };
                        {
                            let mut state = lock(&cache.state);
                            state.last = event.revision;
                            if state.events.len() == CACHE_EVENTS {
                                state.events.pop_front();
                            }
                            state.events.push_back(event.clone());
                        }
                        let _ = cache.events.send(event);
                    }
                    Err(error) => {
                        tracing::warn!(resource = caches_owner, error = %error, "watch cache lost its store watch");
                        break;
                    }
                }
            }
            // Watchers see the channel close and resume; the next watch
            // starts a fresh cache.
            if let Some(cache) = weak.upgrade() {
                lock(&cache.state).complete_from = Revision::MAX;
            }
        });
        Ok(cache)
    }

    /// Starts a watch; the stream yields newline-delimited watch events.
    pub async fn watch<M>(
        &self,
        api: &Api,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        params: WatchParams,
        matcher: M,
    ) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ApiError>
    where
        M: Fn(&Value) -> bool + Send + Sync + 'static,
    {
        let mut cache = self.cache(def).await?;
        if lock(&cache.state).complete_from == Revision::MAX {
            lock(&self.caches).remove(def.plural);
            cache = self.cache(def).await?;
        }
        let mut initial = VecDeque::new();
        let from = match params.resource_version.filter(|rv| *rv > 0) {
            Some(rv) => rv + 1,
            None => {
                let listed = api
                    .store()
                    .range(RangeRequest::prefix(def.prefix(namespace)))
                    .await?;
                for kv in listed.kvs {
                    let Ok(mut object) = serde_json::from_slice::<Value>(&kv.value) else {
                        continue;
                    };
                    meta::set_resource_version(&mut object, kv.mod_revision);
                    if matcher(&object) {
                        initial.push_back(line(
                            "ADDED",
                            &Bytes::from(serde_json::to_vec(&object).unwrap_or_default()),
                        ));
                    }
                }
                listed.revision + 1
            }
        };
        let receiver = cache.events.subscribe();
        // `None` when `from` is older than the cache's window.
        let replay: Option<Vec<Arc<CachedEvent>>> = {
            let state = lock(&cache.state);
            (from >= WatchCache::available_from(&state)).then(|| {
                state
                    .events
                    .iter()
                    .filter(|e| e.revision >= from)
                    .cloned()
                    .collect()
            })
        };
        let (replay, source) = match replay {
            Some(replay) => (replay, Feed::Cache(receiver)),
            None => {
                // Older than the cache's window: read the store's history.
                let stream = match self.store.watch(&def.prefix(namespace), from).await {
                    Err(StoreError::Compacted { .. }) => {
                        return Err(ApiError::Expired(format!(
                            "too old resource version: {} ({})",
                            from - 1,
                            from
                        )));
                    }
                    other => other?,
                };
                (Vec::new(), Feed::Store(stream))
            }
        };
        let bookmark_kind = json!({"kind": def.kind, "apiVersion": def.api_version()});
        let bookmarks = params.bookmarks.then(|| {
            let interval = *lock(&self.bookmark_interval);
            (
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval),
                bookmark_kind,
            )
        });
        let watcher = Watcher {
            matcher,
            next: from,
            initial,
            replay: replay.into(),
            feed: source,
            deadline: params.timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            bookmarks,
            done: false,
        };
        // The response body is the watcher itself: no task or queue per
        // watch; it advances only as fast as its client reads.
        Ok(futures::stream::unfold(watcher, |mut watcher| async move {
            let line = watcher.next_line().await?;
            Some((Ok(line), watcher))
        }))
    }
}

enum Feed {
    Cache(broadcast::Receiver<Arc<CachedEvent>>),
    Store(crate::store::WatchStream),
}

/// One watch: what is left to send first, where later events come from,
/// and what this watcher asked for.
struct Watcher<M> {
    matcher: M,
    /// The next revision to deliver.
    next: Revision,
    /// ADDED lines of the objects listed at the start.
    initial: VecDeque<Bytes>,
    /// Cached events after the requested revision, not sent yet.
    replay: VecDeque<Arc<CachedEvent>>,
    feed: Feed,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The bookmark ticker and the kind fields of a bookmark object.
    bookmarks: Option<(tokio::time::Interval, Value)>,
    /// An ERROR line was sent; nothing follows it.
    done: bool,
}

impl<M: Fn(&Value) -> bool + Send + Sync + 'static> Watcher<M> {
    /// The next line to send; `None` ends the watch (timeout, a slow
    /// watcher that fell behind the cache, the cache restarting, or an
    /// ERROR line already sent). The client resumes from the last
    /// resourceVersion it saw.
    async fn next_line(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(line) = self.initial.pop_front() {
            return Some(line);
        }
        while let Some(event) = self.replay.pop_front() {
            if let Some(line) = self.message(&event) {
                return Some(line);
            }
        }
        loop {
            let next = tokio::select! {
                () = async {
                    match &mut self.deadline {
                        Some(deadline) => deadline.await,
                        None => std::future::pending().await,
                    }
                } => return None,
                _ = async {
                    match &mut self.bookmarks {
                        Some((ticker, _)) => ticker.tick().await,
                        None => std::future::pending().await,
                    }
                } => return Some(self.bookmark()),
                next = next_event(&mut self.feed) => next,
            };
            match next {
                Some(Ok(event)) => {
                    if let Some(line) = self.message(&event) {
                        return Some(line);
                    }
                }
                // The store's history no longer reaches back far enough.
                Some(Err(status)) => {
                    self.done = true;
                    return Some(status);
                }
                // Slow, or the cache restarted: the client resumes.
                None => return None,
            }
        }
    }

    fn bookmark(&self) -> Bytes {
        let mut object = self
            .bookmarks
            .as_ref()
            .map_or_else(|| json!({}), |(_, kind)| kind.clone());
        object["metadata"] = json!({"resourceVersion": (self.next - 1).to_string()});
        line(
            "BOOKMARK",
            &Bytes::from(serde_json::to_vec(&object).unwrap_or_default()),
        )
    }

    /// What `event` means for this watcher, if anything.
    fn message(&mut self, event: &CachedEvent) -> Option<Bytes> {
        if event.revision < self.next {
            return None;
        }
        self.next = event.revision + 1;
        let now = event.kind == EventKind::Put && (self.matcher)(&event.object);
        let before = event
            .prev
            .as_ref()
            .is_some_and(|(prev, _)| (self.matcher)(prev));
        match (event.kind, now, before) {
            (EventKind::Put, true, true) => Some(line("MODIFIED", &event.object_json)),
            (EventKind::Put, true, false) => Some(line("ADDED", &event.object_json)),
            (_, false, true) => match &event.prev {
                Some((_, prev)) if event.kind == EventKind::Put => Some(line("DELETED", prev)),
                _ => Some(line("DELETED", &event.object_json)),
            },
            _ => None,
        }
    }
}

/// The next event of a feed: `None` ends the watch, `Some(Err(line))` ends it
/// with an ERROR event.
async fn next_event(feed: &mut Feed) -> Option<Result<Arc<CachedEvent>, Bytes>> {
    match feed {
        Feed::Cache(receiver) => match receiver.recv().await {
            Ok(event) => Some(Ok(event)),
            Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => {
                None
            }
        },
        Feed::Store(stream) => loop {
            match stream.next().await? {
                Ok(event) => {
                    if let Some(event) = CachedEvent::from_store(event) {
                        return Some(Ok(Arc::new(event)));
                    }
                }
                Err(error @ StoreError::Compacted { .. }) => {
                    let status =
                        ApiError::Expired(format!("too old resource version: {error}")).status();
                    let bytes = Bytes::from(serde_json::to_vec(&status).unwrap_or_default());
                    return Some(Err(line("ERROR", &bytes)));
                }
                Err(_) => return None,
            }
        },
    }
}

/// `{"type":TYPE,"object":OBJECT}\n`.
fn line(kind: &str, object: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(object.len() + kind.len() + 24);
    out.put_slice(b"{\"type\":\"");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\",\"object\":");
    out.put_slice(object);
    out.put_slice(b"}\n");
    out.freeze()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
