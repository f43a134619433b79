//! containerd's content store, as a pull and a lookup use it: whether a
//! blob is there, reading a small one, labelling one, and writing one as a
//! stream (`Content.Write`: open, write at increasing offsets, commit with
//! the expected digest and size, which containerd verifies).
//!
//! Writes name their ingest `skiff-pull-<digest>`, so two pulls of the same
//! blob in a namespace meet on one ingest: the second finds it locked, waits
//! until the first is done, and then finds the blob there.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use containerd_client::services::v1::{
    AbortRequest, Info, InfoRequest, ReadContentRequest, UpdateRequest, WriteAction,
    WriteContentRequest, WriteContentResponse,
};
use futures::StreamExt as _;
use skiff_sdk::runtime::RuntimeError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::{Code, Status};

use crate::client::{Containerd, backend, is_already_exists, is_not_found};

/// Bytes sent to containerd in one write message (its gRPC limit is
/// 16 MiB).
pub const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// How long a pull waits for another pull's ingest of the same blob.
const LOCKED_INGEST_PATIENCE: Duration = Duration::from_secs(600);

/// The blob `digest`'s record in the namespace, or `None` when it is not
/// there.
pub async fn info(containerd: &Containerd, digest: &str) -> Result<Option<Info>, RuntimeError> {
    match containerd
        .content()
        .info(containerd.request(InfoRequest {
            digest: digest.to_owned(),
        }))
        .await
    {
        Ok(response) => Ok(response.into_inner().info),
        Err(status) if is_not_found(&status) => Ok(None),
        Err(status) => Err(backend("look up content")(status)),
    }
}

/// Reads the blob `digest` whole; `None` when it is not there. Refuses a
/// blob larger than `limit` bytes.
pub async fn read(
    containerd: &Containerd,
    digest: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, RuntimeError> {
    let mut stream = match containerd
        .content()
        .read(containerd.request(ReadContentRequest {
            digest: digest.to_owned(),
            offset: 0,
            size: 0,
        }))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) if is_not_found(&status) => return Ok(None),
        Err(status) => return Err(backend("read content")(status)),
    };
    let mut bytes = Vec::new();
    while let Some(message) = stream.next().await {
        let message = match message {
            Ok(message) => message,
            Err(status) if is_not_found(&status) => return Ok(None),
            Err(status) => return Err(backend("read content")(status)),
        };
        bytes.extend_from_slice(&message.data);
        if bytes.len() as u64 > limit {
            return Err(RuntimeError::Backend {
                operation: "read content",
                source: format!("blob {digest} is over the {limit} byte limit").into(),
            });
        }
    }
    Ok(Some(bytes))
}

/// Sets `labels` on the blob `digest`, leaving its other labels alone.
/// Labels that already have their value are not written again.
pub async fn add_labels(
    containerd: &Containerd,
    digest: &str,
    existing: &HashMap<String, String>,
    labels: &HashMap<String, String>,
) -> Result<(), RuntimeError> {
    let missing: HashMap<String, String> = labels
        .iter()
        .filter(|(key, value)| existing.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let paths = missing.keys().map(|key| format!("labels.{key}")).collect();
    containerd
        .content()
        .update(containerd.request(UpdateRequest {
            info: Some(Info {
                digest: digest.to_owned(),
                labels: missing,
                ..Info::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        }))
        .await
        .map_err(backend("label content"))?;
    Ok(())
}

/// The ingest a pull writes the blob `digest` through: the same for every
/// pull in a namespace, so that racing pulls meet on it.
fn ingest_ref(digest: &str) -> String {
    format!("skiff-pull-{digest}")
}

/// Discards the ingest of the blob `digest` (the bytes an unfinished write
/// left); nothing to discard is fine.
pub async fn abort(containerd: &Containerd, digest: &str) -> Result<(), RuntimeError> {
    match containerd
        .content()
        .abort(containerd.request(AbortRequest {
            r#ref: ingest_ref(digest),
        }))
        .await
    {
        Ok(_) => Ok(()),
        Err(status) if is_not_found(&status) => Ok(()),
        Err(status) => Err(backend("abort a content write")(status)),
    }
}

/// Who stored a blob a writer was writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// This writer (so far, for [`Writer::write`]).
    Here,
    /// Another writer, first: its bytes are in the store, and this write
    /// is over.
    Elsewhere,
}

/// What opening a write found.
pub enum Opened {
    /// The blob is already in the store; the lease now holds it.
    Present,
    /// The ingest is open for writing.
    Writer(Writer),
}

/// Opens the ingest of the blob `digest` of `size` bytes under `lease`.
/// A blob already in the namespace is reported present (containerd adds it
/// to the lease as it says so). While another writer holds the same ingest
/// this waits, and then usually finds the blob present.
pub async fn open(
    containerd: &Containerd,
    lease: &str,
    digest: &str,
    size: i64,
) -> Result<Opened, RuntimeError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match Writer::open(containerd, lease, digest, size).await {
            Ok(writer) => return Ok(Opened::Writer(writer)),
            Err(status) if is_already_exists(&status) => return Ok(Opened::Present),
            Err(status) if is_locked(&status) && started.elapsed() < LOCKED_INGEST_PATIENCE => {
                tracing::debug!(%digest, "another pull is writing this blob; waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(status) => return Err(backend("open a content write")(status)),
        }
    }
}

/// Whether a write failed because another writer holds the ingest
/// (containerd answers `Unavailable: ref … locked`).
fn is_locked(status: &Status) -> bool {
    status.code() == Code::Unavailable && status.message().contains("locked")
}

/// An open `Content.Write` stream: chunks are written in order, buffered
/// into messages of [`WRITE_CHUNK_BYTES`]; nothing is stored under the
/// digest until [`Writer::commit`]. Dropped without a commit, the stream
/// ends and the partial ingest is left for containerd to clean up.
pub struct Writer {
    digest: String,
    reference: String,
    size: i64,
    /// Bytes the ingest held when it was opened.
    stored: i64,
    offset: i64,
    buffer: Vec<u8>,
    requests: mpsc::Sender<WriteContentRequest>,
    responses: mpsc::UnboundedReceiver<Result<WriteContentResponse, Status>>,
    call: JoinHandle<()>,
}

impl Writer {
    /// Opens the stream and waits for containerd's answer to a first `Stat`
    /// (an error when the blob exists or another writer has the ingest).
    async fn open(
        containerd: &Containerd,
        lease: &str,
        digest: &str,
        size: i64,
    ) -> Result<Writer, Status> {
        let reference = ingest_ref(digest);
        let (requests, receiver) = mpsc::channel::<WriteContentRequest>(4);
        let (responder, responses) = mpsc::unbounded_channel();
        let outgoing = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|request| (request, receiver))
        });
        let mut client = containerd.content();
        let request = containerd.leased(outgoing, lease);
        let call = tokio::spawn(async move {
            let mut incoming = match client.write(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    let _ = responder.send(Err(status));
                    return;
                }
            };
            while let Some(message) = incoming.next().await {
                let failed = message.is_err();
                if responder.send(message).is_err() || failed {
                    return;
                }
            }
        });
        let stat = WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: reference.clone(),
            total: size,
            expected: digest.to_owned(),
            ..WriteContentRequest::default()
        };
        let mut writer = Writer {
            digest: digest.to_owned(),
            reference,
            size,
            stored: 0,
            offset: 0,
            buffer: Vec::with_capacity(WRITE_CHUNK_BYTES),
            requests,
            responses,
            call,
        };
        if writer.requests.send(stat).await.is_err() {
            return Err(writer.failure().await);
        }
        match writer.responses.recv().await {
            Some(Ok(status)) => {
                writer.stored = status.offset;
                Ok(writer)
            }
            Some(Err(status)) => Err(status),
            None => Err(Status::unknown("containerd ended the write stream at once")),
        }
    }

    /// Whether containerd holds every byte already: the blob is in another
    /// namespace (containerd shares its bytes), or an earlier write finished
    /// without committing. Then [`Writer::commit`] without writing commits
    /// those bytes (after checking them against the digest); writing
    /// anyway would start the ingest over.
    pub fn holds_everything(&self) -> bool {
        self.stored == self.size
    }

    /// Writes the next bytes of the blob. [`Stored::Elsewhere`] when
    /// another writer stored the blob meanwhile: this write is over.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<Stored, RuntimeError> {
        while !data.is_empty() {
            let room = WRITE_CHUNK_BYTES - self.buffer.len();
            let (now, later) = data.split_at(room.min(data.len()));
            self.buffer.extend_from_slice(now);
            data = later;
            if self.buffer.len() == WRITE_CHUNK_BYTES {
                if self.send(WriteAction::Write, HashMap::new()).await? == Stored::Elsewhere {
                    return Ok(Stored::Elsewhere);
                }
                // Surface the failure of an earlier message now rather
                // than after the whole blob was sent. (Only acks of writes
                // are drained here: a commit's answer is for `commit`.)
                while let Ok(response) = self.responses.try_recv() {
                    match response {
                        Ok(_) => {}
                        Err(status) if is_already_exists(&status) => return Ok(Stored::Elsewhere),
                        Err(status) => return Err(self.write_failure(status)),
                    }
                }
            }
        }
        Ok(Stored::Here)
    }

    /// Writes what is buffered and commits the blob with `labels`;
    /// containerd checks it against the digest and size it was opened
    /// with. [`Stored::Elsewhere`] when another writer stored the blob
    /// first (then `labels` were not applied).
    pub async fn commit(mut self, labels: HashMap<String, String>) -> Result<Stored, RuntimeError> {
        if self.offset == 0 && self.buffer.is_empty() && self.holds_everything() {
            // Nothing written: commit what containerd holds.
            self.offset = self.size;
        }
        if self.send(WriteAction::Commit, labels).await? == Stored::Elsewhere {
            return Ok(Stored::Elsewhere);
        }
        loop {
            match self.responses.recv().await {
                Some(Ok(response)) if response.action == WriteAction::Commit as i32 => {
                    return Ok(Stored::Here);
                }
                // Acks of earlier writes.
                Some(Ok(_)) => continue,
                Some(Err(status)) if is_already_exists(&status) => return Ok(Stored::Elsewhere),
                Some(Err(status)) => return Err(self.write_failure(status)),
                None => {
                    return Err(RuntimeError::Backend {
                        operation: "commit content",
                        source: format!(
                            "containerd ended the write of {} without committing it",
                            self.digest
                        )
                        .into(),
                    });
                }
            }
        }
    }

    /// Sends the buffer as one message with `action`.
    /// [`Stored::Elsewhere`] when the stream had ended because another
    /// writer stored the blob.
    async fn send(
        &mut self,
        action: WriteAction,
        labels: HashMap<String, String>,
    ) -> Result<Stored, RuntimeError> {
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(WRITE_CHUNK_BYTES));
        let request = WriteContentRequest {
            action: action as i32,
            r#ref: self.reference.clone(),
            total: self.size,
            expected: self.digest.clone(),
            offset: self.offset,
            labels,
            data,
        };
        self.offset += request.data.len() as i64;
        if self.requests.send(request).await.is_err() {
            // The stream ended: its last answer says why.
            let status = self.failure().await;
            if is_already_exists(&status) {
                return Ok(Stored::Elsewhere);
            }
            return Err(self.write_failure(status));
        }
        Ok(Stored::Here)
    }

    /// Why the stream ended: the status containerd ended it with.
    async fn failure(&mut self) -> Status {
        while let Some(response) = self.responses.recv().await {
            if let Err(status) = response {
                return status;
            }
        }
        Status::unknown("containerd ended the write stream")
    }

    /// Maps a failed write, naming the blob.
    fn write_failure(&self, status: Status) -> RuntimeError {
        if status.code() == Code::Unavailable {
            return backend("write content")(status);
        }
        RuntimeError::Backend {
            operation: "write content",
            source: format!(
                "blob {}: {:?}: {}",
                self.digest,
                status.code(),
                status.message()
            )
            .into(),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The call task ends by itself once the request channel closes;
        // aborting it ends the stream at once.
        self.call.abort();
    }
}
