//! Wasm guests for skiff's runtime tests and benchmarks, built from source.
//!
//! The guests are small Rust programs in `guests/` (a cargo workspace of its
//! own), compiled by this crate's build script for wasm32-wasip2 and
//! wasm32-wasip1. No `.wasm` file is committed: each constant here is the
//! absolute path of a file the build script wrote under this crate's
//! `OUT_DIR`, valid on the machine that built it. Each guest picks a
//! behaviour, well-behaved or hostile, from its arguments or request path, so
//! one binary serves a whole table of tests.
//!
//! The two components import WASI interfaces up to version 0.2.12 (what
//! wasmtime-wasi 48 provides); the task calls `wasi:cli/exit.exit-with-code`
//! (stable since 0.2.12), and the HTTP one imports `wasi:cli/environment`,
//! `exit` and `terminal-*` besides the `wasi:http/proxy` world: the runtime
//! must link all of WASI 0.2 (`wasmtime_wasi::p2::add_to_linker_async`), not
//! only the proxy interfaces.

/// The task guest as a WASI 0.2 component exporting `wasi:cli/run`.
///
/// The command is the first argument (`argv[1]`; `argv[0]`, the program name,
/// is never read). Exit code 0 unless said; an unknown command or a missing
/// or malformed operand exits 2 with a message on stderr:
/// - `exit N`: exits with code N (through `wasi:cli/exit.exit-with-code`).
/// - `print OUT ERR`: writes OUT to stdout, then ERR to stderr, byte for byte.
/// - `args A B ...`: prints each operand followed by a newline.
/// - `env NAME`: prints the value and a newline; exits 1 if unset.
/// - `write PATH CONTENT`: creates or truncates PATH with CONTENT; exits 1 on
///   failure, with the error on stderr.
/// - `read PATH`: prints the file byte for byte; exits 1 on failure.
/// - `sleep`: prints `ready\n`, then reads stdin until end-of-file (the
///   runtime's stop signal) and exits 0.
/// - `ignore-stop`: prints `ready\n`, then sleeps 100 ms at a time forever,
///   never reading stdin.
/// - `spin`: prints `ready\n`, then loops forever without host calls.
/// - `grow`: prints `ready\n`, then keeps 1 MiB allocations, every page
///   written, until allocation fails (an `unreachable` trap).
/// - `recurse`: recurses until the Wasm call stack is exhausted (a stack
///   overflow trap; the frames do not use the shadow stack in memory).
/// - `trap KIND`: `unreachable` executes `unreachable`; `out-of-bounds` makes
///   a real out-of-bounds memory access; `divide-by-zero`, `overflow` and
///   `null-call` panic (safe Rust checks them), and a panic, `abort` and
///   `panic` all end in an `unreachable` trap.
/// - `flood BYTES`: writes exactly BYTES bytes of `x` lines (1023 `x` and a
///   newline each) to stdout in 64 KiB writes.
/// - `open PATH`: prints `opened\n`, or `denied: <error>\n` and exits 3.
/// - `connect HOST:PORT`: opens a TCP connection (through `wasi:sockets`);
///   prints `connected\n`, or `refused: <error>\n` and exits 5.
/// - `open-loop PATH COUNT`: opens PATH COUNT times keeping every handle;
///   prints `opened COUNT\n`, or `failed after N: <error>\n` and exits 4.
pub const TASK: &str = env!("SKIFF_TEST_GUEST_TASK");

/// The task guest, same source and commands as [`TASK`], as a WASI 0.1 core
/// module exporting `_start`; `exit N` goes through `proc_exit`.
pub const TASK_P1: &str = env!("SKIFF_TEST_GUEST_TASK_P1");

/// The HTTP guest as a WASI 0.2 component exporting
/// `wasi:http/incoming-handler`. Every answer is `text/plain` with a
/// `content-length`. Routes, by path (the query is ignored):
/// - `/`: 200 `hello from skiff\n`; kept cheap for instantiation benchmarks.
/// - `/echo`: 200 with the whole request body.
/// - `/env/NAME`: 200 with the variable's value (no newline), 404 if unset.
/// - `/sleep/MS`: waits MS milliseconds on a `wasi:clocks/monotonic-clock`
///   pollable, then 200 `slept\n`; 400 if MS is not a number.
/// - `/log`: prints `request logged\n` to stdout and `request warned\n` to
///   stderr, then 200 `logged\n`.
/// - `/spin`: loops forever without host calls, never answering.
/// - `/grow`: keeps 1 MiB allocations until allocation fails (a trap).
/// - `/recurse`: recurses until the call stack is exhausted (a trap).
/// - `/panic`: panics, an `unreachable` trap.
/// - anything else: 404 `not found\n`.
pub const HTTP: &str = env!("SKIFF_TEST_GUEST_HTTP");

/// Reads the guest at `path` (one of this crate's constants).
///
/// # Panics
///
/// If the file cannot be read: the constants point into the build's
/// `OUT_DIR`, so a missing file means the build output was removed.
pub fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("cannot read the test guest {path}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::{HTTP, TASK, TASK_P1, bytes};

    /// The bytes that open every Wasm binary.
    const WASM_MAGIC: [u8; 4] = *b"\0asm";
    /// The version and layer after the magic of a component.
    const COMPONENT_VERSION_AND_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
    /// The version and layer after the magic of a core module.
    const CORE_MODULE_VERSION_AND_LAYER: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

    /// Asserts the guest at `path` is a Wasm binary of the expected encoding.
    fn check_encoding(path: &str, expected_version_and_layer: [u8; 4]) {
        let guest = bytes(path);
        assert!(guest.len() > 8, "{path} is too short to be Wasm");
        assert_eq!(guest[0..4], WASM_MAGIC, "{path} lacks the Wasm magic");
        assert_eq!(
            guest[4..8],
            expected_version_and_layer,
            "{path} has the wrong encoding"
        );
    }

    #[test]
    fn components_and_core_module_are_built_with_their_encodings() {
        check_encoding(TASK, COMPONENT_VERSION_AND_LAYER);
        check_encoding(HTTP, COMPONENT_VERSION_AND_LAYER);
        check_encoding(TASK_P1, CORE_MODULE_VERSION_AND_LAYER);
    }
}
