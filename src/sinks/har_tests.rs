use super::*;
use crate::detect::Confidence;
use crate::detect::finding::{DetectorKind, Party, SdkInfo, Violation};
use crate::flow::{
    BodyRecord, Direction, FlowErrorKind, Header, RequestRecord, ResponseRecord, TlsFacts, TlsMode,
    TunnelReason, TunnelRecord, WebSocketRecord, WsMessage,
};
use bytes::Bytes;
use serde_json::{Value, json};
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2025-03-01 10:00:00 UTC);

fn secs(s: f64) -> time::Duration {
    time::Duration::seconds_f64(s)
}

fn options(rewrite_every: Duration) -> HarOptions {
    HarOptions {
        rewrite_every,
        ..HarOptions::new(PhaseChange {
            phase: ConsentPhase::PreConsent,
            since: T0,
        })
    }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<Header> {
    pairs
        .iter()
        .map(|(n, v)| Header {
            name: (*n).to_owned(),
            value: (*v).to_owned(),
        })
        .collect()
}

fn body(data: &[u8]) -> BodyRecord {
    BodyRecord {
        wire_size: data.len() as u64,
        decoded_size: data.len() as u64,
        captured: Bytes::copy_from_slice(data),
        complete: true,
        ..BodyRecord::default()
    }
}

/// A completed HTTP flow started `at` seconds after T0, lasting 250 ms.
fn http_flow(at: f64, method: &str, url: &str, req_body: &[u8], resp_body: &[u8]) -> Flow {
    let mut flow = Flow::new(FlowKind::Http, "10.0.0.7:51234".parse().unwrap());
    let start = T0 + secs(at);
    flow.timing.start = start;
    flow.timing.request_end = Some(start + secs(0.010));
    flow.timing.response_start = Some(start + secs(0.200));
    flow.timing.end = Some(start + secs(0.250));
    flow.request = Some(RequestRecord {
        method: method.to_owned(),
        url: url.to_owned(),
        host: "api.example.com".to_owned(),
        port: 443,
        http_version: "HTTP/1.1".to_owned(),
        headers: headers(&[("Host", "api.example.com")]),
        body: body(req_body),
    });
    flow.response = Some(ResponseRecord {
        status: 200,
        http_version: "HTTP/1.1".to_owned(),
        headers: headers(&[("Content-Type", "application/json")]),
        body: body(resp_body),
    });
    flow
}

fn labels(flow: &Flow, phase: ConsentPhase) -> SessionEvent {
    SessionEvent::FlowLabels(Arc::new(FlowLabels {
        flow_id: flow.id,
        phase,
        party: Party::Third,
        sdk: Some(sdk()),
    }))
}

fn sdk() -> SdkInfo {
    SdkInfo {
        name: "Example Analytics".to_owned(),
        vendor: "Example Inc.".to_owned(),
        category: "analytics".to_owned(),
    }
}

fn finding(flow: &Flow) -> Finding {
    Finding {
        ts: T0 + secs(1.0),
        flow_id: flow.id,
        phase: ConsentPhase::PreConsent,
        url: "https://api.example.com/t?imei=490154203237518".to_owned(),
        host: "api.example.com".to_owned(),
        method: "GET".to_owned(),
        place: "url".to_owned(),
        identifier: "imei".to_owned(),
        encoding: "plain".to_owned(),
        decoded_from: vec!["query".to_owned()],
        detector: DetectorKind::Profile,
        confidence: Confidence::High,
        party: Party::Third,
        sdk: Some(sdk()),
        violations: vec![Violation::PreConsent, Violation::ThirdParty],
        evidence: "imei=490154203237518".to_owned(),
        value: None,
    }
}

fn done(flow: Flow) -> SessionEvent {
    SessionEvent::FlowDone(Arc::new(flow))
}

/// A plain GET started `at` seconds after T0.
fn get(at: f64) -> Flow {
    http_flow(at, "GET", "https://a.example.com/", b"", b"")
}

fn read_har(path: &Path) -> Value {
    let text = fs::read_to_string(path).expect("session.har readable");
    serde_json::from_str(&text).expect("session.har is valid JSON")
}

fn entry_count(path: &Path) -> usize {
    read_har(path)["log"]["entries"]
        .as_array()
        .map_or(0, Vec::len)
}

fn writer_in(dir: &tempfile::TempDir, rewrite_every: Duration) -> HarWriter {
    HarWriter::create(dir.path(), options(rewrite_every)).expect("creating the HAR writer")
}

fn feed(writer: &mut HarWriter, events: impl IntoIterator<Item = SessionEvent>) {
    for event in events {
        writer.handle(&event).expect("handling an event");
    }
}

/// Feeds `events` into a fresh writer and returns the finalized HAR.
fn har_of(events: Vec<SessionEvent>) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = writer_in(&dir, Duration::from_secs(3600));
    feed(&mut writer, events);
    writer.finalize().unwrap();
    read_har(writer.path())
}

#[test]
fn request_fields_are_decoded() {
    let url = "https://api.example.com/v1/t?id=a%20b&q=caf%C3%A9+au+lait&flag#frag";
    let form = b"imei=490154203237518&name=J%C3%BCrgen+M";
    let mut flow = http_flow(1.0, "POST", url, form, b"{}");
    let form_type = "application/x-www-form-urlencoded; charset=utf-8";
    flow.request.as_mut().unwrap().headers = headers(&[
        ("Content-Type", form_type),
        ("Cookie", "sid=abc123; theme=dark"),
        ("cookie", "late=1"),
    ]);
    let har = har_of(vec![done(flow)]);
    let mut request = har["log"]["entries"][0]["request"].clone();
    assert_eq!(request["headers"].as_array().map(Vec::len), Some(3));
    request["headers"] = json!("checked");
    assert_eq!(
        request,
        json!({
            "method": "POST", "url": url, "httpVersion": "HTTP/1.1", "headers": "checked",
            "cookies": [{"name": "sid", "value": "abc123"}, {"name": "theme", "value": "dark"},
                        {"name": "late", "value": "1"}],
            "queryString": [{"name": "id", "value": "a b"}, {"name": "q", "value": "café au lait"},
                            {"name": "flag", "value": ""}],
            "postData": {"mimeType": form_type, "text": "imei=490154203237518&name=J%C3%BCrgen+M",
                         "params": [{"name": "imei", "value": "490154203237518"},
                                    {"name": "name", "value": "Jürgen M"}]},
            "headersSize": -1, "bodySize": 39,
        })
    );
}

#[test]
fn response_fields_timings_and_identity() {
    let mut flow = http_flow(2.0, "GET", "https://api.example.com/img", b"", b"");
    let resp = flow.response.as_mut().unwrap();
    resp.status = 302;
    let expires = "Expires=Wed, 21 Oct 2026 07:28:00 GMT";
    let set_cookie = format!("uid=42; Path=/; Domain=example.com; {expires}; HttpOnly; Secure");
    resp.headers = headers(&[
        ("Content-Type", "image/png"),
        ("Location", "https://cdn.example.com/img.png"),
        ("Set-Cookie", &set_cookie),
        ("Set-Cookie", "odd=1; expires=someday"),
    ]);
    resp.body = BodyRecord {
        wire_size: 5,
        decoded_size: 700,
        content_encoding: vec!["gzip"],
        captured: Bytes::from_static(&[0x89, b'P', b'N', b'G', 0xff, 0x00, 0xfe]),
        truncated: true,
        complete: true,
        decode_error: None,
    };
    let id = flow.id;
    let har = har_of(vec![done(flow)]);
    let entry = &har["log"]["entries"][0];
    assert_eq!(entry["startedDateTime"], "2025-03-01T10:00:02.000Z");
    assert_eq!(entry["time"], 250.0);
    assert_eq!(entry["connection"], "51234");
    assert_eq!(entry["pageref"], "phase-1-pre-consent");
    assert!(entry.get("serverIPAddress").is_none(), "unknown: left out");
    assert!(
        entry["request"].get("postData").is_none(),
        "no body, no postData"
    );
    assert_eq!(entry["cache"], json!({}));
    assert_eq!(
        entry["timings"],
        json!({"blocked": -1.0, "dns": -1.0, "connect": -1.0, "ssl": -1.0,
               "send": 10.0, "wait": 190.0, "receive": 50.0})
    );
    let mut response = entry["response"].clone();
    response["headers"] = json!("checked");
    assert_eq!(
        response,
        json!({
            "status": 302, "statusText": "Found", "httpVersion": "HTTP/1.1", "headers": "checked",
            "cookies": [
                {"name": "uid", "value": "42", "path": "/", "domain": "example.com",
                 "expires": "2026-10-21T07:28:00.000Z", "httpOnly": true, "secure": true},
                {"name": "odd", "value": "1", "comment": "expires: someday"}],
            "content": {"size": 700, "compression": 695, "mimeType": "image/png",
                        "text": "iVBOR/8A/g==", "encoding": "base64", "_truncated": true,
                        "comment": "captured the first 7 of 700 decoded bytes (--body-limit)"},
            "redirectURL": "https://cdn.example.com/img.png", "headersSize": -1, "bodySize": 5,
        })
    );
    // Unlabelled: the page gives the phase, nothing gives party or SDK.
    assert_eq!(
        entry["_leakscope"],
        json!({"flow_id": id, "kind": "http", "phase": "pre-consent", "party": null, "sdk": null,
               "findings": [], "tls": null, "error": null, "client": "10.0.0.7:51234"})
    );
}

#[test]
fn failed_flow_keeps_required_fields_and_its_error() {
    let mut flow = get(1.0);
    flow.response = None;
    flow.timing.response_start = None;
    flow.set_error(FlowErrorKind::UpstreamUnreachable, "connection refused");
    let har = har_of(vec![done(flow)]);
    let entry = &har["log"]["entries"][0];
    assert_eq!(entry["response"]["status"], 0);
    assert_eq!(entry["response"]["content"]["mimeType"], "x-unknown");
    // Unknown required timings are 0, never -1.
    assert_eq!(
        (&entry["timings"]["wait"], &entry["timings"]["receive"]),
        (&json!(0.0), &json!(0.0))
    );
    assert_eq!(entry["_leakscope"]["error"]["kind"], "upstream-unreachable");
}

#[test]
fn findings_and_labels_are_embedded_as_findings_jsonl_has_them() {
    let flow = http_flow(
        1.0,
        "GET",
        "https://api.example.com/t?imei=490154203237518",
        b"",
        b"",
    );
    let found = finding(&flow);
    let expected = serde_json::to_value(&found).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut writer = writer_in(&dir, Duration::ZERO);
    let flow_labels = labels(&flow, ConsentPhase::PreConsent);
    feed(
        &mut writer,
        [flow_labels, SessionEvent::Finding(Arc::new(found))],
    );
    assert_eq!(writer.retained_flows(), 1);
    feed(&mut writer, [done(flow)]);
    assert_eq!(
        writer.retained_flows(),
        0,
        "a completed flow's findings are let go"
    );
    writer.flush().unwrap();
    let har = read_har(writer.path());
    let extra = &har["log"]["entries"][0]["_leakscope"];
    assert_eq!(extra["findings"], json!([expected]));
    assert_eq!(extra["party"], "third");
    assert_eq!(extra["sdk"], serde_json::to_value(sdk()).unwrap());
    assert_eq!(extra["phase"], "pre-consent");
}

#[test]
fn websocket_messages_use_chromes_format() {
    let mut flow = http_flow(1.0, "GET", "wss://ws.example.com/socket", b"", b"");
    flow.kind = FlowKind::WebSocket;
    // As the proxy records it today: no response head for the upgrade.
    flow.response = None;
    let msg = |direction, opcode, data: &'static [u8], length| WsMessage {
        time: T0 + secs(1.5),
        direction,
        opcode,
        length,
        data: Bytes::from_static(data),
        truncated: length > data.len(),
    };
    let (up, down) = (Direction::Upstream, Direction::Downstream);
    flow.websocket = Some(WebSocketRecord {
        messages: vec![
            msg(up, "text", b"oaid=abc", 8),
            msg(down, "binary", &[0, 1, 2, 255], 4),
            msg(up, "ping", b"", 0),
            msg(down, "text", b"\xff\xfe", 900),
            msg(up, "close", b"\x03\xe8", 2),
        ],
        messages_dropped: 3,
    });
    let har = har_of(vec![done(flow)]);
    let entry = &har["log"]["entries"][0];
    let t = 1_740_823_201.5;
    assert_eq!(
        entry["_webSocketMessages"],
        json!([
            {"type": "send", "time": t, "opcode": 1, "data": "oaid=abc"},
            {"type": "receive", "time": t, "opcode": 2, "data": "AAEC/w=="},
            {"type": "send", "time": t, "opcode": 9, "data": ""},
            {"type": "receive", "time": t, "opcode": 1, "data": "//4=", "_encoding": "base64", "_length": 900},
            {"type": "send", "time": t, "opcode": 8, "data": "A+g=", "_encoding": "base64"},
        ])
    );
    assert_eq!(entry["_leakscope"]["kind"], "web-socket");
    assert_eq!(entry["_resourceType"], "websocket");
    assert_eq!(entry["_leakscope"]["ws_messages_dropped"], 3);
    assert_eq!(entry["response"]["status"], 101, "implied by the messages");
    assert_eq!(entry["response"]["statusText"], "Switching Protocols");
}

#[test]
fn tunnels_and_refused_handshakes_are_listed_not_entries() {
    let addr = "10.0.0.7:40000".parse().unwrap();
    let mut tunnel = Flow::new(FlowKind::Tunnel, addr);
    tunnel.timing.start = T0 + secs(1.0);
    tunnel.timing.end = Some(T0 + secs(3.0));
    tunnel.tunnel = Some(TunnelRecord {
        host: "pinned.example.com".to_owned(),
        port: 443,
        reason: TunnelReason::IgnoredHost,
        bytes_up: Some(517),
        bytes_down: Some(4096),
        first_bytes_hex: Some("160301".to_owned()),
    });
    let mut refused = Flow::new(FlowKind::TlsRefused, addr);
    refused.timing.start = T0 + secs(2.0);
    let alert = "received fatal alert: UnknownCA";
    refused.tls = Some(TlsFacts {
        mode: TlsMode::Refused,
        sni: Some("bank.example.com".to_owned()),
        alpn_offered: vec!["h2".to_owned()],
        alert: Some(alert.to_owned()),
    });
    refused.set_error(FlowErrorKind::ClientTls, alert);
    let (tunnel_id, refused_id) = (tunnel.id, refused.id);
    let har = har_of(vec![done(tunnel), done(refused)]);
    let log = &har["log"];
    assert_eq!(log["entries"], json!([]));
    assert_eq!(
        log["_leakscope"]["tunnels"],
        json!([{"flow_id": tunnel_id, "host": "pinned.example.com", "port": 443,
                "sni": null, "alert": null,
                "reason": "ignored-host", "bytes_up": 517, "bytes_down": 4096,
                "first_bytes_hex": "160301", "tls": null, "client": "10.0.0.7:40000",
                "started": "2025-03-01T10:00:01.000Z", "ended": "2025-03-01T10:00:03.000Z",
                "error": null}])
    );
    assert_eq!(
        log["_leakscope"]["tls_refused"],
        json!([{"flow_id": refused_id, "host": "bank.example.com", "sni": "bank.example.com",
                "alert": alert, "client": "10.0.0.7:40000", "port": null, "reason": null,
                "bytes_up": null, "bytes_down": null, "first_bytes_hex": null,
                "tls": {"mode": "refused", "sni": "bank.example.com", "alpn_offered": ["h2"],
                        "alert": alert},
                "started": "2025-03-01T10:00:02.000Z", "ended": null,
                "error": {"kind": "client-tls", "message": alert}}])
    );
    assert_eq!(log["_leakscope"]["tunnels_dropped"], 0);
    assert_eq!(log["_leakscope"]["tls_refused_dropped"], 0);
}

#[test]
fn connection_records_are_bounded_and_the_rest_counted() {
    let mut records = Records::default();
    let flow = Flow::new(FlowKind::Tunnel, "10.0.0.7:1".parse().unwrap());
    for _ in 0..MAX_CONNECTION_RECORDS + 5 {
        records.push(&connection_record(&flow)).unwrap();
    }
    assert_eq!(records.kept.len(), MAX_CONNECTION_RECORDS);
    assert_eq!(records.dropped, 5);
}

#[test]
fn phases_become_pages_and_entries_point_at_theirs() {
    use ConsentPhase::{Consented, PreConsent};
    let switch = |phase, at| {
        SessionEvent::PhaseChanged(PhaseChange {
            phase,
            since: T0 + secs(at),
        })
    };
    // Started a moment after the switch, but the inspector had read the
    // clock before it: the labels win.
    let (straddling, back) = (get(10.001), get(31.0));
    let (straddling_labels, back_labels) =
        (labels(&straddling, PreConsent), labels(&back, PreConsent));
    let har = har_of(vec![
        done(get(1.0)),
        switch(Consented, 10.0),
        straddling_labels,
        done(straddling),
        done(get(12.0)),
        switch(PreConsent, 30.0),
        back_labels,
        done(back),
    ]);
    let log = &har["log"];
    assert_eq!(
        log["pages"],
        json!([
            {"startedDateTime": "2025-03-01T10:00:00.000Z", "id": "phase-1-pre-consent",
             "title": "pre-consent (from 10:00:00)", "pageTimings": {"onContentLoad": -1, "onLoad": -1}},
            {"startedDateTime": "2025-03-01T10:00:10.000Z", "id": "phase-2-consented",
             "title": "consented (from 10:00:10)", "pageTimings": {"onContentLoad": -1, "onLoad": -1}},
            {"startedDateTime": "2025-03-01T10:00:30.000Z", "id": "phase-3-pre-consent",
             "title": "pre-consent (from 10:00:30)", "pageTimings": {"onContentLoad": -1, "onLoad": -1}},
        ])
    );
    let refs: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["pageref"])
        .collect();
    let [one, two, three] = [
        "phase-1-pre-consent",
        "phase-2-consented",
        "phase-3-pre-consent",
    ];
    assert_eq!(refs, [one, one, two, three]);
}

#[test]
fn flush_rewrites_atomically_when_due_and_drop_writes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = writer_in(&dir, Duration::ZERO);
    let har = read_har(writer.path());
    assert_eq!(har["log"]["entries"], json!([]), "valid from the start");
    assert_eq!(har["log"]["version"], "1.2");
    let creator = json!({"name": "leakscope", "version": env!("CARGO_PKG_VERSION")});
    assert_eq!(har["log"]["creator"], creator);
    assert_eq!(
        har["log"]["_leakscope"]["session_start"],
        "2025-03-01T10:00:00.000Z"
    );
    feed(&mut writer, [done(get(1.0))]);
    writer.flush().unwrap();
    assert_eq!(entry_count(writer.path()), 1);
    assert!(!dir.path().join("session.har.tmp").exists(), "renamed away");

    writer.options.rewrite_every = Duration::from_secs(3600);
    feed(&mut writer, [done(get(2.0))]);
    writer.flush().unwrap();
    assert_eq!(entry_count(writer.path()), 1, "not due: the file stays");
    writer.finalize().unwrap();
    assert_eq!(entry_count(writer.path()), 2);
    feed(&mut writer, [done(get(3.0))]);
    writer.flush().unwrap();
    let spool = dir.path().join(".session.har.spool");
    assert!(spool.exists());
    drop(writer);
    assert_eq!(
        entry_count(&dir.path().join("session.har")),
        3,
        "drop finalizes"
    );
    assert!(!spool.exists(), "the spool goes once the HAR has it all");
}

#[test]
fn restart_never_clobbers_an_earlier_session() {
    let dir = tempfile::tempdir().unwrap();
    let first = writer_in(&dir, Duration::ZERO);
    assert_eq!(first.path(), dir.path().join("session.har"));
    drop(first);
    let second = writer_in(&dir, Duration::ZERO);
    assert_eq!(second.path(), dir.path().join("session-2.har"));
    // A spool left by a killed session is evidence too.
    let stale = dir.path().join(".session-3.har.spool");
    fs::write(&stale, b"{}\n").unwrap();
    let fourth = writer_in(&dir, Duration::ZERO);
    assert_eq!(fourth.path(), dir.path().join("session-4.har"));
    assert_eq!(fs::read(&stale).unwrap(), b"{}\n");
}

#[test]
fn a_half_written_spool_line_never_reaches_the_har() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = writer_in(&dir, Duration::ZERO);
    feed(&mut writer, [done(get(1.0))]);
    writer.finalize().unwrap();
    // What a crash between two writes would leave behind.
    let mut spool = OpenOptions::new()
        .append(true)
        .open(&writer.spool_path)
        .unwrap();
    spool.write_all(b"{\"pageref\":\"phase-1").unwrap();
    writer.finalize().unwrap();
    assert_eq!(entry_count(writer.path()), 1);
}

#[test]
fn orphaned_labels_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = writer_in(&dir, Duration::ZERO);
    let mut flow = Flow::new(FlowKind::Http, "10.0.0.7:1".parse().unwrap());
    for id in 0..(MAX_PENDING_FLOWS as u64 + 10) {
        flow.id = 1_000_000_000 + id;
        feed(&mut writer, [labels(&flow, ConsentPhase::Consented)]);
    }
    assert_eq!(writer.retained_flows(), MAX_PENDING_FLOWS);
    assert_eq!(writer.pending_evicted, 10);
}

#[test]
fn form_decoding_never_panics_on_odd_input() {
    use har_model::{form_decode, parse_cookie_header, parse_set_cookie, query_params};
    assert_eq!(form_decode("%"), "%");
    assert_eq!(form_decode("%4"), "%4");
    assert_eq!(form_decode("%zz%41"), "%zzA");
    assert_eq!(form_decode("%ff"), "\u{fffd}");
    assert_eq!(form_decode("%C3%A9"), "é");
    assert_eq!(query_params("https://x/?"), Vec::new());
    assert_eq!(query_params("https://x/#?a=1"), Vec::new());
    assert!(parse_set_cookie("no-pair; Path=/").is_none());
    assert_eq!(parse_cookie_header("lonely")[0].value, "lonely");
}

/// Env var that makes [`many_flows_child`] do its work (it runs in a
/// process of its own so no other test's memory is counted).
const CHILD_ENV: &str = "LEAKSCOPE_HAR_MEMORY_CHILD";

#[test]
#[cfg(target_os = "linux")]
fn memory_stays_flat_over_100_000_flows() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            "sinks::har::tests::many_flows_child",
            "--ignored",
        ])
        .arg("--nocapture")
        .env(CHILD_ENV, "1")
        .output()
        .expect("running the test binary again");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprint!("{stderr}");
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("HAR memory:"),
        "the child ran no measurement:\n{stdout}\n{stderr}"
    );
}

/// `/proc/self/status` field in KiB.
#[cfg(target_os = "linux")]
fn proc_status_kib(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix(field));
    let kib = line.and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok());
    kib.unwrap_or_else(|| panic!("{field} missing from /proc/self/status"))
}

#[test]
#[ignore = "run by memory_stays_flat_over_100_000_flows in its own process"]
#[cfg(target_os = "linux")]
fn many_flows_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    const FLOWS: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let mut writer = writer_in(&dir, Duration::from_secs(2));
    let template = http_flow(1.0, "GET", "https://a.example.com/t?imei=1", b"", b"{}");
    let found = finding(&template);
    // Resetting the high-water mark makes VmHWM the peak of this loop
    // alone; where the kernel refuses, the start-up peak counts too.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let before = proc_status_kib("VmRSS:");
    let started = Instant::now();
    for i in 0..FLOWS {
        let mut flow = template.clone();
        flow.id = 10_000_000 + i;
        flow.timing.start = T0 + secs(i as f64 * 0.01);
        feed(&mut writer, [labels(&flow, ConsentPhase::PreConsent)]);
        if i % 10 == 0 {
            let finding = Arc::new(Finding {
                flow_id: flow.id,
                ..found.clone()
            });
            feed(&mut writer, [SessionEvent::Finding(finding)]);
        }
        feed(&mut writer, [done(flow)]);
        if i % 1000 == 999 {
            // What the hub does whenever its queue runs dry.
            writer.flush().unwrap();
        }
    }
    writer.finalize().unwrap();
    let peak = proc_status_kib("VmHWM:");
    let elapsed = started.elapsed();
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    let har_mib = fs::metadata(writer.path()).unwrap().len() as f64 / (1024.0 * 1024.0);
    eprintln!(
        "HAR memory: {FLOWS} flows, peak RSS growth {growth_mib:.1} MiB (RSS before {:.1} MiB), \
         session.har {har_mib:.1} MiB, {:.1} s",
        before as f64 / 1024.0,
        elapsed.as_secs_f64()
    );
    assert_eq!(writer.retained_flows(), 0);
    assert!(growth_mib < 50.0, "peak RSS grew by {growth_mib:.1} MiB");

    // The assembled file is whole: every entry, valid JSON throughout.
    #[derive(serde::Deserialize)]
    struct Har {
        log: Log,
    }
    #[derive(serde::Deserialize)]
    struct Log {
        entries: Vec<serde::de::IgnoredAny>,
    }
    let file = BufReader::new(File::open(writer.path()).unwrap());
    let har: Har = serde_json::from_reader(file).expect("the 100,000-entry HAR parses");
    assert_eq!(har.log.entries.len() as u64, FLOWS);
}
