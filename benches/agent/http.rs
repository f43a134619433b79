//! The benchmark's HTTP client, as a kubelet's httpGet probe is: a new
//! connection per request, `Connection: close`, the whole answer read. It
//! is plain blocking std IO, run on tokio's blocking threads, so that the
//! connect retries can be spaced by [`CONNECT_RETRY`] (tokio's timers tick
//! in milliseconds).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How soon a refused connect is tried again while waiting for a pod.
pub const CONNECT_RETRY: Duration = Duration::from_micros(200);
/// Bound on one request once connected.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `path` on a new connection; the status code, or why it failed.
pub fn get(address: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&address, IO_TIMEOUT)
        .map_err(|e| format!("connect to {address}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send to {address}: {e}"))?;
    let mut response = Vec::with_capacity(256);
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read from {address}: {e}"))?;
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{address} answered {head:?}"))
}

/// Waits for the first 200 of `GET /` from `address`, trying again every
/// [`CONNECT_RETRY`] while the connection is refused or the answer is not
/// 200, until `deadline`; when the 200 was read.
pub fn first_200(address: SocketAddr, deadline: Instant) -> Result<Instant, String> {
    loop {
        let last = match get(address, "/") {
            Ok(200) => return Ok(Instant::now()),
            Ok(status) => format!("answered {status}"),
            Err(error) => error,
        };
        if Instant::now() >= deadline {
            return Err(format!("no 200 from {address} in time: {last}"));
        }
        std::thread::sleep(CONNECT_RETRY);
    }
}

/// Latency in seconds of one `GET path` that must answer 200.
pub fn timed_get(address: SocketAddr, path: &str) -> f64 {
    let begun = Instant::now();
    match get(address, path) {
        Ok(200) => begun.elapsed().as_secs_f64(),
        Ok(status) => panic!("GET {path} at {address} answered {status}"),
        Err(error) => panic!("GET {path}: {error}"),
    }
}
