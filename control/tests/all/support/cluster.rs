//! An in-process server for tests that drive the real kubectl and send raw
//! HTTP requests: kubectl uses the server's own kubeconfig (HTTPS), raw
//! requests go to a plain-HTTP front of its in-process service as the
//! admin, with any headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use skiff_control::apiserver::auth::Identity;
use skiff_control::controllers::ControllerOptions;
use skiff_control::server::{RunningServer, ServerOptions};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};

use crate::server_bootstrap::start_with;

/// A server, its plain-HTTP front, kubectl's cache dir and a work dir for
/// manifests.
pub struct Cluster {
    server: RunningServer,
    front: SocketAddr,
    kubeconfig: PathBuf,
    cache: TempDir,
    work: TempDir,
    _data: TempDir,
}

/// One answered request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    pub fn content_type(&self) -> &str {
        self.header(header::CONTENT_TYPE)
    }
}

/// One kubectl run.
#[derive(Debug)]
pub struct Kubectl {
    pub args: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    /// Asserts success with nothing on stderr (no warnings), returns stdout.
    pub fn clean(&self) -> &str {
        assert!(
            self.success && self.stderr.is_empty(),
            "kubectl {}:\n{}\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

impl Cluster {
    /// The API alone (no scheduler or controllers changing what tests
    /// create), for tests of what the API and kubectl show.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// With the scheduler and controllers, as `skiff server` runs.
    pub async fn start_with(controllers: Option<ControllerOptions>) -> Self {
        let data = tempfile::tempdir().unwrap();
        let server = start_with(
            ServerOptions::default()
                .data_dir(data.path().join("data"))
                .listen("127.0.0.1:0".parse().unwrap())
                .shutdown_grace(Duration::from_secs(10))
                .controllers(controllers),
        )
        .await;
        let routes =
            axum::Router::new().fallback_service(server.in_process_service(Identity::Admin));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes).await });
        let kubeconfig = server.paths().kubeconfig.clone();
        Cluster {
            server,
            front,
            kubeconfig,
            cache: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
            _data: data,
        }
    }

    /// A raw request to the front, as the admin.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let tcp = TcpStream::connect(self.front).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.front.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let response = sender
            .send_request(request.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Writes `text` to a file in the work dir and returns its path.
    pub fn manifest(&self, name: &str, text: &str) -> String {
        let path = self.work.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// kubectl against the server, not started yet.
    pub fn kubectl_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .args(args)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// Runs kubectl to the end.
    pub async fn kubectl(&self, args: &[&str]) -> Kubectl {
        let output = self
            .kubectl_command(args)
            .output()
            .await
            .expect("run kubectl");
        let run = Kubectl {
            args: args.join(" "),
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        // Shown with --nocapture or when the test fails.
        eprintln!(
            "$ kubectl {} ({})\n{}{}",
            run.args, output.status, run.stdout, run.stderr
        );
        run
    }

    /// A kube-rs client into the server, as the admin, without TCP.
    pub fn client(&self) -> kube::Client {
        skiff_sdk::client::in_process(self.server.in_process_service(Identity::Admin), "default")
    }

    pub async fn stop(self) {
        self.server.stop().await.unwrap();
    }
}

/// Whether kubectl is on PATH (tests that need it skip, saying so, if not).
pub fn kubectl_available() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("kubectl").is_file())
    });
    if !found {
        eprintln!("kubectl is not on PATH: skipping this test");
    }
    found
}
