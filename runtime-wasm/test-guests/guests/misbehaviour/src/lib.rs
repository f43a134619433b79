//! The hostile behaviours that skiff's test guests share: burning CPU without
//! ever calling the host, growing memory without bound and recursing without
//! bound.
//!
//! Each one really does what it says, with no cap of its own: the only thing
//! that may stop it is the runtime's limit (epoch or fuel interruption, the
//! memory limit, the Wasm stack limit). `std::hint::black_box` keeps the
//! optimizer from proving the work useless and deleting or folding it.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

/// The size of each allocation that [`grow_memory_forever`] keeps alive.
pub const GROWTH_CHUNK_BYTES: usize = 1024 * 1024;

/// The stride at which [`grow_memory_forever`] writes into each chunk, so that
/// every 4 KiB page is touched (Wasm pages are 64 KiB, host pages 4 KiB).
const PAGE_TOUCH_STRIDE_BYTES: usize = 4096;

/// Loops forever without a single host call, the way a stuck computation
/// does: only the runtime's interruption (epochs or fuel) can stop it.
pub fn spin_forever() -> ! {
    let mut iterations: u64 = 0;
    loop {
        iterations = black_box(iterations.wrapping_add(1));
    }
}

/// Allocates 1 MiB chunks forever, writing into every page of each and
/// keeping them all alive, until the runtime's memory limit makes an
/// allocation fail (which aborts the guest, a trap).
pub fn grow_memory_forever() -> ! {
    let mut kept_chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; GROWTH_CHUNK_BYTES];
        for page_start in (0..GROWTH_CHUNK_BYTES).step_by(PAGE_TOUCH_STRIDE_BYTES) {
            chunk[page_start] = 1;
        }
        kept_chunks.push(black_box(chunk));
        black_box(&kept_chunks);
    }
}

/// Recurses without bound until the Wasm call stack is exhausted (a trap).
///
/// The frames live only on the call stack the runtime bounds (wasmtime's
/// `max_wasm_stack`), not on the shadow stack in linear memory, so the trap
/// is a stack overflow rather than an out-of-bounds access.
pub fn recurse_forever() -> ! {
    recurse_one_level(0);
    unreachable!("unbounded recursion returned");
}

/// The deepest level [`recurse_one_level`] has returned from. Nothing reads
/// it: updating it after each call is work the optimizer must keep, so the
/// recursion can be neither a tail call nor a loop.
static DEEPEST_LEVEL_RETURNED: AtomicU64 = AtomicU64::new(0);

/// One level of [`recurse_forever`].
#[expect(
    unconditional_recursion,
    reason = "recursing until the stack overflows is the point"
)]
fn recurse_one_level(depth: u64) {
    recurse_one_level(depth + 1);
    DEEPEST_LEVEL_RETURNED.fetch_max(depth, Ordering::Relaxed);
}
