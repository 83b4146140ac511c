//! Stopping the proxy: flows in flight may finish within the grace period,
//! and nothing already recorded is lost.

mod common;

use common::Harness;
use futures::StreamExt;
use leakscope::flow::FlowErrorKind;
use std::time::Duration;

const TWENTY_MIB: u64 = 20 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_in_flight_finish_during_the_grace_period() {
    let mut h = Harness::start().await;
    let res = h
        .get(&h.origin.https_url(&format!("/bytes/{TWENTY_MIB}")))
        .await;
    let mut stream = res.bytes_stream();
    let first = stream.next().await.unwrap().unwrap().len() as u64;
    // The download is now in flight; keep reading while the proxy stops.
    let reader = tokio::spawn(async move {
        let mut total = first;
        while let Some(chunk) = stream.next().await {
            total += chunk.unwrap().len() as u64;
        }
        total
    });
    let unfinished = h.shutdown_proxy(Duration::from_secs(30)).await;
    assert_eq!(
        unfinished, 0,
        "the download finished within the grace period"
    );
    assert_eq!(reader.await.unwrap(), TWENTY_MIB);
    let rest = h.stop(Duration::ZERO).await;
    let flow = rest
        .iter()
        .find(|f| {
            f.request
                .as_ref()
                .is_some_and(|r| r.url.contains("/bytes/"))
        })
        .expect("the in-flight flow was recorded");
    let body = &flow.response.as_ref().unwrap().body;
    assert_eq!(body.wire_size, TWENTY_MIB);
    assert!(body.complete);
    assert!(flow.error.is_none(), "{:?}", flow.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_flow_outlives_the_grace_period_and_is_recorded_as_aborted() {
    let mut h = Harness::start().await;
    let res = h
        .get(&h.origin.https_url(&format!("/bytes/{TWENTY_MIB}")))
        .await;
    let mut stream = res.bytes_stream();
    stream.next().await.unwrap().unwrap();
    // The client stops reading: the flow cannot finish.
    let unfinished = h.shutdown_proxy(Duration::from_millis(300)).await;
    assert_eq!(unfinished, 1);
    drop(stream);
    let flow = h.next_flow().await;
    assert_eq!(
        flow.error.as_ref().unwrap().kind,
        FlowErrorKind::ClientAborted
    );
    assert!(!flow.response.as_ref().unwrap().body.complete);
}
