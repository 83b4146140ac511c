//! Inflaters and output buffers of finished decoders, kept per thread for
//! the next ones.
//!
//! A gzip or deflate stage costs ~40 KiB of inflater state (a 32 KiB
//! window and zlib-rs's tables, one allocation) plus its [`SCRATCH_LEN`]
//! output buffer. A proxy decodes one body after another, and the
//! detectors open a gzip payload nested in base64 every few KiB of some
//! traffic, so making them anew each time cost more instructions than the
//! inflating itself.
//! At most [`KEPT`] of each are kept per thread; a kept inflater is reset
//! before it is handed out, so what it held cannot leak into the next
//! stream.

use super::SCRATCH_LEN;
use flate2::Decompress;
use std::cell::RefCell;

/// Spares of each kind kept per thread: a body's gzip stage and one nested
/// payload's, in flight at once.
const KEPT: usize = 2;

#[derive(Default)]
struct Spares {
    inflaters: Vec<Decompress>,
    buffers: Vec<Box<[u8]>>,
}

thread_local! {
    static SPARES: RefCell<Spares> = RefCell::default();
}

/// Runs `f` on this thread's spares; `None` while the thread is ending
/// (its spares already dropped).
fn with_spares<T>(f: impl FnOnce(&mut Spares) -> T) -> Option<T> {
    SPARES
        .try_with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
        .ok()
        .flatten()
}

/// A raw-deflate inflater in its initial state.
pub(super) fn inflater() -> Decompress {
    match with_spares(|s| s.inflaters.pop()).flatten() {
        Some(mut z) => {
            z.reset(false);
            z
        }
        None => Decompress::new(false),
    }
}

/// An output buffer of [`SCRATCH_LEN`] bytes (its contents are stale).
pub(super) fn buffer() -> Box<[u8]> {
    with_spares(|s| s.buffers.pop())
        .flatten()
        .unwrap_or_else(|| vec![0; SCRATCH_LEN].into_boxed_slice())
}

/// Keeps a finished stage's inflater for the next stage, if there is room.
pub(super) fn keep_inflater(z: Decompress) {
    with_spares(|s| {
        if s.inflaters.len() < KEPT {
            s.inflaters.push(z);
        }
    });
}

/// Keeps a finished stage's output buffer, if there is room.
pub(super) fn keep_buffer(buffer: Box<[u8]>) {
    with_spares(|s| {
        if s.buffers.len() < KEPT && buffer.len() == SCRATCH_LEN {
            s.buffers.push(buffer);
        }
    });
}
