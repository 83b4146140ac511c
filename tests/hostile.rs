//! Hostile clients through the real proxy, on raw sockets: malformed
//! HTTP/1 request lines and headers, oversized heads, broken chunked
//! framing, lying Content-Lengths, HTTP/2 protocol errors, garbage where a
//! TLS ClientHello belongs, CONNECTs to nowhere and bytes that are not
//! UTF-8. Each gets a clear error or is relayed; afterwards the proxy
//! still serves a normal client and no proxy thread has panicked.
//! (Bodies that are bombs or huge are in `hostile_bodies.rs`.)

mod common;

use common::raw::{exchange, read_until_closed, statuses};
use common::{Harness, Options, panics};
use leakscope::detect::inspector::PrivacySettings;
use leakscope::flow::{Flow, FlowErrorKind, FlowKind, TlsMode};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IMEI: &str = "490154203237518";

async fn start() -> Harness {
    panics::watch();
    Harness::start().await
}

/// A proxy running the detectors with the example profile.
async fn start_detecting() -> Harness {
    panics::watch();
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/detectors/example-profile.toml"
    );
    let options = Options {
        privacy: Some(PrivacySettings {
            profile: Some(profile.into()),
            ..PrivacySettings::default()
        }),
        ..Options::default()
    };
    Harness::start_with(|_| {}, options).await
}

/// A normal client still gets through, and nothing has panicked.
async fn assert_serves(h: &mut Harness) {
    let res = h.get(&h.origin.http_url("/hello?after")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello from origin");
    h.flow_where(|f| {
        f.request
            .as_ref()
            .is_some_and(|r| r.url.ends_with("?after"))
    })
    .await;
    panics::assert_none();
}

/// [`assert_serves`], and that request is the next flow recorded: the
/// hostile input before it was refused without leaving a flow.
async fn assert_serves_and_nothing_recorded(h: &mut Harness) {
    let res = h.get(&h.origin.http_url("/hello?after")).await;
    assert_eq!(res.status(), 200);
    let flow = h.next_flow().await;
    let url = flow.request.as_ref().map(|r| r.url.as_str());
    assert!(url.is_some_and(|u| u.ends_with("?after")), "{flow:?}");
    panics::assert_none();
}

/// `GET <origin>/hello` with `extra` header lines (raw bytes).
fn get_with(h: &Harness, extra: &[u8]) -> Vec<u8> {
    let url = h.origin.http_url("/hello");
    let host = h.origin.http_addr;
    let head = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n");
    [head.as_bytes(), extra, b"\r\n"].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_lines_get_400() {
    let mut h = start().await;
    let url = h.origin.http_url("/hello");
    let cases: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"\x00\x01\x02\x03\xff\xfe\xfd\r\n\r\n".to_vec(),
        format!("GET\0{url} HTTP/1.1\r\n\r\n").into_bytes(),
        format!("GET {url} HTTP/1.1 trailing\r\n\r\n").into_bytes(),
        format!("GET {url}\r\n\r\n").into_bytes(),
        format!("G(T {url} HTTP/1.1\r\n\r\n").into_bytes(),
        b"GET http://[::1 HTTP/1.1\r\n\r\n".to_vec(),
        format!("GET {url} HTTP/4.2\r\n\r\n").into_bytes(),
    ];
    for case in cases {
        let response = exchange(h.proxy_addr(), &case).await;
        assert_eq!(
            statuses(&response),
            [400],
            "{:?}",
            String::from_utf8_lossy(&case)
        );
    }
    assert_eq!(h.origin.requests_seen(), 0);
    assert_serves_and_nothing_recorded(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_get_400() {
    let mut h = start().await;
    let cases: [&[u8]; 7] = [
        b"Bad Header: space in the name\r\n",
        b"NoColonAtAll\r\n",
        b": no name\r\n",
        b"X-Nul: a\0b\r\n",
        b"X-Folded: first\r\n  continued\r\n",
        b"X(paren): 1\r\n",
        b"X-\xff\xfe: name not a token\r\n",
    ];
    for extra in cases {
        let response = exchange(h.proxy_addr(), &get_with(&h, extra)).await;
        assert_eq!(
            statuses(&response),
            [400],
            "{:?}",
            String::from_utf8_lossy(extra)
        );
    }
    assert_eq!(h.origin.requests_seen(), 0);
    assert_serves_and_nothing_recorded(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_without_being_buffered() {
    let mut h = start().await;
    let long_value = format!("X-Big: {}\r\n", "v".repeat(1 << 20));
    let response = exchange(h.proxy_addr(), &get_with(&h, long_value.as_bytes())).await;
    assert_eq!(statuses(&response), [431], "one 1 MiB header");

    let many: String = (0..200).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let response = exchange(h.proxy_addr(), &get_with(&h, many.as_bytes())).await;
    assert_eq!(statuses(&response), [431], "200 headers");

    let long_path = h
        .origin
        .http_url(&format!("/hello?{}", "q".repeat(100_000)));
    let request = format!("GET {long_path} HTTP/1.1\r\n\r\n");
    let response = exchange(h.proxy_addr(), request.as_bytes()).await;
    assert_eq!(statuses(&response), [414], "a 100 kB URI");

    // A head that never ends: the proxy must answer and hang up long
    // before the client is done, not keep reading into memory.
    let endless = 64 << 20;
    let stream = TcpStream::connect(h.proxy_addr()).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move { read_until_closed(&mut rd).await });
    let mut sent = 0;
    let head = get_with(&h, b"");
    // Everything but the blank line that would end the head.
    wr.write_all(&head[..head.len() - 2]).await.unwrap();
    let line = b"X-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
        .repeat(256);
    while sent < endless && wr.write_all(&line).await.is_ok() {
        sent += line.len();
    }
    let response = reader.await.unwrap();
    assert!(sent < endless, "the proxy read a 64 MiB head to its end");
    assert_eq!(statuses(&response), [431]);
    assert_eq!(h.origin.requests_seen(), 0);
    assert_serves_and_nothing_recorded(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_naming_no_host_get_400() {
    let mut h = start().await;
    for request in [
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        "POST /upload HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ] {
        let response = exchange(h.proxy_addr(), request.as_bytes()).await;
        let text = String::from_utf8_lossy(&response);
        assert_eq!(statuses(&response), [400], "{text}");
        assert!(text.contains("names no host"), "{text}");
    }
    assert_eq!(h.origin.requests_seen(), 0);
    assert_serves_and_nothing_recorded(&mut h).await;
}

/// Sends `body` after a `POST <origin>/drain` head with `headers`, then
/// half-closes; returns the answer and the flow recorded for it. The
/// origin answers only once it has read a whole body, so a 200 would mean
/// a broken body was passed off as complete.
async fn post_raw(h: &mut Harness, headers: &str, body: &[u8]) -> (Vec<u8>, Arc<Flow>) {
    let url = h.origin.http_url("/drain");
    let host = h.origin.http_addr;
    let mut request = format!("POST {url} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n").into_bytes();
    request.extend_from_slice(body);
    let mut stream = TcpStream::connect(h.proxy_addr()).await.unwrap();
    stream.write_all(&request).await.unwrap();
    stream.shutdown().await.unwrap();
    let response = read_until_closed(&mut stream).await;
    let flow = h
        .flow_where(|f| f.request.as_ref().is_some_and(|r| r.url == url))
        .await;
    (response, flow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chunked_bodies_are_recorded_as_interrupted() {
    let mut h = start().await;
    let cases: [&[u8]; 3] = [
        b"5\r\nhello\r\nZZ\r\nnot a chunk size\r\n0\r\n\r\n",
        b"5\r\nhello\r\nFFFFFFFFFFFFFFFFFFFF\r\nhuge\r\n0\r\n\r\n",
        b"5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n",
    ];
    for body in cases {
        let (response, flow) = post_raw(&mut h, "Transfer-Encoding: chunked\r\n", body).await;
        let what = String::from_utf8_lossy(body);
        assert!(!statuses(&response).contains(&200), "{what}: {response:?}");
        let error = flow
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: {flow:?}"));
        assert_eq!(
            error.kind,
            FlowErrorKind::BodyInterrupted,
            "{what}: {error:?}"
        );
        let req = flow.request.as_ref().unwrap();
        assert!(!req.body.complete, "{what}");
        assert!(req.body.captured.len() <= 5, "{what}: {req:?}");
    }
    assert_serves(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_content_length_is_recorded_as_interrupted() {
    let mut h = start().await;
    let (response, flow) = post_raw(&mut h, "Content-Length: 1000\r\n", b"only ten b").await;
    assert!(!statuses(&response).contains(&200), "{response:?}");
    let error = flow.error.as_ref().expect("an error on the flow");
    assert_eq!(error.kind, FlowErrorKind::BodyInterrupted, "{error:?}");
    let body = &flow.request.as_ref().unwrap().body;
    assert_eq!(&body.captured[..], b"only ten b");
    assert!(!body.complete);
    assert_serves(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_past_the_content_length_are_not_relayed() {
    let mut h = start().await;
    let url = h.origin.http_url("/echo");
    let host = h.origin.http_addr;
    let head = format!("POST {url} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\n");
    // No half-close: the proxy must end the connection itself once it
    // finds garbage where the next request should start.
    let request = [head.as_bytes(), b"hello\x00not a request\r\n\r\n"].concat();
    let response = exchange(h.proxy_addr(), &request).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    // The 5-byte echo, then the 400 for the garbage.
    assert!(text.contains("\r\n\r\nhelloHTTP/1.1 400 "), "{text}");
    let flow = h
        .flow_where(|f| f.request.as_ref().is_some_and(|r| r.url == url))
        .await;
    assert!(flow.error.is_none(), "{flow:?}");
    let body = &flow.request.as_ref().unwrap().body;
    assert_eq!(&body.captured[..], b"hello");
    assert!(body.complete);
    assert_eq!(
        h.origin.requests_seen(),
        1,
        "the extra bytes reached no origin"
    );

    for bogus in ["-1", "abc", "5, 6", "99999999999999999999999"] {
        let mut request = get_with(&h, format!("Content-Length: {bogus}\r\n").as_bytes());
        request.extend_from_slice(b"hello");
        let response = exchange(h.proxy_addr(), &request).await;
        assert_eq!(statuses(&response), [400], "Content-Length: {bogus}");
    }
    assert_eq!(h.origin.requests_seen(), 1);
    assert_serves(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_shorter_than_its_content_length_is_recorded_as_interrupted() {
    let mut h = start().await;
    let lie = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b".to_vec();
    let origin = common::raw::canned_origin(lie).await;
    let res = h.get(&format!("http://{origin}/short")).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.bytes().await.is_err(),
        "the client sees the body break off"
    );
    let flow = h.next_flow().await;
    let error = flow.error.as_ref().expect("an error on the flow");
    assert_eq!(error.kind, FlowErrorKind::BodyInterrupted, "{error:?}");
    let body = &flow.response.as_ref().unwrap().body;
    assert_eq!(&body.captured[..], b"only ten b");
    assert!(!body.complete);
    assert_serves(&mut h).await;
}

/// HTTP/2 frames as (type, flags, stream, payload); a torn last frame is
/// dropped.
fn h2_frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        let Some(payload) = bytes.get(9..9 + len) else {
            break;
        };
        frames.push((bytes[3], bytes[4], stream, payload.to_vec()));
        bytes = &bytes[9 + len..];
    }
    frames
}

/// The error code of the GOAWAY in `bytes`; fails the test without one.
fn goaway_code(bytes: &[u8]) -> u32 {
    let frames = h2_frames(bytes);
    let goaway = frames.iter().find(|f| f.0 == 7 && f.3.len() >= 8);
    let payload = &goaway
        .unwrap_or_else(|| panic!("no GOAWAY in {frames:?}"))
        .3;
    u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]])
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const EMPTY_SETTINGS: &[u8] = b"\0\0\0\x04\0\0\0\0\0";

/// Hostile HTTP/2 after a valid preface. Each is a connection error
/// (RFC 9113 §5.4.1): the answer is a GOAWAY with an error code, then a
/// close. The codes are not pinned: h2 answers PROTOCOL_ERROR where the
/// RFC names FRAME_SIZE_ERROR or COMPRESSION_ERROR, and either is clear.
fn h2_garbage() -> Vec<(&'static str, Vec<u8>)> {
    let with_settings = |frame: &[u8]| [EMPTY_SETTINGS, frame].concat();
    vec![
        (
            "SETTINGS of 5 bytes",
            b"\0\0\x05\x04\0\0\0\0\0aaaaa".to_vec(),
        ),
        (
            "not frames at all",
            b"\xde\xad\xbe\xef garbage garbage garbage".to_vec(),
        ),
        (
            "16 MiB DATA frame",
            with_settings(b"\xff\xff\xff\0\0\0\0\0\x01"),
        ),
        (
            "HEADERS with garbage HPACK",
            with_settings(b"\0\0\x04\x01\x05\0\0\0\x01\xff\xff\xff\xff"),
        ),
        (
            "HEADERS on stream 0",
            with_settings(b"\0\0\x01\x01\x05\0\0\0\0\x82"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_protocol_errors_get_goaway_in_cleartext() {
    let mut h = start().await;
    for (what, garbage) in h2_garbage() {
        let response = exchange(h.proxy_addr(), &[PREFACE, &garbage].concat()).await;
        assert_ne!(goaway_code(&response), 0, "{what}: GOAWAY without an error");
    }
    let mangled = b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n";
    let response = exchange(h.proxy_addr(), mangled).await;
    assert_eq!(
        statuses(&response),
        [400],
        "a mangled preface is bad HTTP/1"
    );
    assert_eq!(h.origin.requests_seen(), 0);
    assert_serves_and_nothing_recorded(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_protocol_errors_get_goaway_inside_tls() {
    let mut h = start().await;
    let target = format!("localhost:{}", h.origin.https_addr.port());
    let mut tls = common::origin::client_tls_config(&[h.ca.cert_pem()]);
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    for (what, garbage) in h2_garbage() {
        let tunnel = connect_tunnel(h.proxy_addr(), &target).await;
        let name = "localhost".try_into().unwrap();
        let mut stream = connector
            .connect(name, tunnel)
            .await
            .expect("TLS to the proxy");
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        stream
            .write_all(&[PREFACE, &garbage].concat())
            .await
            .unwrap();
        let response = read_until_closed(&mut stream).await;
        assert_ne!(goaway_code(&response), 0, "{what}: GOAWAY without an error");
    }
    assert_eq!(h.origin.requests_seen(), 0);
    assert_serves_and_nothing_recorded(&mut h).await;
}

/// A CONNECT tunnel through the proxy, after its `200`.
async fn connect_tunnel(proxy: SocketAddr, target: &str) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // Read the answer byte by byte so no tunnelled byte is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("CONNECT answer"));
    }
    assert_eq!(statuses(&head), [200], "{}", String::from_utf8_lossy(&head));
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_client_hellos_are_recorded_as_refused_tls() {
    let mut h = start().await;
    let target = format!("localhost:{}", h.origin.https_addr.port());
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "junk in a handshake record",
            [&b"\x16\x03\x01\x00\x20"[..], &[0xa5; 32]].concat(),
        ),
        (
            "a ClientHello claiming 16 MiB",
            [&b"\x16\x03\x01\x00\x08\x01\xff\xff\xff"[..], &[0; 4]].concat(),
        ),
        (
            "a record torn off",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
    ];
    for (what, hello) in cases {
        let mut tunnel = connect_tunnel(h.proxy_addr(), &target).await;
        tunnel.write_all(&hello).await.unwrap();
        tunnel.shutdown().await.unwrap();
        read_until_closed(&mut tunnel).await;
        let flow = h.flow_where(|f| f.kind == FlowKind::TlsRefused).await;
        let tls = flow.tls.as_ref().expect("TLS facts");
        assert_eq!(tls.mode, TlsMode::Refused, "{what}");
        assert!(
            tls.alert.as_ref().is_some_and(|a| !a.is_empty()),
            "{what}: {tls:?}"
        );
        let error = flow.error.as_ref().expect("an error");
        assert_eq!(error.kind, FlowErrorKind::ClientTls, "{what}: {error:?}");
    }
    assert_eq!(h.origin.requests_seen(), 0);
    assert_serves(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_nowhere_are_recorded_as_unreachable() {
    let mut h = start().await;
    let dead = common::origin::dead_addr();
    // Opaque bytes to port 0, and a client that sends nothing at all.
    let cases = [
        ("127.0.0.1:0".to_owned(), &b"\x00binary"[..]),
        (dead.to_string(), &b""[..]),
    ];
    for (target, bytes) in cases {
        let mut tunnel = connect_tunnel(h.proxy_addr(), &target).await;
        tunnel.write_all(bytes).await.unwrap();
        tunnel.shutdown().await.unwrap();
        read_until_closed(&mut tunnel).await;
        let flow = h.flow_where(|f| f.kind == FlowKind::Tunnel).await;
        let error = flow
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{target}: {flow:?}"));
        assert_eq!(error.kind, FlowErrorKind::UpstreamUnreachable, "{target}");
        assert_eq!(
            flow.tunnel.as_ref().unwrap().port,
            target.rsplit(':').next().unwrap().parse::<u16>().unwrap()
        );
    }
    let bad_targets = [
        "CONNECT /no-authority HTTP/1.1\r\nConnection: close\r\n\r\n",
        "CONNECT a b c HTTP/1.1\r\n\r\n",
    ];
    for bad in bad_targets {
        let response = exchange(h.proxy_addr(), bad.as_bytes()).await;
        assert_eq!(statuses(&response), [400], "{bad}");
    }
    assert_serves(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_head_and_body_is_relayed_and_scanned() {
    let mut h = start_detecting().await;
    let url = h.origin.http_url("/echo?q=%ff%fe%C0%80");
    let host = h.origin.http_addr;
    let mut body = b"\xff\xfe\xc0\x80 imei=".to_vec();
    body.extend_from_slice(IMEI.as_bytes());
    body.extend_from_slice(b" \xed\xa0\x80\xf4\x90\x80\x80 end");
    let head = format!(
        "POST {url} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    let request = [
        head.as_bytes(),
        b"X-Binary: \xff\xfe caf\xe9\r\n\r\n",
        &body,
    ]
    .concat();
    let response = exchange(h.proxy_addr(), &request).await;
    assert_eq!(statuses(&response), [200]);
    assert!(response.ends_with(&body), "the echo is byte for byte");

    let flow = h
        .flow_where(|f| f.request.as_ref().is_some_and(|r| r.url == url))
        .await;
    assert!(flow.error.is_none(), "{flow:?}");
    let req = flow.request.as_ref().unwrap();
    assert_eq!(
        common::header(&req.headers, "x-binary"),
        Some("\u{fffd}\u{fffd} caf\u{fffd}")
    );
    assert_eq!(&req.body.captured[..], &body[..]);
    serde_json::to_string(&*flow).expect("the record serializes");
    let findings = h.findings_of(flow.id);
    assert!(
        findings
            .iter()
            .any(|f| f.identifier == "imei" && f.place == "body"),
        "{findings:?}"
    );

    let path = h.origin.http_url("/caf");
    let request = [b"GET ", path.as_bytes(), b"\xe9 HTTP/1.1\r\n\r\n"].concat();
    let response = exchange(h.proxy_addr(), &request).await;
    assert_eq!(statuses(&response), [400], "a raw Latin-1 byte in the path");
    assert_serves(&mut h).await;
}
