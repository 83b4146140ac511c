//! Connections from the load generator: straight to the origin, or through
//! an HTTP proxy (absolute-form requests for `http://`, CONNECT then TLS
//! for `https://`). Every address is checked to be loopback before it is
//! dialled: benchmark traffic never leaves the machine.

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hudsucker::hyper::client::conn::http1::{self, SendRequest};
use hudsucker::hyper::{Request, Uri, header};
use hudsucker::hyper_util::rt::TokioIo;
use hudsucker::rustls::crypto::aws_lc_rs;
use hudsucker::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use hudsucker::rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Longest CONNECT response head accepted.
const MAX_CONNECT_HEAD: usize = 8 * 1024;

/// Where requests go and how.
pub struct Target {
    /// Host and port of the origin, as the URL names them.
    host: String,
    port: u16,
    /// The origin's socket address, for direct connections.
    origin: SocketAddr,
    proxy: Option<SocketAddr>,
    /// Present for `https://` URLs.
    tls: Option<TlsConnector>,
}

impl Target {
    /// `url` is the origin's base URL; `ca` the PEM roots that the TLS
    /// server (the proxy, or the origin when direct) must chain to.
    pub async fn new(
        url: &str,
        proxy: Option<SocketAddr>,
        ca: Option<&Path>,
    ) -> anyhow::Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("{url}: only http:// and https:// URLs"),
        };
        let host = uri.host().context("URL without host")?.to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let origin = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .with_context(|| format!("{host} does not resolve"))?;
        ensure_loopback(origin)?;
        if let Some(proxy) = proxy {
            ensure_loopback(proxy)?;
        }
        let tls = match (https, ca) {
            (true, Some(ca)) => Some(tls_connector(ca)?),
            (true, None) => bail!("https:// needs --ca"),
            (false, _) => None,
        };
        Ok(Target {
            host,
            port,
            origin,
            proxy,
            tls,
        })
    }

    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// The request target for `path`: absolute-form when a proxy relays
    /// plain HTTP, origin-form otherwise.
    pub fn uri(&self, path: &str) -> anyhow::Result<Uri> {
        let text = if self.proxy.is_some() && !self.is_https() {
            format!("http://{}:{}{path}", self.host, self.port)
        } else {
            path.to_owned()
        };
        Ok(text.parse()?)
    }

    /// Value of the Host header.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Opens one HTTP/1.1 connection, with CONNECT and TLS as needed.
    pub async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let mut tcp = TcpStream::connect(self.proxy.unwrap_or(self.origin)).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => handshake(tcp).await,
            Some(tls) => {
                if self.proxy.is_some() {
                    connect_tunnel(&mut tcp, &self.authority()).await?;
                }
                handshake(tls_handshake(tls, tcp, &self.host).await?).await
            }
        }
    }
}

pub fn ensure_loopback(addr: SocketAddr) -> anyhow::Result<()> {
    ensure!(
        addr.ip().is_loopback(),
        "{addr} is not a loopback address; the benchmark only talks to this machine"
    );
    Ok(())
}

/// A TLS client trusting only the certificates in `ca`, speaking HTTP/1.1.
pub fn tls_connector(ca: &Path) -> anyhow::Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
    }
    ensure!(!roots.is_empty(), "{}: no certificate", ca.display());
    let mut config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Asks the proxy for a tunnel to `authority` and reads its answer, which
/// must be a 2xx head with nothing after it.
pub async fn connect_tunnel(tcp: &mut TcpStream, authority: &str) -> anyhow::Result<()> {
    let head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    tcp.write_all(head.as_bytes()).await?;
    let mut answer = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    // The proxy sends nothing after its head until the client speaks, so
    // reading in chunks cannot swallow TLS bytes.
    while !answer.ends_with(b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await?;
        ensure!(n > 0, "the proxy closed the connection during CONNECT");
        answer.extend_from_slice(&chunk[..n]);
        ensure!(answer.len() <= MAX_CONNECT_HEAD, "CONNECT answer too long");
    }
    let status = answer.split(|&b| b == b' ').nth(1).unwrap_or_default();
    ensure!(
        status.first() == Some(&b'2'),
        "CONNECT {authority} refused: {}",
        String::from_utf8_lossy(answer.split(|&b| b == b'\r').next().unwrap_or_default())
    );
    Ok(())
}

pub async fn tls_handshake(
    tls: &TlsConnector,
    tcp: TcpStream,
    host: &str,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.to_owned())?;
    Ok(tls.connect(name, tcp).await?)
}

async fn handshake<I>(io: I) -> anyhow::Result<SendRequest<Full<Bytes>>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
    // Ends when the sender is dropped or the peer closes.
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends `req` and reads the whole response; returns the body length.
pub async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<usize> {
    sender.ready().await?;
    let res = sender.send_request(req).await?;
    let status = res.status();
    let mut body = res.into_body();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len();
        }
    }
    ensure!(status.is_success(), "status {status}");
    Ok(len)
}

/// A request with the Host header set; `body` empty means GET.
pub fn request(target: &Target, path: &str, body: &Bytes) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut builder = Request::builder()
        .uri(target.uri(path)?)
        .header(header::HOST, target.authority())
        .header(header::USER_AGENT, "leakscope-bench");
    if !body.is_empty() {
        builder = builder
            .method("POST")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    Ok(builder.body(Full::new(body.clone()))?)
}
