//! What must never reach an output: the CA key, the `--auth` password,
//! the Proxy-Authorization header — and, under `--redact`, any identifier
//! value. Checked on every file the session leaves and on the process's
//! own stdout and stderr, with the real binary and real traffic.

mod common;

use common::bin::{Bin, profiled_run_args};
use common::origin::{Origin, client_tls_config};

const IMEI: &str = "490154203237518";
const ANDROID_ID: &str = "3f8a2c1be47d9a05";
/// Not in the profile: only the e-mail pattern detector can find it.
const EMAIL: &str = "tester.leak@example.org";
const USER: &str = "auditor";
const PASSWORD: &str = "s3cret-Pa55word";

/// Runs a session with `extra` flags, sends identifier-laden requests
/// through it with proxy credentials, and returns every byte it produced:
/// each output file's contents and its stdout and stderr.
fn session_outputs(extra: &[&str]) -> Vec<(String, Vec<u8>)> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(Origin::start());
    let dir = tempfile::tempdir().unwrap();
    let mut args = profiled_run_args(dir.path(), &origin.ca_pem_path);
    args.extend(["--auth".into(), format!("{USER}:{PASSWORD}")]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut bin = Bin::spawn(&args);
    let port = bin.wait_for_banner();
    let ca = std::fs::read_to_string(dir.path().join("certs/leakscope-ca.pem")).unwrap();
    let proxy = reqwest::Proxy::all(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .basic_auth(USER, PASSWORD);
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(client_tls_config(&[&ca]))
        .proxy(proxy)
        .build()
        .unwrap();
    runtime.block_on(async {
        let get = format!("{}?imei={IMEI}", origin.https_url("/hello"));
        let res = client
            .get(&get)
            .header("x-device", ANDROID_ID)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let post = origin.http_url("/echo");
        let body = format!("email={EMAIL}&imei={IMEI}&aid={ANDROID_ID}");
        let res = client
            .post(&post)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.text().await.unwrap(), body, "relayed unchanged");
    });
    bin.wait_for_stdout("/echo");
    bin.signal("TERM");
    let done = bin.finish();
    done.assert_ok();

    let mut outputs = vec![
        ("stdout".to_owned(), done.stdout.into_bytes()),
        ("stderr".to_owned(), done.stderr.into_bytes()),
    ];
    for entry in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        outputs.push((name, std::fs::read(&path).unwrap()));
    }
    let key = std::fs::read_to_string(dir.path().join("certs/leakscope-ca-key.pem")).unwrap();
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(key_body.len() > 40, "the CA key was read");
    outputs.push(("(key marker)".to_owned(), key_body.into_bytes()));
    outputs
}

fn holders(outputs: &[(String, Vec<u8>)], needle: &str) -> Vec<String> {
    outputs
        .iter()
        .filter(|(name, _)| name != "(key marker)")
        .filter(|(_, data)| data.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(name, _)| name.clone())
        .collect()
}

fn key_marker(outputs: &[(String, Vec<u8>)]) -> String {
    let (_, key) = outputs.iter().find(|(n, _)| n == "(key marker)").unwrap();
    // Any 40-character run of the key's base64 would be a leak.
    String::from_utf8(key[..40].to_vec()).unwrap()
}

#[test]
fn credentials_and_the_ca_key_never_reach_any_output() {
    let outputs = session_outputs(&[]);
    let basic = base64_of(&format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, basic.as_str(), key_marker(&outputs).as_str()] {
        assert_eq!(holders(&outputs, secret), Vec::<String>::new(), "leaked");
    }
    // The check can see values: without --redact the identifiers are there
    // (in the HAR, which keeps the bodies).
    for value in [IMEI, ANDROID_ID, EMAIL] {
        assert!(
            holders(&outputs, value).contains(&"session.har".to_owned()),
            "{value} expected in session.har without --redact"
        );
    }
}

#[test]
fn redact_removes_identifier_values_from_every_output() {
    let outputs = session_outputs(&["--redact"]);
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "findings.jsonl",
        "flows.jsonl",
        "session.har",
        "report.html",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    for value in [IMEI, ANDROID_ID, EMAIL, PASSWORD] {
        assert_eq!(
            holders(&outputs, value),
            Vec::<String>::new(),
            "{value} survived --redact"
        );
    }
    let flows =
        String::from_utf8_lossy(&outputs.iter().find(|(n, _)| n == "flows.jsonl").unwrap().1)
            .into_owned();
    assert!(
        flows.contains("[imei]"),
        "values are replaced by their name"
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
