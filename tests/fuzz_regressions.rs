//! Inputs the fuzz targets (`fuzz/`) found crashing, kept as plain tests
//! so the fix stays fixed. Each replays the input exactly as its target
//! did; the target's doc comment explains the input layout.

use leakscope::detect::keys::KeyScanner;
use leakscope::detect::known::KnownValueMatcher;
use leakscope::detect::patterns::PatternScanner;
use leakscope::detect::profile::DeviceProfile;
use leakscope::detect::rules::RuleSet;
use leakscope::detect::scan::{Detectors, MessageScan, ScanLimits};

/// The detectors as the `scan` target builds them.
fn detectors() -> Detectors {
    let profile = include_str!("../detectors/example-profile.toml");
    let profile = DeviceProfile::from_toml(profile, "example-profile.toml").unwrap();
    let rules = RuleSet::load(&[]).unwrap();
    Detectors {
        known: KnownValueMatcher::new(&profile),
        patterns: PatternScanner::new(&rules),
        keys: KeyScanner::new(&rules),
        limits: ScanLimits::default(),
        redact: false,
    }
}

/// `scan` target: a percent escape whose token search reached the first
/// byte of the kept history looked at the byte before it, which is gone
/// (subtract-with-overflow, then an out-of-bounds index).
#[test]
fn scan_percent_escape_at_the_start_of_the_kept_history() {
    let message: &[u8] = b"154203237518=4901=3f8a2c1be47d9a05 {\"email\":\"tes6.3975,\"mac\":\
        \"02:1a:11:f0:3c:77\",\"aT00OTAx\xb6\xab\xae\x86MDMyMzc1MTg%TQyMDMyMzc1MTg%3D\"}";
    let detectors = detectors();
    let mut scan = MessageScan::new(&detectors, vec!["body".to_owned()]);
    let (first, second) = message.split_at(122);
    scan.feed(first);
    scan.feed(second);
    let hits = scan.finish();
    assert!(
        hits.iter().any(|h| h.identifier == "android_id"),
        "{hits:?}"
    );
}
