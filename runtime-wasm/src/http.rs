//! HTTP components: served on the container's ports, a fresh instance from
//! the artifact's `InstancePre` for every request, a bounded number at
//! once, each under the request timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use skiff_sdk::runtime::log::Stream;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use wasmtime::Engine;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::guest::{ComponentState, GuestConfig, LogSink, Metered, Stdin, Usage};
use crate::outcome::Outcome;

/// What serves one HTTP container's requests.
pub(crate) struct HttpService {
    pub(crate) engine: Engine,
    pub(crate) pre: ProxyPre<ComponentState>,
    pub(crate) guest: Arc<GuestConfig>,
    pub(crate) log: Arc<LogSink>,
    pub(crate) usage: Arc<Usage>,
    pub(crate) max_concurrent_requests: usize,
    pub(crate) request_timeout: Duration,
}

/// Shared by the accept loops and request tasks of one container.
struct Serving {
    service: HttpService,
    permits: Arc<Semaphore>,
    draining: AtomicBool,
    kill: watch::Receiver<bool>,
}

/// A running HTTP container: its listeners and requests.
pub(crate) struct HttpServer {
    serving: Arc<Serving>,
    accept_loops: JoinSet<()>,
    kill: watch::Sender<bool>,
}

/// How a request's instance ended without a response.
enum Failure {
    TimedOut,
    Killed,
    Guest(Outcome),
}

impl HttpServer {
    /// Binds every address, then serves. Fails without serving anything if
    /// one address cannot be bound.
    pub(crate) fn start(
        service: HttpService,
        addresses: &[SocketAddr],
    ) -> Result<HttpServer, std::io::Error> {
        let mut listeners = Vec::with_capacity(addresses.len());
        for address in addresses {
            let listener = std::net::TcpListener::bind(address).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {address}: {e}"))
            })?;
            listener.set_nonblocking(true)?;
            listeners.push(TcpListener::from_std(listener)?);
        }
        let (kill, killed) = watch::channel(false);
        let serving = Arc::new(Serving {
            permits: Arc::new(Semaphore::new(service.max_concurrent_requests)),
            service,
            draining: AtomicBool::new(false),
            kill: killed,
        });
        let mut accept_loops = JoinSet::new();
        for listener in listeners {
            accept_loops.spawn(accept(serving.clone(), listener));
        }
        Ok(HttpServer {
            serving,
            accept_loops,
            kill,
        })
    }

    /// Stops: no new requests (they get 503), in-flight ones get until
    /// `grace` to finish, then are killed. Exits 0 when every request
    /// finished, 137 when some were killed.
    pub(crate) async fn stop(mut self, grace: Duration) -> Outcome {
        self.serving.draining.store(true, Ordering::SeqCst);
        let all = u32::try_from(self.serving.service.max_concurrent_requests).unwrap_or(u32::MAX);
        let drained = if grace.is_zero() {
            self.serving.permits.available_permits() == self.serving.service.max_concurrent_requests
        } else {
            tokio::time::timeout(grace, self.serving.permits.acquire_many(all))
                .await
                .is_ok_and(|permit| permit.is_ok())
        };
        self.kill.send_replace(true);
        self.accept_loops.shutdown().await;
        if drained {
            Outcome::exited(0)
        } else {
            Outcome::killed()
        }
    }
}

/// Accepts connections until the server is stopped; connections live in
/// the loop's set, so stopping the loop closes them.
async fn accept(serving: Arc<Serving>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let serving = serving.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |request| {
                            let serving = serving.clone();
                            async move { Ok::<_, Infallible>(serving.handle(request).await) }
                        });
                        let _ = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(error) => {
                    // Out of file descriptors, most likely: back off rather
                    // than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

impl Serving {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
        if self.draining.load(Ordering::SeqCst) {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the container is stopping\n",
            );
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests in flight for this container\n",
            );
        };
        let service = &self.service;
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let mut store = match service.guest.component_store(
            &service.engine,
            &service.log,
            Stdin::Empty,
            &service.usage,
        ) {
            Ok(store) => store,
            Err(error) => return self.failed(&method, &path, &error.to_string()),
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = match store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
        {
            Ok(incoming) => incoming,
            Err(error) => return self.failed(&method, &path, &format!("{error:#}")),
        };
        let out = match store.data_mut().http().new_response_outparam(sender) {
            Ok(out) => out,
            Err(error) => return self.failed(&method, &path, &format!("{error:#}")),
        };

        let pre = service.pre.clone();
        let usage = service.usage.clone();
        let timeout = service.request_timeout;
        let mut kill = self.kill.clone();
        let task = tokio::spawn(async move {
            let _permit = permit;
            let run = Metered::new(
                async {
                    let proxy = pre.instantiate_async(&mut store).await?;
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, incoming, out)
                        .await
                },
                &usage,
            );
            let result = tokio::select! {
                result = tokio::time::timeout(timeout, run) => match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(Failure::Guest(Outcome::from_error(
                        &error,
                        store.data().limiter.exceeded,
                    ))),
                    Err(_) => Err(Failure::TimedOut),
                },
                _ = kill.wait_for(|killed| *killed) => Err(Failure::Killed),
            };
            drop(store);
            result
        });

        match receiver.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                let message = format!("the component answered with error {code:?}");
                self.failed(&method, &path, &message)
            }
            Err(_) => {
                let (status, message) = match task.await {
                    Ok(Ok(())) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the component returned without a response".to_owned(),
                    ),
                    Ok(Err(Failure::TimedOut)) => (
                        StatusCode::GATEWAY_TIMEOUT,
                        format!("the component did not answer within {timeout:?}"),
                    ),
                    Ok(Err(Failure::Killed)) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the container was stopped".to_owned(),
                    ),
                    Ok(Err(Failure::Guest(outcome))) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!(
                            "the component failed ({}): {}",
                            outcome.reason,
                            outcome.message.unwrap_or_default()
                        ),
                    ),
                    Err(error) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the request task failed: {error}"),
                    ),
                };
                self.log_failure(&method, &path, &message);
                plain(status, &format!("{message}\n"))
            }
        }
    }

    fn failed(
        &self,
        method: &http::Method,
        path: &str,
        message: &str,
    ) -> Response<HyperOutgoingBody> {
        self.log_failure(method, path, message);
        plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{message}\n"))
    }

    /// A failed request shows in the container's log, on stderr.
    fn log_failure(&self, method: &http::Method, path: &str, message: &str) {
        let line = format!("skiff: {method} {path} failed: {message}\n");
        self.service.log.write(Stream::Stderr, line.as_bytes());
    }
}

/// A plain-text response from the runtime itself.
fn plain(status: StatusCode, body: &str) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::copy_from_slice(body.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
