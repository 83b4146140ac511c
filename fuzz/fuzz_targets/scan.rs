//! One message through every detector (`detect::scan::MessageScan`), with
//! the detectors compiled as a session compiles them: the example device
//! profile, the shipped rules, default scan limits.
//!
//! Input: 3 header bytes, then the message.
//! - `[0]`: bit 0 redacts evidence; bit 1 also scans the message whole in
//!   one call (`scan_all`), next to the split scan.
//! - `[1..3]`: seed of the chunk split (pieces of 0..=1023 bytes).
//!
//! Checked: nothing panics, and nothing loops or allocates without bound
//! (libFuzzer's `-timeout` and `-rss_limit_mb`); hits come out one per
//! identifier, sorted.
//! Findings are not compared between splits: the percent-decoded view of
//! a message starts where the first escape shows, with a bounded tail of
//! what came before, so where the network cut a message may change what
//! it is allowed to find.

#![no_main]

use leakscope::detect::keys::KeyScanner;
use leakscope::detect::known::KnownValueMatcher;
use leakscope::detect::patterns::PatternScanner;
use leakscope::detect::profile::DeviceProfile;
use leakscope::detect::rules::RuleSet;
use leakscope::detect::scan::{Detectors, Hit, MessageScan, ScanLimits};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

const PROFILE: &str = include_str!("../../detectors/example-profile.toml");

/// Compiled once: building the matchers is the expensive part, and a
/// session builds them once too.
static DETECTORS: LazyLock<[Detectors; 2]> = LazyLock::new(|| [detectors(false), detectors(true)]);

fn detectors(redact: bool) -> Detectors {
    let profile = DeviceProfile::from_toml(PROFILE, "example-profile.toml")
        .expect("the example profile loads");
    let rules = RuleSet::load(&[]).expect("the shipped rules load");
    Detectors {
        known: KnownValueMatcher::new(&profile),
        patterns: PatternScanner::new(&rules),
        keys: KeyScanner::new(&rules),
        limits: ScanLimits::default(),
        redact,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&[flags, s0, s1], message)) = input.split_first_chunk::<3>() else {
        return;
    };
    let redact = flags & 1 != 0;
    let detectors = &DETECTORS[usize::from(redact)];
    let mut scan = MessageScan::new(detectors, vec!["body".to_owned()]);
    let mut state = u32::from_le_bytes([s0, s1, 1, 0]);
    let mut rest = message;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let (piece, tail) = rest.split_at(((state % 1024) as usize).min(rest.len()));
        scan.feed(piece);
        rest = tail;
    }
    check(&scan.finish());
    if flags & 2 != 0 {
        check(&MessageScan::scan_all(detectors, Vec::new(), message));
    }
});

fn check(hits: &[Hit]) {
    for pair in hits.windows(2) {
        assert!(pair[0].identifier < pair[1].identifier, "{hits:?}");
    }
}
