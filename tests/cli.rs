//! The `leakscope` binary end to end: real processes, real signals, a real
//! third-party client (curl), everything on loopback.
//!
//! Nothing here sleeps to synchronise: the tests wait for the child's own
//! output (the banner on stderr) or poll with a short interval under an
//! overall deadline. Every child is killed on drop, so a failing assertion
//! never leaves a proxy running.

mod common;

use common::bin::{Bin, has, lacks, run_args, run_to_end};
use common::origin::Origin;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

/// Uppercase hex without separators, for comparing fingerprints.
fn normalize_hex(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Whether `program` can be run at all.
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs curl through the proxy, returning the body; fails the test on error.
fn curl(proxy_port: u16, extra: &[&str], url: &str) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--proxy"])
        .arg(format!("http://127.0.0.1:{proxy_port}"))
        .args(extra)
        .arg(url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("running curl");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl {url} failed: {stderr}");
    String::from_utf8(output.stdout).expect("utf-8 body")
}

#[test]
fn curl_through_the_proxy_with_its_ca() {
    if !have("curl") {
        eprintln!("skipping: `curl` is not on PATH");
        return;
    }
    let features = Command::new("curl")
        .arg("-V")
        .output()
        .expect("curl -V")
        .stdout;
    let features = String::from_utf8_lossy(&features);
    let curl_h2 = features
        .lines()
        .any(|l| l.starts_with("Features:") && l.split_whitespace().any(|f| f == "HTTP2"));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let origin = runtime.block_on(Origin::start());
    let dir = tempfile::tempdir().unwrap();
    let mut args = run_args("127.0.0.1:0", dir.path());
    args.push("--upstream-ca".into());
    args.push(origin.ca_pem_path.display().to_string());
    let mut proxy = Bin::spawn(&args);
    let port = proxy.wait_for_banner();

    let ca_pem = dir.path().join("certs").join("leakscope-ca.pem");
    let https_url = origin.https_url("/hello");
    let body = curl(port, &["--cacert", ca_pem.to_str().unwrap()], &https_url);
    assert_eq!(body, "hello from origin");
    let http_url = origin.http_url("/hello");
    assert_eq!(curl(port, &[], &http_url), "hello from origin");
    assert_eq!(origin.requests_seen(), 2, "both requests reach the origin");

    proxy.signal("TERM");
    let done = proxy.finish();
    done.assert_ok();
    has(
        &format!("{}{}", done.stdout, done.stderr),
        "Evidence written to",
    );
    let target = format!("localhost:{}", origin.https_addr.port());
    let live = done
        .stdout
        .lines()
        .any(|l| l.contains("GET") && l.contains(&target) && l.contains("/hello"));
    assert!(
        live,
        "no live-log line for the HTTPS request:\n{}",
        done.stdout
    );

    // Every session leaves the whole evidence set behind.
    for file in [
        "findings.jsonl",
        "session.har",
        "session.json",
        "report.html",
        "summary.json",
    ] {
        let path = dir.path().join("out").join(file);
        assert!(path.is_file(), "{} missing after run", path.display());
    }
    let har: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out").join("session.har")).unwrap(),
    )
    .expect("session.har is JSON");
    assert_eq!(
        har["log"]["entries"].as_array().map(Vec::len),
        Some(2),
        "both flows in the HAR"
    );
    let jsonl = std::fs::read_to_string(dir.path().join("out").join("flows.jsonl")).unwrap();
    let flows: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect();
    let url_of = |f: &serde_json::Value| f["request"]["url"].as_str().unwrap_or("").to_owned();
    let hellos: Vec<_> = flows
        .iter()
        .filter(|f| url_of(f).ends_with("/hello"))
        .collect();
    assert_eq!(hellos.len(), 2, "flows.jsonl:\n{jsonl}");
    for flow in &hellos {
        assert_eq!(flow["response"]["status"], 200, "{flow}");
    }

    let https = hellos.iter().find(|f| url_of(f).starts_with("https://"));
    let https = https.expect("the HTTPS flow in flows.jsonl");
    has(&url_of(https), &target);
    assert_eq!(https["tls"]["mode"], "intercepted", "{https}");
    assert_eq!(https["tls"]["sni"], "localhost", "{https}");
    let version = if curl_h2 { "HTTP/2.0" } else { "HTTP/1.1" };
    assert_eq!(https["request"]["http_version"], version, "{https}");

    let http = hellos.iter().find(|f| url_of(f).starts_with("http://"));
    let http = http.expect("the plain HTTP flow in flows.jsonl");
    assert_eq!(url_of(http), http_url, "{http}");
    assert!(http.get("tls").is_none_or(|t| t.is_null()), "{http}");
    assert_eq!(http["request"]["http_version"], "HTTP/1.1", "{http}");

    // Body bytes are in the HAR only; flows.jsonl keeps their sizes.
    let body = &http["response"]["body"];
    assert_eq!(body["decoded_size"], "hello from origin".len(), "{http}");
    assert!(body.get("captured").is_none(), "{http}");
    assert!(!jsonl.contains("hello from origin"), "{jsonl}");
    let texts: Vec<_> = har["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["content"]["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [Some("hello from origin"); 2],
        "the HAR keeps the bodies"
    );
}

/// The `SHA-256 fingerprint:` value `ca init` / `ca show` print.
fn shown_fingerprint(text: &str) -> String {
    let label = "SHA-256 fingerprint:";
    let line = text.lines().find(|l| l.starts_with(label));
    let line = line.unwrap_or_else(|| panic!("no fingerprint in:\n{text}"));
    line[label.len()..].trim().to_owned()
}

#[test]
fn ca_init_refuses_to_overwrite_and_show_prints_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().display().to_string();
    let init = ["ca", "init", "--certs", &certs];

    let first = run_to_end(&init);
    let first_fp = shown_fingerprint(&first.assert_ok().stdout);
    let key = dir.path().join("leakscope-ca-key.pem");
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    let pem = dir.path().join("leakscope-ca.pem");
    let first_pem = std::fs::read(&pem).unwrap();

    has(&run_to_end(&init).assert_failed().stderr, "--force");
    assert_eq!(
        std::fs::read(&pem).unwrap(),
        first_pem,
        "refused init touched the CA"
    );

    let forced = run_to_end(&["ca", "init", "--certs", &certs, "--force"]);
    let show = run_to_end(&["ca", "show", "--certs", &certs]);
    let shown = shown_fingerprint(&show.assert_ok().stdout);
    assert_ne!(
        normalize_hex(&shown),
        normalize_hex(&first_fp),
        "--force made no new CA"
    );
    assert_eq!(shown, shown_fingerprint(&forced.assert_ok().stdout));
    has(&show.stdout, "/apex/com.android.conscrypt/cacerts");

    let android: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 10 && n.ends_with(".0"))
        .collect();
    assert_eq!(
        android.len(),
        1,
        "one <hash>.0 file after --force: {android:?}"
    );
    has(&show.stdout, &android[0]);

    if !have("openssl") {
        eprintln!("skipping the OpenSSL comparison: `openssl` is not on PATH");
        return;
    }
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .arg("-in")
            .arg(&pem)
            .output();
        let out = out.expect("running openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256"]);
    let fp = fp.split_once('=').expect("openssl fingerprint line").1;
    assert_eq!(normalize_hex(fp), normalize_hex(&shown));
    let hash = openssl(&["x509", "-noout", "-subject_hash_old"]);
    assert_eq!(android[0], format!("{}.0", hash.trim()));
}

#[test]
fn run_creates_ca_on_first_use_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let args = run_args("127.0.0.1:0", dir.path());

    let mut first = Bin::spawn(&args);
    first.wait_for_banner();
    let first_fp = first.banner_fingerprint();
    for name in [
        "leakscope-ca.pem",
        "leakscope-ca-key.pem",
        "leakscope-ca.cer",
    ] {
        assert!(
            certs.join(name).is_file(),
            "{name} missing after the banner"
        );
    }
    let pem = std::fs::read(certs.join("leakscope-ca.pem")).unwrap();
    first.signal("INT");
    let done = first.finish();
    done.assert_ok();
    has(&done.stdout, "Created a new CA");
    has(&done.stdout, "Evidence written to");
    lacks(&done.stderr, "reachable from the network");

    let mut second = Bin::spawn(&args);
    second.wait_for_banner();
    assert_eq!(
        second.banner_fingerprint(),
        first_fp,
        "the second run made a new CA"
    );
    second.signal("TERM");
    let done = second.finish();
    lacks(&done.assert_ok().stdout, "Created a new CA");
    assert_eq!(std::fs::read(certs.join("leakscope-ca.pem")).unwrap(), pem);
}

#[test]
fn non_loopback_listen_warns() {
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = Bin::spawn(&run_args("0.0.0.0:0", dir.path()));
    proxy.wait_for_banner();
    // The warning is part of the banner, which is complete by now.
    has(&proxy.stderr.join("\n"), "reachable from the network");
    proxy.signal("TERM");
    proxy.finish().assert_ok();
}

#[test]
fn corrupt_ca_is_an_error_not_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    run_to_end(&["ca", "init", "--certs", certs.to_str().unwrap()]).assert_ok();
    let pem = certs.join("leakscope-ca.pem");
    let garbage = b"this is not a certificate\n";
    std::fs::write(&pem, garbage).unwrap();

    let done = run_to_end(&run_args("127.0.0.1:0", dir.path()));
    has(&done.assert_failed().stderr, &pem.display().to_string());
    assert_eq!(
        std::fs::read(&pem).unwrap(),
        garbage,
        "the corrupt file was replaced"
    );
}

#[test]
fn bad_flags_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 3] = [
        ("--body-limit", "ten", &["--body-limit", "not a size"]),
        ("--auth", "nocolon", &["--auth", "colon"]),
        ("--allow", "notacidr", &["--allow", "notacidr"]),
    ];
    for (flag, value, expected) in cases {
        let mut args = run_args("127.0.0.1:0", dir.path());
        args.extend([flag.to_owned(), value.to_owned()]);
        let done = run_to_end(&args);
        for needle in expected {
            has(&done.assert_failed().stderr, needle);
        }
    }
}
