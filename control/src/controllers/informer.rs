//! One watch per kind, shared by every controller and the scheduler: an
//! `Informer` keeps a cache (a kube-rs reflector [`Store`]) and fans each
//! change out to its subscribers, deletions included.
//!
//! kube-rs' own shared streams pass on applied objects only; controllers here
//! also need deletions (a ReplicaSet must notice a pod that vanished without
//! a graceful phase, the scheduler must free its resources). After a
//! re-list, objects that disappeared while the watch was down are passed on
//! as deleted, so nothing is lost across watch restarts.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{Stream, StreamExt as _};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, reflector::Lookup};
use serde::de::DeserializeOwned;

/// A change seen by an informer.
#[derive(Debug)]
pub enum Change<K> {
    /// The object was created or updated (or listed).
    Applied(Arc<K>),
    /// The object is gone; this is its last known state.
    Deleted(Arc<K>),
}

impl<K> Change<K> {
    /// The object, whichever the change.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Applied(object) | Change::Deleted(object) => object,
        }
    }
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied(object) => Change::Applied(object.clone()),
            Change::Deleted(object) => Change::Deleted(object.clone()),
        }
    }
}

/// The cache and subscribers of one kind. Create with [`Informer::new`],
/// subscribe, then drive [`Informer::run`].
pub struct Informer<K>
where
    K: Resource<DynamicType = ()> + Lookup<DynamicType = ()> + Clone + 'static,
{
    api: Api<K>,
    config: watcher::Config,
    reader: Store<K>,
    writer: Mutex<Option<Writer<K>>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()>
        + Lookup<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    /// An informer over `api` (usually `Api::all`) with `config`.
    pub fn new(api: Api<K>, config: watcher::Config) -> Arc<Self> {
        let writer = Writer::new(());
        Arc::new(Self {
            api,
            config,
            reader: writer.as_reader(),
            writer: Mutex::new(Some(writer)),
            subscribers: Mutex::new(Vec::new()),
        })
    }

    /// The cache; [`Store::wait_until_ready`] resolves after the first list.
    pub fn store(&self) -> Store<K> {
        self.reader.clone()
    }

    /// Every change from now on, starting with the objects already cached
    /// (as `Applied`).
    pub fn subscribe(&self) -> impl Stream<Item = Change<K>> + Send + 'static {
        let (sender, receiver) = mpsc::unbounded();
        let mut subscribers = self.subscribers.lock().expect("never poisoned");
        for object in self.reader.state() {
            // The receiver is alive: it is right here.
            let _ = sender.unbounded_send(Change::Applied(object));
        }
        subscribers.push(sender);
        receiver
    }

    /// The objects of every change, for a kube-rs `Controller`'s trigger
    /// streams (`for_shared_stream`, `owns_shared_stream`, ...).
    pub fn triggers(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.subscribe().map(|change| match change {
            Change::Applied(object) | Change::Deleted(object) => object,
        })
    }

    /// Watches and fans out until the API goes away; a failed watch is
    /// retried with kube-rs' default back-off. Runs once: a second call
    /// returns at once.
    pub async fn run(self: Arc<Self>) {
        let Some(mut writer) = self.writer.lock().expect("never poisoned").take() else {
            return;
        };
        let mut events = watcher::watcher(self.api.clone(), self.config.clone())
            .default_backoff()
            .boxed();
        // Objects seen since the last `Init`, to find what vanished while a
        // re-list was needed.
        let mut relisted: Option<HashSet<ObjectRef<K>>> = None;
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::debug!(kind = %<K as Resource>::kind(&()), %error, "informer watch failed; retrying");
                    continue;
                }
            };
            // What vanished across a re-list is known only before the
            // listed objects replace the cache.
            let vanished = match &event {
                Event::InitDone => {
                    let listed = relisted.take().unwrap_or_default();
                    self.reader
                        .state()
                        .into_iter()
                        .filter(|object| !listed.contains(&ObjectRef::from_obj(&**object)))
                        .collect()
                }
                _ => Vec::new(),
            };
            writer.apply_watcher_event(&event);
            match event {
                Event::Apply(object) => {
                    let object = self.cached(&object).unwrap_or_else(|| Arc::new(object));
                    self.publish(Change::Applied(object));
                }
                Event::Delete(object) => self.publish(Change::Deleted(Arc::new(object))),
                Event::Init => relisted = Some(HashSet::new()),
                Event::InitApply(object) => {
                    if let Some(listed) = relisted.as_mut() {
                        listed.insert(ObjectRef::from_obj(&object));
                    }
                }
                Event::InitDone => {
                    for object in vanished {
                        self.publish(Change::Deleted(object));
                    }
                    for object in self.reader.state() {
                        self.publish(Change::Applied(object));
                    }
                }
            }
        }
    }

    /// The cached `Arc` of `object` (so subscribers share one copy).
    fn cached(&self, object: &K) -> Option<Arc<K>> {
        self.reader.get(&ObjectRef::from_obj(object))
    }

    fn publish(&self, change: Change<K>) {
        let mut subscribers = self.subscribers.lock().expect("never poisoned");
        subscribers.retain(|subscriber| subscriber.unbounded_send(change.clone()).is_ok());
    }
}
