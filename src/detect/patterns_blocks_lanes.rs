//! The block filter's group tests four groups at a time, with AVX2.
//!
//! [`Group::candidates`] tests one group with a dozen or more shifts of a
//! 64-bit window, each by a count the group's rules set; for the eleven
//! groups of the embedded rules that cost ~16 instructions per byte. Here
//! each group is a 64-bit lane, and `vpsrlvq` shifts each lane by its own
//! count, so one vector instruction does a step for four groups. The
//! steps are [`LaneNeeds::candidates`], written once for both widths; this
//! module gives them AVX2's vector and picks each lane's maps. A property
//! test holds this path to the scalar one.

use std::arch::x86_64::{
    __m256i, _mm_cvtsi32_si128, _mm_cvtsi128_si64, _mm_or_si128, _mm_unpackhi_epi64,
    _mm256_and_si256, _mm256_andnot_si256, _mm256_castsi256_pd, _mm256_castsi256_si128,
    _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_movemask_pd, _mm256_or_si256,
    _mm256_permutevar8x32_epi32, _mm256_set1_epi64x, _mm256_sll_epi64, _mm256_slli_epi64,
    _mm256_srlv_epi64, _mm256_storeu_si256, _mm256_testz_si256,
};

use super::SLOTS;
use super::lane_needs::{GroupVector, GroupVectors, LaneNeeds, LaneVector};

/// Groups per vector.
const LANES: usize = 4;

/// One value per lane.
type Lanes = [u64; LANES];

/// What four groups need, lane by lane, and how each lane takes its
/// refused and required maps.
pub(super) struct Quad {
    /// The slot of the first lane's alphabet; the others follow it.
    alphabets_from: usize,
    needs: LaneNeeds<LANES>,
    refused_maps: Pick,
    required_maps: Pick,
}

/// The groups of a filter, four to a [`Quad`].
pub(super) type GroupLanes = GroupVectors<Quad, LANES>;

// SAFETY: `maps` runs AVX2 intrinsics only, inlined into its caller.
unsafe impl GroupVector<LANES> for Quad {
    type Vector = __m256i;

    fn new(first: usize, needs: LaneNeeds<LANES>) -> Quad {
        let slot = |has: &Lanes, slot: &Lanes, i: usize| (has[i] != 0).then_some(slot[i] as usize);
        let refused_slots = std::array::from_fn(|i| slot(&needs.has_refused, &needs.refused, i));
        let required_slots = std::array::from_fn(|i| slot(&needs.has_required, &needs.required, i));
        Quad {
            alphabets_from: first,
            needs,
            refused_maps: Pick::new(refused_slots),
            required_maps: Pick::new(required_slots),
        }
    }

    fn needs(&self) -> &LaneNeeds<LANES> {
        &self.needs
    }

    #[inline(always)]
    unsafe fn maps(&self, window: &[u64; SLOTS]) -> (__m256i, __m256i, impl FnOnce() -> __m256i) {
        // A quad starts at a multiple of four below `SLOTS`: its four
        // slots are there (the last quad's spare lanes are not live).
        let from = self.alphabets_from & (SLOTS - LANES);
        let four = window[from..from + LANES].try_into().expect("four slots");
        // SAFETY (all): the caller's promise that the CPU has AVX2.
        unsafe {
            let required = move || self.required_maps.from(window);
            (load(four), self.refused_maps.from(window), required)
        }
    }
}

/// How a quad takes one slot's map per lane. Where the slots lie in one or
/// two aligned vectors of four, a permute of each vector's words does it:
/// on the bench machine's CPU that beats four scalar loads and inserts,
/// and a gather made the pattern detector ~5% slower. The embedded rules'
/// quads take their refused and required sets from one or two vectors.
enum Pick {
    One(Source),
    Two(Source, Source),
    /// Slots spread over more vectors: one load per lane.
    Spread(Lanes),
}

/// The slots `at..at + 4`, the 32-bit words each lane takes from them,
/// and all ones in the lanes they serve.
struct Source {
    at: usize,
    words: [u32; 2 * LANES],
    lanes: Lanes,
}

impl Pick {
    /// The picks of `slots`, one per lane (`None`: the lane needs none,
    /// and gets whatever is cheapest).
    fn new(slots: [Option<usize>; LANES]) -> Pick {
        let mut sources: Vec<Source> = Vec::new();
        for (lane, slot) in slots.iter().enumerate() {
            let Some(slot) = *slot else { continue };
            let (at, word) = (slot / LANES * LANES, (slot % LANES) as u32);
            let i = sources.iter().position(|s| s.at == at).unwrap_or_else(|| {
                sources.push(Source {
                    at,
                    words: [0; 2 * LANES],
                    lanes: [0; LANES],
                });
                sources.len() - 1
            });
            let s = &mut sources[i];
            s.words[2 * lane] = 2 * word;
            s.words[2 * lane + 1] = 2 * word + 1;
            s.lanes[lane] = u64::MAX;
        }
        let mut sources = sources.into_iter();
        match (sources.next(), sources.next(), sources.next()) {
            (None, _, _) => Pick::Spread([0; LANES]),
            // Lanes that need no pick take whatever the one source gives
            // them: no mask.
            (Some(one), None, _) => Pick::One(one),
            (Some(a), Some(b), None) => Pick::Two(a, b),
            _ => Pick::Spread(slots.map(|s| s.unwrap_or(0) as u64)),
        }
    }

    /// The picked maps, one per lane.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn from(&self, maps: &[u64; SLOTS]) -> __m256i {
        match self {
            Pick::One(s) => s.take(maps),
            Pick::Two(a, b) => _mm256_or_si256(
                _mm256_and_si256(a.take(maps), load(&a.lanes)),
                _mm256_and_si256(b.take(maps), load(&b.lanes)),
            ),
            // Slots are below `SLOTS`; the mask says so to the compiler.
            Pick::Spread(slots) => load(&slots.map(|s| maps[s as usize & (SLOTS - 1)])),
        }
    }
}

impl Source {
    /// Each lane's word pair from the source's four slots.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn take(&self, maps: &[u64; SLOTS]) -> __m256i {
        // `at` is a multiple of four below `SLOTS`; the mask says so.
        let at = self.at & (SLOTS - LANES);
        let four = load(maps[at..at + LANES].try_into().expect("four slots"));
        // SAFETY: `words` is 32 readable bytes; `loadu` needs no alignment.
        let words = unsafe { _mm256_loadu_si256(self.words.as_ptr().cast()) };
        _mm256_permutevar8x32_epi32(four, words)
    }
}

// SAFETY: each method is one AVX2 intrinsic, inlined into its caller.
unsafe impl LaneVector<LANES> for __m256i {
    #[inline(always)]
    unsafe fn load(lanes: &Lanes) -> Self {
        // SAFETY: `lanes` is 32 readable bytes; `loadu` needs no alignment.
        unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn splat(x: u64) -> Self {
        unsafe { _mm256_set1_epi64x(x as i64) }
    }
    #[inline(always)]
    unsafe fn and(self, other: Self) -> Self {
        unsafe { _mm256_and_si256(self, other) }
    }
    #[inline(always)]
    unsafe fn or(self, other: Self) -> Self {
        unsafe { _mm256_or_si256(self, other) }
    }
    #[inline(always)]
    unsafe fn clear(self, mask: Self) -> Self {
        unsafe { _mm256_andnot_si256(mask, self) }
    }
    #[inline(always)]
    unsafe fn shr_each(self, by: Self) -> Self {
        unsafe { _mm256_srlv_epi64(self, by) }
    }
    #[inline(always)]
    unsafe fn shl_one(self) -> Self {
        unsafe { _mm256_slli_epi64::<1>(self) }
    }
    #[inline(always)]
    unsafe fn is_zero(self) -> bool {
        unsafe { _mm256_testz_si256(self, self) == 1 }
    }
    #[inline(always)]
    unsafe fn store(self, out: &mut Lanes) {
        // SAFETY: `out` is 32 writable bytes; `storeu` needs no alignment.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), self) }
    }
    #[inline(always)]
    unsafe fn or_lanes(self) -> u64 {
        unsafe {
            let half = _mm_or_si128(
                _mm256_castsi256_si128(self),
                _mm256_extracti128_si256::<1>(self),
            );
            _mm_cvtsi128_si64(_mm_or_si128(half, _mm_unpackhi_epi64(half, half))) as u64
        }
    }
    #[inline(always)]
    unsafe fn lanes_with_bit(self, off: u32) -> usize {
        // Bit `off` of each lane moved to its top, where `movemask` reads it.
        unsafe {
            let top = _mm256_sll_epi64(self, _mm_cvtsi32_si128(63 - off as i32));
            _mm256_movemask_pd(_mm256_castsi256_pd(top)) as usize
        }
    }
}

#[target_feature(enable = "avx2")]
fn load(lanes: &Lanes) -> __m256i {
    // SAFETY: `__m256i`'s methods need AVX2, which this function is
    // compiled for.
    unsafe { <__m256i as LaneVector<LANES>>::load(lanes) }
}
