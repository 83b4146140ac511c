//! The pre-pass of [`super::PatternStream`]: one table-driven walk over the
//! bytes that stops only where some rule may start a match, so a rule's
//! regex runs on a handful of candidates instead of over every byte.
//!
//! Each rule the shape analysis describes ([`super::shape`]) gets one bit
//! of a 64-bit mask. At each position the walk ANDs two table entries:
//! rules whose match can start with this byte, and rules whose
//! `boundary_before` does not refuse the byte before (decoded when it ends
//! a `%XX` escape, as [`super::blocked_before`] does). A digit run is then a
//! candidate for the digit rules at its first byte only, a word for the
//! word rules at its start only, and so on. Surviving bits go through a
//! cheap check of the byte where the shortest match would end, then, per
//! rule, the length of its alphabet run, its required byte and finally the
//! regex itself, anchored at the candidate.

use regex::bytes::Regex as BytesRegex;

use super::shape::{ByteSet, shape};
use super::{ByteClass, MAX_MATCH_LEN, escaped_before};

/// What the pre-pass knows about one rule.
struct FastRule {
    /// `\A(?:pattern)`: the rule's regex, anchored at the candidate.
    probe: BytesRegex,
    /// Index of its alphabet in `Prepass::alphabets`.
    alphabet: usize,
    min_len: usize,
    /// Longest match that counts (`MAX_MATCH_LEN` at most).
    max_len: usize,
    /// Bytes the anchored regex is given: every byte a match that counts
    /// can use.
    window: usize,
    /// The rule's `boundary_after` refuses every byte of its alphabet, so a
    /// match must end exactly where its alphabet run ends.
    exact_end: bool,
    /// Index of its required set in `Prepass::required`, and how early it
    /// must occur.
    required: Option<(usize, usize)>,
}

/// One "the byte at `offset` past the start must be in the alphabet"
/// check, for the rules whose shortest match is `offset + 1` bytes.
struct MinCheck {
    offset: usize,
    rules: u64,
    /// Per byte: the rules of this check that the byte allows, plus every
    /// rule not in this check.
    ok: Box<[u64; 256]>,
}

/// The compiled pre-pass over the rules the shape analysis describes.
pub(super) struct Prepass {
    /// Bit `i` of every mask is rule `rules[i]` (an index into the
    /// scanner's rule list).
    pub rules: Vec<usize>,
    fast: Vec<FastRule>,
    start: Box<[u64; 256]>,
    not_before: Box<[u64; 256]>,
    /// Rules that may have this byte second (their alphabet, for rules
    /// whose shortest match is two bytes or more; every byte otherwise).
    second: Box<[u64; 256]>,
    min_checks: Vec<MinCheck>,
    /// Distinct alphabets (bits 0..32 of `class`) and required sets (bits
    /// 32..64), so rules sharing one are measured once per candidate.
    alphabets: Vec<ByteSet>,
    required: Vec<ByteSet>,
    /// Per byte: the alphabets and required sets holding it.
    class: Box<[u64; 256]>,
    /// Per alphabet: the rules using it, and how far a run must be
    /// followed to decide them.
    alphabet_rules: Vec<u64>,
    alphabet_need: Vec<usize>,
}

/// Where the alphabets' runs from one candidate end, and where the
/// required bytes first occur in them.
struct Runs {
    len: [u8; 32],
    first_required: [u8; 32],
}

impl Prepass {
    /// Takes each rule's (pattern, before, after) in scanner order; rules
    /// the analysis cannot describe (and any past the 64th) are left to
    /// the plain search.
    pub fn new<'r>(
        rules: impl Iterator<Item = (&'r str, &'r ByteClass, &'r ByteClass)>,
    ) -> Prepass {
        let mut pre = Prepass {
            rules: Vec::new(),
            fast: Vec::new(),
            start: Box::new([0; 256]),
            not_before: Box::new([0; 256]),
            second: Box::new([0; 256]),
            min_checks: Vec::new(),
            alphabets: Vec::new(),
            required: Vec::new(),
            class: Box::new([0; 256]),
            alphabet_rules: Vec::new(),
            alphabet_need: Vec::new(),
        };
        for (index, (pattern, before, after)) in rules.enumerate() {
            if pre.fast.len() == 64 {
                break;
            }
            let Some(shape) = shape(pattern) else {
                continue;
            };
            let Ok(probe) = BytesRegex::new(&format!(r"\A(?:{pattern})")) else {
                continue;
            };
            let Some(alphabet) = pre.intern(false, shape.alphabet) else {
                continue;
            };
            let required = match shape.required {
                Some(r) => match pre.intern(true, r.set) {
                    Some(i) => Some((i, r.within.min(MAX_MATCH_LEN))),
                    None => continue,
                },
                None => None,
            };
            let bit = 1u64 << pre.fast.len();
            // A rule whose every match is too long never reports.
            if shape.min_len <= MAX_MATCH_LEN {
                for b in 0..=255u8 {
                    if shape.first.contains(b) {
                        pre.start[usize::from(b)] |= bit;
                    }
                }
            }
            for b in 0..=255u8 {
                if !before.contains(b) {
                    pre.not_before[usize::from(b)] |= bit;
                }
            }
            for b in 0..=255u8 {
                if shape.min_len < 2 || shape.alphabet.contains(b) {
                    pre.second[usize::from(b)] |= bit;
                }
            }
            // The bytes where the shortest match ends and at its middle must
            // be in the alphabet: in hex and base64 text this turns away
            // most digit runs before any per-rule work.
            let last = shape.min_len.saturating_sub(1);
            for offset in [last, last / 2] {
                if offset > 1 {
                    pre.add_min_check(offset, bit, &shape.alphabet);
                }
            }
            let max_len = shape.max_len.unwrap_or(usize::MAX).min(MAX_MATCH_LEN);
            let exact_end = (0..=255u8).all(|b| !shape.alphabet.contains(b) || after.contains(b));
            let need = if exact_end {
                max_len + 1
            } else {
                shape.min_len.max(required.map_or(0, |(_, w)| w + 1))
            };
            pre.alphabet_rules[alphabet] |= bit;
            // Nothing past `MAX_MATCH_LEN` bytes is part of a match that counts.
            let need = need.min(MAX_MATCH_LEN + 1);
            pre.alphabet_need[alphabet] = pre.alphabet_need[alphabet].max(need);
            pre.rules.push(index);
            pre.fast.push(FastRule {
                probe,
                alphabet,
                min_len: shape.min_len,
                max_len,
                window: shape
                    .max_len
                    .filter(|m| *m <= MAX_MATCH_LEN)
                    .unwrap_or(MAX_MATCH_LEN + 1),
                exact_end,
                required,
            });
        }
        pre
    }

    /// The index of `set` among the alphabets (or required sets), added
    /// if new; `None` when all 32 slots are taken.
    fn intern(&mut self, required: bool, set: ByteSet) -> Option<usize> {
        let list = if required {
            &mut self.required
        } else {
            &mut self.alphabets
        };
        let i = match list.iter().position(|s| *s == set) {
            Some(i) => i,
            None if list.len() < 32 => {
                list.push(set);
                list.len() - 1
            }
            None => return None,
        };
        let shift = if required { 32 + i } else { i };
        for b in 0..=255u8 {
            if set.contains(b) {
                self.class[usize::from(b)] |= 1 << shift;
            }
        }
        if !required && i == self.alphabet_rules.len() {
            self.alphabet_rules.push(0);
            self.alphabet_need.push(0);
        }
        Some(i)
    }

    fn add_min_check(&mut self, offset: usize, bit: u64, alphabet: &ByteSet) {
        if offset > MAX_MATCH_LEN {
            return;
        }
        let i = match self.min_checks.iter().position(|c| c.offset == offset) {
            Some(i) => i,
            None => {
                self.min_checks.push(MinCheck {
                    offset,
                    rules: 0,
                    ok: Box::new([u64::MAX; 256]),
                });
                self.min_checks.len() - 1
            }
        };
        let check = &mut self.min_checks[i];
        check.rules |= bit;
        for b in 0..=255u8 {
            if !alphabet.contains(b) {
                check.ok[usize::from(b)] &= !bit;
            }
        }
    }

    /// Calls `on(p, mask)` for each position `p` in `from..to` where the
    /// rules in `mask` may start a match. `buf[0]` is the message's first
    /// byte when `from` is 0; otherwise `buf[from - 3..from]` is there.
    pub fn candidates(&self, buf: &[u8], from: usize, to: usize, mut on: impl FnMut(usize, u64)) {
        let to = to.min(buf.len());
        let (start, not_before) = (&*self.start, &*self.not_before);
        // The byte after `p`; past the end of the data, every rule passes
        // here and the length checks decide.
        let second = |p: usize| {
            buf.get(p + 1)
                .map_or(u64::MAX, |b| self.second[usize::from(*b)])
        };
        let mut p = from;
        if p == 0 && p < to {
            self.check(buf, 0, start[usize::from(buf[0])] & second(0), &mut on);
            p = 1;
        }
        while p < to {
            let mut m = start[usize::from(buf[p])] & not_before[usize::from(buf[p - 1])];
            if p >= 3 && buf[p - 3] == b'%' {
                if let Some(b) = escaped_before(buf, p) {
                    m = start[usize::from(buf[p])] & not_before[usize::from(b)];
                }
            }
            if m != 0 {
                m &= second(p);
                if m != 0 {
                    self.check(buf, p, m, &mut on);
                }
            }
            p += 1;
        }
    }

    fn check(&self, buf: &[u8], p: usize, mut m: u64, on: &mut impl FnMut(usize, u64)) {
        for c in &self.min_checks {
            if m & c.rules != 0 {
                m &= match buf.get(p + c.offset) {
                    Some(&b) => c.ok[usize::from(b)],
                    None => !c.rules,
                };
            }
        }
        if m == 0 {
            return;
        }
        let runs = self.runs(buf, p, m);
        let mut ok = 0u64;
        let mut rest = m;
        while rest != 0 {
            let bit = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let f = &self.fast[bit];
            let run = usize::from(runs.len[f.alphabet]);
            let fits = run >= f.min_len
                && (!f.exact_end || run <= f.max_len)
                && f.required.is_none_or(|(r, within)| {
                    let at = usize::from(runs.first_required[r]);
                    at < run && at <= within
                });
            if fits {
                ok |= 1 << bit;
            }
        }
        if ok != 0 {
            on(p, ok);
        }
    }

    /// Follows, in one walk from `p`, the alphabet runs the rules in `m`
    /// need, noting where each required set first occurs.
    fn runs(&self, buf: &[u8], p: usize, m: u64) -> Runs {
        let mut runs = Runs {
            len: [0; 32],
            first_required: [u8::MAX; 32],
        };
        let mut alive = 0u64;
        let mut cap = 0;
        for (a, rules) in self.alphabet_rules.iter().enumerate() {
            if rules & m != 0 {
                alive |= 1 << a;
                cap = cap.max(self.alphabet_need[a]);
            }
        }
        let hi = p.saturating_add(cap).min(buf.len());
        let mut seen = 0u64;
        let mut q = p;
        while q < hi {
            let c = self.class[usize::from(buf[q])];
            let mut found = (c >> 32) & !seen;
            seen |= found;
            while found != 0 {
                runs.first_required[found.trailing_zeros() as usize] = offset(q - p);
                found &= found - 1;
            }
            let mut died = alive & !c;
            alive &= c;
            while died != 0 {
                runs.len[died.trailing_zeros() as usize] = offset(q - p);
                died &= died - 1;
            }
            if alive == 0 {
                return runs;
            }
            q += 1;
        }
        while alive != 0 {
            runs.len[alive.trailing_zeros() as usize] = offset(q - p);
            alive &= alive - 1;
        }
        runs
    }

    /// The end of rule `bit`'s match anchored at `p`, if it has one that
    /// counts (not empty, at most `MAX_MATCH_LEN` bytes).
    pub fn probe(&self, bit: usize, buf: &[u8], p: usize) -> Option<usize> {
        let f = &self.fast[bit];
        let end = p.saturating_add(f.window).min(buf.len());
        let m = f.probe.find(&buf[p..end])?;
        (!m.is_empty() && m.len() <= MAX_MATCH_LEN).then_some(p + m.end())
    }
}

/// Run lengths and offsets are followed at most `MAX_MATCH_LEN + 1` bytes,
/// so they fit a byte; `u8::MAX` stands for "not seen".
fn offset(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX - 1)
}
