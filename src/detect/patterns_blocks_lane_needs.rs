//! The block filter's group tests over vectors of 64-bit lanes, a group
//! each: what each lane needs ([`LaneNeeds`]), the tests themselves
//! ([`LaneNeeds::candidates`]) and the loop over a filter's vectors
//! ([`GroupVectors`]), written once over the operations that the AVX2
//! lanes (four) and the AVX-512 octets (eight) supply ([`LaneVector`],
//! and [`GroupVector`] for how each width takes a lane's maps).

use super::{Group, HALF, LONGER_THAN_HALF, RunShifts, SLOTS};

/// Doubling steps of a reach test: offsets up to `HALF` take five.
pub(super) const STEPS: usize = HALF.ilog2() as usize;

/// The tests of `N` groups, lane by lane; see [`Group`] and
/// [`super::Reach`]. Lanes past the last group are not `live`, and hold
/// zeros elsewhere.
pub(super) struct LaneNeeds<const N: usize> {
    /// All ones in lanes that hold a group.
    pub live: [u64; N],
    /// The refused set's slot, and all ones where the group has one.
    pub refused: [u64; N],
    pub has_refused: [u64; N],
    /// `run_shifts` of the shortest match, one array per step.
    pub shortest: [[u64; N]; 6],
    /// The required set's slot, and all ones where the group has one.
    pub required: [u64; N],
    pub has_required: [u64; N],
    /// Per doubling step `k` of [`super::reaches`], `1 << k` where the
    /// lane's reach takes that step and 0 where it does not.
    pub doubling: [[u64; N]; STEPS],
    /// The reach's last step: its offset, and `run_shifts` for it.
    pub rest: [u64; N],
    pub rest_run: [[u64; N]; 6],
    /// All ones where a run longer than the window's half passes.
    pub beyond: [u64; N],
    /// Steps worth taking: no lane requires, or looks beyond, otherwise.
    pub any_required: bool,
    pub any_beyond: bool,
    pub doubling_used: usize,
    /// The rules of each set of the lanes (bit `i` for lane `i`), so a
    /// candidate's rules take one lookup. Entries past `1 << N` are 0: a
    /// table of 256 for any `N` (at most eight) is indexed by a lane mask
    /// without a bounds check.
    pub rules_by_lanes: Box<[u64; 256]>,
}

impl<const N: usize> LaneNeeds<N> {
    /// `LONGER_THAN_HALF` in every lane.
    pub const LONGER: [[u64; N]; 6] = {
        let mut out = [[0; N]; 6];
        let mut k = 0;
        while k < 6 {
            out[k] = [LONGER_THAN_HALF[k] as u64; N];
            k += 1;
        }
        out
    };

    /// The needs of `groups` (at most `N`); `refused` maps a group's
    /// `refused_before` to its slot (`None` for none).
    pub fn new(groups: &[Group], refused: &impl Fn(usize) -> Option<usize>) -> LaneNeeds<N> {
        assert!(
            groups.len() <= N && N <= 8,
            "at most eight lanes, a group each"
        );
        let lane = |f: &dyn Fn(&Group) -> u64| -> [u64; N] {
            std::array::from_fn(|i| groups.get(i).map_or(0, f))
        };
        let all = |on: bool| if on { u64::MAX } else { 0 };
        let shifts = |f: &dyn Fn(&Group) -> RunShifts| -> [[u64; N]; 6] {
            std::array::from_fn(|k| lane(&|g| u64::from(f(g)[k])))
        };
        let offsets = |g: &Group| g.required.as_ref().map_or(1, |r| r.within + 1);
        // The doubling steps `reaches` takes: `have` while `2 * have <= offsets`.
        let doubling =
            std::array::from_fn(|k| lane(&|g| if 2 << k <= offsets(g) { 1 << k } else { 0 }));
        let have = |g: &Group| 1 << offsets(g).ilog2();
        let rules_by_lanes = Box::new(std::array::from_fn(|lanes| {
            let lane = groups
                .iter()
                .enumerate()
                .filter(|(i, _)| lanes >> i & 1 == 1);
            lane.fold(0, |rules, (_, g)| rules | g.rules)
        }));
        LaneNeeds {
            live: lane(&|_| u64::MAX),
            refused: lane(&|g| refused(g.refused_before).map_or(0, |s| s as u64)),
            has_refused: lane(&|g| all(refused(g.refused_before).is_some())),
            shortest: shifts(&|g| g.shortest),
            required: lane(&|g| g.required.as_ref().map_or(0, |r| r.slot as u64)),
            has_required: lane(&|g| all(g.required.is_some())),
            doubling,
            rest: lane(&|g| (offsets(g) - have(g)) as u64),
            rest_run: shifts(&|g| g.required.as_ref().map_or([0; 6], |r| r.rest)),
            beyond: lane(&|g| all(g.required.as_ref().is_some_and(|r| r.beyond))),
            any_required: groups.iter().any(|g| g.required.is_some()),
            any_beyond: groups
                .iter()
                .any(|g| g.required.as_ref().is_some_and(|r| r.beyond)),
            doubling_used: groups
                .iter()
                .map(|g| offsets(g).ilog2() as usize)
                .max()
                .unwrap_or(0),
            rules_by_lanes,
        }
    }
}

/// The vector operations the group tests take, one lane per group:
/// AVX2's four lanes and AVX-512's eight. The tests below are written
/// once over them.
///
/// # Safety
///
/// Every method runs its width's intrinsics: it may be called only where
/// the CPU has that width's features, from a function compiled for them,
/// into which it is inlined (hence `inline(always)` in each impl).
pub(super) unsafe trait LaneVector<const N: usize>: Copy {
    unsafe fn load(lanes: &[u64; N]) -> Self;
    unsafe fn splat(x: u64) -> Self;
    unsafe fn and(self, other: Self) -> Self;
    unsafe fn or(self, other: Self) -> Self;
    /// The lanes of `self` with those of `mask` cleared.
    unsafe fn clear(self, mask: Self) -> Self;
    /// Each lane shifted right by the count in the same lane of `by`.
    unsafe fn shr_each(self, by: Self) -> Self;
    /// Each lane shifted left by one.
    unsafe fn shl_one(self) -> Self;
    unsafe fn is_zero(self) -> bool;
    unsafe fn store(self, out: &mut [u64; N]);
    /// The lanes ORed together.
    unsafe fn or_lanes(self) -> u64;
    /// Bit `i` set where lane `i` has bit `off` set.
    unsafe fn lanes_with_bit(self, off: u32) -> usize;
}

/// `N` groups of a filter, and how their width takes each lane's maps
/// from a window's.
///
/// # Safety
///
/// As for [`LaneVector`], for [`GroupVector::maps`].
pub(super) unsafe trait GroupVector<const N: usize> {
    type Vector: LaneVector<N>;

    /// The vector of the groups whose needs are `needs`, the first of
    /// which is group `first`.
    fn new(first: usize, needs: LaneNeeds<N>) -> Self;

    fn needs(&self) -> &LaneNeeds<N>;

    /// The lanes' alphabet maps, the maps of their refused sets, and what
    /// gives the maps of their required sets (asked only if some lane has
    /// one), from the window's maps.
    unsafe fn maps(
        &self,
        window: &[u64; SLOTS],
    ) -> (Self::Vector, Self::Vector, impl FnOnce() -> Self::Vector);
}

/// A filter's groups, `N` to a vector `G`.
pub(super) struct GroupVectors<G, const N: usize> {
    vectors: Vec<G>,
}

impl<G: GroupVector<N>, const N: usize> GroupVectors<G, N> {
    /// The vectors for `groups`, in their order; `refused` maps a group's
    /// `refused_before` to its slot (`None` for none). Group `i`'s
    /// alphabet must be in slot `i`, as [`super::BlockFilter`] places
    /// them, so that each vector loads its alphabets at once.
    pub fn new(groups: &[Group], refused: impl Fn(usize) -> Option<usize>) -> Self {
        assert!(
            groups.iter().enumerate().all(|(i, g)| g.alphabet == i) && groups.len() <= SLOTS,
            "the groups' alphabets take the first slots, in order"
        );
        let vectors = (0..)
            .step_by(N)
            .zip(groups.chunks(N))
            .map(|(first, chunk)| G::new(first, LaneNeeds::new(chunk, &refused)))
            .collect();
        GroupVectors { vectors }
    }

    /// [`super::BlockFilter::rules_at`]: the rules of the groups whose
    /// candidates (`by_group`, as [`GroupVectors::candidates`] leaves
    /// them) hold bit `off`.
    ///
    /// # Safety
    ///
    /// As for [`LaneVector`].
    #[inline(always)]
    pub unsafe fn rules_at(&self, by_group: &[u64; SLOTS], off: u32) -> u64 {
        let vectors = by_group.chunks_exact(N).zip(&self.vectors);
        vectors.fold(0, |rules, (found, g)| {
            let found = found.try_into().expect("a vector's lanes");
            // SAFETY: the caller's promise for the vector.
            let lanes = unsafe { G::Vector::load(found).lanes_with_bit(off) };
            rules | g.needs().rules_by_lanes[lanes & 255]
        })
    }

    /// [`super::Group::candidates`] of every group, ORed, and group by
    /// group in `by_group`; `escaped` holds the positions that follow a
    /// `%XX` escape and `before` the classes of the byte before the window.
    ///
    /// # Safety
    ///
    /// As for [`LaneVector`].
    #[inline(always)]
    pub unsafe fn candidates(
        &self,
        window: &[u64; SLOTS],
        before: u16,
        escaped: u64,
        by_group: &mut [u64; SLOTS],
    ) -> u64 {
        // SAFETY (all): the caller's promise for the vector.
        unsafe {
            let before = G::Vector::splat(u64::from(before));
            let escaped = G::Vector::splat(escaped);
            let mut found = G::Vector::splat(0);
            for (g, out) in self.vectors.iter().zip(by_group.chunks_exact_mut(N)) {
                let (alphabets, refused, required) = g.maps(window);
                let c = g
                    .needs()
                    .candidates(alphabets, refused, required, (before, escaped));
                c.store(out.try_into().expect("a vector's lanes"));
                found = found.or(c);
            }
            found.or_lanes()
        }
    }
}

impl<const N: usize> LaneNeeds<N> {
    /// [`super::Group::candidates`] in every lane: `a` holds the lanes'
    /// alphabet maps, `refused` the maps of their refused sets,
    /// `required` gives those of their required sets (asked only if some
    /// lane has one), `before` the classes of the byte before the window
    /// in every lane and `escaped` the positions after a `%XX` escape.
    ///
    /// The steps are the scalar ones without their early exits, made
    /// uniform across lanes: a lane whose group takes fewer steps shifts
    /// by 0 in the rest, which changes nothing (`x & x >> 0 == x`). Lanes
    /// past the last group have their alphabet masked to nothing and
    /// yield nothing.
    ///
    /// # Safety
    ///
    /// As for [`LaneVector`].
    #[inline(always)]
    pub unsafe fn candidates<V: LaneVector<N>>(
        &self,
        a: V,
        refused: V,
        required: impl FnOnce() -> V,
        (before, escaped): (V, V),
    ) -> V {
        // SAFETY (all): the caller's promise for `V`.
        unsafe {
            let a = a.and(V::load(&self.live));
            // A position is refused when the byte before it is in the set:
            // the map moved on by one, with the byte before the window at
            // bit 0.
            let before_bit = before.shr_each(V::load(&self.refused)).and(V::splat(1));
            let refused = refused
                .shl_one()
                .or(before_bit)
                .and(V::load(&self.has_refused));
            let allowed = V::splat(u64::MAX).clear(refused).or(escaped);
            let mut c = a.and(allowed).and(at_least(a, &self.shortest));
            if self.any_required {
                let mut near = self.reaches(a, required());
                if self.any_beyond {
                    let long = at_least(a, &Self::LONGER);
                    near = near.or(long.and(V::load(&self.beyond)));
                }
                // Lanes without a required set keep every position.
                near = near.or(V::splat(u64::MAX).clear(V::load(&self.has_required)));
                c = c.and(near);
            }
            c
        }
    }

    /// [`super::reaches`] in every lane.
    #[inline(always)]
    unsafe fn reaches<V: LaneVector<N>>(&self, a: V, set: V) -> V {
        // SAFETY (all): the caller's promise for `V`.
        unsafe {
            // Lanes without a required set picked any map: masked out.
            let mut hit = set.and(a).and(V::load(&self.has_required));
            // No required byte in any lane's runs: none is within reach.
            if hit.is_zero() {
                return hit;
            }
            let mut run = a;
            for step in &self.doubling[..self.doubling_used] {
                let s = V::load(step);
                hit = hit.or(run.and(hit.shr_each(s)));
                run = run.and(run.shr_each(s));
            }
            let rest = hit.shr_each(V::load(&self.rest));
            hit.or(at_least(a, &self.rest_run).and(rest))
        }
    }
}

/// [`super::at_least`] in every lane, with each lane's own shifts.
#[inline(always)]
unsafe fn at_least<const N: usize, V: LaneVector<N>>(a: V, shifts: &[[u64; N]; 6]) -> V {
    let mut run = a;
    for s in shifts {
        // SAFETY: the caller's promise for `V`.
        run = unsafe { run.and(run.shr_each(V::load(s))) };
    }
    run
}
