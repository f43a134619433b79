//! The task guest: one WASI command whose first argument picks what it does,
//! so skiff's runtime tests can drive every task behaviour, well-behaved or
//! hostile, from a single program.
//!
//! It is built twice from this source: for wasm32-wasip2 (a component
//! exporting `wasi:cli/run`) and for wasm32-wasip1 (a core module exporting
//! `_start`). `argv[0]` is whatever name the runtime gives the program and is
//! never read; the command is `argv[1]`, its operands follow.
//!
//! Commands (exit code 0 unless said otherwise; a missing or malformed operand
//! or an unknown command exits 2 with a message on stderr):
//! - `exit N`: exits with code N (see [`terminate`] for how the component
//!   keeps it).
//! - `print OUT ERR`: writes OUT to stdout, then ERR to stderr, byte for byte.
//! - `args A B ...`: prints each operand on its own line.
//! - `env NAME`: prints the variable's value and a newline; exits 1 if unset.
//! - `write PATH CONTENT`, `read PATH`: file IO; exits 1 on failure.
//! - `sleep`: prints `ready\n`, then reads stdin until end-of-file.
//! - `ignore-stop`: prints `ready\n`, then sleeps forever ignoring stdin.
//! - `spin`, `grow`: print `ready\n`, then burn CPU or memory without bound.
//! - `recurse`: recurses without bound until the stack overflows.
//! - `trap KIND`: traps (see [`trap`] for how each kind is produced).
//! - `flood BYTES`: writes BYTES bytes of `x` lines to stdout.
//! - `open PATH`: prints `opened\n`, or `denied: <error>\n` and exits 3.
//! - `open-loop PATH COUNT`: opens PATH COUNT times keeping every handle;
//!   prints `opened COUNT\n`, or `failed after N: <error>\n` and exits 4.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::hint::black_box;
use std::io::{self, Write};
use std::process;
use std::time::Duration;

/// The exit code of a failed file or environment operation.
const EXIT_OPERATION_FAILED: i32 = 1;
/// The exit code of an unknown command or a missing or malformed operand.
const EXIT_USAGE: i32 = 2;
/// The exit code of `open` when the path cannot be opened.
const EXIT_OPEN_DENIED: i32 = 3;
/// The exit code of `open-loop` when an open fails before COUNT handles.
const EXIT_OPEN_LOOP_FAILED: i32 = 4;
/// Exit code of `connect` when the connection cannot be made.
const EXIT_CONNECT_FAILED: i32 = 5;

/// The line `sleep`, `ignore-stop`, `spin` and `grow` print once they are
/// running, so a test knows the guest has started before it acts.
const READY_LINE: &[u8] = b"ready\n";

/// How long each iteration of `ignore-stop` sleeps.
const IGNORE_STOP_SLEEP: Duration = Duration::from_millis(100);

/// The size of the frame `trap out-of-bounds` allocates: far more than the
/// 1 MiB shadow stack Rust gives a Wasm program.
const OVERSIZED_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// The size of each write of `flood`.
const FLOOD_CHUNK_BYTES: usize = 64 * 1024;
/// The length of each `flood` line: 1023 `x` and a newline.
const FLOOD_LINE_BYTES: usize = 1024;

fn main() {
    let mut arguments = std::env::args_os().skip(1);
    let Some(command) = arguments.next() else {
        exit_with_message(EXIT_USAGE, "usage: task COMMAND [OPERAND...]");
    };
    let operands: Vec<OsString> = arguments.collect();
    let operand = |index: usize, name: &str| -> &OsStr {
        match operands.get(index) {
            Some(value) => value,
            None => exit_with_message(
                EXIT_USAGE,
                &format!("{}: missing operand {name}", command.to_string_lossy()),
            ),
        }
    };

    match command.to_str().unwrap_or_default() {
        "exit" => terminate(parse_number(operand(0, "N"), "N")),
        "print" => {
            write_stdout(operand(0, "OUT").as_encoded_bytes());
            write_stderr(operand(1, "ERR").as_encoded_bytes());
        }
        "args" => {
            for argument in &operands {
                write_stdout(argument.as_encoded_bytes());
                write_stdout(b"\n");
            }
        }
        "env" => {
            let name = operand(0, "NAME");
            match std::env::var_os(name) {
                Some(value) => {
                    write_stdout(value.as_encoded_bytes());
                    write_stdout(b"\n");
                }
                None => exit_with_message(
                    EXIT_OPERATION_FAILED,
                    &format!("environment variable {} is not set", name.to_string_lossy()),
                ),
            }
        }
        "write" => {
            let path = operand(0, "PATH");
            if let Err(error) = std::fs::write(path, operand(1, "CONTENT").as_encoded_bytes()) {
                exit_with_message(
                    EXIT_OPERATION_FAILED,
                    &format!("write {}: {error}", path.to_string_lossy()),
                );
            }
        }
        "read" => {
            let path = operand(0, "PATH");
            match std::fs::read(path) {
                Ok(content) => write_stdout(&content),
                Err(error) => exit_with_message(
                    EXIT_OPERATION_FAILED,
                    &format!("read {}: {error}", path.to_string_lossy()),
                ),
            }
        }
        "sleep" => {
            write_stdout(READY_LINE);
            read_stdin_until_end_of_file();
        }
        "ignore-stop" => {
            write_stdout(READY_LINE);
            loop {
                std::thread::sleep(IGNORE_STOP_SLEEP);
            }
        }
        "spin" => {
            write_stdout(READY_LINE);
            misbehaviour::spin_forever();
        }
        "grow" => {
            write_stdout(READY_LINE);
            misbehaviour::grow_memory_forever();
        }
        "recurse" => misbehaviour::recurse_forever(),
        "trap" => trap(operand(0, "KIND")),
        "flood" => flood(parse_number(operand(0, "BYTES"), "BYTES")),
        "open" => {
            if let Err(error) = File::open(operand(0, "PATH")) {
                write_stdout(format!("denied: {error}\n").as_bytes());
                terminate(EXIT_OPEN_DENIED);
            }
            write_stdout(b"opened\n");
        }
        "connect" => {
            let address = operand(0, "HOST:PORT").to_string_lossy().into_owned();
            if let Err(error) = std::net::TcpStream::connect(&address) {
                write_stdout(format!("refused: {error}\n").as_bytes());
                terminate(EXIT_CONNECT_FAILED);
            }
            write_stdout(b"connected\n");
        }
        "open-loop" => open_loop(
            operand(0, "PATH"),
            parse_number(operand(1, "COUNT"), "COUNT"),
        ),
        _ => exit_with_message(
            EXIT_USAGE,
            &format!("unknown command {:?}", command.to_string_lossy()),
        ),
    }
    terminate(0);
}

/// Traps the way KIND names, as closely as safe Rust allows.
///
/// Only `unreachable` and `out-of-bounds` execute the Wasm trap they name:
/// the `unreachable` instruction, and a load or store outside linear memory
/// made by a stack frame larger than the whole shadow stack (the stack sits
/// first in memory, so the frame's address wraps below zero). Safe Rust
/// checks division, overflow and calls through absent functions and panics
/// instead, so `divide-by-zero`, `overflow` and `null-call` panic with Rust's
/// own message, and a panic under `panic = "abort"` ends, like `abort` and
/// `panic`, in the `unreachable` instruction.
fn trap(kind: &OsStr) -> ! {
    match kind.to_str().unwrap_or_default() {
        "unreachable" => core::arch::wasm32::unreachable(),
        "divide-by-zero" => {
            let quotient = black_box(1_i32) / black_box(0_i32);
            exit_with_message(0, &format!("divided by zero: {quotient}"));
        }
        "out-of-bounds" => access_memory_below_zero_through_an_oversized_frame(),
        "overflow" => {
            let quotient = black_box(i32::MIN) / black_box(-1_i32);
            exit_with_message(0, &format!("divided with overflow: {quotient}"));
        }
        "null-call" => {
            let absent_function: Option<fn()> = black_box(None);
            absent_function.expect("called a null function reference")();
            exit_with_message(0, "called a null function reference");
        }
        "abort" => process::abort(),
        "panic" => panic!("guest panicked on purpose"),
        other => exit_with_message(EXIT_USAGE, &format!("unknown trap kind {other:?}")),
    }
}

/// Traps with an out-of-bounds memory access: this function's frame is larger
/// than the whole shadow stack, which sits first in linear memory, so the
/// frame's address wraps below zero to the top of the 32-bit address space,
/// far past the end of memory. Never inlined, so no other code shares the
/// frame.
#[inline(never)]
fn access_memory_below_zero_through_an_oversized_frame() -> ! {
    let frame = black_box([1_u8; OVERSIZED_FRAME_BYTES]);
    exit_with_message(0, &format!("an oversized frame fit: {}", frame[0]));
}

/// Writes exactly `total_bytes` bytes of 1024-byte `x` lines to stdout, in
/// 64 KiB writes (the last one shorter when the total is not a multiple).
fn flood(total_bytes: u64) {
    let mut line = vec![b'x'; FLOOD_LINE_BYTES];
    line[FLOOD_LINE_BYTES - 1] = b'\n';
    let chunk = line.repeat(FLOOD_CHUNK_BYTES / FLOOD_LINE_BYTES);
    let mut stdout = io::stdout().lock();
    let mut remaining_bytes = total_bytes;
    while remaining_bytes > 0 {
        let write_bytes = usize::try_from(remaining_bytes)
            .map_or(chunk.len(), |remaining| remaining.min(chunk.len()));
        if let Err(error) = stdout.write_all(&chunk[..write_bytes]) {
            exit_with_message(EXIT_OPERATION_FAILED, &format!("flood: {error}"));
        }
        remaining_bytes -= write_bytes as u64;
    }
    if let Err(error) = stdout.flush() {
        exit_with_message(EXIT_OPERATION_FAILED, &format!("flood: {error}"));
    }
}

/// Opens `path` `count` times and keeps every handle open, to probe the
/// runtime's limit on a guest's open files.
fn open_loop(path: &OsStr, count: u64) {
    let mut open_files = Vec::new();
    while (open_files.len() as u64) < count {
        match File::open(path) {
            Ok(file) => open_files.push(file),
            Err(error) => {
                write_stdout(format!("failed after {}: {error}\n", open_files.len()).as_bytes());
                terminate(EXIT_OPEN_LOOP_FAILED);
            }
        }
    }
    write_stdout(format!("opened {}\n", open_files.len()).as_bytes());
}

/// Reads and discards stdin until end-of-file: the runtime closes a task's
/// stdin to ask it to stop.
fn read_stdin_until_end_of_file() {
    if let Err(error) = io::copy(&mut io::stdin().lock(), &mut io::sink()) {
        exit_with_message(EXIT_OPERATION_FAILED, &format!("read stdin: {error}"));
    }
}

/// Parses a decimal operand, exiting with a usage error when it is not one.
fn parse_number<Number: std::str::FromStr>(operand: &OsStr, name: &str) -> Number {
    match operand.to_str().map(str::parse) {
        Some(Ok(number)) => number,
        _ => exit_with_message(
            EXIT_USAGE,
            &format!(
                "{name} must be a number, got {:?}",
                operand.to_string_lossy()
            ),
        ),
    }
}

/// Writes `bytes` to stdout and flushes, so the host sees them at once;
/// exits 1 if stdout is gone.
fn write_stdout(bytes: &[u8]) {
    let mut stdout = io::stdout().lock();
    if let Err(error) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        exit_with_message(EXIT_OPERATION_FAILED, &format!("write stdout: {error}"));
    }
}

/// Writes `bytes` to stderr (which is unbuffered).
fn write_stderr(bytes: &[u8]) {
    if io::stderr().write_all(bytes).is_err() {
        terminate(EXIT_OPERATION_FAILED);
    }
}

/// Ends the task with `code`, after flushing stdout.
///
/// The component build reports the exact code through the unstable
/// `wasi:cli/exit.exit-with-code` (the host must enable it, as wasmtime's
/// `cli-exit-with-code` link option does): `std::process::exit` on
/// wasm32-wasip2 keeps only whether the code was zero. The core-module build
/// exits through `proc_exit`, which keeps the code already.
fn terminate(code: i32) -> ! {
    let _ = io::stdout().flush();
    #[cfg(target_env = "p2")]
    wasip2::cli::exit::exit_with_code(code as u8);
    process::exit(code)
}

/// Prints `message` and a newline to stderr, then exits with `code`.
fn exit_with_message(code: i32, message: &str) -> ! {
    write_stderr(message.as_bytes());
    write_stderr(b"\n");
    terminate(code);
}
