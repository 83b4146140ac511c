//! Android's name for a CA file in the system trust store.
//!
//! Android looks certificates up in `/system/etc/security/cacerts` (and, from
//! Android 14, `/apex/com.android.conscrypt/cacerts`) by file name
//! `<hash>.<n>`, where `<hash>` is OpenSSL's legacy `subject_hash_old`: the
//! pre-1.0 OpenSSL hash, which, unlike the current one, hashes the subject's
//! DER bytes exactly as encoded, with no canonicalisation.

use md5::{Digest, Md5};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

use super::CaError;

/// OpenSSL `x509 -subject_hash_old`: MD5 over the DER encoding of the
/// subject Name, first four bytes read little-endian.
///
/// `cert_der` must be one DER certificate; anything else gives
/// [`CaError::InvalidCertificate`].
pub fn subject_hash_old(cert_der: &[u8]) -> Result<u32, CaError> {
    let (_, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| CaError::InvalidCertificate {
            reason: e.to_string(),
        })?;
    Ok(hash_name(cert.subject()))
}

/// `subject_hash_old` of an already parsed name.
pub(super) fn hash_name(name: &X509Name<'_>) -> u32 {
    // `as_raw` is the Name exactly as it appears in the certificate, SEQUENCE
    // header included, which is what OpenSSL's X509_NAME_hash_old digests.
    let digest = Md5::digest(name.as_raw());
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The system-store file name for a hash: 8 lowercase hex digits and `.0`.
pub(super) fn system_file_name(hash: u32) -> String {
    format!("{hash:08x}.0")
}

/// Whether `name` looks like a system-store file this module writes.
pub(super) fn is_system_file_name(name: &str) -> bool {
    name.strip_suffix(".0").is_some_and(|stem| {
        stem.len() == 8
            && stem
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    /// Made with `openssl req -x509 -newkey ec ... -subj "/C=DE/O=Example Org/CN=Known Test"`;
    /// `openssl x509 -noout -subject_hash_old` prints a1d8703b for it, and
    /// the newer `-subject_hash` prints 47012af1.
    const KNOWN_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBxzCCAW2gAwIBAgIUGT6z+fz53famVA6HcrX4Mv7XP3MwCgYIKoZIzj0EAwIw
ODELMAkGA1UEBhMCREUxFDASBgNVBAoMC0V4YW1wbGUgT3JnMRMwEQYDVQQDDApL
bm93biBUZXN0MCAXDTI2MTEyODE5NDQyNFoYDzIxMjYxMTA0MTk0NDI0WjA4MQsw
CQYDVQQGEwJERTEUMBIGA1UECgwLRXhhbXBsZSBPcmcxEzARBgNVBAMMCktub3du
IFRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARzsTeFj8yi4GWNc68vA7Ue
o0bOuMgQq+Y6o6PhsgUZMtXgYR37VbgFIuGDz5AWQMvFF4YssdTA2a9QChlbZilI
o1MwUTAdBgNVHQ4EFgQU32Ksc6gl2cahw2DX6KoSQ7a9DNEwHwYDVR0jBBgwFoAU
32Ksc6gl2cahw2DX6KoSQ7a9DNEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNIADBFAiEA/4O1zvrjNw7oKVtJnXSXGAdaa/2yG3t0YwRbnsF2yF8CIFTtyS3F
k227/9h8ljHWU9X7AwYQ/6N63BpMeLnTzlDQ
-----END CERTIFICATE-----
";

    #[test]
    fn matches_openssl_for_known_certificate() -> Result<(), Box<dyn std::error::Error>> {
        let der = CertificateDer::from_pem_slice(KNOWN_PEM.as_bytes())?;
        let hash = subject_hash_old(&der)?;
        assert_eq!(format!("{hash:08x}"), "a1d8703b");
        assert_eq!(system_file_name(hash), "a1d8703b.0");
        Ok(())
    }

    #[test]
    fn rejects_non_certificates() {
        assert!(matches!(
            subject_hash_old(b"not a certificate"),
            Err(CaError::InvalidCertificate { .. })
        ));
        assert!(subject_hash_old(&[]).is_err());
    }

    #[test]
    fn file_names_are_zero_padded() {
        assert_eq!(system_file_name(0xab), "000000ab.0");
    }

    #[test]
    fn recognises_system_file_names() {
        assert!(is_system_file_name("a1d8703b.0"));
        assert!(is_system_file_name("00000000.0"));
        assert!(!is_system_file_name("A1D8703B.0"));
        assert!(!is_system_file_name("a1d8703b.1"));
        assert!(!is_system_file_name("a1d8703.0"));
        assert!(!is_system_file_name("leakscope-ca.pem"));
        assert!(!is_system_file_name("README.md"));
    }
}
