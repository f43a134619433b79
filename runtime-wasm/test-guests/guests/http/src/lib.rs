//! The HTTP guest: a `wasi:http/incoming-handler` component whose request
//! path picks what it does, so skiff's runtime tests can drive every service
//! behaviour, well-behaved or hostile, and its benchmarks can measure
//! per-request instantiation on a route that does almost nothing.
//!
//! Routes (every answer is `text/plain` with a `content-length`):
//! - `/`: 200 `hello from skiff\n` (kept cheap for the benchmarks).
//! - `/echo`: 200 with the whole request body.
//! - `/env/NAME`: 200 with the variable's value, 404 if it is unset.
//! - `/sleep/MS`: waits MS milliseconds on a monotonic-clock pollable, then
//!   200 `slept\n`; 400 if MS is not a number.
//! - `/log`: prints `request logged\n` to stdout and `request warned\n` to
//!   stderr, then 200 `logged\n`.
//! - `/spin`, `/grow`, `/recurse`: burn CPU, memory or stack without bound and
//!   never answer.
//! - `/panic`: panics, which traps under `panic = "abort"`.
//! - anything else: 404 `not found\n`.

use std::io::{Read, Write};

use wasip2::clocks::monotonic_clock;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The component's `wasi:http/incoming-handler` implementation.
struct TestService;

wasip2::http::proxy::export!(TestService);

impl Guest for TestService {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let path = path_with_query
            .split_once('?')
            .map_or(path_with_query.as_str(), |(path, _query)| path);

        if path == "/" {
            return respond(response_out, 200, b"hello from skiff\n");
        }
        if path == "/echo" {
            return match read_whole_body(&request) {
                Ok(body) => respond(response_out, 200, &body),
                Err(error) => respond(
                    response_out,
                    500,
                    format!("reading the request body failed: {error}\n").as_bytes(),
                ),
            };
        }
        if let Some(name) = path.strip_prefix("/env/") {
            return match std::env::var_os(name) {
                Some(value) => respond(response_out, 200, value.as_encoded_bytes()),
                None => respond(response_out, 404, format!("{name} is not set\n").as_bytes()),
            };
        }
        if let Some(milliseconds) = path.strip_prefix("/sleep/") {
            return match milliseconds.parse::<u64>() {
                Ok(milliseconds) => {
                    sleep_on_monotonic_clock(milliseconds);
                    respond(response_out, 200, b"slept\n");
                }
                Err(_) => respond(
                    response_out,
                    400,
                    format!("{milliseconds:?} is not a number of milliseconds\n").as_bytes(),
                ),
            };
        }
        match path {
            "/log" => {
                println!("request logged");
                eprintln!("request warned");
                respond(response_out, 200, b"logged\n");
            }
            "/spin" => misbehaviour::spin_forever(),
            "/grow" => misbehaviour::grow_memory_forever(),
            "/recurse" => misbehaviour::recurse_forever(),
            "/panic" => panic!("guest panicked on purpose"),
            _ => respond(response_out, 404, b"not found\n"),
        }
    }
}

/// Reads the request body stream to its end.
fn read_whole_body(request: &IncomingRequest) -> std::io::Result<Vec<u8>> {
    let incoming_body = request
        .consume()
        .map_err(|()| std::io::Error::other("the request body was already consumed"))?;
    let mut body = Vec::new();
    // The stream is a child of the body resource, so it must go first.
    let mut stream = incoming_body
        .stream()
        .map_err(|()| std::io::Error::other("the request body stream was already taken"))?;
    stream.read_to_end(&mut body)?;
    drop(stream);
    drop(incoming_body);
    Ok(body)
}

/// Blocks for `milliseconds` by polling a monotonic-clock pollable, so the
/// host can run other work meanwhile (no busy loop).
fn sleep_on_monotonic_clock(milliseconds: u64) {
    let nanoseconds = milliseconds.saturating_mul(1_000_000);
    let deadline = monotonic_clock::subscribe_duration(nanoseconds);
    wasip2::io::poll::poll(&[&deadline]);
}

/// Sends a `text/plain` response with `status` and `body`.
///
/// A failure here means the host has gone away from this request, and there
/// is no one left to tell, so it panics (a trap the host reports).
fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[
        ("content-type".to_owned(), b"text/plain".to_vec()),
        (
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ),
    ])
    .expect("static headers are valid");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("status codes used here are valid");
    let outgoing_body = response.body().expect("the body is taken once");
    ResponseOutparam::set(response_out, Ok(response));
    let mut stream = outgoing_body
        .write()
        .expect("the body stream is taken once");
    stream
        .write_all(body)
        .and_then(|()| Write::flush(&mut stream))
        .expect("the host accepts the response body");
    // The stream is a child of the body resource, so it must go first.
    drop(stream);
    OutgoingBody::finish(outgoing_body, None).expect("the response body is complete");
}
