//! `leakscope report` end to end: a session directory written by the real
//! sinks (flows.jsonl, findings.jsonl, session.har, session.json), the
//! report made from it, and the page rendered by headless Chromium.
//!
//! Chromium is required, not optional: without it this test fails and says
//! how to install it, so a machine without a browser never passes the
//! rendering check silently.

#[path = "report/session.rs"]
mod session;

use leakscope::detect::finding::SdkInfo;
use leakscope::report::write_report;
use serde_json::{Value, json};
use session::{at, rfc3339, umeng, write_session};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

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
        if let Ok(out) = found.as_ref().map(|o| (o.status.success(), &o.stdout))
            && out.0
        {
            return PathBuf::from(String::from_utf8_lossy(out.1).trim());
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

#[test]
fn the_report_command_names_what_is_missing() {
    let run = |dir: &Path| {
        Command::new(env!("CARGO_BIN_EXE_leakscope"))
            .arg("report")
            .arg(dir)
            .output()
            .expect("running leakscope report")
    };
    let out = run(Path::new("/nonexistent/leakscope-session"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("/nonexistent/leakscope-session") && stderr.contains("not a directory"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("session.json is missing") && stderr.contains("leakscope run"),
        "{stderr}"
    );

    write_session(dir.path());
    let out = run(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Report:") && stdout.contains("report.html"),
        "{stdout}"
    );
    assert!(dir.path().join("summary.json").is_file());
}
