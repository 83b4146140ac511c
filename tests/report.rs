//! `leakscope report` end to end: a session directory written by the real
//! sinks (flows.jsonl, findings.jsonl, session.har, session.json), the
//! report made from it, and the page rendered by headless Chromium.
//!
//! Chromium is required, not optional: without it this test fails and says
//! how to install it, so a machine without a browser never passes the
//! rendering check silently.

use leakscope::consent::{ConsentPhase, PhaseChange};
use leakscope::detect::Confidence;
use leakscope::detect::finding::{DetectorKind, Finding, FlowLabels, Party, SdkInfo, Violation};
use leakscope::flow::{BodyRecord, Flow, FlowKind, RequestRecord, TlsFacts, TlsMode};
use leakscope::report::write_report;
use leakscope::session::{SessionEvent, Sink};
use leakscope::sinks::findings::FindingsLog;
use leakscope::sinks::flow_log::FlowLog;
use leakscope::sinks::har::{HarOptions, HarWriter};
use leakscope::sinks::session_info::{PhaseRecord, SessionInfo, SessionInfoLog};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Evidence planted in a finding: traffic is attacker-controlled.
const PLANTED: &str = "imei_md5=\"8d2c\"</pre><script>alert('leak')</script>";

/// A fixed start, ten minutes ago, in whole seconds.
fn base() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc() - time::Duration::minutes(10);
    now.replace_nanosecond(0).unwrap()
}

fn at(base: OffsetDateTime, secs: i64) -> OffsetDateTime {
    base + time::Duration::seconds(secs)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn umeng() -> SdkInfo {
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
    }
}

/// Writes a realistic session into `dir` through the real sinks, the way
/// `leakscope run` does. Returns the session start.
fn write_session(dir: &Path) -> OffsetDateTime {
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

/// One expected verdict row of summary.json.
struct Expect<'a> {
    identifier: &'a str,
    recipient: &'a str,
    sdk: Option<SdkInfo>,
    phase: &'a str,
    count: u64,
    violations: &'a [&'a str],
    encoding: &'a str,
    place: &'a str,
    /// First and last seen, in seconds after the start.
    seen: (i64, i64),
    flow_ids: &'a [u64],
}

impl Expect<'_> {
    fn json(self, base: OffsetDateTime) -> Value {
        let host = match &self.sdk {
            Some(_) => "ulogs.umeng.com",
            None => self.recipient,
        };
        json!({
            "identifier": self.identifier, "recipient": self.recipient, "hosts": [host],
            "party": if self.sdk.is_some() { "third" } else { "first" },
            "sdk": self.sdk.map(|s| json!({"name": s.name, "vendor": s.vendor, "category": s.category})),
            "phase": self.phase, "count": self.count,
            "incoming": u64::from(self.place == "response-body"), "violations": self.violations,
            "encodings": [self.encoding], "places": [self.place],
            "first_seen": rfc3339(at(base, self.seen.0)), "last_seen": rfc3339(at(base, self.seen.1)),
            "flow_ids": self.flow_ids,
        })
    }
}

#[test]
fn report_of_a_recorded_session() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_session(dir.path());
    let (files, text) = write_report(dir.path()).unwrap();
    assert_eq!(files.html, dir.path().join("report.html"));
    assert!(text.lines().count() <= 25, "{text}");
    assert!(
        text.contains("imei -> Umeng+ Analytics [consented] x8: third-party, over-frequency"),
        "{text}"
    );

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&files.summary).unwrap()).unwrap();
    let umeng_row = |phase, identifier, count, violations, encoding, seen, flow_ids| Expect {
        identifier,
        recipient: "Umeng+ Analytics",
        sdk: Some(umeng()),
        phase,
        count,
        violations,
        encoding,
        place: "body",
        seen,
        flow_ids,
    };
    let expected = json!([
        umeng_row(
            "consented",
            "imei",
            8,
            &["third-party", "over-frequency"],
            "md5",
            (320, 327),
            &[6, 7, 8, 9, 10]
        )
        .json(base),
        umeng_row(
            "pre-consent",
            "imei",
            1,
            &["pre-consent", "third-party"],
            "md5",
            (2, 2),
            &[1]
        )
        .json(base),
        umeng_row(
            "pre-consent",
            "oaid",
            1,
            &["pre-consent", "third-party"],
            "plain",
            (2, 2),
            &[1]
        )
        .json(base),
        Expect {
            identifier: "android_id",
            recipient: "api.shop.example",
            sdk: None,
            phase: "pre-consent",
            count: 1,
            violations: &["pre-consent"],
            encoding: "plain",
            place: "url",
            seen: (3, 3),
            flow_ids: &[2],
        }
        .json(base),
        Expect {
            identifier: "email",
            recipient: "api.shop.example",
            sdk: None,
            phase: "consented",
            count: 1,
            violations: &[],
            encoding: "plain",
            place: "response-body",
            seen: (330, 330),
            flow_ids: &[14],
        }
        .json(base),
    ]);
    assert_eq!(summary["verdicts"], expected, "{:#}", summary["verdicts"]);
    assert_eq!(summary["malformed_lines"], 1);
    assert_eq!(summary["counts"]["flows"], 14);
    assert_eq!(summary["counts"]["findings"], 12);
    assert_eq!(
        summary["counts"]["violations_by_kind"],
        json!({"pre-consent": 3, "third-party": 10, "over-frequency": 2})
    );
    assert_eq!(
        summary["tls_refused"],
        json!([{"host": "pinned.bank-sdk.example", "count": 2,
                "alert": "received fatal alert: CertificateUnknown"}])
    );
    // Umeng received data; Tencent GDT was only contacted (known from the HAR).
    let sdks = summary["sdks"].as_array().unwrap();
    assert_eq!(sdks.len(), 2, "{sdks:#?}");
    assert_eq!(sdks[0]["name"], "Umeng+ Analytics");
    assert_eq!(sdks[0]["identifiers"], json!(["imei", "oaid"]));
    assert_eq!(sdks[0]["findings"], 10);
    assert_eq!(sdks[0]["contacts"], 9);
    assert_eq!(sdks[0]["phases"], json!(["pre-consent", "consented"]));
    assert_eq!(sdks[1]["name"], "Tencent GDT");
    assert_eq!(sdks[1]["identifiers"], json!([]));
    assert_eq!(sdks[1]["hosts"], json!(["sdk.e.qq.com"]));
    let phases = &summary["session"]["phases"];
    assert_eq!(phases[1]["phase"], "consented");
    assert_eq!(phases[1]["since"], rfc3339(at(base, 300)));
    assert_eq!(phases[0]["until"], rfc3339(at(base, 300)));
    assert_eq!(summary["session"]["app"], "com.example.shop");

    let html = std::fs::read_to_string(&files.html).unwrap();
    assert_self_contained(&html);
    assert!(
        !html.contains("<script"),
        "planted markup reached the page unescaped"
    );
    assert!(html.contains("&lt;/pre&gt;&lt;script&gt;alert(&#39;leak&#39;)&lt;/script&gt;"));
    assert!(html.contains("<table id=\"verdicts\">"));
    assert!(html.contains("HAR entry: flow_id 14"));
    for needle in [
        "pinned.bank-sdk.example",
        "Tencent GDT",
        "consent given",
        "com.example.shop",
    ] {
        assert!(html.contains(needle), "{needle} missing from report.html");
    }

    render_in_chromium(&files.html);
}

/// No resource is loaded from anywhere: no URL in `src`/`href`, no
/// external stylesheet, script, image, font or CSS `url(...)`.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for attr in ["src=", "href=", "xlink:href=", "action=", "srcset="] {
        for (at, _) in lower.match_indices(attr) {
            let value = lower[at + attr.len()..].trim_start_matches(['"', '\'']);
            assert!(
                !(value.starts_with("http:")
                    || value.starts_with("https:")
                    || value.starts_with("//")),
                "external reference: {}",
                &html[at..(at + 80).min(html.len())]
            );
        }
    }
    for forbidden in ["<link", "<img", "<iframe", "@import", "url(", "<script"] {
        assert!(
            !lower.contains(forbidden),
            "report.html contains {forbidden}"
        );
    }
}

/// The Chromium binary, or a failure saying how to get one.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("which").arg(name).output();
        if let Ok(out) = found.as_ref().map(|o| (o.status.success(), &o.stdout)) {
            if out.0 {
                return PathBuf::from(String::from_utf8_lossy(out.1).trim());
            }
        }
    }
    panic!(
        "headless Chromium is needed to check the rendered report and was not found; \
         install it with `apt-get update && apt-get install -y chromium` (Debian package `chromium`)"
    );
}

/// Runs Chromium headless on `page` with `extra` arguments; returns stdout.
fn headless(page: &Path, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

fn render_in_chromium(page: &Path) {
    let dom = headless(page, &["--dump-dom".to_owned()]);
    assert!(
        dom.contains("<table id=\"verdicts\">"),
        "no verdict table in the DOM:\n{dom:.2000}"
    );
    let verdicts = &dom[dom.find("<table id=\"verdicts\">").unwrap()..];
    let verdicts = &verdicts[..verdicts.find("</table>").unwrap()];
    assert_eq!(verdicts.matches("<tr").count(), 6, "header + 5 rows");
    for text in [
        "Umeng+ Analytics",
        "android_id",
        "api.shop.example",
        "over-frequency",
    ] {
        assert!(
            verdicts.contains(text),
            "{text} not in the rendered verdict table"
        );
    }
    assert!(
        dom.contains("<svg id=\"timeline\""),
        "timeline not rendered"
    );
    // The planted script is text in the DOM, not an element.
    assert!(
        !dom.contains("<script"),
        "a script element made it into the DOM"
    );

    let shots = tempfile::tempdir().unwrap();
    let png = shots.path().join("report.png");
    headless(
        page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2000".to_owned(),
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote no screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "screenshot is not a PNG"
    );
    assert!(
        bytes.len() > 10_000,
        "screenshot suspiciously small ({} bytes)",
        bytes.len()
    );
    // For looking at the page: LEAKSCOPE_REPORT_PNG=path keeps a copy of
    // the screenshot there, and of the page beside it (`.html`).
    if let Some(keep) = std::env::var_os("LEAKSCOPE_REPORT_PNG") {
        let keep = PathBuf::from(keep);
        std::fs::copy(&png, &keep).unwrap();
        std::fs::copy(page, keep.with_extension("html")).unwrap();
    }
}
