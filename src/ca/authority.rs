//! Generating the CA certificate and checking a loaded one.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{CaError, android};

/// Fixed part of the CA's common name; a random suffix follows it.
pub(super) const CA_COMMON_NAME: &str = "leakscope interception CA";
/// The CA's organization, which is what many trust-store screens list.
pub(super) const CA_ORGANIZATION: &str = "leakscope";
/// How long a new CA is valid. Ten years: re-provisioning phones is tedious,
/// and the key never leaves the user's machine.
const CA_VALIDITY: Duration = Duration::days(3652);
/// Back-dating absorbs clock skew between this machine and test devices.
pub(super) const BACKDATE: Duration = Duration::days(1);

/// What the rest of the module needs from a parsed CA certificate.
#[derive(Debug)]
pub(super) struct ParsedCa {
    pub(super) android_hash: u32,
    pub(super) not_after: OffsetDateTime,
    /// Raw subjectPublicKey bits, compared against the key file.
    public_key: Vec<u8>,
}

/// Generates a new CA key pair and self-signed certificate (DER).
///
/// ECDSA P-256 because every TLS client we target (Android 7+, iOS,
/// browsers) accepts it, signatures are fast, and generation is instant.
/// The 16-hex-digit random suffix in the CN makes each user's CA distinct,
/// so two leakscope CAs never collide on the same Android `<hash>.0` name.
pub(super) fn generate() -> Result<(Vec<u8>, KeyPair), CaError> {
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CaError::Generate {
            what: "CA key pair",
            source,
        })?;

    let suffix: [u8; 8] = rand::random();
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("{CA_COMMON_NAME} {suffix}"));
    name.push(DnType::OrganizationName, CA_ORGANIZATION);

    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    params.serial_number = Some(random_serial());
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    // Path length 0: this CA signs leaves directly and nothing else.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];

    let cert = params
        .self_signed(&key)
        .map_err(|source| CaError::Generate {
            what: "CA certificate",
            source,
        })?;
    Ok((cert.der().to_vec(), key))
}

/// A random, positive, 16-byte serial number.
///
/// Random rather than derived from the key because every leaf shares one
/// key pair, and clients such as Firefox reject two different certificates
/// with the same issuer and serial.
pub(super) fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Top bit clear keeps the DER INTEGER positive; bit 6 set keeps the
    // encoding a constant 16 bytes (no leading zero octets to strip).
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// PEM-encodes a DER certificate with LF line endings and 64-column base64,
/// the layout OpenSSL, Android and iOS all accept.
pub(super) fn pem_encode(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    // base64 output is ASCII, so splitting bytes never breaks a character.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Decodes a PEM file that must hold exactly one certificate.
pub(super) fn decode_cert_pem(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, CaError> {
    let corrupt = |reason: String| CaError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| corrupt(format!("it is not valid PEM ({e})")))?;
    match certs.as_slice() {
        [one] => Ok(one.to_vec()),
        [] => Err(corrupt("it contains no PEM CERTIFICATE block".into())),
        more => Err(corrupt(format!(
            "it contains {} certificates, expected exactly one",
            more.len()
        ))),
    }
}

/// Decodes the CA key file.
///
/// Parse errors are reported without their details: whatever a PEM or key
/// parser echoes back could be a fragment of the secret.
pub(super) fn decode_key_pem(path: &Path, bytes: &[u8]) -> Result<KeyPair, CaError> {
    let corrupt = |reason: &str| CaError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let der = PrivateKeyDer::from_pem_slice(bytes)
        .map_err(|_| corrupt("it does not contain a PEM private key"))?;
    KeyPair::try_from(&der).map_err(|_| corrupt("the private key could not be parsed"))
}

/// Parses and checks a CA certificate; `path` is only used in errors.
pub(super) fn parse_ca_der(path: &Path, der: &[u8]) -> Result<ParsedCa, CaError> {
    let corrupt = |reason: String| CaError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| corrupt(format!("it is not an X.509 certificate ({e})")))?;
    if !rest.is_empty() {
        return Err(corrupt("trailing data after the certificate".into()));
    }

    let is_ca = cert
        .basic_constraints()
        .map_err(|e| corrupt(format!("bad basicConstraints extension ({e})")))?
        .is_some_and(|ext| ext.value.ca);
    if !is_ca {
        return Err(corrupt(
            "it is not a CA certificate (basicConstraints CA:TRUE missing)".into(),
        ));
    }
    let can_sign = cert
        .key_usage()
        .map_err(|e| corrupt(format!("bad keyUsage extension ({e})")))?
        .is_none_or(|ext| ext.value.key_cert_sign());
    if !can_sign {
        return Err(corrupt(
            "its keyUsage does not allow signing certificates".into(),
        ));
    }
    // rcgen can only re-encode names with one attribute per RDN; checking here
    // turns an unusual hand-made certificate into an error instead of a panic.
    if cert.subject().iter().any(|rdn| rdn.iter().count() != 1) {
        return Err(corrupt(
            "its subject has a multi-valued RDN, which is not supported".into(),
        ));
    }

    Ok(ParsedCa {
        android_hash: android::hash_name(cert.subject()),
        not_after: cert.validity().not_after.to_datetime(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// Fails if the key file's key is not the one certified by the CA cert:
/// leaves signed by the wrong key would fail verification on every device.
pub(super) fn check_key_matches(
    key_path: &Path,
    parsed: &ParsedCa,
    key: &KeyPair,
) -> Result<(), CaError> {
    if key.public_key_raw() == parsed.public_key.as_slice() {
        Ok(())
    } else {
        Err(CaError::Corrupt {
            path: key_path.to_path_buf(),
            reason: "this key does not belong to the CA certificate".into(),
        })
    }
}

/// Fails once the CA is past its expiry: every leaf would be rejected.
pub(super) fn check_not_expired(cert_path: &Path, parsed: &ParsedCa) -> Result<(), CaError> {
    if parsed.not_after > OffsetDateTime::now_utc() {
        return Ok(());
    }
    let not_after = parsed
        .not_after
        .format(&Rfc3339)
        .unwrap_or_else(|_| parsed.not_after.to_string());
    Err(CaError::Expired {
        path: cert_path.to_path_buf(),
        not_after,
    })
}

/// Builds the rcgen issuer from the certificate as stored, so the issuer
/// name in every leaf is byte-for-byte the CA's subject.
pub(super) fn issuer(
    cert_path: &Path,
    der: &[u8],
    key: KeyPair,
) -> Result<Issuer<'static, KeyPair>, CaError> {
    Issuer::from_ca_cert_der(&CertificateDer::from(der), key).map_err(|e| CaError::Corrupt {
        path: cert_path.to_path_buf(),
        reason: format!("rcgen cannot issue certificates from it ({e})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ca_passes_own_checks() -> Result<(), CaError> {
        let (der, key) = generate()?;
        let path = Path::new("test.pem");
        let parsed = parse_ca_der(path, &der)?;
        check_key_matches(path, &parsed, &key)?;
        check_not_expired(path, &parsed)?;
        issuer(path, &der, key)?;
        Ok(())
    }

    #[test]
    fn two_cas_have_different_names() -> Result<(), CaError> {
        let (a, _) = generate()?;
        let (b, _) = generate()?;
        let path = Path::new("test.pem");
        assert_ne!(
            parse_ca_der(path, &a)?.android_hash,
            parse_ca_der(path, &b)?.android_hash
        );
        Ok(())
    }

    #[test]
    fn pem_round_trips() -> Result<(), CaError> {
        let (der, _) = generate()?;
        let pem = pem_encode(&der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(decode_cert_pem(Path::new("x"), pem.as_bytes())?, der);
        Ok(())
    }

    #[test]
    fn pem_with_two_certs_is_rejected() -> Result<(), CaError> {
        let (der, _) = generate()?;
        let twice = pem_encode(&der).repeat(2);
        let err = decode_cert_pem(Path::new("two.pem"), twice.as_bytes());
        assert!(matches!(err, Err(CaError::Corrupt { .. })));
        Ok(())
    }

    #[test]
    fn foreign_key_is_rejected() -> Result<(), CaError> {
        let (der, _) = generate()?;
        let (_, other_key) = generate()?;
        let parsed = parse_ca_der(Path::new("c.pem"), &der)?;
        let err = check_key_matches(Path::new("k.pem"), &parsed, &other_key);
        assert!(matches!(err, Err(CaError::Corrupt { .. })));
        Ok(())
    }

    #[test]
    fn serials_are_positive_and_fixed_length() {
        for _ in 0..64 {
            let bytes = random_serial().to_bytes();
            assert_eq!(bytes.len(), 16);
            assert_eq!(bytes[0] & 0xc0, 0x40);
        }
    }
}
