//! Finding base64 runs in a chunk, and carrying a run on from one chunk
//! to the next: which runs are long enough to be worth decoding, read 64
//! bytes at a time from one classification of the chunk.

use std::borrow::Cow;
use std::sync::LazyLock;

use super::MIN_TOKEN;
use crate::detect::classify::{BLOCK, Classifier, HALF, RunShifts, at_least, run_shifts};

/// A base64 run being read, carried across chunks.
#[derive(Default)]
pub(in crate::detect::scan) struct Base64Runs {
    pub(in crate::detect::scan) run: Vec<u8>,
    /// The run grew past the longest token decoded.
    pub(super) overflow: bool,
    /// The current chunk's base64 bitmaps, kept for their allocation.
    pub(in crate::detect::scan) blocks: Vec<u64>,
}

impl Base64Runs {
    pub(in crate::detect::scan) fn carry(&mut self, piece: &[u8], max_token: usize) {
        if self.overflow || self.run.len() + piece.len() > max_token {
            self.overflow = true;
            self.run.clear();
        } else {
            self.run.extend_from_slice(piece);
        }
    }

    /// Completes the current run with `last`; returns it when worth
    /// decoding (borrowed when it lies wholly in `last`): not too short or
    /// too long, and not an [`id_or_digest`].
    pub(in crate::detect::scan) fn close<'a>(
        &mut self,
        last: &'a [u8],
        max_token: usize,
    ) -> Option<Cow<'a, [u8]>> {
        let overflow = std::mem::take(&mut self.overflow);
        let len = self.run.len() + last.len();
        if overflow || len > max_token || len < MIN_TOKEN {
            self.run.clear();
            return None;
        }
        if self.run.is_empty() {
            return (!id_or_digest(last)).then_some(Cow::Borrowed(last));
        }
        let mut token = std::mem::take(&mut self.run);
        token.extend_from_slice(last);
        (!id_or_digest(&token)).then_some(Cow::Owned(token))
    }
}

/// True when every byte of `run` is a hex digit or a `-`: a hex digest,
/// a UUID or a hex id, most of the base64-shaped runs in app traffic.
/// Such a run is not worth decoding. In either alphabet the first of
/// every three bytes it decodes to is a control byte, a byte of `h..=DEL`
/// or a non-ASCII byte (its six high bits come from a digit, `a-f`, `A-F`
/// or `-`), which rules out digits, quotes, `=`, `{` and every separator
/// at a third of the places: no JSON, form or run of digits, nothing a
/// detector reads. (The known-value search still finds the base64 forms
/// of the profile's values in the text itself.)
///
/// Asked before the run's prefix is decoded and judged, which cost ~450
/// instructions a run; the bytes are compared 32 at a time, with no exit
/// inside a piece, so that the compiler compares them as a vector.
fn id_or_digest(run: &[u8]) -> bool {
    let hex_or_dash =
        |b: u8| (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 6) | (b == b'-');
    run.chunks(32)
        .all(|piece| piece.iter().fold(true, |all, &b| all & hex_or_dash(b)))
}

/// Where the base64 bytes of a chunk are, one bitmap per 64-byte block,
/// made in one pass over the chunk.
pub(in crate::detect::scan) struct Base64Map<'c> {
    chunk: &'c [u8],
    blocks: &'c [u64],
}

impl<'c> Base64Map<'c> {
    /// The map of `chunk`, in `blocks` (whose allocation is reused).
    pub(in crate::detect::scan) fn new(chunk: &'c [u8], blocks: &'c mut Vec<u64>) -> Base64Map<'c> {
        RUNS.slot_maps(chunk, 0, blocks);
        Base64Map { chunk, blocks }
    }

    /// Bit `i` set when `chunk[at + i]` is a base64 byte (none past the
    /// end).
    fn from(&self, at: usize) -> u64 {
        let (k, off) = (at / BLOCK, at % BLOCK);
        let here = self.blocks.get(k).map_or(0, |m| m >> off);
        let next = match off {
            0 => 0,
            _ => self.blocks.get(k + 1).map_or(0, |m| m << (BLOCK - off)),
        };
        here | next
    }

    /// The first base64 run in `chunk[from..]` that is at least
    /// [`MIN_TOKEN`] bytes long or reaches the chunk's end (and so may go
    /// on in the next one): its start, and how far it was read. No run may
    /// go on from before `from` (`chunk[from - 1]` or `chunk[from]`, if
    /// any, is not base64).
    ///
    /// Shorter runs are never decoded, and text is mostly short runs
    /// (words, numbers), so runs are not followed one by one: each 64-byte
    /// block's bitmap, with the next block's as look-ahead, names the
    /// positions with [`MIN_TOKEN`] base64 bytes from them on, and the
    /// first such position starts the run.
    pub(in crate::detect::scan) fn next_run(&self, from: usize) -> Option<(usize, usize)> {
        let chunk = self.chunk;
        let mut at = from;
        let mut ahead = self.from(at);
        while at < chunk.len() {
            let here = ahead;
            ahead = self.from(at + BLOCK);
            // Each half of the block judged with the 32 bytes after it in
            // view. Bytes past the end are in no set, so a run counted here
            // lies inside the chunk.
            let first = at_least(here, &TOKEN) as u32;
            let second = at_least(here >> HALF | ahead << HALF, &TOKEN) as u32;
            let long = u64::from(first) | u64::from(second) << HALF;
            if long != 0 {
                let s = at + long.trailing_zeros() as usize;
                return Some((s, self.run_end(s + MIN_TOKEN)));
            }
            at += BLOCK;
        }
        // No run is long enough: only the one that ends the chunk counts.
        let s = chunk[from..]
            .iter()
            .rposition(|b| !BASE64[usize::from(*b)])
            .map_or(from, |n| from + n + 1);
        (s < chunk.len()).then_some((s, s))
    }

    /// Where the first byte at or after `at` that is not base64 lies (the
    /// chunk's length when there is none). Runs are followed 64 bytes at a
    /// time: digests, ids and blobs are long, and testing them byte by
    /// byte was a branch per byte.
    pub(super) fn run_end(&self, mut at: usize) -> usize {
        while at < self.chunk.len() {
            // Bytes past the end are in no set, so a block the data ends in
            // has its first bit past the end set here.
            let outside = !self.from(at);
            if outside != 0 {
                return at + outside.trailing_zeros() as usize;
            }
            at += BLOCK;
        }
        self.chunk.len()
    }
}

/// [`run_shifts`] for a run of [`MIN_TOKEN`] bytes, which a window's half
/// sees whole.
const TOKEN: RunShifts = {
    assert!(MIN_TOKEN <= HALF + 1);
    run_shifts(MIN_TOKEN)
};

/// The classifier of base64 bytes, in its one slot.
static RUNS: LazyLock<Classifier> = LazyLock::new(|| {
    let mut c = Classifier::new();
    c.add(|b| BASE64[usize::from(b)]);
    c
});

/// The bytes of a base64 run (standard and URL-safe alphabets, padding).
pub(in crate::detect::scan) static BASE64: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'-' | b'_');
        b += 1;
    }
    table
};
