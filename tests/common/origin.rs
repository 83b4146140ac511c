//! A local origin server for the proxy's integration tests.
//!
//! Everything here listens on loopback only, so tests never touch the network.
//! One `Origin` serves the same routes over plain HTTP/1.1 and over TLS (ALPN
//! h2 + http/1.1) with a certificate signed by a throwaway test CA, so tests can
//! hand that CA to the proxy as its upstream trust anchor.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hudsucker::hyper::{
    self, Method, Request, Response, StatusCode, Version,
    body::{Body, Frame, Incoming, SizeHint},
    header::{self, HeaderValue},
    service::service_fn,
    upgrade::Upgraded,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RespBody = BoxBody<Bytes, BoxError>;

/// Size of each chunk `/bytes/{n}` emits; large enough to be efficient, small
/// enough that a multi-gigabyte response never sits in memory.
const CHUNK: usize = 64 * 1024;
/// `/bytes/{n}` byte i is `(i % PATTERN_MOD) as u8`; 251 is prime so the pattern
/// does not line up with any power-of-two buffer size and misplaced bytes show.
const PATTERN_MOD: u64 = 251;

/// The JSON document `/gzip` serves (compressed); tests look for the IMEI in it.
#[allow(dead_code)]
pub const GZIP_JSON: &str = r#"{"device":{"imei":"490154203237518","note":"gzip test"}}"#;

/// A running origin server; dropping it shuts both listeners down.
#[allow(dead_code)]
pub struct Origin {
    /// Plain HTTP/1.1 listener on 127.0.0.1.
    pub http_addr: SocketAddr,
    /// TLS listener on 127.0.0.1 (ALPN h2 and http/1.1; cert for `localhost`, 127.0.0.1, ::1).
    pub https_addr: SocketAddr,
    /// PEM file of the CA that signed the origin's certificate (lives in `_dir`).
    pub ca_pem_path: PathBuf,
    /// Same PEM as `ca_pem_path`, for in-process clients.
    pub ca_pem: String,
    requests: Arc<AtomicU64>,
    // Never sent on: dropping it makes every `changed()` in the server tasks
    // resolve, which is how Drop stops accept loops, connections and websockets.
    _shutdown: watch::Sender<()>,
    // Kept so the CA file outlives every test that hands its path to a proxy.
    _dir: tempfile::TempDir,
}

/// State shared by every connection of one `Origin`.
#[derive(Clone)]
struct Ctx {
    requests: Arc<AtomicU64>,
    shutdown: watch::Receiver<()>,
}

#[allow(dead_code)]
impl Origin {
    /// Binds both listeners before returning, so the origin accepts connections
    /// as soon as this resolves (early connections wait in the listen backlog).
    pub async fn start() -> Origin {
        let (ca_pem, acceptor) = make_tls();
        let dir = tempfile::tempdir().expect("tempdir for origin CA");
        let ca_pem_path = dir.path().join("origin-ca.pem");
        std::fs::write(&ca_pem_path, &ca_pem).expect("write origin CA");

        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let http = TcpListener::bind(loopback).await.expect("bind origin http");
        let https = TcpListener::bind(loopback)
            .await
            .expect("bind origin https");
        let http_addr = http.local_addr().expect("origin http addr");
        let https_addr = https.local_addr().expect("origin https addr");

        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let requests = Arc::new(AtomicU64::new(0));
        let ctx = Ctx {
            requests: requests.clone(),
            shutdown: shutdown_rx,
        };
        tokio::spawn(accept_loop(http, None, ctx.clone()));
        tokio::spawn(accept_loop(https, Some(acceptor), ctx));

        Origin {
            http_addr,
            https_addr,
            ca_pem_path,
            ca_pem,
            requests,
            _shutdown: shutdown_tx,
            _dir: dir,
        }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_addr.port())
    }

    /// Uses the name `localhost` so certificate verification by name is exercised.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https_addr.port())
    }

    /// Number of HTTP requests (any route, either listener) that reached the origin.
    pub fn requests_seen(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Generates a fresh CA and a leaf certificate it signs, returning the CA PEM and
/// a TLS acceptor for the leaf. Fresh per origin so tests never share trust state.
fn make_tls() -> (String, TlsAcceptor) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "leakscope test origin CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("leaf key");
    // rcgen turns the strings that parse as IPs into IP SANs, the rest into DNS SANs.
    let sans = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let mut leaf_params = CertificateParams::new(sans).expect("leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("sign leaf");

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![leaf_cert.der().clone()], key)
    .expect("server cert");
    // Offer h2 first so clients that support it (the proxy's upstream side) pick it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (ca_cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, ctx: Ctx) {
    let mut stop = ctx.shutdown.clone();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                // A failed accept (e.g. peer reset while queued) only affects that peer.
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut stop = ctx.shutdown.clone();
            match tls {
                None => serve_conn(tcp, ctx).await,
                Some(acceptor) => {
                    let tls = tokio::select! {
                        tls = acceptor.accept(tcp) => tls,
                        _ = stop.changed() => return,
                    };
                    // A failed handshake (e.g. a client that distrusts our CA) just drops.
                    if let Ok(tls) = tls {
                        serve_conn(tls, ctx).await;
                    }
                }
            }
        });
    }
}

/// Serves one connection with HTTP/1.1 or HTTP/2, whichever the client speaks
/// (the auto builder sniffs the h2 preface, which matches what ALPN negotiated).
async fn serve_conn<I>(io: I, ctx: Ctx)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut stop = ctx.shutdown.clone();
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move {
            // /drain answers only once it has read the whole body.
            if req.method() == Method::POST && req.uri().path() == "/drain" {
                ctx.requests.fetch_add(1, Ordering::SeqCst);
                return Ok::<_, Infallible>(drain(req).await);
            }
            Ok(route(req, &ctx))
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    // `with_upgrades` keeps the socket alive after a 101 so /ws can take it over.
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        // Dropping the connection future closes the socket abruptly, which is
        // what a test that drops the origin mid-response wants to observe.
        _ = stop.changed() => {}
    }
}

fn route(req: Request<Incoming>, ctx: &Ctx) -> Response<RespBody> {
    ctx.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/hello") => hello(&req),
        (Method::POST, "/echo") => echo(req),
        (Method::GET, "/headers") => headers_json(&req),
        (Method::GET, "/gzip") => gzip(),
        (Method::GET, "/ws") => websocket(req, ctx),
        (Method::GET, p) if p.starts_with("/bytes/") => bytes(&p["/bytes/".len()..]),
        (Method::GET, p) if p.starts_with("/status/") => status(&p["/status/".len()..]),
        _ => empty(StatusCode::NOT_FOUND),
    }
}

fn hello(req: &Request<Incoming>) -> Response<RespBody> {
    // Debug for Version prints "HTTP/1.1" / "HTTP/2.0", exactly the header value wanted.
    let version = format!("{:?}", req.version());
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .header("x-origin-version", version)
        .body(full("hello from origin"))
        .expect("hello response")
}

fn echo(req: Request<Incoming>) -> Response<RespBody> {
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    // The incoming body is forwarded frame by frame as the response body, so the
    // first bytes come back before the client has finished sending; its exact
    // size hint (from Content-Length) lets hyper set Content-Length on the reply.
    let body = req.into_body().map_err(BoxError::from).boxed();
    let mut resp = Response::new(body);
    if let Some(ct) = content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp
}

/// Reads the whole request body keeping only its length, then answers
/// with that length as text: a body far larger than memory can be
/// streamed through the proxy and still be checked byte for byte.
async fn drain(req: Request<Incoming>) -> Response<RespBody> {
    let mut body = req.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => total += frame.data_ref().map_or(0, |d| d.len() as u64),
            // A broken body never earns a 200, not even a head sent early.
            Err(_) => return empty(StatusCode::BAD_REQUEST),
        }
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(full(total.to_string()))
        .expect("drain response")
}

fn headers_json(req: &Request<Incoming>) -> Response<RespBody> {
    let mut map = serde_json::Map::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        // Repeated headers are joined like RFC 9110 field combination does.
        match map.get_mut(name.as_str()) {
            Some(serde_json::Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(serde_json::Value::Object(map).to_string()))
        .expect("headers response")
}

fn gzip() -> Response<RespBody> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(GZIP_JSON.as_bytes()).expect("gzip write");
    let compressed = enc.finish().expect("gzip finish");
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(full(compressed))
        .expect("gzip response")
}

fn status(code: &str) -> Response<RespBody> {
    // 1xx cannot be a final response, so only 200..=999 are honoured.
    match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(code) if code.as_u16() >= 200 => empty(code),
        _ => empty(StatusCode::BAD_REQUEST),
    }
}

fn bytes(n: &str) -> Response<RespBody> {
    let Ok(total) = n.parse::<u64>() else {
        return empty(StatusCode::BAD_REQUEST);
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, total)
        .body(PatternBody { sent: 0, total }.boxed())
        .expect("bytes response")
}

/// Streams `total` bytes of the `i % 251` pattern without ever holding more
/// than one shared 64 KiB (+251) buffer, which every chunk is a slice of.
struct PatternBody {
    sent: u64,
    total: u64,
}

/// `CHUNK + 251` bytes of the pattern starting at offset 0: a chunk that starts
/// at absolute offset i is the slice beginning at `i % 251`.
fn pattern() -> Bytes {
    static PATTERN: OnceLock<Bytes> = OnceLock::new();
    PATTERN
        .get_or_init(|| {
            let len = CHUNK as u64 + PATTERN_MOD;
            (0..len).map(|i| (i % PATTERN_MOD) as u8).collect()
        })
        .clone()
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let left = this.total - this.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let len = left.min(CHUNK as u64) as usize;
        let start = (this.sent % PATTERN_MOD) as usize;
        this.sent += len as u64;
        Poll::Ready(Some(Ok(Frame::data(pattern().slice(start..start + len)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.total
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total - self.sent)
    }
}

/// Answers a WebSocket upgrade with 101 and echoes messages on the upgraded socket.
fn websocket(mut req: Request<Incoming>, ctx: &Ctx) -> Response<RespBody> {
    let wants_ws = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    // Only HTTP/1.1 upgrades are supported (no RFC 8441 extended CONNECT over h2).
    let (true, Some(key), Version::HTTP_11) = (wants_ws, key, req.version()) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let mut stop = ctx.shutdown.clone();
    tokio::spawn(async move {
        // Resolves once hyper has written the 101 below and handed over the socket.
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = ws_echo(ws) => {}
            _ = stop.changed() => {}
        }
    });
    let accept = derive_accept_key(key.as_bytes());
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("accept key is base64"),
        )
        .body(full(Bytes::new()))
        .expect("101 response")
}

async fn ws_echo(mut ws: WebSocketStream<TokioIo<Upgraded>>) {
    while let Some(Ok(msg)) = ws.next().await {
        // Only data messages are echoed: tungstenite queues the Pong / Close
        // replies itself, polling `next` again flushes them, and after a Close
        // the stream then ends.
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}

fn full(data: impl Into<Bytes>) -> RespBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty(status: StatusCode) -> Response<RespBody> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// A raw TCP server that echoes whatever bytes it receives (for opaque CONNECT
/// tunnel tests). Returns its address; runs until the runtime ends.
#[allow(dead_code)]
pub async fn start_tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind tcp echo");
    let addr = listener.local_addr().expect("tcp echo addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = tcp.split();
                // Ends at EOF; copy does not shut down the write side, dropping
                // the socket at the end of the task closes it.
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    addr
}

/// An address on 127.0.0.1 where nothing listens (bind port 0, take the port,
/// drop the listener). Another process could in theory grab the port meanwhile.
#[allow(dead_code)]
pub fn dead_addr() -> SocketAddr {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind for dead addr");
    listener.local_addr().expect("dead addr")
}

/// A rustls client config (aws_lc_rs provider) that trusts only `roots_pem`
/// and offers ALPN h2 + http/1.1.
#[allow(dead_code)]
pub fn client_tls_config(roots_pem: &[&str]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for pem in roots_pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("parse root PEM")).expect("add root");
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// Build a reqwest client that goes through `proxy` (http://addr for both http
/// and https) trusting ONLY the given PEM roots (pass the proxy's CA).
///
/// Automatic gzip decoding is off so tests see the Content-Encoding and bytes
/// exactly as the proxy delivered them. Setting an explicit proxy also makes
/// reqwest ignore HTTP(S)_PROXY / NO_PROXY from the environment.
#[allow(dead_code)]
pub fn proxied_client(proxy: SocketAddr, roots_pem: &[&str]) -> reqwest::Client {
    let proxy = reqwest::Proxy::all(format!("http://{proxy}")).expect("proxy url");
    reqwest::Client::builder()
        .use_preconfigured_tls(client_tls_config(roots_pem))
        .proxy(proxy)
        .gzip(false)
        .build()
        .expect("proxied client")
}

/// A reqwest client that talks to the origin directly (environment proxies
/// ignored), trusting only `roots_pem`, with `localhost` pinned to 127.0.0.1
/// because the origin listens on IPv4 only.
#[allow(dead_code)]
pub fn direct_client(roots_pem: &[&str]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_tls_config(roots_pem))
        .no_proxy()
        // reqwest ignores the port here and keeps the one from the URL.
        .resolve("localhost", SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .gzip(false)
        .build()
        .expect("direct client")
}
