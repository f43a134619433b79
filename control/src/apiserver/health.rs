//! Health and version endpoints, as kube-apiserver serves them:
//! `/healthz`, `/livez`, `/readyz` (each also per check, e.g.
//! `/readyz/store`, and with `?verbose`) and `/version`.
//!
//! Checks: `ping` (always ok), `store` (the store answers
//! `current_revision()` within [`STORE_TIMEOUT`]; readyz only, so that a
//! slow store takes the server out of load balancing without getting it
//! restarted) and `shutdown` (readyz fails once the server is stopping).
//! A failing check answers 500 and names it; the reason is shown to
//! authenticated callers and withheld from anonymous ones (these paths are
//! public), and always logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Path, RawQuery};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use k8s_openapi::apimachinery::pkg::version::Info;

use super::auth::Identity;
use crate::store::Store;

/// How long the store gets to answer the readiness check.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

// The Kubernetes minor version skiff reports: the newest one whose API
// types (k8s-openapi) it is built with.
k8s_openapi::k8s_if_le_1_33! { const KUBERNETES_MINOR: &str = "33"; }
k8s_openapi::k8s_if_1_34! { const KUBERNETES_MINOR: &str = "34"; }
k8s_openapi::k8s_if_1_35! { const KUBERNETES_MINOR: &str = "35"; }
k8s_openapi::k8s_if_1_36! { const KUBERNETES_MINOR: &str = "36"; }
k8s_openapi::k8s_if_ge_1_37! { const KUBERNETES_MINOR: &str = "37"; }

/// Which endpoint: each runs its own set of checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Healthz,
    Livez,
    Readyz,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Healthz => "healthz",
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
        }
    }

    fn checks(self) -> &'static [Check] {
        match self {
            // healthz is the deprecated union of the two.
            Endpoint::Healthz => &[Check::Ping, Check::Store],
            Endpoint::Livez => &[Check::Ping],
            Endpoint::Readyz => &[Check::Ping, Check::Store, Check::Shutdown],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Ping,
    Store,
    Shutdown,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::Ping => "ping",
            Check::Store => "store",
            Check::Shutdown => "shutdown",
        }
    }
}

/// The health endpoints over a store. Clones share the shutdown flag.
#[derive(Clone)]
pub struct Health {
    store: Arc<dyn Store>,
    shutting_down: Arc<AtomicBool>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("shutting_down", &self.shutting_down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Health of a server over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on `/readyz` fails its `shutdown` check, so that load
    /// balancers stop sending new requests while in-flight ones finish.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// The routes: `/healthz`, `/livez`, `/readyz` (and `/<endpoint>/<check>`)
    /// and `/version`.
    pub fn router(&self) -> Router {
        // Kubernetes serves the version at `/version` and `/version/`.
        let mut router = Router::new()
            .route("/version", get(version))
            .route("/version/", get(version));
        for endpoint in [Endpoint::Healthz, Endpoint::Livez, Endpoint::Readyz] {
            let whole = self.clone();
            let single = self.clone();
            router = router
                .route(
                    &format!("/{}", endpoint.name()),
                    get(move |RawQuery(query): RawQuery, identity: Option<Extension<Identity>>| async move {
                        whole.answer(endpoint, None, query, identity.is_some()).await
                    }),
                )
                .route(
                    &format!("/{}/{{check}}", endpoint.name()),
                    get(move |Path(check): Path<String>, RawQuery(query): RawQuery, identity: Option<Extension<Identity>>| async move {
                        single.answer(endpoint, Some(check), query, identity.is_some()).await
                    }),
                );
        }
        router
    }

    async fn answer(
        &self,
        endpoint: Endpoint,
        only: Option<String>,
        query: Option<String>,
        show_reasons: bool,
    ) -> Response {
        let checks: Vec<Check> = match only {
            None => endpoint.checks().to_vec(),
            Some(name) => match endpoint.checks().iter().find(|c| c.name() == name) {
                Some(check) => vec![*check],
                None => return (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
            },
        };
        let verbose = query.as_deref().is_some_and(|q| {
            q.split('&')
                .any(|pair| pair == "verbose" || pair.starts_with("verbose="))
        });

        let mut lines = Vec::new();
        let mut failed = false;
        for check in &checks {
            match self.run(*check).await {
                Ok(()) => lines.push(format!("[+]{} ok", check.name())),
                Err(reason) => {
                    failed = true;
                    tracing::warn!(endpoint = endpoint.name(), check = check.name(), %reason, "health check failed");
                    let shown = if show_reasons {
                        reason.as_str()
                    } else {
                        "reason withheld"
                    };
                    lines.push(format!("[-]{} failed: {shown}", check.name()));
                }
            }
        }
        let (status, body) = if failed {
            lines.push(format!("{} check failed", endpoint.name()));
            (StatusCode::INTERNAL_SERVER_ERROR, lines.join("\n") + "\n")
        } else if verbose {
            lines.push(format!("{} check passed", endpoint.name()));
            (StatusCode::OK, lines.join("\n") + "\n")
        } else {
            (StatusCode::OK, "ok".to_owned())
        };
        (
            status,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (
                    header::HeaderName::from_static("x-content-type-options"),
                    "nosniff",
                ),
            ],
            body,
        )
            .into_response()
    }

    /// Runs one check; the error is the reason.
    async fn run(&self, check: Check) -> Result<(), String> {
        match check {
            Check::Ping => Ok(()),
            Check::Shutdown if self.shutting_down.load(Ordering::Relaxed) => {
                Err("the server is shutting down".to_owned())
            }
            Check::Shutdown => Ok(()),
            Check::Store => {
                match tokio::time::timeout(STORE_TIMEOUT, self.store.current_revision()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(format!("store error: {error}")),
                    Err(_) => Err(format!(
                        "the store did not answer within {}s",
                        STORE_TIMEOUT.as_secs()
                    )),
                }
            }
        }
    }
}

/// `/version`, shaped like kube-apiserver's so that kubectl and client
/// libraries parse it.
async fn version() -> Json<Info> {
    Json(version_info())
}

/// The version document: Kubernetes `v1.<minor>.0`, with skiff's version
/// as semver build metadata (`v1.37.0+skiff-0.1.0`, like k3s' `+k3s1`).
pub fn version_info() -> Info {
    Info {
        major: "1".to_owned(),
        minor: KUBERNETES_MINOR.to_owned(),
        git_version: format!(
            "v1.{KUBERNETES_MINOR}.0+skiff-{}",
            env!("CARGO_PKG_VERSION")
        ),
        git_commit: option_env!("SKIFF_GIT_COMMIT")
            .unwrap_or("unknown")
            .to_owned(),
        git_tree_state: option_env!("SKIFF_GIT_TREE_STATE")
            .unwrap_or("unknown")
            .to_owned(),
        build_date: option_env!("SKIFF_BUILD_DATE")
            .unwrap_or("1970-01-01T00:00:00Z")
            .to_owned(),
        go_version: "rustc".to_owned(),
        compiler: "rustc".to_owned(),
        platform: platform(),
        ..Info::default()
    }
}

/// `linux/amd64` style: Go's names for the OS and architecture.
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedConfig, EmbeddedStore};
    use axum::body::Body;
    use tower::ServiceExt as _;

    async fn get_text(router: &Router, uri: &str, identity: Option<Identity>) -> (u16, String) {
        let mut request = axum::http::Request::get(uri).body(Body::empty()).unwrap();
        if let Some(identity) = identity {
            request.extensions_mut().insert(identity);
        }
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn healthy_store_then_shutdown_then_closed_store() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("s.redb"))).unwrap());
        let health = Health::new(store.clone());
        let router = health.router();
        for uri in [
            "/healthz",
            "/livez",
            "/readyz",
            "/readyz/store",
            "/livez/ping",
        ] {
            assert_eq!(
                get_text(&router, uri, None).await,
                (200, "ok".to_owned()),
                "{uri}"
            );
        }
        assert_eq!(
            get_text(&router, "/readyz?verbose", None).await,
            (
                200,
                "[+]ping ok\n[+]store ok\n[+]shutdown ok\nreadyz check passed\n".to_owned()
            )
        );
        assert_eq!(get_text(&router, "/livez/store", None).await.0, 404);

        health.set_shutting_down();
        let (code, body) = get_text(&router, "/readyz", Some(Identity::Admin)).await;
        assert_eq!(code, 500);
        assert!(
            body.contains("[-]shutdown failed: the server is shutting down"),
            "{body}"
        );
        assert_eq!(get_text(&router, "/livez", None).await.0, 200);

        store.close().await.unwrap();
        let (code, body) = get_text(&router, "/readyz/store", Some(Identity::Admin)).await;
        assert_eq!(code, 500);
        assert!(body.starts_with("[-]store failed: store error: "), "{body}");
        let (code, body) = get_text(&router, "/healthz", None).await;
        assert_eq!(code, 500);
        assert!(body.contains("[-]store failed: reason withheld"), "{body}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_does_not_answer_fails_readyz_after_the_timeout() {
        let health = Health::new(Arc::new(SilentStore));
        let (code, body) = get_text(&health.router(), "/readyz", Some(Identity::Admin)).await;
        assert_eq!(code, 500);
        assert!(
            body.contains("[-]store failed: the store did not answer within 2s"),
            "{body}"
        );
        assert!(body.ends_with("readyz check failed\n"), "{body}");
    }

    #[tokio::test]
    async fn version_is_what_kubectl_expects() {
        let router = Health::new(Arc::new(SilentStore)).router();
        let (code, body) = get_text(&router, "/version", None).await;
        assert_eq!(code, 200);
        let info: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(info["major"], "1");
        let git_version = info["gitVersion"].as_str().unwrap();
        assert!(
            git_version.starts_with(&format!("v1.{}.0+skiff-", info["minor"].as_str().unwrap())),
            "{git_version}"
        );
        assert_eq!(info["compiler"], "rustc");
        assert!(info["platform"].as_str().unwrap().contains('/'));
    }

    /// A store whose every call hangs.
    struct SilentStore;

    #[async_trait::async_trait]
    impl Store for SilentStore {
        async fn get(&self, _: &str) -> crate::store::Result<Option<crate::store::KeyValue>> {
            std::future::pending().await
        }
        async fn range(
            &self,
            _: crate::store::RangeRequest,
        ) -> crate::store::Result<crate::store::RangeResponse> {
            std::future::pending().await
        }
        async fn create(
            &self,
            _: &str,
            _: bytes::Bytes,
            _: Option<crate::store::LeaseId>,
        ) -> crate::store::Result<crate::store::KeyValue> {
            std::future::pending().await
        }
        async fn update(
            &self,
            _: &str,
            _: bytes::Bytes,
            _: crate::store::Revision,
            _: Option<crate::store::LeaseId>,
        ) -> crate::store::Result<crate::store::KeyValue> {
            std::future::pending().await
        }
        async fn delete(
            &self,
            _: &str,
            _: Option<crate::store::Revision>,
        ) -> crate::store::Result<crate::store::Deleted> {
            std::future::pending().await
        }
        async fn watch(
            &self,
            _: &str,
            _: crate::store::Revision,
        ) -> crate::store::Result<crate::store::WatchStream> {
            std::future::pending().await
        }
        async fn current_revision(&self) -> crate::store::Result<crate::store::Revision> {
            std::future::pending().await
        }
        async fn compact(&self, _: crate::store::Revision) -> crate::store::Result<()> {
            std::future::pending().await
        }
        async fn grant_lease(&self, _: Duration) -> crate::store::Result<crate::store::LeaseId> {
            std::future::pending().await
        }
        async fn keep_alive(&self, _: crate::store::LeaseId) -> crate::store::Result<Duration> {
            std::future::pending().await
        }
        async fn revoke_lease(&self, _: crate::store::LeaseId) -> crate::store::Result<()> {
            std::future::pending().await
        }
        async fn close(&self) -> crate::store::Result<()> {
            Ok(())
        }
    }
}
