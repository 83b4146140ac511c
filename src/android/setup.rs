//! `leakscope android setup`: the CA into the device's trust store, and the
//! device's traffic to the proxy.

use super::adb::clean;
use super::device::{Device, Root};
use super::script::{self, INSTALLED_MARKER, SCRIPT_PATH, SYSTEM_CACERTS};
use crate::ca::CertAuthority;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::time::Duration;

/// Where the user-store fallback leaves the certificate.
pub const USER_CERT_PATH: &str = "/sdcard/Download/leakscope-ca.cer";

/// The script visits every running app: allow for many of them.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// How the CA ended up on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaInstall {
    /// Written to `/system/etc/security/cacerts` after `adb remount`:
    /// persists across reboots.
    SystemFile,
    /// tmpfs over the trust store (and the Conscrypt APEX store on API 34+),
    /// in zygote's and every running app's namespace: gone at reboot.
    Tmpfs { apex: bool },
    /// No root: the certificate was copied to the device and the settings
    /// screen opened; the user finishes the install.
    UserStore,
}

/// What setup did, for the summary.
#[derive(Debug, Default)]
pub struct Report {
    /// One line per change made on the device.
    pub done: Vec<String>,
    /// Things the user must know or do.
    pub notes: Vec<String>,
}

/// Installs `ca` the best way the device allows and returns how; `report`
/// collects what was done.
pub fn install_ca(
    device: &Device,
    ca: &CertAuthority,
    report: &mut Report,
) -> anyhow::Result<CaInstall> {
    let hash = ca.android_hash();
    match (&device.root, device.sdk >= 34) {
        (Root::No(why), _) => {
            user_store(device, ca, report, why)?;
            Ok(CaInstall::UserStore)
        }
        (Root::Adbd, false) => match remount(device)? {
            Ok(()) => {
                system_file(device, ca, &hash)?;
                report.done.push(format!(
                    "installed the CA as {SYSTEM_CACERTS}/{hash}.0 (system store; stays after reboots)"
                ));
                report.notes.push(
                    "apps already running keep their old trust store: restart them \
                     (or reboot) before testing"
                        .to_string(),
                );
                Ok(CaInstall::SystemFile)
            }
            Err(why) => {
                report.notes.push(format!(
                    "`adb remount` failed ({why}), so the CA is mounted with a tmpfs instead, \
                     which a reboot undoes. For a permanent install: start the emulator with \
                     `-writable-system`, run `adb root`, `adb shell avbctl disable-verification` \
                     (API 28 and below: `adb disable-verity`), `adb reboot`, then setup again"
                ));
                tmpfs(device, ca, false, report)?;
                Ok(CaInstall::Tmpfs { apex: false })
            }
        },
        (_, apex) => {
            tmpfs(device, ca, apex, report)?;
            Ok(CaInstall::Tmpfs { apex })
        }
    }
}

/// `adb remount`: `Ok(Ok(()))` when /system is writable, `Ok(Err(why))`
/// when it is not (so setup can fall back), `Err` when adb itself failed.
/// A remount that first disables verity asks for a reboot: that is an
/// error, because nothing can be installed until the device restarts.
fn remount(device: &Device) -> anyhow::Result<Result<(), String>> {
    let out = device
        .adb
        .run_with(&["remount"], Duration::from_secs(120))?;
    let said = out.summary();
    let lower = said.to_ascii_lowercase();
    if lower.contains("remount succeeded") || (out.success() && !lower.contains("reboot")) {
        return Ok(Ok(()));
    }
    if lower.contains("reboot") && !lower.contains("failed") {
        bail!(
            "`adb remount` disabled verity and needs a reboot first (adb said: {said}); \
             run `adb -s {} reboot`, wait for the device, then run setup again",
            clean(&device.serial)
        );
    }
    Ok(Err(said))
}

/// Pushes `<hash>.0` into the remounted system store with the mode and
/// SELinux label of the stock certificates.
fn system_file(device: &Device, ca: &CertAuthority, hash: &str) -> anyhow::Result<()> {
    let remote = format!("{SYSTEM_CACERTS}/{hash}.0");
    device.adb.push(&ca.files().android_system, &remote)?;
    device.root_shell(&format!("chmod 644 {remote}"))?;
    device.root_shell(&format!("chcon u:object_r:system_file:s0 {remote}"))?;
    Ok(())
}

/// The tmpfs method (see [`script`]): pushes the CA and the script, runs it
/// as root, and checks its success line.
fn tmpfs(
    device: &Device,
    ca: &CertAuthority,
    apex: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let hash = ca.android_hash();
    let text = script::tmpfs_script(&hash, apex)
        .with_context(|| format!("the CA hash {hash:?} is not 8 hex digits"))?;
    device
        .adb
        .push(&ca.files().android_system, &script::staged_cert_path(&hash))?;
    push_text(device, &text, SCRIPT_PATH)?;
    let out = device.root_shell_timeout(&format!("sh {SCRIPT_PATH} install"), SCRIPT_TIMEOUT)?;
    if !out.contains(INSTALLED_MARKER) {
        bail!(
            "the trust-store script on the device failed: {}; the device is unchanged \
             apart from files in /data/local/tmp",
            clean(&out)
        );
    }
    let stores = if apex {
        format!("{SYSTEM_CACERTS} and {}", script::APEX_CACERTS)
    } else {
        SYSTEM_CACERTS.to_string()
    };
    let reach = match script::installed_counts(&out) {
        Some((zygotes, apps, missed)) => format!(
            "in zygote ({zygotes}) and {apps} running app(s){}",
            if missed > 0 {
                format!("; {missed} app(s) exited meanwhile or refused: restart those")
            } else {
                String::new()
            }
        ),
        None => "in zygote and running apps".to_string(),
    };
    report.done.push(format!(
        "mounted a tmpfs copy of the trust store with the CA ({hash}.0) over {stores}, {reach}; \
         a reboot removes it: run setup again after every boot"
    ));
    Ok(())
}

/// No root: copy the certificate to Downloads and open the screen where the
/// user installs it, with the steps to follow.
fn user_store(
    device: &Device,
    ca: &CertAuthority,
    report: &mut Report,
    why: &str,
) -> anyhow::Result<()> {
    device.adb.push(&ca.files().cert_der, USER_CERT_PATH)?;
    report
        .done
        .push(format!("copied the CA certificate to {USER_CERT_PATH}"));
    // Android 11 stopped installing CA certificates from the install intent
    // (it only shows a "install it from Settings" dialog), so it opens the
    // security settings there.
    let action = if device.sdk >= 30 {
        "android.settings.SECURITY_SETTINGS"
    } else {
        "android.credentials.INSTALL"
    };
    // Not opening the screen is no reason to stop: the steps are printed.
    let out = device.adb.shell_output(&format!("am start -a {action}"))?;
    if !out.success() || out.stdout.contains("Error") {
        report.notes.push(format!(
            "could not open the settings screen ({}); open Settings yourself",
            out.summary()
        ));
    } else {
        report
            .done
            .push(format!("opened the certificate settings ({action})"));
    }
    report.notes.push(format!(
        "The CA is NOT trusted yet: without root ({why}) only the user store is possible. \
         On the device: Settings > Security (& privacy) > More security settings > \
         Encryption & credentials > Install a certificate > CA certificate, pick \
         Download/leakscope-ca.cer, and check that the SHA-256 fingerprint is {}. \
         Menu names vary by vendor: search Settings for \"CA certificate\". \
         Apps targeting Android 7+ ignore user CAs unless their network security config \
         opts in; for those use an emulator with a \"Google APIs\" image (adb root works) \
         or a rooted device.",
        ca.fingerprint_sha256()
    ));
    Ok(())
}

/// Points the device at the proxy on the host's `port`.
///
/// Emulators reach the host's loopback as 10.0.2.2. Phones get `adb reverse
/// tcp:PORT tcp:PORT` and the proxy `127.0.0.1:PORT`: the device's loopback
/// port is forwarded over the USB connection, so no LAN address is needed
/// (and none can be wrong: the host may have several, or a firewall, or be
/// on another Wi-Fi than the phone).
pub fn set_proxy(device: &Device, port: u16, report: &mut Report) -> anyhow::Result<String> {
    let proxy = if device.emulator {
        format!("10.0.2.2:{port}")
    } else {
        let spec = format!("tcp:{port}");
        device.adb.run(&["reverse", &spec, &spec])?;
        report.done.push(format!(
            "forwarded the phone's 127.0.0.1:{port} to this computer's port {port} (adb reverse; \
             lasts while the phone stays connected)"
        ));
        format!("127.0.0.1:{port}")
    };
    let out = device
        .adb
        .shell(&format!("settings put global http_proxy {proxy}"))?;
    if !out.trim().is_empty() {
        bail!(
            "setting the proxy failed: `settings put global http_proxy {proxy}` printed {}",
            clean(&out)
        );
    }
    report.done.push(format!(
        "set the global HTTP proxy to {proxy}{}",
        if device.emulator {
            " (10.0.2.2 is the emulator's alias for this computer's loopback)"
        } else {
            ""
        }
    ));
    Ok(proxy)
}

/// Writes `text` to a host temporary file and pushes it to `remote`.
pub(super) fn push_text(device: &Device, text: &str, remote: &str) -> anyhow::Result<()> {
    let local = temp_path("leakscope-ca.sh");
    std::fs::write(&local, text)
        .with_context(|| format!("writing the device script to {}", local.display()))?;
    let pushed = device.adb.push(&local, remote);
    // Best effort: a leftover temp file is harmless, and the push result
    // is what matters.
    let _ = std::fs::remove_file(&local);
    pushed?;
    Ok(())
}

/// A fresh path in the temp directory, unique per process and call.
fn temp_path(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("{}-{n}-{name}", std::process::id()))
}
