//! Bodies stream through the proxy: memory stays bounded whatever their
//! size, and inspectors still see every byte.
//!
//! These tests measure this process's RSS, so they run one at a time (the
//! `SERIAL` lock) and live in their own test binary, away from other tests'
//! allocations.

mod common;

use common::mem::rss_bytes;
use common::{Harness, Options};
use futures::StreamExt;
use leakscope::flow::capture::CaptureLimits;
use leakscope::flow::{Direction, Flow};
use leakscope::pipeline::{FlowTap, Inspector};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Counts decoded body bytes per direction: proves observers see every
/// chunk, including the part beyond the capture limit.
#[derive(Default)]
struct ByteCounter {
    up: AtomicU64,
    down: AtomicU64,
    ended: AtomicU64,
}

struct CounterTap(Arc<ByteCounter>);

struct CounterInspector(Arc<ByteCounter>);

impl Inspector for CounterInspector {
    fn open(&self, _flow: &Flow) -> Option<Box<dyn FlowTap>> {
        Some(Box::new(CounterTap(self.0.clone())))
    }
}

impl FlowTap for CounterTap {
    fn body(&mut self, direction: Direction, decoded: &[u8]) {
        let counter = match direction {
            Direction::Upstream => &self.0.up,
            Direction::Downstream => &self.0.down,
        };
        counter.fetch_add(decoded.len() as u64, Ordering::Relaxed);
    }
    fn end(&mut self, _flow: &Flow) {
        self.0.ended.fetch_add(1, Ordering::Relaxed);
    }
}

const FIFTY_MIB: u64 = 50 * 1024 * 1024;
/// Growth allowed while 50 MiB stream through proxy, origin and client in
/// this one process. Buffering the body anywhere would exceed it.
const RSS_GROWTH_LIMIT: u64 = 24 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mib_download_streams_with_bounded_memory() {
    let _serial = SERIAL.lock().await;
    let counter = Arc::new(ByteCounter::default());
    let options = Options {
        limits: CaptureLimits {
            body_limit: 64 * 1024,
            decode_limit: 1 << 30,
        },
        inspectors: vec![Arc::new(CounterInspector(counter.clone()))],
        ..Default::default()
    };
    let mut h = Harness::start_with(|_| {}, options).await;
    let client = h.client();
    // Warm up allocator and TLS state so the baseline is honest.
    client
        .get(h.origin.https_url("/bytes/1000000"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    h.next_flow().await;
    let baseline = rss_bytes();
    let mut peak = baseline;
    let res = client
        .get(h.origin.https_url(&format!("/bytes/{FIFTY_MIB}")))
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        received += chunk.unwrap().len() as u64;
        peak = peak.max(rss_bytes());
    }
    assert_eq!(received, FIFTY_MIB);
    let flow = h.next_flow().await;
    let body = &flow.response.as_ref().unwrap().body;
    assert_eq!(body.wire_size, FIFTY_MIB);
    assert_eq!(body.captured.len(), 64 * 1024);
    assert!(body.truncated);
    assert!(body.complete);
    assert_eq!(counter.down.load(Ordering::Relaxed), FIFTY_MIB + 1_000_000);
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < RSS_GROWTH_LIMIT,
        "RSS grew {growth} bytes while streaming 50 MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mib_upload_streams_with_bounded_memory() {
    let _serial = SERIAL.lock().await;
    let counter = Arc::new(ByteCounter::default());
    let options = Options {
        limits: CaptureLimits {
            body_limit: 64 * 1024,
            decode_limit: 1 << 30,
        },
        inspectors: vec![Arc::new(CounterInspector(counter.clone()))],
        ..Default::default()
    };
    let mut h = Harness::start_with(|_| {}, options).await;
    let baseline = rss_bytes();
    let chunk = bytes::Bytes::from(vec![b'a'; 64 * 1024]);
    let chunks = (FIFTY_MIB / chunk.len() as u64) as usize;
    let upload =
        futures::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let res = h
        .client()
        .post(h.origin.https_url("/echo"))
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let mut received = 0u64;
    let mut peak = baseline;
    while let Some(chunk) = stream.next().await {
        received += chunk.unwrap().len() as u64;
        peak = peak.max(rss_bytes());
    }
    assert_eq!(received, FIFTY_MIB);
    let flow = h.next_flow().await;
    let req = flow.request.as_ref().unwrap();
    assert_eq!(req.body.wire_size, FIFTY_MIB);
    assert!(req.body.truncated);
    assert_eq!(counter.up.load(Ordering::Relaxed), FIFTY_MIB);
    assert_eq!(counter.down.load(Ordering::Relaxed), FIFTY_MIB);
    assert_eq!(counter.ended.load(Ordering::Relaxed), 1);
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < RSS_GROWTH_LIMIT,
        "RSS grew {growth} bytes while streaming 50 MiB up and down"
    );
}
