//! Checks the test origin itself, talking to it directly (no proxy), so proxy
//! test failures can be trusted to be about the proxy.

#[path = "common/origin.rs"]
mod origin;

use std::io::Read as _;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use origin::{GZIP_JSON, Origin, dead_addr, direct_client, proxied_client, start_tcp_echo};
use reqwest::{StatusCode, Version};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

/// Upper bound for steps that would otherwise hang forever on a bug (e.g. an
/// echo that buffers the whole body); never used to wait for readiness.
const HANG_GUARD: Duration = Duration::from_secs(30);

#[tokio::test]
async fn hello_over_http1() {
    let origin = Origin::start().await;
    let client = direct_client(&[]);
    let resp = client.get(origin.http_url("/hello")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_eq!(resp.headers()["x-origin-version"], "HTTP/1.1");
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.text().await.unwrap(), "hello from origin");
    assert_eq!(origin.requests_seen(), 1);
}

#[tokio::test]
async fn hello_over_https_negotiates_h2() {
    let origin = Origin::start().await;
    // Trust via the file, as the proxy will, to prove the file holds the CA.
    let ca = std::fs::read_to_string(&origin.ca_pem_path).unwrap();
    assert_eq!(ca, origin.ca_pem);
    let client = direct_client(&[&ca]);
    let resp = client.get(origin.https_url("/hello")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.headers()["x-origin-version"], "HTTP/2.0");
    assert_eq!(resp.text().await.unwrap(), "hello from origin");
}

#[tokio::test]
async fn https_rejected_without_the_origin_ca() {
    let origin = Origin::start().await;
    let other = Origin::start().await;
    // Another origin's CA must not validate this origin's certificate.
    let client = direct_client(&[&other.ca_pem]);
    assert!(client.get(origin.https_url("/hello")).send().await.is_err());
    assert_eq!(origin.requests_seen(), 0);
}

/// Sends 1 MiB in 64 KiB pieces, each only after the previous one came back,
/// which can only finish if the origin streams the echo instead of collecting.
async fn echo_lockstep(client: &reqwest::Client, url: String, want_version: Version) {
    const PIECE: usize = 64 * 1024;
    const PIECES: usize = 16;
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(rx);
    let mut tx = tx;
    let piece = |k: usize| -> Vec<u8> { (0..PIECE).map(|i| (i * 7 + k) as u8).collect() };
    tx.send(Ok(piece(0))).await.unwrap();
    let request = client
        .post(url)
        .header("content-type", "application/x-test")
        .body(body)
        .send();
    // A buffering echo would never answer: the rest of the body waits on the echo.
    let mut resp = tokio::time::timeout(HANG_GUARD, request)
        .await
        .expect("echo is not streaming")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), want_version);
    assert_eq!(resp.headers()["content-type"], "application/x-test");
    let mut got = Vec::new();
    for k in 0..PIECES {
        while got.len() < (k + 1) * PIECE {
            let chunk = tokio::time::timeout(HANG_GUARD, resp.chunk())
                .await
                .expect("echo is not streaming")
                .unwrap()
                .expect("echo ended early");
            got.extend_from_slice(&chunk);
        }
        if k + 1 < PIECES {
            tx.send(Ok(piece(k + 1))).await.unwrap();
        }
    }
    // Ending the request body must end the echoed body. Over h2 the client's
    // empty END_STREAM data frame is echoed as an empty chunk, hence the loop.
    drop(tx);
    while let Some(rest) = resp.chunk().await.unwrap() {
        assert!(
            rest.is_empty(),
            "{want_version:?}: {} extra bytes",
            rest.len()
        );
    }
    let want: Vec<u8> = (0..PIECES).flat_map(piece).collect();
    assert_eq!(got.len(), 1 << 20);
    assert!(got == want, "echoed bytes differ");
}

#[tokio::test]
async fn echo_streams_1mib_over_http1_and_h2() {
    let origin = Origin::start().await;
    let client = direct_client(&[&origin.ca_pem]);
    echo_lockstep(&client, origin.http_url("/echo"), Version::HTTP_11).await;
    echo_lockstep(&client, origin.https_url("/echo"), Version::HTTP_2).await;
}

#[tokio::test]
async fn echo_with_content_length() {
    let origin = Origin::start().await;
    let client = direct_client(&[]);
    let data: Vec<u8> = (0..(1 << 20)).map(|i| (i % 13) as u8).collect();
    let resp = client
        .post(origin.http_url("/echo"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.content_length(), Some(data.len() as u64));
    assert!(resp.bytes().await.unwrap() == data);
}

#[tokio::test]
async fn bytes_route_streams_the_pattern() {
    const N: u64 = 3_000_000;
    let origin = Origin::start().await;
    let client = direct_client(&[&origin.ca_pem]);
    for url in [
        origin.http_url("/bytes/3000000"),
        origin.https_url("/bytes/3000000"),
    ] {
        let mut resp = client.get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.content_length(), Some(N));
        let mut offset = 0u64;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            for (j, b) in chunk.iter().enumerate() {
                let i = offset + j as u64;
                assert_eq!(*b, (i % 251) as u8, "byte {i}");
            }
            offset += chunk.len() as u64;
        }
        assert_eq!(offset, N);
    }
}

#[tokio::test]
async fn huge_bytes_response_announces_length_without_allocating() {
    let origin = Origin::start().await;
    let client = direct_client(&[]);
    let mut resp = client
        .get(origin.http_url("/bytes/100000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.content_length(), Some(100_000_000_000));
    // Reading one chunk and dropping the response aborts the rest.
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(first.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[tokio::test]
async fn gzip_route_is_compressed_json() {
    let origin = Origin::start().await;
    let client = direct_client(&[]);
    let resp = client.get(origin.http_url("/gzip")).send().await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let raw = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, GZIP_JSON);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["device"]["imei"], "490154203237518");
}

#[tokio::test]
async fn headers_status_and_not_found() {
    let origin = Origin::start().await;
    let client = direct_client(&[]);
    // reqwest's `json` feature is off, so parse the bytes with serde_json.
    let body = client
        .get(origin.http_url("/headers"))
        .header("x-test", "one")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["x-test"], "one");
    assert_eq!(json["proxy-authorization"], "Basic Zm9vOmJhcg==");

    let resp = client
        .get(origin.http_url("/status/418"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = client.get(origin.http_url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = client.post(origin.http_url("/hello")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(origin.requests_seen(), 4);
}

#[tokio::test]
async fn websocket_echoes_text_and_binary() {
    let origin = Origin::start().await;
    let url = format!("ws://127.0.0.1:{}/ws", origin.http_addr.port());
    let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);

    ws.send(Message::text("hi origin")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hi origin")
    );
    let blob = vec![0u8, 1, 2, 254, 255];
    ws.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(blob));

    // The origin answers our Close, after which the stream ends.
    ws.close(None).await.unwrap();
    let answer = tokio::time::timeout(HANG_GUARD, ws.next()).await.unwrap();
    assert!(matches!(answer, Some(Ok(Message::Close(_)))), "{answer:?}");
    assert!(ws.next().await.is_none());
}

#[tokio::test]
async fn tcp_echo_round_trip() {
    let addr = start_tcp_echo().await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"opaque \x00\xff bytes").await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut back = Vec::new();
    tcp.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"opaque \x00\xff bytes");
}

#[tokio::test]
async fn dead_addr_refuses() {
    let err = tokio::net::TcpStream::connect(dead_addr())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn proxied_client_really_uses_the_proxy() {
    let origin = Origin::start().await;
    // With the "proxy" dead, a client that bypassed it would still reach the origin.
    let client = proxied_client(dead_addr(), &[&origin.ca_pem]);
    assert!(client.get(origin.http_url("/hello")).send().await.is_err());
    assert!(client.get(origin.https_url("/hello")).send().await.is_err());
    assert_eq!(origin.requests_seen(), 0);
}
