//! The baseline for `bench/run`: hudsucker's own no-op MITM proxy (its
//! default handlers, its rcgen certificate authority), with nothing of
//! leakscope in the request path. Only what a benchmark needs is added:
//! the CA comes from PEM files, the origin's self-signed certificate can be
//! trusted upstream, and TCP_NODELAY is set on both sides as leakscope sets
//! it, so the comparison measures handler work rather than Nagle stalls.
//!
//! ```text
//! cargo run --release --example noop_proxy -- \
//!     --listen 127.0.0.1:8090 --ca-cert certs/leakscope-ca.pem \
//!     --ca-key certs/leakscope-ca-key.pem --upstream-ca origin.pem
//! ```

use anyhow::Context;
use clap::Parser;
use hudsucker::Proxy;
use hudsucker::certificate_authority::RcgenAuthority;
use hudsucker::hyper_util::client::legacy::connect::HttpConnector;
use hudsucker::rustls::crypto::aws_lc_rs;
use hudsucker::rustls::pki_types::{CertificateDer, pem::PemObject};
use hudsucker::rustls::{ClientConfig, RootCertStore};
use rcgen::{Issuer, KeyPair};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpSocket;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// CA certificate, PEM.
    #[arg(long)]
    ca_cert: PathBuf,
    /// CA private key, PEM.
    #[arg(long)]
    ca_key: PathBuf,
    /// Extra PEM roots trusted for upstream TLS (repeatable).
    #[arg(long)]
    upstream_ca: Vec<PathBuf>,
    /// Leaf certificates kept in memory.
    #[arg(long, default_value_t = 1000)]
    cache: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Warnings only by default: hudsucker's info spans stay disabled, as in
    // a proxy that logs nothing per request.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let key = std::fs::read_to_string(&args.ca_key)
        .with_context(|| format!("reading {}", args.ca_key.display()))?;
    let cert = std::fs::read_to_string(&args.ca_cert)
        .with_context(|| format!("reading {}", args.ca_cert.display()))?;
    let key = KeyPair::from_pem(&key).context("parsing the CA key")?;
    let issuer = Issuer::from_ca_cert_pem(&cert, key).context("parsing the CA certificate")?;
    let ca = RcgenAuthority::new(issuer, args.cache, aws_lc_rs::default_provider());

    // As hudsucker's `with_rustls_connector`, plus the extra roots.
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in &args.upstream_ca {
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading {}", path.display()))?
        {
            roots.add(cert.with_context(|| format!("parsing {}", path.display()))?)?;
        }
    }
    let tls = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);

    // Accepted sockets inherit TCP_NODELAY from the listening socket.
    let socket = if args.listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket
        .bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    let listener = socket.listen(1024)?;

    let proxy = Proxy::builder()
        .with_listener(listener)
        .with_ca(ca)
        .with_http_connector(connector)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .build()?;
    eprintln!("noop hudsucker proxy listening on {}", args.listen);
    proxy.start().await?;
    Ok(())
}
