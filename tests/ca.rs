//! Certificate authority: files on disk, OpenSSL agreement, and leaves that
//! real TLS clients accept (handshakes on loopback only).

use std::error::Error;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use hudsucker::certificate_authority::CertificateAuthority;
use leakscope::ca::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

type TestResult = Result<(), Box<dyn Error>>;

/// Runs `openssl` with the words of `cmd` followed by `paths`; `None`
/// (after saying so) if openssl is not installed.
fn openssl(cmd: &str, paths: &[&Path]) -> Result<Option<String>, Box<dyn Error>> {
    let mut command = Command::new("openssl");
    command.args(cmd.split_whitespace()).args(paths);
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipping: `openssl` is not on PATH");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("openssl {cmd} failed: {stderr}").into());
    }
    Ok(Some(String::from_utf8(output.stdout)?))
}

fn new_ca() -> Result<(tempfile::TempDir, CertAuthority), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let ca = CertAuthority::init(dir.path(), false)?;
    Ok((dir, ca))
}

fn load_error(dir: &Path) -> Result<CaError, Box<dyn Error>> {
    CertAuthority::load(dir)
        .err()
        .ok_or_else(|| "load succeeded".into())
}

// ---------------------------------------------------------------- hashing

#[test]
fn subject_hash_old_matches_openssl_for_generated_ca() -> TestResult {
    let (_dir, ca) = new_ca()?;
    let cmd = "x509 -noout -subject_hash_old -in";
    let Some(out) = openssl(cmd, &[&ca.files().cert_pem])? else {
        return Ok(());
    };
    assert_eq!(out.trim(), ca.android_hash());
    let hash = subject_hash_old(ca.cert_der())?;
    assert_eq!(out.trim(), format!("{hash:08x}"));
    Ok(())
}

#[test]
fn subject_hash_old_matches_openssl_for_openssl_certificate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    // `-subj` holds a space, so it cannot go through the word-split helper.
    let status = match Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=Known Test/O=Example", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
    {
        Ok(output) => output.status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipping: `openssl` is not on PATH");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    assert!(status.success(), "openssl req failed");
    let out = openssl("x509 -noout -subject_hash_old -in", &[&cert])?.ok_or("no openssl")?;
    let der = CertificateDer::from_pem_file(&cert)?;
    assert_eq!(format!("{:08x}", subject_hash_old(&der)?), out.trim());
    Ok(())
}

// ---------------------------------------------------------------- files

#[cfg(unix)]
#[test]
fn key_file_mode_is_0600() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, ca) = new_ca()?;
    let mode = fs::metadata(&ca.files().key_pem)?.permissions().mode();
    assert_eq!(mode & 0o7777, 0o600);
    Ok(())
}

#[test]
fn init_writes_the_expected_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ca = CertAuthority::init(&dir.path().join("nested/certs"), false)?;
    let files = ca.files();
    let android_name = format!("{}.0", ca.android_hash());
    for (path, name) in [
        (&files.cert_pem, "leakscope-ca.pem"),
        (&files.key_pem, "leakscope-ca-key.pem"),
        (&files.cert_der, "leakscope-ca.cer"),
        (&files.android_system, android_name.as_str()),
    ] {
        assert_eq!(path.file_name(), Some(name.as_ref()));
    }
    assert_eq!(fs::read_to_string(&files.cert_pem)?, ca.cert_pem());
    assert_eq!(fs::read_to_string(&files.android_system)?, ca.cert_pem());
    let key = fs::read_to_string(&files.key_pem)?;
    assert!(
        key.starts_with("-----BEGIN PRIVATE KEY-----"),
        "not PKCS#8 PEM"
    );

    // The .cer is the PEM's decoded bytes, and the fingerprint is over them.
    let der = fs::read(&files.cert_der)?;
    assert_eq!(
        der,
        CertificateDer::from_pem_file(&files.cert_pem)?.as_ref()
    );
    assert_eq!(der, ca.cert_der());
    let fingerprint = ca.fingerprint_sha256();
    assert_eq!(fingerprint.len(), 32 * 3 - 1);
    assert!(
        fingerprint
            .chars()
            .all(|c| c == ':' || c.is_ascii_hexdigit())
    );
    assert_eq!(fingerprint, fingerprint.to_uppercase());
    Ok(())
}

#[test]
fn init_refuses_to_overwrite_unless_forced() -> TestResult {
    let (dir, first) = new_ca()?;
    let old_android = first.files().android_system.clone();

    let err = CertAuthority::init(dir.path(), false)
        .err()
        .ok_or("overwrote")?;
    assert!(matches!(err, CaError::AlreadyExists { .. }), "{err}");
    assert!(
        err.to_string().contains("leakscope ca init --force"),
        "{err}"
    );
    let kept = CertAuthority::load(dir.path())?;
    assert_eq!(kept.fingerprint_sha256(), first.fingerprint_sha256());

    let second = CertAuthority::init(dir.path(), true)?;
    assert_ne!(second.fingerprint_sha256(), first.fingerprint_sha256());
    assert_ne!(second.android_hash(), first.android_hash());
    assert!(!old_android.exists(), "stale Android file left behind");
    let loaded = CertAuthority::load(dir.path())?;
    assert_eq!(loaded.fingerprint_sha256(), second.fingerprint_sha256());
    Ok(())
}

#[test]
fn init_refuses_when_only_an_android_file_exists() -> TestResult {
    let dir = tempfile::tempdir()?;
    fs::write(dir.path().join("0badcafe.0"), "x")?;
    let err = CertAuthority::init(dir.path(), false)
        .err()
        .ok_or("ignored .0")?;
    assert!(matches!(err, CaError::AlreadyExists { .. }), "{err}");
    Ok(())
}

#[test]
fn load_returns_the_same_ca() -> TestResult {
    let (dir, made) = new_ca()?;
    let loaded = CertAuthority::load(dir.path())?;
    assert_eq!(loaded.cert_pem(), made.cert_pem());
    assert_eq!(loaded.cert_der(), made.cert_der());
    assert_eq!(loaded.android_hash(), made.android_hash());
    assert_eq!(loaded.files(), made.files());
    Ok(())
}

#[test]
fn load_of_damaged_or_mismatched_files_names_the_file() -> TestResult {
    let (_other_dir, stranger) = new_ca()?;
    let foreign_key = fs::read(&stranger.files().key_pem)?;
    let bad_cert = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n";
    let bad_key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    type Pick = fn(&CaFiles) -> &Path;
    let cases: [(Pick, &[u8]); 6] = [
        (|f| &f.cert_pem, bad_cert),
        (|f| &f.cert_pem, b"junk"),
        (|f| &f.key_pem, bad_key),
        (|f| &f.key_pem, &foreign_key),
        (|f| &f.cert_der, stranger.cert_der()),
        (|f| &f.android_system, stranger.cert_pem().as_bytes()),
    ];
    for (pick, contents) in cases {
        let (dir, ca) = new_ca()?;
        let target = pick(ca.files());
        // Rewritten in place, so the key keeps its 0600 mode.
        fs::write(target, contents)?;
        let err = load_error(dir.path())?;
        assert!(
            matches!(&err, CaError::Corrupt { path, .. } if path == target),
            "{err}"
        );
        assert!(
            err.to_string().contains(&target.display().to_string()),
            "{err}"
        );
        assert!(err.to_string().contains("--force"), "{err}");
    }
    Ok(())
}

#[cfg(unix)]
#[test]
fn load_refuses_a_group_readable_key() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let (dir, ca) = new_ca()?;
    let key = ca.files().key_pem.clone();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644))?;
    let err = load_error(dir.path())?;
    assert!(
        matches!(&err, CaError::InsecureKeyPermissions { path, mode: 0o644 } if *path == key),
        "{err}"
    );
    let advice = format!("chmod 600 {}", key.display());
    assert!(err.to_string().contains(&advice), "{err}");

    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
    CertAuthority::load(dir.path())?;
    Ok(())
}

#[test]
fn load_of_empty_directory_says_to_init() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err = load_error(dir.path())?;
    assert!(matches!(err, CaError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("leakscope ca init"), "{err}");
    assert_eq!(fs::read_dir(dir.path())?.count(), 0, "load created files");
    Ok(())
}

#[test]
fn load_or_init_creates_once_then_loads() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (made, created) = CertAuthority::load_or_init(dir.path())?;
    assert!(created);
    let (loaded, created) = CertAuthority::load_or_init(dir.path())?;
    assert!(!created);
    assert_eq!(loaded.fingerprint_sha256(), made.fingerprint_sha256());
    Ok(())
}

#[test]
fn load_or_init_with_a_partial_set_names_what_is_missing() -> TestResult {
    let (dir, ca) = new_ca()?;
    let files = ca.files().clone();
    for gone in [
        &files.key_pem,
        &files.cert_der,
        &files.android_system,
        &files.cert_pem,
    ] {
        let saved = fs::read(gone)?;
        fs::remove_file(gone)?;
        let err = CertAuthority::load_or_init(dir.path())
            .err()
            .ok_or("accepted")?;
        let CaError::Incomplete { missing, .. } = &err else {
            return Err(format!("unexpected error: {err}").into());
        };
        // Only one file is gone, so only it is named. (Without the
        // certificate the Android name is unknowable, but the `.0` file
        // that is still there counts as present.)
        assert_eq!(missing, &vec![gone.clone()], "{err}");
        assert!(
            err.to_string().contains(&gone.display().to_string()),
            "{err}"
        );
        assert!(!gone.exists(), "load_or_init recreated {}", gone.display());
        restore(gone, &saved)?;
    }
    let reloaded = CertAuthority::load(dir.path())?;
    assert_eq!(reloaded.fingerprint_sha256(), ca.fingerprint_sha256());
    Ok(())
}

/// Puts a removed file back, owner-only so the key check passes.
fn restore(path: &Path, contents: &[u8]) -> TestResult {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, contents)?;
    Ok(())
}

// ---------------------------------------------------------------- openssl's view

#[test]
fn openssl_sees_a_signing_ca() -> TestResult {
    let (_dir, ca) = new_ca()?;
    let Some(text) = openssl("x509 -noout -text -in", &[&ca.files().cert_pem])? else {
        return Ok(());
    };
    for needle in [
        "CA:TRUE",
        "pathlen:0",
        "Certificate Sign",
        "CRL Sign",
        "Digital Signature",
        "leakscope interception CA ",
        "O = leakscope",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }

    let cmd = "x509 -inform DER -noout -fingerprint -sha256 -in";
    let fp = openssl(cmd, &[&ca.files().cert_der])?.ok_or("no openssl")?;
    let expected = format!("={}", ca.fingerprint_sha256());
    assert!(fp.trim().ends_with(&expected), "{fp}");
    Ok(())
}

// ---------------------------------------------------------------- leaves and TLS

fn client_trusting(ca_der: &[u8]) -> Result<ClientConfig, Box<dyn Error>> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

async fn config_for(issuer: &LeafIssuer, authority: &'static str) -> Arc<ServerConfig> {
    issuer
        .gen_server_config(&Authority::from_static(authority))
        .await
}

fn dns(name: &'static str) -> Result<ServerName<'static>, Box<dyn Error>> {
    Ok(ServerName::try_from(name)?)
}

type Handshake = (Vec<CertificateDer<'static>>, Option<Vec<u8>>);

/// One TLS handshake plus a ping round trip over 127.0.0.1. Returns the
/// chain the server sent and the negotiated ALPN, or the client's error.
async fn handshake(
    server: Arc<ServerConfig>,
    client: ClientConfig,
    name: ServerName<'static>,
) -> Result<Handshake, Box<dyn Error>> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = TlsAcceptor::from(server).accept(tcp).await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        tls.write_all(&buf).await?;
        tls.shutdown().await
    });

    let client_side = async {
        let tcp = TcpStream::connect(addr).await?;
        let connector = TlsConnector::from(Arc::new(client));
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        let (_, conn) = tls.get_ref();
        let chain = conn.peer_certificates().unwrap_or_default().to_vec();
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        Ok::<_, std::io::Error>((buf, chain, alpn))
    };
    let outcome = tokio::time::timeout(Duration::from_secs(10), client_side).await?;
    let (echo, chain, alpn) = match outcome {
        Ok(done) => done,
        Err(e) => {
            server_task.abort();
            return Err(e.into());
        }
    };
    assert_eq!(&echo, b"ping");
    server_task.await??;
    Ok((chain, alpn))
}

/// The leaf's SANs as "dns:<name>" / "ip:<address>".
fn leaf_sans(leaf: &X509Certificate<'_>) -> Result<Vec<String>, Box<dyn Error>> {
    let san = leaf.subject_alternative_name()?.ok_or("leaf has no SAN")?;
    let mut out = Vec::new();
    for name in &san.value.general_names {
        out.push(match name {
            GeneralName::DNSName(dns) => format!("dns:{dns}"),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                format!("ip:{}", IpAddr::from(<[u8; 4]>::try_from(*b)?))
            }
            GeneralName::IPAddress(b) => {
                format!("ip:{}", IpAddr::from(<[u8; 16]>::try_from(*b)?))
            }
            other => format!("other:{other:?}"),
        });
    }
    Ok(out)
}

#[tokio::test]
async fn leaves_carry_dns_or_ip_sans_and_chain_to_the_ca() -> TestResult {
    let (_dir, ca) = new_ca()?;
    let issuer = ca.leaf_issuer(16)?;
    let (_, root) = X509Certificate::from_der(ca.cert_der())?;

    let v4 = ServerName::from(IpAddr::from(Ipv4Addr::LOCALHOST));
    let v6 = ServerName::from(IpAddr::from(Ipv6Addr::LOCALHOST));
    let cases = [
        (
            "example.test:443",
            "dns",
            "example.test",
            dns("example.test")?,
        ),
        ("127.0.0.1:8443", "ip", "127.0.0.1", v4),
        ("[::1]:443", "ip", "::1", v6),
    ];
    for (authority, kind, host, name) in cases {
        let config = config_for(&issuer, authority).await;
        let client = client_trusting(ca.cert_der())?;
        let (chain, alpn) = handshake(config, client, name).await?;
        assert_eq!(chain.len(), 2, "chain for {authority} is leaf + CA");
        assert_eq!(chain[1].as_ref(), ca.cert_der());
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));

        let (_, leaf) = X509Certificate::from_der(&chain[0])?;
        assert_eq!(leaf_sans(&leaf)?, vec![format!("{kind}:{host}")]);
        let cn = leaf.subject().iter_common_name().next().ok_or("no CN")?;
        assert_eq!(cn.as_str()?, host);
        assert!(!leaf.is_ca());
        assert_eq!(leaf.issuer().as_raw(), root.subject().as_raw());
        assert_ne!(
            leaf.public_key().raw,
            root.public_key().raw,
            "CA key reused"
        );
        let eku = leaf.extended_key_usage()?.ok_or("no EKU")?;
        assert!(eku.value.server_auth);
        let validity = leaf.validity();
        let secs = validity.not_after.timestamp() - validity.not_before.timestamp();
        assert!((365..825).contains(&(secs / 86_400)), "valid {secs} s");
    }
    Ok(())
}

#[tokio::test]
async fn clients_that_do_not_trust_the_ca_refuse_the_leaf() -> TestResult {
    let (_dir, ca) = new_ca()?;
    let (_other_dir, other) = new_ca()?;
    let issuer = ca.leaf_issuer(16)?;
    let config = config_for(&issuer, "example.test").await;
    let client = client_trusting(other.cert_der())?;
    let refused = handshake(config, client, dns("example.test")?).await;
    let err = refused.err().ok_or("accepted without trusting the CA")?;
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    Ok(())
}

#[tokio::test]
async fn leaves_are_not_valid_for_other_names() -> TestResult {
    let (_dir, ca) = new_ca()?;
    let issuer = ca.leaf_issuer(16)?;
    let config = config_for(&issuer, "127.0.0.1").await;
    let client = client_trusting(ca.cert_der())?;
    let mismatch = handshake(config, client, dns("example.test")?).await;
    assert!(
        mismatch.is_err(),
        "127.0.0.1 leaf accepted for example.test"
    );
    Ok(())
}

#[tokio::test]
async fn leaves_from_a_reloaded_ca_still_chain() -> TestResult {
    let (dir, _) = new_ca()?;
    let ca = CertAuthority::load(dir.path())?;
    let issuer = ca.leaf_issuer(16)?;
    let config = config_for(&issuer, "example.test").await;
    let client = client_trusting(ca.cert_der())?;
    handshake(config, client, dns("example.test")?).await?;
    Ok(())
}

#[tokio::test]
async fn second_request_for_a_host_is_served_from_cache() -> TestResult {
    let (_dir, ca) = new_ca()?;
    let issuer = ca.leaf_issuer(16)?;
    assert_eq!(issuer.issued_count(), 0);
    let first = config_for(&issuer, "example.test:443").await;
    assert_eq!(issuer.issued_count(), 1);
    // Same host, different port and case: same entry.
    let second = config_for(&issuer, "EXAMPLE.test:8443").await;
    assert_eq!(issuer.issued_count(), 1);
    assert!(Arc::ptr_eq(&first, &second));
    config_for(&issuer, "other.test").await;
    assert_eq!(issuer.issued_count(), 2);
    Ok(())
}
