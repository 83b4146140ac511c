//! The origin server the proxies relay to: HTTP/1.1 in the clear and over
//! TLS, serving fixed bodies from memory so that it is never the
//! bottleneck. Its certificate is signed by a throwaway CA made at start;
//! only the CA certificate is written out (for clients and proxies to
//! trust), and no key ever touches the disk.

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hudsucker::hyper::body::Incoming;
use hudsucker::hyper::server::conn::http1;
use hudsucker::hyper::service::service_fn;
use hudsucker::hyper::{Method, Request, Response, StatusCode, header};
use hudsucker::hyper_util::rt::TokioIo;
use hudsucker::rustls::ServerConfig;
use hudsucker::rustls::crypto::aws_lc_rs;
use hudsucker::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio_rustls::TlsAcceptor;

/// Body of `/small` and of the answer to `POST /form`.
pub const SMALL_BODY: usize = 100;
/// Body of `/download`.
pub const DOWNLOAD_BODY: usize = 1 << 20;

#[derive(Args)]
pub struct OriginArgs {
    /// Port for plain HTTP on 127.0.0.1.
    #[arg(long)]
    http: u16,
    /// Port for HTTPS on 127.0.0.1.
    #[arg(long)]
    https: u16,
    /// Where to write the PEM certificate of the origin's CA; it is written
    /// once both ports listen, so its presence means "ready".
    #[arg(long)]
    ca_out: PathBuf,
}

/// The fixed response bodies, shared by every connection.
struct Bodies {
    small: Bytes,
    download: Bytes,
}

pub async fn run(args: OriginArgs) -> anyhow::Result<()> {
    let (ca_pem, tls) = certificates()?;
    let http = listen(args.http)?;
    let https = listen(args.https)?;
    let bodies = Arc::new(Bodies {
        small: Bytes::from(vec![b'x'; SMALL_BODY]),
        download: noise(DOWNLOAD_BODY),
    });
    let tmp = args.ca_out.with_extension("tmp");
    std::fs::write(&tmp, ca_pem).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.ca_out)
        .with_context(|| format!("writing {}", args.ca_out.display()))?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    tokio::try_join!(
        serve(http, None, bodies.clone()),
        serve(https, Some(acceptor), bodies)
    )?;
    Ok(())
}

fn listen(port: u16) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    // Inherited by accepted sockets: no Nagle stalls on responses.
    socket.set_nodelay(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("binding the origin to {addr}"))?;
    Ok(socket.listen(1024)?)
}

async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    bodies: Arc<Bodies>,
) -> anyhow::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let (tls, bodies) = (tls.clone(), bodies.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(req, bodies.clone()));
            // Errors are clients hanging up mid-request; the load generator
            // reports its own failures.
            match tls {
                Some(tls) => {
                    if let Ok(stream) = tls.accept(tcp).await {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                }
            }
        });
    }
}

async fn respond(
    req: Request<Incoming>,
    bodies: Arc<Bodies>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body, kind) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/small") => (StatusCode::OK, bodies.small.clone(), "text/plain"),
        (&Method::GET, "/download") => (
            StatusCode::OK,
            bodies.download.clone(),
            "application/octet-stream",
        ),
        (&Method::POST, "/form") => {
            // Read the upload to the end, as a real server would.
            match req.into_body().collect().await {
                Ok(_) => (StatusCode::OK, bodies.small.clone(), "text/plain"),
                Err(_) => (StatusCode::BAD_REQUEST, Bytes::new(), "text/plain"),
            }
        }
        _ => (StatusCode::NOT_FOUND, Bytes::new(), "text/plain"),
    };
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    Ok(res)
}

/// Incompressible bytes (xorshift), like the images and packages apps
/// download, so no proxy gets an easy ride from a repetitive body.
fn noise(len: usize) -> Bytes {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// A throwaway CA (its PEM certificate is returned) and a server config
/// whose certificate, signed by it, names `localhost` and `127.0.0.1`.
fn certificates() -> anyhow::Result<(String, ServerConfig)> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "leakscope bench origin CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf = leaf.signed_by(&key, &issuer)?;

    let chain = vec![
        leaf.der().clone(),
        CertificateDer::from(ca_cert.der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca_pem, config))
}
