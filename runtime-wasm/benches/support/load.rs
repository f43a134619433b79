//! The benchmark's load generator: HTTP/1.1 keep-alive connections over
//! loopback (hyper's client), each issuing GETs one after the other, every
//! wait bounded so that a stuck server fails the run instead of hanging it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::StatusCode;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What the hello route answers.
pub const HELLO: &[u8] = b"hello from skiff\n";
/// Bound on one request (or one connection set-up).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    sender: http1::SendRequest<Empty<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Connects to `address` (with `TCP_NODELAY`, as the servers set it).
    pub async fn open(address: SocketAddr) -> Connection {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let stream = TcpStream::connect(address)
                .await
                .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
            stream.set_nodelay(true).expect("TCP_NODELAY");
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .expect("HTTP/1.1 handshake");
            let driver = tokio::spawn(async move {
                let _ = connection.await;
            });
            Connection { sender, driver }
        })
        .await
        .unwrap_or_else(|_| panic!("connecting to {address} took over {REQUEST_TIMEOUT:?}"))
    }

    /// GETs `path` and reads the whole body.
    pub async fn get(&mut self, path: &str) -> (StatusCode, Bytes) {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.sender.ready().await.expect("the connection is open");
            let request = hyper::Request::get(path)
                .header(hyper::header::HOST, "127.0.0.1")
                .body(Empty::new())
                .expect("a GET request");
            let response = self
                .sender
                .send_request(request)
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: reading the body: {e}"))
                .to_bytes();
            (status, body)
        })
        .await
        .unwrap_or_else(|_| panic!("GET {path} took over {REQUEST_TIMEOUT:?}"))
    }

    /// GETs `/` and checks the hello answer.
    pub async fn hello(&mut self) {
        let (status, body) = self.get("/").await;
        assert!(
            status == StatusCode::OK && body == HELLO,
            "GET / answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Latencies of `count` sequential GET `/` on one connection, after
/// `warmup` untimed ones.
pub async fn sequential_latencies(address: SocketAddr, warmup: usize, count: usize) -> Vec<f64> {
    let mut connection = Connection::open(address).await;
    for _ in 0..warmup {
        connection.hello().await;
    }
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let begun = Instant::now();
        connection.hello().await;
        latencies.push(begun.elapsed().as_secs_f64());
    }
    latencies
}

/// What a throughput run measured.
pub struct Throughput {
    pub requests: u64,
    pub seconds: f64,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// `connections` keep-alive connections, opened and warmed with one request
/// each before the clock starts, issue sequential GET `/` until `duration`
/// has passed; the run ends when the last request in flight has answered.
pub async fn throughput(address: SocketAddr, connections: usize, duration: Duration) -> Throughput {
    let mut opened = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut connection = Connection::open(address).await;
        connection.hello().await;
        opened.push(connection);
    }
    let requests = Arc::new(AtomicU64::new(0));
    let begun = Instant::now();
    let deadline = begun + duration;
    let clients: Vec<_> = opened
        .into_iter()
        .map(|mut connection| {
            let requests = requests.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    connection.hello().await;
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a load generator task");
    }
    Throughput {
        requests: requests.load(Ordering::Relaxed),
        seconds: begun.elapsed().as_secs_f64(),
    }
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}
