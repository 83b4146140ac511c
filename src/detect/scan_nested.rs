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

use base64::Engine;

use super::{MessageScan, hex_value};
use crate::detect::recent::RecentBytes;
use crate::flow::decode::{ContentCoding, StreamDecoder};
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
const HISTORY: usize = TOKEN_BACK + CONTEXT_BACK;
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
        let Some((containers, payload)) = decode_nested(token, self.detectors.limits.nested_output)
        else {
            return;
        };
        let mut chain = self.chain.clone();
        chain.extend(containers.into_iter().map(str::to_owned));
        let mut child = MessageScan::at_depth(self.detectors, chain, self.depth + 1);
        child.feed(&payload);
        for hit in child.finish() {
            self.keep(hit);
        }
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

/// The byte a `%XX` escape at `buf[i]` stands for.
fn escape_at(buf: &[u8], i: usize) -> Option<u8> {
    match buf.get(i..i + 3)? {
        [b'%', h, l] => Some(hex_value(*h)? << 4 | hex_value(*l)?),
        _ => None,
    }
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

/// Decodes a base64 run; returns the containers opened and the payload
/// when it holds something worth scanning (gzip/zlib data or text).
fn decode_nested(token: &[u8], limit: u64) -> Option<(Vec<&'static str>, Vec<u8>)> {
    let trimmed = token
        .strip_suffix(b"==")
        .or_else(|| token.strip_suffix(b"="))
        .unwrap_or(token);
    // `=` inside the run is a key/value separator (`data=H4sI...`): the
    // payload is what follows the last one.
    let trimmed = match memchr::memrchr(b'=', trimmed) {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    };
    if trimmed.len() < MIN_TOKEN {
        return None;
    }
    let url_safe = memchr::memchr2(b'-', b'_', trimmed).is_some();
    if surely_binary(trimmed, url_safe) {
        return None;
    }
    decode_payload(trimmed, url_safe, limit)
}

/// Decodes base64 text (without padding) and what it holds.
pub(super) fn decode_payload(
    trimmed: &[u8],
    url_safe: bool,
    limit: u64,
) -> Option<(Vec<&'static str>, Vec<u8>)> {
    let raw = engine(url_safe).decode(trimmed).ok()?;
    let compressed = match raw.as_slice() {
        [0x1f, 0x8b, ..] => Some((ContentCoding::Gzip, "gzip")),
        [0x78, flg, ..] if (0x7800u16 | *flg as u16) % 31 == 0 => {
            Some((ContentCoding::Deflate, "zlib"))
        }
        _ => None,
    };
    let (mut containers, payload) = match compressed {
        Some((coding, name)) => {
            let mut out = Vec::new();
            let mut decoder = StreamDecoder::new(&[coding], limit);
            let _ = decoder.push(&raw, &mut |piece| out.extend_from_slice(piece));
            let _ = decoder.finish(&mut |piece| out.extend_from_slice(piece));
            (vec!["base64", name], out)
        }
        None if mostly_text(&raw) => (vec!["base64"], raw),
        None => return None,
    };
    if let Some(kind) = sniff_container(&payload) {
        containers.push(kind);
    }
    Some((containers, payload))
}

/// True when what `b64` decodes to is certainly not worth scanning (not
/// gzip or zlib, and not [`mostly_text`]), judged from its first 24 bytes:
/// hex digests and ids are base64-shaped, and decoding them whole only to
/// throw the bytes away is most of what looking into base64 costs.
pub(super) fn surely_binary(b64: &[u8], url_safe: bool) -> bool {
    let total = b64.len() * 3 / 4;
    let Some((prefix, n)) = decode_prefix(b64, url_safe) else {
        // Not valid here: the full decode fails on its own.
        return false;
    };
    let prefix = &prefix[..n];
    if matches!(prefix, [0x1f, 0x8b, ..] | [0x78, ..]) {
        return false;
    }
    // `mostly_text` accepts valid UTF-8 without control characters, or at
    // least 90% printable bytes; the prefix can rule out both. The count
    // comes first: it is cheaper, and it is what turns text away.
    let unprintable = prefix.len() - printable(prefix);
    if unprintable * 10 <= total {
        return false;
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => has_control(prefix),
        // A byte that is not UTF-8 is not text; a character cut at the
        // prefix's end may be, and the bytes before it decide.
        Err(e) => e.error_len().is_some() || has_control(&prefix[..e.valid_up_to()]),
    }
}

/// Bytes of a base64 run [`surely_binary`] decodes.
const PREFIX: usize = 24;

/// What the first whole quads of `b64` (at most [`PREFIX`] bytes' worth)
/// decode to, as the `base64` engine of the alphabet decodes them; `None`
/// at a byte outside the alphabet. Decoded here: the engine's general
/// decoder cost several times the rest of [`surely_binary`].
pub(super) fn decode_prefix(b64: &[u8], url_safe: bool) -> Option<([u8; PREFIX], usize)> {
    let table = &SEXTETS[usize::from(url_safe)];
    let mut out = [0u8; PREFIX];
    let quads = b64.chunks_exact(4).take(PREFIX / 3);
    let mut n = 0;
    for (quad, bytes) in quads.zip(out.chunks_exact_mut(3)) {
        let mut word = 0u32;
        for &c in quad {
            let v = table[usize::from(c)];
            if v == INVALID {
                return None;
            }
            word = word << 6 | u32::from(v);
        }
        bytes.copy_from_slice(&word.to_be_bytes()[1..]);
        n += 3;
    }
    Some((out, n))
}

/// Not a base64 digit.
const INVALID: u8 = 0xFF;

/// Per alphabet (standard, URL-safe): each byte's 6-bit value.
static SEXTETS: [[u8; 256]; 2] = [sextets(b'+', b'/'), sextets(b'-', b'_')];

const fn sextets(c62: u8, c63: u8) -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        table[b'A' as usize + i] = i as u8;
        table[b'a' as usize + i] = 26 + i as u8;
        if i < 10 {
            table[b'0' as usize + i] = 52 + i as u8;
        }
        i += 1;
    }
    table[c62 as usize] = 62;
    table[c63 as usize] = 63;
    table
}

/// The base64 alphabet a run uses (padding is trimmed before decoding).
fn engine(url_safe: bool) -> &'static base64::engine::GeneralPurpose {
    if url_safe {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    }
}

/// True when at least 90% of the bytes are printable ASCII or whitespace,
/// or the bytes are valid UTF-8 text: binary noise decoded from a
/// base64-looking word is not worth scanning.
fn mostly_text(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        return false;
    }
    if std::str::from_utf8(bytes).is_ok() && !has_control(bytes) {
        return true;
    }
    printable(bytes) * 10 >= bytes.len() * 9
}

/// How many of `bytes` are printable ASCII or whitespace. Counted from a
/// table: on decoded noise, testing the two classes byte by byte was a
/// branch the CPU mostly guessed wrong.
pub(super) fn printable(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .map(|&b| usize::from(PRINTABLE[usize::from(b)]))
        .sum()
}

static PRINTABLE: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = (c.is_ascii_graphic() || c.is_ascii_whitespace()) as u8;
        b += 1;
    }
    table
};

/// True when the UTF-8 text `b` holds a control character that is not
/// whitespace (`c.is_control() && !c.is_whitespace()`), read from its
/// bytes: the C0 controls and DEL are single bytes, the C1 controls are
/// `0xC2` followed by `0x80..=0x9F`, and of them all only `\t \n \x0B \x0C
/// \r` and U+0085 are whitespace. Decoding every character cost more than
/// the rest of deciding whether a base64 payload is text. Bytes, not a
/// `str`: callers have checked them, and checking again cost as much.
/// On bytes that are not UTF-8 the answer means nothing.
pub(super) fn has_control(b: &[u8]) -> bool {
    // Text without a lead byte, the usual case, is decided by the first
    // pass, many bytes at a time.
    any_lead(b)
        && b.iter().enumerate().any(|(i, &c)| {
            leads(c) && (c != 0xc2 || matches!(b.get(i + 1), Some(0x80..=0x84 | 0x86..=0x9f)))
        })
}

/// The first byte of every character [`has_control`] looks for: C0 but
/// `\t..=\r`, DEL, and the lead byte of the C1 block. Comparisons without
/// short circuits, so that the compiler tests a vector of bytes at once.
fn leads(c: u8) -> bool {
    (c < 0x09) | (c.wrapping_sub(0x0e) < 0x20 - 0x0e) | (c == 0x7f) | (c == 0xc2)
}

/// True if some byte of `b` [`leads`]. Each 32-byte piece is tested whole
/// before the answer is looked at: an early exit per byte would keep the
/// compiler from comparing them together (a count did too, in practice).
fn any_lead(b: &[u8]) -> bool {
    let mut pieces = b.chunks_exact(32);
    for piece in &mut pieces {
        if piece.iter().fold(false, |any, &c| any | leads(c)) {
            return true;
        }
    }
    pieces.remainder().iter().any(|&c| leads(c))
}

/// Names the container a payload looks like, for `decoded_from`.
pub fn sniff_container(payload: &[u8]) -> Option<&'static str> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
    match first {
        b'{' | b'[' => Some("json"),
        _ if payload.contains(&b'=') && !payload.contains(&b' ') => Some("form"),
        _ => None,
    }
}

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
