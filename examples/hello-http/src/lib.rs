//! A tiny Wasm HTTP service: a `wasi:http/proxy` component that skiff serves
//! on a pod's `containerPort`, one fresh instance per request.
//!
//! - `GET /`: 200 `hello from skiff\nversion: <VERSION>\n`, where VERSION is
//!   fixed at build time by the `HELLO_VERSION` environment variable (`v1`
//!   when unset), so two builds make two artifacts that answer differently,
//!   as a rolling update to a new artifact wants.
//! - `GET /healthz`: 200 `ok\n`, for readiness and liveness probes.
//! - any other path: 404; any other method: 405.
//!
//! Each request prints one line, `METHOD /path`, to stdout, which is what
//! `kubectl logs` of the pod shows.

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The version this build answers with.
const VERSION: &str = match option_env!("HELLO_VERSION") {
    Some(version) => version,
    None => "v1",
};

/// The component's `wasi:http/incoming-handler` implementation.
struct HelloHttp;

wasip2::http::proxy::export!(HelloHttp);

impl Guest for HelloHttp {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = request.method();
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        println!("{} {path_with_query}", method_name(&method));

        if !matches!(method, Method::Get) {
            return respond(response_out, 405, b"method not allowed\n");
        }
        let path = path_with_query
            .split_once('?')
            .map_or(path_with_query.as_str(), |(path, _query)| path);
        match path {
            "/" => respond(
                response_out,
                200,
                format!("hello from skiff\nversion: {VERSION}\n").as_bytes(),
            ),
            "/healthz" => respond(response_out, 200, b"ok\n"),
            _ => respond(response_out, 404, b"not found\n"),
        }
    }
}

/// The method as it appears on the request line.
fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
}

/// Sends a `text/plain` response with `status` and `body`.
///
/// A failure here means the host has gone away from this request and there
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
        .expect("the status codes used here are valid");
    let outgoing_body = response.body().expect("the body is taken once");
    ResponseOutparam::set(response_out, Ok(response));
    let mut stream = outgoing_body
        .write()
        .expect("the body stream is taken once");
    stream
        .write_all(body)
        .and_then(|()| std::io::Write::flush(&mut stream))
        .expect("the host accepts the response body");
    // The stream is a child of the body resource, so it goes first.
    drop(stream);
    OutgoingBody::finish(outgoing_body, None).expect("the response body is complete");
}
