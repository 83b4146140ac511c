//! Finding every occurrence of the profile's forms in a message fed in
//! chunks: [`Search`] holds the forms, a [`Cursor`] one message's progress
//! through them. The word boundaries and what a match means are the
//! stream's business ([`super::KnownValueStream`]); this module only says
//! where each form occurs, each occurrence exactly once whatever the
//! chunking.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::packed;
use aho_corasick::{Anchored, MatchKind, Span, StartKind};
use std::ops::Range;

use crate::detect::recent::append_keeping_last;

/// An occurrence of form `pattern` ending at absolute offset `end`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub(super) pattern: usize,
    pub(super) end: u64,
}

/// The forms, and how they are looked for.
///
/// With every form at least 4 bytes long (what the profile's validation
/// gives, but for odd package names like `a.b`), a sampled 4-gram
/// [`Filter`] with exact verification finds them: every `stride`-th 4-byte
/// window is looked up among the 4-grams at offsets `0..stride` of every
/// form, and since `stride + 3` is the shortest form's length, exactly one
/// sampled window falls at those offsets of any occurrence. An occurrence
/// is looked for once all of it has been fed: the last `max_len - 1` bytes
/// of a chunk are held back, and searched joined to the next chunk's first
/// bytes (or alone at the end of the message).
///
/// Each sampled window costs a lookup, so the sampling distance decides the
/// cost, and the shortest form decides the distance. A profile's few
/// shortest forms (a location's decimals, an SSID) are found by a packed
/// SIMD searcher instead ([`ShortForms`]), and the windows lie as far apart
/// as the rest allow.
///
/// An Aho-Corasick DFA would carry its state across chunks instead, but it
/// costs a dependent lookup per byte into a table of megabytes, which cache
/// misses hold to ~200 MB/s; it is built only when a form is too short for
/// the filter, and then walks every byte.
pub(super) struct Search {
    /// Length of the longest form.
    max_len: usize,
    /// Length of the shortest form.
    min_len: usize,
    how: How,
}

enum How {
    Sampled(Filter),
    /// Boxed: the DFA's own fields are several hundred bytes.
    Automaton {
        dfa: Box<DFA>,
        start: StateID,
    },
}

/// One message's progress through a [`Search`]. Per chunk: [`Search::feed`],
/// then any [`Cursor::byte`] look-ups the new hits need, then
/// [`Cursor::advance`].
#[derive(Debug, Default)]
pub(super) struct Cursor {
    /// Bytes fed before the current chunk.
    offset: u64,
    /// Every occurrence starting before `done` has been found.
    done: u64,
    /// The message's bytes `keep..offset`: the starts not searched yet, and
    /// the byte before them for a left boundary. At most `max_len` bytes.
    held: Vec<u8>,
    keep: u64,
    /// The automaton's state after the bytes fed (automaton only).
    state: Option<StateID>,
}

impl Search {
    /// `None` when there is no form.
    pub(super) fn new(patterns: &[Vec<u8>]) -> Option<Search> {
        let max_len = patterns.iter().map(Vec::len).max()?;
        let min_len = patterns.iter().map(Vec::len).min()?;
        let how = match Filter::new(patterns) {
            Some(filter) => How::Sampled(filter),
            None => {
                // Prefilter off: with it, start states become "special" and
                // the hot loop would leave its fast path at every return to
                // the start.
                let dfa = DFA::builder()
                    .match_kind(MatchKind::Standard)
                    .start_kind(StartKind::Unanchored)
                    .prefilter(false)
                    .byte_classes(true)
                    .build(patterns)
                    .map_err(|e| tracing::error!("known-value search disabled: {e}"))
                    .ok()?;
                let start = dfa.start_state(Anchored::No).ok()?;
                How::Automaton {
                    dfa: Box::new(dfa),
                    start,
                }
            }
        };
        Some(Search {
            max_len,
            min_len,
            how,
        })
    }

    /// How the forms are found: `"sampled"` (none is shorter than 4
    /// bytes), `"sampled+packed"` (the short ones by the packed searcher),
    /// or `"automaton"` (it walks every byte).
    #[cfg(test)]
    pub(super) fn path(&self) -> &'static str {
        match &self.how {
            How::Sampled(f) if f.short.is_some() => "sampled+packed",
            How::Sampled(_) => "sampled",
            How::Automaton { .. } => "automaton",
        }
    }

    /// Appends to `hits`, in no particular order, the occurrences that
    /// `chunk` (the next bytes of the cursor's message) completes and that
    /// were not found before. Returns an offset below which every
    /// occurrence's end has now been found and the byte at that end is
    /// known (in `chunk` or held): a hit ending before it is final.
    pub(super) fn feed(&self, cur: &mut Cursor, chunk: &[u8], hits: &mut Vec<Hit>) -> u64 {
        let end = cur.offset + chunk.len() as u64;
        // An occurrence starting before `done` lies wholly in what is fed.
        let done = cur.done.max((end + 1).saturating_sub(self.max_len as u64));
        let found_below = match &self.how {
            How::Sampled(filter) => {
                self.sample(filter, cur, chunk, done, hits);
                // Later occurrences start at `done` or after.
                done + self.min_len as u64
            }
            How::Automaton { dfa, start } => {
                let state = cur.state.unwrap_or(*start);
                cur.state = Some(walk(dfa, state, chunk, cur.offset, hits));
                end
            }
        };
        cur.done = done;
        found_below.min(end)
    }

    /// Searches the starts `cur.done..done` with the filter: those in the
    /// held bytes joined to the chunk's first bytes, the rest in the chunk.
    fn sample(
        &self,
        filter: &Filter,
        cur: &mut Cursor,
        chunk: &[u8],
        done: u64,
        hits: &mut Vec<Hit>,
    ) {
        let (from, offset, keep) = (cur.done, cur.offset, cur.keep);
        let held_to = done.min(offset);
        if from < held_to {
            let held = cur.held.len();
            // An occurrence starting in the held bytes ends within
            // `max_len - 1` bytes of the chunk's start.
            let join = chunk.len().min(self.max_len - 1);
            cur.held.extend_from_slice(&chunk[..join]);
            let range = (from - keep) as usize..(held_to - keep) as usize;
            filter.find(&cur.held, range, keep, hits);
            cur.held.truncate(held);
        }
        let first = from.max(offset);
        if first < done {
            filter.find(
                chunk,
                (first - offset) as usize..(done - offset) as usize,
                offset,
                hits,
            );
        }
    }

    /// Ends the message: appends the occurrences starting in the held
    /// bytes (each must end by the message's end).
    pub(super) fn finish(&self, cur: &mut Cursor, hits: &mut Vec<Hit>) {
        if let How::Sampled(filter) = &self.how
            && cur.done < cur.offset
        {
            let from = (cur.done - cur.keep) as usize;
            filter.find(&cur.held, from..cur.held.len(), cur.keep, hits);
            cur.done = cur.offset;
        }
    }
}

impl Cursor {
    /// Back at the start of a message, keeping the room of the held bytes
    /// (at most the longest form).
    pub(super) fn restart(&mut self) {
        let mut held = std::mem::take(&mut self.held);
        held.clear();
        *self = Cursor {
            held,
            ..Cursor::default()
        };
    }

    /// The byte at absolute offset `at`: in the held bytes, or in `chunk`
    /// (the chunk just given to [`Search::feed`]). `None` when it is past
    /// `chunk` or no longer held.
    pub(super) fn byte(&self, at: u64, chunk: &[u8]) -> Option<u8> {
        let (bytes, index) = match at.checked_sub(self.offset) {
            Some(i) => (chunk, i),
            None => (&self.held[..], at.checked_sub(self.keep)?),
        };
        bytes.get(usize::try_from(index).ok()?).copied()
    }

    /// Moves past `chunk`, holding its bytes from just before the first
    /// start not searched yet.
    pub(super) fn advance(&mut self, chunk: &[u8]) {
        let keep = self.done.saturating_sub(1);
        let end = self.offset + chunk.len() as u64;
        // At most `max_len` bytes: `done` is at least `end + 1 - max_len`.
        append_keeping_last(&mut self.held, chunk, (end - keep) as usize);
        self.keep = keep;
        self.offset += chunk.len() as u64;
    }
}

/// Walks the DFA over `chunk` (at absolute offset `base`) from `state`,
/// recording matches; returns the state after it.
///
/// `is_special` is one comparison: the DFA numbers its match (and dead)
/// states below all others, and with the prefilter off the start state is
/// not special.
fn walk(dfa: &DFA, mut state: StateID, chunk: &[u8], base: u64, hits: &mut Vec<Hit>) -> StateID {
    for (i, &b) in chunk.iter().enumerate() {
        state = dfa.next_state(Anchored::No, state, b);
        if dfa.is_special(state) {
            state = special(dfa, state, base + i as u64 + 1, hits);
        }
    }
    state
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
    /// Distance between sampled windows: shortest sampled pattern's length
    /// minus 3.
    stride: usize,
    /// The forms shorter than `SHORT_FORM`, when a packed searcher finds
    /// them; the sampled windows then serve only the longer ones.
    short: Option<ShortForms>,
}

impl Filter {
    fn new(patterns: &[Vec<u8>]) -> Option<Filter> {
        if patterns.iter().any(|p| p.len() < 4) {
            return None;
        }
        let short = ShortForms::new(patterns);
        let sampled = |p: &Vec<u8>| short.is_none() || p.len() >= SHORT_FORM;
        let stride = patterns.iter().filter(|p| sampled(p)).map(Vec::len).min()? - 3;
        let mut bits = Box::new([0u64; 1 << (FILTER_BITS - 6)]);
        let mut grams = Vec::new();
        for (id, pattern) in patterns.iter().enumerate().filter(|(_, p)| sampled(p)) {
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
            short,
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

    /// Appends the occurrences in `chunk` (at absolute offset `base`) that
    /// start in `starts` and end inside `chunk`.
    fn find(&self, chunk: &[u8], starts: Range<usize>, base: u64, hits: &mut Vec<Hit>) {
        if let Some(short) = &self.short {
            short.find(&self.patterns, chunk, starts.clone(), base, hits);
        }
        self.sample(chunk, starts, base, hits);
    }

    /// [`Filter::find`] for the sampled forms.
    #[inline(never)]
    fn sample(&self, chunk: &[u8], starts: Range<usize>, base: u64, hits: &mut Vec<Hit>) {
        let (from, tail) = (starts.start, starts.end);
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
        allowed: Range<usize>,
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

/// Forms shorter than this go to [`ShortForms`] when there are few of
/// them: the sampled windows then lie `SHORT_FORM - 3` bytes apart at
/// least. A profile's shortest forms are few (a location's decimals, an
/// SSID and the first bytes of its base64); with them sampled, every third
/// byte was looked up.
const SHORT_FORM: usize = 12;
/// The most short forms a packed searcher takes; with more, all forms are
/// sampled as before. Teddy, the packed searcher, slows down past a few
/// dozen patterns.
const MAX_SHORT_FORMS: usize = 32;

/// The short forms, found by a packed (SIMD) searcher.
struct ShortForms {
    searcher: packed::Searcher,
    /// Their indices among the forms.
    ids: Vec<usize>,
}

impl ShortForms {
    /// `None` when there are none, too many, no longer form to sample, or
    /// no packed searcher for this CPU.
    fn new(patterns: &[Vec<u8>]) -> Option<ShortForms> {
        let ids: Vec<usize> = (0..patterns.len())
            .filter(|&i| patterns[i].len() < SHORT_FORM)
            .collect();
        let some_long = ids.len() < patterns.len();
        if ids.is_empty() || ids.len() > MAX_SHORT_FORMS || !some_long {
            return None;
        }
        let searcher = packed::Searcher::new(ids.iter().map(|&i| &patterns[i]))?;
        Some(ShortForms { searcher, ids })
    }

    /// [`Filter::find`] for the short forms: every start where one occurs,
    /// and there every form that occurs (the searcher reports one
    /// leftmost match at a time).
    fn find(
        &self,
        patterns: &[Vec<u8>],
        chunk: &[u8],
        starts: Range<usize>,
        base: u64,
        hits: &mut Vec<Hit>,
    ) {
        let mut at = starts.start;
        while at < starts.end {
            let Some(m) = self.searcher.find_in(chunk, Span::from(at..chunk.len())) else {
                return;
            };
            let start = m.start();
            if start >= starts.end {
                return;
            }
            for &id in &self.ids {
                let form = &patterns[id];
                if chunk[start..].starts_with(form) {
                    hits.push(Hit {
                        pattern: id,
                        end: base + (start + form.len()) as u64,
                    });
                }
            }
            at = start + 1;
        }
    }
}

/// The 4 bytes at `at` as a little-endian word.
#[inline(always)]
fn gram(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
