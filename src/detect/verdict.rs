//! Which rules a finding breaks.
//!
//! Phase rules need only the finding; `undeclared-sdk` needs the app's
//! declared SDK list; `over-frequency` needs memory across flows: how often
//! the same identifier went to the same recipient lately. That memory is
//! bounded: per (identifier, recipient) it keeps at most `max + 1`
//! timestamps, and recipients not seen within the window are forgotten.

use super::finding::{Finding, Party, SdkInfo, Violation};
use crate::consent::ConsentPhase;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `--max-rate N/WINDOW`: more than `max` sends of one identifier to one
/// recipient within `window` is over-frequent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyLimit {
    pub max: u32,
    pub window: Duration,
}

impl Default for FrequencyLimit {
    /// 6 per minute: analytics SDKs commonly flush a batch every 15–30 s,
    /// each carrying the device's IDs, so up to 4 a minute is ordinary
    /// batching; more often than every 10 s on average means the value is
    /// being collected continuously. See docs/findings.md.
    fn default() -> Self {
        FrequencyLimit {
            max: 6,
            window: Duration::from_secs(60),
        }
    }
}

impl std::str::FromStr for FrequencyLimit {
    type Err = String;

    /// Parses `N/60s`, `N/5m`, `N/1h`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not a rate; write e.g. 6/60s, 10/5m or 100/1h");
        let (max, window) = text.trim().split_once('/').ok_or_else(bad)?;
        let max: u32 = max.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let split = window.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (amount, unit) = window.split_at(split);
        let amount: u64 = amount.parse().map_err(|_| bad())?;
        let seconds = match unit {
            "s" => amount,
            "m" => amount * 60,
            "h" => amount * 3600,
            _ => return Err(bad()),
        };
        if max == 0 || seconds == 0 {
            return Err(format!(
                "{text:?}: both the count and the window must be above zero"
            ));
        }
        Ok(FrequencyLimit {
            max,
            window: Duration::from_secs(seconds),
        })
    }
}

/// What a finding is judged by besides itself.
pub struct Verdicts {
    declared: Option<Vec<String>>,
    limit: FrequencyLimit,
    recent: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
}

/// Recipients remembered at most; past it, stale ones are forgotten first.
const MAX_TRACKED: usize = 10_000;

impl Verdicts {
    pub fn new(declared: Option<Vec<String>>, limit: FrequencyLimit) -> Verdicts {
        let declared =
            declared.map(|names| names.iter().map(|n| n.trim().to_lowercase()).collect());
        Verdicts {
            declared,
            limit,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Reads a declared-SDK list: one SDK name or vendor per line, `#`
    /// starts a comment, blank lines ignored.
    pub fn read_declared(path: &Path) -> Result<Vec<String>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--declared-sdks {}: {e}", path.display()))?;
        Ok(text
            .lines()
            .map(|line| line.split('#').next().unwrap_or("").trim())
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// The violations of `finding`. `recipient` identifies who got it (the
    /// SDK name, else the host). Data a server handed back breaks no
    /// collection rule.
    pub fn judge(&self, finding: &Finding, recipient: &str, at: Instant) -> Vec<Violation> {
        if !finding.is_outgoing() {
            return Vec::new();
        }
        let mut found = Vec::new();
        match finding.phase {
            ConsentPhase::PreConsent => found.push(Violation::PreConsent),
            ConsentPhase::Refused => found.push(Violation::AfterRefusal),
            ConsentPhase::Consented | ConsentPhase::Background => {}
        }
        if let (Party::Third, Some(sdk)) = (finding.party, &finding.sdk) {
            found.push(Violation::ThirdParty);
            if !self.is_declared(sdk) {
                found.push(Violation::UndeclaredSdk);
            }
        }
        if self.too_often(&finding.identifier, recipient, at) {
            found.push(Violation::OverFrequency);
        }
        found
    }

    /// An SDK is declared when a list entry equals its name or vendor, or
    /// begins its name (`Umeng` declares `Umeng+ Analytics`). Without a list
    /// nothing is undeclared.
    fn is_declared(&self, sdk: &SdkInfo) -> bool {
        let Some(declared) = &self.declared else {
            return true;
        };
        let name = sdk.name.to_lowercase();
        let vendor = sdk.vendor.to_lowercase();
        declared
            .iter()
            .any(|d| *d == name || *d == vendor || name.starts_with(d.as_str()))
    }

    fn too_often(&self, identifier: &str, recipient: &str, at: Instant) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.limit.window;
        if recent.len() >= MAX_TRACKED {
            recent.retain(|_, times| times.back().is_some_and(|t| at.duration_since(*t) < window));
        }
        let times = recent
            .entry((identifier.to_owned(), recipient.to_owned()))
            .or_default();
        while times
            .front()
            .is_some_and(|t| at.duration_since(*t) >= window)
        {
            times.pop_front();
        }
        times.push_back(at);
        let max = self.limit.max as usize;
        if times.len() > max + 1 {
            times.pop_front();
        }
        times.len() > max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Confidence;
    use crate::detect::finding::DetectorKind;

    fn sdk(name: &str, vendor: &str) -> SdkInfo {
        SdkInfo {
            name: name.into(),
            vendor: vendor.into(),
            category: "analytics".into(),
        }
    }

    fn finding(
        phase: ConsentPhase,
        party: Party,
        sdk: Option<SdkInfo>,
        identifier: &str,
        place: &str,
    ) -> Finding {
        Finding {
            ts: time::OffsetDateTime::now_utc(),
            flow_id: 1,
            phase,
            url: "https://h/".into(),
            host: "h".into(),
            method: "POST".into(),
            place: place.into(),
            identifier: identifier.into(),
            encoding: "plain".into(),
            decoded_from: vec![],
            detector: DetectorKind::Profile,
            confidence: Confidence::High,
            party,
            sdk,
            violations: vec![],
            evidence: String::new(),
            value: None,
        }
    }

    #[test]
    fn phase_and_party_rules() {
        let v = Verdicts::new(None, FrequencyLimit::default());
        let now = Instant::now();
        let umeng = Some(sdk("Umeng+ Analytics", "Alibaba (Umeng+)"));
        let f = finding(
            ConsentPhase::PreConsent,
            Party::Third,
            umeng.clone(),
            "imei",
            "body",
        );
        assert_eq!(
            v.judge(&f, "Umeng", now),
            vec![Violation::PreConsent, Violation::ThirdParty]
        );
        let f = finding(ConsentPhase::Refused, Party::First, None, "oaid", "url");
        assert_eq!(
            v.judge(&f, "api.app.com", now),
            vec![Violation::AfterRefusal]
        );
        let f = finding(ConsentPhase::Consented, Party::Third, None, "oaid", "url");
        assert!(
            v.judge(&f, "cdn.x.com", now).is_empty(),
            "an unknown third party is not an SDK violation"
        );
        let f = finding(
            ConsentPhase::PreConsent,
            Party::Third,
            umeng,
            "imei",
            "response-body",
        );
        assert!(
            v.judge(&f, "Umeng", now).is_empty(),
            "data handed back by a server breaks no collection rule"
        );
    }

    #[test]
    fn declared_list_matches_name_vendor_or_prefix() {
        let v = Verdicts::new(
            Some(vec!["umeng".into(), "Tencent".into()]),
            FrequencyLimit::default(),
        );
        let now = Instant::now();
        for declared in [sdk("Umeng+ Analytics", "Alibaba"), sdk("Bugly", "Tencent")] {
            let f = finding(
                ConsentPhase::Consented,
                Party::Third,
                Some(declared.clone()),
                "imei",
                "body",
            );
            assert_eq!(
                v.judge(&f, "x", now),
                vec![Violation::ThirdParty],
                "{declared:?}"
            );
        }
        let f = finding(
            ConsentPhase::Consented,
            Party::Third,
            Some(sdk("AppsFlyer", "AppsFlyer")),
            "adid",
            "body",
        );
        assert_eq!(
            v.judge(&f, "y", now),
            vec![Violation::ThirdParty, Violation::UndeclaredSdk]
        );
    }

    #[test]
    fn frequency_counts_within_the_window_per_recipient() {
        let limit = FrequencyLimit {
            max: 2,
            window: Duration::from_secs(10),
        };
        let v = Verdicts::new(None, limit);
        let t0 = Instant::now();
        let f = finding(ConsentPhase::Consented, Party::First, None, "imei", "body");
        let over =
            |at: Instant, who: &str| v.judge(&f, who, at).contains(&Violation::OverFrequency);
        assert!(!over(t0, "a"));
        assert!(!over(t0 + Duration::from_secs(1), "a"));
        assert!(
            over(t0 + Duration::from_secs(2), "a"),
            "third send within 10 s"
        );
        assert!(
            !over(t0 + Duration::from_secs(2), "b"),
            "another recipient counts apart"
        );
        assert!(
            !over(t0 + Duration::from_secs(30), "a"),
            "the window slid past"
        );
    }

    #[test]
    fn rates_parse_with_clear_errors() {
        assert_eq!(
            "6/60s".parse(),
            Ok(FrequencyLimit {
                max: 6,
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(
            "10/5m".parse::<FrequencyLimit>().unwrap().window,
            Duration::from_secs(300)
        );
        assert!(
            "6 per minute"
                .parse::<FrequencyLimit>()
                .unwrap_err()
                .contains("6/60s")
        );
        assert!("0/60s".parse::<FrequencyLimit>().is_err());
    }
}
