//! `kubectl exec` on the node: the kubelet's exec options, the WebSocket
//! handshake with Kubernetes' channel subprotocols, and the session that
//! joins the WebSocket to a process the runtime started
//! ([`ExecProcess`]). The node API routes `/exec/...` here.
//!
//! # The protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`)
//!
//! Every message is binary and starts with a channel byte: 0 stdin
//! (client to node), 1 stdout and 2 stderr (node to client), 3 the error
//! channel, where the node writes one `metav1.Status` when the command is
//! over (`Success`, or `Failure` with reason `NonZeroExitCode` and the
//! exit code as the message of a cause of type `ExitCode`, as the kubelet
//! writes it, so that kubectl exits with the command's code), 4 terminal
//! resizes (client to node, JSON `{"Width":80,"Height":24}`). Version 5
//! adds a close signal, `[255, channel]`, with which the client closes
//! the process's stdin. `v4.base64.channel.k8s.io` is version 4 over text
//! messages: the channel as an ASCII digit, the data in base64.
//!
//! The node writes an empty message on the first channel the client reads
//! (as the kubelet does), then the output as it comes, then, once both
//! output streams have ended and the process has exited, the status, and
//! closes the WebSocket normally. The client leaving ends the session; so
//! does the node API shutting down (with a `Failure` status first).

use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};
use skiff_sdk::runtime::{ExecOutput, ExecProcess, ExecRequest, ExecStdin, TerminalSize};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};

/// The stdin channel.
const STDIN: u8 = 0;
/// The stdout channel.
const STDOUT: u8 = 1;
/// The stderr channel.
const STDERR: u8 = 2;
/// The error channel: one `Status` at the end.
const ERROR: u8 = 3;
/// The resize channel.
const RESIZE: u8 = 4;
/// Version 5's close signal: `[CLOSE, channel]`.
const CLOSE: u8 = 255;

/// How long the node waits for the client to answer its close message.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The size of a read from the process's output.
const READ_CHUNK: usize = 32 * 1024;

/// The options of `/exec/{namespace}/{pod}/{container}?<query>`, as the
/// kubelet reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOptions {
    /// `command` (repeated): the program and its arguments.
    pub command: Vec<String>,
    /// `input` (or `stdin`): the client writes stdin.
    pub stdin: bool,
    /// `output` (or `stdout`): the client reads stdout.
    pub stdout: bool,
    /// `error` (or `stderr`): the client reads stderr; never with a tty.
    pub stderr: bool,
    /// `tty`: the process gets a terminal.
    pub tty: bool,
}

/// Why exec options are refused (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecOptionsError {
    /// No `command` parameter.
    #[error("you must specify a command to run in the container")]
    NoCommand,
    /// None of stdin, stdout and stderr.
    #[error("you must specify at least 1 of stdin, stdout, stderr")]
    NoStreams,
}

impl ExecOptions {
    /// Reads the query: the kubelet's names (`input`, `output`, `error`,
    /// `tty`, each on with `1`), and, as an alias, the API's names
    /// (`stdin`, `stdout`, `stderr`); `true` counts as on too. A tty
    /// drops stderr, as the kubelet does.
    pub fn from_query(query: &str) -> Result<Self, ExecOptionsError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let on = |names: &[&str]| {
            names.iter().any(|name| {
                pairs
                    .iter()
                    .find(|(key, _)| key == name)
                    .is_some_and(|(_, value)| value == "1" || value.eq_ignore_ascii_case("true"))
            })
        };
        let command: Vec<String> = pairs
            .iter()
            .filter(|(key, _)| key == "command")
            .map(|(_, value)| value.clone())
            .collect();
        let tty = on(&["tty"]);
        let options = Self {
            stdin: on(&["input", "stdin"]),
            stdout: on(&["output", "stdout"]),
            stderr: on(&["error", "stderr"]) && !tty,
            tty,
            command,
        };
        if !(options.stdin || options.stdout || options.stderr) {
            return Err(ExecOptionsError::NoStreams);
        }
        if options.command.is_empty() {
            return Err(ExecOptionsError::NoCommand);
        }
        Ok(options)
    }

    /// What the runtime is asked to run.
    pub fn request(&self) -> ExecRequest {
        ExecRequest {
            command: self.command.clone(),
            stdin: self.stdin,
            tty: self.tty,
            terminal_size: None,
        }
    }
}

/// A channel subprotocol the node speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `v5.channel.k8s.io`: binary, with the close signal.
    V5,
    /// `v4.channel.k8s.io`: binary.
    V4,
    /// `v4.base64.channel.k8s.io`: text, base64.
    V4Base64,
}

impl Protocol {
    /// Every protocol served.
    pub const ALL: [Protocol; 3] = [Protocol::V5, Protocol::V4, Protocol::V4Base64];

    /// The subprotocol's name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V5 => "v5.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V4Base64 => "v4.base64.channel.k8s.io",
        }
    }

    fn base64(self) -> bool {
        self == Protocol::V4Base64
    }

    /// One message on `channel`.
    fn message(self, channel: u8, data: &[u8]) -> Message {
        if self.base64() {
            let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
            text.push(char::from(b'0' + channel));
            base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
            Message::text(text)
        } else {
            let mut frame = Vec::with_capacity(1 + data.len());
            frame.push(channel);
            frame.extend_from_slice(data);
            Message::binary(frame)
        }
    }

    /// The channel and data of a message from the client; `None` for
    /// control messages and for what does not decode.
    fn decode(self, message: Message) -> Option<(u8, Vec<u8>)> {
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Text(text) if self.base64() => text.as_bytes().to_vec().into(),
            _ => return None,
        };
        let (&channel, data) = bytes.split_first()?;
        if self.base64() {
            let data = base64::engine::general_purpose::STANDARD
                .decode(data)
                .ok()?;
            Some((channel.checked_sub(b'0')?, data))
        } else {
            Some((channel, data.to_vec()))
        }
    }
}

/// Why a request cannot become an exec WebSocket (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not a WebSocket upgrade (plain requests, SPDY).
    #[error(
        "Upgrade request required: exec is served over WebSockets ({})",
        supported()
    )]
    UpgradeRequired,
    /// A WebSocket version other than 13.
    #[error("unsupported WebSocket version {0:?}: expected 13")]
    Version(String),
    /// None of the offered subprotocols is served.
    #[error(
        "requested protocol(s) are not supported: [{offered}]; supports [{}]",
        supported()
    )]
    Protocol {
        /// What the client offered, space-separated.
        offered: String,
    },
}

fn supported() -> String {
    Protocol::ALL.map(Protocol::name).join(" ")
}

/// A WebSocket handshake the node accepts: the client's key and the
/// subprotocol chosen (the first the client offers that is served).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    key: String,
    /// The subprotocol of the session.
    pub protocol: Protocol,
}

impl Handshake {
    /// Checks a request's upgrade headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, HandshakeError> {
        let has_token = |name: header::HeaderName, token: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        };
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .and_then(|key| key.to_str().ok())
            .filter(|key| !key.is_empty());
        let (true, true, Some(key)) = (
            has_token(header::UPGRADE, "websocket"),
            has_token(header::CONNECTION, "upgrade"),
            key,
        ) else {
            return Err(HandshakeError::UpgradeRequired);
        };
        let version = headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if version.trim() != "13" {
            return Err(HandshakeError::Version(version.to_owned()));
        }
        let offered: Vec<&str> = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let protocol = offered
            .iter()
            .find_map(|offer| Protocol::ALL.into_iter().find(|p| p.name() == *offer))
            .ok_or_else(|| HandshakeError::Protocol {
                offered: offered.join(" "),
            })?;
        Ok(Self {
            key: key.to_owned(),
            protocol,
        })
    }

    /// The headers of the `101 Switching Protocols` answer.
    pub fn response_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(self.protocol.name()),
        );
        headers
    }
}

/// The status of a command that exited with `code`, as the kubelet writes
/// it on the error channel (`json.Marshal` of a `metav1.Status`).
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The status of a session that failed without an exit code, as the
/// kubelet's `NewInternalError`.
pub fn internal_error_status(message: &str) -> Value {
    let message = format!("Internal error occurred: {message}");
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

/// Runs one session over `io` (the upgraded connection) until the command
/// is over, the client leaves or `draining` turns true.
pub async fn run_session<S>(
    io: S,
    protocol: Protocol,
    options: ExecOptions,
    process: ExecProcess,
    mut draining: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut source) = socket.split();
    let ExecProcess {
        stdin,
        stdout,
        stderr,
        resize,
        exit,
    } = process;
    let first = if options.stdout {
        STDOUT
    } else if options.stderr {
        STDERR
    } else {
        ERROR
    };
    if sink.send(protocol.message(first, &[])).await.is_err() {
        return;
    }
    let inbound = forward_input(
        &mut source,
        protocol,
        stdin.filter(|_| options.stdin),
        resize,
    );
    let outbound = async {
        let output = Output {
            protocol,
            stdout: options.stdout,
            stderr: options.stderr,
        };
        let shutting_down = || internal_error_status("the node is shutting down");
        let status = match output
            .forward(&mut sink, stdout, stderr, &mut draining)
            .await
        {
            // A process may close its output and run on.
            Ok(Forwarded::Ended) => tokio::select! {
                exit = exit => match exit {
                    Ok(code) => exit_status(&options.command, code),
                    Err(error) => internal_error_status(&format!(
                        "error executing command in container: {}",
                        skiff_sdk::error_chain(&error)
                    )),
                },
                () = stopping(&mut draining) => shutting_down(),
            },
            Ok(Forwarded::Draining) => shutting_down(),
            Err(error) => {
                tracing::debug!(%error, "exec: sending output failed");
                return;
            }
        };
        let status = serde_json::to_vec(&status).expect("a JSON value serializes");
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }));
        if let Err(error) = async {
            sink.feed(protocol.message(ERROR, &status)).await?;
            sink.send(close).await
        }
        .await
        {
            tracing::debug!(%error, "exec: sending the status failed");
        }
    };
    {
        tokio::pin!(inbound, outbound);
        tokio::select! {
            () = &mut outbound => {
                // Let the client answer the close (its reader ends on it).
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut inbound).await;
            }
            () = &mut inbound => {
                tracing::debug!("exec: the client left before the command ended");
            }
        }
    }
    // Close the connection itself too (TLS close_notify).
    if let Ok(mut socket) = sink.reunite(source) {
        let _ = tokio::time::timeout(CLOSE_GRACE, socket.get_mut().shutdown()).await;
    }
}

/// What the client reads.
struct Output {
    protocol: Protocol,
    stdout: bool,
    stderr: bool,
}

/// How forwarding the output ended.
enum Forwarded {
    /// Both streams reached their end.
    Ended,
    /// The node API is shutting down.
    Draining,
}

impl Output {
    /// Reads both streams to their end (a stream the client did not ask
    /// for is read and dropped, so the process never blocks on it) and
    /// sends what the client asked for.
    async fn forward<W>(
        &self,
        sink: &mut W,
        mut stdout: ExecOutput,
        mut stderr: ExecOutput,
        draining: &mut watch::Receiver<bool>,
    ) -> Result<Forwarded, tungstenite::Error>
    where
        W: futures::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let mut out_buffer = vec![0; READ_CHUNK];
        let mut err_buffer = vec![0; READ_CHUNK];
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            tokio::select! {
                read = stdout.read(&mut out_buffer), if out_open => match read {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) if self.stdout => {
                        sink.send(self.protocol.message(STDOUT, &out_buffer[..n])).await?;
                    }
                    Ok(_) => {}
                },
                read = stderr.read(&mut err_buffer), if err_open => match read {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) if self.stderr => {
                        sink.send(self.protocol.message(STDERR, &err_buffer[..n])).await?;
                    }
                    Ok(_) => {}
                },
                () = stopping(draining) => return Ok(Forwarded::Draining),
            }
        }
        Ok(Forwarded::Ended)
    }
}

/// Routes the client's messages until it closes or leaves: stdin data to
/// the process, resizes to its terminal, version 5's close signal for
/// stdin. Unknown channels and malformed resizes are ignored.
async fn forward_input<R>(
    source: &mut R,
    protocol: Protocol,
    mut stdin: Option<ExecStdin>,
    resize: Option<watch::Sender<TerminalSize>>,
) where
    R: futures::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    while let Some(Ok(message)) = source.next().await {
        let Some((channel, data)) = protocol.decode(message) else {
            continue;
        };
        match channel {
            STDIN => {
                if let Some(writer) = &mut stdin
                    && writer.write_all(&data).await.is_err()
                {
                    // The process closed its stdin: drop what follows.
                    stdin = None;
                }
            }
            RESIZE => match (&resize, parse_resize(&data)) {
                (Some(resize), Some(size)) => {
                    resize.send_replace(size);
                }
                (_, None) => tracing::debug!("exec: ignoring a malformed resize message"),
                (None, Some(_)) => {}
            },
            CLOSE if protocol == Protocol::V5 && data.first() == Some(&STDIN) => {
                if let Some(mut writer) = stdin.take() {
                    let _ = writer.shutdown().await;
                }
            }
            _ => {}
        }
    }
}

/// A resize message: `{"Width": 80, "Height": 24}`.
fn parse_resize(data: &[u8]) -> Option<TerminalSize> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let size: Size = serde_json::from_slice(data).ok()?;
    Some(TerminalSize {
        width: size.width,
        height: size.height,
    })
}

/// Resolves once `flag` is true; never if its sender is gone.
async fn stopping(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(query: &str, expect: Result<(&[&str], [bool; 4]), ExecOptionsError>) {
        let actual = ExecOptions::from_query(query);
        let expect = expect.map(|(command, [stdin, stdout, stderr, tty])| ExecOptions {
            command: command.iter().map(|c| c.to_string()).collect(),
            stdin,
            stdout,
            stderr,
            tty,
        });
        assert_eq!(actual, expect, "{query}");
    }

    #[test]
    fn options_are_read_as_the_kubelet_reads_them() {
        check(
            "command=sh&command=-c&command=exit%203&output=1&error=1",
            Ok((&["sh", "-c", "exit 3"], [false, true, true, false])),
        );
        check(
            "command=cat&input=1&output=1",
            Ok((&["cat"], [true, true, false, false])),
        );
        // The API's names too, and true.
        check(
            "command=ls&stdin=true&stdout=1&stderr=1",
            Ok((&["ls"], [true, true, true, false])),
        );
        // A tty carries stderr on stdout.
        check(
            "command=sh&input=1&output=1&error=1&tty=1",
            Ok((&["sh"], [true, true, false, true])),
        );
        check(
            "command=ls&output=0&error=false",
            Err(ExecOptionsError::NoStreams),
        );
        check("command=ls&tty=1&error=1", Err(ExecOptionsError::NoStreams));
        check("output=1", Err(ExecOptionsError::NoCommand));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    const UPGRADE: [(&str, &str); 4] = [
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    #[test]
    fn the_handshake_picks_the_first_protocol_offered_that_is_served() {
        let offer = |protocols: &[&str]| {
            let mut pairs = UPGRADE.to_vec();
            pairs.extend(protocols.iter().map(|p| ("sec-websocket-protocol", *p)));
            Handshake::from_headers(&headers(&pairs)).map(|h| h.protocol)
        };
        assert_eq!(offer(&["v5.channel.k8s.io"]), Ok(Protocol::V5));
        assert_eq!(
            offer(&["v4.channel.k8s.io, v5.channel.k8s.io"]),
            Ok(Protocol::V4)
        );
        assert_eq!(
            offer(&["channel.k8s.io", "v4.base64.channel.k8s.io"]),
            Ok(Protocol::V4Base64)
        );
        assert_eq!(
            offer(&["channel.k8s.io"]).unwrap_err().to_string(),
            "requested protocol(s) are not supported: [channel.k8s.io]; supports [v5.channel.k8s.io v4.channel.k8s.io v4.base64.channel.k8s.io]"
        );
        assert!(matches!(offer(&[]), Err(HandshakeError::Protocol { .. })));

        let handshake = Handshake::from_headers(&headers(&[
            UPGRADE[0],
            UPGRADE[1],
            UPGRADE[2],
            UPGRADE[3],
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]))
        .unwrap();
        let response = handshake.response_headers();
        // RFC 6455's example key and answer.
        assert_eq!(
            response[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            response[header::SEC_WEBSOCKET_PROTOCOL],
            "v5.channel.k8s.io"
        );
    }

    #[test]
    fn requests_that_are_not_websocket_upgrades_are_refused() {
        assert_eq!(
            Handshake::from_headers(&HeaderMap::new()),
            Err(HandshakeError::UpgradeRequired)
        );
        let spdy = headers(&[("upgrade", "SPDY/3.1"), ("connection", "Upgrade")]);
        assert_eq!(
            Handshake::from_headers(&spdy),
            Err(HandshakeError::UpgradeRequired)
        );
        let old = headers(&[
            UPGRADE[0],
            UPGRADE[1],
            UPGRADE[2],
            ("sec-websocket-version", "8"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        assert_eq!(
            Handshake::from_headers(&old),
            Err(HandshakeError::Version("8".to_owned()))
        );
    }

    #[test]
    fn statuses_are_the_kubelets() {
        let command = ["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        assert_eq!(
            exit_status(&command, 0),
            json!({"metadata": {}, "status": "Success"})
        );
        assert_eq!(
            exit_status(&command, 3),
            json!({
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            })
        );
        assert_eq!(internal_error_status("boom")["code"], 500);
    }

    #[test]
    fn messages_encode_and_decode_per_protocol() {
        for protocol in Protocol::ALL {
            let message = protocol.message(STDIN, b"hi\n");
            assert_eq!(
                protocol.decode(message),
                Some((STDIN, b"hi\n".to_vec())),
                "{protocol:?}"
            );
        }
        assert_eq!(
            Protocol::V4Base64.message(STDOUT, b"hi"),
            Message::text("1aGk=")
        );
        assert_eq!(
            Protocol::V5.message(STDERR, b"x"),
            Message::binary(vec![2, b'x'])
        );
        assert_eq!(Protocol::V5.decode(Message::binary(Vec::new())), None);
        assert_eq!(Protocol::V5.decode(Message::text("0aGk=")), None);
        assert_eq!(
            parse_resize(br#"{"Width":120,"Height":40}"#),
            Some(TerminalSize {
                width: 120,
                height: 40
            })
        );
        assert_eq!(parse_resize(b"80x24"), None);
    }
}
