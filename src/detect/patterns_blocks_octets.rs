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
    _mm512_permutex2var_epi64, _mm512_reduce_or_epi64, _mm512_set1_epi64, _mm512_slli_epi64,
    _mm512_srlv_epi64, _mm512_storeu_si512, _mm512_test_epi64_mask,
};

use super::SLOTS;
use super::lane_needs::{GroupVector, GroupVectors, LaneNeeds, LaneVector};

/// Groups per vector.
const LANES: usize = 8;

/// One value per lane.
type Lanes = [u64; LANES];

/// What eight groups need, lane by lane. Slots are numbers below
/// [`SLOTS`], which pick a map out of the sixteen.
pub(super) struct Octet {
    /// The slot of the first lane's alphabet; the others follow it.
    alphabets_from: usize,
    needs: LaneNeeds<LANES>,
}

/// The groups of a filter, eight to an [`Octet`].
pub(super) type GroupOctets = GroupVectors<Octet, LANES>;

// SAFETY: `maps` runs AVX-512F intrinsics only, inlined into its caller.
unsafe impl GroupVector<LANES> for Octet {
    type Vector = __m512i;

    fn new(first: usize, needs: LaneNeeds<LANES>) -> Octet {
        Octet {
            alphabets_from: first,
            needs,
        }
    }

    fn needs(&self) -> &LaneNeeds<LANES> {
        &self.needs
    }

    #[inline(always)]
    unsafe fn maps(&self, window: &[u64; SLOTS]) -> (__m512i, __m512i, impl FnOnce() -> __m512i) {
        let eight = |from: usize| window[from..from + LANES].try_into().expect("eight slots");
        // SAFETY (all): the caller's promise that the CPU has AVX-512F.
        unsafe {
            let slots = [load(eight(0)), load(eight(LANES))];
            let pick =
                move |lanes: &Lanes| _mm512_permutex2var_epi64(slots[0], load(lanes), slots[1]);
            // An octet starts at slot 0 or 8: its eight slots are in one
            // vector (the last octet's spare lanes are not live).
            let alphabets = slots[(self.alphabets_from / LANES) & 1];
            let required = move || pick(&self.needs.required);
            (alphabets, pick(&self.needs.refused), required)
        }
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
    #[inline(always)]
    unsafe fn store(self, out: &mut Lanes) {
        // SAFETY: `out` is 64 writable bytes; `storeu` needs no alignment.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), self) }
    }
    #[inline(always)]
    unsafe fn or_lanes(self) -> u64 {
        unsafe { _mm512_reduce_or_epi64(self) as u64 }
    }
    #[inline(always)]
    unsafe fn lanes_with_bit(self, off: u32) -> usize {
        unsafe { usize::from(_mm512_test_epi64_mask(self, _mm512_set1_epi64(1 << off))) }
    }
}

#[target_feature(enable = "avx512f")]
fn load(lanes: &Lanes) -> __m512i {
    // SAFETY: `__m512i`'s methods need AVX-512F, which this function is
    // compiled for.
    unsafe { <__m512i as LaneVector<LANES>>::load(lanes) }
}
