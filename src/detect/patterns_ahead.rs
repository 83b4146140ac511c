//! The pre-pass's search ahead of a candidate for a byte its rules
//! require (the `@` of an e-mail, the `.` of a coordinate), where the
//! block filter's window cannot show it.

use super::ByteSet;

/// Per required set, what the searches for its bytes found so far: none
/// in `lo[r]..hi[r]`, and one at `hi[r]` if bit `r` of `hit` is set.
/// Candidates come in order, so each byte is looked at at most once per
/// set, and only near candidates.
pub(super) struct Ahead {
    lo: [usize; 32],
    hi: [usize; 32],
    hit: u32,
}

impl Ahead {
    /// Nothing searched yet.
    pub fn new() -> Ahead {
        Ahead {
            lo: [0; 32],
            hi: [0; 32],
            hit: 0,
        }
    }

    /// True if a byte of set `r` (found by `find`) occurs in
    /// `buf[p..reach]`. For each set, `p` must not decrease from one call
    /// to the next within a buffer.
    pub fn occurs(
        &mut self,
        find: &RequiredFinder,
        buf: &[u8],
        r: usize,
        p: usize,
        reach: usize,
    ) -> bool {
        if !(self.lo[r] <= p && p <= self.hi[r]) {
            (self.lo[r], self.hi[r]) = (p, p);
            self.hit &= !(1 << r);
        }
        if self.hit >> r & 1 == 0 && self.hi[r] < reach {
            let from = self.hi[r];
            match find.find(&buf[from..reach]) {
                Some(n) => {
                    self.hi[r] = from + n;
                    self.hit |= 1 << r;
                }
                None => self.hi[r] = reach,
            }
        }
        self.hit >> r & 1 == 1 && self.hi[r] < reach
    }
}

/// Finds the first byte of one required set. Required sets are nearly
/// always a byte or three (`@`/`%`, `.`, `-`/`:`), which `memchr` finds
/// many bytes at a time; larger sets are read byte by byte.
pub(super) enum RequiredFinder {
    One(u8),
    Two(u8, u8),
    Three(u8, u8, u8),
    Bytes(ByteSet),
}

impl RequiredFinder {
    pub fn new(set: ByteSet) -> RequiredFinder {
        let bytes: Vec<u8> = (0..=255u8).filter(|&b| set.contains(b)).collect();
        match bytes[..] {
            [a] => RequiredFinder::One(a),
            [a, b] => RequiredFinder::Two(a, b),
            [a, b, c] => RequiredFinder::Three(a, b, c),
            _ => RequiredFinder::Bytes(set),
        }
    }

    /// The offset of the first byte of the set in `hay`.
    pub fn find(&self, hay: &[u8]) -> Option<usize> {
        match *self {
            RequiredFinder::One(a) => memchr::memchr(a, hay),
            RequiredFinder::Two(a, b) => memchr::memchr2(a, b, hay),
            RequiredFinder::Three(a, b, c) => memchr::memchr3(a, b, c, hay),
            RequiredFinder::Bytes(set) => hay.iter().position(|&b| set.contains(b)),
        }
    }
}

#[cfg(test)]
#[path = "patterns_ahead_tests.rs"]
mod tests;
