//! The etcd backend: [`Store`] over an etcd 3.4+ cluster through `etcd-client`.
//!
//! Every guarded write is one etcd transaction, so the store's revisions are
//! etcd's own and a watch sees exactly what etcd's watch reports. An optional
//! key prefix is prepended to every key sent and stripped from every key
//! returned, so that several skiff clusters (or tests) can share one etcd.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KvClient,
    LeaseClient, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient, WatchOptions,
};
use tokio::sync::watch;

use super::{
    Deleted, EventKind, KeyValue, LeaseId, RangeRequest, RangeResponse, Result, Revision, Store,
    StoreError, WatchEvent, WatchStream,
};

/// The port etcd serves clients on when an `etcd://` URL names none.
const DEFAULT_CLIENT_PORT: u16 = 2379;

/// How to reach etcd and how to lay keys out in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    endpoints: Vec<String>,
    key_prefix: String,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Default for EtcdConfig {
    /// A local etcd on its standard port, no key prefix, 5 s to connect and
    /// 10 s per request.
    fn default() -> Self {
        Self {
            endpoints: vec![format!("127.0.0.1:{DEFAULT_CLIENT_PORT}")],
            key_prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl EtcdConfig {
    /// Parses the `--store etcd://host1:2379,host2:2379[/prefix]` form.
    ///
    /// Each endpoint is `host[:port]` (port 2379 when omitted; IPv6 hosts in
    /// brackets). An optional path becomes the key prefix, without a trailing
    /// slash: `etcd://h:2379/team-a` stores `/registry/...` as
    /// `/team-a/registry/...`. User info, queries and fragments are refused
    /// rather than silently ignored.
    pub fn from_url(url: &str) -> Result<Self> {
        let invalid = |reason: String| StoreError::InvalidEtcdUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("etcd://"))
            .map(|_| &url[7..])
            .ok_or_else(|| invalid("it must start with etcd://".to_owned()))?;
        if let Some(bad) = rest.chars().find(|c| matches!(c, '?' | '#' | '@')) {
            return Err(invalid(format!(
                "{bad:?} is not supported: give endpoints and an optional key prefix only"
            )));
        }
        if let Some(bad) = rest.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(format!("it contains the character {bad:?}")));
        }
        let (hosts, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        let key_prefix = path.trim_end_matches('/').to_owned();
        if hosts.is_empty() {
            return Err(invalid("it names no endpoint".to_owned()));
        }
        let endpoints = hosts
            .split(',')
            .map(parse_endpoint)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(invalid)?;
        Ok(Self {
            endpoints,
            key_prefix,
            ..Self::default()
        })
    }

    /// The etcd client endpoints (`host:port`, or `http://host:port`).
    pub fn endpoint_addresses(&self) -> &[String] {
        &self.endpoints
    }

    /// Sets the etcd client endpoints (`host:port`, or `http://host:port`).
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// A prefix prepended to every key in etcd and stripped from every key
    /// returned, so that several users can share one etcd. Empty by default.
    pub fn key_prefix(mut self, key_prefix: impl Into<String>) -> Self {
        self.key_prefix = key_prefix.into();
        self
    }

    /// How long to wait for a TCP connection to an endpoint.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the answer to one request. It bounds the setup of
    /// a watch but not the watch's lifetime.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// Checks one `host[:port]` of an `etcd://` URL and fills in the default port.
fn parse_endpoint(endpoint: &str) -> std::result::Result<String, String> {
    if endpoint.is_empty() {
        return Err("it has an empty endpoint (two commas in a row?)".to_owned());
    }
    let (host, port) = if let Some(bracketed) = endpoint.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("endpoint {endpoint:?} opens [ without closing it"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("endpoint {endpoint:?} has text after ]")),
            },
        }
    } else {
        match endpoint.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (endpoint, None),
        }
    };
    if host.is_empty() {
        return Err(format!("endpoint {endpoint:?} has no host"));
    }
    if !endpoint.starts_with('[') && host.contains([':', '[', ']']) {
        return Err(format!(
            "endpoint {endpoint:?} is ambiguous: write IPv6 addresses in brackets"
        ));
    }
    let port = match port {
        None => DEFAULT_CLIENT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => {
                return Err(format!(
                    "endpoint {endpoint:?} has an invalid port {port:?}"
                ));
            }
        },
    };
    if endpoint.starts_with('[') {
        Ok(format!("[{host}]:{port}"))
    } else {
        Ok(format!("{host}:{port}"))
    }
}

/// The largest gRPC message the store accepts from etcd, as kube-apiserver
/// does: a range without a limit, or a watch catching up on up to 1,000
/// revisions in one answer, easily passes gRPC's default of 4 MiB.
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// A [`Store`] backed by an etcd cluster.
///
/// Cloning etcd-client's handles is cheap (they share one channel), so every
/// request uses its own clone and the store needs no lock.
pub struct EtcdStore {
    kv: KvClient,
    watches: WatchClient,
    leases: LeaseClient,
    /// Prepended to every key sent, stripped from every key returned.
    prefix: Vec<u8>,
    /// Set to `true` by [`Store::close`]; watches end when it changes.
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("closed", &*self.closed.borrow())
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers (a linearizable read, so
    /// the cluster has a leader) before returning.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout);
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(StoreError::Etcd)?;
        let store = Self {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watches: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            leases: client.lease_client(),
            prefix: config.key_prefix.into_bytes(),
            closed: watch::Sender::new(false),
        };
        store.current_revision().await?;
        tracing::debug!(endpoints = ?config.endpoints, "connected to etcd");
        Ok(store)
    }

    fn ensure_open(&self) -> Result<()> {
        if *self.closed.borrow() {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// The key as stored in etcd.
    fn etcd_key(&self, key: &str) -> Vec<u8> {
        prefixed(&self.prefix, key)
    }

    fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        key_value(&self.prefix, kv)
    }

    /// The newest revision, from the header of a count-only read.
    async fn header_revision(&self) -> Result<Revision> {
        let response = self
            .kv
            .clone()
            .get(
                probe_key(&self.prefix),
                Some(GetOptions::new().with_count_only()),
            )
            .await
            .map_err(StoreError::Etcd)?;
        header_revision(response.header())
    }

    /// Whether etcd can still serve a read at `revision`.
    async fn readable_at(
        &self,
        revision: Revision,
    ) -> std::result::Result<bool, etcd_client::Error> {
        let options = GetOptions::new().with_count_only().with_revision(revision);
        match self
            .kv
            .clone()
            .get(probe_key(&self.prefix), Some(options))
            .await
        {
            Ok(_) => Ok(true),
            Err(error) => match classify(&error) {
                Failure::Compacted => Ok(false),
                _ => Err(error),
            },
        }
    }

    /// The oldest revision etcd still holds, known to be at least
    /// `at_least`.
    ///
    /// etcd 3.4 reports "compacted" without saying up to where, and exposes
    /// the compacted revision nowhere else but in a watch's cancel message.
    /// Reads at a revision succeed exactly from the compacted revision on, so
    /// this binary-searches `[at_least, newest]` with count-only reads of one
    /// key (about log2(newest) cheap requests, on a path that only runs after
    /// a compaction error). Should a probe fail, it settles for `at_least`.
    async fn compacted_revision(&self, at_least: Revision) -> Revision {
        let Ok(newest) = self.header_revision().await else {
            return at_least;
        };
        let (mut low, mut high) = (at_least.max(1), newest.max(at_least));
        while low < high {
            let middle = low + (high - low) / 2;
            match self.readable_at(middle).await {
                Ok(true) => high = middle,
                Ok(false) => low = middle + 1,
                Err(error) => {
                    tracing::debug!(%error, "could not locate etcd's compacted revision");
                    return at_least;
                }
            }
        }
        low
    }

    /// Maps an etcd failure on a read or compaction at `requested`.
    async fn revision_error(&self, error: etcd_client::Error, requested: Revision) -> StoreError {
        match classify(&error) {
            Failure::Compacted => StoreError::Compacted {
                requested,
                // A read fails below the compacted revision, a compaction at
                // or below it.
                compacted: self.compacted_revision(requested).await,
            },
            Failure::FutureRevision => StoreError::FutureRevision {
                requested,
                current: self.header_revision().await.unwrap_or(requested),
            },
            _ => StoreError::Etcd(error),
        }
    }

    async fn txn(&self, txn: Txn, lease: Option<LeaseId>) -> Result<TxnResponse> {
        self.kv
            .clone()
            .txn(txn)
            .await
            .map_err(|error| match (classify(&error), lease) {
                (Failure::LeaseNotFound, Some(lease)) => StoreError::LeaseNotFound { lease },
                _ => StoreError::Etcd(error),
            })
    }

    /// The error for a guarded write whose comparison failed, from the
    /// key's state read in the same transaction.
    fn guard_failed(&self, key: &str, expected: Revision, response: &TxnResponse) -> StoreError {
        let current = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| kv.mod_revision())),
            _ => None,
        });
        match current {
            Some(Some(actual)) => StoreError::Conflict {
                key: key.to_owned(),
                expected,
                actual,
            },
            Some(None) => StoreError::NotFound {
                key: key.to_owned(),
            },
            None => StoreError::EtcdProtocol("failed transaction without its read"),
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.ensure_open()?;
        let response = self
            .kv
            .clone()
            .get(self.etcd_key(key), None)
            .await
            .map_err(StoreError::Etcd)?;
        response
            .kvs()
            .first()
            .map(|kv| self.key_value(kv))
            .transpose()
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.ensure_open()?;
        let (mut start, end) = prefix_range(&self.prefix, &request.prefix);
        if let Some(after) = &request.start_after {
            let mut next = self.etcd_key(after);
            next.push(0);
            start = start.max(next);
        }
        let mut options = GetOptions::new().with_range(end);
        if let Some(revision) = request.revision {
            options = options.with_revision(revision);
        }
        // A limit of 0 means no limit, in etcd as in Kubernetes.
        if let Some(limit) = request.limit.filter(|l| *l > 0) {
            options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let response = match self.kv.clone().get(start, Some(options)).await {
            Ok(response) => response,
            Err(error) => {
                let requested = request.revision.unwrap_or_default();
                return Err(self.revision_error(error, requested).await);
            }
        };
        let kvs = response
            .kvs()
            .iter()
            .map(|kv| self.key_value(kv))
            .collect::<Result<Vec<_>>>()?;
        let more = response.more();
        // etcd's header carries the newest revision even for a read in the
        // past; the snapshot read is the one asked for.
        let revision = match request.revision {
            Some(revision) if revision > 0 => revision,
            _ => header_revision(response.header())?,
        };
        Ok(RangeResponse {
            kvs,
            revision,
            more,
        })
    }

    async fn create(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<KeyValue> {
        self.ensure_open()?;
        let etcd_key = self.etcd_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                etcd_key,
                value.to_vec(),
                Some(put_options(lease)),
            )]);
        let response = self.txn(txn, lease).await?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let revision = header_revision(response.header())?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue> {
        self.ensure_open()?;
        let etcd_key = self.etcd_key(key);
        let txn = Txn::new()
            .when([
                Compare::mod_revision(etcd_key.clone(), CompareOp::Equal, expected),
                // An absent key has mod revision 0: never let `expected == 0`
                // turn an update into a create.
                Compare::version(etcd_key.clone(), CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(
                etcd_key.clone(),
                value.to_vec(),
                Some(put_options(lease).with_prev_key()),
            )])
            .or_else([TxnOp::get(etcd_key, None)]);
        let response = self.txn(txn, lease).await?;
        if !response.succeeded() {
            return Err(self.guard_failed(key, expected, &response));
        }
        let revision = header_revision(response.header())?;
        let prev = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(put) => put.prev_key().cloned(),
                _ => None,
            })
            .ok_or(StoreError::EtcdProtocol(
                "update without the previous value",
            ))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: prev.create_revision(),
            mod_revision: revision,
            version: prev.version() + 1,
            lease,
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        self.ensure_open()?;
        let etcd_key = self.etcd_key(key);
        let delete = TxnOp::delete(etcd_key.clone(), Some(DeleteOptions::new().with_prev_key()));
        let txn = match expected {
            Some(expected) => Txn::new()
                .when([Compare::mod_revision(
                    etcd_key.clone(),
                    CompareOp::Equal,
                    expected,
                )])
                .and_then([delete])
                .or_else([TxnOp::get(etcd_key, None)]),
            None => Txn::new().and_then([delete]),
        };
        let response = self.txn(txn, None).await?;
        if !response.succeeded() {
            let expected = expected.unwrap_or_default();
            return Err(self.guard_failed(key, expected, &response));
        }
        let prev = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(delete) => Some(delete.prev_kvs().first().cloned()),
            _ => None,
        });
        let prev = match prev {
            Some(Some(prev)) => self.key_value(&prev)?,
            Some(None) => {
                return Err(StoreError::NotFound {
                    key: key.to_owned(),
                });
            }
            None => return Err(StoreError::EtcdProtocol("delete without its result")),
        };
        Ok(Deleted {
            revision: header_revision(response.header())?,
            prev,
        })
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        self.ensure_open()?;
        let (start, end) = prefix_range(&self.prefix, prefix);
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(from)
            .with_prev_key();
        let mut stream = self
            .watches
            .clone()
            .watch(start, Some(options))
            .await
            .map_err(StoreError::Etcd)?;
        // Wait for etcd to confirm the watch, so that a write made after
        // this returns is always seen.
        let Some(created) = stream.message().await.map_err(StoreError::Etcd)? else {
            return Err(StoreError::EtcdProtocol(
                "watch ended before it was created",
            ));
        };
        if !created.created() {
            return Err(StoreError::EtcdProtocol(
                "watch answered before it was created",
            ));
        }
        if created.canceled() {
            if created.compact_revision() > 0 {
                return Err(StoreError::Compacted {
                    requested: from,
                    compacted: created.compact_revision(),
                });
            }
            tracing::warn!(reason = created.cancel_reason(), "etcd refused a watch");
            return Err(StoreError::EtcdProtocol("etcd refused the watch"));
        }
        let next_revision = if from > 0 {
            from
        } else {
            header_revision(created.header())? + 1
        };
        let state = WatchState {
            stream,
            prefix: self.prefix.clone(),
            closed: self.closed.subscribe(),
            pending: VecDeque::new(),
            next_revision,
            ended: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, WatchState::next)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.ensure_open()?;
        self.header_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.ensure_open()?;
        let options = etcd_client::CompactionOptions::new().with_physical();
        match self.kv.clone().compact(revision, Some(options)).await {
            Ok(_) => Ok(()),
            Err(error) => Err(self.revision_error(error, revision).await),
        }
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        self.ensure_open()?;
        if ttl < Duration::from_secs(1) {
            return Err(StoreError::InvalidTtl {
                ttl_ms: ttl.as_millis(),
            });
        }
        // etcd counts whole seconds; never grant less than asked.
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        let response = self
            .leases
            .clone()
            .grant(seconds, None)
            .await
            .map_err(StoreError::Etcd)?;
        if !response.error().is_empty() {
            tracing::warn!(error = response.error(), "etcd refused a lease");
            return Err(StoreError::EtcdProtocol("etcd refused to grant the lease"));
        }
        Ok(response.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.ensure_open()?;
        // etcd-client opens the keep-alive stream with one renewal and keeps
        // the TTL of its answer to itself: a second renewal on the same
        // stream reports it.
        let (mut keeper, mut responses) = match self.leases.clone().keep_alive(lease).await {
            Ok(stream) => stream,
            // How etcd-client reports etcd's TTL of 0 on the first renewal.
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => {
                return Err(StoreError::LeaseNotFound { lease });
            }
            Err(error) => {
                return Err(match classify(&error) {
                    Failure::LeaseNotFound => StoreError::LeaseNotFound { lease },
                    _ => StoreError::Etcd(error),
                });
            }
        };
        keeper.keep_alive().await.map_err(StoreError::Etcd)?;
        let Some(response) = responses.message().await.map_err(StoreError::Etcd)? else {
            return Err(StoreError::EtcdProtocol(
                "keep-alive ended without an answer",
            ));
        };
        // A TTL of 0 is etcd's "no such lease" (revoked in between).
        match u64::try_from(response.ttl()) {
            Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
            _ => Err(StoreError::LeaseNotFound { lease }),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.ensure_open()?;
        match self.leases.clone().revoke(lease).await {
            Ok(_) => Ok(()),
            Err(error) => Err(match classify(&error) {
                Failure::LeaseNotFound => StoreError::LeaseNotFound { lease },
                _ => StoreError::Etcd(error),
            }),
        }
    }

    async fn close(&self) -> Result<()> {
        // etcd made every acknowledged write durable before acknowledging it:
        // closing only refuses further calls and ends the watches.
        self.closed.send_replace(true);
        Ok(())
    }
}

/// A watch in progress: etcd's stream and the events of its last answer not
/// yet handed out.
struct WatchState {
    stream: etcd_client::WatchStream,
    prefix: Vec<u8>,
    closed: watch::Receiver<bool>,
    pending: VecDeque<Result<WatchEvent>>,
    /// The revision the next event must have at least; what a compaction
    /// error reports as requested.
    next_revision: Revision,
    /// No more answers will be read; `pending` drains, then the stream ends.
    ended: bool,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<WatchEvent>, Self)> {
        loop {
            if *self.closed.borrow() {
                return None;
            }
            if let Some(item) = self.pending.pop_front() {
                return Some((item, self));
            }
            if self.ended {
                return None;
            }
            let message = tokio::select! {
                // Ends the watch when the store closes or is dropped.
                _ = self.closed.wait_for(|closed| *closed) => return None,
                message = self.stream.message() => message,
            };
            self.absorb(message);
        }
    }

    /// Queues what one answer from etcd means for the watcher.
    fn absorb(
        &mut self,
        message: std::result::Result<Option<etcd_client::WatchResponse>, etcd_client::Error>,
    ) {
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                return self.fail(StoreError::EtcdProtocol("etcd ended the watch stream"));
            }
            Err(error) => return self.fail(StoreError::Etcd(error)),
        };
        for event in response.events() {
            match watch_event(&self.prefix, event) {
                Ok(event) => {
                    self.next_revision = event.revision() + 1;
                    self.pending.push_back(Ok(event));
                }
                Err(error) => return self.fail(error),
            }
        }
        if response.compact_revision() > 0 {
            self.fail(StoreError::Compacted {
                requested: self.next_revision,
                compacted: response.compact_revision(),
            });
        } else if response.canceled() {
            tracing::warn!(reason = response.cancel_reason(), "etcd canceled a watch");
            self.fail(StoreError::EtcdProtocol("etcd canceled the watch"));
        }
    }

    fn fail(&mut self, error: StoreError) {
        self.pending.push_back(Err(error));
        self.ended = true;
    }
}

fn watch_event(prefix: &[u8], event: &etcd_client::Event) -> Result<WatchEvent> {
    let kind = match event.event_type() {
        EventType::Put => EventKind::Put,
        EventType::Delete => EventKind::Delete,
    };
    let kv = event
        .kv()
        .ok_or(StoreError::EtcdProtocol("watch event without a key"))?;
    Ok(WatchEvent {
        kind,
        kv: key_value(prefix, kv)?,
        prev: event
            .prev_kv()
            .map(|kv| key_value(prefix, kv))
            .transpose()?,
    })
}

/// Why an etcd request failed, as far as the store's errors distinguish.
enum Failure {
    Compacted,
    FutureRevision,
    LeaseNotFound,
    Other,
}

/// Recognises etcd's errors by their gRPC message, which is all etcd sends
/// (the codes are shared: both revision errors are `OutOfRange`).
fn classify(error: &etcd_client::Error) -> Failure {
    let etcd_client::Error::GRpcStatus(status) = error else {
        return Failure::Other;
    };
    let message = status.message();
    if message.contains("required revision has been compacted") {
        Failure::Compacted
    } else if message.contains("required revision is a future revision") {
        Failure::FutureRevision
    } else if message.contains("requested lease not found") {
        Failure::LeaseNotFound
    } else {
        Failure::Other
    }
}

fn put_options(lease: Option<LeaseId>) -> PutOptions {
    match lease {
        Some(lease) => PutOptions::new().with_lease(lease),
        None => PutOptions::new(),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|header| header.revision())
        .ok_or(StoreError::EtcdProtocol("response without a header"))
}

fn prefixed(prefix: &[u8], key: &str) -> Vec<u8> {
    let mut etcd_key = Vec::with_capacity(prefix.len() + key.len());
    etcd_key.extend_from_slice(prefix);
    etcd_key.extend_from_slice(key.as_bytes());
    etcd_key
}

/// Any single key, for requests that only want a response header.
fn probe_key(prefix: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        vec![0]
    } else {
        prefix.to_vec()
    }
}

/// The etcd range `[start, end)` holding every key that starts with `key`
/// once the store's prefix is prepended. etcd spells "to the end of the key
/// space" as an end of `[0]`, and refuses an empty start key.
fn prefix_range(prefix: &[u8], key: &str) -> (Vec<u8>, Vec<u8>) {
    let start = prefixed(prefix, key);
    let mut end = start.clone();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            let start = if start.is_empty() { vec![0] } else { start };
            return (start, end);
        }
    }
    let start = if start.is_empty() { vec![0] } else { start };
    (start, vec![0])
}

fn key_value(prefix: &[u8], kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = kv
        .key()
        .strip_prefix(prefix)
        .ok_or(StoreError::EtcdProtocol(
            "etcd returned a key outside the key prefix",
        ))?;
    let key = std::str::from_utf8(key)
        .map_err(|_| StoreError::EtcdProtocol("etcd returned a key that is not UTF-8"))?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: (kv.lease() != 0).then_some(kv.lease()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `url` and renders the result as `endpoints | prefix`, or the
    /// error's reason.
    fn check(url: &str, expect: &str) {
        let actual = match EtcdConfig::from_url(url) {
            Ok(config) => format!("{} | {}", config.endpoints.join(","), config.key_prefix),
            Err(StoreError::InvalidEtcdUrl {
                url: in_error,
                reason,
            }) => {
                assert_eq!(in_error, url);
                format!("error: {reason}")
            }
            Err(other) => panic!("unexpected error {other:?}"),
        };
        assert_eq!(actual, expect, "for {url}");
    }

    #[test]
    fn from_url() {
        check("etcd://127.0.0.1:2379", "127.0.0.1:2379 | ");
        check("etcd://h1:2379,h2:2380", "h1:2379,h2:2380 | ");
        check("ETCD://h1", "h1:2379 | ");
        check("etcd://h1:2379/team-a/", "h1:2379 | /team-a");
        check("etcd://h1/", "h1:2379 | ");
        check(
            "etcd://[::1]:2379,[fe80::1]",
            "[::1]:2379,[fe80::1]:2379 | ",
        );
        check("http://h1:2379", "error: it must start with etcd://");
        check("etcd", "error: it must start with etcd://");
        check("etcd://", "error: it names no endpoint");
        check("etcd:///prefix", "error: it names no endpoint");
        check(
            "etcd://h1,,h2",
            "error: it has an empty endpoint (two commas in a row?)",
        );
        check(
            "etcd://h1:",
            "error: endpoint \"h1:\" has an invalid port \"\"",
        );
        check(
            "etcd://h1:0",
            "error: endpoint \"h1:0\" has an invalid port \"0\"",
        );
        check(
            "etcd://h1:99999",
            "error: endpoint \"h1:99999\" has an invalid port \"99999\"",
        );
        check("etcd://:2379", "error: endpoint \":2379\" has no host");
        check(
            "etcd://::1",
            "error: endpoint \"::1\" is ambiguous: write IPv6 addresses in brackets",
        );
        check(
            "etcd://[::1",
            "error: endpoint \"[::1\" opens [ without closing it",
        );
        check(
            "etcd://[::1]x",
            "error: endpoint \"[::1]x\" has text after ]",
        );
        check(
            "etcd://u:p@h1",
            "error: '@' is not supported: give endpoints and an optional key prefix only",
        );
        check(
            "etcd://h1?x=1",
            "error: '?' is not supported: give endpoints and an optional key prefix only",
        );
        check("etcd://h1, h2", "error: it contains the character ' '");
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_range(b"", ""), (vec![0], vec![0]));
        assert_eq!(prefix_range(b"", "/a"), (b"/a".to_vec(), b"/b".to_vec()));
        assert_eq!(prefix_range(b"/p", ""), (b"/p".to_vec(), b"/q".to_vec()));
        assert_eq!(
            prefix_range(b"/p", "/a"),
            (b"/p/a".to_vec(), b"/p/b".to_vec())
        );
        assert_eq!(prefix_range(b"\xff", ""), (vec![0xff], vec![0]));
        assert_eq!(
            prefix_range(b"a\xff", ""),
            (b"a\xff".to_vec(), b"b".to_vec())
        );
    }
}
