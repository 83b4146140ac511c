//! The TOML loaders a user feeds leakscope: the device profile
//! (`--profile`), identifier rules and the SDK catalogue (`--detectors`).
//! Whatever the text, they must return an error, never panic; text they
//! accept must compile into working detectors.
//!
//! Input: 1 byte choosing the loader, then the file's bytes (lossily made
//! UTF-8, as a file read would fail otherwise).

#![no_main]

use leakscope::detect::keys::KeyScanner;
use leakscope::detect::known::KnownValueMatcher;
use leakscope::detect::patterns::PatternScanner;
use leakscope::detect::profile::DeviceProfile;
use leakscope::detect::rules::RuleSet;
use leakscope::detect::scan::{Detectors, MessageScan, ScanLimits};
use leakscope::detect::sdk::SdkCatalogue;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// The shipped rules, which a profile is always compiled next to.
static SHIPPED: LazyLock<RuleSet> = LazyLock::new(RuleSet::embedded);

/// A message with something for every detector to chew on, so accepted
/// rules and profiles are also run, not only built.
const SAMPLE: &[u8] = br#"GET /t?imei=490154203237518&aid=3f8a2c1be47d9a05 {"email":"a@b.co","lat":39.9088,"lng":116.3975,"mac":"02:1a:11:f0:3c:77"} aW1laT00OTAxNTQyMDMyMzc1MTg%3D"#;

fuzz_target!(|input: &[u8]| {
    let Some((&which, text)) = input.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    match which % 3 {
        0 => {
            if let Ok(profile) = DeviceProfile::from_toml(&text, "fuzz.toml") {
                let _ = profile.values().count();
                run(&profile, &SHIPPED);
            }
        }
        1 => {
            if let Ok(rules) = RuleSet::from_toml(&text, "fuzz.toml") {
                for kind in rules.kinds() {
                    let _ = rules.kind_for_key(&kind.id);
                    let _ = rules.is_placeholder(&kind.id, "0");
                    let _ = rules.accepts_key_value(&kind.id, "490154203237518");
                }
                run(&DeviceProfile::default(), &rules);
            }
        }
        _ => {
            if let Ok(catalogue) = SdkCatalogue::from_toml(&text, "fuzz.toml") {
                for host in ["graph.facebook.com", "a.b.example", ""] {
                    let _ = catalogue.lookup(host, "/v1/track?x=1");
                }
                for sdk in catalogue.iter() {
                    let _ = sdk.info();
                }
            }
        }
    }
});

fn run(profile: &DeviceProfile, rules: &RuleSet) {
    let detectors = Detectors {
        known: KnownValueMatcher::new(profile),
        patterns: PatternScanner::new(rules),
        keys: KeyScanner::new(rules),
        limits: ScanLimits::default(),
        redact: false,
    };
    let _ = MessageScan::scan_all(&detectors, Vec::new(), SAMPLE);
}
