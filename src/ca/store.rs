//! The CA's files on disk: atomic writes, a private key that is never
//! world-readable, and discovery of which files exist.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{CaError, android, authority};

/// CA certificate, PEM.
pub(super) const CERT_PEM: &str = "leakscope-ca.pem";
/// CA private key, PKCS#8 PEM.
pub(super) const KEY_PEM: &str = "leakscope-ca-key.pem";
/// CA certificate, DER.
pub(super) const CERT_DER: &str = "leakscope-ca.cer";

/// Stand-in shown for the Android file when its real name cannot be known
/// because the certificate it derives from is missing or unreadable.
const ANDROID_PLACEHOLDER: &str = "<subject_hash_old>.0";

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CaError {
    let path = path.to_path_buf();
    move |source| CaError::Io {
        action,
        path,
        source,
    }
}

/// Whether `path` exists (without following a final symlink, so a dangling
/// link still counts as "something is there").
fn exists(path: &Path) -> Result<bool, CaError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("inspect", path)(e)),
    }
}

/// Paths of `<8 hex>.0` files in `dir`, sorted; none if `dir` does not exist.
fn android_files(dir: &Path) -> Result<Vec<PathBuf>, CaError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("list", dir))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(android::is_system_file_name)
        {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Every CA file present in `dir`: the three fixed names plus any
/// `<8 hex>.0` file. Empty if `dir` does not exist.
pub(super) fn existing_ca_files(dir: &Path) -> Result<Vec<PathBuf>, CaError> {
    let mut found = Vec::new();
    for name in [CERT_PEM, KEY_PEM, CERT_DER] {
        let path = dir.join(name);
        if exists(&path)? {
            found.push(path);
        }
    }
    found.extend(android_files(dir)?);
    Ok(found)
}

/// The CA files `load` needs that are absent from `dir`.
///
/// The Android file's expected name comes from the certificate; when the
/// certificate cannot be read, any `<8 hex>.0` file counts as present (the
/// certificate's own problem is reported when loading it) and none is
/// reported under a placeholder name.
pub(super) fn missing_ca_files(dir: &Path) -> Result<Vec<PathBuf>, CaError> {
    let mut missing = Vec::new();
    for name in [CERT_PEM, KEY_PEM, CERT_DER] {
        let path = dir.join(name);
        if !exists(&path)? {
            missing.push(path);
        }
    }

    let cert_pem = dir.join(CERT_PEM);
    let expected = read(&cert_pem)
        .ok()
        .and_then(|bytes| authority::decode_cert_pem(&cert_pem, &bytes).ok())
        .and_then(|der| super::subject_hash_old(&der).ok())
        .map(|hash| dir.join(android::system_file_name(hash)));
    match expected {
        Some(path) => {
            if !exists(&path)? {
                missing.push(path);
            }
        }
        None => {
            if android_files(dir)?.is_empty() {
                missing.push(dir.join(ANDROID_PLACEHOLDER));
            }
        }
    }
    Ok(missing)
}

/// Creates `dir` and its parents if needed.
pub(super) fn create_dir(dir: &Path) -> Result<(), CaError> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))
}

/// Reads a whole file; a missing file is reported as [`CaError::Incomplete`]
/// so the message tells the user how to recover.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, CaError> {
    fs::read(path).map_err(|e| not_found_or_io(path, e))
}

fn not_found_or_io(path: &Path, e: io::Error) -> CaError {
    if e.kind() == io::ErrorKind::NotFound {
        CaError::Incomplete {
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            missing: vec![path.to_path_buf()],
        }
    } else {
        io_error("read", path)(e)
    }
}

/// Reads the private key file, first refusing (on unix) one whose mode
/// gives group or others any access.
///
/// The mode is taken from the opened file rather than the path, so the file
/// checked is the file read.
pub(super) fn read_secret(path: &Path) -> Result<Vec<u8>, CaError> {
    let mut file = File::open(path).map_err(|e| not_found_or_io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(io_error("inspect", path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CaError::InsecureKeyPermissions {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(io_error("read", path))?;
    Ok(bytes)
}

/// Atomically writes a file anyone may read (certificates).
pub(super) fn write_public(path: &Path, contents: &[u8]) -> Result<(), CaError> {
    write_atomic(path, contents, 0o644)
}

/// Atomically writes a file only the owner may read or write (the key).
pub(super) fn write_secret(path: &Path, contents: &[u8]) -> Result<(), CaError> {
    write_atomic(path, contents, 0o600)
}

/// Writes `contents` to a fresh temporary file beside `path`, flushes it
/// to disk, then renames it over `path`, so readers see the old file or the
/// complete new one, never a torn write.
///
/// On unix the temporary file is created with `mode` (minus the umask) in
/// the same `open` call: a secret is never, even briefly, readable by
/// others, which a chmod after writing could not guarantee.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: u64 = rand::random();
    let tmp = dir.join(format!(".{name}.{nonce:016x}.tmp"));

    let mut options = OpenOptions::new();
    // create_new: never follow or reuse something already at the temp path.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;

    let result = options
        .open(&tmp)
        .map_err(io_error("create", &tmp))
        .and_then(|mut file| {
            file.write_all(contents).map_err(io_error("write", &tmp))?;
            file.sync_all().map_err(io_error("flush", &tmp))
        })
        .and_then(|()| fs::rename(&tmp, path).map_err(io_error("replace", path)));
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir);
    Ok(())
}

/// Makes the rename durable. Best effort: not every platform or file
/// system can sync a directory, and the data itself is already flushed.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Deletes `<8 hex>.0` files in `dir` other than `keep`: after a forced
/// re-init they hold the old CA and would mislead anyone installing from
/// the directory.
pub(super) fn remove_stale_android_files(dir: &Path, keep: &Path) -> Result<(), CaError> {
    for path in android_files(dir)? {
        if path != keep {
            fs::remove_file(&path).map_err(io_error("remove stale file", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn secret_is_created_owner_only() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("secret");
        write_secret(&path, b"x")?;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        // Overwriting also yields a fresh 0600 file, whatever was there.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        write_secret(&path, b"y")?;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path)?, b"y");
        Ok(())
    }

    #[test]
    fn atomic_write_leaves_no_temp_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        write_public(&dir.path().join("a.pem"), b"one")?;
        write_public(&dir.path().join("a.pem"), b"two")?;
        let names: Vec<_> = fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, vec![std::ffi::OsString::from("a.pem")]);
        Ok(())
    }

    #[test]
    fn missing_directory_has_no_files() -> Result<(), CaError> {
        let dir = Path::new("/nonexistent/leakscope-test-dir");
        assert!(existing_ca_files(dir)?.is_empty());
        Ok(())
    }

    #[test]
    fn stale_android_files_are_removed() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let keep = dir.path().join("0000000a.0");
        let stale = dir.path().join("0000000b.0");
        let other = dir.path().join("notes.txt");
        for p in [&keep, &stale, &other] {
            fs::write(p, b"x")?;
        }
        remove_stale_android_files(dir.path(), &keep)?;
        assert!(keep.exists() && other.exists() && !stale.exists());
        Ok(())
    }
}
