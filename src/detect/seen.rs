//! Answers remembered by the bytes that decided them.
//!
//! Traffic repeats its keys: every record of an analytics batch has the
//! same `"request_id":"`, `"sha256":"`, `&ts=` before its values. The
//! pattern detector asks what the key before each candidate value names:
//! a walk back over the quotes, the separator and the key's bytes, and the
//! alias tries, about two hundred instructions, for most candidates. A
//! walk's answer depends only on the bytes it read, so where the same bytes
//! come before a position again, the answer is taken from a
//! [`SeenContexts`]: a few word compares.
//!
//! (The key detector's walk from a key's end stops within a few bytes, at
//! a cost a lookup here does not undercut: measured, it was slower.)

/// Bytes before a position a remembered context may span.
pub(crate) const SPAN: usize = 32;
/// Sets of the table (chosen by the last four bytes before the position),
/// and contexts per set: keys ending alike (`request_id`, `trace_id`)
/// share a set without pushing each other out.
const SETS: usize = 64;
const WAYS: usize = 2;

/// Remembered contexts and their answers; see the module docs.
pub(crate) struct SeenContexts<T> {
    /// Empty until the first context is remembered.
    sets: Vec<[Context<T>; WAYS]>,
}

impl<T> Default for SeenContexts<T> {
    fn default() -> Self {
        SeenContexts { sets: Vec::new() }
    }
}

#[derive(Clone, Copy)]
struct Context<T> {
    /// The `SPAN` bytes before the position as four words, the bytes
    /// outside the context masked to zero, and the masks. No bytes match
    /// a way that holds nothing: its masks are zero and its words not.
    words: [u64; 4],
    masks: [u64; 4],
    answer: T,
}

impl<T: Copy + Default> SeenContexts<T> {
    /// The answer remembered for the bytes before `buf[end]`, if any.
    #[inline]
    pub(crate) fn get(&self, buf: &[u8], end: usize) -> Option<T> {
        let words = words_before(buf, end)?;
        let set = self.sets.get(set_of(&words))?;
        // A loop, not `find`: both ways compared without a branch between.
        let mut found = None;
        for c in set.iter().rev() {
            if c.holds(&words) {
                found = Some(c.answer);
            }
        }
        found
    }

    /// Remembers `answer` for the `len` bytes before `buf[end]`, which
    /// alone decided it. Contexts longer than `SPAN` bytes, or shorter
    /// than the four that choose a set, are not kept.
    pub(crate) fn put(&mut self, buf: &[u8], end: usize, len: usize, answer: T) {
        let Some(words) = words_before(buf, end).filter(|_| (4..=SPAN).contains(&len)) else {
            return;
        };
        if self.sets.is_empty() {
            let empty = Context {
                words: [u64::MAX; 4],
                masks: [0; 4],
                answer: T::default(),
            };
            self.sets.resize(SETS, [empty; WAYS]);
        }
        let masks: [u64; 4] = std::array::from_fn(|k| mask(len, k));
        let context = Context {
            words: std::array::from_fn(|k| words[k] & masks[k]),
            masks,
            answer,
        };
        let set = &mut self.sets[set_of(&words)];
        // The newest first; the oldest, or the same context's stale
        // answer, makes way.
        let at = set
            .iter()
            .position(|c| c.masks == masks && c.holds(&words))
            .unwrap_or(WAYS - 1);
        set[..=at].rotate_right(1);
        set[0] = context;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sets
            .iter()
            .flatten()
            .filter(|c| c.masks != [0; 4])
            .count()
    }
}

impl<T> Context<T> {
    #[inline]
    fn holds(&self, words: &[u64; 4]) -> bool {
        (0..4).fold(0, |diff, k| {
            diff | (words[k] & self.masks[k]) ^ self.words[k]
        }) == 0
    }
}

/// The `SPAN` bytes before `buf[end]` as little-endian words, the last
/// holding the bytes right before `end`; `None` nearer the start.
#[inline]
fn words_before(buf: &[u8], end: usize) -> Option<[u64; 4]> {
    let span = buf.get(end.checked_sub(SPAN)?..end)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A remembered answer holds for the bytes it was remembered for, and
    /// only for them: a byte changed inside the context loses it, one
    /// changed before it does not.
    #[test]
    fn a_context_is_found_again_only_where_its_bytes_are() {
        let first = b"..........................{\"md5\":\"";
        let end = first.len();
        let mut seen = SeenContexts::default();
        seen.put(first, end, 7, 1u8);
        assert_eq!(seen.get(first, end), Some(1));
        let mut elsewhere = b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz,\"md5\":\"".to_vec();
        let end2 = elsewhere.len();
        assert_eq!(seen.get(&elsewhere, end2), Some(1));
        elsewhere[end2 - 8] = b'[';
        assert_eq!(
            seen.get(&elsewhere, end2),
            Some(1),
            "the byte before the context"
        );
        elsewhere[end2 - 5] = b'D';
        assert_eq!(seen.get(&elsewhere, end2), None, "a byte of the key");
        elsewhere[end2 - 5] = b'd';
        elsewhere[end2 - 7] = b'\'';
        assert_eq!(seen.get(&elsewhere, end2), None, "the context's first byte");
        // Too near the start to look back a whole span: not looked up.
        assert_eq!(seen.get(&first[end - 20..], 20), None);
        // The same context again replaces its answer.
        seen.put(first, end, 7, 2);
        assert_eq!(seen.get(first, end), Some(2));
        assert_eq!(seen.len(), 1);
    }

    /// Contexts of every length up to a span are kept and found again, and
    /// a third context choosing a full set pushes the oldest out.
    #[test]
    fn contexts_of_every_length_are_kept_and_the_oldest_goes() {
        let text: Vec<u8> = (0..SPAN as u8 * 2).map(|i| b'a' + i % 26).collect();
        let end = text.len();
        for len in 4..=SPAN {
            let mut seen = SeenContexts::default();
            seen.put(&text, end, len, len);
            assert_eq!(seen.get(&text, end), Some(len));
            let mut other = text.clone();
            other[end - len] ^= 1;
            assert_eq!(seen.get(&other, end), None, "len {len}");
        }
        let mut seen = SeenContexts::default();
        let ends_alike = |first: u8| {
            let mut t = text.clone();
            t[end - 5] = first;
            t
        };
        let (a, b, c) = (ends_alike(b'1'), ends_alike(b'2'), ends_alike(b'3'));
        seen.put(&a, end, 5, 1);
        seen.put(&b, end, 5, 2);
        seen.put(&c, end, 5, 3);
        assert_eq!(seen.get(&a, end), None);
        assert_eq!(seen.get(&b, end), Some(2));
        assert_eq!(seen.get(&c, end), Some(3));
        assert_eq!(seen.len(), 2);
    }
}
