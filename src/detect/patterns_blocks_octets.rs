//! The block filter's group tests eight groups at a time, with AVX-512.
//!
//! The steps of [`LaneNeeds::candidates`], as with AVX2 ([`super::lanes`]),
//! over eight 64-bit lanes instead of four: the embedded rules' groups
//! take one vector where AVX2 takes two. A lane's refused and required
//! maps are picked from the sixteen slots in one instruction
//! (`vpermt2q`), where AVX2 permutes within fours. The property test that
//! holds the AVX2 lanes to the scalar loop holds these too.

use std::arch::x86_64::{
    __m512i, _mm512_and_si512, _mm512_andnot_si512, _mm512_loadu_si512, _mm512_or_si512,
    _mm512_permutex2var_epi64, _mm512_reduce_or_epi64, _mm512_set1_epi64, _mm512_setzero_si512,
    _mm512_slli_epi64, _mm512_srlv_epi64, _mm512_storeu_si512, _mm512_test_epi64_mask,
};

use super::lane_needs::{LaneNeeds, LaneVector};
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
        let pick = |lanes: &Lanes| _mm512_permutex2var_epi64(slots[0], load(lanes), slots[1]);
        let needs = &self.needs;
        // An octet starts at slot 0 or 8: its eight slots are in one
        // vector (the last octet's spare lanes are not live).
        let alphabets = slots[(self.alphabets_from / LANES) & 1];
        let required = || pick(&needs.required);
        // SAFETY: this function is compiled for AVX-512F, which the CPU
        // has wherever it runs.
        unsafe { needs.candidates(alphabets, pick(&needs.refused), required, (before, escaped)) }
    }
}

// SAFETY: each method is one AVX-512F intrinsic, inlined into its caller.
unsafe impl LaneVector<LANES> for __m512i {
    #[inline(always)]
    unsafe fn load(lanes: &Lanes) -> Self {
        // SAFETY: `lanes` is 64 readable bytes; `loadu` needs no alignment.
        unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn splat(x: u64) -> Self {
        unsafe { _mm512_set1_epi64(x as i64) }
    }
    #[inline(always)]
    unsafe fn and(self, other: Self) -> Self {
        unsafe { _mm512_and_si512(self, other) }
    }
    #[inline(always)]
    unsafe fn or(self, other: Self) -> Self {
        unsafe { _mm512_or_si512(self, other) }
    }
    #[inline(always)]
    unsafe fn clear(self, mask: Self) -> Self {
        unsafe { _mm512_andnot_si512(mask, self) }
    }
    #[inline(always)]
    unsafe fn shr_each(self, by: Self) -> Self {
        unsafe { _mm512_srlv_epi64(self, by) }
    }
    #[inline(always)]
    unsafe fn shl_one(self) -> Self {
        unsafe { _mm512_slli_epi64::<1>(self) }
    }
    #[inline(always)]
    unsafe fn is_zero(self) -> bool {
        unsafe { _mm512_test_epi64_mask(self, self) == 0 }
    }
}

#[target_feature(enable = "avx512f")]
fn load(lanes: &Lanes) -> __m512i {
    // SAFETY: `__m512i`'s methods need AVX-512F, which this function is
    // compiled for.
    unsafe { <__m512i as LaneVector<LANES>>::load(lanes) }
}
