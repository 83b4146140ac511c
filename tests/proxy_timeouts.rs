//! Slow and stuck peers: each is cut off by a named timeout, its flow is
//! recorded with the error, and what it held (sockets, tasks) is freed.
//!
//! The timeouts are set to one second so the tests run quickly; the
//! defaults are documented on `leakscope::proxy::Timeouts`.

mod common;

use common::{Harness, Options};
use leakscope::flow::FlowErrorKind;
use leakscope::proxy::ProxyConfig;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bounds a failing test; never paces a passing one.
const GUARD: Duration = Duration::from_secs(30);

fn short_timeouts(config: &mut ProxyConfig) {
    config.timeouts.header = Duration::from_secs(1);
    config.timeouts.idle = Duration::from_secs(1);
}

async fn start() -> Harness {
    Harness::start_with(short_timeouts, Options::default()).await
}

/// Waits until `cond` holds, failing the test after [`GUARD`]. Polls: the
/// conditions are process-wide counts nothing signals a change of.
async fn settles(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {GUARD:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Reads until the peer closes (Ok(0)) or resets; fails after [`GUARD`].
async fn closed_by_peer(stream: &mut TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    tokio::time::timeout(GUARD, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the proxy closes the connection");
}

/// An upstream that accepts one connection, reads the request head,
/// optionally writes `answer`, then holds the socket open without a word
/// until the proxy closes it. Returns its address and a task reporting
/// that the proxy did close it.
async fn silent_upstream(answer: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "proxy closed before sending the request head");
            head.extend_from_slice(&buf[..n]);
        }
        socket.write_all(answer).await.unwrap();
        closed_by_peer(&mut socket).await;
    });
    (addr, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_off_by_the_header_timeout() {
    let mut h = start().await;
    let mut slow = TcpStream::connect(h.proxy_addr()).await.unwrap();
    let start = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n",
        h.origin.http_url("/hello")
    );
    slow.write_all(start.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = slow.into_split();
    // One header byte every 100 ms: progress, but never a complete head.
    let trickle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"X").await.is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(GUARD, reader.read(&mut buf))
        .await
        .expect("the proxy gives up on the slow head");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected the connection closed, got {read:?}"
    );
    trickle.abort();
    // The proxy still serves everyone else.
    let res = h.get(&h.origin.http_url("/hello")).await;
    assert_eq!(res.status(), 200);
    let flow = h.next_flow().await;
    assert_eq!(
        flow.request.as_ref().unwrap().url,
        h.origin.http_url("/hello")
    );
    h.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_times_out_with_a_recorded_error() {
    let mut h = start().await;
    let (upstream, held) = silent_upstream(b"").await;
    let url = format!("http://{upstream}/never");
    let res = h.get(&url).await;
    assert_eq!(res.status(), 502);
    let flow = h.next_flow().await;
    let error = flow.error.as_ref().expect("the flow records the timeout");
    assert_eq!(error.kind, FlowErrorKind::Timeout, "{error:?}");
    assert!(error.message.contains("idle"), "{}", error.message);
    tokio::time::timeout(GUARD, held)
        .await
        .expect("the proxy closes the upstream connection")
        .unwrap();
    h.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_stalling_mid_body_times_out_with_a_recorded_error() {
    let mut h = start().await;
    let head_and_some = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nfirst bytes only";
    let (upstream, held) = silent_upstream(head_and_some).await;
    let res = h.get(&format!("http://{upstream}/stall")).await;
    assert_eq!(res.status(), 200);
    let body = res.bytes().await;
    assert!(body.is_err(), "a stalled body cannot complete");
    let flow = h.next_flow().await;
    let error = flow.error.as_ref().expect("the flow records the stall");
    assert_eq!(error.kind, FlowErrorKind::Timeout, "{error:?}");
    let response = flow.response.as_ref().expect("the head was relayed");
    assert_eq!(response.body.wire_size, 16);
    tokio::time::timeout(GUARD, held)
        .await
        .expect("the proxy closes the upstream connection")
        .unwrap();
    h.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_its_resources_freed() {
    let mut h = start().await;
    // Warm up so lazily created process-wide state (leaf cache, pools,
    // tracing) is in the baseline.
    assert_eq!(h.get(&h.origin.http_url("/hello")).await.status(), 200);
    h.next_flow().await;
    let fds_before = open_fds();
    let tasks_before = alive_tasks();

    let mut stuck = TcpStream::connect(h.proxy_addr()).await.unwrap();
    let url = h.origin.http_url("/bytes/1073741824");
    let request = format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n");
    stuck.write_all(request.as_bytes()).await.unwrap();
    // Never read: the socket buffers fill and the proxy's writes stall.
    let flow = h.next_flow().await;
    let error = flow.error.as_ref().expect("the flow records the abort");
    assert_eq!(error.kind, FlowErrorKind::ClientAborted, "{error:?}");
    let relayed = flow.response.as_ref().unwrap().body.wire_size;
    assert!(relayed < 1 << 30, "the whole body cannot have been relayed");
    drop(stuck);

    settles("open sockets back to the baseline", || {
        open_fds() <= fds_before
    })
    .await;
    settles("connection tasks back to the baseline", || {
        alive_tasks() <= tasks_before
    })
    .await;
    h.stop(Duration::from_secs(1)).await;
}
