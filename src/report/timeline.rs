//! Time buckets for the timeline picture, in bounded memory.
//!
//! Events arrive in file order, which is roughly but not strictly time
//! order, and the session's time span is not known in advance (a crashed
//! session has no end time; an offline scan's flows predate the scan). So
//! the histogram adapts: it has a fixed number of buckets, and when an
//! event falls outside the range they cover, the bucket width doubles and
//! neighbouring buckets merge, which keeps every count exact. Memory is
//! [`BUCKETS`] buckets, whatever the number of events.

/// Buckets kept. Power of two, so that merging pairs halves evenly.
pub const BUCKETS: usize = 512;

/// Width of a bucket before any merge: fine enough for a short session.
const INITIAL_WIDTH_MS: i64 = 250;

/// Finding lanes of the picture, one per violation kind and one for
/// findings without a violation. A finding counts in each lane of its
/// violations.
pub const LANES: [&str; 6] = [
    "pre-consent",
    "after-refusal",
    "third-party",
    "undeclared-sdk",
    "over-frequency",
    "",
];

/// Counts of one time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub flows: u64,
    /// Findings per lane of [`LANES`].
    pub findings: [u64; LANES.len()],
}

impl Bucket {
    fn absorb(&mut self, other: &Bucket) {
        self.flows += other.flows;
        for (mine, theirs) in self.findings.iter_mut().zip(other.findings) {
            *mine += theirs;
        }
    }
}

/// An adaptive histogram of flows and findings over time (Unix ms).
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Start of bucket 0; meaningful once `any` is set.
    origin_ms: i64,
    width_ms: i64,
    buckets: Vec<Bucket>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline {
            origin_ms: 0,
            width_ms: INITIAL_WIDTH_MS,
            buckets: vec![Bucket::default(); BUCKETS],
            first_ms: None,
            last_ms: None,
        }
    }

    /// Counts one flow that started at `at_ms`.
    pub fn add_flow(&mut self, at_ms: i64) {
        let index = self.slot(at_ms);
        self.buckets[index].flows += 1;
    }

    /// Counts one finding made at `at_ms` in the given lanes (indices
    /// into [`LANES`]; out-of-range indices are ignored).
    pub fn add_finding(&mut self, at_ms: i64, lanes: &[usize]) {
        let index = self.slot(at_ms);
        for &lane in lanes {
            if let Some(count) = self.buckets[index].findings.get_mut(lane) {
                *count += 1;
            }
        }
    }

    /// Earliest and latest event time seen, if any.
    pub fn span_ms(&self) -> Option<(i64, i64)> {
        Some((self.first_ms?, self.last_ms?))
    }

    pub fn width_ms(&self) -> i64 {
        self.width_ms
    }

    /// Non-empty buckets with their start time (Unix ms), in time order.
    pub fn buckets(&self) -> impl Iterator<Item = (i64, &Bucket)> {
        let (origin, width) = (self.origin_ms, self.width_ms);
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != Bucket::default())
            .map(move |(i, b)| (origin.saturating_add(width.saturating_mul(i as i64)), b))
    }

    /// The bucket index for `at_ms`, widening the buckets until it fits.
    fn slot(&mut self, at_ms: i64) -> usize {
        if self.first_ms.is_none() {
            // Start a little before the first event, so early stragglers
            // (events logged slightly out of order) need no widening.
            self.origin_ms = at_ms.saturating_sub(self.width_ms * 8);
        }
        self.first_ms = Some(self.first_ms.map_or(at_ms, |f| f.min(at_ms)));
        self.last_ms = Some(self.last_ms.map_or(at_ms, |l| l.max(at_ms)));
        // Each widening doubles the covered range, so 64 rounds cover any
        // i64 distance; the bound only guards against arithmetic surprises.
        for _ in 0..64 {
            let offset = i128::from(at_ms) - i128::from(self.origin_ms);
            let index = offset.div_euclid(i128::from(self.width_ms));
            if (0..BUCKETS as i128).contains(&index) {
                return index as usize;
            }
            if index < 0 {
                self.widen_left();
            } else {
                self.widen_right();
            }
        }
        if at_ms < self.origin_ms {
            0
        } else {
            BUCKETS - 1
        }
    }

    /// Doubles the width keeping the origin: the old buckets fold into the
    /// left half.
    fn widen_right(&mut self) {
        for i in 0..BUCKETS / 2 {
            let mut merged = self.buckets[2 * i];
            merged.absorb(&self.buckets[2 * i + 1]);
            self.buckets[i] = merged;
        }
        self.buckets[BUCKETS / 2..].fill(Bucket::default());
        self.width_ms = self.width_ms.saturating_mul(2);
    }

    /// Doubles the width and moves the origin back: the old buckets fold
    /// into the right half.
    fn widen_left(&mut self) {
        for i in (0..BUCKETS / 2).rev() {
            let mut merged = self.buckets[2 * i];
            merged.absorb(&self.buckets[2 * i + 1]);
            self.buckets[BUCKETS / 2 + i] = merged;
        }
        self.buckets[..BUCKETS / 2].fill(Bucket::default());
        let old_width = self.width_ms;
        self.width_ms = self.width_ms.saturating_mul(2);
        self.origin_ms = self
            .origin_ms
            .saturating_sub(old_width.saturating_mul(BUCKETS as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(t: &Timeline) -> (u64, u64) {
        t.buckets().fold((0, 0), |(f, n), (_, b)| {
            (f + b.flows, n + b.findings.iter().sum::<u64>())
        })
    }

    #[test]
    fn counts_survive_widening_both_ways_and_buckets_stay_bounded() {
        let mut t = Timeline::new();
        let base = 1_700_000_000_000;
        for i in 0..10_000 {
            t.add_flow(base + i * 1_000);
        }
        t.add_finding(base + 5_000, &[0, 2]);
        // An event long before the first widens to the left.
        t.add_flow(base - 86_400_000);
        t.add_finding(base + 3_600_000 * 30, &[5, 99]);
        assert_eq!(totals(&t), (10_001, 3));
        assert_eq!(t.buckets.len(), BUCKETS);
        assert!(t.buckets().count() <= BUCKETS);
        assert_eq!(
            t.span_ms(),
            Some((base - 86_400_000, base + 3_600_000 * 30))
        );
        // Bucket starts are increasing and cover the span.
        let starts: Vec<i64> = t.buckets().map(|(s, _)| s).collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
        assert!(starts[0] <= base - 86_400_000);
        assert!(*starts.last().unwrap() + t.width_ms() > base + 3_600_000 * 30);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let mut t = Timeline::new();
        t.add_flow(0);
        t.add_flow(i64::MAX);
        t.add_flow(i64::MIN);
        assert_eq!(totals(&t).0, 3);
    }

    #[test]
    fn a_short_session_keeps_fine_buckets() {
        let mut t = Timeline::new();
        for i in 0..100 {
            t.add_flow(10_000 + i * 100);
        }
        assert_eq!(t.width_ms(), INITIAL_WIDTH_MS);
        assert_eq!(totals(&t).0, 100);
    }
}
