//! End-to-end: real clients through the real proxy to a real local origin,
//! asserting both what the client saw and what the flow record says.

mod common;

use common::{Harness, Options, header};
use leakscope::flow::{FlowErrorKind, FlowKind, TlsMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_get_is_relayed_and_recorded() {
    let mut h = Harness::start().await;
    let res = h.get(&h.origin.http_url("/hello")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello from origin");

    let flow = h.next_flow().await;
    assert_eq!(flow.kind, FlowKind::Http);
    let req = flow.request.as_ref().unwrap();
    assert_eq!(req.method, "GET");
    assert_eq!(req.url, h.origin.http_url("/hello"));
    assert_eq!(req.http_version, "HTTP/1.1");
    assert!(flow.tls.is_none());
    let res = flow.response.as_ref().unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(header(&res.headers, "x-origin-version"), Some("HTTP/1.1"));
    assert_eq!(&res.body.captured[..], b"hello from origin");
    assert_eq!(res.body.wire_size, 17);
    assert!(res.body.complete, "{flow:?}");
    assert!(flow.error.is_none(), "{:?}", flow.error);
    assert!(flow.timing.end.unwrap() >= flow.timing.response_start.unwrap());
    assert!(flow.timing.response_start.unwrap() >= flow.timing.start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_body_is_streamed_and_captured() {
    let mut h = Harness::start().await;
    let body = "imei=490154203237518&note=".to_owned() + &"x".repeat(5000);
    let res = h
        .client()
        .post(h.origin.http_url("/echo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), body);
    let flow = h.next_flow().await;
    let req = flow.request.as_ref().unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(&req.body.captured[..], body.as_bytes());
    assert_eq!(req.body.wire_size, body.len() as u64);
    assert!(flow.timing.request_end.is_some());
    assert_eq!(
        &flow.response.as_ref().unwrap().body.captured[..],
        body.as_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_intercepted_with_http2_on_both_sides() {
    let mut h = Harness::start().await;
    let res = h.get(&h.origin.https_url("/hello")).await;
    assert_eq!(
        res.version(),
        reqwest::Version::HTTP_2,
        "client side speaks h2"
    );
    assert_eq!(
        res.headers()["x-origin-version"],
        "HTTP/2.0",
        "upstream side speaks h2"
    );
    assert_eq!(res.text().await.unwrap(), "hello from origin");

    let flow = h.next_flow().await;
    let req = flow.request.as_ref().unwrap();
    assert_eq!(req.http_version, "HTTP/2.0");
    assert_eq!(req.url, h.origin.https_url("/hello"));
    assert_eq!(req.host, "localhost");
    let tls = flow.tls.as_ref().expect("TLS facts on an intercepted flow");
    assert_eq!(tls.mode, TlsMode::Intercepted);
    assert_eq!(tls.sni.as_deref(), Some("localhost"));
    assert_eq!(tls.alpn_offered, vec!["h2", "http/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_http1_only_client_is_intercepted() {
    let mut h = Harness::start().await;
    let proxy = reqwest::Proxy::all(format!("http://{}", h.proxy_addr())).unwrap();
    let mut tls = common::origin::client_tls_config(&[h.ca.cert_pem()]);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .proxy(proxy)
        .http1_only()
        .build()
        .unwrap();
    let res = client
        .get(h.origin.https_url("/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert_eq!(res.text().await.unwrap(), "hello from origin");
    let flow = h.next_flow().await;
    let req = flow.request.as_ref().unwrap();
    assert_eq!(req.http_version, "HTTP/1.1");
    assert_eq!(
        req.url,
        h.origin.https_url("/hello"),
        "HTTP/1 path-only URI made absolute"
    );
    assert_eq!(flow.tls.as_ref().unwrap().alpn_offered, vec!["http/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_address_hosts_get_a_certificate_clients_accept() {
    let mut h = Harness::start().await;
    let url = format!("https://127.0.0.1:{}/hello", h.origin.https_addr.port());
    let res = h
        .client()
        .get(&url)
        .send()
        .await
        .expect("IP SAN accepted by rustls");
    assert_eq!(res.text().await.unwrap(), "hello from origin");
    let flow = h.next_flow().await;
    assert_eq!(flow.request.as_ref().unwrap().host, "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_response_is_decoded_in_the_record_but_relayed_untouched() {
    let mut h = Harness::start().await;
    let res = h.get(&h.origin.https_url("/gzip")).await;
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let wire = res.bytes().await.unwrap();
    assert_eq!(&wire[..2], b"\x1f\x8b", "client still receives gzip bytes");
    let flow = h.next_flow().await;
    let body = &flow.response.as_ref().unwrap().body;
    assert_eq!(body.content_encoding, vec!["gzip"]);
    assert_eq!(&body.captured[..], common::origin::GZIP_JSON.as_bytes());
    assert_eq!(body.wire_size, wire.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_502_and_a_recorded_error() {
    let mut h = Harness::start().await;
    let dead = common::origin::dead_addr();
    let res = h.get(&format!("http://{dead}/x")).await;
    assert_eq!(res.status(), 502);
    assert!(res.text().await.unwrap().contains("leakscope"));
    let flow = h.next_flow().await;
    assert_eq!(
        flow.error.as_ref().unwrap().kind,
        FlowErrorKind::UpstreamUnreachable
    );
    assert_eq!(flow.response.as_ref().unwrap().status, 502);

    let res = h.get(&format!("https://localhost:{}/x", dead.port())).await;
    assert_eq!(
        res.status(),
        502,
        "HTTPS to a dead upstream answers 502 inside the tunnel"
    );
    let flow = h.next_flow().await;
    assert_eq!(
        flow.error.as_ref().unwrap().kind,
        FlowErrorKind::UpstreamUnreachable
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_certificates_are_verified_by_default() {
    // No --upstream-ca: the origin's test CA is unknown, as on the internet.
    let mut h = Harness::start_with(|c| c.upstream_ca.clear(), Options::default()).await;
    let res = h.get(&h.origin.https_url("/hello")).await;
    assert_eq!(res.status(), 502);
    let flow = h.next_flow().await;
    let error = flow
        .error
        .as_ref()
        .expect("the certificate error is recorded");
    assert_eq!(error.kind, FlowErrorKind::UpstreamCertificate, "{error:?}");
    assert_eq!(h.origin.requests_seen(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_upstream_skips_verification_when_asked() {
    let mut h = Harness::start_with(
        |c| {
            c.upstream_ca.clear();
            c.insecure_upstream = true;
        },
        Options::default(),
    )
    .await;
    let res = h.get(&h.origin.https_url("/hello")).await;
    assert_eq!(res.status(), 200);
    assert!(h.next_flow().await.error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_the_proxy_itself_are_refused_not_looped() {
    let mut h = Harness::start().await;
    let res = h.get(&format!("http://{}/", h.proxy_addr())).await;
    assert_eq!(res.status(), 508);
    // No flow: nothing left the proxy. The next flow is the one we make now.
    h.get(&h.origin.http_url("/hello")).await;
    assert!(
        h.next_flow()
            .await
            .request
            .as_ref()
            .unwrap()
            .url
            .ends_with("/hello")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_page_serves_the_ca() {
    let h = Harness::start().await;
    let client = h.client();
    let page = client
        .get("http://leakscope.cert/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&h.ca.fingerprint_sha256()));
    assert!(page.contains("leakscope-ca.cer"));
    let pem = client
        .get("http://leakscope.cert/leakscope-ca.pem")
        .send()
        .await
        .unwrap();
    assert_eq!(pem.text().await.unwrap(), h.ca.cert_pem());
    let der = client
        .get("http://leakscope.cert/leakscope-ca.cer")
        .send()
        .await
        .unwrap();
    assert_eq!(der.headers()["content-type"], "application/x-x509-ca-cert");
    assert_eq!(&der.bytes().await.unwrap()[..], h.ca.cert_der());
    assert_eq!(h.origin.requests_seen(), 0);
}
