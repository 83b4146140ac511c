use super::*;
use serde_json::json;

fn session_json(dir: &Path) {
    let info = json!({
        "leakscope_version": "0.1.0", "mode": "run",
        "started": "2026-11-28T20:00:00Z", "ended": "2026-11-28T20:10:00Z",
        "device_model": "Pixel <7>", "app": "com.example.shop", "source": null,
        "phases": [{"phase": "pre-consent", "since": "2026-11-28T20:00:00Z"},
                   {"phase": "consented", "since": "2026-11-28T20:05:00Z"}],
        "flows": 1, "findings": 1
    });
    std::fs::write(dir.join("session.json"), info.to_string()).unwrap();
}

#[test]
fn missing_directory_and_files_are_named_with_the_command_that_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nope");
    let err = write_report(&gone).unwrap_err().to_string();
    assert!(
        err.contains("nope") && err.contains("not a directory"),
        "{err}"
    );

    let err = write_report(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("session.json") && err.contains("leakscope run"),
        "{err}"
    );
    session_json(dir.path());
    let err = write_report(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("flows.jsonl") && err.contains("leakscope run"),
        "{err}"
    );
    std::fs::write(dir.path().join("flows.jsonl"), "").unwrap();
    let err = write_report(dir.path()).unwrap_err().to_string();
    assert!(err.contains("findings.jsonl"), "{err}");
    std::fs::write(dir.path().join("session.json"), "{\"mode\":").unwrap();
    let err = write_report(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("session.json") && err.contains("not a readable"),
        "{err}"
    );
}

#[test]
fn an_empty_session_still_gets_a_report() {
    let dir = tempfile::tempdir().unwrap();
    session_json(dir.path());
    std::fs::write(dir.path().join("flows.jsonl"), "").unwrap();
    std::fs::write(dir.path().join("findings.jsonl"), "").unwrap();
    let (files, text) = write_report(dir.path()).unwrap();
    assert!(files.html.is_file() && files.summary.is_file());
    assert!(!dir.path().join("report.html.tmp").exists());
    assert!(text.contains("Findings: 0"), "{text}");
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("No personal identifiers were found"));
    assert!(html.contains("Pixel &lt;7&gt;"));
}

#[test]
fn evidence_and_hosts_are_escaped_and_the_text_summary_is_short() {
    let dir = tempfile::tempdir().unwrap();
    session_json(dir.path());
    std::fs::write(dir.path().join("flows.jsonl"), "").unwrap();
    let mut lines = String::new();
    for i in 0..30 {
        let finding = json!({
            "ts": "2026-11-28T20:00:01Z", "flow_id": i, "phase": "pre-consent",
            "url": "https://x.example/?q=\"><img src=x onerror=alert(1)>",
            "host": format!("h{i}.example\u{1b}[31m<b>"), "method": "GET", "where": "url",
            "identifier": "imei", "encoding": "plain", "decoded_from": [], "detector": "profile",
            "confidence": "high", "party": "third", "sdk": null,
            "violations": ["pre-consent", "<script>"],
            "evidence": "</pre><script>alert('x')</script>"
        });
        lines.push_str(&finding.to_string());
        lines.push('\n');
    }
    std::fs::write(dir.path().join("findings.jsonl"), lines).unwrap();
    let (files, text) = write_report(dir.path()).unwrap();
    assert!(text.lines().count() <= 25, "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "terminal escapes must not pass through: {text}"
    );
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(!html.contains("<script"), "unescaped script");
    assert!(!html.contains("<img"), "unescaped markup");
    assert!(html.contains("&lt;/pre&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    // An unknown violation name never reaches a class attribute.
    assert!(html.contains("class=\"v v-other\">&lt;script&gt;</span>"));
}
