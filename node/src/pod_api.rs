//! What pod workers need from the API server, as a small trait so that the
//! worker's state machine is tested without one: status patches, the final
//! delete, and RuntimeClass handlers. [`KubePodApi`] is the real one.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};

/// A failed API call of a pod worker.
#[derive(Debug, thiserror::Error)]
pub enum PodApiError {
    /// The object is gone (or never was).
    #[error("not found")]
    NotFound,
    /// Any other failure; the worker retries.
    #[error(transparent)]
    Request(#[from] kube::Error),
}

/// The API calls of a pod worker.
#[async_trait]
pub trait PodApi: Send + Sync + 'static {
    /// Replaces the pod's status (`pods/status`), if the pod still has `uid`.
    async fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        status: &PodStatus,
    ) -> Result<(), PodApiError>;

    /// Deletes the pod for good (grace period 0), once its containers are
    /// gone, if it is still the pod with `uid`.
    async fn delete(&self, namespace: &str, name: &str, uid: &str) -> Result<(), PodApiError>;

    /// The handler of a RuntimeClass; `None` if there is no such class.
    async fn runtime_handler(&self, runtime_class: &str) -> Result<Option<String>, PodApiError>;
}

/// [`PodApi`] over a kube client (the node's credentials).
#[derive(Clone)]
pub struct KubePodApi {
    client: kube::Client,
}

impl KubePodApi {
    /// Calls through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

fn not_found(error: kube::Error) -> PodApiError {
    match error {
        kube::Error::Api(status) if status.code == 404 => PodApiError::NotFound,
        other => PodApiError::Request(other),
    }
}

#[async_trait]
impl PodApi for KubePodApi {
    async fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        status: &PodStatus,
    ) -> Result<(), PodApiError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({ "status": status });
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(not_found)
    }

    async fn delete(&self, namespace: &str, name: &str, uid: &str) -> Result<(), PodApiError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pods.delete(name, &params).await {
            Ok(_) => Ok(()),
            // A pod of the same name but another uid is not ours to delete.
            Err(kube::Error::Api(status)) if status.code == 409 => Err(PodApiError::NotFound),
            Err(error) => Err(not_found(error)),
        }
    }

    async fn runtime_handler(&self, runtime_class: &str) -> Result<Option<String>, PodApiError> {
        let classes: Api<RuntimeClass> = Api::all(self.client.clone());
        match classes.get_opt(runtime_class).await {
            Ok(class) => Ok(class.map(|class| class.handler)),
            Err(error) => Err(not_found(error)),
        }
    }
}
