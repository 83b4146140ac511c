//! Hostile bodies through the real proxy: deeply nested JSON, gzip bombs
//! in both directions, a base64-in-gzip-in-base64 bomb in a form field,
//! and a body larger than memory. Each is relayed untouched, the record
//! says what happened, the detectors still find what is in reach, memory
//! stays bounded and nothing panics.
//!
//! Memory is this process's RSS, so the tests run one at a time (the
//! `SERIAL` lock) in their own binary.

mod common;

use base64::Engine;
use common::mem::rss_bytes;
use common::{Harness, Options, panics};
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt;
use leakscope::detect::inspector::PrivacySettings;
use leakscope::flow::capture::CaptureLimits;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const IMEI: &str = "490154203237518";
const MIB: usize = 1 << 20;
/// RSS growth allowed while one hostile body goes through proxy, origin
/// and client in this process. Holding any of these bodies whole, or
/// decoding a bomb without a bound, would exceed it many times over.
const RSS_GROWTH_LIMIT: u64 = 48 << 20;

/// Decode limit for the bomb tests: a quarter of the default, because
/// every decoded byte goes through the detectors, which an unoptimised
/// test build runs at a few MB/s. The bound works the same at any size.
const BOMB_LIMITS: CaptureLimits = CaptureLimits {
    body_limit: 1 << 20,
    decode_limit: 16 << 20,
};

/// A proxy running the detectors with the example profile.
async fn start_detecting(limits: CaptureLimits) -> Harness {
    panics::watch();
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/detectors/example-profile.toml"
    );
    let options = Options {
        limits,
        privacy: Some(PrivacySettings {
            profile: Some(profile.into()),
            ..PrivacySettings::default()
        }),
        ..Options::default()
    };
    Harness::start_with(|_| {}, options).await
}

/// The highest RSS seen, sampled from another thread until dropped.
struct PeakRss {
    baseline: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl PeakRss {
    fn start() -> PeakRss {
        let baseline = rss_bytes();
        let peak = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        PeakRss {
            baseline,
            peak,
            stop,
        }
    }

    fn assert_bounded(&self, what: &str) {
        self.peak.fetch_max(rss_bytes(), Ordering::Relaxed);
        let growth = self
            .peak
            .load(Ordering::Relaxed)
            .saturating_sub(self.baseline);
        assert!(
            growth < RSS_GROWTH_LIMIT,
            "RSS grew {} MiB during {what}",
            growth >> 20
        );
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// `prefix`, then zeros up to `total` bytes, gzip'd as one member per
/// MiB. Members after the first are all the same bytes, so a GiB bomb
/// costs one MiB of compression; concatenated members are one gzip
/// stream (RFC 1952 §2.2) that decoders must follow to its end.
fn gzip_bomb(prefix: &[u8], total: usize) -> Vec<u8> {
    let mut first = prefix.to_vec();
    first.resize(MIB, 0);
    let zeros = gzip(&vec![0; MIB]);
    let mut bomb = gzip(&first);
    for _ in 1..total / MIB {
        bomb.extend_from_slice(&zeros);
    }
    bomb
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_relayed_and_scanned() {
    let _serial = SERIAL.lock().await;
    let mut h = start_detecting(CaptureLimits::default()).await;
    let depth = 100_000;
    let arrays = format!(
        "{}{{\"imei\":\"{IMEI}\"}}{}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let objects = format!(
        "{}\"{IMEI}\"{}",
        "{\"imei\":".repeat(depth),
        "}".repeat(depth)
    );
    // Unbalanced too: a parser that waits for the closing brackets never
    // gets them.
    let unclosed = format!("{}{{\"imei\":\"{IMEI}\"}}", "[{\"a\":".repeat(depth));
    for body in [arrays, objects, unclosed] {
        let rss = PeakRss::start();
        let res = h
            .client()
            .post(h.origin.http_url("/echo"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.text().await.unwrap().len(), body.len());
        let flow = h.next_flow().await;
        assert!(flow.error.is_none(), "{:?}", flow.error);
        let findings = h.findings_of(flow.id);
        for place in ["body", "response-body"] {
            assert!(
                findings
                    .iter()
                    .any(|f| f.identifier == "imei" && f.place == place),
                "no imei in the {place} of {}: {findings:?}",
                &body[..20]
            );
        }
        rss.assert_bounded("deeply nested JSON");
    }
    panics::assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_request_is_relayed_and_decoded_only_to_the_limit() {
    let _serial = SERIAL.lock().await;
    let limits = BOMB_LIMITS;
    let mut h = start_detecting(limits).await;
    let bomb = gzip_bomb(format!("imei={IMEI}&pad=").as_bytes(), 1 << 30);
    let rss = PeakRss::start();
    let started = Instant::now();
    let res = h
        .client()
        .post(h.origin.http_url("/drain"))
        .header("content-encoding", "gzip")
        .body(bomb.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), bomb.len().to_string());
    let flow = h.next_flow().await;
    eprintln!("1 GiB gzip bomb upload: {:?}", started.elapsed());
    rss.assert_bounded("a 1 GiB gzip bomb upload");
    assert!(flow.error.is_none(), "{:?}", flow.error);
    let body = &flow.request.as_ref().unwrap().body;
    assert_eq!(body.wire_size, bomb.len() as u64);
    assert_eq!(body.decoded_size, limits.decode_limit);
    assert_eq!(body.captured.len(), limits.body_limit);
    assert!(body.truncated && body.complete);
    let error = body.decode_error.as_deref().unwrap_or_default();
    assert!(error.contains("exceeds the limit"), "{error:?}");
    let findings = h.findings_of(flow.id);
    assert!(
        findings.iter().any(|f| f.identifier == "imei"),
        "{findings:?}"
    );
    panics::assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_response_is_relayed_and_decoded_only_to_the_limit() {
    let _serial = SERIAL.lock().await;
    let limits = BOMB_LIMITS;
    let mut h = start_detecting(limits).await;
    let bomb = gzip_bomb(format!("{{\"imei\":\"{IMEI}\"}}").as_bytes(), 1 << 30);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    );
    let origin = common::raw::canned_origin([head.as_bytes(), &bomb].concat()).await;
    let rss = PeakRss::start();
    let started = Instant::now();
    let res = h.get(&format!("http://{origin}/bomb")).await;
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let wire = res.bytes().await.unwrap();
    assert!(wire == bomb, "the client gets the bomb's bytes untouched");
    let flow = h.next_flow().await;
    eprintln!("1 GiB gzip bomb download: {:?}", started.elapsed());
    rss.assert_bounded("a 1 GiB gzip bomb download");
    assert!(flow.error.is_none(), "{:?}", flow.error);
    let body = &flow.response.as_ref().unwrap().body;
    assert_eq!(body.wire_size, bomb.len() as u64);
    assert_eq!(body.decoded_size, limits.decode_limit);
    assert!(body.truncated && body.complete);
    let error = body.decode_error.as_deref().unwrap_or_default();
    assert!(error.contains("exceeds the limit"), "{error:?}");
    let findings = h.findings_of(flow.id);
    assert!(
        findings
            .iter()
            .any(|f| f.identifier == "imei" && f.place == "response-body"),
        "{findings:?}"
    );
    panics::assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_gzip_base64_bomb_in_a_form_field_is_scanned_within_bounds() {
    let _serial = SERIAL.lock().await;
    let mut h = start_detecting(CaptureLimits::default()).await;
    let b64 = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);
    // 160 MiB of zeros behind the IMEI, inside gzip, base64, gzip, base64:
    // a few kB on the wire. The innermost base64 stays under the
    // scanner's longest decoded token, so every layer is opened.
    let inner = gzip_bomb(format!("imei={IMEI} ").as_bytes(), 160 * MIB);
    let field = b64(&gzip(b64(&inner).as_bytes()));
    let form = format!("user=tester&blob={field}&end=1");
    assert!(form.len() < 64 * 1024, "{} bytes", form.len());
    let rss = PeakRss::start();
    let res = h
        .client()
        .post(h.origin.http_url("/drain"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), form.len().to_string());
    let flow = h.next_flow().await;
    rss.assert_bounded("a nested bomb in a form field");
    assert!(flow.error.is_none(), "{:?}", flow.error);
    let findings = h.findings_of(flow.id);
    let imei = findings
        .iter()
        .find(|f| f.identifier == "imei")
        .unwrap_or_else(|| panic!("the IMEI inside the bomb was not found: {findings:?}"));
    assert_eq!(
        imei.decoded_from,
        ["form", "base64", "gzip", "base64", "gzip"],
        "{imei:?}"
    );
    panics::assert_none();
}

/// Size of each piece of a streamed upload, all one shared buffer.
const CHUNK: usize = 256 * 1024;

/// Streams `total` bytes up through the proxy to the origin, which counts
/// and discards them; halfway, another client must still get through.
async fn stream_upload(total: u64) {
    let _serial = SERIAL.lock().await;
    panics::watch();
    let mut h = Harness::start().await;
    let chunk = bytes::Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let chunks = total / chunk.len() as u64;
    assert_eq!(chunks * chunk.len() as u64, total);
    let halfway = Arc::new(tokio::sync::Notify::new());
    let signal = halfway.clone();
    let body = futures::stream::iter(0..chunks).map(move |i| {
        if i == chunks / 2 {
            signal.notify_one();
        }
        Ok::<_, std::io::Error>(chunk.clone())
    });
    let rss = PeakRss::start();
    let started = Instant::now();
    let upload = h
        .client()
        .post(h.origin.http_url("/drain"))
        .header("content-length", total)
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let upload = tokio::spawn(async move { upload.await.unwrap().text().await.unwrap() });
    halfway.notified().await;
    let other = h.get(&h.origin.http_url("/hello?during")).await;
    assert_eq!(other.text().await.unwrap(), "hello from origin");
    assert_eq!(upload.await.unwrap(), total.to_string());
    eprintln!("{} MiB streamed up in {:?}", total >> 20, started.elapsed());
    let flow = h
        .flow_where(|f| {
            f.request
                .as_ref()
                .is_some_and(|r| r.url.ends_with("/drain"))
        })
        .await;
    rss.assert_bounded("a streamed upload");
    assert!(flow.error.is_none(), "{:?}", flow.error);
    let body = &flow.request.as_ref().unwrap().body;
    assert_eq!(body.wire_size, total);
    assert_eq!(body.captured.len(), CaptureLimits::default().body_limit);
    assert!(body.truncated && body.complete);
    panics::assert_none();
}

/// Ten GB, more than 2^32 so every size must be 64-bit; about 20 s on
/// two cores in a debug build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_gb_upload_streams_through() {
    stream_upload(10_000_000_000 / CHUNK as u64 * CHUNK as u64).await;
}
