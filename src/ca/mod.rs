//! Certificate authority: the root certificate devices are asked to trust,
//! and the per-host leaf certificates the proxy presents while intercepting.
//!
//! The CA lives in a directory (by default `certs/`) as four files:
//!
//! | file                   | contents                                        |
//! |------------------------|-------------------------------------------------|
//! | `leakscope-ca.pem`     | CA certificate, PEM                             |
//! | `leakscope-ca-key.pem` | CA private key, PKCS#8 PEM, mode 0600            |
//! | `leakscope-ca.cer`     | CA certificate, DER (what phones import)        |
//! | `<hash>.0`             | CA certificate, PEM, named for Android's system store |
//!
//! Nothing here ever creates a CA implicitly except [`CertAuthority::init`]
//! and [`CertAuthority::load_or_init`] on a directory holding no CA file at
//! all: a half-present or damaged CA is always reported, never replaced,
//! because replacing it silently would break every device that trusts it.

mod android;
mod authority;
mod install;
mod leaf;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{Issuer, KeyPair};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use android::subject_hash_old;
pub use install::install_steps;
pub use leaf::LeafIssuer;

/// What to tell the user when the only way forward is a fresh CA.
const REINIT_HINT: &str = "run `leakscope ca init --force` to replace the CA \
     (every device that trusts the old one must then be given the new certificate)";

/// Everything that can go wrong creating, loading or using the CA.
///
/// Every variant that concerns a file names it, and the message says what to
/// do next. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// `init` without `force` found CA files already present.
    #[error(
        "a CA already exists in {}: {}; keep using it, or run `leakscope ca init --force` \
         to replace it (devices that trust the old CA must then be given the new certificate)",
        .dir.display(), display_paths(.existing)
    )]
    AlreadyExists {
        /// The CA directory.
        dir: PathBuf,
        /// The CA files found there.
        existing: Vec<PathBuf>,
    },

    /// `load` found no CA file at all in the directory.
    #[error("no CA found in {}; run `leakscope ca init` to create one", .dir.display())]
    NotFound {
        /// The CA directory.
        dir: PathBuf,
    },

    /// Some CA files exist and others are missing.
    #[error(
        "the CA in {} is incomplete, missing: {}; \
         restore the missing file(s) from a backup, or {REINIT_HINT}",
        .dir.display(), display_paths(.missing)
    )]
    Incomplete {
        /// The CA directory.
        dir: PathBuf,
        /// The files that should exist but do not.
        missing: Vec<PathBuf>,
    },

    /// A CA file exists but its contents are unusable or inconsistent.
    #[error(
        "{} is not usable: {reason}; restore it from a backup, or {REINIT_HINT}",
        .path.display()
    )]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The CA certificate is past its `notAfter` date.
    #[error("the CA certificate {} expired on {not_after}; {REINIT_HINT}", .path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// The expiry date, RFC 3339.
        not_after: String,
    },

    /// On unix, the private key file is readable or writable by group or others.
    #[error(
        "the CA private key {} has mode {mode:04o}, which lets other users read or change it; \
         run `chmod 600 {}` and try again",
        .path.display(), .path.display()
    )]
    InsecureKeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A file-system operation failed.
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        /// What was being attempted, e.g. "read" or "create directory".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// rcgen failed to generate a key or certificate.
    #[error("could not generate the {what}: {source}")]
    Generate {
        /// Which object, e.g. "CA certificate".
        what: &'static str,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },

    /// rustls rejected the key or configuration for serving leaf certificates.
    #[error("could not prepare TLS for intercepted connections: {source}")]
    Tls {
        /// The underlying error.
        #[source]
        source: rustls::Error,
    },

    /// Bytes handed to [`subject_hash_old`] are not a DER X.509 certificate.
    #[error("not a DER X.509 certificate: {reason}")]
    InvalidCertificate {
        /// What the parser said.
        reason: String,
    },
}

/// Joins paths for an error message.
fn display_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

/// Where the CA's files live. All paths are `dir` joined with a fixed name,
/// except `android_system`, whose name derives from the certificate subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// The CA directory.
    pub dir: PathBuf,
    /// `leakscope-ca.pem`: the CA certificate, PEM.
    pub cert_pem: PathBuf,
    /// `leakscope-ca-key.pem`: the CA private key, PKCS#8 PEM, mode 0600.
    pub key_pem: PathBuf,
    /// `leakscope-ca.cer`: the CA certificate, DER.
    pub cert_der: PathBuf,
    /// `<subject_hash_old>.0`: the CA certificate, PEM, under the name
    /// Android's system trust store expects.
    pub android_system: PathBuf,
}

impl CaFiles {
    fn new(dir: &Path, android_hash: u32) -> CaFiles {
        CaFiles {
            dir: dir.to_path_buf(),
            cert_pem: dir.join(store::CERT_PEM),
            key_pem: dir.join(store::KEY_PEM),
            cert_der: dir.join(store::CERT_DER),
            android_system: dir.join(android::system_file_name(android_hash)),
        }
    }
}

/// A loaded certificate authority: its certificate and the key that signs
/// leaf certificates. The key never leaves this module except to sign.
pub struct CertAuthority {
    files: CaFiles,
    cert_pem: String,
    cert_der: Vec<u8>,
    android_hash: u32,
    not_after: OffsetDateTime,
    /// Shared with every [`LeafIssuer`] so issuing needs no copy of the key.
    issuer: Arc<Issuer<'static, KeyPair>>,
}

impl fmt::Debug for CertAuthority {
    // Written by hand so the signing key can never end up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAuthority")
            .field("files", &self.files)
            .field("fingerprint_sha256", &self.fingerprint_sha256())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertAuthority {
    /// Generates a new CA into `dir`, creating the directory if needed.
    ///
    /// Refuses with [`CaError::AlreadyExists`] if any CA file (including any
    /// `<8 hex>.0` file) is present, unless `force`. With `force` the files
    /// are replaced one by one (each replacement atomic) and stale `<8 hex>.0`
    /// files from the previous CA are removed.
    pub fn init(dir: &Path, force: bool) -> Result<CertAuthority, CaError> {
        let existing = store::existing_ca_files(dir)?;
        if !existing.is_empty() && !force {
            return Err(CaError::AlreadyExists {
                dir: dir.to_path_buf(),
                existing,
            });
        }
        store::create_dir(dir)?;

        let (cert_der, key) = authority::generate()?;
        let parsed = authority::parse_ca_der(&dir.join(store::CERT_PEM), &cert_der)?;
        let files = CaFiles::new(dir, parsed.android_hash);
        let cert_pem = authority::pem_encode(&cert_der);

        // The key goes first so a crash part-way leaves an incomplete set,
        // which `load` reports, rather than a certificate nobody can sign with.
        store::write_secret(&files.key_pem, key.serialize_pem().as_bytes())?;
        store::write_public(&files.cert_pem, cert_pem.as_bytes())?;
        store::write_public(&files.cert_der, &cert_der)?;
        store::write_public(&files.android_system, cert_pem.as_bytes())?;
        store::remove_stale_android_files(dir, &files.android_system)?;

        Self::assemble(files, cert_der, parsed, key)
    }

    /// Loads the CA in `dir`.
    ///
    /// Fails, naming the file, when any of the four files is missing
    /// ([`CaError::NotFound`] / [`CaError::Incomplete`]), unparsable or
    /// inconsistent with the others ([`CaError::Corrupt`]), when the
    /// certificate has expired, or (unix) when the key file's mode grants any
    /// access to group or others ([`CaError::InsecureKeyPermissions`]).
    /// Never generates anything.
    pub fn load(dir: &Path) -> Result<CertAuthority, CaError> {
        let missing = store::missing_ca_files(dir)?;
        if !missing.is_empty() {
            if store::existing_ca_files(dir)?.is_empty() {
                return Err(CaError::NotFound {
                    dir: dir.to_path_buf(),
                });
            }
            return Err(CaError::Incomplete {
                dir: dir.to_path_buf(),
                missing,
            });
        }

        let pem_path = dir.join(store::CERT_PEM);
        let cert_der = authority::decode_cert_pem(&pem_path, &store::read(&pem_path)?)?;
        let parsed = authority::parse_ca_der(&pem_path, &cert_der)?;
        let files = CaFiles::new(dir, parsed.android_hash);

        let der_copy = store::read(&files.cert_der)?;
        if der_copy != cert_der {
            return Err(CaError::Corrupt {
                path: files.cert_der.clone(),
                reason: format!("it is not the same certificate as {}", pem_path.display()),
            });
        }
        let android_copy = store::read(&files.android_system)?;
        let android_der = authority::decode_cert_pem(&files.android_system, &android_copy)?;
        if android_der != cert_der {
            return Err(CaError::Corrupt {
                path: files.android_system.clone(),
                reason: format!("it is not the same certificate as {}", pem_path.display()),
            });
        }

        let key_pem = store::read_secret(&files.key_pem)?;
        let key = authority::decode_key_pem(&files.key_pem, &key_pem)?;
        Self::assemble(files, cert_der, parsed, key)
    }

    /// Loads the CA in `dir`, or creates one if the directory holds no CA
    /// file at all (returning `true` in that case).
    ///
    /// A partial set of files is an error ([`CaError::Incomplete`]) naming
    /// what is missing: guessing which half to trust could orphan devices.
    pub fn load_or_init(dir: &Path) -> Result<(CertAuthority, bool), CaError> {
        if store::existing_ca_files(dir)?.is_empty() {
            Ok((Self::init(dir, false)?, true))
        } else {
            Ok((Self::load(dir)?, false))
        }
    }

    /// The CA certificate, PEM (LF line endings, one block).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// SHA-256 of the DER certificate as uppercase hex pairs joined by `:`,
    /// the form Android and iOS settings screens display.
    pub fn fingerprint_sha256(&self) -> String {
        let digest = Sha256::digest(&self.cert_der);
        let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        pairs.join(":")
    }

    /// OpenSSL's `subject_hash_old` of this CA as 8 lowercase hex digits:
    /// the Android system-store file name without the `.0`.
    pub fn android_hash(&self) -> String {
        format!("{:08x}", self.android_hash)
    }

    /// Paths of the CA's files.
    pub fn files(&self) -> &CaFiles {
        &self.files
    }

    /// Builds the issuer the proxy uses for intercepted TLS.
    ///
    /// It generates one fresh leaf key pair (never the CA key) shared by all
    /// hosts, and caches up to `cache_capacity` per-host server configs;
    /// `0` disables caching.
    pub fn leaf_issuer(&self, cache_capacity: usize) -> Result<LeafIssuer, CaError> {
        LeafIssuer::new(
            Arc::clone(&self.issuer),
            self.cert_der.clone(),
            self.not_after,
            cache_capacity,
        )
    }

    /// Final step shared by `init` and `load`, so a freshly generated CA goes
    /// through exactly the checks a loaded one does.
    fn assemble(
        files: CaFiles,
        cert_der: Vec<u8>,
        parsed: authority::ParsedCa,
        key: KeyPair,
    ) -> Result<CertAuthority, CaError> {
        authority::check_key_matches(&files.key_pem, &parsed, &key)?;
        authority::check_not_expired(&files.cert_pem, &parsed)?;
        let issuer = authority::issuer(&files.cert_pem, &cert_der, key)?;
        Ok(CertAuthority {
            cert_pem: authority::pem_encode(&cert_der),
            android_hash: parsed.android_hash,
            not_after: parsed.not_after,
            files,
            cert_der,
            issuer: Arc::new(issuer),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proxy shares these across tasks and threads, and `anyhow` needs
    /// errors that are `Send + Sync + 'static`.
    #[test]
    fn public_types_are_thread_safe() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<CaError>();
        assert_send_sync::<CertAuthority>();
        assert_send_sync::<LeafIssuer>();
    }

    #[test]
    fn fingerprint_and_hash_formats() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ca = CertAuthority::init(dir.path(), false)?;
        let fingerprint = ca.fingerprint_sha256();
        assert_eq!(fingerprint.split(':').count(), 32);
        assert!(
            fingerprint
                .split(':')
                .all(|p| p.len() == 2 && p == p.to_uppercase())
        );
        let hash = ca.android_hash();
        assert_eq!(hash.len(), 8);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(
            u32::from_str_radix(&hash, 16)?,
            subject_hash_old(ca.cert_der())?
        );
        Ok(())
    }
}
