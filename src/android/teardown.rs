//! `leakscope android teardown`: undoes `setup` — the proxy setting, the
//! port forward and the CA.

use super::adb::clean;
use super::device::{Device, Root};
use super::script::{self, APEX_CACERTS, REMOVED_MARKER, SCRIPT_PATH, SYSTEM_CACERTS};
use super::setup::{Report, USER_CERT_PATH};
use crate::ca::CertAuthority;
use anyhow::{Context, bail};
use std::time::Duration;

/// Undoes setup on `device`. `ca` is the CA setup installed, if it can be
/// loaded (only its file name in the system store depends on it); `port`
/// the one setup forwarded.
pub fn teardown(device: &Device, ca: Option<&CertAuthority>, port: u16) -> anyhow::Result<Report> {
    let mut report = Report::default();
    // `:0` clears the proxy at once; `settings delete` only after a reboot.
    let out = device.adb.shell("settings put global http_proxy :0")?;
    if !out.trim().is_empty() {
        bail!(
            "clearing the proxy failed: `settings put global http_proxy :0` printed {}",
            clean(&out)
        );
    }
    report
        .done
        .push("cleared the global HTTP proxy (http_proxy :0)".to_string());

    if !device.emulator {
        let spec = format!("tcp:{port}");
        let out = device
            .adb
            .run_with(&["reverse", "--remove", &spec], super::adb::DEFAULT_TIMEOUT)?;
        if out.success() {
            report
                .done
                .push(format!("removed the port forward {spec} (adb reverse)"));
        } else {
            report.notes.push(format!(
                "no port forward {spec} to remove (adb said: {})",
                out.summary()
            ));
        }
    }

    remove_ca(device, ca, &mut report)?;
    Ok(report)
}

/// Removes the CA the way setup installed it, as far as the device's root
/// allows; says what the user must do otherwise.
fn remove_ca(
    device: &Device,
    ca: Option<&CertAuthority>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mounts = device.adb.shell("cat /proc/mounts")?;
    let tmpfs = tmpfs_stores(&mounts);
    if !tmpfs.is_empty() {
        if !device.has_root() {
            report.notes.push(format!(
                "a tmpfs trust store is still mounted over {} and there is no root to unmount \
                 it: reboot the device (`adb -s {} reboot`) to remove it",
                tmpfs.join(" and "),
                clean(&device.serial)
            ));
            return Ok(());
        }
        // The hash only names the file `install` stages; `remove` deletes
        // every staged CA, so any valid hash does when the CA is gone.
        let hash = ca.map_or_else(|| "00000000".to_string(), |ca| ca.android_hash());
        let text = script::tmpfs_script(&hash, device.sdk >= 34)
            .with_context(|| format!("the CA hash {hash:?} is not 8 hex digits"))?;
        super::setup::push_text(device, &text, SCRIPT_PATH)?;
        let out = device.root_shell_timeout(
            &format!("sh {SCRIPT_PATH} remove"),
            Duration::from_secs(300),
        )?;
        if !out.contains(REMOVED_MARKER) {
            bail!(
                "the trust-store script on the device failed: {}; reboot the device to remove \
                 the tmpfs",
                clean(&out)
            );
        }
        report.done.push(format!(
            "unmounted the tmpfs trust store from {} in zygote, running apps and the root \
             namespace",
            tmpfs.join(" and ")
        ));
        return Ok(());
    }

    let Some(ca) = ca else {
        report.notes.push(
            "no CA in the certs directory, so no CA file is known to remove; remove \
             \"leakscope interception CA\" under Settings > Trusted credentials if present"
                .to_string(),
        );
        return Ok(());
    };
    match &device.root {
        Root::Adbd => {
            let remote = format!("{SYSTEM_CACERTS}/{}.0", ca.android_hash());
            let listed = device.adb.shell_output(&format!("ls {remote}"))?;
            if !(listed.success() && listed.stdout.trim() == remote) {
                report
                    .notes
                    .push(format!("{remote} is not on the device: nothing to remove"));
                return Ok(());
            }
            let out = device
                .adb
                .run_with(&["remount"], Duration::from_secs(120))?;
            let said = out.summary();
            if !(said.to_ascii_lowercase().contains("remount succeeded") || out.success()) {
                bail!(
                    "`adb remount` failed ({said}), so {remote} cannot be removed; \
                     start the emulator with -writable-system and run teardown again"
                );
            }
            device.adb.shell(&format!("rm -f {remote}"))?;
            report.done.push(format!(
                "removed {remote}; reboot (or restart apps) so running apps forget it"
            ));
        }
        Root::Su | Root::No(_) => {
            device.adb.shell(&format!("rm -f {USER_CERT_PATH}"))?;
            report
                .done
                .push(format!("deleted {USER_CERT_PATH} (if it was there)"));
            report.notes.push(format!(
                "a CA installed in the user store must be removed by hand: Settings > Security \
                 > Encryption & credentials > Trusted credentials > User > \"leakscope \
                 interception CA\" > Remove (fingerprint {})",
                ca.fingerprint_sha256()
            ));
        }
    }
    Ok(())
}

/// The trust stores a tmpfs is mounted over, from `/proc/mounts`.
pub fn tmpfs_stores(mounts: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for store in [SYSTEM_CACERTS, APEX_CACERTS] {
        let mounted = mounts.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&store) && fields.get(2) == Some(&"tmpfs")
        });
        if mounted {
            found.push(store);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tmpfs_stores() {
        let mounts = "/dev/block/dm-0 / ext4 ro,seclabel 0 0\n\
                      tmpfs /system/etc/security/cacerts tmpfs rw,seclabel,relatime 0 0\n\
                      tmpfs /apex/com.android.conscrypt/cacerts tmpfs rw,seclabel 0 0\n";
        assert_eq!(tmpfs_stores(mounts), vec![SYSTEM_CACERTS, APEX_CACERTS]);
        assert!(tmpfs_stores("/dev/block/dm-0 / ext4 ro 0 0").is_empty());
        assert!(tmpfs_stores("").is_empty());
    }
}
