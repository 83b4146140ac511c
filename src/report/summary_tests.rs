use super::*;
use crate::report::read::{self, for_each_line};
use crate::sinks::session_info::PhaseRecord;
use serde_json::json;
use std::io::Cursor;
use time::macros::datetime;

fn session() -> SessionInfo {
    SessionInfo {
        leakscope_version: "0.0.test".into(),
        mode: "run".into(),
        started: datetime!(2026-11-28 20:00:00 UTC),
        ended: Some(datetime!(2026-11-28 20:10:00 UTC)),
        device_model: Some("Pixel 7".into()),
        app: Some("com.example.shop".into()),
        source: None,
        phases: vec![
            PhaseRecord {
                phase: "pre-consent".into(),
                since: datetime!(2026-11-28 20:00:00 UTC),
            },
            PhaseRecord {
                phase: "consented".into(),
                since: datetime!(2026-11-28 20:05:00 UTC),
            },
        ],
        flows: 0,
        findings: 0,
    }
}

fn umeng() -> serde_json::Value {
    json!({"name": "Umeng", "vendor": "Alibaba", "category": "analytics"})
}

/// One findings.jsonl line.
fn finding(
    flow: u64,
    at: &str,
    phase: &str,
    id: &str,
    host: &str,
    sdk: Option<serde_json::Value>,
    violations: &[&str],
) -> String {
    json!({
        "ts": format!("2026-11-28T{at}Z"), "flow_id": flow, "phase": phase,
        "url": format!("https://{host}/collect"), "host": host, "method": "POST",
        "where": "body", "identifier": id, "encoding": "md5", "decoded_from": ["gzip", "json"],
        "detector": "profile", "confidence": "high",
        "party": if sdk.is_some() { "third" } else { "first" },
        "sdk": sdk, "violations": violations, "evidence": "imei_md5=..."
    })
    .to_string()
}

fn flow(id: u64, at: &str, kind: &str, host: &str) -> String {
    let mut v = json!({
        "id": id, "kind": kind, "client_addr": "127.0.0.1:4000",
        "timing": {"start": format!("2026-11-28T{at}Z"), "request_end": null, "response_start": null, "end": null},
    });
    if kind == "tls-refused" {
        v["tls"] = json!({"mode": "refused", "sni": host, "alpn_offered": [], "alert": "received fatal alert: UnknownCA"});
    } else {
        v["request"] =
            json!({"method": "GET", "url": format!("https://{host}/"), "host": host, "port": 443});
    }
    v.to_string()
}

fn aggregate(flows: &[String], findings_text: &str) -> Aggregate {
    let mut agg = Aggregator::new(session());
    let flows_text = flows.join("\n");
    let bad_flows = for_each_line(Cursor::new(flows_text), |f| agg.add_flow(f)).unwrap();
    let bad = for_each_line(Cursor::new(findings_text.to_owned()), |f| {
        agg.add_finding(f)
    })
    .unwrap();
    agg.finish(bad_flows + bad, Vec::new())
}

#[test]
fn rows_group_by_identifier_recipient_phase_with_violations_first() {
    let u = Some(umeng());
    let lines = [
        // A first-party row with many findings but no violation...
        finding(
            1,
            "20:00:01",
            "pre-consent",
            "android_id",
            "api.shop.example",
            None,
            &[],
        ),
        finding(
            2,
            "20:00:02",
            "pre-consent",
            "android_id",
            "api.shop.example",
            None,
            &[],
        ),
        finding(
            3,
            "20:00:03",
            "pre-consent",
            "android_id",
            "api.shop.example",
            None,
            &[],
        ),
        // ...must come after rows with violations, the one with more kinds first.
        finding(
            4,
            "20:00:04",
            "pre-consent",
            "imei",
            "ulogs.umeng.com",
            u.clone(),
            &["pre-consent", "third-party"],
        ),
        finding(
            5,
            "20:00:05",
            "pre-consent",
            "imei",
            "alog.umeng.com",
            u.clone(),
            &["pre-consent", "third-party"],
        ),
        finding(
            6,
            "20:06:00",
            "consented",
            "imei",
            "ulogs.umeng.com",
            u.clone(),
            &["third-party"],
        ),
        finding(
            7,
            "20:06:01",
            "consented",
            "imei",
            "ulogs.umeng.com",
            u.clone(),
            &["third-party"],
        ),
        finding(
            8,
            "20:06:02",
            "consented",
            "imei",
            "ulogs.umeng.com",
            u.clone(),
            &["third-party"],
        ),
    ];
    let mut text = lines.join("\n");
    text.push_str("\nthis is not json\n");
    // A truncated last line, as a crash leaves it.
    text.push_str(&lines[0][..40]);
    let agg = aggregate(&[], &text);
    let s = &agg.summary;
    assert_eq!(s.malformed_lines, 2);
    assert_eq!(s.counts.findings, 8);
    assert_eq!(s.counts.findings_with_violations, 5);
    assert_eq!(s.counts.violations_by_kind["pre-consent"], 2);
    assert_eq!(s.counts.violations_by_kind["third-party"], 5);
    let order: Vec<(&str, &str, &str, u64)> = s
        .verdicts
        .iter()
        .map(|v| {
            (
                v.identifier.as_str(),
                v.recipient.as_str(),
                v.phase.as_str(),
                v.count,
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("imei", "Umeng", "pre-consent", 2),
            ("imei", "Umeng", "consented", 3),
            ("android_id", "api.shop.example", "pre-consent", 3),
        ]
    );
    let top = &s.verdicts[0];
    assert_eq!(top.violations, vec!["pre-consent", "third-party"]);
    assert_eq!(top.hosts, vec!["alog.umeng.com", "ulogs.umeng.com"]);
    assert_eq!(top.flow_ids, vec![4, 5]);
    assert_eq!(top.encodings, vec!["md5"]);
    assert_eq!(top.incoming, 0);
    assert_eq!(top.party, "third");
    assert_eq!(top.sdk.as_ref().unwrap().vendor, "Alibaba");
    assert_eq!(top.first_seen, datetime!(2026-11-28 20:00:04 UTC));
    assert_eq!(top.last_seen, datetime!(2026-11-28 20:00:05 UTC));
    // The SDK table: what Umeng received, and when first.
    assert_eq!(s.sdks.len(), 1);
    assert_eq!(s.sdks[0].findings, 5);
    assert_eq!(s.sdks[0].identifiers, vec!["imei"]);
    assert_eq!(s.sdks[0].phases, vec!["pre-consent", "consented"]);
    assert_eq!(s.sdks[0].contacts, None, "no HAR was read");
    // Phase periods count findings by time.
    assert_eq!(s.session.phases[0].findings, 5);
    assert_eq!(s.session.phases[1].findings, 3);
    assert_eq!(
        s.session.phases[0].until,
        Some(datetime!(2026-11-28 20:05:00 UTC))
    );
    assert_eq!(s.session.phases[1].until, s.session.ended);
}

#[test]
fn flow_ids_per_row_are_distinct_and_capped() {
    let lines: Vec<String> = (0..40)
        .map(|i| {
            finding(
                i / 2 + 1,
                "20:00:01",
                "pre-consent",
                "oaid",
                "h.example",
                None,
                &["pre-consent"],
            )
        })
        .collect();
    let s = aggregate(&[], &lines.join("\n")).summary;
    assert_eq!(s.verdicts.len(), 1);
    assert_eq!(s.verdicts[0].count, 40);
    assert_eq!(s.verdicts[0].flow_ids, vec![1, 2, 3, 4, 5]);
}

#[test]
fn refused_tls_hosts_are_counted_and_flows_land_in_their_period() {
    let flows = [
        flow(1, "20:00:01", "http", "api.shop.example"),
        flow(2, "20:00:02", "tls-refused", "Pinned.Bank.example"),
        flow(3, "20:06:00", "tls-refused", "pinned.bank.example"),
        flow(4, "20:06:01", "tls-refused", "other.example"),
        "{\"id\":5,\"kind\":\"http\"".to_owned(),
    ];
    let agg = aggregate(&flows, "");
    let s = &agg.summary;
    assert_eq!(s.counts.flows, 4);
    assert_eq!(s.counts.tls_refused, 3);
    assert_eq!(s.malformed_lines, 1);
    assert_eq!(s.tls_refused[0].host, "pinned.bank.example");
    assert_eq!(s.tls_refused[0].count, 2);
    assert_eq!(
        s.tls_refused[0].alert.as_deref(),
        Some("received fatal alert: UnknownCA")
    );
    assert_eq!(s.tls_refused[1].host, "other.example");
    assert_eq!(
        (s.session.phases[0].flows, s.session.phases[1].flows),
        (2, 2)
    );
}

#[test]
fn refused_tls_hosts_beyond_the_cap_are_summed() {
    let mut agg = Aggregator::new(session());
    for i in 0..MAX_TLS_HOSTS + 5 {
        let line = flow(
            i as u64,
            "20:00:01",
            "tls-refused",
            &format!("h{i}.example"),
        );
        agg.add_flow(serde_json::from_str(&line).unwrap());
    }
    let s = agg.finish(0, Vec::new()).summary;
    assert_eq!(s.tls_refused.len(), MAX_TLS_HOSTS + 1);
    let last = s.tls_refused.last().unwrap();
    assert_eq!((last.host.as_str(), last.count), ("(other hosts)", 5));
    assert!(s.notes.iter().any(|n| n.contains("(other hosts)")));
}

#[test]
fn details_keep_violating_findings_first_within_the_cap() {
    let mut lines: Vec<String> = (0..MAX_DETAILS as u64)
        .map(|i| finding(i, "20:00:01", "consented", "adid", "a.example", None, &[]))
        .collect();
    lines.push(finding(
        9999,
        "20:09:00",
        "consented",
        "imei",
        "b.example",
        None,
        &["over-frequency"],
    ));
    let agg = aggregate(&[], &lines.join("\n"));
    assert_eq!(agg.details.len(), MAX_DETAILS);
    assert_eq!(agg.details[0].flow_id, 9999);
    assert_eq!(agg.details_omitted, 1);
}

#[test]
fn har_entries_add_sdks_contacted_without_data() {
    let mut agg = Aggregator::new(session());
    let line = finding(
        4,
        "20:00:04",
        "pre-consent",
        "imei",
        "ulogs.umeng.com",
        Some(umeng()),
        &["pre-consent"],
    );
    agg.add_finding(serde_json::from_str(&line).unwrap());
    let har = json!({"log": {"entries": [
        {"startedDateTime": "2026-11-28T20:00:03.500Z", "request": {"url": "https://ulogs.umeng.com/x"},
         "_leakscope": {"flow_id": 4, "phase": "pre-consent", "sdk": umeng()}},
        {"startedDateTime": "2026-11-28T20:07:00.000Z", "request": {"url": "https://sdk.e.qq.com/ad"},
         "_leakscope": {"flow_id": 9, "phase": "consented",
                        "sdk": {"name": "Tencent GDT", "vendor": "Tencent", "category": "advertising"}}},
        {"request": {"url": "https://api.shop.example/"}, "_leakscope": {"flow_id": 10, "sdk": null}}
    ]}});
    read::for_each_har_entry(Cursor::new(har.to_string()), |e| agg.add_har_entry(e)).unwrap();
    let s = agg.finish(0, Vec::new()).summary;
    let names: Vec<&str> = s.sdks.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, vec!["Umeng", "Tencent GDT"]);
    assert_eq!(s.sdks[0].contacts, Some(1));
    assert_eq!(
        s.sdks[0].first_contact,
        Some(datetime!(2026-11-28 20:00:03.5 UTC))
    );
    assert_eq!(s.sdks[1].findings, 0);
    assert!(s.sdks[1].identifiers.is_empty());
    assert_eq!(s.sdks[1].hosts, vec!["sdk.e.qq.com"]);
    assert_eq!(s.sdks[1].phases, vec!["consented"]);
}

#[test]
fn many_flows_stay_in_bounded_buckets() {
    let mut agg = Aggregator::new(session());
    let start = datetime!(2026-11-28 20:00:00 UTC);
    for i in 0..20_000i64 {
        let at = start + time::Duration::milliseconds(i * 137);
        let line = json!({"id": i, "kind": "http", "timing": {"start": at.format(&time::format_description::well_known::Rfc3339).unwrap()},
                          "request": {"host": "h.example"}});
        agg.add_flow(serde_json::from_value(line).unwrap());
    }
    let agg = agg.finish(0, Vec::new());
    assert!(agg.timeline.buckets().count() <= crate::report::timeline::BUCKETS);
    assert_eq!(
        agg.timeline.buckets().map(|(_, b)| b.flows).sum::<u64>(),
        20_000
    );
}

#[test]
fn truncation_keeps_char_boundaries() {
    assert_eq!(truncate_chars("abc", 5), "abc");
    assert_eq!(truncate_chars("日本語テキスト", 3), "日本語…");
}
