//! `session.har` from real traffic is valid HAR 1.2.
//!
//! Real flows (HTTP/1.1 and HTTP/2 through the proxy, a form POST, gzip,
//! a truncated binary body, a redirect, an unreachable upstream, a
//! WebSocket, a refused TLS handshake) are fed to a `HarWriter` together
//! with phase changes, labels and a finding, and the file it writes is
//! checked by `tests/har/validate.js`: the npm package `har-validator`
//! (the HAR 1.2 JSON schema) plus the spec rules that schema leaves out.
//!
//! Needs Node.js and npm. The validator package is installed on first use
//! with `npm ci --prefix tests/har` (from the committed lock file). Without
//! node, npm or the npm registry the test fails and says what to install:
//! it never passes without having validated.

mod common;

use base64::Engine;
use common::{Harness, Options};
use futures::{SinkExt, StreamExt};
use leakscope::consent::{ConsentPhase, PhaseChange};
use leakscope::detect::Confidence;
use leakscope::detect::finding::{DetectorKind, Finding, FlowLabels, Party, SdkInfo, Violation};
use leakscope::flow::capture::CaptureLimits;
use leakscope::flow::{Flow, FlowKind};
use leakscope::session::{SessionEvent, Sink};
use leakscope::sinks::har::{HarOptions, HarWriter};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const IMEI: &str = "490154203237518";

fn har_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("har")
}

/// Makes sure `har-validator` is installed, once per test process.
fn ensure_validator() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let dir = har_dir();
        let node = Command::new("node").arg("--version").output();
        if !node.is_ok_and(|o| o.status.success()) {
            return Err("`node` is not on PATH: install Node.js (>= 14) and npm \
                        (Debian: apt-get install nodejs npm)"
                .to_owned());
        }
        if dir.join("node_modules/har-validator/package.json").exists() {
            return Ok(());
        }
        let install = Command::new("npm")
            .arg("ci")
            .arg("--prefix")
            .arg(&dir)
            .output();
        match install {
            Err(err) => Err(format!(
                "`npm` could not be run ({err}): install npm (Debian: apt-get install npm)"
            )),
            Ok(out) if !out.status.success() => Err(format!(
                "`npm ci --prefix tests/har` failed (is the npm registry reachable?):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Ok(_) => Ok(()),
        }
    });
    if let Err(message) = ready {
        panic!("cannot validate HAR files: {message}");
    }
}

/// Runs the validator on `file`: (valid, everything it printed).
fn validate(file: &Path) -> (bool, String) {
    ensure_validator();
    let out = Command::new("node")
        .arg(har_dir().join("validate.js"))
        .arg(file)
        .output()
        .expect("running node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit 2 is a setup problem, not a verdict on the file.
    assert_ne!(out.status.code(), Some(2), "validator setup failed: {text}");
    (out.status.success(), text)
}

/// Opens a CONNECT tunnel through the proxy (for the WebSocket).
async fn connect_through(proxy: std::net::SocketAddr, target: &str) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    assert!(line.contains(" 200"), "CONNECT answered {line:?}");
    while line != "\r\n" {
        line.clear();
        if reader.read_line(&mut line).await.unwrap() == 0 {
            break;
        }
    }
    reader.into_inner()
}

/// Drives real traffic through the proxy and returns every flow record.
async fn real_flows() -> Vec<Arc<Flow>> {
    let limits = CaptureLimits {
        body_limit: 1024,
        ..CaptureLimits::default()
    };
    let options = Options {
        limits,
        ..Default::default()
    };
    let mut h = Harness::start_with(|_| {}, options).await;
    let client = h.client();
    let get = |url: String| client.get(url).send();
    let hello = format!("/hello?imei={IMEI}&name=J%C3%BCrgen+M");
    get(h.origin.https_url(&hello)).await.unwrap();
    get(h.origin.http_url("/gzip")).await.unwrap();
    get(h.origin.https_url("/bytes/5000"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    get(h.origin.http_url("/status/302")).await.unwrap();
    let dead = common::origin::dead_addr();
    let _ = get(format!("http://{dead}/nothing")).await;
    client
        .post(h.origin.http_url("/echo?src=form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", "sid=abc123; theme=dark")
        .body(format!("imei={IMEI}&os=android+14"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let target = format!("127.0.0.1:{}", h.origin.http_addr.port());
    let tunnel = connect_through(h.proxy_addr(), &target).await;
    let url = format!("ws://{target}/ws");
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tunnel)
        .await
        .unwrap();
    ws.send(Message::text(format!("imei={IMEI}")))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}

    // A client pinning the origin's CA refuses leakscope's certificate.
    let pinned = common::origin::proxied_client(h.proxy_addr(), &[&h.origin.ca_pem]);
    let _ = pinned.get(h.origin.https_url("/hello")).send().await;

    // One flow per exchange above; wait for all of them (the refused
    // handshake is reported a moment after the client gave up).
    let mut flows = Vec::new();
    let wanted = [FlowKind::Http, FlowKind::WebSocket, FlowKind::TlsRefused];
    while flows.len() < 8
        || !wanted
            .iter()
            .all(|k| flows.iter().any(|f: &Arc<Flow>| f.kind == *k))
    {
        flows.push(h.next_flow().await);
    }
    flows.extend(h.stop(Duration::from_secs(5)).await);
    flows
}

fn sdk() -> SdkInfo {
    SdkInfo {
        name: "Example Analytics".into(),
        vendor: "Example Inc.".into(),
        category: "analytics".into(),
    }
}

/// Writes a HAR of `flows` into `dir`, with the session switching to
/// `consented` halfway through, and returns its path.
fn write_har(dir: &Path, flows: &[Arc<Flow>]) -> PathBuf {
    let first = flows.iter().map(|f| f.timing.start).min().unwrap();
    let start = PhaseChange {
        phase: ConsentPhase::PreConsent,
        since: first,
    };
    let mut writer = HarWriter::create(dir, HarOptions::new(start)).unwrap();
    let path = writer.path().to_owned();
    let mut handle = |event: SessionEvent| writer.handle(&event).unwrap();
    for (i, flow) in flows.iter().enumerate() {
        if i == flows.len() / 2 {
            let since = flow.timing.start;
            handle(SessionEvent::PhaseChanged(PhaseChange {
                phase: ConsentPhase::Consented,
                since,
            }));
        }
        let phase = if i < flows.len() / 2 {
            ConsentPhase::PreConsent
        } else {
            ConsentPhase::Consented
        };
        let labels = FlowLabels {
            flow_id: flow.id,
            phase,
            party: Party::Third,
            sdk: Some(sdk()),
        };
        handle(SessionEvent::FlowLabels(Arc::new(labels)));
        if let Some(request) = flow.request.as_ref().filter(|r| r.url.contains(IMEI)) {
            handle(SessionEvent::Finding(Arc::new(Finding {
                ts: flow.timing.start,
                flow_id: flow.id,
                phase,
                url: request.url.clone(),
                host: request.host.clone(),
                method: request.method.clone(),
                place: "url".into(),
                identifier: "imei".into(),
                encoding: "plain".into(),
                decoded_from: vec!["query".into()],
                detector: DetectorKind::Profile,
                confidence: Confidence::High,
                party: Party::Third,
                sdk: Some(sdk()),
                violations: vec![Violation::ThirdParty],
                evidence: format!("imei={IMEI}"),
                value: None,
            })));
        }
        handle(SessionEvent::FlowDone(flow.clone()));
    }
    drop(writer);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn har_from_real_traffic_is_valid_har_1_2() {
    let flows = real_flows().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_har(dir.path(), &flows);
    let (valid, report) = validate(&path);
    assert!(valid, "session.har is not valid HAR 1.2:\n{report}");

    let har: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let log = &har["log"];
    let entries = log["entries"].as_array().unwrap();
    let http = flows
        .iter()
        .filter(|f| matches!(f.kind, FlowKind::Http | FlowKind::WebSocket));
    assert_eq!(entries.len(), http.count());
    assert_eq!(log["pages"].as_array().unwrap().len(), 2);
    assert!(
        !log["_leakscope"]["tls_refused"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let with_findings = entries
        .iter()
        .filter(|e| e["_leakscope"]["findings"] != Value::Array(vec![]));
    assert_eq!(
        with_findings.count(),
        1,
        "the IMEI request carries its finding"
    );
    assert!(entries.iter().any(|e| {
        e["_webSocketMessages"]
            .as_array()
            .is_some_and(|m| m.len() >= 4)
    }));
    assert!(
        entries
            .iter()
            .any(|e| e["response"]["content"]["_truncated"] == true)
    );
    assert!(
        entries
            .iter()
            .any(|e| e["request"]["postData"]["params"].is_array())
    );
    // Binary bodies are written as base64 past serde_json's string
    // escaping: what a reader decodes is the captured bytes.
    let mut binary = 0;
    for e in entries {
        let content = &e["response"]["content"];
        if content["encoding"] != "base64" {
            continue;
        }
        let flow = flows
            .iter()
            .find(|f| serde_json::to_value(f.id).unwrap() == e["_leakscope"]["flow_id"])
            .unwrap();
        let text = content["text"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        assert_eq!(decoded, flow.response.as_ref().unwrap().body.captured);
        binary += 1;
    }
    assert!(binary >= 1, "the /bytes download is binary");
    eprintln!("validated {} entries: {}", entries.len(), report.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_rejects_broken_har() {
    let flows = real_flows().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_har(dir.path(), &flows);
    let good: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();

    let broken = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut har = good.clone();
        edit(&mut har);
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_vec(&har).unwrap()).unwrap();
        let (valid, report) = validate(&file);
        assert!(!valid, "{name} was accepted:\n{report}");
        report
    };
    let report = broken("no-request.har", &|har| {
        har["log"]["entries"][0]
            .as_object_mut()
            .unwrap()
            .remove("request");
    });
    assert!(report.contains("request"), "{report}");
    // Schema-valid but against the spec: the validator's own checks.
    let report = broken("negative-wait.har", &|har| {
        har["log"]["entries"][0]["timings"]["wait"] = (-5).into();
    });
    assert!(report.contains("timings.wait"), "{report}");
    let report = broken("dangling-pageref.har", &|har| {
        har["log"]["entries"][0]["pageref"] = "phase-9-refused".into();
    });
    assert!(report.contains("names no page"), "{report}");
}
