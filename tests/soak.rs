//! Load: 1,000 concurrent client connections through the real `leakscope`
//! binary — plain HTTP/1.1, HTTPS over HTTP/1.1 and HTTP/2, WebSocket —
//! with the example profile's detectors and every evidence file on.
//!
//! Checked: every request succeeds and is accounted for in flows.jsonl,
//! findings.jsonl and session.har (no proxy error at all), and the proxy
//! process's memory stays under a ceiling and returns near its baseline.
//! The default test makes a few requests per connection; the `#[ignore]`d
//! one keeps all 1,000 connections busy for 60 s (`.ci/run` runs it:
//! `cargo test --test soak -- --ignored`). Figures are printed for
//! docs/reliability.md.

mod common;

use common::bin::{Bin, jsonl, profiled_run_args};
use common::origin::{Origin, client_tls_config};
use common::tunnel::connect_through;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const IMEI: &str = "490154203237518";
/// Connections of each kind: 1,000 in all.
const MIX: [(Kind, usize); 4] = [
    (Kind::Http1, 400),
    (Kind::Https1, 250),
    (Kind::Https2, 250),
    (Kind::WebSocket, 100),
];
/// Peak resident memory of the proxy under the load, and how far above its
/// idle baseline it may stay once the load is gone: the upstream
/// keep-alive pool still holds its connections (until the idle timeout).
/// Measured figures are printed; see docs/reliability.md.
const PEAK_CEILING: u64 = 512 << 20;
const SETTLED_SLACK: u64 = 48 << 20;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Http1,
    Https1,
    Https2,
    WebSocket,
}

/// When a connection stops sending.
#[derive(Clone, Copy)]
enum Until {
    Requests(u64),
    Deadline(Instant),
}

impl Until {
    fn more(self, sent: u64) -> bool {
        match self {
            Until::Requests(n) => sent < n,
            Until::Deadline(at) => Instant::now() < at,
        }
    }
}

struct Target {
    proxy: SocketAddr,
    proxy_ca: String,
    origin_http: String,
    origin_https: String,
    origin_ws: String,
}

/// One client connection's work; returns the request tags it sent.
async fn connection(kind: Kind, id: usize, target: Arc<Target>, until: Until) -> Vec<String> {
    let mut tags = Vec::new();
    if let Kind::WebSocket = kind {
        let tunnel = connect_through(target.proxy, &target.origin_ws, "").await;
        let url = format!("ws://{}/ws", target.origin_ws);
        let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tunnel)
            .await
            .expect("WebSocket handshake through the proxy");
        while until.more(tags.len() as u64) {
            let tag = format!("ws-{id}-{}", tags.len());
            ws.send(Message::text(format!("imei={IMEI}&req={tag}")))
                .await
                .expect("ws send");
            let echo = ws.next().await.expect("ws echo").expect("ws message");
            assert!(echo.to_text().unwrap().contains(&tag));
            tags.push(tag);
        }
        ws.close(None).await.expect("ws close");
        return tags;
    }
    let client = client_for(&target, kind);
    let base = match kind {
        Kind::Http1 => &target.origin_http,
        _ => &target.origin_https,
    };
    while until.more(tags.len() as u64) {
        let tag = format!("{kind:?}-{id}-{}", tags.len()).to_lowercase();
        let url = format!("{base}/hello?imei={IMEI}&req={tag}");
        let res = client.get(&url).send().await.expect("request relayed");
        assert_eq!(res.status(), 200, "{url}");
        res.bytes().await.expect("whole body");
        tags.push(tag);
    }
    tags
}

/// A client of one connection through the proxy, trusting only its CA:
/// HTTPS connections negotiate HTTP/2 by ALPN unless held to HTTP/1.1.
fn client_for(target: &Target, kind: Kind) -> reqwest::Client {
    let proxy = reqwest::Proxy::all(format!("http://{}", target.proxy)).unwrap();
    let builder = reqwest::Client::builder()
        .use_preconfigured_tls(client_tls_config(&[&target.proxy_ca]))
        .proxy(proxy)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(120));
    let builder = match kind {
        Kind::Https2 => builder,
        _ => builder.http1_only(),
    };
    builder.build().expect("client")
}

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Runs the mix against a fresh proxy and checks everything is accounted
/// for; `until` sets how long each connection keeps sending.
fn soak(until: impl Fn() -> Until) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let origin = runtime.block_on(Origin::start());
    let dir = tempfile::tempdir().unwrap();
    let mut bin = Bin::spawn(&profiled_run_args(dir.path(), &origin.ca_pem_path));
    let port = bin.wait_for_banner();
    let pid = bin.pid();
    let baseline = status_bytes(&pid, "VmRSS:");
    let target = Arc::new(Target {
        proxy: SocketAddr::from(([127, 0, 0, 1], port)),
        proxy_ca: std::fs::read_to_string(dir.path().join("certs/leakscope-ca.pem")).unwrap(),
        origin_http: format!("http://127.0.0.1:{}", origin.http_addr.port()),
        origin_https: format!("https://localhost:{}", origin.https_addr.port()),
        origin_ws: format!("127.0.0.1:{}", origin.http_addr.port()),
    });

    let started = Instant::now();
    let sent = runtime.block_on(async {
        let mut tasks = Vec::new();
        for (kind, n) in MIX {
            for id in 0..n {
                tasks.push(tokio::spawn(connection(kind, id, target.clone(), until())));
            }
        }
        let mut sent = BTreeSet::new();
        for task in tasks {
            sent.extend(task.await.expect("a connection failed"));
        }
        sent
    });
    let elapsed = started.elapsed();
    let peak = status_bytes(&pid, "VmHWM:");
    // Every client is gone; the proxy gives back what the load took.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut settled = status_bytes(&pid, "VmRSS:");
    while settled > baseline + SETTLED_SLACK && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        settled = status_bytes(&pid, "VmRSS:");
    }
    bin.signal("TERM");
    let done = bin.finish();
    done.assert_ok();

    let out = dir.path().join("out");
    account(&out, &sent);
    println!(
        "soak: {} connections, {} requests/messages in {:.1}s ({:.0}/s); proxy RSS baseline {:.1} MiB, peak {:.1} MiB, after {:.1} MiB",
        MIX.iter().map(|(_, n)| n).sum::<usize>(),
        sent.len(),
        elapsed.as_secs_f64(),
        sent.len() as f64 / elapsed.as_secs_f64(),
        mib(baseline),
        mib(peak),
        mib(settled),
    );
    assert!(
        settled <= baseline + SETTLED_SLACK,
        "proxy RSS stayed at {:.1} MiB after the load (baseline {:.1} MiB)",
        mib(settled),
        mib(baseline)
    );
    assert!(
        peak < PEAK_CEILING,
        "proxy peak RSS {:.1} MiB over the {:.0} MiB ceiling",
        mib(peak),
        mib(PEAK_CEILING)
    );
}

/// The request tag in a URL or WebSocket message (`...req=<tag>`).
fn tag_of(text: &str) -> Option<String> {
    text.split("req=").nth(1).map(str::to_owned)
}

/// Every request and message sent is in flows.jsonl exactly once without
/// an error, has its finding, and every flow is a HAR entry.
fn account(out: &Path, sent: &BTreeSet<String>) {
    let flows = jsonl(&out.join("flows.jsonl"));
    let mut seen = BTreeSet::new();
    let mut ws_flows = 0;
    for flow in &flows {
        assert!(flow.get("error").is_none(), "a flow failed: {flow}");
        if let Some(messages) = flow["websocket"]["messages"].as_array() {
            ws_flows += 1;
            for message in messages {
                if let Some(tag) = message["data"]["text"].as_str().and_then(tag_of) {
                    seen.insert(tag);
                }
            }
        } else {
            let url = flow["request"]["url"].as_str().expect("url");
            let tag = tag_of(url).unwrap_or_else(|| panic!("untagged flow {url}"));
            assert!(seen.insert(tag), "{url} recorded twice");
        }
    }
    assert_eq!(&seen, sent, "flows.jsonl accounts for every request");
    assert_eq!(ws_flows, MIX[3].1, "one flow per WebSocket");

    let findings = jsonl(&out.join("findings.jsonl"));
    let http_found: BTreeSet<String> = findings
        .iter()
        .filter(|f| f["where"] == "url")
        .filter_map(|f| tag_of(f["url"].as_str()?))
        .collect();
    let http_sent: BTreeSet<String> = sent
        .iter()
        .filter(|t| !t.starts_with("ws-"))
        .cloned()
        .collect();
    assert_eq!(http_found, http_sent, "one URL finding per request");
    let ws_found = findings.iter().filter(|f| f["where"] == "ws").count();
    assert_eq!(ws_found, MIX[3].1, "one ws finding per WebSocket");

    let har: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("session.har")).unwrap())
            .expect("session.har is JSON");
    let entries = har["log"]["entries"].as_array().expect("entries").len();
    assert_eq!(entries, flows.len(), "every flow is a HAR entry");
}

#[test]
fn a_thousand_mixed_connections_lose_nothing() {
    soak(|| Until::Requests(3));
}

#[test]
#[ignore = "60 s soak; .ci/run runs it with --ignored"]
fn a_thousand_mixed_connections_for_a_minute_lose_nothing() {
    let end = Instant::now() + Duration::from_secs(60);
    soak(move || Until::Deadline(end));
}
