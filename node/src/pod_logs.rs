//! Which log file holds which container's output: pod workers record each
//! container instance they start, and the node API asks here (through
//! [`LogSource`]) for `kubectl logs`, with `--previous` answered by the
//! instance before the current one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use crate::logs::{ContainerLog, LocateError, LogSource};

/// The log files of the pods on this node.
#[derive(Debug, Default)]
pub struct PodLogs {
    pods: Mutex<HashMap<(String, String), HashMap<String, Instances>>>,
}

#[derive(Debug, Default)]
struct Instances {
    current: Option<ContainerLog>,
    previous: Option<PathBuf>,
}

impl PodLogs {
    /// Declares a pod and its container names (init containers included),
    /// so that `kubectl logs` of a container that has not started yet says
    /// so instead of "not found".
    pub fn declare(
        &self,
        namespace: &str,
        pod: &str,
        containers: impl IntoIterator<Item = String>,
    ) {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = pods
            .entry((namespace.to_owned(), pod.to_owned()))
            .or_default();
        for name in containers {
            entry.entry(name).or_default();
        }
    }

    /// Records a new instance of a container: its log file, and a flag that
    /// turns true when it exits. The instance it replaces becomes the
    /// previous one.
    pub fn started(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        path: PathBuf,
        finished: watch::Receiver<bool>,
    ) {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        let instances = pods
            .entry((namespace.to_owned(), pod.to_owned()))
            .or_default()
            .entry(container.to_owned())
            .or_default();
        if let Some(current) = instances.current.take() {
            instances.previous = Some(current.path);
        }
        instances.current = Some(ContainerLog { path, finished });
    }

    /// Forgets a pod (its files are being removed).
    pub fn remove(&self, namespace: &str, pod: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        pods.remove(&(namespace.to_owned(), pod.to_owned()));
    }
}

impl LogSource for PodLogs {
    fn locate(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerLog, LocateError> {
        let pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        let containers = pods
            .get(&(namespace.to_owned(), pod.to_owned()))
            .ok_or_else(|| LocateError::PodNotFound {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
            })?;
        let instances =
            containers
                .get(container)
                .ok_or_else(|| LocateError::ContainerNotFound {
                    pod: pod.to_owned(),
                    container: container.to_owned(),
                })?;
        if previous {
            let path =
                instances
                    .previous
                    .clone()
                    .ok_or_else(|| LocateError::NoPreviousInstance {
                        pod: pod.to_owned(),
                        container: container.to_owned(),
                    })?;
            // A previous instance has ended.
            let (_, finished) = watch::channel(true);
            return Ok(ContainerLog { path, finished });
        }
        instances
            .current
            .clone()
            .ok_or_else(|| LocateError::NotStarted {
                pod: pod.to_owned(),
                container: container.to_owned(),
                reason: "ContainerCreating".to_owned(),
            })
    }
}
