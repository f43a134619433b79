//! Container logs as the kubelet serves them for `kubectl logs`.
//!
//! Runtimes write each container instance's stdout and stderr to a file in
//! the CRI log format (`skiff_sdk::runtime::log`), rotated to `<path>.1`
//! when full. [`stream`] turns such a file (its rotated predecessor first)
//! back into the container's output, with the kubelet's options
//! ([`LogOptions`], parsed from its query string by
//! [`LogOptions::from_query`]): timestamps, `tailLines`, `sinceSeconds` /
//! `sinceTime`, `limitBytes` and `follow`.
//!
//! Lines of output are rebuilt per stream: the partial (`P`) records of a
//! long line are joined with the full (`F`) record that ends it, even when
//! the other stream wrote in between. A line is stamped (and filtered by
//! `since`) with the time of its first record.
//!
//! Which file belongs to which container is the agent's business: it
//! answers through [`LogSource`].
//!
//! Files are read with blocking IO inside `spawn_blocking`, one bounded
//! step at a time; a followed file is polled every [`POLL_INTERVAL`].

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::num::ParseIntError;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use jiff::{SignedDuration, Timestamp};
use skiff_sdk::runtime::log::{self as cri, Tag, parse_line, rotated_path};
use tokio::sync::watch;

/// How often a followed log file is checked for new output.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How much of a file one blocking step reads.
const READ_CHUNK: usize = 64 << 10;

/// The partial records of one line are held back to be joined up to this
/// size; a longer line is output in pieces as it comes (unstamped after its
/// first piece).
const MAX_HELD_LINE_BYTES: usize = 1 << 20;

/// A record longer than this (far beyond any runtime's record size) is not
/// a record: it is skipped without being held in memory.
const MAX_RECORD_BYTES: usize = 4 << 20;

/// What `kubectl logs` asks for: the kubelet's log query parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the response open and send output as it is written, until the
    /// container instance has exited.
    pub follow: bool,
    /// Read the previous instance of the container (the one before a
    /// restart) instead of the current one.
    pub previous: bool,
    /// Prefix each line with the RFC 3339 time (nanoseconds) of its output
    /// and a space.
    pub timestamps: bool,
    /// Only the last this many lines (over the rotated file and the current
    /// one).
    pub tail_lines: Option<u64>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
}

/// Why a log query string is not valid; the API answers 400 Bad Request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogOptionsError {
    /// A boolean parameter is neither true nor false.
    #[error("invalid value {value:?} for {parameter}: expected true or false")]
    Boolean {
        /// The parameter, as in the query.
        parameter: &'static str,
        /// Its value.
        value: String,
    },
    /// A numeric parameter is not an integer.
    #[error("invalid value {value:?} for {parameter}: expected an integer")]
    Integer {
        /// The parameter, as in the query.
        parameter: &'static str,
        /// Its value.
        value: String,
        /// Why it does not parse.
        #[source]
        source: ParseIntError,
    },
    /// A numeric parameter is below its minimum.
    #[error("{parameter}: Invalid value: {value}: must be greater than or equal to {minimum}")]
    OutOfRange {
        /// The parameter, as in the query.
        parameter: &'static str,
        /// Its value.
        value: i64,
        /// The smallest value allowed.
        minimum: i64,
    },
    /// `sinceTime` is not an RFC 3339 time.
    #[error("invalid value {value:?} for sinceTime: expected an RFC 3339 time")]
    Time {
        /// Its value.
        value: String,
        /// Why it does not parse.
        #[source]
        source: jiff::Error,
    },
    /// Both `sinceSeconds` and `sinceTime` were given.
    #[error("at most one of `sinceTime` or `sinceSeconds` may be specified")]
    BothSince,
}

impl LogOptions {
    /// Parses the kubelet's query parameters: `follow`, `previous` and
    /// `timestamps` (`true` / `false`, `1` / `0`, and Go's other spellings
    /// `t`, `T`, `True`, `TRUE`, `f`, ...), `tailLines` (≥ 0), `limitBytes`
    /// (≥ 1), `sinceSeconds` (≥ 1, counted back from `now`) or `sinceTime`
    /// (RFC 3339), not both. Values are percent-decoded; the first of
    /// repeated parameters counts (as in Kubernetes); unknown parameters are
    /// ignored.
    pub fn from_query(query: &str, now: Timestamp) -> Result<LogOptions, LogOptionsError> {
        let mut options = LogOptions::default();
        let mut seen: Vec<String> = Vec::new();
        let mut since_seconds = None;
        let mut since_time = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            if seen.contains(&key) {
                continue;
            }
            let value = percent_decode(value);
            match key.as_str() {
                "follow" => options.follow = parse_bool("follow", value)?,
                "previous" => options.previous = parse_bool("previous", value)?,
                "timestamps" => options.timestamps = parse_bool("timestamps", value)?,
                "tailLines" => options.tail_lines = Some(parse_count("tailLines", value, 0)?),
                "limitBytes" => options.limit_bytes = Some(parse_count("limitBytes", value, 1)?),
                "sinceSeconds" => since_seconds = Some(parse_count("sinceSeconds", value, 1)?),
                "sinceTime" => {
                    let time = value
                        .parse::<Timestamp>()
                        .map_err(|source| LogOptionsError::Time { value, source })?;
                    since_time = Some(time);
                }
                _ => continue,
            }
            seen.push(key);
        }
        options.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => return Err(LogOptionsError::BothSince),
            (Some(seconds), None) => {
                // At least 1 and at most i64::MAX, as parsed.
                let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
                Some(
                    now.checked_sub(SignedDuration::from_secs(seconds))
                        .unwrap_or(Timestamp::MIN),
                )
            }
            (None, time) => time,
        };
        Ok(options)
    }
}

/// Go's `strconv.ParseBool`, which Kubernetes' query parameters use.
fn parse_bool(parameter: &'static str, value: String) -> Result<bool, LogOptionsError> {
    match value.as_str() {
        "1" | "t" | "T" | "true" | "True" | "TRUE" => Ok(true),
        "0" | "f" | "F" | "false" | "False" | "FALSE" => Ok(false),
        _ => Err(LogOptionsError::Boolean { parameter, value }),
    }
}

/// A non-negative integer of at least `minimum`.
fn parse_count(
    parameter: &'static str,
    value: String,
    minimum: i64,
) -> Result<u64, LogOptionsError> {
    let number = match value.parse::<i64>() {
        Ok(number) => number,
        Err(source) => {
            return Err(LogOptionsError::Integer {
                parameter,
                value,
                source,
            });
        }
    };
    u64::try_from(number)
        .ok()
        .filter(|_| number >= minimum)
        .ok_or(LogOptionsError::OutOfRange {
            parameter,
            value: number,
            minimum,
        })
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte; a `%` not followed by two hex digits stays as it is, and bytes
/// that are not UTF-8 become U+FFFD.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
                let low = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
                if let (Some(high), Some(low)) = (high, low) {
                    // Two hex digits: at most 255.
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the output of one container instance is, as the agent knows it.
pub trait LogSource: Send + Sync + 'static {
    /// The log of `container` of pod `namespace/pod`: its current instance,
    /// or with `previous` the instance before the last restart.
    fn locate(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerLog, LocateError>;
}

/// One container instance's log file.
#[derive(Clone, Debug)]
pub struct ContainerLog {
    /// The CRI log file; its older output, if rotated, is in
    /// [`rotated_path`] of it.
    pub path: PathBuf,
    /// Turns true once the instance has exited, when the file holds all its
    /// output; a follow then ends at the end of the file. A dropped sender
    /// counts as exited.
    pub finished: watch::Receiver<bool>,
}

/// Why there is no log to read, with the kubelet's messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocateError {
    /// The pod is not on this node (404).
    #[error("pod \"{namespace}/{pod}\" does not exist")]
    PodNotFound {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
    },
    /// The pod has no container of that name (404).
    #[error("container \"{container}\" not found in pod \"{pod}\"")]
    ContainerNotFound {
        /// The pod's name.
        pod: String,
        /// The container asked for.
        container: String,
    },
    /// `previous` was asked for a container that has not restarted (400).
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    NoPreviousInstance {
        /// The pod's name.
        pod: String,
        /// The container asked for.
        container: String,
    },
    /// The container has not started yet, so it has no log (400).
    #[error("container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}")]
    NotStarted {
        /// The pod's name.
        pod: String,
        /// The container asked for.
        container: String,
        /// Why it waits, e.g. `ContainerCreating`.
        reason: String,
    },
}

/// The output of `log` as the kubelet serves it under `options` (see the
/// module docs). Without `follow` it ends at the end of the file; with it,
/// once the instance has finished and all its output was sent. IO errors
/// end the stream after being yielded; malformed lines are skipped.
/// Dropping the stream stops reading.
pub fn stream(
    log: ContainerLog,
    options: LogOptions,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let driver = Driver {
        opening: Some((log.path, options.clone())),
        reader: None,
        finished: log.finished,
        follow: options.follow,
        last_pass: false,
        remaining: options.limit_bytes,
        done: options.limit_bytes == Some(0),
    };
    futures::stream::unfold(driver, Driver::next)
}

/// The async side of [`stream`]: runs [`Reader`] steps on the blocking pool
/// and waits between polls of a followed file.
struct Driver {
    /// What to open on the first poll.
    opening: Option<(PathBuf, LogOptions)>,
    reader: Option<Box<Reader>>,
    finished: watch::Receiver<bool>,
    follow: bool,
    /// The instance was seen finished: the next end of file is the end.
    last_pass: bool,
    /// What `limitBytes` still allows.
    remaining: Option<u64>,
    done: bool,
}

impl Driver {
    async fn next(mut self) -> Option<(io::Result<Bytes>, Self)> {
        loop {
            if self.done {
                return None;
            }
            let mut reader = match self.reader.take() {
                Some(reader) => reader,
                None => {
                    let (path, options) = self.opening.take()?;
                    match blocking(move || Reader::open(path, &options).map(Box::new)).await {
                        Ok(reader) => reader,
                        Err(error) => return self.fail(error),
                    }
                }
            };
            let last_pass = self.last_pass || !self.follow;
            let (reader, step) = match blocking(move || {
                let step = reader.step(last_pass);
                Ok((reader, step))
            })
            .await
            {
                Ok(stepped) => stepped,
                Err(error) => return self.fail(error),
            };
            let step = match step {
                Ok(step) => step,
                Err(error) => {
                    tracing::warn!(path = %reader.path.display(), %error, "reading a container log failed");
                    return self.fail(error);
                }
            };
            let ended = step.at_end && last_pass;
            if ended {
                reader.log_summary();
                self.done = true;
            } else {
                self.reader = Some(reader);
            }
            if !step.output.is_empty() {
                let output = self.limit(step.output);
                return Some((Ok(output), self));
            }
            if ended {
                return None;
            }
            if step.at_end {
                self.wait().await;
            }
        }
    }

    /// Waits for more output of a followed file: the poll interval, or less
    /// if the instance finishes meanwhile (then one more pass to the end).
    async fn wait(&mut self) {
        if *self.finished.borrow_and_update() || self.finished.has_changed().is_err() {
            self.last_pass = true;
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            changed = self.finished.changed() => {
                if changed.is_err() || *self.finished.borrow_and_update() {
                    self.last_pass = true;
                }
            }
        }
    }

    /// Applies `limitBytes`: cuts the output and ends the stream once it is
    /// reached.
    fn limit(&mut self, mut output: Vec<u8>) -> Bytes {
        if let Some(remaining) = &mut self.remaining {
            let len = output.len() as u64;
            if len >= *remaining {
                // `remaining` <= `len`, which is a usize.
                output.truncate(*remaining as usize);
                self.done = true;
                self.reader = None;
            } else {
                *remaining -= len;
            }
        }
        Bytes::from(output)
    }

    fn fail(mut self, error: io::Error) -> Option<(io::Result<Bytes>, Self)> {
        self.done = true;
        self.reader = None;
        Some((Err(error), self))
    }
}

/// Runs blocking file IO off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

/// What one [`Reader::step`] produced.
struct Step {
    /// Output to send (may be empty).
    output: Vec<u8>,
    /// Whether the end of the newest file was reached.
    at_end: bool,
}

/// A file's identity, to notice that the path now names another file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
}

impl FileId {
    fn of(file: &File) -> io::Result<FileId> {
        Self::from_metadata(&file.metadata()?)
    }

    fn from_metadata(metadata: &std::fs::Metadata) -> io::Result<FileId> {
        Ok(FileId {
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }
}

/// The blocking side of [`stream`]: reads the files in order and turns
/// their records into output.
struct Reader {
    path: PathBuf,
    follow: bool,
    /// The file being read, at its read position.
    file: Option<File>,
    /// Files to read after `file`, positioned at their start; the newest
    /// handle of `path` comes last.
    next: VecDeque<File>,
    /// The newest handle of `path` opened, to notice rotation.
    followed: Option<FileId>,
    /// The start of a record whose end has not been read yet.
    carry: Vec<u8>,
    /// Skipping the rest of a record longer than [`MAX_RECORD_BYTES`].
    discarding: bool,
    lines: Lines,
    out: Out,
    /// Malformed lines skipped, reported once at the end.
    skipped: u64,
    buffer: Vec<u8>,
}

impl Reader {
    /// Opens the current file and the rotated one (the current first, so
    /// that a rotation in between cannot hide output, only repeat the
    /// current file, which its identity then rules out), and with
    /// `tail_lines` positions them at the last lines.
    fn open(path: PathBuf, options: &LogOptions) -> io::Result<Reader> {
        let current = open_existing(&path)?;
        let current_id = current.as_ref().map(FileId::of).transpose()?;
        let mut files = Vec::with_capacity(2);
        if let Some(rotated) = open_existing(&rotated_path(&path))?
            && Some(FileId::of(&rotated)?) != current_id
        {
            files.push(rotated);
        }
        files.extend(current);

        let mut out = Out::Direct(Vec::new());
        if let Some(lines) = options.tail_lines {
            let (index, offset) = tail_start(&files, lines, options.follow)?;
            files.drain(..index);
            if let Some(first) = files.first_mut() {
                first.seek(SeekFrom::Start(offset))?;
            }
            out = Out::Tail {
                lines: VecDeque::new(),
                keep: usize::try_from(lines).unwrap_or(usize::MAX),
            };
        }
        let mut next = VecDeque::from(files);
        Ok(Reader {
            path,
            follow: options.follow,
            file: next.pop_front(),
            next,
            followed: current_id,
            carry: Vec::new(),
            discarding: false,
            lines: Lines {
                timestamps: options.timestamps,
                since: options.since,
                open: Default::default(),
            },
            out,
            skipped: 0,
            buffer: vec![0; READ_CHUNK],
        })
    }

    /// Reads up to [`READ_CHUNK`] bytes. At the end of the newest file,
    /// ends the search for the tail, and on the `last_pass` also sends what
    /// is left of unfinished lines.
    fn step(&mut self, last_pass: bool) -> io::Result<Step> {
        let at_end = !self.read_some()?;
        if at_end {
            if last_pass {
                self.end_of_record();
                self.lines.finish(&mut self.out);
            }
            if let Out::Tail { lines, keep } = &mut self.out {
                // Lines still unfinished were counted in the tail and come
                // later.
                let unfinished = self.lines.unfinished();
                *keep = keep.saturating_sub(unfinished);
                let skip = lines.len().saturating_sub(*keep);
                let output = lines.drain(..).skip(skip).flatten().collect();
                self.out = Out::Direct(output);
            }
        }
        let output = match &mut self.out {
            Out::Direct(output) => std::mem::take(output),
            Out::Tail { .. } => Vec::new(),
        };
        Ok(Step { output, at_end })
    }

    /// Reads one chunk into the output; false at the end of the newest
    /// file.
    fn read_some(&mut self) -> io::Result<bool> {
        loop {
            let Some(file) = self.file.as_mut() else {
                if let Some(next) = self.next.pop_front() {
                    self.file = Some(next);
                    continue;
                }
                if self.follow && self.check_rotation()? {
                    continue;
                }
                return Ok(false);
            };
            let read = match file.read(&mut self.buffer) {
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if read > 0 {
                self.consume(read);
                return Ok(true);
            }
            // The end of this handle: on to the next file, if any. Records
            // never span files.
            if let Some(next) = self.next.pop_front() {
                self.end_of_record();
                self.file = Some(next);
                continue;
            }
            if self.follow && self.check_rotation()? {
                // Read the old handle to its end (the writer may have
                // appended before renaming), then the new files.
                continue;
            }
            return Ok(false);
        }
    }

    /// Whether `path` names a newer file than the one followed; if so,
    /// queues it (and the rotated file, if that too is newer: rotated twice
    /// between two polls).
    fn check_rotation(&mut self) -> io::Result<bool> {
        let Some(current) = open_existing(&self.path)? else {
            return Ok(false);
        };
        let current_id = FileId::of(&current)?;
        if Some(current_id) == self.followed {
            return Ok(false);
        }
        if let Some(followed) = self.followed
            && let Some(rotated) = open_existing(&rotated_path(&self.path))?
        {
            let rotated_id = FileId::of(&rotated)?;
            if rotated_id != followed && rotated_id != current_id {
                self.next.push_back(rotated);
            }
        }
        tracing::debug!(path = %self.path.display(), "following a rotated container log");
        self.next.push_back(current);
        self.followed = Some(current_id);
        Ok(true)
    }

    /// Splits what was read into records.
    fn consume(&mut self, read: usize) {
        let mut data = &self.buffer[..read];
        while let Some(newline) = data.iter().position(|b| *b == b'\n') {
            let (line, rest) = data.split_at(newline + 1);
            data = rest;
            if self.discarding {
                self.discarding = false;
                self.skipped += 1;
            } else if self.carry.is_empty() {
                record(line, &mut self.lines, &mut self.out, &mut self.skipped);
            } else {
                self.carry.extend_from_slice(line);
                record(
                    &self.carry,
                    &mut self.lines,
                    &mut self.out,
                    &mut self.skipped,
                );
                self.carry.clear();
            }
        }
        if !self.discarding {
            self.carry.extend_from_slice(data);
            if self.carry.len() > MAX_RECORD_BYTES {
                self.carry = Vec::new();
                self.discarding = true;
            }
        }
    }

    /// Takes what is left of a record without its newline as a record (the
    /// end of a file, or of the output).
    fn end_of_record(&mut self) {
        if self.discarding {
            self.discarding = false;
            self.skipped += 1;
        }
        if !self.carry.is_empty() {
            record(
                &self.carry,
                &mut self.lines,
                &mut self.out,
                &mut self.skipped,
            );
            self.carry.clear();
        }
    }

    fn log_summary(&self) {
        if self.skipped > 0 {
            tracing::debug!(
                path = %self.path.display(),
                skipped = self.skipped,
                "skipped malformed container log lines"
            );
        }
    }
}

/// Opens a file for reading; `None` when it does not exist.
fn open_existing(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Parses one record into `lines`; a malformed one is counted and skipped.
fn record(line: &[u8], lines: &mut Lines, out: &mut Out, skipped: &mut u64) {
    match parse_line(line) {
        Ok(line) => lines.push(line, out),
        Err(_) => *skipped += 1,
    }
}

/// Where output goes: straight out, or, while looking for the last lines,
/// into a ring of them.
enum Out {
    /// The output, sent after each step.
    Direct(Vec<u8>),
    /// The last `keep` lines.
    Tail {
        lines: VecDeque<Vec<u8>>,
        keep: usize,
    },
}

impl Out {
    /// Appends output: a line's `content` parts, stamped with `time` if
    /// given, and ending it with a newline if `newline`.
    fn emit(&mut self, time: Option<Timestamp>, content: [&[u8]; 2], newline: bool) {
        let mut line = Vec::new();
        let output = match self {
            Out::Direct(output) => output,
            Out::Tail { .. } => &mut line,
        };
        if let Some(time) = time {
            // Infallible: writing to a Vec.
            let _ = write!(output, "{time:.9} ");
        }
        output.extend_from_slice(content[0]);
        output.extend_from_slice(content[1]);
        if newline {
            output.push(b'\n');
        }
        if let Out::Tail { lines, keep } = self {
            lines.push_back(line);
            if lines.len() > *keep {
                lines.pop_front();
            }
        }
    }
}

/// Rebuilds lines of output from records, per stream.
struct Lines {
    timestamps: bool,
    since: Option<Timestamp>,
    /// Each stream's unfinished line: stdout, stderr.
    open: [OpenLine; 2],
}

/// A line whose partial records have been read but not its end.
#[derive(Default)]
struct OpenLine {
    /// The time of its first record; `None` when no line is open.
    time: Option<Timestamp>,
    /// Whether it passes `since`.
    wanted: bool,
    /// Its content not output yet.
    held: Vec<u8>,
    /// Whether its start (and stamp) was already output, the line being
    /// too long to hold.
    started: bool,
}

impl OpenLine {
    fn stamp(&self, timestamps: bool) -> Option<Timestamp> {
        self.time.filter(|_| timestamps && !self.started)
    }

    fn reset(&mut self) {
        self.time = None;
        self.held.clear();
        self.started = false;
    }
}

impl Lines {
    fn push(&mut self, record: cri::LogLine<'_>, out: &mut Out) {
        let open = &mut self.open[stream_index(record.stream)];
        if open.time.is_none() {
            open.time = Some(record.time);
            open.wanted = self.since.is_none_or(|since| record.time >= since);
        }
        match record.tag {
            Tag::Partial => {
                if !open.wanted {
                    return;
                }
                open.held.extend_from_slice(record.content);
                // While looking for the tail, lines are held whole.
                if open.held.len() >= MAX_HELD_LINE_BYTES && matches!(out, Out::Direct(_)) {
                    out.emit(open.stamp(self.timestamps), [&open.held, b""], false);
                    open.started = true;
                    open.held.clear();
                }
            }
            Tag::Full => {
                if open.wanted {
                    out.emit(
                        open.stamp(self.timestamps),
                        [&open.held, record.content],
                        true,
                    );
                }
                open.reset();
            }
        }
    }

    /// Outputs unfinished lines as they are (output that ended without a
    /// newline), the earliest first.
    fn finish(&mut self, out: &mut Out) {
        let mut order = [0, 1];
        order.sort_by_key(|stream| self.open[*stream].time);
        for stream in order {
            let open = &mut self.open[stream];
            if open.time.is_some() && open.wanted && !open.held.is_empty() {
                out.emit(open.stamp(self.timestamps), [&open.held, b""], false);
            }
            open.reset();
        }
    }

    /// How many lines are unfinished.
    fn unfinished(&self) -> usize {
        self.open.iter().filter(|open| open.time.is_some()).count()
    }
}

fn stream_index(stream: cri::Stream) -> usize {
    match stream {
        cri::Stream::Stdout => 0,
        cri::Stream::Stderr => 1,
    }
}

/// Where reading must start to see the last `lines` lines of `files`
/// (oldest first): the index of the file and the offset in it. Reads the
/// files backwards from their end in chunks, only as far as needed. An
/// unterminated last record of the newest file is a line unless following
/// (then it is still being written).
fn tail_start(files: &[File], lines: u64, follow: bool) -> io::Result<(usize, u64)> {
    let Some(newest) = files.len().checked_sub(1) else {
        return Ok((0, 0));
    };
    if lines == 0 {
        return Ok((newest, files[newest].metadata()?.len()));
    }
    let mut scan = TailScan::new(lines);
    for (index, file) in files.iter().enumerate().rev() {
        let whole_last_record = !follow || index != newest;
        scan_backwards(file, index, whole_last_record, &mut scan)?;
        if scan.done() {
            break;
        }
    }
    Ok(scan.start.filter(|_| scan.done()).unwrap_or((0, 0)))
}

/// Feeds the records of `file` to `scan`, the last first, until it is done.
fn scan_backwards(
    file: &File,
    index: usize,
    whole_last_record: bool,
    scan: &mut TailScan,
) -> io::Result<()> {
    // The records before `end` are still to be scanned; `buffer` holds the
    // file's bytes from `buffer_start` to `end`.
    let mut end = file.metadata()?.len();
    let mut buffer: Vec<u8> = Vec::new();
    let mut buffer_start = end;
    let mut last = true;
    while end > 0 {
        if buffer_start == end {
            buffer_start = read_before(file, buffer_start, &mut buffer)?;
        }
        // The record's own newline (if any) is its last byte: the one
        // before it ends the previous record.
        let search = (end - 1 - buffer_start) as usize;
        let start = match buffer[..search].iter().rposition(|b| *b == b'\n') {
            Some(newline) => buffer_start + newline as u64 + 1,
            None if buffer_start == 0 => 0,
            None if end - buffer_start > MAX_RECORD_BYTES as u64 => {
                // Not a record: skip to its start without holding it.
                end = start_of_line(file, buffer_start)?;
                buffer.clear();
                buffer_start = end;
                last = false;
                continue;
            }
            None => {
                buffer_start = read_before(file, buffer_start, &mut buffer)?;
                continue;
            }
        };
        let offset = (start - buffer_start) as usize;
        let record = &buffer[offset..];
        let terminated = record.last() == Some(&b'\n');
        if (terminated || !last || whole_last_record)
            && let Ok(line) = parse_line(record)
            && scan.record(line.stream, line.tag)
        {
            scan.start = Some((index, start));
        }
        last = false;
        buffer.truncate(offset);
        end = start;
        if scan.done() {
            break;
        }
    }
    Ok(())
}

/// Where the line holding the byte before `before` starts: after the
/// closest newline before it, or at 0.
fn start_of_line(file: &File, mut before: u64) -> io::Result<u64> {
    let mut chunk = Vec::new();
    while before > 0 {
        chunk.clear();
        let start = read_before(file, before, &mut chunk)?;
        if let Some(newline) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + newline as u64 + 1);
        }
        before = start;
    }
    Ok(0)
}

/// Prepends the bytes of `file` before `before` to `buffer`: a
/// [`READ_CHUNK`], or as much as the buffer holds, so that a long record
/// costs a few copies, not one per chunk. Returns where the buffer now
/// starts.
fn read_before(file: &File, before: u64, buffer: &mut Vec<u8>) -> io::Result<u64> {
    let start = before.saturating_sub(READ_CHUNK.max(buffer.len()) as u64);
    // At most the larger of READ_CHUNK and the buffer's length.
    let mut chunk = vec![0; (before - start) as usize];
    file.read_exact_at(&mut chunk, start)?;
    chunk.extend_from_slice(buffer);
    *buffer = chunk;
    Ok(start)
}

/// Counts lines backwards from the end of the output: each full record
/// ends a line, and a stream's trailing partial records are an unfinished
/// one. A line's partial records come before its end, maybe with the other
/// stream's records in between, so a line is `open` from its end until the
/// stream's previous full record.
struct TailScan {
    wanted: u64,
    counted: u64,
    /// Whether a stream's last record was seen.
    seen: [bool; 2],
    /// Whether a counted line of the stream may have earlier records.
    open: [bool; 2],
    /// The earliest record of a counted line: file index and offset.
    start: Option<(usize, u64)>,
}

impl TailScan {
    fn new(wanted: u64) -> Self {
        TailScan {
            wanted,
            counted: 0,
            seen: [false; 2],
            open: [false; 2],
            start: None,
        }
    }

    /// Takes the record before those seen; whether it is part of a counted
    /// line.
    fn record(&mut self, stream: cri::Stream, tag: Tag) -> bool {
        let stream = stream_index(stream);
        let ends_line = match tag {
            Tag::Full => true,
            // The stream's output ends with an unfinished line.
            Tag::Partial => !self.seen[stream],
        };
        self.seen[stream] = true;
        if !ends_line {
            return self.open[stream];
        }
        // The stream's line after this record starts after it.
        self.open[stream] = false;
        if self.counted < self.wanted {
            self.counted += 1;
            self.open[stream] = true;
            true
        } else {
            false
        }
    }

    fn done(&self) -> bool {
        self.counted >= self.wanted && !self.open.iter().any(|open| *open)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use futures::StreamExt as _;
    use skiff_sdk::runtime::log::{LogLine, LogWriter};

    use super::*;

    const P: Tag = Tag::Partial;
    const F: Tag = Tag::Full;
    const OUT: cri::Stream = cri::Stream::Stdout;
    const ERR: cri::Stream = cri::Stream::Stderr;

    /// Second `s` of the test's day.
    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn now() -> Timestamp {
        t(100)
    }

    /// Appends raw records `(second, stream, tag, content)` to `path`.
    fn append(path: &Path, records: &[(i64, cri::Stream, Tag, &str)]) {
        let mut bytes = Vec::new();
        for (second, stream, tag, content) in records {
            LogLine {
                time: t(*second),
                stream: *stream,
                tag: *tag,
                content: content.as_bytes(),
            }
            .encode(&mut bytes);
        }
        append_raw(path, &bytes);
    }

    fn append_raw(path: &Path, bytes: &[u8]) {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(bytes).unwrap();
    }

    fn exited(path: &Path) -> ContainerLog {
        let (_, finished) = watch::channel(true);
        ContainerLog {
            path: path.to_owned(),
            finished,
        }
    }

    async fn read_all(log: ContainerLog, options: LogOptions) -> String {
        let chunks: Vec<_> = stream(log, options).collect().await;
        let bytes: Vec<u8> = chunks
            .into_iter()
            .flat_map(|chunk| chunk.unwrap().to_vec())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    /// The output of an exited container's log (`rotated` records in
    /// `<path>.1`, `current` in the file) for `query`.
    #[track_caller]
    fn check(
        query: &str,
        rotated: &[(i64, cri::Stream, Tag, &str)],
        current: &[(i64, cri::Stream, Tag, &str)],
        expect: &str,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        if !rotated.is_empty() {
            append(&rotated_path(&path), rotated);
        }
        append(&path, current);
        let options = LogOptions::from_query(query, now()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = runtime.block_on(read_all(exited(&path), options));
        assert_eq!(got, expect, "query {query:?}");
    }

    fn lines(count: i64) -> Vec<(i64, cri::Stream, Tag, String)> {
        (0..count)
            .map(|i| (i, OUT, F, format!("line {i}")))
            .collect()
    }

    fn borrowed(records: &[(i64, cri::Stream, Tag, String)]) -> Vec<(i64, cri::Stream, Tag, &str)> {
        records
            .iter()
            .map(|(s, stream, tag, content)| (*s, *stream, *tag, content.as_str()))
            .collect()
    }

    #[test]
    fn plain_output_joins_streams_in_order() {
        let current = [
            (1, OUT, F, "hello"),
            (2, ERR, F, "warning"),
            (3, OUT, F, ""),
            (4, OUT, F, " spaced  out "),
        ];
        check("", &[], &current, "hello\nwarning\n\n spaced  out \n");
        check("", &[], &[], "");
    }

    #[test]
    fn timestamps_prefix_each_line_with_nanoseconds() {
        let current = [(1, OUT, F, "a"), (2, ERR, F, "b")];
        check(
            "timestamps=true",
            &[],
            &current,
            "2023-11-14T22:13:21.000000000Z a\n2023-11-14T22:13:22.000000000Z b\n",
        );
    }

    #[test]
    fn partial_records_are_joined_per_stream() {
        let current = [
            (1, OUT, P, "long "),
            (2, ERR, F, "interleaved"),
            (3, OUT, P, "line "),
            (4, OUT, F, "ends"),
            (5, ERR, P, "no newline"),
        ];
        check("", &[], &current, "interleaved\nlong line ends\nno newline");
        // Stamped with the time of the line's first record.
        check(
            "timestamps=1",
            &[],
            &current[..4],
            "2023-11-14T22:13:22.000000000Z interleaved\n\
             2023-11-14T22:13:21.000000000Z long line ends\n",
        );
    }

    #[test]
    fn rotated_file_comes_first() {
        check(
            "",
            &[(1, OUT, F, "old")],
            &[(2, OUT, F, "new")],
            "old\nnew\n",
        );
    }

    #[test]
    fn tail_counts_lines_over_the_rotated_file() {
        let rotated = [(1, OUT, F, "r1"), (2, OUT, F, "r2"), (3, OUT, F, "r3")];
        let current = [(4, OUT, F, "c1"), (5, OUT, F, "c2")];
        check("tailLines=0", &rotated, &current, "");
        check("tailLines=1", &rotated, &current, "c2\n");
        check("tailLines=2", &rotated, &current, "c1\nc2\n");
        check("tailLines=3", &rotated, &current, "r3\nc1\nc2\n");
        check("tailLines=5", &rotated, &current, "r1\nr2\nr3\nc1\nc2\n");
        check("tailLines=50", &rotated, &current, "r1\nr2\nr3\nc1\nc2\n");
        check("tailLines=2", &rotated, &[], "r2\nr3\n");
        check("tailLines=2", &[], &[], "");
    }

    #[test]
    fn tail_keeps_whole_lines_of_partial_records() {
        let current = [
            (1, OUT, F, "before"),
            (2, OUT, P, "a "),
            (3, ERR, F, "e1"),
            (4, OUT, P, "long "),
            (5, ERR, F, "e2"),
            (6, OUT, F, "line"),
            (7, ERR, P, "unfinished"),
        ];
        check("tailLines=1", &[], &current, "unfinished");
        check("tailLines=2", &[], &current, "a long line\nunfinished");
        check("tailLines=3", &[], &current, "e2\na long line\nunfinished");
        check(
            "tailLines=5",
            &[],
            &current,
            "before\ne1\ne2\na long line\nunfinished",
        );
        // A line's parts in the rotated file.
        check(
            "tailLines=1",
            &[(1, OUT, F, "x"), (2, OUT, P, "split ")],
            &[(3, OUT, F, "line")],
            "split line\n",
        );
    }

    #[test]
    fn tail_of_a_large_file_reads_from_near_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let records = lines(20_000);
        append(&path, &borrowed(&records));
        let file = File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let (index, offset) = tail_start(std::slice::from_ref(&file), 10, false).unwrap();
        assert_eq!(index, 0);
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = format!("{:.9} stdout F line 19990\n", t(19_990));
        assert!(text[offset as usize..].starts_with(&expect));
        assert_eq!(text[offset as usize..].lines().count(), 10);
        assert!(len - offset < READ_CHUNK as u64);
    }

    #[test]
    fn since_drops_earlier_lines() {
        let rotated = [(1, OUT, F, "one")];
        let current = [
            (2, OUT, P, "two "),
            (3, OUT, F, "parts"),
            (4, ERR, F, "four"),
        ];
        check(
            "sinceTime=2023-11-14T22:13:22Z",
            &rotated,
            &current,
            "two parts\nfour\n",
        );
        // A line counts from its first record.
        check(
            "sinceTime=2023-11-14T22%3A13%3A23Z",
            &rotated,
            &current,
            "four\n",
        );
        check("sinceSeconds=97", &rotated, &current, "four\n");
        check(
            "sinceSeconds=1000",
            &rotated,
            &current,
            "one\ntwo parts\nfour\n",
        );
        check("sinceSeconds=96&tailLines=1", &rotated, &current, "four\n");
    }

    #[test]
    fn limit_bytes_cuts_the_output() {
        let current = [(1, OUT, F, "abc"), (2, OUT, F, "defg")];
        check("limitBytes=1", &[], &current, "a");
        check("limitBytes=4", &[], &current, "abc\n");
        check("limitBytes=6", &[], &current, "abc\nde");
        check("limitBytes=100", &[], &current, "abc\ndefg\n");
        check(
            "limitBytes=33&timestamps=true",
            &[],
            &current,
            "2023-11-14T22:13:21.000000000Z ab",
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        append(&path, &[(1, OUT, F, "first")]);
        append_raw(
            &path,
            b"garbage\n\n\xff\xfe\n2023-11-14T22:13:21Z stdin F x\nyesterday stdout F y\n",
        );
        append(&path, &[(2, OUT, F, "second")]);
        // An unterminated record at the end of an exited container's file
        // still counts.
        append_raw(&path, b"2023-11-14T22:13:23Z stdout F third");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = runtime.block_on(read_all(exited(&path), LogOptions::default()));
        assert_eq!(got, "first\nsecond\nthird\n");
        let tail = LogOptions {
            tail_lines: Some(2),
            ..LogOptions::default()
        };
        let got = runtime.block_on(read_all(exited(&path), tail));
        assert_eq!(got, "second\nthird\n");
    }

    #[test]
    fn oversized_lines_and_garbage_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        // A line longer than what is held back: out in pieces (so another
        // stream's line in between would land inside it), stamped once.
        let long = "x".repeat(MAX_HELD_LINE_BYTES + 100);
        let mut writer = LogWriter::open(&path).unwrap();
        writer.write(t(1), ERR, b"before\n").unwrap();
        writer.write(t(2), OUT, long.as_bytes()).unwrap();
        writer.write(t(3), OUT, b"!\n").unwrap();
        // Not a record, and longer than any.
        let mut garbage = vec![b'g'; MAX_RECORD_BYTES + 10];
        garbage.push(b'\n');
        append_raw(&path, &garbage);
        writer.write(t(4), OUT, b"last\n").unwrap();
        drop(writer);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        #[track_caller]
        fn same(got: String, expect: String) {
            // Not printed whole: megabytes.
            let head = |s: &str| s.chars().take(80).collect::<String>();
            let tail = |s: &str| s.chars().rev().take(80).collect::<String>();
            assert!(
                got == expect,
                "got {} bytes {:?}..{:?}, expected {} bytes {:?}..{:?}",
                got.len(),
                head(&got),
                tail(&got),
                expect.len(),
                head(&expect),
                tail(&expect)
            );
        }
        let read = |query: &str| {
            let options = LogOptions::from_query(query, now()).unwrap();
            runtime.block_on(read_all(exited(&path), options))
        };
        let stamp = |s| format!("{:.9} ", t(s));
        same(read(""), format!("before\n{long}!\nlast\n"));
        same(
            read("timestamps=true"),
            format!(
                "{}before\n{}{long}!\n{}last\n",
                stamp(1),
                stamp(2),
                stamp(4)
            ),
        );
        same(read("tailLines=1"), "last\n".to_owned());
        same(read("tailLines=2"), format!("{long}!\nlast\n"));
    }

    #[test]
    fn a_missing_file_is_empty_output() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = runtime.block_on(read_all(
            exited(&dir.path().join("missing.log")),
            LogOptions::from_query("tailLines=3", now()).unwrap(),
        ));
        assert_eq!(got, "");
    }

    /// Reads `stream` until the output so far ends with `expect`.
    async fn read_until(
        stream: &mut (impl Stream<Item = io::Result<Bytes>> + Unpin),
        output: &mut String,
        expect: &str,
    ) {
        while !output.ends_with(expect) {
            let chunk = stream
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before {expect:?}: {output:?}"))
                .unwrap();
            output.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn follow_sees_appended_lines_and_ends_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app/0.log");
        let mut writer = LogWriter::open(&path).unwrap();
        writer.write(t(1), OUT, b"one\n").unwrap();
        let (finish, finished) = watch::channel(false);
        let log = ContainerLog {
            path: path.clone(),
            finished,
        };
        let options = LogOptions::from_query("follow=true&tailLines=1", now()).unwrap();
        let mut logs = Box::pin(stream(log, options));
        let mut output = String::new();
        read_until(&mut logs, &mut output, "one\n").await;

        writer.write(t(2), ERR, b"two\nthree, unfinished").unwrap();
        read_until(&mut logs, &mut output, "two\n").await;
        writer.write(t(3), OUT, b"four\n").unwrap();
        read_until(&mut logs, &mut output, "four\n").await;
        // The unfinished line comes once the container has exited.
        writer.finish(t(4)).unwrap();
        finish.send(true).unwrap();
        let rest: Vec<_> = logs.collect().await;
        for chunk in rest {
            output.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        assert_eq!(output, "one\ntwo\nfour\nthree, unfinished");
    }

    #[tokio::test(start_paused = true)]
    async fn follow_ends_when_the_finished_sender_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        append(&path, &[(1, OUT, F, "only")]);
        let (finish, finished) = watch::channel(false);
        let log = ContainerLog { path, finished };
        let mut logs = Box::pin(stream(
            log,
            LogOptions::from_query("follow=1", now()).unwrap(),
        ));
        let mut output = String::new();
        read_until(&mut logs, &mut output, "only\n").await;
        drop(finish);
        assert!(logs.next().await.is_none());
        assert_eq!(output, "only\n");
    }

    #[tokio::test(start_paused = true)]
    async fn follow_waits_for_the_file_and_follows_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let (finish, finished) = watch::channel(false);
        let log = ContainerLog {
            path: path.clone(),
            finished,
        };
        let mut logs = Box::pin(stream(
            log,
            LogOptions::from_query("follow=true", now()).unwrap(),
        ));
        let mut output = String::new();

        // Each record alone fills a file.
        let mut writer = LogWriter::open(&path).unwrap().max_file_bytes(40);
        writer.write(t(1), OUT, b"a\n").unwrap();
        read_until(&mut logs, &mut output, "a\n").await;
        // One rotation between two reads.
        writer.write(t(2), OUT, b"b\n").unwrap();
        assert!(rotated_path(&path).exists());
        read_until(&mut logs, &mut output, "b\n").await;
        // Two: the file read is gone, the one after it is `.1` now.
        writer.write(t(3), OUT, b"c\nd\n").unwrap();
        read_until(&mut logs, &mut output, "d\n").await;
        writer.write(t(4), ERR, b"e\n").unwrap();
        writer.finish(t(5)).unwrap();
        finish.send(true).unwrap();
        while let Some(chunk) = logs.next().await {
            output.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        assert_eq!(output, "a\nb\nc\nd\ne\n");
    }

    #[tokio::test(start_paused = true)]
    async fn follow_with_limit_bytes_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut writer = LogWriter::open(&path).unwrap();
        writer.write(t(1), OUT, b"12345\n").unwrap();
        let (_finish, finished) = watch::channel(false);
        let log = ContainerLog {
            path: path.clone(),
            finished,
        };
        let options = LogOptions::from_query("follow=true&limitBytes=9", now()).unwrap();
        let mut logs = Box::pin(stream(log, options));
        let mut output = String::new();
        read_until(&mut logs, &mut output, "12345\n").await;
        writer.write(t(2), OUT, b"67890\n").unwrap();
        while let Some(chunk) = logs.next().await {
            output.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        assert_eq!(output, "12345\n678");
    }

    #[track_caller]
    fn check_options(query: &str, expect: Result<LogOptions, &str>) {
        let got = LogOptions::from_query(query, now()).map_err(|e| e.to_string());
        assert_eq!(got, expect.map_err(str::to_owned), "query {query:?}");
    }

    #[test]
    fn options_parse_kubelet_queries() {
        let default = LogOptions::default();
        check_options("", Ok(default.clone()));
        check_options("&&unknown=x&pretty", Ok(default.clone()));
        check_options(
            "follow=true&previous=1&timestamps=TRUE&tailLines=10&limitBytes=1",
            Ok(LogOptions {
                follow: true,
                previous: true,
                timestamps: true,
                tail_lines: Some(10),
                limit_bytes: Some(1),
                ..default.clone()
            }),
        );
        check_options(
            "follow=false&previous=0&timestamps=f&tailLines=0",
            Ok(LogOptions {
                tail_lines: Some(0),
                ..default.clone()
            }),
        );
        check_options(
            "follow=true&follow=false",
            Ok(LogOptions {
                follow: true,
                ..default.clone()
            }),
        );
        check_options(
            "sinceSeconds=10",
            Ok(LogOptions {
                since: Some(t(90)),
                ..default.clone()
            }),
        );
        check_options(
            "sinceSeconds=9223372036854775807",
            Ok(LogOptions {
                since: Some(Timestamp::MIN),
                ..default.clone()
            }),
        );
        check_options(
            "sinceTime=2023-11-14T23%3A13%3A20%2B01%3A00",
            Ok(LogOptions {
                since: Some(t(0)),
                ..default.clone()
            }),
        );
        check_options(
            "sinceTime=2023-11-14T22:13:20.5Z",
            Ok(LogOptions {
                since: Some(t(0) + SignedDuration::from_millis(500)),
                ..default.clone()
            }),
        );

        check_options(
            "follow=yes",
            Err(r#"invalid value "yes" for follow: expected true or false"#),
        );
        check_options(
            "timestamps",
            Err(r#"invalid value "" for timestamps: expected true or false"#),
        );
        check_options(
            "tailLines=ten",
            Err(r#"invalid value "ten" for tailLines: expected an integer"#),
        );
        check_options(
            "tailLines=-1",
            Err("tailLines: Invalid value: -1: must be greater than or equal to 0"),
        );
        check_options(
            "limitBytes=0",
            Err("limitBytes: Invalid value: 0: must be greater than or equal to 1"),
        );
        check_options(
            "sinceSeconds=0",
            Err("sinceSeconds: Invalid value: 0: must be greater than or equal to 1"),
        );
        check_options(
            "limitBytes=99999999999999999999",
            Err(r#"invalid value "99999999999999999999" for limitBytes: expected an integer"#),
        );
        check_options(
            "sinceTime=yesterday",
            Err(r#"invalid value "yesterday" for sinceTime: expected an RFC 3339 time"#),
        );
        check_options(
            "sinceSeconds=5&sinceTime=2023-11-14T22:13:20Z",
            Err("at most one of `sinceTime` or `sinceSeconds` may be specified"),
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a+b%20c%2b%zz%4"), "a b c+%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
