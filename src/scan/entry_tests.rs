use super::*;
use crate::scan::har_input::read_har_bytes;
use std::io::Write;

/// Converts the first entry of a HAR given as `log.entries[0]`'s JSON.
fn one(entry: &str) -> Result<(ScanEntry, Vec<Problem>), Problem> {
    let text = format!(r#"{{"log": {{"entries": [{entry}]}}}}"#);
    let log = read_har_bytes(text.as_bytes(), "t.har").expect("a HAR");
    let root = JsonPath::root("log");
    let list = root.key("entries");
    let raw = log.entries.into_iter().next().expect("one entry");
    convert(raw, &list.index(0))
}

fn ok(entry: &str) -> (ScanEntry, Vec<String>) {
    let (entry, warnings) = one(entry).expect("a usable entry");
    (entry, warnings.iter().map(ToString::to_string).collect())
}

fn at(time: &str) -> OffsetDateTime {
    OffsetDateTime::parse(time, &Rfc3339).unwrap()
}

#[test]
fn a_chrome_entry_becomes_a_request_like_the_proxy_records() {
    let (entry, warnings) = ok(r#"{
        "startedDateTime": "2024-05-01T10:00:00.000Z", "time": 50,
        "request": {"method": "POST", "url": "https://t.example.com:8443/c?imei=1",
            "httpVersion": "h2",
            "headers": [{"name": ":authority", "value": "t.example.com:8443"},
                        {"name": ":path", "value": "/c?imei=1"},
                        {"name": "content-type", "value": "application/json"},
                        {"name": "x-count", "value": 3}],
            "postData": {"mimeType": "application/json", "text": "{\"a\":1}"}},
        "response": {"status": 200, "httpVersion": "http/2.0", "headers": [],
            "content": {"size": 3, "mimeType": "text/plain", "text": "b2s=", "encoding": "base64"}},
        "timings": {"blocked": 2, "dns": -1, "connect": 10, "ssl": 8, "send": 1, "wait": 30, "receive": 7},
        "_initiator": {"type": "script"}, "_resourceType": "fetch"
    }"#);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(entry.kind, FlowKind::Http);
    let request = &entry.request;
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://t.example.com:8443/c?imei=1");
    assert_eq!(
        (request.host.as_str(), request.port),
        ("t.example.com", 8443)
    );
    assert_eq!(request.http_version, "HTTP/2.0");
    let names: Vec<_> = request.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["content-type", "x-count"], "pseudo-headers dropped");
    assert_eq!(request.headers[1].value, "3");
    assert_eq!(entry.request_body.as_deref(), Some(&b"{\"a\":1}"[..]));
    let response = entry.response.unwrap();
    assert_eq!(response.record.status, 200);
    assert_eq!(response.record.http_version, "HTTP/2.0");
    assert_eq!(response.body.as_deref(), Some(&b"ok"[..]));
    assert_eq!(entry.client_addr.to_string(), "0.0.0.0:0");
    // blocked 2 + connect 10 (ssl is inside connect) + send 1, then wait 30.
    let start = at("2024-05-01T10:00:00Z");
    let t = &entry.timing;
    assert_eq!(t.start, start);
    assert_eq!(t.request_end, Some(start + Duration::milliseconds(13)));
    assert_eq!(t.response_start, Some(start + Duration::milliseconds(43)));
    assert_eq!(t.end, Some(start + Duration::milliseconds(50)));
}

#[test]
fn unusable_entries_name_the_json_path() {
    let problem =
        one(r#"{"startedDateTime": "2024-05-01T10:00:00Z", "request": {"method": "GET"}}"#)
            .unwrap_err();
    assert_eq!(problem.to_string(), "log.entries[0].request.url: missing");
    let problem =
        one(r#"{"startedDateTime": "yesterday", "request": {"url": "http://a/"}}"#).unwrap_err();
    assert_eq!(
        problem.to_string(),
        r#"log.entries[0].startedDateTime: "yesterday" is not an RFC 3339 date and time"#
    );
    let problem = one(r#"{"startedDateTime": "2024-05-01T10:00:00Z"}"#).unwrap_err();
    assert_eq!(problem.to_string(), "log.entries[0].request: missing");
    let problem =
        one(r#"{"startedDateTime": "2024-05-01T10:00:00Z", "request": {"url": 7}}"#).unwrap_err();
    assert!(
        problem
            .to_string()
            .starts_with("log.entries[0].request.url: invalid type")
    );
    let problem =
        one(r#"{"startedDateTime": "2024-05-01T10:00:00Z", "request": {"url": "/relative"}}"#)
            .unwrap_err();
    assert!(problem.message.contains("has no host"), "{problem}");
    assert_eq!(one("17").unwrap_err().path, "log.entries[0]");
}

#[test]
fn odd_members_are_warnings_and_the_entry_still_replays() {
    let (entry, warnings) = ok(r#"{
        "startedDateTime": "2024-05-01T10:00:00",
        "time": "slow",
        "request": {"url": "http://a.test/p", "headers": [{"value": "x"}, 5],
            "postData": {"text": "not*base64", "encoding": "base64"}},
        "response": {"status": 200.5}
    }"#);
    let expected = [
        "log.entries[0].startedDateTime: no UTC offset; UTC assumed",
        "log.entries[0].request.headers[0].name: missing; header skipped",
        "log.entries[0].request.method: missing; GET assumed",
        "log.entries[0].request.postData.text: marked base64 but is not valid base64; scanned as text",
        "log.entries[0].response.status: 200.5 is not an HTTP status",
        "log.entries[0].time: invalid type: string \"slow\", expected f64",
    ];
    for text in expected {
        assert!(warnings.iter().any(|w| w == text), "{text}\n{warnings:#?}");
    }
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("log.entries[0].request.headers[1]:"))
    );
    assert_eq!(entry.request.method, "GET");
    assert_eq!(entry.request_body.as_deref(), Some(&b"not*base64"[..]));
    assert!(entry.response.is_none());
    assert_eq!(
        entry.error.as_deref(),
        Some("no response in the HAR (status 0)")
    );
}

#[test]
fn base64_in_the_forms_writers_produce() {
    for text in ["aGVsbG8=", "aGVsbG8", "aGVs\nbG8=", "aGVsbG8_"] {
        let mut warnings = Vec::new();
        let root = JsonPath::root("x");
        let decoded = decode_or_keep(text.to_owned(), &root, &mut warnings);
        assert!(decoded.starts_with(b"hello"), "{text:?}");
        assert!(warnings.is_empty(), "{text:?}");
    }
}

#[test]
fn form_params_without_text_are_rebuilt() {
    let (entry, _) = ok(r#"{"startedDateTime": "2024-05-01T10:00:00Z",
        "request": {"method": "POST", "url": "http://a.test/",
            "postData": {"mimeType": "application/x-www-form-urlencoded",
                "params": [{"name": "oaid", "value": "5f3c"}, {"name": "n o", "value": "a&b=c"}]}}}"#);
    assert_eq!(
        entry.request_body.as_deref(),
        Some(&b"oaid=5f3c&n%20o=a%26b%3Dc"[..])
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
fn content_encoding_is_undone_only_when_the_bytes_are_encoded() {
    let headers = |value: &str| {
        vec![Header {
            name: "Content-Encoding".into(),
            value: value.into(),
        }]
    };
    let json = br#"{"imei":"490154203237518"}"#;
    // Decoded already (what Chrome and mitmproxy store): no decoding.
    assert_eq!(encoding_to_undo(&headers("gzip"), json), None);
    assert_eq!(encoding_to_undo(&headers("br"), json), None);
    // Still compressed: decode.
    let compressed = gzip(json);
    assert_eq!(
        encoding_to_undo(&headers("gzip"), &compressed).as_deref(),
        Some("gzip")
    );
    // Binary but not gzip (an image, decoded): no decoding.
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00";
    assert_eq!(encoding_to_undo(&headers("gzip"), png), None);
    // No header, identity, empty body: nothing to undo.
    assert_eq!(encoding_to_undo(&[], &compressed), None);
    assert_eq!(encoding_to_undo(&headers("identity"), &compressed), None);
    assert_eq!(encoding_to_undo(&headers("gzip"), b""), None);
    // An unknown coding over binary: left for the capture to report.
    assert_eq!(
        encoding_to_undo(&headers("snappy"), png).as_deref(),
        Some("snappy")
    );
}

#[test]
fn websocket_messages_from_chrome_devtools_and_chrome_har_capturer() {
    // DevTools and mitmproxy: Unix seconds.
    let (entry, warnings) = ok(r#"{"startedDateTime": "2024-05-01T10:00:00Z",
        "request": {"method": "GET", "url": "wss://push.test/s"},
        "response": {"status": 101},
        "_webSocketMessages": [
            {"type": "send", "time": 1714557601.5, "opcode": 1, "data": "hi"},
            {"type": "receive", "time": 1714557602, "opcode": 2, "data": "AAEC"},
            {"type": "send", "opcode": 9, "data": ""}]}"#);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(entry.kind, FlowKind::WebSocket);
    assert_eq!(entry.request.port, 443);
    let m = &entry.messages;
    assert_eq!(
        (m[0].direction, m[0].opcode, &m[0].payload[..]),
        (Direction::Upstream, "text", &b"hi"[..])
    );
    assert_eq!(
        (m[1].direction, m[1].opcode, &m[1].payload[..]),
        (Direction::Downstream, "binary", &[0u8, 1, 2][..])
    );
    assert_eq!(m[2].opcode, "ping");
    assert_eq!(m[0].time, Some(at("2024-05-01T10:00:01.5Z")));
    assert_eq!(m[2].time, None);

    // chrome-har-capturer: monotonic seconds; `time` runs to the last one.
    let (entry, _) = ok(r#"{"startedDateTime": "2024-05-01T10:00:00Z", "time": 500,
        "request": {"method": "GET", "url": "/ws", "headers": [{"name": "Host", "value": "h.test:81"}]},
        "response": {"status": 101}, "_resourceType": "websocket",
        "_webSocketMessages": [
            {"type": "send", "time": 6627.25, "opcode": 1, "data": "a"},
            {"type": "receive", "time": 6627.5, "opcode": 1, "data": "b"}]}"#);
    assert_eq!(entry.request.url, "http://h.test:81/ws");
    assert_eq!(
        (entry.request.host.as_str(), entry.request.port),
        ("h.test", 81)
    );
    assert_eq!(entry.messages[0].time, Some(at("2024-05-01T10:00:00.25Z")));
    assert_eq!(entry.messages[1].time, Some(at("2024-05-01T10:00:00.5Z")));
}

#[test]
fn failed_requests_keep_the_reason() {
    let (entry, _) = ok(r#"{"startedDateTime": "2024-05-01T10:00:00Z",
        "request": {"method": "GET", "url": "http://a.test/"},
        "response": {"status": 0, "headers": [], "content": {}, "_error": "net::ERR_FAILED"}}"#);
    assert!(entry.response.is_none());
    assert_eq!(
        entry.error.as_deref(),
        Some("no response in the HAR (net::ERR_FAILED)")
    );
}

#[test]
fn leakscope_entries_keep_their_client_address() {
    let (entry, _) = ok(r#"{"startedDateTime": "2024-05-01T10:00:00Z",
        "request": {"method": "GET", "url": "http://a.test/"},
        "_leakscope": {"client": "10.0.2.15:41234"}}"#);
    assert_eq!(entry.client_addr.to_string(), "10.0.2.15:41234");
}

#[test]
fn authorities_and_versions() {
    assert_eq!(
        split_authority("[::1]:8080", 80),
        Some(("::1".into(), 8080))
    );
    assert_eq!(split_authority("[::1]", 443), Some(("::1".into(), 443)));
    assert_eq!(split_authority("::1", 80), Some(("::1".into(), 80)));
    assert_eq!(split_authority("a.test:", 80), Some(("a.test".into(), 80)));
    assert_eq!(split_authority("a.test:99999", 80), None);
    assert_eq!(split_authority("", 80), None);
    let target = locate("http://user:pw@a.test/x", &[], &[]).unwrap();
    assert_eq!((target.host.as_str(), target.port), ("a.test", 80));
    let v = |s: &str| http_version(Some(Text(s.into())));
    assert_eq!(v("http/1.1"), "HTTP/1.1");
    assert_eq!(v("h3-29"), "HTTP/3.0");
    assert_eq!(v("quic"), "quic");
    assert_eq!(http_version(None), "unknown");
}

#[test]
fn times_in_the_forms_writers_use() {
    let zulu = at("2024-05-01T10:00:00Z");
    assert_eq!(parse_time("2024-05-01T10:00:00.000Z"), Some((zulu, false)));
    // mitmproxy: Python's isoformat with microseconds and +00:00.
    assert_eq!(
        parse_time("2024-05-01T10:00:00.000000+00:00"),
        Some((zulu, false))
    );
    assert_eq!(parse_time("2024-05-01T12:00:00+02:00"), Some((zulu, false)));
    assert_eq!(parse_time("2024-05-01T10:00:00"), Some((zulu, true)));
    assert_eq!(parse_time("10:00"), None);
    assert_eq!(parse_time(""), None);
}

#[test]
fn absurd_timings_never_overflow() {
    let (entry, _) = ok(
        r#"{"startedDateTime": "2024-05-01T10:00:00Z", "time": 1e300,
        "request": {"method": "GET", "url": "http://a.test/"},
        "timings": {"send": 1e308, "wait": 1e308, "receive": -5}}"#,
    );
    assert!(entry.timing.end.is_some());
}
