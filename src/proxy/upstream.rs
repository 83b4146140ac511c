//! Connections to upstream servers: TLS trust and socket options.
//!
//! Upstream certificates are verified against the Mozilla root set shipped
//! in `webpki-roots`, plus any `--upstream-ca` files. `--insecure-upstream`
//! switches verification off; it is never the default and `run` says so
//! loudly when it is on.

use super::Timeouts;
use super::idle::IdleConnector;
use hudsucker::hyper_util::client::legacy::connect::HttpConnector;
use hudsucker::hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hudsucker::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use hudsucker::rustls::crypto::{CryptoProvider, aws_lc_rs};
use hudsucker::rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use hudsucker::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use hudsucker::tokio_tungstenite::Connector;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The one crypto provider used everywhere (see README: hudsucker's
/// tokio-rustls already links aws-lc-rs).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Client TLS settings for upstream connections, without ALPN (each user
/// sets the protocols it speaks).
pub(crate) fn client_tls(extra_roots: &[PathBuf], insecure: bool) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_roots {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("--upstream-ca {}: {e}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--upstream-ca {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--upstream-ca {}: no PEM certificate in the file",
                path.display()
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("--upstream-ca {}: {e}", path.display()))?;
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The HTTP(S) connector hudsucker forwards requests through: HTTP/1.1 and
/// HTTP/2 by ALPN, TCP_NODELAY on, bounded connect time, connections that
/// fail once idle for `timeouts.idle`, `--resolve` overrides applied before
/// the system resolver.
pub(crate) fn connector(
    tls: ClientConfig,
    timeouts: &Timeouts,
    resolve: &HashMap<String, SocketAddr>,
) -> HttpsConnector<IdleConnector<HttpConnector<OverrideResolver>>> {
    let resolver = OverrideResolver {
        overrides: Arc::new(resolve.clone()),
        system: GaiResolver::new(),
    };
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeouts.connect));
    HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(IdleConnector::new(http, timeouts.idle))
}

/// Resolves `--resolve HOST=ADDR` names to their fixed address (like
/// curl's `--resolve`), everything else through the system resolver.
#[derive(Clone)]
pub(crate) struct OverrideResolver {
    overrides: Arc<HashMap<String, SocketAddr>>,
    system: GaiResolver,
}

type Addrs = std::vec::IntoIter<SocketAddr>;
type Resolving = Pin<Box<dyn Future<Output = Result<Addrs, std::io::Error>> + Send>>;

impl tower_service::Service<Name> for OverrideResolver {
    type Response = Addrs;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        if let Some(addr) = self.overrides.get(&name.as_str().to_ascii_lowercase()) {
            let addrs = vec![*addr].into_iter();
            return Box::pin(async move { Ok(addrs) });
        }
        let lookup = self.system.call(name);
        Box::pin(async move { Ok(lookup.await?.collect::<Vec<_>>().into_iter()) })
    }
}

/// Connector for upstream WebSockets, which speak HTTP/1.1 only.
pub(crate) fn websocket_connector(mut tls: ClientConfig) -> Connector {
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Connector::Rustls(Arc::new(tls))
}

/// `--insecure-upstream`: accepts any certificate but still checks that the
/// handshake signatures are valid for the key presented.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, hudsucker::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, hudsucker::rustls::Error> {
        hudsucker::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, hudsucker::rustls::Error> {
        hudsucker::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
