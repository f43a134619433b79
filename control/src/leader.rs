//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` does it: with several servers on one etcd, exactly one
//! runs the scheduler and the controllers; the others wait and take over
//! when the leader stops renewing.
//!
//! Expiry is judged by the local clock from when this candidate last saw the
//! lease record change, never by comparing the holder's timestamps with the
//! local time, so clock skew between servers cannot make two leaders.
//! Updates carry the resourceVersion they read, so two candidates racing
//! for an expired lease cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// Timing of an election, client-go's defaults.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// How long a lease is valid after its last renewal (15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up (10 s).
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew (2 s).
    pub retry_period: Duration,
}

impl Default for LeaderElection {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate for one lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaderElection,
    /// The last lease record seen and when it was first seen (local time).
    observed: Option<(Record, Instant)>,
}

/// The parts of a lease that say who holds it; a change of any of them
/// (a renewal included) restarts the expiry clock.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: String,
    renew_time: Option<MicroTime>,
    transitions: i32,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.unwrap_or_default(),
            renew_time: spec.renew_time,
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

impl Elector {
    /// A candidate named `identity` for the lease `namespace/name`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaderElection,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: None,
        }
    }

    /// This candidate's identity (the lease's `holderIdentity` while it leads).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::debug!(%error, lease = %self.name, "leader election attempt failed")
                }
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the lease every retry period; returns when a renewal has not
    /// succeeded for the renew deadline (leadership is lost: everything run
    /// under it must stop).
    pub async fn hold(&mut self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %self.name, "another candidate took the lease");
                    return;
                }
                Err(error) => {
                    tracing::debug!(%error, lease = %self.name, "renewing the lease failed")
                }
            }
            if last_renewed.elapsed() >= self.timing.renew_deadline {
                tracing::warn!(lease = %self.name, "could not renew the lease in time; leadership lost");
                return;
            }
        }
    }

    /// Gives the lease up so that another candidate takes over at once
    /// (client-go's ReleaseOnCancel): holder cleared, duration 1 s.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released the lease"),
            Err(error) => tracing::debug!(%error, lease = %self.name, "releasing the lease failed"),
        }
    }

    /// One round of client-go's `tryAcquireOrRenew`: `Ok(true)` if this
    /// candidate holds the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let duration_seconds =
            i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };

        self.observe(&lease);
        let record = Record::of(&lease);
        let held_by_me = record.holder == self.identity;
        if !record.holder.is_empty() && !held_by_me {
            let valid_for = lease
                .spec
                .as_ref()
                .and_then(|spec| spec.lease_duration_seconds)
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or(self.timing.lease_duration);
            let seen_at = self
                .observed
                .as_ref()
                .map(|(_, at)| *at)
                .unwrap_or_else(Instant::now);
            if seen_at.elapsed() < valid_for {
                return Ok(false);
            }
        }

        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if !held_by_me {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(record.transitions + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(duration_seconds);
        spec.renew_time = Some(now);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Notes `lease` as seen now if its record changed.
    fn observe(&mut self, lease: &Lease) {
        let record = Record::of(lease);
        match &self.observed {
            Some((seen, _)) if *seen == record => {}
            _ => self.observed = Some((record, Instant::now())),
        }
    }
}
