//! Events (`core/v1`) that skiff's components (the scheduler, the
//! controllers, the node agent) record about the objects they act on, so
//! that `kubectl describe` tells users why.
//!
//! Recording never blocks a reconcile: events go through a bounded queue to
//! one writer task, and are dropped (with a debug log) when the queue is
//! full, as client-go's recorder does. Repeats of the same event (object,
//! type, reason, message) bump `count` and `lastTimestamp` of the first one
//! instead of creating new objects.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use tokio::sync::mpsc;

/// Events waiting to be written; more are dropped.
const QUEUE: usize = 4096;
/// Distinct events remembered for counting repeats.
const REMEMBERED: usize = 4096;

/// Whether an event is routine or a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something happened as expected.
    Normal,
    /// Something went wrong or needs attention.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

struct Record {
    object: ObjectReference,
    kind: EventType,
    reason: String,
    message: String,
}

/// Records events as one component (`source.component`, e.g.
/// `default-scheduler`). Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Record>,
}

impl Recorder {
    /// A recorder writing through `client` as `component` on `host`, and the
    /// writer task to spawn (it ends when every recorder clone is dropped).
    pub fn new(
        client: Client,
        component: &str,
        host: &str,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, records) = mpsc::channel(QUEUE);
        let writer = Writer {
            client,
            source: EventSource {
                component: Some(component.to_owned()),
                host: Some(host.to_owned()).filter(|h| !h.is_empty()),
            },
            seen: HashMap::new(),
        };
        (Self { queue }, writer.run(records))
    }

    /// A recorder that drops every event, for components under test.
    pub fn discard() -> Self {
        let (queue, _) = mpsc::channel(1);
        Self { queue }
    }

    /// Records a `Normal` event about `object`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, message: String) {
        self.record(object.object_ref(&()), EventType::Normal, reason, message);
    }

    /// Records a `Warning` event about `object`.
    pub fn warning<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        message: String,
    ) {
        self.record(object.object_ref(&()), EventType::Warning, reason, message);
    }

    /// Records an event about the object `object` refers to.
    pub fn record(&self, object: ObjectReference, kind: EventType, reason: &str, message: String) {
        let record = Record {
            object,
            kind,
            reason: reason.to_owned(),
            message,
        };
        if self.queue.try_send(record).is_err() {
            tracing::debug!(reason, "event queue full or closed; event dropped");
        }
    }
}

/// Identity of an event for counting repeats.
#[derive(Hash, PartialEq, Eq)]
struct Key {
    object: (String, String, String, String),
    kind: EventType,
    reason: String,
    message: String,
}

/// Where a remembered event lives and how often it happened.
struct Seen {
    namespace: String,
    name: String,
    count: i32,
}

struct Writer {
    client: Client,
    source: EventSource,
    seen: HashMap<Key, Seen>,
}

impl Writer {
    async fn run(mut self, mut records: mpsc::Receiver<Record>) {
        while let Some(record) = records.recv().await {
            if let Err(error) = self.write(record).await {
                tracing::debug!(%error, "writing an event failed");
            }
        }
    }

    async fn write(&mut self, record: Record) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let key = Key {
            object: (
                record.object.kind.clone().unwrap_or_default(),
                record.object.namespace.clone().unwrap_or_default(),
                record.object.name.clone().unwrap_or_default(),
                record.object.uid.clone().unwrap_or_default(),
            ),
            kind: record.kind,
            reason: record.reason.clone(),
            message: record.message.clone(),
        };
        if let Some(seen) = self.seen.get_mut(&key) {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &seen.namespace);
            let patch = serde_json::json!({
                "count": seen.count + 1,
                "lastTimestamp": Time(now),
            });
            match api
                .patch(&seen.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    seen.count += 1;
                    return Ok(());
                }
                // Gone (events expire): record it anew below.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.seen.remove(&key);
                }
                Err(error) => return Err(error),
            }
        }

        let namespace = record
            .object
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let name = format!(
            "{}.{:x}",
            record.object.name.as_deref().unwrap_or("unknown"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: record.object,
            reason: Some(record.reason),
            message: Some(record.message),
            type_: Some(record.kind.as_str().to_owned()),
            source: Some(self.source.clone()),
            reporting_component: self.source.component.clone(),
            reporting_instance: self.source.host.clone(),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        if self.seen.len() >= REMEMBERED {
            self.seen.clear();
        }
        self.seen.insert(
            key,
            Seen {
                namespace,
                name,
                count: 1,
            },
        );
        Ok(())
    }
}
