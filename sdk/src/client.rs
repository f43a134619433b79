//! The typed client: a `kube::Client` either from a kubeconfig (remote
//! clients, the CLI, agents) or over an in-process tower service (the
//! server's own scheduler and controllers, with no TCP), so that every
//! component speaks the same API the same way.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use tower::{BoxError, Service};

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The kubeconfig could not be read or parsed.
    #[error("cannot read the kubeconfig {}", path.display())]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// kube's error.
        #[source]
        source: KubeconfigError,
    },
    /// The kubeconfig's current context does not make a usable
    /// configuration (missing cluster, user, bad CA data...).
    #[error("the kubeconfig {} is not usable", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// kube's error.
        #[source]
        source: KubeconfigError,
    },
    /// The HTTP client could not be built from the configuration (TLS
    /// set-up, for example).
    #[error("cannot build a client from the kubeconfig {}", path.display())]
    Build {
        /// The file.
        path: PathBuf,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
}

/// A client for the current context of the kubeconfig at `path` (such as
/// the `kubeconfig` a skiff server writes into its data dir). Nothing is
/// sent until the first request.
pub async fn from_kubeconfig(path: &Path) -> Result<kube::Client, ClientError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
        path: path.to_owned(),
        source,
    })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::Config {
            path: path.to_owned(),
            source,
        })?;
    kube::Client::try_from(config).map_err(|source| ClientError::Build {
        path: path.to_owned(),
        source,
    })
}

/// A client whose requests go straight into `service`, e.g. the server's
/// `control::apiserver::auth::in_process_service(router, identity)`, with
/// `default_namespace` for namespaced calls that name none.
///
/// Must be called inside a tokio runtime: the client spawns a task that
/// buffers requests into the service.
pub fn in_process<S, B>(service: S, default_namespace: &str) -> kube::Client
where
    S: Service<http::Request<kube::client::Body>, Response = http::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    kube::Client::new(service, default_namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_kubeconfig_is_a_read_error() {
        let Err(error) = from_kubeconfig(Path::new("/nonexistent/kubeconfig")).await else {
            panic!("a missing kubeconfig should fail");
        };
        assert!(
            matches!(error, ClientError::ReadKubeconfig { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("/nonexistent/kubeconfig"));
    }

    #[tokio::test]
    async fn in_process_clients_send_requests_to_the_service() {
        let service = tower::service_fn(|request: http::Request<kube::client::Body>| async move {
            let body = format!(
                r#"{{"major":"1","minor":"37","gitVersion":"v1.37.0","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":"{}"}}"#,
                request.uri().path()
            );
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                Bytes::from(body),
            )))
        });
        let client = in_process(service, "default");
        assert_eq!(client.default_namespace(), "default");
        let version = client.apiserver_version().await.unwrap();
        assert_eq!(version.platform, "/version");
    }
}
