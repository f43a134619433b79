//! The connection to containerd: one gRPC channel over its socket, and
//! requests scoped to skiff's containerd namespace.

use std::path::{Path, PathBuf};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use skiff_sdk::runtime::RuntimeError;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// The containerd namespace skiff keeps its images, containers and
/// snapshots in, apart from other users of the same containerd.
pub const NAMESPACE: &str = "skiff";

/// The snapshotter images are unpacked into and containers run on.
pub const SNAPSHOTTER: &str = "overlayfs";

/// The metadata header naming the containerd namespace of a request.
const NAMESPACE_HEADER: &str = "containerd-namespace";
/// The metadata header naming the lease that protects what a request
/// creates from containerd's garbage collector.
const LEASE_HEADER: &str = "containerd-lease";

/// A connection to containerd, scoped to one containerd namespace. Cheap to
/// clone: clones share the channel.
#[derive(Clone, Debug)]
pub struct Containerd {
    channel: Channel,
    namespace: AsciiMetadataValue,
    socket: PathBuf,
}

impl Containerd {
    /// Connects to containerd's socket. Fails with
    /// [`RuntimeError::Unavailable`] when nothing answers there.
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Self, RuntimeError> {
        let namespace =
            MetadataValue::try_from(namespace).map_err(|e| RuntimeError::InvalidArgument {
                field: "namespace".into(),
                message: e.to_string(),
            })?;
        let channel =
            containerd_client::connect(socket)
                .await
                .map_err(|e| RuntimeError::Unavailable {
                    source: format!("containerd at {}: {e}", socket.display()).into(),
                })?;
        Ok(Self {
            channel,
            namespace,
            socket: socket.to_owned(),
        })
    }

    /// The socket this connection dials.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A request in skiff's namespace.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace.clone());
        request
    }

    /// A request in skiff's namespace whose results the lease `lease` holds
    /// until it is deleted (content and snapshots written during a pull).
    pub fn leased<T>(&self, message: T, lease: &str) -> Request<T> {
        let mut request = self.request(message);
        if let Ok(lease) = MetadataValue::try_from(lease) {
            request.metadata_mut().insert(LEASE_HEADER, lease);
        }
        request
    }

    /// Containers: the records of containers (spec, snapshot, labels).
    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    /// Content: the blobs of images.
    pub fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
    }

    /// Diff: applies layers to snapshots.
    pub fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel.clone())
    }

    /// Events: task exits and the rest.
    pub fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel.clone())
    }

    /// Images: named image records.
    pub fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }

    /// Leases: protect content being written from garbage collection.
    pub fn leases(&self) -> LeasesClient<Channel> {
        LeasesClient::new(self.channel.clone())
    }

    /// Snapshots: unpacked layers and containers' root filesystems.
    pub fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }

    /// Tasks: the processes of containers.
    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    /// Version: containerd's version; answers when containerd is up.
    pub fn version(&self) -> VersionClient<Channel> {
        VersionClient::new(self.channel.clone())
    }
}

/// Maps a failed containerd call to the runtime's error: unreachable →
/// `Unavailable`, anything else → `Backend` naming the operation.
pub fn backend(operation: &'static str) -> impl FnOnce(Status) -> RuntimeError {
    move |status| match status.code() {
        Code::Unavailable => RuntimeError::Unavailable {
            source: format!("{operation}: {}", status.message()).into(),
        },
        _ => RuntimeError::Backend {
            operation,
            source: format!("{:?}: {}", status.code(), status.message()).into(),
        },
    }
}

/// Whether a containerd call failed because the object is not there.
pub fn is_not_found(status: &Status) -> bool {
    status.code() == Code::NotFound
}

/// Whether a containerd call failed because the object already exists.
pub fn is_already_exists(status: &Status) -> bool {
    status.code() == Code::AlreadyExists
}
