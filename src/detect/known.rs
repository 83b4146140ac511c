//! Known-value search: the test device's own identifiers, in every form
//! [`expand`] produces, found in a message fed in chunks of any size.
//!
//! One Aho-Corasick DFA holds every form. A [`KnownValueStream`] carries
//! the automaton state from one chunk to the next, so a value split across
//! chunks (even 1-byte chunks) is found and the message is never buffered;
//! inside a chunk a sampled 4-gram filter lets it skip most bytes (see
//! [`Search`]). Matches are overlapping (`MatchKind::Standard`):
//! every form that occurs is reported, including forms inside other forms
//! (the national phone number inside `+86 138 0013 8000` is reported when
//! its boundaries allow it); consumers pick the strongest per identifier
//! with [`Encoding::strength`].
//!
//! Word boundaries: a digit-shaped form (IMEI, phone, decimal degrees) must
//! not touch a digit on either side, a hex-shaped form (hex, hex digests,
//! ANDROID_ID, MAC, UUID) must not touch a hex digit, and a package name
//! must not touch a letter, digit, `_` or `.`; so the IMEI inside a 30-digit
//! number, or an MD5 inside a longer hex run, is not a match. Decimal
//! degrees are checked on the left only, since they match longer decimals
//! by prefix. Base64 forms are exempt: they are found inside longer base64
//! runs by design.

use std::fmt;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

use super::expand::{Encoding, Form, expand};
use super::profile::DeviceProfile;
use super::recent::RecentBytes;

/// Distinct installed-app package names one message must contain before
/// it is reported as an app list (fewer when the profile lists fewer):
/// a single package name is not a list, because the app under test and
/// the SDKs it talks to name packages all the time.
pub const MIN_APPS: usize = 3;

/// Longest form that gets a left word-boundary check. The stream keeps the
/// last 128 bytes, which is what a check needs when a match began in an
/// earlier chunk; longer forms (hex of custom values over 64 bytes) are
/// not checked on the left.
const LOOKBEHIND: usize = 128;

/// One report: an identifier found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMatch {
    /// Profile key (`"imei"`, `"custom:account"`), `"location"` or
    /// `"installed_apps"`.
    pub identifier: String,
    pub encoding: Encoding,
    /// Byte offsets in the whole message; `end` is exclusive. For
    /// location and installed apps: the part that completed the set.
    pub start: u64,
    pub end: u64,
}

/// Character classes for word boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Digit,
    Hex,
    Package,
}

impl Class {
    fn contains(self, b: u8) -> bool {
        match self {
            Class::Digit => b.is_ascii_digit(),
            Class::Hex => b.is_ascii_hexdigit(),
            Class::Package => b.is_ascii_alphanumeric() || b == b'_' || b == b'.',
        }
    }
}

/// What a pattern's match means.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Index into `KnownValueMatcher::identifiers`.
    Identifier(usize),
    Latitude,
    Longitude,
    /// Index of the package among the counted installed apps.
    App(usize),
}

#[derive(Debug, Clone)]
struct Pattern {
    len: u64,
    target: Target,
    encoding: Encoding,
    left: Option<Class>,
    right: Option<Class>,
}

/// The searchable form of a device profile; build once, share across
/// flows (it is immutable), start one [`KnownValueStream`] per message.
/// `Debug` shows sizes only: the automaton's transitions spell the values.
pub struct KnownValueMatcher {
    /// `None` when there is nothing to search.
    search: Option<Search>,
    /// Indexed by pattern ID.
    patterns: Vec<Pattern>,
    identifiers: Vec<String>,
    /// Distinct apps needed for an app-list report (0: never reported).
    apps_needed: usize,
    apps_counted: usize,
}

impl KnownValueMatcher {
    /// Builds the automaton from [`expand`]. An empty profile gives a
    /// matcher that never matches. The package of the app under test
    /// ([`DeviceProfile::app`]) does not count towards an app list.
    pub fn new(profile: &DeviceProfile) -> KnownValueMatcher {
        let mut identifiers: Vec<String> = Vec::new();
        let mut apps: Vec<Vec<u8>> = Vec::new();
        let mut patterns = Vec::new();
        let mut bytes = Vec::new();
        let own_app = profile.app().map(str::as_bytes);
        for form in expand(profile) {
            let target = match form.identifier.as_str() {
                "location:lat" => Target::Latitude,
                "location:lon" => Target::Longitude,
                "installed_apps" if Some(form.bytes.as_slice()) == own_app => continue,
                "installed_apps" => {
                    let index = apps.iter().position(|a| *a == form.bytes);
                    Target::App(index.unwrap_or_else(|| {
                        apps.push(form.bytes.clone());
                        apps.len() - 1
                    }))
                }
                id => {
                    let index = identifiers.iter().position(|i| i == id);
                    Target::Identifier(index.unwrap_or_else(|| {
                        identifiers.push(id.to_string());
                        identifiers.len() - 1
                    }))
                }
            };
            let (left, right) = boundaries(&form);
            patterns.push(Pattern {
                len: form.bytes.len() as u64,
                target,
                encoding: form.encoding,
                left: left.filter(|_| form.bytes.len() <= LOOKBEHIND),
                right,
            });
            bytes.push(form.bytes);
        }
        let search = Search::new(&bytes);
        KnownValueMatcher {
            patterns: search.as_ref().map_or_else(Vec::new, |_| patterns),
            search,
            identifiers,
            apps_needed: MIN_APPS.min(apps.len()),
            apps_counted: apps.len(),
        }
    }

    /// True when the matcher can never report anything.
    pub fn is_empty(&self) -> bool {
        self.search.is_none()
    }

    /// Number of byte strings searched.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// A search over one message (URL, a header, a body, a WebSocket
    /// message).
    pub fn stream(&self) -> KnownValueStream<'_> {
        let state = self.search.as_ref().map(|s| s.start);
        KnownValueStream {
            matcher: self,
            state,
            offset: 0,
            recent: RecentBytes::default(),
            pending: Vec::new(),
            hits: Vec::new(),
            latitude: None,
            longitude: None,
            location_done: false,
            apps_seen: vec![false; self.apps_counted],
            apps_count: 0,
        }
    }
}

impl fmt::Debug for KnownValueMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownValueMatcher")
            .field("patterns", &self.patterns.len())
            .field("identifiers", &self.identifiers)
            .field("apps_needed", &self.apps_needed)
            .finish_non_exhaustive()
    }
}

/// Left and right word-boundary classes of a form (see the module docs).
fn boundaries(form: &Form) -> (Option<Class>, Option<Class>) {
    let bytes = &form.bytes;
    let hex_id = matches!(
        form.identifier.as_str(),
        "meid" | "android_id" | "adid" | "oaid" | "idfa" | "idfv" | "mac" | "bt_mac" | "bssid"
    );
    let hex_shaped = bytes
        .iter()
        .all(|b| b.is_ascii_hexdigit() || b":-".contains(b));
    let digit_shaped = bytes
        .iter()
        .all(|b| b.is_ascii_digit() || b" -+.".contains(b));
    let class = if form.encoding.is_base64() {
        None
    } else if form.identifier == "installed_apps" {
        Some(Class::Package)
    } else if form.encoding.is_hex() || (hex_id && hex_shaped) {
        // Hex output stays hex-bounded even when it has only digits (the
        // hex of an IMEI's ASCII): it may sit inside a hex dump.
        Some(Class::Hex)
    } else if digit_shaped {
        Some(Class::Digit)
    } else if hex_shaped {
        Some(Class::Hex)
    } else {
        None
    };
    let Some(class) = class else {
        return (None, None);
    };
    // Only an end that is itself in the class can run on into a longer
    // token (`+86...` may follow a digit).
    let left = bytes
        .first()
        .is_some_and(|b| class.contains(*b))
        .then_some(class);
    let right = bytes
        .last()
        .is_some_and(|b| class.contains(*b))
        .then_some(class);
    let right = right.filter(|_| form.encoding != Encoding::Decimal);
    (left, right)
}

/// A match of pattern `pattern` ending at absolute offset `end`.
#[derive(Debug, Clone, Copy)]
struct Hit {
    pattern: usize,
    end: u64,
}

/// The search over one message. Feed chunks in order, then call
/// [`KnownValueStream::finish`]. Memory is bounded by the matches pending
/// at a chunk end, never by the message.
#[derive(Debug)]
pub struct KnownValueStream<'m> {
    matcher: &'m KnownValueMatcher,
    /// Automaton state after the bytes fed so far (`None`: empty matcher).
    state: Option<StateID>,
    /// Bytes fed so far.
    offset: u64,
    /// The last bytes before `offset`, for left boundaries: kept as bytes,
    /// not classes, as a boundary is asked about only for the rare match
    /// that began in an earlier chunk.
    recent: RecentBytes<LOOKBEHIND>,
    /// Matches ending exactly at `offset`, waiting for the next byte (or
    /// the end of the message) to decide their right boundary.
    pending: Vec<Hit>,
    /// Scratch buffer for one chunk's raw hits.
    hits: Vec<Hit>,
    latitude: Option<(u64, u64)>,
    longitude: Option<(u64, u64)>,
    location_done: bool,
    apps_seen: Vec<bool>,
    apps_count: usize,
}

impl KnownValueStream<'_> {
    /// Feeds the next chunk of the message. Matches are reported with
    /// offsets relative to the whole message, in order of their end
    /// offset. A match that ends exactly at the end of `chunk` is reported
    /// by the next call (or by [`Self::finish`]) once the byte after it is
    /// known. Location and installed apps are reported as soon as the
    /// message has shown enough of them (see [`Self::finish`]).
    pub fn feed(&mut self, chunk: &[u8], on_match: &mut dyn FnMut(KnownMatch)) {
        let (Some(search), Some(state), Some(&first)) =
            (self.matcher.search.as_ref(), self.state, chunk.first())
        else {
            self.offset += chunk.len() as u64;
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        for hit in &pending {
            let right = self.matcher.patterns.get(hit.pattern).and_then(|p| p.right);
            if !right.is_some_and(|c| c.contains(first)) {
                self.confirm(*hit, on_match);
            }
        }
        self.pending = pending;
        self.pending.clear();

        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        self.state = Some(search.scan(state, chunk, self.offset, &mut hits));
        // The filter finds matches by where they start, the DFA by where
        // they end: one order for all, so chunking never changes it.
        hits.sort_unstable_by_key(|h| (h.end, h.pattern));
        let base = self.offset;
        let chunk_end = base + chunk.len() as u64;
        for hit in &hits {
            let Some(pattern) = self.matcher.patterns.get(hit.pattern) else {
                continue;
            };
            let start = hit.end.saturating_sub(pattern.len);
            if let Some(class) = pattern.left {
                if self.byte_before_in(class, start, base, chunk) {
                    continue;
                }
            }
            // Every match ending at the chunk's end waits, not only those
            // with a right boundary to check, so matches sharing an end
            // offset are reported in one order whatever the chunking.
            let after = byte_at(chunk, base, hit.end);
            if hit.end == chunk_end {
                self.pending.push(*hit);
            } else if !pattern
                .right
                .is_some_and(|c| after.is_some_and(|b| c.contains(b)))
            {
                self.confirm(*hit, on_match);
            }
        }
        self.hits = hits;
        self.recent.remember(chunk);
        self.offset = chunk_end;
    }

    /// Ends the message: reports the matches that were waiting for the
    /// byte after them (the end of a message is a boundary), then resets
    /// the stream so it can search a new message from offset 0.
    ///
    /// Location (latitude and longitude both seen) and installed apps (at
    /// least `MIN_APPS` distinct packages, or all the profile lists if
    /// fewer) are properties of the whole message, but they are reported
    /// during [`Self::feed`] as soon as the message has shown enough,
    /// once per message, with the span of the part that completed them.
    pub fn finish(&mut self, on_match: &mut dyn FnMut(KnownMatch)) {
        for hit in std::mem::take(&mut self.pending) {
            self.confirm(hit, on_match);
        }
        *self = self.matcher.stream();
    }

    /// Whether the byte just before absolute offset `start` is in `class`.
    /// It lies in `chunk` (which starts at `base`) or before it, where
    /// only its class is remembered.
    fn byte_before_in(&self, class: Class, start: u64, base: u64, chunk: &[u8]) -> bool {
        let Some(before) = start.checked_sub(1) else {
            return false;
        };
        if let Some(b) = byte_at(chunk, base, before) {
            return class.contains(b);
        }
        let back = base.saturating_sub(before + 1);
        self.recent.back(back).is_some_and(|b| class.contains(b))
    }

    /// Reports a match whose boundaries passed.
    fn confirm(&mut self, hit: Hit, on_match: &mut dyn FnMut(KnownMatch)) {
        let Some(pattern) = self.matcher.patterns.get(hit.pattern) else {
            return;
        };
        let span = (hit.end.saturating_sub(pattern.len), hit.end);
        let report = |identifier: &str, encoding| KnownMatch {
            identifier: identifier.to_string(),
            encoding,
            start: span.0,
            end: span.1,
        };
        match pattern.target {
            Target::Identifier(i) => {
                if let Some(id) = self.matcher.identifiers.get(i) {
                    on_match(report(id, pattern.encoding));
                }
            }
            Target::Latitude | Target::Longitude => {
                if matches!(pattern.target, Target::Latitude) {
                    self.latitude = Some(span);
                } else {
                    self.longitude = Some(span);
                }
                if !self.location_done && self.latitude.is_some() && self.longitude.is_some() {
                    self.location_done = true;
                    on_match(report("location", pattern.encoding));
                }
            }
            Target::App(i) => {
                if let Some(seen) = self.apps_seen.get_mut(i) {
                    if !*seen {
                        *seen = true;
                        self.apps_count += 1;
                        if self.apps_count == self.matcher.apps_needed {
                            on_match(report("installed_apps", pattern.encoding));
                        }
                    }
                }
            }
        }
    }
}

fn byte_at(chunk: &[u8], base: u64, at: u64) -> Option<u8> {
    let index = usize::try_from(at.checked_sub(base)?).ok()?;
    chunk.get(index).copied()
}

/// The automaton and the filter that let the search skip most bytes.
///
/// The DFA alone costs a dependent lookup per byte into a table of
/// megabytes (hundreds of patterns, tens of thousands of states), which
/// cache misses hold to ~200 MB/s. So inside a chunk the DFA only walks
/// the edges, and a sampled filter with exact verification covers the
/// middle:
/// 1. Head: an occurrence in progress at the chunk start (the carried
///    state is not the start state) is finished by the DFA, which walks
///    until it is back in the start state (nothing in progress).
/// 2. Middle: every occurrence starting before `chunk.len() - max_len`
///    lies wholly in the chunk. Every `stride`-th 4-byte window is looked
///    up among the 4-grams at offsets `0..stride` of every pattern; since
///    `stride + 3` is the shortest pattern's length, exactly one sampled
///    window falls at those offsets of any occurrence. A hit names the
///    candidate patterns and offsets, which are compared byte for byte.
/// 3. Tail: the DFA walks the last `max_len` bytes from the start state,
///    so occurrences that start there are found, run into the next chunk,
///    and the state carried on is the true automaton state.
///
/// Each occurrence is thus found exactly once, whatever the chunking.
/// Patterns shorter than 4 bytes disable the filter (the DFA walks all).
struct Search {
    dfa: DFA,
    start: StateID,
    /// Length of the longest pattern.
    max_len: usize,
    filter: Option<Filter>,
}

impl Search {
    fn new(patterns: &[Vec<u8>]) -> Option<Search> {
        let max_len = patterns.iter().map(Vec::len).max()?;
        // Prefilter off: with it, start states become "special" and the
        // hot loop would leave its fast path at every return to the start.
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .byte_classes(true)
            .build(patterns)
            .map_err(|e| tracing::error!("known-value search disabled: {e}"))
            .ok()?;
        let start = dfa.start_state(Anchored::No).ok()?;
        Some(Search {
            dfa,
            start,
            max_len,
            filter: Filter::new(patterns),
        })
    }

    /// Searches `chunk` (at absolute offset `base`) from automaton state
    /// `state`, appending every match to `hits` in no particular order;
    /// returns the state after the chunk.
    fn scan(&self, mut state: StateID, chunk: &[u8], base: u64, hits: &mut Vec<Hit>) -> StateID {
        let mut i = 0;
        if state != self.start {
            (state, i) = self.walk(state, chunk, 0, base, true, hits);
        }
        let tail = chunk.len().saturating_sub(self.max_len);
        if let Some(filter) = self.filter.as_ref().filter(|_| i < tail) {
            filter.find(chunk, i, tail, base, hits);
            (state, i) = (self.start, tail);
        }
        self.walk(state, chunk, i, base, false, hits).0
    }

    /// Walks the DFA over `chunk[from..]`, recording matches, until the
    /// end or (with `until_start`) until it is back in the start state.
    /// Returns the state and where it stopped.
    ///
    /// `is_special` is one comparison: the DFA numbers its match (and
    /// dead) states below all others, and with the prefilter off the start
    /// state is not special.
    fn walk(
        &self,
        mut state: StateID,
        chunk: &[u8],
        from: usize,
        base: u64,
        until_start: bool,
        hits: &mut Vec<Hit>,
    ) -> (StateID, usize) {
        let dfa = &self.dfa;
        let mut i = from;
        for &b in chunk.get(from..).unwrap_or_default() {
            state = dfa.next_state(Anchored::No, state, b);
            i += 1;
            if dfa.is_special(state) {
                state = special(dfa, state, base + i as u64, hits);
            }
            if until_start && state == self.start {
                break;
            }
        }
        (state, i)
    }
}

/// Records the matches of a special state; kept out of line so the hot
/// loop stays small.
#[cold]
#[inline(never)]
fn special(dfa: &DFA, state: StateID, end: u64, hits: &mut Vec<Hit>) -> StateID {
    if dfa.is_match(state) {
        for i in 0..dfa.match_len(state) {
            hits.push(Hit {
                pattern: dfa.match_pattern(state, i).as_usize(),
                end,
            });
        }
        state
    } else if dfa.is_dead(state) {
        // An unanchored standard DFA has no reachable dead state; restart
        // rather than stop if one ever appears.
        dfa.start_state(Anchored::No).unwrap_or(state)
    } else {
        state
    }
}

/// log2 of the filter's bit count. 2^18 bits (32 KiB) measured fastest:
/// with a few thousand 4-grams set, under 1% of windows pass to the exact
/// lookup, while a larger table costs more cache misses than it saves.
const FILTER_BITS: u32 = 18;

/// log2 of the number of buckets of exact 4-grams.
const BUCKET_BITS: u32 = 12;

/// The sampled 4-gram filter of [`Search`]: a bit set of hashed 4-grams
/// for a quick reject (a few thousand bits set), and the exact 4-grams
/// with their `(pattern, offset)` pairs for the rare windows that pass.
struct Filter {
    bits: Box<[u64; 1 << (FILTER_BITS - 6)]>,
    /// `(gram, pattern, offset)` grouped by [`Filter::bucket`].
    grams: Vec<(u32, u32, u32)>,
    /// Where each bucket's entries start in `grams` (one more than the
    /// bucket count, so `starts[b]..starts[b + 1]` is bucket `b`).
    starts: Vec<usize>,
    patterns: Vec<Vec<u8>>,
    /// Distance between sampled windows: shortest pattern length - 3.
    stride: usize,
}

impl Filter {
    fn new(patterns: &[Vec<u8>]) -> Option<Filter> {
        let stride = patterns
            .iter()
            .map(Vec::len)
            .min()?
            .checked_sub(3)
            .filter(|s| *s > 0)?;
        let mut bits = Box::new([0u64; 1 << (FILTER_BITS - 6)]);
        let mut grams = Vec::new();
        for (id, pattern) in patterns.iter().enumerate() {
            for offset in 0..stride {
                let Some(gram) = gram(pattern, offset) else {
                    continue;
                };
                let h = Filter::hash(gram);
                bits[h >> 6] |= 1 << (h & 63);
                grams.push((gram, u32::try_from(id).ok()?, u32::try_from(offset).ok()?));
            }
        }
        grams.sort_unstable_by_key(|&(gram, id, offset)| (Filter::bucket(gram), id, offset));
        let mut starts = vec![0; (1 << BUCKET_BITS) + 1];
        for &(gram, _, _) in &grams {
            starts[Filter::bucket(gram) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        Some(Filter {
            bits,
            grams,
            starts,
            patterns: patterns.to_vec(),
            stride,
        })
    }

    /// Multiplicative (Fibonacci) hashing: the top bits mix all 4 bytes.
    #[inline(always)]
    fn hash(gram: u32) -> usize {
        (gram.wrapping_mul(0x9E37_79B1) >> (32 - FILTER_BITS)) as usize
    }

    /// A second, independent hash for the exact lookup after a bit hit.
    fn bucket(gram: u32) -> usize {
        (gram.wrapping_mul(0x85EB_CA6B) >> (32 - BUCKET_BITS)) as usize
    }

    /// Appends the occurrences in `chunk` that start in `from..tail`
    /// (all of which end inside `chunk`).
    #[inline(never)]
    fn find(&self, chunk: &[u8], from: usize, tail: usize, base: u64, hits: &mut Vec<Hit>) {
        let stride = self.stride;
        // The window that samples an occurrence starting at `s` is at most
        // `stride - 1` bytes after `s`; every window must fit in `chunk`.
        let end = (tail + stride).min(chunk.len().saturating_sub(3));
        let mut q = from;
        while q < end {
            let gram = gram(chunk, q).unwrap_or(0);
            let h = Filter::hash(gram);
            if self.bits[h >> 6] >> (h & 63) & 1 != 0 {
                self.verify(chunk, q, gram, from..tail, base, hits);
            }
            q += stride;
        }
    }

    /// Compares the patterns whose 4-gram at `offset` is `gram` with the
    /// text, for the window at `q`; records those that start in `allowed`.
    #[cold]
    #[inline(never)]
    fn verify(
        &self,
        chunk: &[u8],
        q: usize,
        gram: u32,
        allowed: std::ops::Range<usize>,
        base: u64,
        hits: &mut Vec<Hit>,
    ) {
        let b = Filter::bucket(gram);
        let bucket = match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(&lo), Some(&hi)) => self.grams.get(lo..hi).unwrap_or_default(),
            _ => &[],
        };
        for &(_, id, offset) in bucket.iter().filter(|e| e.0 == gram) {
            let Some(start) = q
                .checked_sub(offset as usize)
                .filter(|s| allowed.contains(s))
            else {
                continue;
            };
            let Some(pattern) = self.patterns.get(id as usize) else {
                continue;
            };
            if chunk.get(start..start + pattern.len()) == Some(pattern.as_slice()) {
                hits.push(Hit {
                    pattern: id as usize,
                    end: base + (start + pattern.len()) as u64,
                });
            }
        }
    }
}

/// The 4 bytes at `at` as a little-endian word.
#[inline(always)]
fn gram(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
#[path = "known_tests.rs"]
mod tests;
