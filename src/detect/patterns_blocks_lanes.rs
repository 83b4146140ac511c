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
    _mm256_permutevar8x32_epi32, _mm256_set1_epi64x, _mm256_setzero_si256, _mm256_sll_epi64,
    _mm256_slli_epi64, _mm256_srlv_epi64, _mm256_storeu_si256, _mm256_testz_si256,
};

use super::lane_needs::{LaneNeeds, LaneVector};
use super::{Group, SLOTS};

/// Groups per vector.
const LANES: usize = 4;

/// One value per lane.
type Lanes = [u64; LANES];

/// What four groups need, lane by lane, and how each lane takes its
/// refused and required maps.
struct Quad {
    /// The slot of the first lane's alphabet; the others follow it.
    alphabets_from: usize,
    needs: LaneNeeds<LANES>,
    refused_maps: Pick,
    required_maps: Pick,
}

/// The groups of a filter, four to a [`Quad`].
pub(super) struct GroupLanes {
    quads: Vec<Quad>,
}

impl GroupLanes {
    /// The lanes for `groups`, four to a quad in their order; `refused`
    /// maps a group's `refused_before` to its slot (`None` for none).
    /// Group `i`'s alphabet must be in slot `i`, as [`super::BlockFilter`]
    /// places them, so that each quad loads its four at once.
    pub fn new(groups: &[Group], refused: impl Fn(usize) -> Option<usize>) -> GroupLanes {
        assert!(
            groups.iter().enumerate().all(|(i, g)| g.alphabet == i) && groups.len() <= SLOTS,
            "the groups' alphabets take the first slots, in order"
        );
        let quads = groups
            .chunks(LANES)
            .enumerate()
            .map(|(q, chunk)| Quad::new(q * LANES, chunk, &refused))
            .collect();
        GroupLanes { quads }
    }

    /// [`super::BlockFilter::rules_at`]: the rules of the groups whose
    /// candidates (`by_group`, as [`GroupLanes::candidates`] leaves them)
    /// hold bit `off`.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub unsafe fn rules_at(&self, by_group: &[u64; SLOTS], off: u32) -> u64 {
        // Bit `off` of each lane moved to its top, where `movemask` reads it.
        let up = _mm_cvtsi32_si128(63 - off as i32);
        let quads = by_group.chunks_exact(LANES).zip(&self.quads);
        quads.fold(0, |rules, (found, quad)| {
            let top = _mm256_sll_epi64(load(found.try_into().expect("four lanes")), up);
            let lanes = _mm256_movemask_pd(_mm256_castsi256_pd(top)) as usize;
            rules | quad.needs.rules_by_lanes[lanes & ((1 << LANES) - 1)]
        })
    }

    /// [`Group::candidates`] of every group, ORed, and group by group in
    /// `by_group`; `escaped` holds the positions that follow a `%XX` escape
    /// and `before` the classes of the byte before the window.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub unsafe fn candidates(
        &self,
        maps: &[u64; SLOTS],
        before: u16,
        escaped: u64,
        by_group: &mut [u64; SLOTS],
    ) -> u64 {
        let before = _mm256_set1_epi64x(i64::from(before));
        let escaped = _mm256_set1_epi64x(escaped as i64);
        let mut found = _mm256_setzero_si256();
        for (q, out) in self.quads.iter().zip(by_group.chunks_exact_mut(LANES)) {
            let quad = q.candidates(maps, before, escaped);
            // SAFETY: `out` is four `u64`, 32 writable bytes; `storeu`
            // needs no alignment.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), quad) };
            found = _mm256_or_si256(found, quad);
        }
        let half = _mm_or_si128(
            _mm256_castsi256_si128(found),
            _mm256_extracti128_si256::<1>(found),
        );
        _mm_cvtsi128_si64(_mm_or_si128(half, _mm_unpackhi_epi64(half, half))) as u64
    }
}

impl Quad {
    fn new(first: usize, groups: &[Group], refused: &impl Fn(usize) -> Option<usize>) -> Quad {
        let refused_slots = std::array::from_fn(|i| refused(groups.get(i)?.refused_before));
        let required_slots = std::array::from_fn(|i| Some(groups.get(i)?.required.as_ref()?.slot));
        Quad {
            alphabets_from: first,
            needs: LaneNeeds::new(groups, refused),
            refused_maps: Pick::new(refused_slots),
            required_maps: Pick::new(required_slots),
        }
    }

    /// The candidates of the quad's four groups, one lane each.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn candidates(&self, maps: &[u64; SLOTS], before: __m256i, escaped: __m256i) -> __m256i {
        // A quad starts at a multiple of four below `SLOTS`: its four
        // slots are there (the last quad's spare lanes are not live).
        let from = self.alphabets_from & (SLOTS - LANES);
        let alphabets = load(maps[from..from + LANES].try_into().expect("four slots"));
        let refused = self.refused_maps.from(maps);
        let required = || self.required_maps.from(maps);
        // SAFETY: this function is compiled for AVX2, which the CPU has
        // wherever it runs.
        unsafe {
            self.needs
                .candidates(alphabets, refused, required, (before, escaped))
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
}

#[target_feature(enable = "avx2")]
fn load(lanes: &Lanes) -> __m256i {
    // SAFETY: `__m256i`'s methods need AVX2, which this function is
    // compiled for.
    unsafe { <__m256i as LaneVector<LANES>>::load(lanes) }
}
