//! Which runtime holds which container: pod workers record each container
//! instance they start or adopt, and the node API asks here where to run
//! `kubectl exec` (the current instance of `namespace/pod/container`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use skiff_sdk::runtime::{ContainerId, Runtime};

/// The containers of the pods on this node, by namespace, pod and
/// container name.
#[derive(Default)]
pub struct PodContainers {
    pods: Mutex<HashMap<(String, String), HashMap<String, RunningContainer>>>,
}

impl std::fmt::Debug for PodContainers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("PodContainers")
            .field("pods", &pods.len())
            .finish()
    }
}

/// The current instance of a container and the runtime that holds it.
#[derive(Clone)]
pub struct RunningContainer {
    /// The runtime holding it.
    pub runtime: Arc<dyn Runtime>,
    /// Its ID in that runtime.
    pub id: ContainerId,
}

impl std::fmt::Debug for RunningContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningContainer")
            .field("runtime", &self.runtime.info().name)
            .field("id", &self.id)
            .finish()
    }
}

/// Why a container cannot be found, worded as the kubelet words it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No pod of that name in that namespace runs on this node.
    #[error("pod \"{namespace}/{pod}\" does not exist")]
    PodNotFound {
        /// The namespace asked for.
        namespace: String,
        /// The pod asked for.
        pod: String,
    },
    /// The pod has no instance of that container (no such container, or
    /// it has not been created yet).
    #[error("container \"{container}\" not found in pod \"{pod}\"")]
    ContainerNotFound {
        /// The pod.
        pod: String,
        /// The container asked for.
        container: String,
    },
}

impl PodContainers {
    /// Records a new instance of a container (created or adopted); it
    /// replaces the previous one.
    pub fn started(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        runtime: Arc<dyn Runtime>,
        id: ContainerId,
    ) {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        pods.entry((namespace.to_owned(), pod.to_owned()))
            .or_default()
            .insert(container.to_owned(), RunningContainer { runtime, id });
    }

    /// Forgets a pod (its containers are being removed).
    pub fn remove(&self, namespace: &str, pod: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        pods.remove(&(namespace.to_owned(), pod.to_owned()));
    }

    /// The current instance of `container` in pod `namespace/pod`.
    pub fn lookup(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<RunningContainer, LookupError> {
        let pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        let containers = pods
            .get(&(namespace.to_owned(), pod.to_owned()))
            .ok_or_else(|| LookupError::PodNotFound {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
            })?;
        containers
            .get(container)
            .cloned()
            .ok_or_else(|| LookupError::ContainerNotFound {
                pod: pod.to_owned(),
                container: container.to_owned(),
            })
    }
}
