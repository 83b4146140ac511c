//! Where a key that names an identifier may start, found without running
//! the introducer regex at every separator.
//!
//! A key names a kind only if an alias is a suffix of the key's letters and
//! digits, lowercased (`device_IMEI` → `deviceimei` ends with `imei`). So
//! [`KeyCandidates`] looks at each byte that can end a key (`"`, `=`, `:`,
//! `>`), walks backwards from it through a trie of the reversed aliases,
//! skipping punctuation, and gives up at the first letter or digit no alias
//! continues with: almost always within a byte or two. Only where an alias
//! fits does it work out where the key's introducer would start (the
//! opening quote, the separator before a form key, the line start, the
//! `<`), and only there does the stream run the regex.
//!
//! The filter never refuses a key that names a kind: where it cannot follow
//! [`key_tokens`](super::key_tokens) cheaply (cased non-ASCII letters, undecodable bytes,
//! URL-encoded form keys) it lets the candidate through, and the regex and
//! [`RuleSet::kind_for_key`] decide as before.

use super::{ByteTrie, EXACT, FOLD_OTHER, FOLD_SKIP, SUFFIX};
use crate::detect::rules::RuleSet;

/// Longest key the introducer regex accepts, in bytes, plus the `\` of an
/// escaped quote.
const MAX_KEY: usize = 97;
/// `Content-Disposition` in bytes, spelt with two `ſ` (U+017F) for `s`.
const MAX_DISPOSITION: usize = 21;

/// How an alias that ends at a trie node may be used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    None,
    /// `exact_keys`: only as the whole key.
    Exact,
    /// `keys`: as the whole key or a suffix of its tokens.
    Suffix,
}

/// The aliases of a rule set, reversed, as a trie over their bytes.
pub(super) struct KeyCandidates {
    trie: ByteTrie,
    /// The CPU has AVX2: key ends are found 32 bytes at a time.
    avx2: bool,
}

impl KeyCandidates {
    pub(super) fn new(rules: &RuleSet) -> KeyCandidates {
        KeyCandidates {
            trie: rules.alias_trie().clone(),
            avx2: crate::detect::cpu::has_avx2(),
        }
    }

    fn end(&self, node: usize) -> End {
        if self.trie.ends_in(node, SUFFIX) {
            End::Suffix
        } else if self.trie.ends_in(node, EXACT) {
            End::Exact
        } else {
            End::None
        }
    }

    /// Appends to `out` every position in `buf` where an introducer whose
    /// key may name a kind could start, for the key ends in `from..`.
    /// Positions are unsorted and may repeat.
    pub(super) fn collect(&self, buf: &[u8], from: usize, out: &mut Vec<usize>) {
        let mut c = from;
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only where the CPU was found to have
            // AVX2 (`has_avx2`).
            c = unsafe { self.collect_by_32(buf, c, out) };
        }
        // Eight bytes at a time: only the bytes that can end a key are
        // looked at.
        while let Some(word) = buf.get(c..c + 8) {
            let mut ends = key_ends(u64::from_le_bytes(word.try_into().unwrap_or_default()));
            while ends != 0 {
                self.candidate(buf, c + (ends.trailing_zeros() / 8) as usize, out);
                ends &= ends - 1;
            }
            c += 8;
        }
        for at in c..buf.len() {
            self.candidate(buf, at, out);
        }
    }

    /// [`Self::collect`] for whole 32-byte blocks from `c`, with AVX2;
    /// returns where the blocks end.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn collect_by_32(&self, buf: &[u8], mut c: usize, out: &mut Vec<usize>) -> usize {
        use std::arch::x86_64::{
            __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
            _mm256_set1_epi8,
        };
        let [quote, equals, colon, angle] = KEY_END_BYTES.map(|b| _mm256_set1_epi8(b as i8));
        let spaces = [b' ', b'\t', b'\r', b'\n'].map(|b| _mm256_set1_epi8(b as i8));
        let load = |bytes: &[u8]| -> __m256i {
            // SAFETY: callers pass 32 readable bytes; `loadu` needs no
            // alignment.
            unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
        };
        while let Some(block) = buf.get(c..c + 32) {
            let v = load(block);
            let others = _mm256_or_si256(_mm256_cmpeq_epi8(v, equals), _mm256_cmpeq_epi8(v, angle));
            let mut ends = _mm256_movemask_epi8(others) as u32;
            let quotes = _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, quote)) as u32;
            // A `:` right after a quote ends a JSON key, not a header name
            // (which holds no quote) nor `Content-Disposition`: nothing
            // to look at.
            let quote_before = quotes << 1 | u32::from(c > 0 && buf[c - 1] == b'"');
            ends |= _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, colon)) as u32 & !quote_before;
            if quotes != 0 {
                // Most quotes open a key or a value, or close a value: only
                // one followed by a `:` or a space may close a JSON key
                // (what `closes_json_key` asks first).
                let follows = match buf.get(c + 1..c + 33) {
                    Some(next) => {
                        let n = load(next);
                        let blank = spaces.iter().fold(_mm256_cmpeq_epi8(n, colon), |m, s| {
                            _mm256_or_si256(m, _mm256_cmpeq_epi8(n, *s))
                        });
                        _mm256_movemask_epi8(blank) as u32
                    }
                    None => u32::MAX,
                };
                ends |= quotes & follows;
            }
            while ends != 0 {
                self.candidate(buf, c + ends.trailing_zeros() as usize, out);
                ends &= ends - 1;
            }
            c += 32;
        }
        c
    }

    /// The starts for a key that may end right before `buf[c]`.
    fn candidate(&self, buf: &[u8], c: usize, out: &mut Vec<usize>) {
        match buf[c] {
            b'"' if closes_json_key(buf, c) && self.may_name(buf, c, QUOTED) => {
                json_starts(buf, c, out);
            }
            // A URL-encoded key is decoded before it is looked up.
            b'=' if self.may_name(buf, c, FORM) || encoded_key(buf, c) => form_starts(buf, c, out),
            b':' => {
                if self.may_name(buf, c, HEADER) {
                    out.extend(line_start(buf, c, MAX_KEY));
                }
                // A multipart part's field name is looked at from its line.
                if content_disposition_before(buf, c) {
                    out.extend(line_start(buf, c, MAX_DISPOSITION));
                }
            }
            b'>' if self.may_name(buf, c, XML) => {
                let lo = c.saturating_sub(MAX_KEY);
                out.extend(buf[lo..c].iter().rposition(|b| *b == b'<').map(|i| lo + i));
            }
            _ => {}
        }
    }

    /// True unless no key of the `syntax` class ending right before
    /// `buf[c]` can name a kind: walks back through the trie over letters
    /// and digits, lowercased, until a byte no such key can hold.
    fn may_name(&self, buf: &[u8], c: usize, syntax: u8) -> bool {
        let lo = c.saturating_sub(MAX_KEY);
        let (mut node, mut i) = (0, c);
        while i > lo {
            i -= 1;
            let b = buf[i];
            if KEY_BYTE[usize::from(b)] & syntax == 0 {
                return false;
            }
            match self.trie.fold(b) {
                FOLD_SKIP => continue,
                FOLD_OTHER => match self.step_non_ascii(buf, lo, i, node) {
                    NonAscii::Skip(first) => {
                        i = first;
                        continue;
                    }
                    NonAscii::Cased => return true,
                    NonAscii::Step(first, next) => (i, node) = (first, next),
                },
                symbol => node = self.trie.step_folded(node, symbol),
            }
            if node == 0 {
                return false;
            }
            let end = self.end(node);
            if end != End::None && starts_token(buf, i, end) {
                return true;
            }
        }
        false
    }
}

/// What [`KeyCandidates::may_name`]'s walk does at a non-ASCII character.
enum NonAscii {
    /// Not a letter or digit (or not UTF-8): a separator, which starts at
    /// the offset.
    Skip(usize),
    /// A cased letter, which lowercasing changes: unsure.
    Cased,
    /// A letter or digit starting at the offset, leading to the node.
    Step(usize, usize),
}

impl KeyCandidates {
    /// The walk's step at the non-ASCII byte `buf[i]`. Only uncased letters
    /// and digits (CJK) are followed through the trie; bytes that are not
    /// valid UTF-8 read as U+FFFD, which separates tokens. Kept out of the
    /// walk's loop, which sees ASCII keys nearly always.
    #[cold]
    #[inline(never)]
    fn step_non_ascii(&self, buf: &[u8], lo: usize, i: usize, mut node: usize) -> NonAscii {
        let Some((first, ch)) = char_ending_at(buf, lo, i) else {
            return NonAscii::Skip(i);
        };
        if !ch.is_alphanumeric() {
            return NonAscii::Skip(first);
        }
        if ch.is_uppercase() || !ch.to_lowercase().eq([ch]) {
            return NonAscii::Cased;
        }
        for b in ch.encode_utf8(&mut [0; 4]).bytes().rev() {
            node = self.trie.step(node, b);
            if node == 0 {
                break;
            }
        }
        NonAscii::Step(first, node)
    }
}

/// True if an alias starting at `buf[i]` may start the key's last tokens
/// (a suffix alias) or the key itself (an exact alias), by the rules of
/// [`key_tokens`](super::key_tokens); true when unsure.
fn starts_token(buf: &[u8], i: usize, end: End) -> bool {
    let Some(&prev) = i.checked_sub(1).and_then(|p| buf.get(p)) else {
        return true;
    };
    // `\u0026` (JSON-escaped `&`) separates form keys.
    if !prev.is_ascii_alphanumeric() || buf[..i].ends_with(b"\\u0026") {
        return true;
    }
    if end == End::Exact {
        return false;
    }
    // camelCase: `deviceImei`, `wifi2Mac`, `IMEIValue`.
    let (c, next) = (buf[i], buf.get(i + 1).copied().unwrap_or(0));
    !next.is_ascii()
        || c.is_ascii_uppercase()
            && (prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || prev.is_ascii_uppercase() && next.is_ascii_lowercase())
}

/// The character whose last byte is `buf[i]` and where it starts; `None`
/// when no valid UTF-8 character ends there. (A valid character ending at
/// `i` starts at the nearest byte that is not a continuation byte, so
/// reading backwards agrees with decoding forwards.)
fn char_ending_at(buf: &[u8], lo: usize, i: usize) -> Option<(usize, char)> {
    let first = (i.saturating_sub(3).max(lo)..=i)
        .rev()
        .find(|&j| buf[j] & 0xC0 != 0x80)?;
    let mut chars = std::str::from_utf8(&buf[first..=i]).ok()?.chars();
    let ch = chars.next()?;
    chars.next().is_none().then_some((first, ch))
}

/// False if the quote at `c` cannot close a JSON key: a key's closing
/// quote is followed by at most 16 spaces or line breaks and a `:`. (True
/// when the data so far ends first.)
fn closes_json_key(buf: &[u8], c: usize) -> bool {
    for &b in buf.iter().skip(c + 1).take(17) {
        match b {
            b':' => return true,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => return false,
        }
    }
    true
}

/// Starts for a JSON key closed by the quote at `c` (`"k":`, or `\"k\":`
/// inside a JSON string): its opening quote, and the `\` before it.
fn json_starts(buf: &[u8], c: usize, out: &mut Vec<usize>) {
    let lo = c.saturating_sub(MAX_KEY + 1);
    if let Some(q) = buf[lo..c].iter().rposition(|b| *b == b'"').map(|i| lo + i) {
        out.push(q);
        if q > 0 && buf[q - 1] == b'\\' {
            out.push(q - 1);
        }
    }
}

/// True if the `:` at `c` may end a `Content-Disposition` header name (in
/// any case; the regex also takes `ſ` for `s`, hence any non-ASCII byte).
fn content_disposition_before(buf: &[u8], c: usize) -> bool {
    let name = &buf[c.saturating_sub(MAX_DISPOSITION)..c];
    // Nearly every `:` ends a JSON key (`"k":`): its last byte settles it.
    // No other character folds to `n`, so that holds for `ſ` spellings too.
    if !name.last().is_some_and(|b| b.eq_ignore_ascii_case(&b'n')) {
        return false;
    }
    let ascii =
        name.len() >= 19 && name[name.len() - 19..].eq_ignore_ascii_case(b"content-disposition");
    ascii || !name.is_ascii()
}

/// True if the form key closed by the `=` at `c` holds a `%` escape.
fn encoded_key(buf: &[u8], c: usize) -> bool {
    buf[c.saturating_sub(MAX_KEY)..c]
        .iter()
        .rev()
        .take_while(|b| KEY_BYTE[usize::from(**b)] & FORM != 0)
        .any(|b| *b == b'%')
}

/// Starts for a form key closed by the `=` at `c`: the separator before it
/// (which may be a multi-byte whitespace character), or the message start.
fn form_starts(buf: &[u8], c: usize, out: &mut Vec<usize>) {
    let lo = c.saturating_sub(MAX_KEY);
    let key = buf[lo..c]
        .iter()
        .rev()
        .take_while(|b| KEY_BYTE[usize::from(**b)] & FORM != 0);
    let r = c - key.count();
    if r == 0 {
        out.push(0);
        return;
    }
    out.push(r - 1);
    if !buf[r - 1].is_ascii() {
        out.extend((r.saturating_sub(3)..r - 1).rev());
    }
}

/// The start of the line holding `buf[c]`, if it is at most `max` bytes
/// before `c`. (The line break before a start `max` bytes back lies one
/// byte further.)
fn line_start(buf: &[u8], c: usize, max: usize) -> Option<usize> {
    let lo = c.saturating_sub(max + 1);
    match buf[lo..c].iter().rposition(|b| *b == b'\n') {
        Some(i) => Some(lo + i + 1),
        None => (c <= max).then_some(0),
    }
}

/// The bytes of `word` (little-endian) that are `"`, `=`, `:` or `>`: the
/// high bit of each such byte set, every other bit clear.
fn key_ends(word: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Exact per-byte zero test: no borrow runs from one byte to the next.
    let zero_bytes = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
    KEY_END_BYTES
        .iter()
        .fold(0, |m, &b| m | zero_bytes(word ^ (ONES * u64::from(b))))
}

/// The bytes that can end a key: where [`KeyCandidates::candidate`] looks.
const KEY_END_BYTES: [u8; 4] = [b'"', b'=', b':', b'>'];

/// The bytes a key may hold, one bit per syntax (the introducer regex's
/// key classes).
const QUOTED: u8 = 1;
const FORM: u8 = 2;
const HEADER: u8 = 4;
const XML: u8 = 8;

static KEY_BYTE: [u8; 256] = key_bytes();

const fn key_bytes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        // A JSON key or a multipart field name: anything but a quote or a
        // line break.
        if !matches!(c, b'"' | b'\r' | b'\n') {
            table[b] |= QUOTED;
        }
        if alnum || matches!(c, b'_' | b'.' | b'[' | b']' | b'%' | b'-') {
            table[b] |= FORM;
        }
        if alnum || matches!(c, b'_' | b'-') {
            table[b] |= HEADER;
        }
        if alnum || matches!(c, b'_' | b'.' | b':' | b'-') {
            table[b] |= XML;
        }
        b += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::KeyCandidates;
    use crate::detect::rules::RuleSet;

    proptest! {
        /// The block scans name the same starts, in the same order, as
        /// looking at every byte, with and without AVX2 (which passes over
        /// quotes that a `:` or a space does not follow, and colons right
        /// after a quote).
        #[test]
        fn collect_looks_at_every_key_end(
            pieces in proptest::collection::vec(prop_oneof![
                proptest::sample::select(vec![
                    "\"imei\":", "\"ts\":", "&mac=", "oaid:", "<idfa>", "\r\nX-Device-Id: ",
                    "\"\"", "a", " ", "\n", "\"imei\" \r\n:", "\"\t",
                ]).prop_map(str::to_string),
                "[a-z_]{1,12}",
                "[ -~]{1,40}",
            ], 0..40),
            from in 0usize..8,
        ) {
            static RULES: std::sync::LazyLock<RuleSet> = std::sync::LazyLock::new(RuleSet::embedded);
            let buf = pieces.concat().into_bytes();
            let from = from.min(buf.len());
            let mut c = KeyCandidates::new(&RULES);
            let mut want = Vec::new();
            (from..buf.len()).for_each(|i| c.candidate(&buf, i, &mut want));
            for avx2 in [false, c.avx2] {
                c.avx2 = avx2;
                let mut got = Vec::new();
                c.collect(&buf, from, &mut got);
                prop_assert_eq!(&got, &want);
            }
        }

        /// The word test marks exactly the bytes that can end a key, also
        /// next to bytes that borrow in a plain zero-byte test (0x00, 0x80,
        /// 0xFF).
        #[test]
        fn key_ends_marks_exactly_the_key_ending_bytes(
            bytes in proptest::array::uniform8(prop_oneof![
                Just(b'"'), Just(b'='), Just(b':'), Just(b'>'), Just(0u8), Just(0x80u8),
                Just(0xFFu8), Just(b'#'), Just(b'<'), any::<u8>(),
            ]),
        ) {
            let want = bytes.iter().enumerate().fold(0u64, |m, (i, b)| {
                if matches!(b, b'"' | b'=' | b':' | b'>') { m | 0x80 << (8 * i) } else { m }
            });
            prop_assert_eq!(super::key_ends(u64::from_le_bytes(bytes)), want);
        }
    }
}
