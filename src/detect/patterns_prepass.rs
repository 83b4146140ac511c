//! The pre-pass of [`super::PatternStream`]: checks, cheapest first, at
//! the few positions where some rule may start a match, so a rule's regex
//! runs on a handful of candidates instead of over every byte.
//!
//! The positions come from the block filter ([`super::blocks`]), which
//! reads 64 bytes at a time. Each rule the shape analysis describes
//! ([`super::shape`]) gets one bit of a 64-bit mask. The filter hands out
//! each position with the rules of the groups that let it through, and two
//! table entries are ANDed with those: rules whose match can start with
//! this byte, and rules that do not refuse the byte before (decoded when
//! it ends a `%XX` escape, as [`super::blocked_before`] does): the bytes
//! their `boundary_before` refuses, and for rules that need a key, the
//! bytes after which no key is found. Surviving bits go through table
//! lookups of the next [`EARLY`] bytes (each must be in the rule's
//! alphabet while its shortest match goes on). Then the key before the
//! candidate is asked, which turns away most of what is left. Where the
//! filter's window holds the candidate's runs, their lengths and first
//! required bytes are read from its bitmaps;
//! elsewhere the required byte is looked for (once per stretch of text,
//! not per candidate) and the runs are walked. Tables indexed by run length
//! then settle every rule's length test at once. Last comes the regex
//! itself, anchored there.

use regex::bytes::Regex as BytesRegex;

use super::blocks::{BlockFilter, RuleNeeds, Window};
use super::shape::{ByteSet, shape};
use super::{ByteClass, MAX_MATCH_LEN, escaped_before};
use ahead::{Ahead, RequiredFinder};

/// What the pre-pass knows about one rule.
struct FastRule {
    /// Bytes the anchored regex is given: every byte the rule's longest
    /// match can use (unbounded when the shape has no maximum).
    window: usize,
    /// Index of its required set in `Prepass::required`, and how early it
    /// must occur.
    required: Option<(usize, usize)>,
}

/// The compiled pre-pass over the rules the shape analysis describes.
pub(super) struct Prepass {
    /// Bit `i` of every mask is rule `rules[i]` (an index into the
    /// scanner's rule list).
    pub rules: Vec<usize>,
    fast: Vec<FastRule>,
    /// Per rule: `\A(?:pattern)`, its regex anchored at the candidate.
    probes: Vec<BytesRegex>,
    start: Box<[u64; 256]>,
    not_before: Box<[u64; 256]>,
    /// `early[k - 1]`: the rules that may have this byte at offset `k`
    /// (their alphabet, for rules whose shortest match is longer than `k`
    /// bytes; every byte otherwise).
    early: [Box<[u64; 256]>; EARLY],
    /// Rules with a required set.
    needs_required: u64,
    /// Distinct alphabets (bits 0..32 of `class`) and required sets (bits
    /// 32..64), so rules sharing one are measured once per candidate.
    alphabets: Vec<ByteSet>,
    required: Vec<ByteSet>,
    /// Per required set, how to look for its bytes ahead of a candidate.
    required_finders: Vec<RequiredFinder>,
    /// Per byte: the alphabets and required sets holding it.
    class: Box<[u64; 256]>,
    /// Per alphabet: how far a run must be followed to decide its rules.
    alphabet_need: Vec<usize>,
    /// The sets the rules of a mask use, laid out as in `class`: entry
    /// `[k][x]` for byte `k` of the mask being `x`. Candidates carry a few
    /// of the two dozen rules, so their sets are looked up eight rules at
    /// a time rather than every alphabet asked in turn.
    sets_by_rule_byte: Vec<[u64; 256]>,
    /// The length tests, tabled: per alphabet and run length (as
    /// [`Runs::len`] holds it), the rules of that alphabet whose run is
    /// long enough, and short enough where the match must end with the
    /// run (the rule's `boundary_after` refuses its whole alphabet). One
    /// lookup per alphabet settles every rule.
    fits: Vec<[u64; 256]>,
    /// Per required set and offset of its first byte: the rules needing
    /// the set whose reach that offset is within.
    within: Vec<[u64; 256]>,
    /// The (alphabet, required set) pairs rules have, with their rules: a
    /// required byte counts only inside its rule's run.
    pairs: Vec<(usize, usize, u64)>,
    /// Names the positions worth the checks.
    filter: BlockFilter,
    /// Per alphabet and per required set: its bitmap's slot in the
    /// filter's windows, if it has one.
    alphabet_slot: Vec<Option<usize>>,
    required_slot: Vec<Option<usize>>,
}

/// Where the alphabets' runs from one candidate end, and where the
/// required bytes first occur in them.
struct Runs {
    len: [u8; 32],
    first_required: [u8; 32],
}

impl Runs {
    /// No run, no required byte seen.
    const NONE: Runs = Runs {
        len: [0; 32],
        first_required: [u8::MAX; 32],
    };
}

impl Prepass {
    /// Takes each rule's (pattern, refused before, after) in scanner
    /// order, the bytes refused before being those after which the rule
    /// cannot report (see [`super::refused_before`]); rules the analysis
    /// cannot describe (and any past the 64th) are left to the plain
    /// search.
    pub fn new<'r>(rules: impl Iterator<Item = (&'r str, ByteSet, &'r ByteClass)>) -> Prepass {
        let mut pre = Prepass {
            rules: Vec::new(),
            fast: Vec::new(),
            probes: Vec::new(),
            start: Box::new([0; 256]),
            not_before: Box::new([0; 256]),
            early: std::array::from_fn(|_| Box::new([0; 256])),
            needs_required: 0,
            alphabets: Vec::new(),
            required: Vec::new(),
            required_finders: Vec::new(),
            class: Box::new([0; 256]),
            alphabet_need: Vec::new(),
            sets_by_rule_byte: Vec::new(),
            fits: Vec::new(),
            within: Vec::new(),
            pairs: Vec::new(),
            filter: BlockFilter::new(&[]),
            alphabet_slot: Vec::new(),
            required_slot: Vec::new(),
        };
        let mut needs = Vec::new();
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
                needs.push(RuleNeeds {
                    bit,
                    alphabet: shape.alphabet,
                    min_len: shape.min_len,
                    refused_before: before,
                    required: shape.required.map(|r| (r.set, r.within.min(MAX_MATCH_LEN))),
                });
            }
            for b in 0..=255u8 {
                if !before.contains(b) {
                    pre.not_before[usize::from(b)] |= bit;
                }
            }
            for (k, table) in (1..).zip(pre.early.iter_mut()) {
                for b in 0..=255u8 {
                    if shape.min_len <= k || shape.alphabet.contains(b) {
                        table[usize::from(b)] |= bit;
                    }
                }
            }
            let max_len = shape.max_len.unwrap_or(usize::MAX).min(MAX_MATCH_LEN);
            let exact_end = (0..=255u8).all(|b| !shape.alphabet.contains(b) || after.contains(b));
            let need = if exact_end {
                max_len + 1
            } else {
                shape.min_len.max(required.map_or(0, |(_, w)| w + 1))
            };
            let sets = 1 << alphabet | required.map_or(0, |(r, _)| 1 << (32 + r));
            pre.add_sets(pre.fast.len(), sets);
            for (len, rules) in pre.fits[alphabet].iter_mut().enumerate() {
                if len >= shape.min_len && (!exact_end || len <= max_len) {
                    *rules |= bit;
                }
            }
            if let Some((r, within)) = required {
                pre.needs_required |= bit;
                pre.within[r][..=within]
                    .iter_mut()
                    .for_each(|rules| *rules |= bit);
                match pre.pairs.iter_mut().find(|p| (p.0, p.1) == (alphabet, r)) {
                    Some(pair) => pair.2 |= bit,
                    None => pre.pairs.push((alphabet, r, bit)),
                }
            }
            // Nothing past `MAX_MATCH_LEN` bytes is part of a match that counts.
            let need = need.min(MAX_MATCH_LEN + 1);
            pre.alphabet_need[alphabet] = pre.alphabet_need[alphabet].max(need);
            pre.rules.push(index);
            pre.probes.push(probe);
            pre.fast.push(FastRule {
                // The probe must see the whole of the longest match: cut
                // short, it could settle for a shorter one that counts
                // where the real match is too long to count.
                window: shape.max_len.unwrap_or(usize::MAX),
                required,
            });
        }
        pre.filter = BlockFilter::new(&needs);
        pre.alphabet_slot = pre
            .alphabets
            .iter()
            .map(|a| pre.filter.slot_of(a))
            .collect();
        pre.required_slot = pre.required.iter().map(|r| pre.filter.slot_of(r)).collect();
        pre
    }

    /// Notes that rule `i` uses the sets `sets` (laid out as in `class`).
    fn add_sets(&mut self, i: usize, sets: u64) {
        let k = i / 8;
        if k == self.sets_by_rule_byte.len() {
            self.sets_by_rule_byte.push([0; 256]);
        }
        for (x, entry) in self.sets_by_rule_byte[k].iter_mut().enumerate() {
            if x >> (i % 8) & 1 == 1 {
                *entry |= sets;
            }
        }
    }

    /// The alphabets (bits 0..32) and required sets (bits 32..64) the
    /// rules of `m` use.
    fn sets_of(&self, m: u64) -> u64 {
        let bytes = m.to_le_bytes();
        self.sets_by_rule_byte
            .iter()
            .zip(bytes)
            .fold(0, |sets, (table, x)| sets | table[usize::from(x)])
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
        if !required && i == self.alphabet_need.len() {
            self.alphabet_need.push(0);
            self.fits.push([0; 256]);
        }
        if required && i == self.within.len() {
            self.within.push([0; 256]);
            self.required_finders.push(RequiredFinder::new(set));
        }
        Some(i)
    }

    /// Calls `on(p, mask)` for each position `p` in `from..to` where the
    /// rules in `mask` may start a match. `key_allows(p, m)` gives the
    /// rules of `m` the key before `p` allows, judging each rule on its own
    /// (so asking early or late changes only the cost); it is asked only
    /// about positions that pass the cheaper checks. `buf[0]` is the
    /// message's first byte when `from` is 0; otherwise `buf[from - 3..from]`
    /// is there.
    pub fn candidates(
        &self,
        buf: &[u8],
        from: usize,
        to: usize,
        mut key_allows: impl FnMut(usize, u64) -> u64,
        mut on: impl FnMut(usize, u64),
    ) {
        let mut ahead = Ahead::new();
        // The key first: most positions here are digests, ids and numbers
        // under keys that name no kind, so it turns away most of them, and
        // one lookup costs less than measuring the runs, even from the
        // filter's bitmaps. Asked here, not in `check`: two thirds of the
        // positions stop at it, and the call would cost them more.
        let mut checks = |p: usize, m: u64, window: Option<&Window>| {
            let m = key_allows(p, m);
            if m != 0 {
                self.check(buf, p, m, window, &mut ahead, &mut on);
            }
        };
        let to = to.min(buf.len());
        let (start, not_before) = (&*self.start, &*self.not_before);
        // The bytes right after `p`; past the end of the data, every rule
        // passes here and the length checks decide.
        let early = |p: usize, mut m: u64| {
            for (table, b) in self.early.iter().zip(buf.iter().skip(p + 1)) {
                m &= table[usize::from(*b)];
                if m == 0 {
                    break;
                }
            }
            m
        };
        let mut from = from;
        if from == 0 && from < to {
            let m = early(0, start[usize::from(buf[0])]);
            checks(0, m, None);
            from = 1;
        }
        self.filter.positions(buf, from, to, |p, rules, window| {
            let b = usize::from(buf[p]);
            let before = escaped_before(buf, p).unwrap_or(buf[p - 1]);
            let mut m = rules & start[b] & not_before[usize::from(before)];
            if m != 0 {
                m = early(p, m);
                if m != 0 {
                    checks(p, m, window);
                }
            }
        });
    }

    /// The checks after the table lookups and the key, cheapest first;
    /// calls `on` with the rules that pass them all.
    fn check(
        &self,
        buf: &[u8],
        p: usize,
        mut m: u64,
        window: Option<&Window>,
        ahead: &mut Ahead,
        on: &mut impl FnMut(usize, u64),
    ) {
        // Filled in place: built byte by byte, a returned copy would be
        // read back in wide loads the stores cannot forward to, which cost
        // more than the rest of the checks.
        let mut runs = Runs::NONE;
        let mut sets = self.sets_of(m);
        if !window.is_some_and(|w| self.runs_in(w, p, sets, &mut runs)) {
            if m & self.needs_required != 0 {
                let far = self.required_too_far(buf, p, m & self.needs_required, ahead);
                if far != 0 {
                    m &= !far;
                    sets = self.sets_of(m);
                }
            }
            self.runs(buf, p, sets, &mut runs);
        }
        let ok = self.fitting(m, sets, &runs);
        if ok != 0 {
            on(p, ok);
        }
    }

    /// The rules of `m` (whose sets are `sets`) that `runs` has room for:
    /// each rule's alphabet run is long enough (and, where its match must
    /// end with the run, short enough), and its required byte lies inside
    /// the run, within reach.
    fn fitting(&self, m: u64, sets: u64, runs: &Runs) -> u64 {
        let mut ok = 0;
        for a in ones(sets & ALPHABETS) {
            ok |= m & self.fits[a][usize::from(runs.len[a])];
        }
        if ok & self.needs_required == 0 {
            return ok;
        }
        for &(a, r, rules) in &self.pairs {
            if rules & ok == 0 {
                continue;
            }
            let at = runs.first_required[r];
            let inside = if at < runs.len[a] {
                self.within[r][usize::from(at)]
            } else {
                0
            };
            ok &= !rules | inside;
        }
        ok
    }

    /// The rules of `m` whose required byte does not occur within their
    /// reach after `p`.
    fn required_too_far(&self, buf: &[u8], p: usize, m: u64, ahead: &mut Ahead) -> u64 {
        let mut far = 0;
        for bit in ones(m) {
            let Some((r, within)) = self.fast[bit].required else {
                continue;
            };
            let reach = (p + within + 1).min(buf.len());
            if !ahead.occurs(&self.required_finders[r], buf, r, p, reach) {
                far |= 1 << bit;
            }
        }
        far
    }

    /// What [`Prepass::runs`] finds, read from the filter's bitmaps into
    /// `runs` for the alphabets and required sets of `sets`; false (with
    /// `runs` partly written) when a run the rules need goes on past the
    /// window, or a set has no bitmap. Each run is measured as far as its
    /// alphabet's rules need, which decides them as the walk's measure
    /// does.
    fn runs_in(&self, w: &Window, p: usize, sets: u64, runs: &mut Runs) -> bool {
        for a in ones(sets & ALPHABETS) {
            let Some(slot) = self.alphabet_slot[a] else {
                return false;
            };
            let (bits, room) = w.from(slot, p);
            let run = (!bits).trailing_zeros() as usize;
            let need = self.alphabet_need[a];
            if run >= room && need > room {
                return false;
            }
            runs.len[a] = offset(run.min(need));
        }
        // A required byte counts only inside its rule's run, which ends
        // inside the window.
        for r in ones(sets >> 32) {
            let Some(slot) = self.required_slot[r] else {
                return false;
            };
            let (bits, _) = w.from(slot, p);
            runs.first_required[r] = offset(bits.trailing_zeros() as usize);
        }
        true
    }

    /// Follows, in one walk from `p`, the alphabet runs of `sets` (as
    /// [`Prepass::sets_of`] gives them), noting where each required set
    /// first occurs, into `runs`.
    fn runs(&self, buf: &[u8], p: usize, sets: u64, runs: &mut Runs) {
        *runs = Runs::NONE;
        let mut alive = sets & ALPHABETS;
        let cap = ones(alive)
            .map(|a| self.alphabet_need[a])
            .max()
            .unwrap_or(0);
        let hi = p.saturating_add(cap).min(buf.len());
        let mut seen = 0u64;
        let mut q = p;
        while q < hi {
            let c = self.class[usize::from(buf[q])];
            let found = (c >> 32) & !seen;
            seen |= found;
            for r in ones(found) {
                runs.first_required[r] = offset(q - p);
            }
            let died = alive & !c;
            alive &= c;
            for a in ones(died) {
                runs.len[a] = offset(q - p);
            }
            if alive == 0 {
                return;
            }
            q += 1;
        }
        for a in ones(alive) {
            runs.len[a] = offset(q - p);
        }
    }

    /// The end of rule `bit`'s match anchored at `p`, if it has one that
    /// counts (not empty, at most `MAX_MATCH_LEN` bytes).
    pub fn probe(&self, bit: usize, buf: &[u8], p: usize) -> Option<usize> {
        let end = p.saturating_add(self.fast[bit].window).min(buf.len());
        let m = self.probes[bit].find(&buf[p..end])?;
        (!m.is_empty() && m.len() <= MAX_MATCH_LEN).then_some(p + m.end())
    }
}

/// The alphabets' bits of a value laid out as `Prepass::class`.
const ALPHABETS: u64 = u32::MAX as u64;

/// The indices of the set bits of `x`, lowest first: rules of a mask,
/// sets of a class.
pub(super) fn ones(mut x: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (x != 0).then(|| {
            let i = x.trailing_zeros() as usize;
            x &= x - 1;
            i
        })
    })
}

/// Bytes after a candidate looked up in tables before any walk.
const EARLY: usize = 6;

/// Run lengths and offsets are followed at most `MAX_MATCH_LEN + 1` bytes,
/// so they fit a byte; `u8::MAX` stands for "not seen".
fn offset(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX - 1)
}

#[path = "patterns_ahead.rs"]
mod ahead;
