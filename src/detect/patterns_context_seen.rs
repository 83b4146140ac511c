//! What the key lookup said before values whose context it has seen.
//!
//! Traffic repeats its keys: every record of an analytics batch has the
//! same `"request_id":"`, `"sha256":"`, `&ts=` before its values. Finding
//! the key walks back over the quotes, the separator and the key's bytes,
//! and asking what the key names walks the alias tries: together about
//! two hundred instructions, for most of the pre-pass's candidates. The
//! walk's answer depends only on the bytes it read (see
//! [`super::Reach`]), so where the same bytes come before a value again,
//! its outcome is taken from here: a few word compares.

use super::KeyVerdict;

/// Bytes before a value a remembered context may span.
pub(super) const SPAN: usize = 32;
/// Sets of the table (chosen by the last four bytes before the value), and
/// contexts per set: keys ending alike (`request_id`, `trace_id`) share a
/// set without pushing each other out.
const SETS: usize = 64;
const WAYS: usize = 2;

/// What the key before a value says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum KeyOutcome {
    /// No key before the value.
    NoKey,
    /// A key no alias ends, and, with `context_too`, no context key
    /// either: it names nothing, and no rule that needs a key allows it.
    /// Whether its values are identifiers at all was not asked.
    NamesNothing { context_too: bool },
    /// The key's verdict.
    Judged(KeyVerdict),
}

/// Remembered contexts and their outcomes; see the module docs.
#[derive(Default)]
pub(super) struct KeyContexts {
    /// Empty until the first context is remembered.
    sets: Vec<[Context; WAYS]>,
}

#[derive(Clone, Copy)]
struct Context {
    /// The `SPAN` bytes before the value as four words, the bytes outside
    /// the context masked to zero, and the masks.
    words: [u64; 4],
    masks: [u64; 4],
    outcome: KeyOutcome,
}

/// A way that holds no context: no bytes match its words under its masks.
const EMPTY: Context = Context {
    words: [u64::MAX; 4],
    masks: [0; 4],
    outcome: KeyOutcome::NoKey,
};

impl KeyContexts {
    /// The outcome remembered for the bytes before `buf[s]`, if any.
    #[inline]
    pub(super) fn get(&self, buf: &[u8], s: usize) -> Option<KeyOutcome> {
        let words = words_before(buf, s)?;
        let set = self.sets.get(set_of(&words))?;
        // A loop, not `find`: both ways compared without a branch between.
        let mut found = None;
        for c in set.iter().rev() {
            if c.holds(&words) {
                found = Some(c.outcome);
            }
        }
        found
    }

    /// Remembers `outcome` for the `len` bytes before `buf[s]`, which
    /// alone decided it. Contexts longer than `SPAN` bytes, or shorter
    /// than the four that choose a set, are not kept.
    pub(super) fn put(&mut self, buf: &[u8], s: usize, len: usize, outcome: KeyOutcome) {
        let Some(words) = words_before(buf, s).filter(|_| (4..=SPAN).contains(&len)) else {
            return;
        };
        if self.sets.is_empty() {
            self.sets.resize(SETS, [EMPTY; WAYS]);
        }
        let masks: [u64; 4] = std::array::from_fn(|k| mask(len, k));
        let context = Context {
            words: std::array::from_fn(|k| words[k] & masks[k]),
            masks,
            outcome,
        };
        let set = &mut self.sets[set_of(&words)];
        // The newest first; the oldest, or the same context's stale
        // outcome, makes way.
        let at = set
            .iter()
            .position(|c| c.masks == masks && c.holds(&words))
            .unwrap_or(WAYS - 1);
        set[..=at].rotate_right(1);
        set[0] = context;
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.sets
            .iter()
            .flatten()
            .filter(|c| c.masks != [0; 4])
            .count()
    }
}

impl Context {
    #[inline]
    fn holds(&self, words: &[u64; 4]) -> bool {
        (0..4).fold(0, |diff, k| {
            diff | (words[k] & self.masks[k]) ^ self.words[k]
        }) == 0
    }
}

/// The `SPAN` bytes before `buf[s]` as little-endian words, the last
/// holding the bytes right before `s`; `None` nearer the start.
#[inline]
fn words_before(buf: &[u8], s: usize) -> Option<[u64; 4]> {
    let span = buf.get(s.checked_sub(SPAN)?..s)?;
    Some(std::array::from_fn(|k| {
        u64::from_le_bytes(span[8 * k..8 * k + 8].try_into().expect("eight bytes"))
    }))
}

/// The set of the context whose last four bytes are the top of `words[3]`.
#[inline]
fn set_of(words: &[u64; 4]) -> usize {
    let last = (words[3] >> 32) as u32;
    (last.wrapping_mul(0x9E37_79B1) >> (32 - SETS.ilog2())) as usize
}

/// The bits of word `k` (bytes `8k..8k + 8` of the span) that lie in the
/// last `len` bytes.
fn mask(len: usize, k: usize) -> u64 {
    let first = SPAN - len;
    match first.checked_sub(8 * k) {
        None | Some(0) => u64::MAX,
        Some(skip) if skip >= 8 => 0,
        Some(skip) => u64::MAX << (8 * skip),
    }
}
