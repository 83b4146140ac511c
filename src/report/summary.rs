//! Aggregation: from flow, finding and HAR records to the report's tables.
//!
//! Records are fed one at a time ([`Aggregator::add_flow`],
//! [`Aggregator::add_finding`], [`Aggregator::add_har_entry`]) and only
//! bounded structures are kept: verdict rows keyed by (identifier,
//! recipient, phase) with at most [`EXAMPLES`] flow ids each, one row per
//! SDK, at most [`MAX_TLS_HOSTS`] refused-TLS hosts, the timeline's fixed
//! buckets, and at most [`MAX_DETAILS`] findings for the detail section.
//! Anything past a bound is counted, never silently lost.

use super::read::{FindingLine, FlowLine, HarEntryLine, SdkRef};
use super::timeline::{LANES, Timeline};
use crate::sinks::session_info::SessionInfo;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;

/// Flow ids kept per verdict row.
pub const EXAMPLES: usize = 5;
/// Distinct refused-TLS hosts listed; more are counted in the last row.
pub const MAX_TLS_HOSTS: usize = 1000;
/// Findings shown in detail.
pub const MAX_DETAILS: usize = 500;
/// Verdict rows kept. Identifiers × recipients × phases is small for any
/// real app; the bound protects against traffic to endless random hosts.
pub const MAX_ROWS: usize = 20_000;
/// SDK rows kept (the catalogue has a few hundred).
pub const MAX_SDKS: usize = 2_000;
/// Distinct values kept in a row's small lists (encodings, places, ...).
const MAX_LIST: usize = 16;
/// Hosts listed per SDK.
const MAX_SDK_HOSTS: usize = 20;
/// Identifiers listed per SDK.
const MAX_SDK_IDENTIFIERS: usize = 64;
/// Characters of evidence and URL kept for the detail section.
const MAX_EVIDENCE_CHARS: usize = 600;
const MAX_URL_CHARS: usize = 400;

/// The contents of `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Version of leakscope that wrote this summary.
    pub leakscope_version: String,
    pub session: SessionOut,
    pub counts: Counts,
    /// Violating rows first: more violation kinds first, then more
    /// findings, then phase order, identifier and recipient.
    pub verdicts: Vec<VerdictRow>,
    /// SDKs that received identifiers or were contacted (see `contacts`).
    pub sdks: Vec<SdkRow>,
    /// Hosts whose TLS handshake the app refused, most refusals first.
    pub tls_refused: Vec<TlsRefusedRow>,
    /// Lines of flows.jsonl and findings.jsonl skipped as unreadable.
    pub malformed_lines: u64,
    /// Caveats a reader must know (skipped lines, missing HAR, caps hit).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionOut {
    /// Version of leakscope that recorded the session.
    pub leakscope_version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// `null` when the session did not end cleanly.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended: Option<OffsetDateTime>,
    pub mode: String,
    pub device_model: Option<String>,
    pub app: Option<String>,
    pub source: Option<String>,
    pub phases: Vec<PhaseOut>,
}

/// One phase period: from `since` until the next switch (or the end).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseOut {
    pub phase: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// Flows that started in this period.
    pub flows: u64,
    /// Findings made in this period.
    pub findings: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub flows: u64,
    pub findings: u64,
    /// Findings carrying each violation (a finding may carry several).
    pub violations_by_kind: BTreeMap<String, u64>,
    pub findings_with_violations: u64,
    /// Flows the app refused to complete a TLS handshake on.
    pub tls_refused: u64,
    /// Findings not in `verdicts` because the row cap was reached.
    pub findings_outside_verdicts: u64,
}

/// One verdict: an identifier that reached a recipient in a phase.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictRow {
    pub identifier: String,
    /// The SDK's name when the catalogue knows the host, else the host.
    pub recipient: String,
    /// Hosts the findings went to (at most 16).
    pub hosts: Vec<String>,
    pub party: String,
    pub sdk: Option<SdkRef>,
    pub phase: String,
    pub count: u64,
    /// Of `count`, findings in data a server sent back (`response-body`,
    /// `ws-response`): the recipient had it already, nothing was sent.
    pub incoming: u64,
    pub violations: Vec<String>,
    pub encodings: Vec<String>,
    /// Where in the messages (`url`, `header:<name>`, `body`, ...).
    pub places: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// The first flow ids in file order (at most [`EXAMPLES`]).
    pub flow_ids: Vec<u64>,
}

/// A third-party SDK and what it received.
#[derive(Debug, Clone, Serialize)]
pub struct SdkRow {
    pub name: String,
    pub vendor: String,
    pub category: String,
    pub hosts: Vec<String>,
    pub identifiers: Vec<String>,
    /// Findings whose recipient is this SDK.
    pub findings: u64,
    /// HAR entries attributed to this SDK; `null` when no HAR was read.
    pub contacts: Option<u64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_contact: Option<OffsetDateTime>,
    pub phases: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsRefusedRow {
    /// The SNI (or CONNECT target); `(other hosts)` sums hosts past the cap.
    pub host: String,
    pub count: u64,
    /// The first alert the TLS stack reported for this host.
    pub alert: Option<String>,
}

/// Everything the HTML needs besides the summary.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub summary: Summary,
    pub timeline: Timeline,
    /// Findings to show in detail: violating ones first, then file order.
    pub details: Vec<FindingLine>,
    /// Findings not shown in detail.
    pub details_omitted: u64,
}

type RowKey = (String, String, String);

#[derive(Debug)]
struct RowAcc {
    hosts: BTreeSet<String>,
    party: String,
    sdk: Option<SdkRef>,
    count: u64,
    incoming: u64,
    violations: BTreeSet<String>,
    encodings: BTreeSet<String>,
    places: BTreeSet<String>,
    first_seen: OffsetDateTime,
    last_seen: OffsetDateTime,
    flow_ids: Vec<u64>,
}

#[derive(Debug, Default)]
struct SdkAcc {
    hosts: BTreeSet<String>,
    identifiers: BTreeSet<String>,
    findings: u64,
    contacts: u64,
    first_contact: Option<OffsetDateTime>,
    phases: BTreeSet<String>,
}

/// Accumulates one session; see the module docs for the bounds.
pub struct Aggregator {
    session: SessionInfo,
    /// Phase switches in time order: which period a time falls in.
    phases: Vec<PhaseOut>,
    counts: Counts,
    rows: HashMap<RowKey, RowAcc>,
    sdks: BTreeMap<SdkRef, SdkAcc>,
    sdks_dropped: u64,
    har_read: bool,
    tls: HashMap<String, (u64, Option<String>)>,
    tls_other: u64,
    timeline: Timeline,
    violating: Vec<FindingLine>,
    other: Vec<FindingLine>,
}

impl Aggregator {
    pub fn new(session: SessionInfo) -> Aggregator {
        let mut switches: Vec<_> = session.phases.clone();
        switches.sort_by_key(|p| p.since);
        let ends = switches
            .iter()
            .skip(1)
            .map(|p| Some(p.since))
            .chain([session.ended]);
        let phases = switches
            .iter()
            .zip(ends.collect::<Vec<_>>())
            .map(|(p, until)| PhaseOut {
                phase: p.phase.clone(),
                since: p.since,
                until,
                flows: 0,
                findings: 0,
            })
            .collect();
        Aggregator {
            session,
            phases,
            counts: Counts::default(),
            rows: HashMap::new(),
            sdks: BTreeMap::new(),
            sdks_dropped: 0,
            har_read: false,
            tls: HashMap::new(),
            tls_other: 0,
            timeline: Timeline::new(),
            violating: Vec::new(),
            other: Vec::new(),
        }
    }

    /// The phase period `at` falls in; times before the first switch
    /// count in the first period.
    fn period(&mut self, at: OffsetDateTime) -> Option<&mut PhaseOut> {
        let after = self.phases.partition_point(|p| p.since <= at);
        let index = after.saturating_sub(1);
        self.phases.get_mut(index)
    }

    pub fn add_flow(&mut self, flow: FlowLine) {
        self.counts.flows += 1;
        self.timeline.add_flow(unix_ms(flow.timing.start));
        if let Some(period) = self.period(flow.timing.start) {
            period.flows += 1;
        }
        if flow.kind != "tls-refused" {
            return;
        }
        self.counts.tls_refused += 1;
        let host = match flow.host() {
            "" => "(no server name)".to_owned(),
            host => host.to_ascii_lowercase(),
        };
        let alert = flow.tls.as_ref().and_then(|t| t.alert.clone());
        if let Some((count, first_alert)) = self.tls.get_mut(&host) {
            *count += 1;
            if first_alert.is_none() {
                *first_alert = alert;
            }
        } else if self.tls.len() < MAX_TLS_HOSTS {
            self.tls.insert(host, (1, alert));
        } else {
            self.tls_other += 1;
        }
    }

    pub fn add_finding(&mut self, finding: FindingLine) {
        self.counts.findings += 1;
        let lanes = lanes_of(&finding.violations);
        self.timeline.add_finding(unix_ms(finding.ts), &lanes);
        if let Some(period) = self.period(finding.ts) {
            period.findings += 1;
        }
        if !finding.violations.is_empty() {
            self.counts.findings_with_violations += 1;
        }
        for violation in &finding.violations {
            let known = self.counts.violations_by_kind.contains_key(violation);
            if known || self.counts.violations_by_kind.len() < MAX_LIST {
                *self
                    .counts
                    .violations_by_kind
                    .entry(violation.clone())
                    .or_default() += 1;
            }
        }
        self.add_to_sdk(&finding);
        self.add_to_row(&finding);
        self.keep_detail(finding);
    }

    fn add_to_sdk(&mut self, finding: &FindingLine) {
        let Some(sdk) = &finding.sdk else { return };
        let Some(acc) = self.sdk_acc(sdk) else { return };
        acc.findings += 1;
        insert_bounded(&mut acc.hosts, &finding.host, MAX_SDK_HOSTS);
        insert_bounded(
            &mut acc.identifiers,
            &finding.identifier,
            MAX_SDK_IDENTIFIERS,
        );
        insert_bounded(&mut acc.phases, &finding.phase, MAX_LIST);
        acc.first_contact = earliest(acc.first_contact, finding.ts);
    }

    fn sdk_acc(&mut self, sdk: &SdkRef) -> Option<&mut SdkAcc> {
        if !self.sdks.contains_key(sdk) {
            if self.sdks.len() >= MAX_SDKS {
                self.sdks_dropped += 1;
                return None;
            }
            self.sdks.insert(sdk.clone(), SdkAcc::default());
        }
        self.sdks.get_mut(sdk)
    }

    fn add_to_row(&mut self, f: &FindingLine) {
        let recipient = f.sdk.as_ref().map_or(&f.host, |s| &s.name).clone();
        let key = (f.identifier.clone(), recipient, f.phase.clone());
        if !self.rows.contains_key(&key) && self.rows.len() >= MAX_ROWS {
            self.counts.findings_outside_verdicts += 1;
            return;
        }
        let row = self.rows.entry(key).or_insert_with(|| RowAcc {
            hosts: BTreeSet::new(),
            party: f.party.clone(),
            sdk: f.sdk.clone(),
            count: 0,
            incoming: 0,
            violations: BTreeSet::new(),
            encodings: BTreeSet::new(),
            places: BTreeSet::new(),
            first_seen: f.ts,
            last_seen: f.ts,
            flow_ids: Vec::new(),
        });
        row.count += 1;
        if matches!(f.place.as_str(), "response-body" | "ws-response") {
            row.incoming += 1;
        }
        insert_bounded(&mut row.hosts, &f.host, MAX_LIST);
        for violation in &f.violations {
            insert_bounded(&mut row.violations, violation, MAX_LIST);
        }
        insert_bounded(&mut row.encodings, &f.encoding, MAX_LIST);
        insert_bounded(&mut row.places, &f.place, MAX_LIST);
        row.first_seen = row.first_seen.min(f.ts);
        row.last_seen = row.last_seen.max(f.ts);
        if row.flow_ids.len() < EXAMPLES && !row.flow_ids.contains(&f.flow_id) {
            row.flow_ids.push(f.flow_id);
        }
    }

    /// Keeps the first [`MAX_DETAILS`] violating findings and the first
    /// [`MAX_DETAILS`] others, trimmed: whichever way the file is ordered,
    /// the violating ones are shown first and none is crowded out.
    fn keep_detail(&mut self, mut finding: FindingLine) {
        let list = if finding.violations.is_empty() {
            &mut self.other
        } else {
            &mut self.violating
        };
        if list.len() >= MAX_DETAILS {
            return;
        }
        finding.evidence = truncate_chars(&finding.evidence, MAX_EVIDENCE_CHARS);
        finding.url = truncate_chars(&finding.url, MAX_URL_CHARS);
        finding.decoded_from.truncate(MAX_LIST);
        list.push(finding);
    }

    /// Counts an HAR entry as a contact of its SDK (entries without an
    /// SDK are not needed: their flows are in flows.jsonl).
    pub fn add_har_entry(&mut self, entry: HarEntryLine) {
        self.har_read = true;
        let Some(extra) = &entry.leakscope else {
            return;
        };
        let Some(sdk) = &extra.sdk else { return };
        let started = entry.started_at();
        let host = entry.host();
        let phase = extra.phase.clone();
        let Some(acc) = self.sdk_acc(sdk) else { return };
        acc.contacts += 1;
        if let Some(host) = host {
            insert_bounded(&mut acc.hosts, &host, MAX_SDK_HOSTS);
        }
        if let Some(phase) = phase {
            insert_bounded(&mut acc.phases, &phase, MAX_LIST);
        }
        if let Some(started) = started {
            acc.first_contact = earliest(acc.first_contact, started);
        }
    }

    /// Marks the HAR as read even when it had no entries.
    pub fn har_was_read(&mut self) {
        self.har_read = true;
    }

    /// Finishes the tables. `malformed` is the number of skipped lines;
    /// `notes` are caveats gathered while reading.
    pub fn finish(self, malformed: u64, mut notes: Vec<String>) -> Aggregate {
        let mut verdicts: Vec<VerdictRow> = self
            .rows
            .into_iter()
            .map(|((identifier, recipient, phase), acc)| VerdictRow {
                identifier,
                recipient,
                hosts: acc.hosts.into_iter().collect(),
                party: acc.party,
                sdk: acc.sdk,
                phase,
                count: acc.count,
                incoming: acc.incoming,
                violations: sort_violations(acc.violations),
                encodings: acc.encodings.into_iter().collect(),
                places: acc.places.into_iter().collect(),
                first_seen: acc.first_seen,
                last_seen: acc.last_seen,
                flow_ids: acc.flow_ids,
            })
            .collect();
        verdicts.sort_by(|a, b| {
            b.violations
                .len()
                .cmp(&a.violations.len())
                .then(b.count.cmp(&a.count))
                .then(phase_rank(&a.phase).cmp(&phase_rank(&b.phase)))
                .then_with(|| a.identifier.cmp(&b.identifier))
                .then_with(|| a.recipient.cmp(&b.recipient))
                .then_with(|| a.phase.cmp(&b.phase))
        });

        let har_read = self.har_read;
        let mut sdks: Vec<SdkRow> = self
            .sdks
            .into_iter()
            .map(|(sdk, acc)| SdkRow {
                name: sdk.name,
                vendor: sdk.vendor,
                category: sdk.category,
                hosts: acc.hosts.into_iter().collect(),
                identifiers: acc.identifiers.into_iter().collect(),
                findings: acc.findings,
                contacts: har_read.then_some(acc.contacts),
                first_contact: acc.first_contact,
                phases: sort_phases(acc.phases),
            })
            .collect();
        sdks.sort_by(|a, b| {
            b.findings
                .cmp(&a.findings)
                .then(a.first_contact.cmp(&b.first_contact))
                .then_with(|| a.name.cmp(&b.name))
        });

        let mut tls_refused: Vec<TlsRefusedRow> = self
            .tls
            .into_iter()
            .map(|(host, (count, alert))| TlsRefusedRow { host, count, alert })
            .collect();
        tls_refused.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.host.cmp(&b.host)));
        if self.tls_other > 0 {
            tls_refused.push(TlsRefusedRow {
                host: "(other hosts)".to_owned(),
                count: self.tls_other,
                alert: None,
            });
            notes.push(format!(
                "More than {MAX_TLS_HOSTS} hosts refused TLS; {} refusals of further hosts are summed as \"(other hosts)\".",
                self.tls_other
            ));
        }
        if self.counts.findings_outside_verdicts > 0 {
            notes.push(format!(
                "The verdict table is capped at {MAX_ROWS} rows; {} findings of further rows are only in findings.jsonl.",
                self.counts.findings_outside_verdicts
            ));
        }
        if self.sdks_dropped > 0 {
            notes.push(format!(
                "More than {MAX_SDKS} SDKs; {} records of further SDKs are not listed.",
                self.sdks_dropped
            ));
        }

        let shown_violating = self.violating.len();
        let mut details = self.violating;
        let room = MAX_DETAILS.saturating_sub(details.len());
        details.extend(self.other.into_iter().take(room));
        details[shown_violating..].sort_by_key(|f| f.ts);
        details[..shown_violating].sort_by_key(|f| f.ts);
        let details_omitted = self.counts.findings.saturating_sub(details.len() as u64);

        let info = self.session;
        let summary = Summary {
            leakscope_version: env!("CARGO_PKG_VERSION").to_owned(),
            session: SessionOut {
                leakscope_version: info.leakscope_version,
                started: info.started,
                ended: info.ended,
                mode: info.mode,
                device_model: info.device_model,
                app: info.app,
                source: info.source,
                phases: self.phases,
            },
            counts: self.counts,
            verdicts,
            sdks,
            tls_refused,
            malformed_lines: malformed,
            notes,
        };
        Aggregate {
            summary,
            timeline: self.timeline,
            details,
            details_omitted,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Timeline lanes of a finding: one per known violation, else "none".
fn lanes_of(violations: &[String]) -> Vec<usize> {
    let lanes: Vec<usize> = violations
        .iter()
        .filter_map(|v| LANES.iter().position(|lane| !lane.is_empty() && lane == v))
        .collect();
    if lanes.is_empty() {
        vec![LANES.len() - 1]
    } else {
        lanes
    }
}

/// Phases in the order a session goes through them; unknown ones last.
pub fn phase_rank(phase: &str) -> usize {
    ["pre-consent", "refused", "consented", "background"]
        .iter()
        .position(|p| *p == phase)
        .unwrap_or(usize::MAX)
}

/// Violations in severity order (the order of [`LANES`]), unknown last.
fn sort_violations(set: BTreeSet<String>) -> Vec<String> {
    let mut list: Vec<String> = set.into_iter().collect();
    list.sort_by_key(|v| LANES.iter().position(|l| l == v).unwrap_or(usize::MAX));
    list
}

fn sort_phases(set: BTreeSet<String>) -> Vec<String> {
    let mut list: Vec<String> = set.into_iter().collect();
    list.sort_by_key(|p| phase_rank(p));
    list
}

fn insert_bounded(set: &mut BTreeSet<String>, value: &str, cap: usize) {
    if set.len() < cap && !set.contains(value) {
        set.insert(value.to_owned());
    }
}

fn earliest(current: Option<OffsetDateTime>, candidate: OffsetDateTime) -> Option<OffsetDateTime> {
    Some(current.map_or(candidate, |c| c.min(candidate)))
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
