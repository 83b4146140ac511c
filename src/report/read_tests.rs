use super::*;
use std::io::Cursor;

#[derive(Debug, Deserialize, PartialEq)]
struct Rec {
    n: u32,
}

fn parse(text: &str, max: usize) -> (Vec<u32>, u64) {
    let mut seen = Vec::new();
    let bad =
        for_each_line_max(Cursor::new(text.as_bytes()), max, |r: Rec| seen.push(r.n)).unwrap();
    (seen, bad)
}

#[test]
fn truncated_last_line_and_garbage_are_counted_not_fatal() {
    let text = "{\"n\":1}\nnot json at all\n\n{\"n\":2}\r\n{\"n\":3,\"ext";
    assert_eq!(parse(text, MAX_LINE), (vec![1, 2], 2));
}

#[test]
fn a_final_line_without_newline_is_read() {
    assert_eq!(parse("{\"n\":1}\n{\"n\":2}", MAX_LINE), (vec![1, 2], 0));
    assert_eq!(parse("", MAX_LINE), (vec![], 0));
}

#[test]
fn over_long_lines_are_skipped_whole_and_reading_resumes() {
    let long = format!("{{\"n\":9,\"pad\":\"{}\"}}", "x".repeat(100));
    let text = format!("{{\"n\":1}}\n{long}\n{{\"n\":2}}\n{long}");
    assert_eq!(parse(&text, 64), (vec![1, 2], 2));
}

#[test]
fn invalid_utf8_is_a_malformed_line() {
    let mut bytes = b"{\"n\":1}\n{\"n\":\"\xff\xfe\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"n\":4}\n");
    let mut seen = Vec::new();
    let bad = for_each_line(Cursor::new(bytes), |r: Rec| seen.push(r.n)).unwrap();
    assert_eq!((seen, bad), (vec![1, 4], 1));
}

#[test]
fn flow_host_follows_the_flow_record_precedence() {
    let http: FlowLine = serde_json::from_str(
        r#"{"id":1,"kind":"http","client_addr":"127.0.0.1:5","timing":{"start":"2026-11-28T20:00:00Z"},
            "request":{"host":"a.example","method":"GET"},"tls":{"sni":"b.example","alert":null}}"#,
    )
    .unwrap();
    assert_eq!(http.host(), "a.example");
    let refused: FlowLine = serde_json::from_str(
        r#"{"id":2,"kind":"tls-refused","timing":{"start":"2026-11-28T20:00:00Z"},
            "tls":{"mode":"refused","sni":"pinned.example","alpn_offered":[],"alert":"UnknownCA"}}"#,
    )
    .unwrap();
    assert_eq!(refused.host(), "pinned.example");
}

fn har(entries: &str) -> String {
    format!(
        r#"{{"log":{{"version":"1.2","creator":{{"name":"x","version":"1"}},"pages":[],
        "entries":[{entries}],"_leakscope":{{"tls_refused":[]}}}}}}"#
    )
}

#[test]
fn har_entries_stream_with_their_sdk_and_bodies_are_skipped() {
    let body = "y".repeat(100_000);
    let entries = format!(
        r#"{{"startedDateTime":"2026-11-28T20:00:01.000Z","request":{{"url":"https://User@Log.Umeng.com:443/x?y","postData":{{"text":"{body}"}}}},
            "_leakscope":{{"flow_id":7,"phase":"pre-consent","sdk":{{"name":"Umeng","vendor":"Alibaba","category":"analytics"}},"findings":[]}}}},
           42,
           {{"request":{{"url":"http://[::1]:8080/"}},"_leakscope":{{"flow_id":8,"sdk":null}}}}"#
    );
    let mut seen = Vec::new();
    for_each_har_entry(Cursor::new(har(&entries)), |e| seen.push(e)).unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].host().as_deref(), Some("log.umeng.com"));
    assert!(seen[0].started_at().is_some());
    let extra = seen[0].leakscope.as_ref().unwrap();
    assert_eq!(extra.flow_id, Some(7));
    assert_eq!(extra.sdk.as_ref().unwrap().name, "Umeng");
    assert_eq!(seen[1].host().as_deref(), Some("::1"));
    assert!(seen[1].leakscope.as_ref().unwrap().sdk.is_none());
}

#[test]
fn a_truncated_har_delivers_what_came_before_and_reports_an_error() {
    let text = har(r#"{"_leakscope":{"flow_id":1}},{"_leakscope":{"flow_id":2}}"#);
    let cut = &text[..text.find(r#"{"flow_id":2"#).unwrap() + 5];
    let mut ids = Vec::new();
    let result = for_each_har_entry(Cursor::new(cut), |e| {
        ids.push(e.leakscope.and_then(|l| l.flow_id));
    });
    assert!(result.is_err());
    assert_eq!(ids, vec![Some(1)]);
    // Not a HAR at all: an error, no entries, no panic.
    assert!(for_each_har_entry(Cursor::new("[1,2]"), |_| panic!("no entries")).is_err());
}
