//! Per-host leaf certificates for intercepted TLS connections.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use http::uri::Authority;
use hudsucker::certificate_authority::CertificateAuthority;
use lru::LruCache;
use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};
use time::{Duration, OffsetDateTime};

use super::CaError;
use super::authority::{BACKDATE, random_serial};

/// Leaf lifetime. Apple rejects server certificates valid for more than 825
/// days; a year stays well clear of that and of any stricter future limit.
const LEAF_VALIDITY: Duration = Duration::days(365);
/// Cached configs are regenerated after this long, so a proxy left running
/// for months never serves a leaf close to (or past) its expiry.
const CACHE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 60 * 60);
/// Name used when a host cannot be encoded even after sanitising.
const FALLBACK_HOST: &str = "leakscope.invalid";
/// Upper bound on a CN (X.520 ub-common-name). The SAN carries the full
/// host; the CN is only informational.
const MAX_CN_CHARS: usize = 64;
/// Maximum length of a DNS name in presentation form.
const MAX_DNS_NAME: usize = 253;

struct Cached {
    config: Arc<ServerConfig>,
    created: Instant,
}

/// Issues and caches a TLS server config per intercepted host; hudsucker
/// calls it through [`CertificateAuthority`].
///
/// All leaves share one key pair generated when the issuer is built (fast
/// issuing, and the CA key is never used in a handshake). Each leaf is
/// signed by the CA, and the chain sent to clients is leaf then CA.
pub struct LeafIssuer {
    signer: Signer,
    /// `None` when built with capacity 0: every request generates.
    cache: Option<Mutex<LruCache<String, Cached>>>,
    issued: AtomicU64,
    /// Built up front so a host that cannot be issued for still gets a
    /// config (the client will reject it) instead of a panic.
    fallback: Arc<ServerConfig>,
}

/// Everything needed to turn a host name into a server config.
struct Signer {
    ca: Arc<Issuer<'static, KeyPair>>,
    ca_der: CertificateDer<'static>,
    ca_not_after: OffsetDateTime,
    leaf_key: KeyPair,
    signing_key: Arc<dyn SigningKey>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for LeafIssuer {
    // By hand: a derived form would reach the leaf key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafIssuer")
            .field("issued_count", &self.issued_count())
            .field("caching", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl LeafIssuer {
    pub(super) fn new(
        ca: Arc<Issuer<'static, KeyPair>>,
        ca_der: Vec<u8>,
        ca_not_after: OffsetDateTime,
        cache_capacity: usize,
    ) -> Result<LeafIssuer, CaError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let leaf_key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CaError::Generate {
                what: "leaf key pair",
                source,
            })?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        // Parsed once here rather than per host as `with_single_cert` would.
        let signing_key = provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|source| CaError::Tls { source })?;
        let signer = Signer {
            ca,
            ca_der: CertificateDer::from(ca_der),
            ca_not_after,
            leaf_key,
            signing_key,
            provider,
        };
        // Also proves up front that issuing works at all, so the only
        // failures left at request time are specific to a host.
        let fallback = signer.build(FALLBACK_HOST)?;
        Ok(LeafIssuer {
            signer,
            cache: NonZeroUsize::new(cache_capacity).map(|n| Mutex::new(LruCache::new(n))),
            issued: AtomicU64::new(0),
            fallback,
        })
    }

    /// How many leaf certificates were generated for requests (cache hits
    /// excluded). Concurrent first requests for one host may each generate,
    /// and each counts.
    pub fn issued_count(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// The server config for `host` (as in [`Authority::host`]: no port,
    /// IPv6 possibly bracketed), from the cache when fresh.
    fn config_for(&self, host: &str) -> Arc<ServerConfig> {
        let host = normalize_host(host);
        if let Some(hit) = self.cached(&host) {
            return hit;
        }
        // Generated with the lock released: signing takes a while, and
        // other hosts' lookups must not queue behind it.
        let config = self.issue(&host);
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.put(
                host,
                Cached {
                    config: Arc::clone(&config),
                    created: Instant::now(),
                },
            );
        }
        config
    }

    fn cached(&self, host: &str) -> Option<Arc<ServerConfig>> {
        // A poisoned lock only means another thread panicked while holding
        // it; the cached configs themselves are still valid.
        let mut cache = self
            .cache
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match cache.get(host) {
            Some(entry) if entry.created.elapsed() < CACHE_MAX_AGE => {
                Some(Arc::clone(&entry.config))
            }
            Some(_) => {
                cache.pop(host);
                None
            }
            None => None,
        }
    }

    /// Issues for `host`, degrading instead of failing: a host rcgen cannot
    /// encode gets a certificate for a sanitised form of its name, and if
    /// even that fails, the prebuilt fallback.
    fn issue(&self, host: &str) -> Arc<ServerConfig> {
        let error = match self.signer.build(host) {
            Ok(config) => {
                self.issued.fetch_add(1, Ordering::Relaxed);
                return config;
            }
            Err(error) => error,
        };
        let sanitized = sanitize_host(host);
        tracing::warn!(
            %host, %sanitized, %error,
            "cannot issue a certificate for this host; using a sanitized name"
        );
        match self.signer.build(&sanitized) {
            Ok(config) => {
                self.issued.fetch_add(1, Ordering::Relaxed);
                config
            }
            Err(error) => {
                tracing::warn!(
                    %host, %error,
                    "cannot issue for the sanitized name either; using the fallback certificate"
                );
                Arc::clone(&self.fallback)
            }
        }
    }
}

impl Signer {
    /// Signs a leaf for `host` and wraps it in a server config.
    fn build(&self, host: &str) -> Result<Arc<ServerConfig>, CaError> {
        let leaf = self.sign_leaf(host)?;
        let chain = vec![leaf, self.ca_der.clone()];
        let certified = CertifiedKey::new(chain, Arc::clone(&self.signing_key));
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|source| CaError::Tls { source })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn sign_leaf(&self, host: &str) -> Result<CertificateDer<'static>, CaError> {
        let generate = |source| CaError::Generate {
            what: "leaf certificate",
            source,
        };
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(Ia5String::try_from(host).map_err(generate)?),
        };
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            host.chars().take(MAX_CN_CHARS).collect::<String>(),
        );

        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = name;
        params.subject_alt_names = vec![san];
        params.serial_number = Some(random_serial());
        params.not_before = now - BACKDATE;
        // A leaf outliving its CA would only confuse clients.
        params.not_after = (now + LEAF_VALIDITY).min(self.ca_not_after);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;

        let cert = params
            .signed_by(&self.leaf_key, &self.ca)
            .map_err(generate)?;
        Ok(cert.der().clone())
    }
}

impl CertificateAuthority for LeafIssuer {
    /// The config for `authority`'s host; the port is ignored, so every
    /// port of one host shares a certificate and a cache entry.
    async fn gen_server_config(&self, authority: &Authority) -> Arc<ServerConfig> {
        self.config_for(authority.host())
    }
}

/// Cache key and certificate name: lowercase, IPv6 brackets removed.
fn normalize_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// A DNS-safe stand-in for a host rcgen refused: letters, digits, `-` and
/// `.` kept, everything else turned into `-`, bounded in length.
fn sanitize_host(host: &str) -> String {
    let cleaned: String = host
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(MAX_DNS_NAME)
        .collect();
    let trimmed = cleaned.trim_matches('.');
    if trimmed.is_empty() {
        FALLBACK_HOST.to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::authority;
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

    fn issuer(capacity: usize) -> Result<LeafIssuer, CaError> {
        let (der, key) = authority::generate()?;
        let path = std::path::Path::new("test.pem");
        let parsed = authority::parse_ca_der(path, &der)?;
        let ca = authority::issuer(path, &der, key)?;
        LeafIssuer::new(Arc::new(ca), der, parsed.not_after, capacity)
    }

    #[test]
    fn normalizes_hosts() {
        assert_eq!(normalize_host("Example.TEST"), "example.test");
        assert_eq!(normalize_host("[::1]"), "::1");
        assert_eq!(normalize_host("[FE80::1]"), "fe80::1");
        assert_eq!(normalize_host("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn sanitizes_hosts() {
        assert_eq!(sanitize_host("bad_host!.Test"), "bad-host-.test");
        assert_eq!(sanitize_host("ünï.example"), "-n-.example");
        assert_eq!(sanitize_host("..."), FALLBACK_HOST);
        assert_eq!(sanitize_host(&"a".repeat(400)).len(), MAX_DNS_NAME);
    }

    #[test]
    fn unencodable_host_falls_back_without_panicking() -> Result<(), CaError> {
        let issuer = issuer(4)?;
        // Not ASCII, so not an IA5String: rcgen refuses it as a DNS SAN.
        let config = issuer.config_for("bücher.example");
        assert_eq!(issuer.issued_count(), 1);
        assert!(!config.alpn_protocols.is_empty());
        Ok(())
    }

    #[test]
    fn leaf_has_expected_fields() -> Result<(), Box<dyn std::error::Error>> {
        let issuer = issuer(4)?;
        let der = issuer.signer.sign_leaf("api.example.test")?;
        let (_, cert) = X509Certificate::from_der(&der)?;
        let sans = cert.subject_alternative_name()?.ok_or("no SAN")?;
        assert_eq!(
            sans.value.general_names,
            vec![GeneralName::DNSName("api.example.test")]
        );
        let eku = cert.extended_key_usage()?.ok_or("no EKU")?;
        assert!(eku.value.server_auth);
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert!(lifetime < 825 * 24 * 3600);
        assert!(!cert.is_ca());
        Ok(())
    }

    #[test]
    fn zero_capacity_disables_cache() -> Result<(), CaError> {
        let issuer = issuer(0)?;
        issuer.config_for("a.test");
        issuer.config_for("a.test");
        assert_eq!(issuer.issued_count(), 2);
        Ok(())
    }

    #[test]
    fn cache_ignores_case_and_evicts_least_recent() -> Result<(), CaError> {
        let issuer = issuer(2)?;
        let first = issuer.config_for("A.test");
        let again = issuer.config_for("a.TEST");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(issuer.issued_count(), 1);
        issuer.config_for("b.test");
        issuer.config_for("c.test");
        // "a.test" was least recently used, so it was evicted.
        issuer.config_for("a.test");
        assert_eq!(issuer.issued_count(), 4);
        Ok(())
    }
}
