//! Container log files in the CRI log format, written by every runtime and
//! read by the agent for `kubectl logs`:
//!
//! ```text
//! 2016-10-06T00:17:09.669794202Z stdout F a complete line
//! 2016-10-06T00:17:09.669794203Z stderr P the first part of a long line
//! ```
//!
//! One record per line: an RFC 3339 UTC timestamp with nanoseconds, the
//! stream, a tag (`F` ends a line of output, `P` is part of one that goes on
//! in the stream's next record) and the content, without its newline. So a
//! stream's output is its records' contents in order, each `F` followed by a
//! newline. [`LogWriter`] writes files this way (as containerd does:
//! long lines are split, output that ends without a newline ends with a `P`
//! record, a full file is rotated to `<path>.1`); [`parse_line`] reads them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::RuntimeError;

/// The kubelet's layout of a container's log path under its sandbox's log
/// directory: `<name>/<attempt>.log`.
pub fn container_log_path(name: &str, attempt: u32) -> PathBuf {
    Path::new(name).join(format!("{attempt}.log"))
}

/// Where [`LogWriter`] moves a full log file: `<path>.1`. Readers that want
/// the older output read it before `path`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(".1");
    PathBuf::from(rotated)
}

/// Which output stream a record comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`, as in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// Whether a record ends a line of output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    /// `F`: the content is the end of a line; a newline followed it.
    Full,
    /// `P`: the line goes on in the stream's next record (or the output ended
    /// without a newline).
    Partial,
}

impl Tag {
    /// `F` or `P`, as in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Full => "F",
            Tag::Partial => "P",
        }
    }
}

/// One record of a log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// When the runtime received the output.
    pub time: Timestamp,
    /// The stream it came from.
    pub stream: Stream,
    /// Whether it ends a line.
    pub tag: Tag,
    /// The output, without newline; any bytes but `\n`.
    pub content: &'a [u8],
}

impl LogLine<'_> {
    /// Appends the record to `out` as one line of the file, newline included:
    /// the timestamp always with nine fractional digits, so that a file's
    /// timestamps also sort as text.
    pub fn encode(&self, out: &mut Vec<u8>) {
        debug_assert!(!self.content.contains(&b'\n'), "content holds a newline");
        // Infallible: writing to a Vec.
        let _ = write!(
            out,
            "{:.9} {} {} ",
            self.time,
            self.stream.as_str(),
            self.tag.as_str()
        );
        out.extend_from_slice(self.content);
        out.push(b'\n');
    }
}

/// Why a line is not a CRI log record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogLineError {
    /// The line ends before one of its four fields.
    #[error("log line has no {missing} field")]
    Truncated {
        /// The first missing field: `stream`, `tag` or `content`.
        missing: &'static str,
    },
    /// The first field is not an RFC 3339 timestamp.
    #[error("log line has an invalid timestamp {text:?}")]
    Timestamp {
        /// The field.
        text: String,
        /// Why it does not parse.
        #[source]
        source: jiff::Error,
    },
    /// The second field is neither `stdout` nor `stderr`.
    #[error("log line has an unknown stream {text:?}")]
    Stream {
        /// The field.
        text: String,
    },
    /// The third field does not start with the tag `F` or `P`.
    #[error("log line has an unknown tag {text:?}")]
    Tag {
        /// The field.
        text: String,
    },
    /// The line holds a newline before its end: it is several lines.
    #[error("log line holds a newline before its end")]
    EmbeddedNewline,
}

/// Parses one line of a log file, with or without its final `\n`. As the
/// kubelet does, the tag field may carry further `:`-separated tags after
/// `F` or `P`; they are ignored.
pub fn parse_line(line: &[u8]) -> Result<LogLine<'_>, LogLineError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.contains(&b'\n') {
        return Err(LogLineError::EmbeddedNewline);
    }
    let (time, rest) = split_field(line, "stream")?;
    let (stream, rest) = split_field(rest, "tag")?;
    let (tags, content) = split_field(rest, "content")?;

    let time = String::from_utf8_lossy(time);
    let time = time.parse().map_err(|source| LogLineError::Timestamp {
        text: time.clone().into_owned(),
        source,
    })?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => {
            return Err(LogLineError::Stream {
                text: String::from_utf8_lossy(other).into_owned(),
            });
        }
    };
    let tag = match tags.split(|b| *b == b':').next() {
        Some(b"F") => Tag::Full,
        Some(b"P") => Tag::Partial,
        _ => {
            return Err(LogLineError::Tag {
                text: String::from_utf8_lossy(tags).into_owned(),
            });
        }
    };
    Ok(LogLine {
        time,
        stream,
        tag,
        content,
    })
}

/// Splits at the first space; `next` names the field that must follow it.
fn split_field<'a>(
    line: &'a [u8],
    next: &'static str,
) -> Result<(&'a [u8], &'a [u8]), LogLineError> {
    let space = line
        .iter()
        .position(|b| *b == b' ')
        .ok_or(LogLineError::Truncated { missing: next })?;
    Ok((&line[..space], &line[space + 1..]))
}

/// Writes a container's stdout and stderr to its log file in the CRI
/// format, for runtimes to feed with the output as it arrives.
///
/// Output is cut at newlines; a line longer than
/// [`max_line_bytes`](Self::max_line_bytes) is written as `P` records of that
/// size and a final `F`. An unfinished line waits for its newline (or for
/// [`finish`](Self::finish)). Records are never split across files: when the
/// next record would take the file past [`max_file_bytes`](Self::max_file_bytes),
/// the file is renamed to [`rotated_path`] (replacing an older one) and a new
/// one begun, so at most twice the cap is kept.
///
/// Writes are plain blocking appends of a few bytes, one `write` per record,
/// so that `kubectl logs -f` sees output at once.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_file_bytes: u64,
    max_line_bytes: usize,
    /// Each stream's unfinished line, indexed by [`Stream::index`].
    pending: [Vec<u8>; 2],
    record: Vec<u8>,
}

impl LogWriter {
    /// The default file size cap, 10 MiB (the kubelet's
    /// `containerLogMaxSize`).
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 << 20;
    /// The default longest record content, 16 KiB (containerd's
    /// `max_container_log_line_size`).
    pub const DEFAULT_MAX_LINE_BYTES: usize = 16 << 10;

    /// Opens `path` for appending (a container's previous output stays),
    /// creating it and its parent directories.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let path = path.into();
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| RuntimeError::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| RuntimeError::io(&path, e))?;
        let size = file
            .metadata()
            .map_err(|e| RuntimeError::io(&path, e))?
            .len();
        Ok(LogWriter {
            path,
            file,
            size,
            max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES,
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
            pending: [Vec::new(), Vec::new()],
            record: Vec::new(),
        })
    }

    /// Sets the size at which the file is rotated. A file always takes at
    /// least one record, however long.
    pub fn max_file_bytes(mut self, max_file_bytes: u64) -> Self {
        self.max_file_bytes = max_file_bytes;
        self
    }

    /// Sets the longest content of one record (at least 1).
    pub fn max_line_bytes(mut self, max_line_bytes: usize) -> Self {
        self.max_line_bytes = max_line_bytes.max(1);
        self
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes output that arrived at `time` on `stream`.
    pub fn write(
        &mut self,
        time: Timestamp,
        stream: Stream,
        output: &[u8],
    ) -> Result<(), RuntimeError> {
        // Taken out while writing so that `self` can be borrowed; put back
        // even on failure.
        let mut pending = std::mem::take(&mut self.pending[stream.index()]);
        let result = self.write_output(time, stream, &mut pending, output);
        self.pending[stream.index()] = pending;
        result
    }

    fn write_output(
        &mut self,
        time: Timestamp,
        stream: Stream,
        pending: &mut Vec<u8>,
        mut output: &[u8],
    ) -> Result<(), RuntimeError> {
        while let Some(newline) = output.iter().position(|b| *b == b'\n') {
            let line = &output[..newline];
            output = &output[newline + 1..];
            if pending.is_empty() {
                self.write_line(time, stream, line)?;
            } else {
                pending.extend_from_slice(line);
                self.write_line(time, stream, pending)?;
                pending.clear();
            }
        }
        pending.extend_from_slice(output);
        let mut start = 0;
        while pending.len() - start > self.max_line_bytes {
            let end = start + self.max_line_bytes;
            self.write_record(time, stream, Tag::Partial, &pending[start..end])?;
            start = end;
        }
        pending.drain(..start);
        Ok(())
    }

    /// Writes what is left of unfinished lines as `P` records, as containerd
    /// does when a stream ends without a newline. Call it when the container
    /// has exited, before reporting the exit.
    pub fn finish(mut self, time: Timestamp) -> Result<(), RuntimeError> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let pending = std::mem::take(&mut self.pending[stream.index()]);
            if !pending.is_empty() {
                self.write_record(time, stream, Tag::Partial, &pending)?;
            }
        }
        Ok(())
    }

    /// Writes a complete line: `P` records for all but its last
    /// `max_line_bytes`, then an `F`.
    fn write_line(
        &mut self,
        time: Timestamp,
        stream: Stream,
        mut line: &[u8],
    ) -> Result<(), RuntimeError> {
        while line.len() > self.max_line_bytes {
            let (part, rest) = line.split_at(self.max_line_bytes);
            self.write_record(time, stream, Tag::Partial, part)?;
            line = rest;
        }
        self.write_record(time, stream, Tag::Full, line)
    }

    fn write_record(
        &mut self,
        time: Timestamp,
        stream: Stream,
        tag: Tag,
        content: &[u8],
    ) -> Result<(), RuntimeError> {
        let mut record = std::mem::take(&mut self.record);
        record.clear();
        LogLine {
            time,
            stream,
            tag,
            content,
        }
        .encode(&mut record);
        let result = self.append(&record);
        self.record = record;
        result
    }

    fn append(&mut self, record: &[u8]) -> Result<(), RuntimeError> {
        let len = record.len() as u64;
        if self.size > 0 && self.size + len > self.max_file_bytes {
            self.rotate()?;
        }
        self.file
            .write_all(record)
            .map_err(|e| RuntimeError::io(&self.path, e))?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), RuntimeError> {
        let rotated = rotated_path(&self.path);
        fs::rename(&self.path, &rotated).map_err(|e| RuntimeError::io(&rotated, e))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| RuntimeError::io(&self.path, e))?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(nanos: i128) -> Timestamp {
        Timestamp::from_nanosecond(nanos).unwrap()
    }

    fn t0() -> Timestamp {
        "2016-10-06T00:17:09.669794202Z".parse().unwrap()
    }

    fn encode(line: LogLine<'_>) -> String {
        let mut out = Vec::new();
        line.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[track_caller]
    fn check_parse(line: &str, expect: Result<(&str, Stream, Tag, &str), &str>) {
        let got = parse_line(line.as_bytes())
            .map(|l| {
                (
                    format!("{:.9}", l.time),
                    l.stream,
                    l.tag,
                    String::from_utf8(l.content.to_vec()).unwrap(),
                )
            })
            .map_err(|e| e.to_string());
        let expect = expect
            .map(|(time, stream, tag, content)| (time.to_owned(), stream, tag, content.to_owned()))
            .map_err(str::to_owned);
        assert_eq!(got, expect, "{line:?}");
    }

    #[test]
    fn encodes_the_cri_format() {
        let line = LogLine {
            time: t0(),
            stream: Stream::Stdout,
            tag: Tag::Full,
            content: b"message",
        };
        assert_eq!(
            encode(line),
            "2016-10-06T00:17:09.669794202Z stdout F message\n"
        );
        let whole_second = LogLine {
            time: at(1_000_000_000),
            stream: Stream::Stderr,
            tag: Tag::Partial,
            content: b"",
        };
        assert_eq!(
            encode(whole_second),
            "1970-01-01T00:00:01.000000000Z stderr P \n"
        );
    }

    #[test]
    fn parses_the_cri_format() {
        use Stream::*;
        use Tag::*;
        let t = "2016-10-06T00:17:09.669794202Z";
        check_parse(
            "2016-10-06T00:17:09.669794202Z stdout F message\n",
            Ok((t, Stdout, Full, "message")),
        );
        check_parse(
            "2016-10-06T00:17:09.669794202Z stderr P part of a line",
            Ok((t, Stderr, Partial, "part of a line")),
        );
        check_parse(
            "2016-10-06T00:17:09.669794202Z stdout F  two  spaces \n",
            Ok((t, Stdout, Full, " two  spaces ")),
        );
        check_parse(
            "2016-10-06T00:17:09.669794202Z stdout F \n",
            Ok((t, Stdout, Full, "")),
        );
        check_parse(
            "2016-10-06T00:17:09.6697942Z stdout P:extra x",
            Ok(("2016-10-06T00:17:09.669794200Z", Stdout, Partial, "x")),
        );
        check_parse(
            "2016-10-06T02:17:09.669794202+02:00 stdout F x",
            Ok((t, Stdout, Full, "x")),
        );
        check_parse(
            "2016-10-06T00:17:09.669794202Z stdout F line\r",
            Ok((t, Stdout, Full, "line\r")),
        );

        check_parse("", Err("log line has no stream field"));
        check_parse(
            "2016-10-06T00:17:09.669794202Z stdout",
            Err("log line has no tag field"),
        );
        check_parse(
            "2016-10-06T00:17:09.669794202Z stdout F",
            Err("log line has no content field"),
        );
        check_parse(
            "yesterday stdout F x",
            Err(r#"log line has an invalid timestamp "yesterday""#),
        );
        check_parse(
            "2016-10-06T00:17:09.669794202Z stdin F x",
            Err(r#"log line has an unknown stream "stdin""#),
        );
        check_parse(
            "2016-10-06T00:17:09.669794202Z stdout X x",
            Err(r#"log line has an unknown tag "X""#),
        );
        check_parse(
            "2016-10-06T00:17:09.669794202Z stdout F a\nb\n",
            Err("log line holds a newline before its end"),
        );
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let contents: [&[u8]; 5] = [
            b"",
            b" ",
            b"plain",
            b"\xff\xfe not utf-8",
            "ünï \t".as_bytes(),
        ];
        for (i, content) in contents.into_iter().enumerate() {
            for stream in [Stream::Stdout, Stream::Stderr] {
                for tag in [Tag::Full, Tag::Partial] {
                    let line = LogLine {
                        time: at(1_475_713_029_669_794_202 + i as i128),
                        stream,
                        tag,
                        content,
                    };
                    let mut out = Vec::new();
                    line.encode(&mut out);
                    assert_eq!(parse_line(&out).unwrap(), line);
                }
            }
        }
    }

    /// Every record of `path` (after its rotated predecessor) in order.
    fn records(path: &Path) -> Vec<(Stream, Tag, Vec<u8>)> {
        let mut bytes = fs::read(rotated_path(path)).unwrap_or_default();
        bytes.extend(fs::read(path).unwrap());
        bytes
            .split_inclusive(|b| *b == b'\n')
            .map(|line| {
                let line = parse_line(line).unwrap();
                (line.stream, line.tag, line.content.to_vec())
            })
            .collect()
    }

    /// A stream's output rebuilt from the records.
    fn output(records: &[(Stream, Tag, Vec<u8>)], stream: Stream) -> Vec<u8> {
        let mut out = Vec::new();
        for (s, tag, content) in records {
            if *s == stream {
                out.extend_from_slice(content);
                if *tag == Tag::Full {
                    out.push(b'\n');
                }
            }
        }
        out
    }

    fn tagged(records: &[(Stream, Tag, Vec<u8>)]) -> Vec<String> {
        records
            .iter()
            .map(|(s, t, c)| {
                format!(
                    "{} {} {}",
                    s.as_str(),
                    t.as_str(),
                    String::from_utf8_lossy(c)
                )
            })
            .collect()
    }

    #[test]
    fn writer_cuts_output_at_newlines_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app/0.log");
        let mut writer = LogWriter::open(&path).unwrap();
        writer.write(t0(), Stream::Stdout, b"hello ").unwrap();
        writer.write(t0(), Stream::Stderr, b"oops\nwa").unwrap();
        writer
            .write(t0(), Stream::Stdout, b"world\n\nsecond\nthi")
            .unwrap();
        writer.write(t0(), Stream::Stderr, b"rning\n").unwrap();
        writer
            .write(t0(), Stream::Stdout, b"rd, no newline")
            .unwrap();
        writer.finish(t0()).unwrap();

        let records = records(&path);
        assert_eq!(
            tagged(&records),
            [
                "stderr F oops",
                "stdout F hello world",
                "stdout F ",
                "stdout F second",
                "stderr F warning",
                "stdout P third, no newline",
            ]
        );
        assert_eq!(
            output(&records, Stream::Stdout),
            b"hello world\n\nsecond\nthird, no newline"
        );
        assert_eq!(output(&records, Stream::Stderr), b"oops\nwarning\n");
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("2016-10-06T00:17:09.669794202Z stderr F oops\n"),
            "{text}"
        );
    }

    #[test]
    fn writer_splits_long_lines_into_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut writer = LogWriter::open(&path).unwrap().max_line_bytes(4);
        writer
            .write(t0(), Stream::Stdout, b"abcd\nabcdefghij\nab")
            .unwrap();
        // An unfinished line is cut only once it exceeds the cap, so a line
        // of exactly the cap stays one `F` record.
        writer.write(t0(), Stream::Stdout, b"cdefg").unwrap();
        writer.write(t0(), Stream::Stdout, b"h\n").unwrap();
        writer.finish(t0()).unwrap();
        let records = records(&path);
        assert_eq!(
            tagged(&records),
            [
                "stdout F abcd",
                "stdout P abcd",
                "stdout P efgh",
                "stdout F ij",
                "stdout P abcd",
                "stdout F efgh",
            ]
        );
        assert_eq!(
            output(&records, Stream::Stdout),
            b"abcd\nabcdefghij\nabcdefgh\n"
        );
    }

    #[test]
    fn writer_rotates_whole_records_to_dot_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        // Each record of a 2-byte line takes 31 + 7 + 2 + 3 = 43 bytes: two fit in
        // 100 bytes, a third rotates.
        let mut writer = LogWriter::open(&path).unwrap().max_file_bytes(100);
        let mut expected = Vec::new();
        for i in 0..7 {
            let line = format!("{i:02}\n");
            writer
                .write(at(i), Stream::Stdout, line.as_bytes())
                .unwrap();
            expected.extend_from_slice(line.as_bytes());
        }
        writer.finish(at(7)).unwrap();
        let current = fs::read_to_string(&path).unwrap();
        let older = fs::read_to_string(rotated_path(&path)).unwrap();
        assert_eq!(current.lines().count(), 1, "{current}");
        assert_eq!(older.lines().count(), 2, "{older}");
        assert!(
            older.contains(" 04\n") && older.contains(" 05\n"),
            "{older}"
        );
        assert!(current.ends_with(" stdout F 06\n"), "{current}");
        assert!(current.len() <= 100 && older.len() <= 100);
        // Without the records lost to the earlier rotation, output reads on.
        let records = records(&path);
        assert_eq!(output(&records, Stream::Stdout), b"04\n05\n06\n");
    }

    #[test]
    fn writer_puts_an_oversized_record_alone_in_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut writer = LogWriter::open(&path).unwrap().max_file_bytes(10);
        writer
            .write(t0(), Stream::Stdout, b"first\nsecond\n")
            .unwrap();
        writer.finish(t0()).unwrap();
        assert!(
            fs::read_to_string(rotated_path(&path))
                .unwrap()
                .ends_with("F first\n")
        );
        assert!(fs::read_to_string(&path).unwrap().ends_with("F second\n"));
    }

    #[test]
    fn reopened_writer_appends_and_counts_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut first = LogWriter::open(&path).unwrap();
        first
            .write(t0(), Stream::Stdout, b"before restart\n")
            .unwrap();
        first.finish(t0()).unwrap();
        let size = fs::metadata(&path).unwrap().len();

        // Room for exactly the old record and one more of the same length.
        let mut second = LogWriter::open(&path).unwrap().max_file_bytes(2 * size);
        second
            .write(t0(), Stream::Stdout, b"after  restart\n")
            .unwrap();
        assert!(!rotated_path(&path).exists());
        second.write(t0(), Stream::Stdout, b"x\n").unwrap();
        second.finish(t0()).unwrap();
        let records = records(&path);
        assert_eq!(
            output(&records, Stream::Stdout),
            b"before restart\nafter  restart\nx\n"
        );
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    #[test]
    fn paths() {
        assert_eq!(container_log_path("app", 3), PathBuf::from("app/3.log"));
        assert_eq!(
            rotated_path(Path::new("/var/log/pods/p/app/3.log")),
            PathBuf::from("/var/log/pods/p/app/3.log.1")
        );
    }
}
