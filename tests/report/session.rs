//! A realistic session directory for the report tests, written through
//! leakscope's real sinks exactly as `leakscope run` writes one.

use leakscope::consent::{ConsentPhase, PhaseChange};
use leakscope::detect::Confidence;
use leakscope::detect::finding::{DetectorKind, Finding, FlowLabels, Party, SdkInfo, Violation};
use leakscope::flow::{BodyRecord, Flow, FlowKind, RequestRecord, TlsFacts, TlsMode};
use leakscope::session::{SessionEvent, Sink};
use leakscope::sinks::findings::FindingsLog;
use leakscope::sinks::flow_log::FlowLog;
use leakscope::sinks::har::{HarOptions, HarWriter};
use leakscope::sinks::session_info::{PhaseRecord, SessionInfo, SessionInfoLog};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Evidence planted in a finding: traffic is attacker-controlled.
const PLANTED: &str = "imei_md5=\"8d2c\"</pre><script>alert('leak')</script>";

/// A fixed start, ten minutes ago, in whole seconds.
fn base() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc() - time::Duration::minutes(10);
    now.replace_nanosecond(0).unwrap()
}

pub fn at(base: OffsetDateTime, secs: i64) -> OffsetDateTime {
    base + time::Duration::seconds(secs)
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

pub fn umeng() -> SdkInfo {
    SdkInfo {
        name: "Umeng+ Analytics".into(),
        vendor: "Alibaba (Umeng+)".into(),
        category: "analytics".into(),
    }
}

fn gdt() -> SdkInfo {
    SdkInfo {
        name: "Tencent GDT".into(),
        vendor: "Tencent".into(),
        category: "advertising".into(),
    }
}

fn http_flow(id: u64, start: OffsetDateTime, method: &str, url: &str) -> Flow {
    let mut flow = Flow::new(FlowKind::Http, "127.0.0.1:40000".parse().unwrap());
    flow.id = id;
    flow.timing.start = start;
    flow.timing.end = Some(start + time::Duration::milliseconds(80));
    let host = url.split('/').nth(2).unwrap().to_owned();
    flow.request = Some(RequestRecord {
        method: method.into(),
        url: url.into(),
        host,
        port: 443,
        http_version: "HTTP/1.1".into(),
        headers: Vec::new(),
        body: BodyRecord::default(),
    });
    flow
}

fn refused_flow(id: u64, start: OffsetDateTime, sni: &str) -> Flow {
    let mut flow = Flow::new(FlowKind::TlsRefused, "127.0.0.1:40001".parse().unwrap());
    flow.id = id;
    flow.timing.start = start;
    flow.tls = Some(TlsFacts {
        mode: TlsMode::Refused,
        sni: Some(sni.into()),
        alpn_offered: vec!["h2".into()],
        alert: Some("received fatal alert: CertificateUnknown".into()),
    });
    flow
}

struct Found<'a> {
    flow: &'a Flow,
    ts: OffsetDateTime,
    phase: ConsentPhase,
    identifier: &'a str,
    place: &'a str,
    encoding: &'a str,
    sdk: Option<SdkInfo>,
    violations: Vec<Violation>,
    evidence: &'a str,
}

fn finding(f: Found<'_>) -> Finding {
    let req = f.flow.request.as_ref().unwrap();
    Finding {
        ts: f.ts,
        flow_id: f.flow.id,
        phase: f.phase,
        url: req.url.clone(),
        host: req.host.clone(),
        method: req.method.clone(),
        place: f.place.into(),
        identifier: f.identifier.into(),
        encoding: f.encoding.into(),
        decoded_from: if f.place == "body" {
            vec!["gzip".into(), "json".into()]
        } else {
            vec![]
        },
        detector: DetectorKind::Profile,
        confidence: Confidence::High,
        party: if f.sdk.is_some() {
            Party::Third
        } else {
            Party::First
        },
        sdk: f.sdk,
        violations: f.violations,
        evidence: f.evidence.into(),
        value: None,
    }
}

/// Writes a realistic session into `dir` through the real sinks, the way
/// `leakscope run` does. Returns the session start.
pub fn write_session(dir: &Path) -> OffsetDateTime {
    let base = base();
    let first = PhaseChange {
        phase: ConsentPhase::PreConsent,
        since: base,
    };
    let consent = PhaseChange {
        phase: ConsentPhase::Consented,
        since: at(base, 300),
    };
    let info = SessionInfo {
        leakscope_version: env!("CARGO_PKG_VERSION").into(),
        mode: "run".into(),
        started: base,
        ended: None,
        device_model: Some("Pixel 7".into()),
        app: Some("com.example.shop".into()),
        source: None,
        phases: vec![PhaseRecord::from(first)],
        flows: 0,
        findings: 0,
    };
    let mut sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(FlowLog::open(&dir.join("flows.jsonl")).unwrap()),
        Box::new(FindingsLog::open(&dir.join("findings.jsonl")).unwrap()),
        Box::new(HarWriter::create(dir, HarOptions::new(first)).unwrap()),
        Box::new(SessionInfoLog::new(dir, info).unwrap()),
    ];
    let mut events = Vec::new();
    let mut flow_with = |flow: Flow, sdk: Option<SdkInfo>, phase, found: Vec<Finding>| {
        if flow.request.is_some() {
            let party = if sdk.is_some() {
                Party::Third
            } else {
                Party::First
            };
            let labels = FlowLabels {
                flow_id: flow.id,
                phase,
                party,
                sdk,
            };
            events.push(SessionEvent::FlowLabels(Arc::new(labels)));
        }
        events.extend(
            found
                .into_iter()
                .map(|f| SessionEvent::Finding(Arc::new(f))),
        );
        events.push(SessionEvent::FlowDone(Arc::new(flow)));
    };
    use ConsentPhase::{Consented, PreConsent};
    use Violation::{OverFrequency, PreConsent as Pre, ThirdParty};

    // Pre-consent: Umeng gets the IMEI (hashed) and the OAID at once.
    let f1 = http_flow(1, at(base, 2), "POST", "https://ulogs.umeng.com/unify_logs");
    let found = vec![
        finding(Found {
            flow: &f1,
            ts: at(base, 2),
            phase: PreConsent,
            identifier: "imei",
            place: "body",
            encoding: "md5",
            sdk: Some(umeng()),
            violations: vec![Pre, ThirdParty],
            evidence: PLANTED,
        }),
        finding(Found {
            flow: &f1,
            ts: at(base, 2),
            phase: PreConsent,
            identifier: "oaid",
            place: "body",
            encoding: "plain",
            sdk: Some(umeng()),
            violations: vec![Pre, ThirdParty],
            evidence: "\"oaid\":\"7d3a0f7e-...\"",
        }),
    ];
    flow_with(f1, Some(umeng()), PreConsent, found);
    // The app's own backend asks for the Android ID before consent.
    let f2 = http_flow(
        2,
        at(base, 3),
        "GET",
        "https://api.shop.example/init?aid=9774d56d682e549c",
    );
    let found = vec![finding(Found {
        flow: &f2,
        ts: at(base, 3),
        phase: PreConsent,
        identifier: "android_id",
        place: "url",
        encoding: "plain",
        sdk: None,
        violations: vec![Pre],
        evidence: "/init?aid=9774d56d682e549c",
    })];
    flow_with(f2, None, PreConsent, found);
    // A pinned SDK refuses leakscope's certificate, twice.
    flow_with(
        refused_flow(3, at(base, 4), "pinned.bank-sdk.example"),
        None,
        PreConsent,
        vec![],
    );
    flow_with(
        refused_flow(4, at(base, 5), "pinned.bank-sdk.example"),
        None,
        PreConsent,
        vec![],
    );
    // After consent: an ad SDK contacted without identifiers...
    flow_with(
        http_flow(5, at(base, 310), "GET", "https://sdk.e.qq.com/ad"),
        Some(gdt()),
        Consented,
        vec![],
    );
    // ...and Umeng polled eight times in a minute, the last two over the rate.
    for i in 0..8u64 {
        let flow = http_flow(
            6 + i,
            at(base, 320 + i as i64),
            "POST",
            "https://ulogs.umeng.com/unify_logs",
        );
        let mut violations = vec![ThirdParty];
        if i >= 6 {
            violations.push(OverFrequency);
        }
        let found = vec![finding(Found {
            flow: &flow,
            ts: at(base, 320 + i as i64),
            phase: Consented,
            identifier: "imei",
            place: "body",
            encoding: "md5",
            sdk: Some(umeng()),
            violations,
            evidence: "\"imei_md5\":\"8d2c...\"",
        })];
        flow_with(flow, Some(umeng()), Consented, found);
    }
    // The backend hands the e-mail address back: a finding, no violation.
    let f14 = http_flow(14, at(base, 330), "GET", "https://api.shop.example/profile");
    let found = vec![finding(Found {
        flow: &f14,
        ts: at(base, 330),
        phase: Consented,
        identifier: "email",
        place: "response-body",
        encoding: "plain",
        sdk: None,
        violations: vec![],
        evidence: "\"email\":\"tester@example.com\"",
    })];
    flow_with(f14, None, Consented, found);

    events.insert(events.len() / 2, SessionEvent::PhaseChanged(consent));
    for event in &events {
        for sink in &mut sinks {
            sink.handle(event).unwrap();
        }
    }
    for sink in &mut sinks {
        sink.flush().unwrap();
    }
    drop(sinks);
    // Pin the end so the report's times are deterministic.
    let path = dir.join("session.json");
    let mut info: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    info["ended"] = json!(rfc3339(at(base, 600)));
    std::fs::write(&path, info.to_string()).unwrap();
    // A crash mid-write leaves half a line behind.
    let mut findings = std::fs::read_to_string(dir.join("findings.jsonl")).unwrap();
    findings.push_str("{\"ts\":\"2026-11-28T20:1");
    std::fs::write(dir.join("findings.jsonl"), findings).unwrap();
    base
}
