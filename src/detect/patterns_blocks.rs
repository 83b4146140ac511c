//! The block filter in front of the pre-pass's per-position checks
//! ([`super::prepass`]): it reads the bytes 64 at a time and names the few
//! positions where some rule's shortest match fits at all, so the checks
//! never look at the rest.
//!
//! Per block it builds one bitmap per byte set the rules need (bit `i` set
//! when byte `i` of the block is in the set; see [`Classifier`]). Rules
//! are grouped by alphabet (a group may take in rules of a narrower
//! alphabet, see [`fold::fold_groups`]), and each half block is judged through a
//! 64-bit window that looks 32 bytes on. A position can start a match of a
//! group's rule only where
//!
//! - the alphabet run from it is at least the group's shortest match long
//!   (a digit rule needs 13 digits, an e-mail 6 bytes of its alphabet);
//! - the run holds a byte of the group's required set (the `@` or `%` of an
//!   e-mail, the `.` of a package name) within its reach, when every rule of
//!   the group has one;
//! - the byte before is not one every rule of the group refuses before a
//!   match (digit and hex rules match whole runs, an e-mail starts at a
//!   word's start), unless the position follows a `%XX` escape, whose
//!   decoded byte is what the boundary sees.
//!
//! Each of these is implied by the checks the pre-pass makes anyway, so
//! the filter only ever removes positions where no rule could report: it is
//! a sound over-approximation, held to the plain search by the pre-pass's
//! property test. It hands each position out with the rules of the groups
//! that let it through, and only those: a position an e-mail's group lets
//! through for its `@` is not also measured for every digit rule its bytes
//! fit. Where the window is too short to decide (a shortest match
//! or a required byte more than [`HALF`] bytes on), it keeps the position:
//! a run that long is rare. A rule set needing more than [`SLOTS`] byte
//! sets gets no filter: every position is checked.

use super::shape::ByteSet;
use crate::detect::classify::{BLOCK, Classifier, HALF, RunShifts, SLOTS, at_least, run_shifts};

/// What a rule needs at a position for a match to start there.
#[derive(Debug)]
pub(super) struct RuleNeeds {
    /// The rule's bit in the masks the filter hands out with each position.
    pub bit: u64,
    pub alphabet: ByteSet,
    pub min_len: usize,
    /// Bytes the rule refuses right before a match.
    pub refused_before: ByteSet,
    /// A byte set every match holds at an offset of at most the number.
    pub required: Option<(ByteSet, usize)>,
}

/// The rules of one alphabet, and what every one of them needs (as slots
/// of [`BlockFilter::sets`]).
struct Group {
    /// The bits of the group's rules ([`RuleNeeds::bit`]).
    rules: u64,
    alphabet: usize,
    /// [`run_shifts`] for the group's shortest match (at most `HALF + 1`
    /// bytes, which the window can still see).
    shortest: RunShifts,
    /// Bytes every rule of the group refuses right before a match (or a
    /// subset of them), as an index into [`BlockFilter::refused`];
    /// [`NO_REFUSED`] when there are none.
    refused_before: usize,
    /// The required set every rule of the group has, if one does.
    required: Option<Reach>,
}

/// Where a group's required byte must lie: how it is tested, worked out
/// once.
struct Reach {
    slot: usize,
    /// The farthest offset the window tests (at most `HALF - 1`).
    within: usize,
    /// [`run_shifts`] for the last step of [`reaches`].
    rest: RunShifts,
    /// The byte may lie beyond what the window shows, so a run longer than
    /// its half passes.
    beyond: bool,
}

impl Reach {
    fn new(slot: usize, within: usize) -> Reach {
        let tested = within.min(HALF - 1);
        let offsets = tested + 1;
        let have = 1 << offsets.ilog2();
        Reach {
            slot,
            within: tested,
            rest: run_shifts(offsets - have),
            beyond: within >= HALF,
        }
    }
}

/// Names the positions where a rule may start; see the module docs.
pub(super) struct BlockFilter {
    /// Sorts bytes into `sets`, slot by slot.
    classify: Classifier,
    sets: Vec<ByteSet>,
    groups: Vec<Group>,
    /// The slots some group's `refused_before` tests, each once: groups
    /// share them (digit and hex rules refuse their own runs' bytes).
    refused: Vec<usize>,
    /// More alphabets than slots: every position is a candidate.
    every_position: bool,
    /// The groups' tests four at a time, where the CPU has AVX2 and no
    /// AVX-512.
    #[cfg(target_arch = "x86_64")]
    lanes: Option<lanes::GroupLanes>,
    /// The same eight at a time, where the CPU has AVX-512 (F and BW).
    #[cfg(target_arch = "x86_64")]
    octets: Option<octets::GroupOctets>,
}

impl BlockFilter {
    pub fn new(rules: &[RuleNeeds]) -> BlockFilter {
        let mut f = BlockFilter {
            classify: Classifier::new(),
            sets: Vec::new(),
            groups: Vec::new(),
            refused: Vec::new(),
            every_position: false,
            #[cfg(target_arch = "x86_64")]
            lanes: None,
            #[cfg(target_arch = "x86_64")]
            octets: None,
        };
        // The rules of each alphabet, in order of first appearance.
        let mut members: Vec<(ByteSet, Vec<&RuleNeeds>)> = Vec::new();
        for r in rules {
            match members.iter_mut().find(|(a, _)| *a == r.alphabet) {
                Some((_, rs)) => rs.push(r),
                None => members.push((r.alphabet, vec![r])),
            }
        }
        if members.len() > SLOTS {
            f.every_position = true;
            return f;
        }
        let folded = fold::fold_groups(&mut members);
        // Groups with a required set first, widest reach first: the AVX2
        // lanes take the groups four at a time in this order, so quads
        // without one skip the reach steps altogether. Alphabets get their
        // slots in the same order, so each quad's four are neighbours,
        // loaded as one vector.
        members.sort_by_key(|(_, rs)| std::cmp::Reverse(common_required(rs).map(|(_, w)| w)));
        // Slots go to what the filter cannot do without first: alphabets,
        // then the groups' required sets, then sets the byte before a match
        // must avoid (often one of those, a subset of it), then the other
        // required sets, which only spare the checks a walk.
        for (alphabet, rs) in &members {
            let shortest = rs.iter().map(|r| r.min_len).min().unwrap_or(1);
            // Fewer alphabets than slots, and they come first: each has one.
            let alphabet = f.slot(*alphabet).expect("a slot per alphabet");
            f.groups.push(Group {
                rules: rs.iter().fold(0, |m, r| m | r.bit),
                alphabet,
                // A match is never empty, so its first byte is in the alphabet.
                shortest: run_shifts(shortest.clamp(1, HALF + 1)),
                refused_before: NO_REFUSED,
                required: None,
            });
        }
        // The alphabets folded into wider ones keep a slot, after the
        // groups' (which the lanes load in order): the checks measure
        // their runs from the window, and a refused set may be one.
        for alphabet in folded {
            f.slot(alphabet);
        }
        for (g, (_, rs)) in members.iter().enumerate() {
            f.groups[g].required = common_required(rs)
                .and_then(|(set, within)| Some(Reach::new(f.slot(set)?, within)));
        }
        for (g, (_, rs)) in members.iter().enumerate() {
            let refused = rs.iter().fold(ByteSet([u64::MAX; 4]), |all, r| {
                all.intersect(r.refused_before)
            });
            f.groups[g].refused_before = f.subset_slot(refused).map_or(NO_REFUSED, |x| {
                f.refused.iter().position(|&r| r == x).unwrap_or_else(|| {
                    f.refused.push(x);
                    f.refused.len() - 1
                })
            });
        }
        for r in rules {
            if let Some((set, _)) = r.required {
                f.slot(set);
            }
        }
        #[cfg(target_arch = "x86_64")]
        if f.classify.has_avx512() {
            f.octets = Some(f.vectors());
        } else if crate::detect::cpu::has_avx2() {
            f.lanes = Some(f.vectors());
        }
        f
    }

    /// The groups' tests, `N` groups to a vector.
    #[cfg(target_arch = "x86_64")]
    fn vectors<G: lane_needs::GroupVector<N>, const N: usize>(
        &self,
    ) -> lane_needs::GroupVectors<G, N> {
        lane_needs::GroupVectors::new(&self.groups, |x| self.refused.get(x).copied())
    }

    /// The alphabet of the group a rule's bit was put in, and the bits of
    /// that group's rules.
    #[cfg(test)]
    fn group_of(&self, bit: u64) -> Option<(ByteSet, u64)> {
        let g = self.groups.iter().find(|g| g.rules & bit != 0)?;
        Some((self.sets[g.alphabet], g.rules))
    }

    /// The slot whose bitmap [`Window`] holds for `set`, if one does.
    pub fn slot_of(&self, set: &ByteSet) -> Option<usize> {
        if self.every_position {
            return None;
        }
        self.sets.iter().position(|s| s == set)
    }

    /// The index of `set` among the followed sets, added if new; `None`
    /// when all slots are taken.
    fn slot(&mut self, set: ByteSet) -> Option<usize> {
        if let Some(i) = self.sets.iter().position(|s| *s == set) {
            return Some(i);
        }
        let j = self.classify.add(|b| set.contains(b))?;
        self.sets.push(set);
        Some(j)
    }

    /// A slot for `set`, or for the largest followed set inside it (a
    /// weaker test, but no new bitmap); `None` for the empty set, or when
    /// neither is to be had.
    fn subset_slot(&mut self, set: ByteSet) -> Option<usize> {
        if set == ByteSet::default() {
            return None;
        }
        let inside = self
            .sets
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != ByteSet::default() && s.intersect(set) == **s)
            .max_by_key(|(_, s)| s.count());
        match inside {
            Some((j, _)) => Some(j),
            None => self.slot(set),
        }
    }

    /// Calls `visit(p, rules, window)`, in order, for each position `p` in
    /// `from..to` where some rule may start a match: `rules` holds the bits
    /// ([`RuleNeeds::bit`]) of the rules whose group let `p` through (every
    /// bit when the filter is off), and `window` the bitmaps around `p`
    /// (none when the filter is off). A rule left out of `rules` cannot
    /// start a match at `p`. `from` must be at least 1: the byte before
    /// each position is read.
    pub fn positions(
        &self,
        buf: &[u8],
        from: usize,
        to: usize,
        mut visit: impl FnMut(usize, u64, Option<&Window>),
    ) {
        let to = to.min(buf.len());
        if from >= to {
            return;
        }
        debug_assert!(from >= 1);
        if self.every_position {
            (from..to).for_each(|p| visit(p, u64::MAX, None));
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(octets) = &self.octets {
            // SAFETY: `octets` is built only where the CPU was found to
            // have AVX-512F and BW (`has_avx512`).
            unsafe { self.positions_avx512(octets, buf, from, to, &mut visit) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(lanes) = &self.lanes {
            // SAFETY: `lanes` is built only where the CPU was found to have
            // AVX2 (`has_avx2`).
            unsafe { self.positions_avx2(lanes, buf, from, to, &mut visit) };
            return;
        }
        let maps = |at| self.classify.maps(buf, at);
        let candidates = |maps: &_, before, escaped, by_group: &mut _| {
            self.candidates(maps, before, escaped, by_group)
        };
        let tests = (candidates, |by_group: &_, off| self.rules_at(by_group, off));
        self.walk(buf, (from, to), maps, tests, &mut visit);
    }

    /// [`BlockFilter::positions`] with AVX2: the classification and the
    /// lanes' tests inlined into one loop, without a call per block that
    /// hands over every slot's maps.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn positions_avx2(
        &self,
        lanes: &lanes::GroupLanes,
        buf: &[u8],
        from: usize,
        to: usize,
        visit: &mut impl FnMut(usize, u64, Option<&Window>),
    ) {
        // SAFETY (both): this function runs only where the CPU has AVX2.
        let maps = |at| unsafe { self.classify.maps_avx2(buf, at) };
        let candidates = |maps: &_, before, escaped, by_group: &mut _| unsafe {
            lanes.candidates(maps, before, escaped, by_group)
        };
        let rules_at = |by_group: &_, off| unsafe { lanes.rules_at(by_group, off) };
        self.walk(buf, (from, to), maps, (candidates, rules_at), visit);
    }

    /// [`BlockFilter::positions`] with AVX-512: as with AVX2, the
    /// classification and the groups' tests (eight to a vector) inlined
    /// into one loop.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn positions_avx512(
        &self,
        octets: &octets::GroupOctets,
        buf: &[u8],
        from: usize,
        to: usize,
        visit: &mut impl FnMut(usize, u64, Option<&Window>),
    ) {
        // SAFETY (all): this function runs only where the CPU has AVX-512F
        // and BW.
        let maps = |at| unsafe { self.classify.maps_avx512(buf, at) };
        let candidates = |maps: &_, before, escaped, by_group: &mut _| unsafe {
            octets.candidates(maps, before, escaped, by_group)
        };
        let rules_at = |by_group: &_, off| unsafe { octets.rules_at(by_group, off) };
        self.walk(buf, (from, to), maps, (candidates, rules_at), visit);
    }

    /// The loop of [`BlockFilter::positions`] over `from..to`, with the
    /// block classification `maps`, the groups' test `candidates` and
    /// `rules_at`, which gives the rules of a candidate's groups.
    #[inline(always)]
    fn walk(
        &self,
        buf: &[u8],
        (from, to): (usize, usize),
        maps: impl Fn(usize) -> [u64; SLOTS],
        (candidates, rules_at): (
            impl Fn(&[u64; SLOTS], u16, u64, &mut [u64; SLOTS]) -> u64,
            impl Fn(&[u64; SLOTS], u32) -> u64,
        ),
        visit: &mut impl FnMut(usize, u64, Option<&Window>),
    ) {
        let mut by_group = [0; SLOTS];
        // Positions three bytes after a `%`, where the byte the boundary
        // sees may be an escape's.
        let lo = from.saturating_sub(3);
        let mut escapes = memchr::memchr_iter(b'%', &buf[lo..to])
            .map(|i| lo + i + 3)
            .filter(|&p| p >= from)
            .peekable();
        let mut next = maps(from);
        let mut base = from;
        while base < to {
            let cur = next;
            next = maps(base + BLOCK);
            let mut escaped = 0u64;
            while let Some(&p) = escapes.peek().filter(|&&p| p < base + BLOCK) {
                escaped |= 1 << (p - base);
                escapes.next();
            }
            for half in [0, HALF] {
                let at = base + half;
                if at >= to {
                    break;
                }
                let window = Window {
                    start: at,
                    maps: if half == 0 {
                        cur
                    } else {
                        std::array::from_fn(|j| cur[j] >> HALF | next[j] << HALF)
                    },
                };
                let before = self.classify.classes(buf[at - 1]);
                let mut cand = candidates(&window.maps, before, escaped >> half, &mut by_group);
                cand &= (1 << HALF.min(to - at)) - 1;
                while cand != 0 {
                    let off = cand.trailing_zeros();
                    visit(at + off as usize, rules_at(&by_group, off), Some(&window));
                    cand &= cand - 1;
                }
            }
            base += BLOCK;
        }
    }
}

impl BlockFilter {
    /// The positions of a window's first half where some group's rule may
    /// start, with each group's own in `by_group`; `before` holds the
    /// classes of the byte before the window and `escaped` the positions
    /// that follow a `%XX` escape.
    fn candidates(
        &self,
        maps: &[u64; SLOTS],
        before: u16,
        escaped: u64,
        by_group: &mut [u64; SLOTS],
    ) -> u64 {
        // Positions whose byte before is not in each refused set.
        let mut allowed = [u64::MAX; ALLOWED];
        for (a, &x) in allowed.iter_mut().zip(&self.refused) {
            let refused = maps[x] << 1 | u64::from(before >> x & 1);
            *a = !refused | escaped;
        }
        let mut cand = 0;
        for (g, found) in self.groups.iter().zip(by_group.iter_mut()) {
            *found = g.candidates(maps, &allowed);
            cand |= *found;
        }
        cand
    }

    /// The rules of the groups whose candidates (`by_group`) hold bit
    /// `off`.
    fn rules_at(&self, by_group: &[u64; SLOTS], off: u32) -> u64 {
        self.groups
            .iter()
            .zip(by_group)
            .fold(0, |rules, (g, found)| {
                rules | g.rules & (found >> off & 1).wrapping_neg()
            })
    }
}

/// The followed sets' bitmaps over 64 bytes from `start`, for the checks
/// at a position in its first half.
pub(super) struct Window {
    start: usize,
    maps: [u64; SLOTS],
}

impl Window {
    /// The bits of set `slot` from position `p` on, and how many of them
    /// the window holds (at least `HALF + 1`).
    pub fn from(&self, slot: usize, p: usize) -> (u64, usize) {
        let off = p - self.start;
        (self.maps[slot] >> off, BLOCK - off)
    }
}

impl Group {
    /// Positions of the window's first half where a rule of the group may
    /// start; `allowed` holds, per [`BlockFilter::refused`] set, the
    /// positions its bytes do not precede (or that follow a `%XX`).
    fn candidates(&self, window: &[u64; SLOTS], allowed: &[u64; ALLOWED]) -> u64 {
        // Cheapest and most selective first. Slots are below `SLOTS` and
        // refused indices below `ALLOWED`; the masks say so to the
        // compiler, which then checks no bounds in this hot loop.
        let a = window[self.alphabet & (SLOTS - 1)];
        let mut c = a & allowed[self.refused_before & (ALLOWED - 1)];
        if c == 0 {
            return 0;
        }
        if let Some(reach) = &self.required {
            // No required byte in the window, the usual case, leaves only
            // runs too long for the window to judge.
            let set = window[reach.slot & (SLOTS - 1)];
            let mut near = if set == 0 { 0 } else { reaches(a, set, reach) };
            if reach.beyond {
                near |= at_least(a, &LONGER_THAN_HALF);
            }
            c &= near;
            if c == 0 {
                return 0;
            }
        }
        c & at_least(a, &self.shortest)
    }
}

/// Entries of the per-window `allowed` maps: one per refused set (at most
/// `SLOTS`), and [`NO_REFUSED`], all ones.
const ALLOWED: usize = 2 * SLOTS;
const NO_REFUSED: usize = ALLOWED - 1;

/// The required set every rule of a group shares, with the farthest reach
/// among them; `None` unless all have the same set.
fn common_required(rules: &[&RuleNeeds]) -> Option<(ByteSet, usize)> {
    let (set, _) = rules.first()?.required?;
    let mut reach = 0;
    for r in rules {
        let (s, within) = r.required?;
        if s != set {
            return None;
        }
        reach = reach.max(within);
    }
    Some((set, reach))
}

/// Runs longer than a window's half, which it cannot see to their end.
const LONGER_THAN_HALF: RunShifts = run_shifts(HALF + 1);

/// Bit `p` set when some `q` in `p..=p + reach.within` has bit `q` of
/// `set` and bits `p..=q` of `a`.
fn reaches(a: u64, set: u64, reach: &Reach) -> u64 {
    let offsets = reach.within + 1;
    // `hit` covers offsets `0..have`; `run` is `at_least(a, have)`.
    let (mut hit, mut run, mut have) = (set & a, a, 1);
    while have * 2 <= offsets {
        hit |= run & (hit >> have);
        run &= run >> have;
        have *= 2;
    }
    let rest = offsets - have;
    if rest > 0 {
        // Offsets `0..have` and `rest..rest + have` cover `0..offsets`.
        hit |= at_least(a, &reach.rest) & (hit >> rest);
    }
    hit
}

#[path = "patterns_blocks_fold.rs"]
mod fold;

#[cfg(target_arch = "x86_64")]
#[path = "patterns_blocks_lane_needs.rs"]
mod lane_needs;

#[cfg(target_arch = "x86_64")]
#[path = "patterns_blocks_lanes.rs"]
mod lanes;

#[cfg(target_arch = "x86_64")]
#[path = "patterns_blocks_octets.rs"]
mod octets;

#[cfg(test)]
#[path = "patterns_blocks_tests.rs"]
mod tests;
