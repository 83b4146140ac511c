//! What the chosen device is: API level, emulator or phone, and how (if at
//! all) leakscope can act as root on it.

use super::adb::{Adb, AdbError, Output, clean};
use anyhow::{Context, bail};
use std::fmt;
use std::time::Duration;

/// How root commands run on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// adbd itself runs as root (`adb root` on emulators with a "Google
    /// APIs" image and on userdebug builds): `adb shell` is root, and
    /// `adb remount` works.
    Adbd,
    /// A `su` binary (Magisk and similar): commands run as `su -c '...'`;
    /// adbd stays unprivileged, so `adb remount` is not available.
    Su,
    /// No root; the reason, for messages.
    No(String),
}

/// The device every Android command works on.
#[derive(Debug, Clone)]
pub struct Device {
    /// Bound to the device (`-s SERIAL`).
    pub adb: Adb,
    pub serial: String,
    /// `ro.build.version.sdk`.
    pub sdk: u32,
    pub emulator: bool,
    pub root: Root,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.emulator { "emulator" } else { "phone" };
        let root = match &self.root {
            Root::Adbd => "root: adbd runs as root".to_string(),
            Root::Su => "root: su".to_string(),
            Root::No(why) => format!("no root: {why}"),
        };
        write!(f, "{} ({kind}, API {}, {root})", self.serial, self.sdk)
    }
}

/// Chooses the device (see [`Adb::select`]) and probes it:
/// `getprop sys.boot_completed`, `getprop ro.build.version.sdk`,
/// `getprop ro.kernel.qemu`, `getprop ro.boot.qemu`, then root (see
/// [`probe_root`]).
pub fn connect(adb: Adb) -> anyhow::Result<Device> {
    let adb = adb.select()?;
    let serial = adb.serial.clone().unwrap_or_default();
    let booted = adb.shell("getprop sys.boot_completed")?;
    if booted.trim() != "1" {
        bail!(
            "device {serial} has not finished booting (sys.boot_completed is not 1); \
             wait for the home screen and try again"
        );
    }
    let sdk_text = adb.shell("getprop ro.build.version.sdk")?;
    let sdk = parse_sdk(&sdk_text).with_context(|| {
        format!(
            "reading the API level of {serial}: `getprop ro.build.version.sdk` printed {:?}",
            clean(&sdk_text)
        )
    })?;
    let kernel_qemu = adb.shell("getprop ro.kernel.qemu")?;
    let boot_qemu = adb.shell("getprop ro.boot.qemu")?;
    // Android 12+ emulators set only ro.boot.qemu; older ones ro.kernel.qemu;
    // an emulator reached over `adb connect` has no `emulator-` serial.
    let emulator =
        serial.starts_with("emulator-") || kernel_qemu.trim() == "1" || boot_qemu.trim() == "1";
    let root = probe_root(&adb)?;
    Ok(Device {
        adb,
        serial,
        sdk,
        emulator,
        root,
    })
}

/// `ro.build.version.sdk` as a number; `None` for anything else.
pub fn parse_sdk(text: &str) -> Option<u32> {
    text.trim()
        .parse()
        .ok()
        .filter(|sdk| (1..1000).contains(sdk))
}

/// Finds out whether commands can run as root, trying in turn:
/// `id -u` (adbd already root); if `ro.debuggable` is 1, `adb root`, `adb
/// wait-for-device` and `id -u` again; `which su`, then `su -c 'id -u'`.
/// `adb root` restarts adbd, which is harmless on a debuggable build; it is
/// not attempted on production builds, where it only fails.
pub fn probe_root(adb: &Adb) -> anyhow::Result<Root> {
    if adb.shell("id -u")?.trim() == "0" {
        return Ok(Root::Adbd);
    }
    let debuggable = adb.shell("getprop ro.debuggable")?.trim() == "1";
    if debuggable {
        let out = adb.run_with(&["root"], super::adb::DEFAULT_TIMEOUT)?;
        let said = out.summary().to_ascii_lowercase();
        if out.success() && !said.contains("cannot run as root") {
            // adbd restarts: the device drops off for a moment.
            adb.run_timeout(&["wait-for-device"], Duration::from_secs(60))?;
            if adb.shell("id -u")?.trim() == "0" {
                return Ok(Root::Adbd);
            }
        }
    }
    let su = adb.shell_output("which su")?;
    let su_path = su.stdout.trim();
    // Before Android 7 adb merges stderr into stdout and always exits 0, so
    // "/system/bin/sh: which: not found" must not pass for a path.
    let is_path = su_path.starts_with('/') && !su_path.contains([' ', ':']);
    if su.success() && is_path {
        let id = adb.shell_output("su -c 'id -u'")?;
        if id.stdout.trim() == "0" {
            return Ok(Root::Su);
        }
        return Ok(Root::No(format!(
            "{} exists but `su -c 'id -u'` did not give root ({}); grant shell root in the su app",
            clean(su_path),
            id.summary()
        )));
    }
    Ok(Root::No(if debuggable {
        "`adb root` did not give a root shell".to_string()
    } else {
        "production build (ro.debuggable is not 1: `adb root` is refused) and no su binary"
            .to_string()
    }))
}

impl Device {
    /// Runs `command` as root: plainly when adbd is root, through `su -c`
    /// otherwise. `command` must not contain `'` (it is quoted for su);
    /// every caller passes fixed text or validated names.
    pub fn root_shell(&self, command: &str) -> Result<String, AdbError> {
        match &self.root {
            Root::Adbd => self.adb.shell(command),
            Root::Su if command.contains('\'') => Err(AdbError::Failed {
                command: command.to_string(),
                status: None,
                output: "refused: the command contains a quote".to_string(),
            }),
            Root::Su => self.adb.shell(&format!("su -c '{command}'")),
            Root::No(why) => Err(AdbError::Failed {
                command: command.to_string(),
                status: None,
                output: format!("needs root ({why})"),
            }),
        }
    }

    /// Runs `command` as root when the device has root, as the shell user
    /// otherwise, returning whatever it printed whatever its exit status:
    /// for reads whose failure is an answer ("not readable"), not an error.
    pub fn shell_maybe_root(&self, command: &str) -> Result<Output, AdbError> {
        match &self.root {
            Root::Su if !command.contains('\'') => {
                self.adb.shell_output(&format!("su -c '{command}'"))
            }
            _ => self.adb.shell_output(command),
        }
    }

    /// [`Device::root_shell`] with its own time bound.
    pub fn root_shell_timeout(&self, command: &str, timeout: Duration) -> Result<String, AdbError> {
        match &self.root {
            Root::Adbd => self.adb.shell_timeout(command, timeout),
            Root::Su if !command.contains('\'') => self
                .adb
                .shell_timeout(&format!("su -c '{command}'"), timeout),
            _ => self.root_shell(command),
        }
    }

    pub fn has_root(&self) -> bool {
        !matches!(self.root, Root::No(_))
    }

    /// `--serial SERIAL`, for the commands printed to the user.
    pub fn serial_flag(&self) -> String {
        format!("--serial {}", clean(&self.serial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_levels() {
        assert_eq!(parse_sdk("34\n"), Some(34));
        assert_eq!(parse_sdk(" 29 "), Some(29));
        assert_eq!(parse_sdk(""), None);
        assert_eq!(parse_sdk("UpsideDownCake"), None);
        assert_eq!(parse_sdk("0"), None);
        assert_eq!(parse_sdk("99999999999999999999"), None);
    }
}

#[cfg(test)]
mod fake_tests {
    use super::*;
    use crate::android::fake;

    #[test]
    fn probes_a_debuggable_emulator() -> anyhow::Result<()> {
        let (dir, adb) = fake::adb(&[("FAKE_ADB_API", "34"), ("FAKE_ADB_ROOT", "adbd")]);
        let device = connect(adb)?;
        assert_eq!(device.serial, "emulator-5554");
        assert_eq!(device.sdk, 34);
        assert!(device.emulator);
        assert_eq!(device.root, Root::Adbd);
        let log = fake::log(&dir);
        assert!(
            log.contains(&"-s emulator-5554 root".to_string()),
            "{log:?}"
        );
        Ok(())
    }

    #[test]
    fn probes_a_phone_with_su() -> anyhow::Result<()> {
        let (_dir, adb) = fake::adb(&[
            ("FAKE_ADB_API", "33"),
            ("FAKE_ADB_KIND", "phone"),
            ("FAKE_ADB_ROOT", "su"),
        ]);
        let device = connect(adb)?;
        assert!(!device.emulator);
        assert_eq!(device.root, Root::Su);
        assert_eq!(device.root_shell("id -u")?, "0");
        assert!(device.root_shell("echo 'x'").is_err());
        Ok(())
    }

    #[test]
    fn selection_errors_are_typed() {
        let (_dir, adb) = fake::adb(&[("FAKE_ADB_DEVICES", "several")]);
        assert!(matches!(adb.select(), Err(AdbError::Several { devices }) if devices.len() == 2));
        let (_dir, adb) = fake::adb(&[("FAKE_ADB_DEVICES", "none")]);
        assert!(matches!(adb.select(), Err(AdbError::NoDevice)));
        let (_dir, adb) = fake::adb(&[("FAKE_ADB_DEVICES", "unauthorized")]);
        assert!(matches!(adb.select(), Err(AdbError::Unauthorized { .. })));
        let (_dir, adb) = fake::adb(&[("FAKE_ADB_DEVICES", "offline")]);
        assert!(matches!(adb.select(), Err(AdbError::Offline { .. })));
    }
}
