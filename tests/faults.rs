//! Faults around the evidence: the process killed with SIGKILL mid-session,
//! and the output disk filling up and recovering. The real binary writes
//! to real files; the full disk is a real, tiny tmpfs.

mod common;

use common::bin::{Bin, WAIT, jsonl, profiled_run_args};
use common::origin::{Origin, proxied_client};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The example profile's IMEI: every request below carries it, so every
/// flow has exactly one finding (`imei` in the URL).
const IMEI: &str = "490154203237518";

/// `run` on an ephemeral port with the example profile, trusting `origin`.
fn start(dir: &Path, origin: &Origin) -> (Bin, u16) {
    let mut bin = Bin::spawn(&profiled_run_args(dir, &origin.ca_pem_path));
    let port = bin.wait_for_banner();
    (bin, port)
}

/// Sends `n` GETs carrying the IMEI through the proxy; every one must be
/// relayed (200), whatever state the evidence files are in.
fn send(runtime: &tokio::runtime::Runtime, origin: &Origin, port: u16, tag: &str, n: usize) {
    let proxy = format!("127.0.0.1:{port}").parse().unwrap();
    let client = proxied_client(proxy, &[]);
    runtime.block_on(async {
        for i in 0..n {
            let url = origin.http_url(&format!("/hello?imei={IMEI}&req={tag}-{i}"));
            let res = client.get(&url).send().await.expect("request relayed");
            assert_eq!(res.status(), 200, "{url}");
        }
    });
}

fn har_entries(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("session.har");
    let har: Value = serde_json::from_str(&text).expect("session.har is valid JSON");
    har["log"]["entries"].as_array().cloned().expect("entries")
}

/// The `req=` tags of the URLs in `values` (findings or HAR entries).
fn tags(values: &[Value], url: impl Fn(&Value) -> &Value) -> Vec<String> {
    let mut tags: Vec<String> = values
        .iter()
        .filter_map(|v| url(v).as_str()?.split("req=").nth(1).map(str::to_owned))
        .collect();
    tags.sort();
    tags
}

fn expected_tags(batches: &[(&str, usize)]) -> Vec<String> {
    let mut tags: Vec<String> = batches
        .iter()
        .flat_map(|(tag, n)| (0..*n).map(move |i| format!("{tag}-{i}")))
        .collect();
    tags.sort();
    tags
}

#[test]
fn sigkill_mid_session_keeps_every_printed_finding_and_a_valid_har() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(Origin::start());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (mut bin, port) = start(dir.path(), &origin);

    send(&runtime, &origin, port, "early", 5);
    bin.wait_for_stdout("req=early-4");
    // session.har is rewritten every few seconds: wait for a rewrite that
    // holds the early flows, then make more and kill before the next.
    let deadline = Instant::now() + WAIT;
    while har_entries(&out.join("session.har")).len() < 5 {
        assert!(
            Instant::now() < deadline,
            "session.har never showed the early flows"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    send(&runtime, &origin, port, "late", 3);
    bin.wait_for_stdout("req=late-2");
    bin.signal("KILL");
    let done = bin.finish();
    assert!(!done.status.success(), "SIGKILL ends the process");

    // Everything the process printed before it died, finding lines included.
    let printed = done
        .stdout
        .lines()
        .filter(|l| l.contains(" imei ("))
        .count();
    assert!(printed >= 7, "finding lines printed:\n{}", done.stdout);
    let findings = jsonl(&out.join("findings.jsonl"));
    assert!(
        findings.len() >= printed,
        "{printed} findings printed, {} in findings.jsonl",
        findings.len()
    );
    assert_eq!(
        tags(&findings, |f| &f["url"]),
        expected_tags(&[("early", 5), ("late", 3)]),
        "findings.jsonl holds every finding of every relayed request"
    );
    let entries = har_entries(&out.join("session.har"));
    let kept = tags(&entries, |e| &e["request"]["url"]);
    for tag in expected_tags(&[("early", 5)]) {
        assert!(
            kept.contains(&tag),
            "{tag} missing from session.har: {kept:?}"
        );
    }
}

/// A tmpfs of a few hundred KiB mounted over a directory, unmounted on drop.
struct TinyDisk {
    path: PathBuf,
}

impl TinyDisk {
    fn mount(path: &Path) -> TinyDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "leakscope-test"])
            .arg(path)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (or CAP_SYS_ADMIN) to make a disk it can fill"
        );
        TinyDisk {
            path: path.to_owned(),
        }
    }

    /// Writes a filler file until the disk refuses more.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.flush();
        filler
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_delays_evidence_but_traffic_flows_and_nothing_is_lost() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(Origin::start());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let disk = TinyDisk::mount(&out);
    let (mut bin, port) = start(dir.path(), &origin);

    send(&runtime, &origin, port, "before", 2);
    bin.wait_for_stdout("req=before-1");
    let filler = disk.fill();
    send(&runtime, &origin, port, "full", 10);
    bin.wait_for_stdout("req=full-9");
    let alarm = bin.wait_for_stderr("findings.jsonl output failed");
    assert!(alarm.contains("held in memory"), "{alarm}");

    std::fs::remove_file(filler).unwrap();
    send(&runtime, &origin, port, "after", 2);
    bin.wait_for_stderr("findings.jsonl output is being written again");
    bin.signal("TERM");
    let done = bin.finish();
    done.assert_ok();

    let all = expected_tags(&[("before", 2), ("full", 10), ("after", 2)]);
    let findings = jsonl(&out.join("findings.jsonl"));
    assert_eq!(tags(&findings, |f| &f["url"]), all, "findings.jsonl");
    let flows = jsonl(&out.join("flows.jsonl"));
    assert_eq!(tags(&flows, |f| &f["request"]["url"]), all, "flows.jsonl");
    let entries = har_entries(&out.join("session.har"));
    assert_eq!(tags(&entries, |e| &e["request"]["url"]), all, "session.har");
}

#[test]
fn a_restart_on_the_same_out_dir_appends_a_session_and_clobbers_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(Origin::start());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (round, tag) in ["first", "second"].into_iter().enumerate() {
        let (mut bin, port) = start(dir.path(), &origin);
        send(&runtime, &origin, port, tag, 2);
        bin.wait_for_stdout(&format!("req={tag}-1"));
        bin.signal("TERM");
        bin.finish().assert_ok();
        let har = if round == 0 {
            "session.har"
        } else {
            "session-2.har"
        };
        assert_eq!(
            tags(&har_entries(&out.join(har)), |e| &e["request"]["url"]),
            expected_tags(&[(tag, 2)]),
            "{har} holds its own session"
        );
    }
    assert_eq!(
        tags(
            &har_entries(&out.join("session.har")),
            |e| &e["request"]["url"]
        ),
        expected_tags(&[("first", 2)]),
        "the first session's HAR is untouched"
    );
    assert_eq!(
        tags(&jsonl(&out.join("findings.jsonl")), |f| &f["url"]),
        expected_tags(&[("first", 2), ("second", 2)]),
        "findings.jsonl is appended to, never truncated"
    );
}
