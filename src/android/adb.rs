//! Running the `adb` client: choosing the device, bounding every call in
//! time and size, and turning adb's own error texts into messages that say
//! what to do.
//!
//! Everything adb prints is untrusted text (it comes from the device, or
//! from whatever `adb` is on PATH): it is decoded lossily, read up to a cap,
//! and cleaned of control characters before it appears in a message.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Default bound on one adb call. Generous: `adb remount` and the first
/// call after `adb root` can take many seconds on a slow emulator.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes of one output stream kept; the rest is read and dropped so the
/// child never blocks on a full pipe.
const OUTPUT_CAP: u64 = 8 << 20;

/// Longest piece of device output quoted in an error message.
const QUOTE_LIMIT: usize = 300;

/// How to get adb, for the message shown when it is missing.
pub const INSTALL_HINT: &str = "install Android SDK Platform-Tools \
    (https://developer.android.com/tools/releases/platform-tools, or `sdkmanager \"platform-tools\"`, \
    `sudo apt install adb`, `brew install --cask android-platform-tools`) and put the directory \
    holding `adb` on PATH";

/// What went wrong talking to adb or choosing the device. Every message says
/// what to do next.
#[derive(Debug, thiserror::Error)]
pub enum AdbError {
    #[error("`adb` was not found ({program}): {INSTALL_HINT}")]
    NotInstalled { program: String },

    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "no Android device found (`adb devices` lists none): start an emulator \
         (`emulator -avd NAME`) or connect a phone with USB debugging enabled \
         (Settings > Developer options > USB debugging)"
    )]
    NoDevice,

    #[error(
        "device {serial} is unauthorized: unlock it and accept the \"Allow USB debugging?\" \
         prompt showing this computer's RSA key fingerprint (tick \"Always allow\"), then run \
         the command again; no prompt? unplug and replug it, or revoke USB debugging \
         authorizations in Developer options and reconnect"
    )]
    Unauthorized { serial: String },

    #[error(
        "{}: choose one with --serial SERIAL (or set ANDROID_SERIAL)",
        if .devices.is_empty() {
            "several devices are connected".to_string()
        } else {
            format!("{} devices are connected ({})", .devices.len(), list(.devices))
        }
    )]
    Several { devices: Vec<DeviceEntry> },

    #[error(
        "device {serial} is not connected (adb devices lists: {}); check --serial / ANDROID_SERIAL",
        if .devices.is_empty() { "none".to_string() } else { list(.devices) }
    )]
    NotListed {
        serial: String,
        devices: Vec<DeviceEntry>,
    },

    #[error(
        "device {serial} is offline: wait for the emulator to finish booting, or reconnect the \
         cable; `adb kill-server` resets a stuck connection"
    )]
    Offline { serial: String },

    #[error(
        "no permission to use device {serial} (adb says: {detail}); on Linux add a udev rule for \
         the phone's vendor (or install the `android-sdk-platform-tools-common` package) and \
         reconnect it"
    )]
    NoPermissions { serial: String, detail: String },

    #[error(
        "device {serial} is in state \"{state}\", not ready for commands; boot it normally \
         and try again"
    )]
    NotReady { serial: String, state: String },

    #[error("`{command}` failed{}: {output}", .status.map(|s| format!(" (exit status {s})")).unwrap_or_default())]
    Failed {
        command: String,
        status: Option<i32>,
        output: String,
    },

    #[error(
        "`{command}` did not finish within {} s; is the device responsive? \
         (`adb kill-server` resets a stuck connection)",
        .timeout.as_secs()
    )]
    Timeout { command: String, timeout: Duration },
}

/// `serial (state)` for each device, comma-separated.
fn list(devices: &[DeviceEntry]) -> String {
    let shown: Vec<String> = devices
        .iter()
        .map(|d| format!("{} ({})", d.serial, d.state))
        .collect();
    shown.join(", ")
}

/// One line of `adb devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    pub serial: String,
    /// `device` when ready; also `unauthorized`, `offline`, `no permissions ...`,
    /// `recovery`, `sideload`, `bootloader`, `authorizing`, `connecting`.
    pub state: String,
}

/// What one adb call printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit status; `None` when killed by a signal.
    pub status: Option<i32>,
    /// Stdout, decoded lossily, CRLF (old devices' pty output) turned into LF.
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Stdout and stderr together, cleaned and shortened for a message.
    pub fn summary(&self) -> String {
        let both = format!("{} {}", self.stdout.trim(), self.stderr.trim());
        let cleaned = clean(both.trim());
        if cleaned.is_empty() {
            "no output".to_string()
        } else {
            cleaned
        }
    }
}

/// An adb client bound to one device.
///
/// `program` is the adb executable (tests point it at a fake); `serial`,
/// once [`Adb::select`] has run, is always set, so every later command
/// carries `-s SERIAL` and cannot reach another device that connects
/// meanwhile.
#[derive(Debug, Clone)]
pub struct Adb {
    pub program: PathBuf,
    pub serial: Option<String>,
}

impl Adb {
    pub fn new(program: impl Into<PathBuf>, serial: Option<String>) -> Adb {
        Adb {
            program: program.into(),
            serial,
        }
    }

    /// The `adb` found on PATH. Missing adb is [`AdbError::NotInstalled`],
    /// with the install hint, rather than a bare "No such file".
    pub fn on_path(serial: Option<String>) -> Result<Adb, AdbError> {
        let name = if cfg!(windows) { "adb.exe" } else { "adb" };
        let found = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| is_executable(candidate))
        });
        match found {
            Some(program) => Ok(Adb::new(program, serial)),
            None => Err(AdbError::NotInstalled {
                program: "not on PATH".to_string(),
            }),
        }
    }

    /// `adb devices`, parsed.
    pub fn devices(&self) -> Result<Vec<DeviceEntry>, AdbError> {
        let unbound = Adb::new(self.program.clone(), None);
        let out = unbound.run_with(&["devices"], DEFAULT_TIMEOUT)?;
        if !out.success() {
            return Err(unbound.failure(&["devices"], &out));
        }
        Ok(parse_devices(&out.stdout))
    }

    /// Resolves which device to use: `serial` if given (else `ANDROID_SERIAL`,
    /// which adb itself would honour), or the only one connected. Fails
    /// clearly for none, several, unauthorized, offline and similar.
    pub fn select(mut self) -> Result<Adb, AdbError> {
        let devices = self.devices()?;
        let wanted = self.serial.clone().or_else(|| {
            std::env::var("ANDROID_SERIAL")
                .ok()
                .filter(|s| !s.trim().is_empty())
        });
        let chosen = match wanted {
            Some(serial) => match devices.iter().find(|d| d.serial == serial) {
                Some(entry) => entry.clone(),
                None => return Err(AdbError::NotListed { serial, devices }),
            },
            None => match devices.as_slice() {
                [] => return Err(AdbError::NoDevice),
                [only] => only.clone(),
                _ => return Err(AdbError::Several { devices }),
            },
        };
        check_state(&chosen)?;
        self.serial = Some(chosen.serial);
        Ok(self)
    }

    /// Runs `adb [-s SERIAL] ARGS...`; a non-zero exit is an error.
    pub fn run(&self, args: &[&str]) -> Result<Output, AdbError> {
        self.run_timeout(args, DEFAULT_TIMEOUT)
    }

    /// [`Adb::run`] with its own time bound.
    pub fn run_timeout(&self, args: &[&str], timeout: Duration) -> Result<Output, AdbError> {
        let out = self.run_with(args, timeout)?;
        if out.success() {
            Ok(out)
        } else {
            Err(self.failure(args, &out))
        }
    }

    /// `adb shell COMMAND`: one string, run by the device's `sh`. Returns
    /// stdout with trailing whitespace removed. Devices before Android 7
    /// always exit 0 here, so callers also check what was printed.
    pub fn shell(&self, command: &str) -> Result<String, AdbError> {
        self.shell_timeout(command, DEFAULT_TIMEOUT)
    }

    /// [`Adb::shell`] with its own time bound.
    pub fn shell_timeout(&self, command: &str, timeout: Duration) -> Result<String, AdbError> {
        let out = self.run_timeout(&["shell", command], timeout)?;
        Ok(out.stdout.trim_end().to_string())
    }

    /// `adb shell COMMAND` whose exit status and stderr the caller judges.
    pub fn shell_output(&self, command: &str) -> Result<Output, AdbError> {
        self.run_with(&["shell", command], DEFAULT_TIMEOUT)
    }

    /// `adb push LOCAL REMOTE`.
    pub fn push(&self, local: &Path, remote: &str) -> Result<Output, AdbError> {
        let local = local.to_string_lossy();
        self.run(&["push", &local, remote])
    }

    /// The command line as shown in messages (`adb -s SERIAL ARGS...`).
    pub fn display(&self, args: &[&str]) -> String {
        let mut shown = vec!["adb".to_string()];
        if let Some(serial) = &self.serial {
            shown.push("-s".to_string());
            shown.push(clean(serial));
        }
        shown.extend(args.iter().map(|a| clean(a)));
        shown.join(" ")
    }

    /// Runs adb, returning whatever it printed, whatever its exit status.
    pub fn run_with(&self, args: &[&str], timeout: Duration) -> Result<Output, AdbError> {
        let shown = self.display(args);
        tracing::info!("running {shown}");
        let mut command = Command::new(&self.program);
        if let Some(serial) = &self.serial {
            command.arg("-s").arg(serial);
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program = self.program.display().to_string();
        let mut child = command.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                AdbError::NotInstalled {
                    program: program.clone(),
                }
            } else {
                AdbError::Spawn {
                    program: program.clone(),
                    source,
                }
            }
        })?;
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);

        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    // Best effort: the process may have exited meanwhile.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(AdbError::Timeout {
                        command: shown,
                        timeout,
                    });
                }
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(source) => return Err(AdbError::Spawn { program, source }),
            }
        };
        // A grandchild (the adb server it may start) can hold the pipes
        // open, so the readers get a short grace rather than a join.
        let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
            rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(2)).ok())
                .map(|bytes| normalise(&String::from_utf8_lossy(&bytes)))
                .unwrap_or_default()
        };
        let out = Output {
            status: status.code(),
            stdout: collect(stdout),
            stderr: collect(stderr),
        };
        tracing::debug!("{shown}: {}", out.summary());
        Ok(out)
    }

    /// The error for a failed call, recognising adb's own device errors so
    /// that, say, a device unplugged mid-setup still gets a clear message.
    pub fn failure(&self, args: &[&str], out: &Output) -> AdbError {
        let text = format!("{}\n{}", out.stderr, out.stdout).to_ascii_lowercase();
        let serial = self.serial.clone().unwrap_or_default();
        if text.contains("unauthorized") {
            AdbError::Unauthorized { serial }
        } else if text.contains("no devices/emulators found") {
            AdbError::NoDevice
        } else if text.contains("more than one device") {
            AdbError::Several {
                devices: Vec::new(),
            }
        } else if text.contains("device offline") {
            AdbError::Offline { serial }
        } else if text.contains(&format!("device '{serial}' not found")) && !serial.is_empty() {
            AdbError::NotListed {
                serial,
                devices: Vec::new(),
            }
        } else {
            AdbError::Failed {
                command: self.display(args),
                status: out.status,
                output: out.summary(),
            }
        }
    }
}

/// Whether a device in this state accepts commands, as an error if not.
fn check_state(entry: &DeviceEntry) -> Result<(), AdbError> {
    let serial = entry.serial.clone();
    match entry.state.as_str() {
        "device" => Ok(()),
        "unauthorized" => Err(AdbError::Unauthorized { serial }),
        "offline" => Err(AdbError::Offline { serial }),
        state if state.starts_with("no permissions") => Err(AdbError::NoPermissions {
            serial,
            detail: clean(state),
        }),
        state => Err(AdbError::NotReady {
            serial,
            state: clean(state),
        }),
    }
}

/// Parses `adb devices` (or `adb devices -l`) output. Header, daemon
/// start-up notices (`* daemon ...`) and blank lines are skipped; a line is
/// `SERIAL<TAB>STATE`, where the state may contain spaces (`no permissions
/// (...)`).
pub fn parse_devices(text: &str) -> Vec<DeviceEntry> {
    let mut devices = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('*')
            || line.starts_with("List of devices")
            || line.starts_with("adb server")
        {
            continue;
        }
        let (serial, state) = match line.split_once('\t') {
            Some((serial, rest)) => (serial.trim(), rest.trim()),
            None => match line.split_once(char::is_whitespace) {
                Some((serial, rest)) => (serial, rest.trim()),
                None => continue,
            },
        };
        // `devices -l` appends `product:... model:...` after the state.
        let state = match state.split_once(" product:") {
            Some((state, _)) => state.trim(),
            None => state,
        };
        if serial.is_empty() || state.is_empty() {
            continue;
        }
        devices.push(DeviceEntry {
            serial: clean(serial),
            state: state.to_string(),
        });
    }
    devices
}

/// Untrusted text made safe to print: control characters become spaces,
/// runs of whitespace one space, and the result is cut at `QUOTE_LIMIT`
/// characters.
pub fn clean(text: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = false;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && (last_space || out.is_empty()) {
            continue;
        }
        if count == QUOTE_LIMIT {
            out.push('…');
            break;
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out.trim_end().to_string()
}

/// LF line ends: adb on devices before Android 7 runs commands on a pty,
/// which turns every `\n` into `\r\n` (and existing `\r\n` into `\r\r\n`).
fn normalise(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Reads a stream on its own thread (so stdout and stderr drain together),
/// keeping at most [`OUTPUT_CAP`] bytes.
fn reader(mut stream: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut stream).take(OUTPUT_CAP).read_to_end(&mut kept);
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
        let _ = tx.send(kept);
    });
    rx
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_output() {
        let text = "* daemon not running; starting now at tcp:5037\n\
                    * daemon started successfully\n\
                    List of devices attached\n\
                    emulator-5554\tdevice\n\
                    R58M12ABCDE\tunauthorized\n\
                    0123\tno permissions (user in plugdev group; are your udev rules wrong?)\n\
                    \n";
        let devices = parse_devices(text);
        assert_eq!(devices.len(), 3);
        assert_eq!(devices[0].serial, "emulator-5554");
        assert_eq!(devices[0].state, "device");
        assert_eq!(devices[1].state, "unauthorized");
        assert!(devices[2].state.starts_with("no permissions"));
        assert!(parse_devices("List of devices attached\n\n").is_empty());
        assert!(parse_devices("").is_empty());
    }

    #[test]
    fn parses_long_listing_and_crlf() {
        let text = "List of devices attached\r\n\
                    R58M12ABCDE            device usb:1-1 product:beyond1 model:SM_G973F transport_id:2\r\n";
        let devices = parse_devices(text);
        assert_eq!(
            devices,
            vec![DeviceEntry {
                serial: "R58M12ABCDE".into(),
                state: "device usb:1-1".into()
            }]
        );
    }

    #[test]
    fn states_map_to_errors() {
        let entry = |state: &str| DeviceEntry {
            serial: "X".into(),
            state: state.into(),
        };
        assert!(check_state(&entry("device")).is_ok());
        assert!(matches!(
            check_state(&entry("unauthorized")),
            Err(AdbError::Unauthorized { .. })
        ));
        assert!(matches!(
            check_state(&entry("offline")),
            Err(AdbError::Offline { .. })
        ));
        assert!(matches!(
            check_state(&entry("no permissions (udev)")),
            Err(AdbError::NoPermissions { .. })
        ));
        assert!(matches!(
            check_state(&entry("recovery")),
            Err(AdbError::NotReady { .. })
        ));
    }

    #[test]
    fn several_without_a_list_still_reads_well() {
        let text = AdbError::Several {
            devices: Vec::new(),
        }
        .to_string();
        assert!(text.starts_with("several devices are connected"), "{text}");
    }

    #[test]
    fn unauthorized_message_names_the_prompt() {
        let text = AdbError::Unauthorized {
            serial: "R58".into(),
        }
        .to_string();
        assert!(text.contains("Allow USB debugging"), "{text}");
        assert!(text.contains("RSA"), "{text}");
    }

    #[test]
    fn cleans_untrusted_text() {
        assert_eq!(clean("a\u{1b}[31mb\r\n\tc  d"), "a [31mb c d");
        assert_eq!(clean(""), "");
        let long = "x".repeat(1000);
        assert_eq!(clean(&long).chars().count(), QUOTE_LIMIT + 1);
    }

    #[test]
    fn normalises_pty_line_ends() {
        assert_eq!(normalise("a\r\nb\r\r\n"), "a\nb\n");
        assert_eq!(normalise("a\nb"), "a\nb");
    }

    #[test]
    fn missing_program_is_not_installed() {
        let adb = Adb::new("/nonexistent/leakscope-test/adb", None);
        let err = adb.devices().unwrap_err();
        assert!(matches!(err, AdbError::NotInstalled { .. }), "{err}");
        assert!(err.to_string().contains("platform-tools"), "{err}");
    }
}
