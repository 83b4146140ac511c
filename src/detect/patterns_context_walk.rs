//! Finding the key a value is assigned to: a walk back from the value
//! over quotes and spaces, the `:`, `=` or `>` that ends a key, and the
//! key's bytes. Every step reads a byte or two, and [`Reach`] says which,
//! so that an answer can be reused wherever the same bytes come again.

use std::ops::Range;

use super::escaped_before;
use crate::detect::patterns::{KEY_GAP, LOOKBEHIND, MAX_KEY_LEN};
use crate::detect::percent::escape_at;

fn is_key_byte(b: u8) -> bool {
    NEAR_KEY[usize::from(b)] & KEY_BYTE != 0
}

/// What a byte can be next to a key, one bit each: read from a table, as
/// every candidate the key decides walks back over several of them.
static NEAR_KEY: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let key =
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'[' | b']') || c >= 0x80;
        let filler = matches!(c, b' ' | b'\t' | b'"' | b'\'' | b'\\');
        let opens = filler || matches!(c, b'[' | b':' | b'=' | b'>');
        table[b] = if key { KEY_BYTE } else { 0 }
            | if filler { FILLER } else { 0 }
            | if opens { OPENS_VALUE } else { 0 };
        b += 1;
    }
    table
};
const KEY_BYTE: u8 = 1;
const FILLER: u8 = 2;
/// A filler, `[`, or what ends a key: a value after it may have a key.
const OPENS_VALUE: u8 = 4;

/// Length of a quoting/spacing token ending at `buf[..i]` (a quote, space,
/// tab, backslash, `[`, or their URL encodings), or 0. What it read goes
/// into `reach`.
fn filler_before(buf: &[u8], lo: usize, i: usize, value_side: bool, reach: &mut Reach) -> usize {
    if i <= lo {
        reach.bounded = true;
        return 0;
    }
    reach.read(i - 1);
    let b = buf[i - 1];
    if NEAR_KEY[usize::from(b)] & FILLER != 0 || (value_side && b == b'[') {
        return 1;
    }
    if i < lo + 3 {
        reach.bounded = true;
        return 0;
    }
    reach.read(i - 3);
    match escape_at(buf, i - 3) {
        Some(b'"' | b'\'' | b' ') => 3,
        Some(b'[') if value_side => 3,
        _ => 0,
    }
}

/// Where the quoting and spacing tokens ending at `buf[..i]` start
/// ([`filler_before`] over and over).
fn skip_fillers(buf: &[u8], lo: usize, mut i: usize, value_side: bool, reach: &mut Reach) -> usize {
    loop {
        match filler_before(buf, lo, i, value_side, reach) {
            0 => return i,
            n => i -= n,
        }
    }
}

/// What a walk back from a value read: the lowest index, and whether it
/// stopped at a bound (the start of what it may look at, or the longest
/// key) rather than at a byte. Unless it did, its answer depends on
/// `buf[low..s]` alone, and is the same wherever those bytes come again.
pub(super) struct Reach {
    pub(super) low: usize,
    pub(super) bounded: bool,
}

impl Reach {
    /// Nothing read yet by a walk back from `s`.
    fn at(s: usize) -> Reach {
        Reach {
            low: s,
            bounded: false,
        }
    }

    fn read(&mut self, i: usize) {
        self.low = self.low.min(i);
    }

    /// How many bytes before `s` decided the walk, if bytes alone did.
    pub(super) fn decided_by(&self, s: usize) -> Option<usize> {
        (!self.bounded).then(|| s - self.low)
    }
}

/// True if the value at `buf[s]` is the first element of an array: only
/// quotes and spaces (plain or URL-encoded) lie between it and a `[`.
pub(super) fn opens_array(buf: &[u8], s: usize) -> bool {
    let lo = s.saturating_sub(LOOKBEHIND);
    let i = skip_fillers(buf, lo, s, false, &mut Reach::at(s));
    i > lo && (buf[i - 1] == b'[' || escaped_before(buf, i) == Some(b'['))
}

/// The key the value starting at `buf[s]` is assigned to: the token before
/// `=`/`:` (plain or URL-encoded), or the element name of `<key>value`,
/// skipping quotes and spaces, ending at most `KEY_GAP` bytes before `s`.
pub(super) fn nearest_key(buf: &[u8], s: usize) -> Option<&[u8]> {
    key_and_reach(buf, s).0.map(|k| &buf[k])
}

/// True if the value at `buf[s]` has no key because it does not start a
/// token: the byte before is no quote, space or `[`, no `:`, `=` or `>`,
/// and ends no `%XX` escape. Most of the pre-pass's candidates are such,
/// inside paths, base64 runs and user agents; [`nearest_key`] says the
/// same after its first steps.
#[inline]
pub(super) fn inside_token(buf: &[u8], s: usize) -> bool {
    s >= 3 && !opens_value(buf[s - 1]) && buf[s - 3] != b'%'
}

/// True if a value right after `b` may have a key: `b` is a quote, a
/// space, a `[`, or what ends a key (`:`, `=`, `>`).
pub(super) fn opens_value(b: u8) -> bool {
    NEAR_KEY[usize::from(b)] & OPENS_VALUE != 0
}

/// [`nearest_key`] as a range of `buf`, with what the walk read.
pub(super) fn key_and_reach(buf: &[u8], s: usize) -> (Option<Range<usize>>, Reach) {
    let mut reach = Reach::at(s);
    let key = walk_to_key(buf, s, &mut reach);
    (key, reach)
}

fn walk_to_key(buf: &[u8], s: usize, reach: &mut Reach) -> Option<Range<usize>> {
    let lo = s.saturating_sub(LOOKBEHIND);
    let mut i = skip_fillers(buf, lo, s, true, reach);
    if i <= lo {
        reach.bounded = true;
        return None;
    }
    reach.read(i - 1);
    match buf[i - 1] {
        b':' | b'=' => i -= 1,
        b'>' => {
            let gt = i - 1;
            let Some(lt) = buf[lo..gt].iter().rposition(|b| *b == b'<') else {
                reach.bounded = true;
                return None;
            };
            let lt = lt + lo;
            reach.read(lt);
            let tag = lt + 1..gt;
            let ok = !tag.is_empty()
                && tag.len() <= MAX_KEY_LEN
                && buf[tag.clone()].iter().all(|b| is_key_byte(*b))
                && s - gt <= KEY_GAP;
            return ok.then_some(tag);
        }
        _ if i < lo + 3 => {
            reach.bounded = true;
            return None;
        }
        _ => {
            // `%3A` or `%3D`.
            reach.read(i - 3);
            if !matches!(escaped_before(buf, i), Some(b':' | b'=')) {
                return None;
            }
            i -= 3;
        }
    }
    let key_end = skip_fillers(buf, lo, i, false, reach);
    // One bound, not two tested per byte: the walk is most of the cost of
    // finding a key.
    let stop = lo.max(key_end.saturating_sub(MAX_KEY_LEN));
    let mut i = match buf[stop..key_end].iter().rposition(|&b| !is_key_byte(b)) {
        Some(j) => stop + j + 1,
        None => {
            reach.bounded = true;
            stop
        }
    };
    reach.read(i.saturating_sub(1));
    // `%22gaid`: the token swallowed the hex digits of an escaped quote.
    if i > lo && key_end - i > 2 && escape_at(buf, i - 1).is_some() {
        i += 2;
    }
    (i < key_end && s - key_end <= KEY_GAP).then_some(i..key_end)
}
