//! End-to-end: what happens on CONNECT — WebSockets, opaque tunnels,
//! refused handshakes, pass-through hosts — and who may use the proxy.

mod common;

use common::tunnel::{connect_status, connect_through};
use common::{Harness, Options};
use futures::{SinkExt, StreamExt};
use leakscope::flow::{Direction, FlowErrorKind, FlowKind, TlsMode, TunnelReason};
use leakscope::proxy::{AccessPolicy, ProxyAuth};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_are_recorded_in_both_directions() {
    let mut h = Harness::start().await;
    let target = format!("127.0.0.1:{}", h.origin.http_addr.port());
    let tunnel = connect_through(h.proxy_addr(), &target, "").await;
    let url = format!("ws://{target}/ws");
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tunnel)
        .await
        .unwrap();
    ws.send(Message::text("android_id=9774d56d682e549c"))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("android_id=9774d56d682e549c")
    );
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}

    let flow = h.flow_where(|f| f.kind == FlowKind::WebSocket).await;
    assert_eq!(
        flow.request.as_ref().unwrap().url,
        format!("http://{target}/ws")
    );
    let messages = &flow.websocket.as_ref().expect("websocket record").messages;
    let seen: Vec<_> = messages
        .iter()
        .filter(|m| m.opcode != "close")
        .map(|m| (m.direction, m.opcode, m.data.to_vec()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                Direction::Upstream,
                "text",
                b"android_id=9774d56d682e549c".to_vec()
            ),
            (
                Direction::Downstream,
                "text",
                b"android_id=9774d56d682e549c".to_vec()
            ),
            (Direction::Upstream, "binary", vec![0, 1, 2, 255]),
            (Direction::Downstream, "binary", vec![0, 1, 2, 255]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_websocket_is_intercepted_and_recorded() {
    let mut h = Harness::start().await;
    let target = format!("localhost:{}", h.origin.https_addr.port());
    let tunnel = connect_through(h.proxy_addr(), &target, "").await;
    let mut tls = common::origin::client_tls_config(&[h.ca.cert_pem()]);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls));
    let url = format!("wss://{target}/ws");
    let (mut ws, _) = tokio_tungstenite::client_async_tls_with_config(
        url.as_str(),
        tunnel,
        None,
        Some(connector),
    )
    .await
    .unwrap();
    ws.send(Message::text("oaid=abc")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("oaid=abc"));
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}

    let flow = h.flow_where(|f| f.kind == FlowKind::WebSocket).await;
    assert_eq!(flow.tls.as_ref().unwrap().mode, TlsMode::Intercepted);
    let texts: Vec<_> = flow
        .websocket
        .as_ref()
        .unwrap()
        .messages
        .iter()
        .filter(|m| m.opcode == "text")
        .collect();
    assert_eq!(texts.len(), 2);
    assert_eq!(&texts[0].data[..], b"oaid=abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_protocol_is_tunnelled_and_recorded() {
    let mut h = Harness::start().await;
    let echo = common::origin::start_tcp_echo().await;
    let mut tunnel = connect_through(h.proxy_addr(), &echo.to_string(), "").await;
    let client = tunnel.local_addr().unwrap();
    tunnel
        .write_all(b"SSH-2.0-leakscope-test\r\n")
        .await
        .unwrap();
    let mut back = [0u8; 24];
    tunnel.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"SSH-2.0-leakscope-test\r\n");
    tunnel.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tunnel.read_to_end(&mut rest).await.unwrap();

    let flow = h.flow_where(|f| f.kind == FlowKind::Tunnel).await;
    let record = flow.tunnel.as_ref().unwrap();
    assert_eq!(record.reason, TunnelReason::UnknownProtocol);
    assert_eq!(record.host, "127.0.0.1");
    assert_eq!(record.port, echo.port());
    assert_eq!(record.first_bytes_hex.as_deref(), Some("5353482d"));
    assert!(flow.timing.end.is_some());
    assert_eq!(leakscope::proxy::watched_connections(client), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rejecting_the_certificate_is_recorded_as_refused_tls() {
    let mut h = Harness::start().await;
    // This client trusts the origin's CA, not leakscope's: as an app that
    // pins its certificate, or a device without the CA installed.
    let pinned = common::origin::proxied_client(h.proxy_addr(), &[&h.origin.ca_pem]);
    let err = pinned
        .get(h.origin.https_url("/hello"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");

    let flow = h.flow_where(|f| f.kind == FlowKind::TlsRefused).await;
    let tls = flow.tls.as_ref().unwrap();
    assert_eq!(tls.mode, TlsMode::Refused);
    assert_eq!(tls.sni.as_deref(), Some("localhost"));
    let alert = tls.alert.as_deref().unwrap();
    assert!(
        alert.contains("UnknownCA") || alert.contains("BadCertificate"),
        "{alert}"
    );
    assert_eq!(flow.error.as_ref().unwrap().kind, FlowErrorKind::ClientTls);
    assert_eq!(h.origin.requests_seen(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_hosts_pass_through_untouched_with_byte_counts() {
    let mut h = Harness::start_with(
        |c| c.ignore_hosts = Some(regex::Regex::new("^localhost$").unwrap()),
        Options::default(),
    )
    .await;
    // Passing through means the client sees the origin's own certificate.
    let client = common::origin::proxied_client(h.proxy_addr(), &[&h.origin.ca_pem]);
    let res = client
        .get(h.origin.https_url("/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "hello from origin");
    drop(client);

    let flow = h.flow_where(|f| f.kind == FlowKind::Tunnel).await;
    let tunnel = flow.tunnel.as_ref().unwrap();
    assert_eq!(tunnel.reason, TunnelReason::IgnoredHost);
    assert_eq!(tunnel.host, "localhost");
    assert!(
        tunnel.bytes_up.unwrap() > 200,
        "ClientHello and request went up: {tunnel:?}"
    );
    assert!(
        tunnel.bytes_down.unwrap() > 500,
        "certificate and response came down: {tunnel:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_allow_get_403_and_nothing_is_relayed() {
    let h = Harness::start_with(
        |c| {
            c.access = AccessPolicy {
                allow: vec!["10.0.2.0/24".parse().unwrap()],
                auth: None,
            }
        },
        Options::default(),
    )
    .await;
    let res = h.get(&h.origin.http_url("/hello")).await;
    assert_eq!(res.status(), 403);
    let (status, _) = connect_status(
        h.proxy_addr(),
        &format!("localhost:{}", h.origin.https_addr.port()),
        "",
    )
    .await;
    assert!(status.contains(" 403"), "{status}");
    let res = h.get("http://leakscope.cert/").await;
    assert_eq!(
        res.status(),
        403,
        "the certificate page is behind the allow-list too"
    );
    assert_eq!(h.origin.requests_seen(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_and_never_forwarded() {
    let mut h = Harness::start_with(
        |c| {
            c.access = AccessPolicy {
                allow: vec![],
                auth: Some(ProxyAuth::parse("tester:s3cret").unwrap()),
            }
        },
        Options::default(),
    )
    .await;
    let res = h.get(&h.origin.http_url("/hello")).await;
    assert_eq!(res.status(), 407);
    assert!(
        res.headers()["proxy-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let (status, _) = connect_status(
        h.proxy_addr(),
        &format!("localhost:{}", h.origin.https_addr.port()),
        "",
    )
    .await;
    assert!(status.contains(" 407"), "{status}");
    assert_eq!(h.origin.requests_seen(), 0);

    let proxy = reqwest::Proxy::all(format!("http://{}", h.proxy_addr()))
        .unwrap()
        .basic_auth("tester", "s3cret");
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(common::origin::client_tls_config(&[h.ca.cert_pem()]))
        .proxy(proxy)
        .build()
        .unwrap();
    let text = client
        .get(h.origin.http_url("/headers"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let headers: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(headers.get("proxy-authorization").is_none(), "{headers}");
    let flow = h.next_flow().await;
    let recorded = serde_json::to_string(&*flow).unwrap();
    assert!(
        !recorded.to_lowercase().contains("proxy-authorization"),
        "{recorded}"
    );
    assert!(
        !recorded.contains("dGVzdGVyOnMzY3JldA"),
        "credentials must not reach the record"
    );

    // HTTPS: the CONNECT carries the credentials, the inner requests do not.
    let res = client
        .get(h.origin.https_url("/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "hello from origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_nowhere_records_the_failure() {
    let mut h = Harness::start().await;
    let dead = common::origin::dead_addr();
    let mut tunnel = connect_through(h.proxy_addr(), &dead.to_string(), "").await;
    let client = tunnel.local_addr().unwrap();
    tunnel.write_all(b"\x00\x01binary-protocol").await.unwrap();
    let mut rest = Vec::new();
    let _ = tunnel.read_to_end(&mut rest).await;
    let flow = h.flow_where(|f| f.kind == FlowKind::Tunnel).await;
    assert_eq!(
        flow.error.as_ref().unwrap().kind,
        FlowErrorKind::UpstreamUnreachable
    );
    assert_eq!(leakscope::proxy::watched_connections(client), 0);
}
