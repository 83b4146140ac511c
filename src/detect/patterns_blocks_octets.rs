//! The block filter's group tests eight groups at a time, with AVX-512.
//!
//! The steps of [`super::lanes`], each a 512-bit instruction over eight
//! 64-bit lanes instead of a 256-bit one over four: the embedded rules'
//! groups take one vector where AVX2 takes two. A lane's refused and
//! required maps are picked from the sixteen slots in one instruction
//! (`vpermt2q`), where AVX2 permutes within fours. Lanes past the last
//! group have their alphabet masked to nothing and yield nothing. The
//! property test that holds the AVX2 lanes to the scalar loop holds these
//! too.

use std::arch::x86_64::{
    __m512i, _mm512_and_si512, _mm512_andnot_si512, _mm512_loadu_si512, _mm512_or_si512,
    _mm512_permutex2var_epi64, _mm512_reduce_or_epi64, _mm512_set1_epi64, _mm512_setzero_si512,
    _mm512_slli_epi64, _mm512_srlv_epi64, _mm512_storeu_si512, _mm512_test_epi64_mask,
};

use super::lane_needs::LaneNeeds;
use super::{Group, SLOTS};

/// Groups per vector.
const LANES: usize = 8;

/// One value per lane.
type Lanes = [u64; LANES];

/// What eight groups need, lane by lane. Slots are numbers below
/// [`SLOTS`], which pick a map out of the sixteen.
struct Octet {
    /// The slot of the first lane's alphabet; the others follow it.
    alphabets_from: usize,
    needs: LaneNeeds<LANES>,
}

/// The groups of a filter, eight to an [`Octet`].
pub(super) struct GroupOctets {
    octets: Vec<Octet>,
}

impl GroupOctets {
    /// The octets for `groups`, in their order; `refused` maps a group's
    /// `refused_before` to its slot (`None` for none). Group `i`'s
    /// alphabet must be in slot `i`, as [`super::BlockFilter`] places
    /// them.
    pub fn new(groups: &[Group], refused: impl Fn(usize) -> Option<usize>) -> GroupOctets {
        assert!(
            groups.iter().enumerate().all(|(i, g)| g.alphabet == i) && groups.len() <= SLOTS,
            "the groups' alphabets take the first slots, in order"
        );
        let octets = groups
            .chunks(LANES)
            .enumerate()
            .map(|(k, chunk)| Octet {
                alphabets_from: k * LANES,
                needs: LaneNeeds::new(chunk, &refused),
            })
            .collect();
        GroupOctets { octets }
    }

    /// [`super::BlockFilter::rules_at`]: the rules of the groups whose
    /// candidates (`by_group`, as [`GroupOctets::candidates`] leaves them)
    /// hold bit `off`.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn rules_at(&self, by_group: &[u64; SLOTS], off: u32) -> u64 {
        let bit = _mm512_set1_epi64(1 << off);
        let octets = by_group.chunks_exact(LANES).zip(&self.octets);
        octets.fold(0, |rules, (found, octet)| {
            let lanes = _mm512_test_epi64_mask(load(found.try_into().expect("eight lanes")), bit);
            rules | octet.needs.rules_by_lanes[usize::from(lanes)]
        })
    }

    /// [`super::Group::candidates`] of every group, ORed, and group by
    /// group in `by_group`; `escaped` holds the positions that follow a
    /// `%XX` escape and `before` the classes of the byte before the window.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn candidates(
        &self,
        maps: &[u64; SLOTS],
        before: u16,
        escaped: u64,
        by_group: &mut [u64; SLOTS],
    ) -> u64 {
        let slots = [
            load(maps[..LANES].try_into().expect("eight slots")),
            load(maps[LANES..].try_into().expect("eight slots")),
        ];
        let before = _mm512_set1_epi64(i64::from(before));
        let escaped = _mm512_set1_epi64(escaped as i64);
        let mut found = _mm512_setzero_si512();
        for (octet, out) in self.octets.iter().zip(by_group.chunks_exact_mut(LANES)) {
            let c = octet.candidates(&slots, before, escaped);
            // SAFETY: `out` is eight `u64`, 64 writable bytes; `storeu`
            // needs no alignment.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), c) };
            found = _mm512_or_si512(found, c);
        }
        _mm512_reduce_or_epi64(found) as u64
    }
}

impl Octet {
    /// The candidates of the octet's groups, one lane each; `slots` holds
    /// the sixteen maps, eight to a vector.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn candidates(&self, slots: &[__m512i; 2], before: __m512i, escaped: __m512i) -> __m512i {
        let one = _mm512_set1_epi64(1);
        let pick = |lanes: &Lanes| _mm512_permutex2var_epi64(slots[0], load(lanes), slots[1]);
        // An octet starts at slot 0 or 8: its eight slots are in one
        // vector (the last octet's spare lanes are not live).
        let a = _mm512_and_si512(
            slots[(self.alphabets_from / LANES) & 1],
            load(&self.needs.live),
        );
        // A position is refused when the byte before it is in the set: the
        // map moved on by one, with the byte before the window at bit 0.
        let refused_slot = load(&self.needs.refused);
        let before_bit = _mm512_and_si512(_mm512_srlv_epi64(before, refused_slot), one);
        let refused = _mm512_and_si512(
            _mm512_or_si512(
                _mm512_slli_epi64::<1>(pick(&self.needs.refused)),
                before_bit,
            ),
            load(&self.needs.has_refused),
        );
        let allowed = _mm512_or_si512(_mm512_andnot_si512(refused, all_ones()), escaped);
        let mut c = _mm512_and_si512(a, allowed);
        c = _mm512_and_si512(c, at_least(a, &self.needs.shortest));
        if self.needs.any_required {
            let mut near = self.reaches(a, pick(&self.needs.required));
            if self.needs.any_beyond {
                let long = at_least(a, &LaneNeeds::<LANES>::LONGER);
                near = _mm512_or_si512(near, _mm512_and_si512(long, load(&self.needs.beyond)));
            }
            // Lanes without a required set keep every position.
            near = _mm512_or_si512(
                near,
                _mm512_andnot_si512(load(&self.needs.has_required), all_ones()),
            );
            c = _mm512_and_si512(c, near);
        }
        c
    }

    /// [`super::reaches`] in every lane.
    #[target_feature(enable = "avx512f")]
    fn reaches(&self, a: __m512i, set: __m512i) -> __m512i {
        // Lanes without a required set picked any map: masked out.
        let mut hit = _mm512_and_si512(_mm512_and_si512(set, a), load(&self.needs.has_required));
        // No required byte in any lane's runs: none is within reach.
        if _mm512_test_epi64_mask(hit, hit) == 0 {
            return hit;
        }
        let mut run = a;
        for step in &self.needs.doubling[..self.needs.doubling_used] {
            let s = load(step);
            hit = _mm512_or_si512(hit, _mm512_and_si512(run, _mm512_srlv_epi64(hit, s)));
            run = _mm512_and_si512(run, _mm512_srlv_epi64(run, s));
        }
        let rest = _mm512_srlv_epi64(hit, load(&self.needs.rest));
        _mm512_or_si512(
            hit,
            _mm512_and_si512(at_least(a, &self.needs.rest_run), rest),
        )
    }
}

/// [`super::at_least`] in every lane, with each lane's own shifts.
#[target_feature(enable = "avx512f")]
fn at_least(a: __m512i, shifts: &[Lanes; 6]) -> __m512i {
    // A loop, not a fold: a closure would not get the target feature.
    let mut run = a;
    for s in shifts {
        run = _mm512_and_si512(run, _mm512_srlv_epi64(run, load(s)));
    }
    run
}

#[target_feature(enable = "avx512f")]
fn load(lanes: &Lanes) -> __m512i {
    // SAFETY: `lanes` is 64 readable bytes; `loadu` needs no alignment.
    unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
}

#[target_feature(enable = "avx512f")]
fn all_ones() -> __m512i {
    _mm512_set1_epi64(-1)
}
