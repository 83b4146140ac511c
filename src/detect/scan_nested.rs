//! Looking inside a message: base64 runs are decoded (and gunzipped when
//! they hold gzip) into child scans, and the regions of the message that
//! hold `%XX` escapes are percent-decoded into one more child scan.
//!
//! Only the escaped regions are decoded, not the rest of the message: text
//! without escapes decodes to itself, so scanning it again would find
//! nothing new. A region runs from the start of the token holding the
//! first escape (a base64 run with `%2F` in it is decoded from its start),
//! with up to `CONTEXT_BACK` bytes of whole tokens before it (the key a
//! value is assigned to), to the first delimiter at least `AFTER` bytes
//! past its last escape. Regions go to one child, a line break apart, so
//! whole-message rules (location pairs, app lists) see them all. Every
//! decision depends on the bytes alone, with a bounded look-back, so the
//! child sees the same text whatever the chunking.

use std::borrow::Cow;

use super::MessageScan;
use crate::detect::percent::escape_at;
use crate::detect::recent::RecentBytes;
#[cfg(test)]
pub(super) use runs::BASE64;
pub(super) use runs::{Base64Map, Base64Runs};

/// Shortest base64 run worth decoding: shorter runs are mostly words and
/// identifiers themselves, and decode to too little to hold a container.
const MIN_TOKEN: usize = 24;
/// How far back from an escape the start of its token is looked for.
const TOKEN_BACK: usize = 1024;
/// Whole tokens kept before the escaped token, for key context.
const CONTEXT_BACK: usize = 128;
/// Raw bytes kept for finding a region's start.
pub(super) const HISTORY: usize = TOKEN_BACK + CONTEXT_BACK;
/// Bytes a region goes on after its last escape before it may end.
const AFTER: usize = 256;

/// The escaped regions of a message, decoded as it streams.
#[derive(Default)]
pub(super) struct PercentRegions<'d> {
    /// Created with the first region.
    pub(super) child: Option<Box<MessageScan<'d>>>,
    /// The raw bytes right before `at`, at most `HISTORY`.
    pub(super) history: RecentBytes<HISTORY>,
    /// Message offset of the first byte not yet decided on.
    at: u64,
    /// Undecided bytes: a possible escape cut by the end of a chunk.
    carry: Vec<u8>,
    /// The open region, if any.
    region: Option<Region>,
    /// Message offset where the child's input stops.
    fed_to: u64,
}

#[derive(Clone, Copy)]
struct Region {
    /// The region ends at the first delimiter from here on…
    close_after: u64,
    /// …or here, inside a token too long to follow.
    cap: u64,
}

impl<'d> MessageScan<'d> {
    /// Finds base64 runs (carried across chunks) and scans what they decode
    /// to. `end` closes a run still open at the end of the message.
    pub(super) fn nested_base64(&mut self, chunk: &[u8], end: bool) {
        let max_token = self.detectors.limits.max_token;
        // A run carried from the last chunk continues at the chunk's start.
        let carried = !self.base64.run.is_empty() || self.base64.overflow;
        let mut start = carried.then_some(0);
        let mut i = 0;
        let mut blocks = std::mem::take(&mut self.base64.blocks);
        let map = Base64Map::new(chunk, &mut blocks);
        loop {
            match start {
                // The run's bytes up to `read` are known to be base64.
                None => match map.next_run(i) {
                    Some((s, read)) => (i, start) = (read, Some(s)),
                    None => break,
                },
                Some(s) => match map.run_end(i) {
                    end if end < chunk.len() => {
                        if let Some(token) = self.base64.close(&chunk[s..end], max_token) {
                            self.look_into(&token);
                        }
                        (i, start) = (end, None);
                    }
                    _ => break,
                },
            }
        }
        match start {
            Some(s) if end => {
                if let Some(token) = self.base64.close(&chunk[s..], max_token) {
                    self.look_into(&token);
                }
            }
            Some(s) => self.base64.carry(&chunk[s..], max_token),
            None => {}
        }
        self.base64.blocks = blocks;
    }

    /// Decodes a closed base64 run and scans what it holds, if anything,
    /// as a nested message. Called as each run closes: gathering a
    /// chunk's runs first cost an allocation per chunk and its regrowth.
    fn look_into(&mut self, token: &[u8]) {
        let mut buffers = std::mem::take(&mut self.payloads);
        let limit = self.detectors.limits.nested_output;
        if let Some((containers, payload)) = decode_nested(token, limit, &mut buffers) {
            let mut chain = self.chain.clone();
            chain.extend(containers.into_iter().map(str::to_owned));
            let mut child = MessageScan::at_depth(self.detectors, chain, self.depth + 1);
            child.feed(payload);
            for hit in child.finish() {
                self.keep(hit);
            }
        }
        self.payloads = buffers;
    }

    /// Feeds the escaped regions of `chunk` to the percent-decoded child;
    /// `end` decides the last bytes and closes the open region.
    pub(super) fn nested_percent(&mut self, chunk: &[u8], end: bool) {
        let max_token = self.detectors.limits.max_token as u64;
        let p = &mut self.percent;
        let work: Cow<'_, [u8]> = if p.carry.is_empty() {
            Cow::Borrowed(chunk)
        } else {
            let mut joined = std::mem::take(&mut p.carry);
            joined.extend_from_slice(chunk);
            Cow::Owned(joined)
        };
        let base = p.at;
        // A `%` in the last two bytes may start an escape the next chunk
        // completes: it and what follows wait.
        let tail = work.len().saturating_sub(2)..work.len();
        let decided = match tail.clone().find(|&k| work[k] == b'%') {
            Some(k) if !end => k,
            _ => work.len(),
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < decided {
            if let Some(region) = p.region {
                i = p.region_bytes(&work, base, i, decided, region, max_token, &mut out);
            } else if let Some(e) = next_escape(&work, i, decided) {
                p.open_region(&work, base, e, max_token, &mut out);
                i = e;
            } else {
                i = decided;
            }
        }
        p.carry = work[i..].to_vec();
        p.history.remember(&work[..i]);
        p.at = base + i as u64;
        if end && p.region.take().is_some() {
            p.fed_to = p.at;
        }
        if !out.is_empty() {
            self.percent_child().feed(&out);
        }
    }

    /// Ends the percent-decoded child and keeps its hits.
    pub(super) fn finish_percent(&mut self) {
        self.nested_percent(&[], true);
        if let Some(child) = self.percent.child.take() {
            for hit in child.finish() {
                self.keep(hit);
            }
        }
    }

    /// The child that scans the decoded regions.
    fn percent_child(&mut self) -> &mut MessageScan<'d> {
        let (detectors, depth) = (self.detectors, self.depth);
        let chain = &self.chain;
        self.percent.child.get_or_insert_with(|| {
            let mut chain = chain.clone();
            chain.push("url".to_owned());
            Box::new(MessageScan::at_depth(detectors, chain, depth + 1))
        })
    }
}

impl Region {
    /// True if the region closes after byte `b` at message offset `pos`:
    /// a delimiter once `close_after` is reached, or any byte at the cap.
    fn closes_at(&self, pos: u64, b: u8) -> bool {
        pos >= self.close_after && is_delimiter(b) || pos + 1 >= self.cap
    }

    /// How many of `bytes` (the first at message offset `pos`) the region
    /// takes as they are: those before the first `%` or the first byte it
    /// [`closes_at`](Region::closes_at). Copied at once, not byte by byte
    /// as what follows them must be.
    fn plain_run(&self, bytes: &[u8], pos: u64) -> usize {
        let room = |until: u64| usize::try_from(until.saturating_sub(pos)).unwrap_or(usize::MAX);
        let n = bytes.len().min(room(self.cap.saturating_sub(1)));
        let open = n.min(room(self.close_after));
        match memchr::memchr(b'%', &bytes[..open]) {
            Some(k) => k,
            None => {
                let rest = &bytes[open..n];
                open + rest
                    .iter()
                    .position(|&b| b == b'%' || is_delimiter(b))
                    .unwrap_or(rest.len())
            }
        }
    }

    /// A region whose last escape ends at `escape_end`; a token longer than
    /// `max_token` after it is cut.
    fn after(escape_end: u64, max_token: u64) -> Region {
        Region {
            close_after: escape_end + AFTER as u64,
            cap: escape_end + AFTER as u64 + max_token,
        }
    }
}

impl PercentRegions<'_> {
    /// Opens a region for the escape at `work[e]`: appends the raw bytes
    /// from the region's start up to the escape to `out`, a line break
    /// first when the child has text the region does not continue.
    fn open_region(&mut self, work: &[u8], base: u64, e: usize, max_token: u64, out: &mut Vec<u8>) {
        let escape = base + e as u64;
        let start = self.region_start(work, base, escape);
        if start > self.fed_to && (self.child.is_some() || !out.is_empty()) {
            out.push(b'\n');
        }
        out.extend((start..escape).map(|pos| self.raw_at(work, base, pos)));
        self.region = Some(Region::after(escape + 3, max_token));
    }

    /// Decodes the open region from `work[i]` into `out` until it closes or
    /// `decided` is reached; returns where it stopped.
    #[allow(clippy::too_many_arguments)]
    fn region_bytes(
        &mut self,
        work: &[u8],
        base: u64,
        mut i: usize,
        decided: usize,
        mut region: Region,
        max_token: u64,
        out: &mut Vec<u8>,
    ) -> usize {
        while i < decided {
            if let Some(b) = escape_at(work, i) {
                out.push(b);
                i += 3;
                region = Region::after(base + i as u64, max_token);
                continue;
            }
            let plain = region.plain_run(&work[i..decided], base + i as u64);
            if plain > 0 {
                out.extend_from_slice(&work[i..i + plain]);
                i += plain;
                continue;
            }
            let pos = base + i as u64;
            out.push(work[i]);
            i += 1;
            if region.closes_at(pos, work[i - 1]) {
                self.region = None;
                self.fed_to = pos + 1;
                return i;
            }
        }
        self.region = Some(region);
        i
    }

    /// The byte at message offset `pos`, from the history or `work` (which
    /// starts at `base`).
    fn raw_at(&self, work: &[u8], base: u64, pos: u64) -> u8 {
        if pos >= base {
            work[(pos - base) as usize]
        } else {
            self.history[self.history.len() - (base - pos) as usize]
        }
    }

    /// Where the region for the escape at `e` starts: the start of the
    /// escape's token (if it is at most `TOKEN_BACK` bytes back, else the
    /// escape itself), moved back over whole tokens by up to
    /// `CONTEXT_BACK` bytes; never before what the child already has.
    fn region_start(&self, work: &[u8], base: u64, e: u64) -> u64 {
        let floor = self.fed_to.max(base - self.history.len() as u64);
        // A token starts at the message start, after a delimiter, or where
        // what can be looked at starts: where the child's input stops, or
        // at the oldest kept byte, whose predecessor is gone.
        let starts_token =
            |pos: u64| pos == 0 || pos == floor || is_delimiter(self.raw_at(work, base, pos - 1));
        let lo = e.saturating_sub(TOKEN_BACK as u64).max(floor);
        let token = (lo..=e).rev().find(|&pos| starts_token(pos)).unwrap_or(e);
        let lo = token.saturating_sub(CONTEXT_BACK as u64).max(floor);
        (lo..=token).find(|&pos| starts_token(pos)).unwrap_or(token)
    }
}

/// Where the first `%XX` escape in `buf[from..to]` starts.
fn next_escape(buf: &[u8], from: usize, to: usize) -> Option<usize> {
    memchr::memchr_iter(b'%', &buf[from..to])
        .map(|n| from + n)
        .find(|&e| escape_at(buf, e).is_some())
}

/// Bytes that end a token: a region starts after one and ends at one.
fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\r'
            | b'\n'
            | b'&'
            | b'?'
            | b'"'
            | b'\''
            | b','
            | b';'
            | b'{'
            | b'}'
            | b'['
            | b']'
            | b'('
            | b')'
            | b'<'
            | b'>'
    )
}

#[path = "scan_payload.rs"]
mod payload;
pub(super) use payload::PayloadBuffers;
use payload::decode_nested;
pub use payload::sniff_container;
#[cfg(test)]
pub(super) use payload::{decode_payload, decode_prefix, has_control, printable, surely_binary};

#[path = "scan_base64_runs.rs"]
mod runs;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The bytes a region takes at once are those the byte-by-byte
        /// loop would take without deciding anything: no `%`, and none it
        /// closes at.
        #[test]
        fn a_plain_run_stops_where_the_byte_loop_must_decide(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'%'), Just(b'&'), Just(b' '), Just(b'a'), Just(b'7')],
                0..40,
            ),
            pos in 0u64..50,
            close_after in 0u64..60,
            extra in 0u64..60,
        ) {
            let region = Region { close_after, cap: close_after + extra };
            let decides = |k: usize| bytes[k] == b'%' || region.closes_at(pos + k as u64, bytes[k]);
            let expected = (0..bytes.len()).find(|&k| decides(k)).unwrap_or(bytes.len());
            prop_assert_eq!(region.plain_run(&bytes, pos), expected);
        }
    }
}
