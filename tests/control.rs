//! The control API and `leakscope mark`, over real HTTP on loopback.

mod common;

use leakscope::consent::{ConsentPhase, PhaseClock};
use leakscope::control::{self, PhaseSwitch};
use leakscope::session::{SessionEvent, Sink, SinkHub};
use std::sync::{Arc, Mutex};

/// Records phase announcements reaching the sinks.
struct Phases(Arc<Mutex<Vec<ConsentPhase>>>);

impl Sink for Phases {
    fn name(&self) -> &'static str {
        "phases"
    }
    fn handle(&mut self, event: &SessionEvent) -> std::io::Result<()> {
        if let SessionEvent::PhaseChanged(change) = event {
            self.0.lock().unwrap().push(change.phase);
        }
        Ok(())
    }
}

fn client() -> reqwest::Client {
    // reqwest needs a TLS config even for plain HTTP; give it the one
    // provider the project uses.
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_switch_over_http_and_with_mark() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hub = SinkHub::start(vec![Box::new(Phases(seen.clone()))]);
    let dir = tempfile::tempdir().unwrap();
    let findings = dir.path().join("findings.jsonl");
    std::fs::write(&findings, "{\"identifier\":\"imei\"}\n").unwrap();
    let switch = PhaseSwitch::new(PhaseClock::new(), hub.sender());
    let addr = control::serve("127.0.0.1:0".parse().unwrap(), switch.clone(), findings)
        .await
        .unwrap();
    let base = format!("http://{addr}");

    let now: serde_json::Value = serde_json::from_str(
        &client()
            .get(format!("{base}/phase"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(now["phase"], "pre-consent");

    let res = client()
        .post(format!("{base}/phase"))
        .header("content-type", "application/json")
        .body(r#"{"phase":"consented"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(switch.current().phase, ConsentPhase::Consented);

    // `leakscope mark` is a blocking client: run it off the async workers.
    let answer = tokio::task::spawn_blocking(move || control::mark(addr, ConsentPhase::Refused))
        .await
        .unwrap()
        .expect("mark succeeds");
    assert!(answer.contains("refused"), "{answer}");
    assert_eq!(switch.current().phase, ConsentPhase::Refused);

    let body = client()
        .get(format!("{base}/findings"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "{\"identifier\":\"imei\"}\n");

    let bad = client()
        .post(format!("{base}/phase"))
        .header("content-type", "application/json")
        .body(r#"{"phase":"agreed"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("consented"));

    tokio::task::spawn_blocking(move || hub.close())
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![ConsentPhase::Consented, ConsentPhase::Refused]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_cannot_drive_the_api() {
    let hub = SinkHub::start(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let switch = PhaseSwitch::new(PhaseClock::new(), hub.sender());
    let addr = control::serve(
        "127.0.0.1:0".parse().unwrap(),
        switch.clone(),
        dir.path().join("f.jsonl"),
    )
    .await
    .unwrap();
    let cross_origin = client()
        .post(format!("http://{addr}/phase"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .body(r#"{"phase":"consented"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_origin.status(), 403);
    let form = client()
        .post(format!("http://{addr}/phase"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("phase=consented")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415, "a plain HTML form cannot switch phases");
    assert_eq!(switch.current().phase, ConsentPhase::PreConsent);
}

#[test]
fn mark_without_a_session_says_what_to_do() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = control::mark(dead, ConsentPhase::Consented).unwrap_err();
    assert!(err.contains("leakscope run"), "{err}");
}

/// The app under test talks through the proxy; it must not be able to
/// switch the phase (and so launder pre-consent traffic) or read findings.
#[test]
fn the_control_api_cannot_be_reached_through_the_proxy() {
    use common::bin::{Bin, run_args};
    let dir = tempfile::tempdir().unwrap();
    let mut bin = Bin::spawn(&run_args("127.0.0.1:0", dir.path()));
    let port = bin.wait_for_banner();
    let line = bin.wait_for_stderr("Control API: http://");
    let control = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("control address in the banner")
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let proxy = reqwest::Proxy::all(format!("http://127.0.0.1:{port}")).unwrap();
        let through_proxy = reqwest::Client::builder()
            .use_preconfigured_tls(common::origin::client_tls_config(&[]))
            .proxy(proxy)
            .build()
            .unwrap();
        for target in [control.clone(), control.replace("127.0.0.1", "localhost")] {
            let res = through_proxy
                .post(format!("http://{target}/phase"))
                .body(r#"{"phase": "consented"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "POST /phase via the proxy to {target}");
            let res = through_proxy
                .get(format!("http://{target}/findings"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "GET /findings via the proxy to {target}");
        }
        // Directly, the tester still can; the phase was never switched.
        let phase = client()
            .get(format!("http://{control}/phase"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(phase.contains("pre-consent"), "{phase}");
    });
    bin.signal("TERM");
    bin.finish().assert_ok();
}
