//! The containerd lease a pull works under: everything it writes (content,
//! snapshots) and everything it finds already there and builds on is held
//! by the lease, so that containerd's garbage collector cannot take half a
//! pull before the image record and its labels hold it. The lease expires on
//! its own if the agent dies mid-pull, and is deleted when the pull ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use containerd_client::services::v1::{AddResourceRequest, CreateRequest, DeleteRequest, Resource};
use skiff_sdk::runtime::RuntimeError;

use crate::client::{Containerd, SNAPSHOTTER, backend};

/// The label containerd reads a lease's expiry from (RFC 3339).
const EXPIRE_LABEL: &str = "containerd.io/gc.expire";

/// How long a lease outlives an agent that died mid-pull.
const LEASE_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// A lease held for one pull.
pub struct Lease {
    /// The lease ID, for the `containerd-lease` header.
    pub id: String,
}

impl Lease {
    /// Creates a lease that expires after [`LEASE_LIFETIME`].
    pub async fn create(containerd: &Containerd) -> Result<Lease, RuntimeError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = jiff::Timestamp::now();
        let id = format!(
            "skiff-pull-{}-{}-{}",
            now.as_nanosecond(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let expires =
            jiff::Timestamp::from_second(now.as_second() + LEASE_LIFETIME.as_secs() as i64)
                .map_err(|error| RuntimeError::Backend {
                    operation: "create a lease",
                    source: Box::new(error),
                })?;
        containerd
            .leases()
            .create(containerd.request(CreateRequest {
                id: id.clone(),
                labels: HashMap::from([(EXPIRE_LABEL.to_owned(), expires.to_string())]),
            }))
            .await
            .map_err(backend("create a lease"))?;
        Ok(Lease { id })
    }

    /// Holds the committed snapshot `name` (if it exists) until the lease
    /// ends, so that a pull can build on a snapshot nothing else holds yet.
    pub async fn hold_snapshot(
        &self,
        containerd: &Containerd,
        name: &str,
    ) -> Result<(), RuntimeError> {
        containerd
            .leases()
            .add_resource(containerd.request(AddResourceRequest {
                id: self.id.clone(),
                resource: Some(Resource {
                    id: name.to_owned(),
                    r#type: format!("snapshots/{SNAPSHOTTER}"),
                }),
            }))
            .await
            .map_err(backend("add a snapshot to a lease"))?;
        Ok(())
    }

    /// Deletes the lease; what it held and nothing else holds becomes
    /// garbage. A failure is logged: the lease expires anyway.
    pub async fn delete(self, containerd: &Containerd) {
        if let Err(status) = containerd
            .leases()
            .delete(containerd.request(DeleteRequest {
                id: self.id.clone(),
                sync: false,
            }))
            .await
        {
            tracing::warn!(lease = %self.id, error = %status.message(), "could not delete a pull's lease");
        }
    }
}
