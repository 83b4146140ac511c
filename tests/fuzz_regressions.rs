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

/// `scan` target, input as found: a percent escape whose token search
/// reached the oldest kept byte read the byte before it, which is gone
/// (subtract with overflow; an out-of-bounds index without overflow
/// checks). Found on an earlier revision of the nested decoder, where
/// this input reached the boundary; the sweep below reaches it on today's.
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

/// The boundary behind the input above, swept by hand so it stays covered
/// if the look-back constants change: an escape at the very start of a
/// chunk, its token starting `distance` bytes back after a space, and no
/// other delimiter in the 2 kB before it. At one distance the context
/// search began exactly at the oldest kept byte and read the one before.
#[test]
fn scan_percent_escape_whose_look_back_reaches_the_oldest_kept_byte() {
    let detectors = detectors();
    for distance in 900..1400 {
        let mut first = vec![b'a'; 2000 - distance];
        first.push(b' ');
        first.resize(2001, b'a');
        let mut scan = MessageScan::new(&detectors, Vec::new());
        scan.feed(&first);
        scan.feed(b"%69mei=490154203237518");
        let hits = scan.finish();
        assert!(
            hits.iter().any(|h| h.identifier == "imei"),
            "{distance}: {hits:?}"
        );
    }
}
