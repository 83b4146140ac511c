//! `leakscope android ...`: prepares an Android emulator or phone for a
//! session through the `adb` on PATH.
//!
//! - `setup`: checks the device, installs the CA (system store with root,
//!   user store otherwise) and points the device's global HTTP proxy at
//!   leakscope;
//! - `profile`: reads the device's identifiers into a device profile;
//! - `teardown`: undoes `setup`;
//! - `run --android [--app PACKAGE]` does setup and profile, then starts
//!   the app fresh once the proxy listens ([`prepare_run`]).
//!
//! Layers: [`adb`] runs the client and picks the device, [`device`] probes
//! it, [`setup`], [`teardown`] and [`profile`] act on it, [`parse`] and
//! [`script`] are pure (device output in, values out; script text out).
//! See `docs/android.md`.

pub mod adb;
pub mod device;
pub mod parse;
pub mod profile;
pub mod script;
pub mod setup;
pub mod teardown;

use crate::ca::CertAuthority;
use crate::cli::{CertsDir, RunArgs};
use adb::{Adb, clean};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use device::Device;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum AndroidCommand {
    /// Check the device, install the CA, and point the device's HTTP proxy at leakscope.
    Setup(SetupArgs),
    /// Read the device's identifiers into a device profile for `run --profile`.
    Profile(ProfileArgs),
    /// Undo `setup`: clear the proxy, remove the port forward and the CA.
    Teardown(TeardownArgs),
}

#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The device's serial as `adb devices` lists it (default: $ANDROID_SERIAL, or the only device).
    #[arg(long, value_name = "SERIAL")]
    pub serial: Option<String>,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The proxy's port on this computer (`run --listen`'s port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub certs: CertsDir,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Where to write the profile.
    #[arg(long, value_name = "FILE", default_value = "device.toml")]
    pub out: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Emulator only: set the GPS fix first (`adb emu geo fix LON LAT`), e.g. 48.8584,2.2945.
    #[arg(long, value_name = "LAT,LON", allow_hyphen_values = true, value_parser = parse_geo)]
    pub geo: Option<(f64, f64)>,
    /// The package under test, written as `app` (informational).
    #[arg(long, value_name = "PACKAGE")]
    pub app: Option<String>,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The port `setup` forwarded (phones).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub certs: CertsDir,
}

/// `run`'s Android options (flattened into [`RunArgs`]).
#[derive(Debug, Args, Default)]
pub struct RunAndroidArgs {
    /// Prepare the Android device first: `android setup` with --listen's port, then
    /// `android profile` into the output directory (unless --profile is given).
    #[arg(long)]
    pub android: bool,
    /// With --android: clear this app's data and launch it once the proxy listens, so
    /// the session covers its first start, before any consent.
    #[arg(long, value_name = "PACKAGE", requires = "android")]
    pub app: Option<String>,
    /// With --android: the device's serial (default: $ANDROID_SERIAL, or the only device).
    #[arg(long, value_name = "SERIAL", requires = "android")]
    pub serial: Option<String>,
}

/// `LAT,LON` in degrees.
fn parse_geo(text: &str) -> Result<(f64, f64), String> {
    let usage = || format!("{text:?}: write LAT,LON in degrees, e.g. 48.8584,2.2945");
    let (lat, lon) = text.split_once(',').ok_or_else(usage)?;
    let lat: f64 = lat.trim().parse().map_err(|_| usage())?;
    let lon: f64 = lon.trim().parse().map_err(|_| usage())?;
    if !(lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0) {
        return Err(format!(
            "{text:?}: latitude must be within ±90 and longitude within ±180"
        ));
    }
    Ok((lat, lon))
}

/// Runs one `leakscope android` command.
pub fn execute(command: AndroidCommand) -> anyhow::Result<()> {
    match command {
        AndroidCommand::Setup(args) => {
            let device = connect(args.device.serial)?;
            let ca = load_ca(&args.certs.dir)?;
            let report = setup_device(&device, &ca, args.port)?;
            print_report(&report, &mut std::io::stdout());
            println!(
                "Next: leakscope run --listen 127.0.0.1:{port} (the device reaches it through {})",
                if device.emulator {
                    "10.0.2.2"
                } else {
                    "adb reverse"
                },
                port = args.port
            );
            println!(
                "Undo: leakscope android teardown {}{}",
                device.serial_flag(),
                port_flag(args.port)
            );
            Ok(())
        }
        AndroidCommand::Profile(args) => {
            let device = connect(args.device.serial)?;
            let options = profile::Options {
                geo: args.geo,
                app: args.app,
            };
            let reading = profile::read(&device, &options)?;
            let text = profile::render(&device, &reading)?;
            profile::write(&args.out, &text, args.force)?;
            print_reading(&reading, &args.out, &mut std::io::stdout());
            Ok(())
        }
        AndroidCommand::Teardown(args) => {
            let device = connect(args.device.serial)?;
            println!("Device: {device}");
            // Teardown works without the CA (a tmpfs is unmounted whatever
            // it holds), so a missing or damaged CA is a note, not a stop.
            let ca = match CertAuthority::load(&args.certs.dir) {
                Ok(ca) => Some(ca),
                Err(err) => {
                    println!("Note: {err}");
                    None
                }
            };
            let report = teardown::teardown(&device, ca.as_ref(), args.port)?;
            print_report(&report, &mut std::io::stdout());
            Ok(())
        }
    }
}

/// The device for a command: adb from PATH, `serial` or the only device.
fn connect(serial: Option<String>) -> anyhow::Result<Device> {
    let adb = Adb::on_path(serial)?;
    device::connect(adb)
}

/// The CA, created if the directory holds none.
fn load_ca(dir: &Path) -> anyhow::Result<CertAuthority> {
    let (ca, created) = CertAuthority::load_or_init(dir)?;
    if created {
        println!("Created a new CA in {}", dir.display());
    }
    Ok(ca)
}

/// Setup proper: the CA, then the proxy (so a device whose CA install
/// failed is not left sending its traffic to a proxy it does not trust).
pub fn setup_device(
    device: &Device,
    ca: &CertAuthority,
    port: u16,
) -> anyhow::Result<setup::Report> {
    let mut report = setup::Report::default();
    report.done.push(format!("checked the device: {device}"));
    setup::install_ca(device, ca, &mut report)?;
    setup::set_proxy(device, port, &mut report)?;
    Ok(report)
}

fn port_flag(port: u16) -> String {
    if port == 8080 {
        String::new()
    } else {
        format!(" --port {port}")
    }
}

fn print_report(report: &setup::Report, out: &mut dyn std::io::Write) {
    let _ = writeln!(out, "Done:");
    for line in &report.done {
        let _ = writeln!(out, "  - {line}");
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "Notes:");
        for line in &report.notes {
            let _ = writeln!(out, "  - {line}");
        }
    }
}

fn print_reading(reading: &profile::Reading, path: &Path, out: &mut dyn std::io::Write) {
    use profile::{Outcome, Value};
    let written: Vec<String> = reading
        .entries
        .iter()
        .filter_map(|e| match &e.outcome {
            Outcome::Read(Value::Apps(apps)) => Some(format!("{} ({})", e.key, apps.len())),
            Outcome::Read(_) => Some(e.key.clone()),
            _ => None,
        })
        .collect();
    let _ = writeln!(
        out,
        "Wrote {}: {}",
        path.display(),
        if written.is_empty() {
            "no values".to_string()
        } else {
            written.join(", ")
        }
    );
    for (title, pick) in [("Not read", 0), ("Rejected (not written)", 1), ("Notes", 2)] {
        let lines: Vec<String> = reading
            .entries
            .iter()
            .filter_map(|e| match (&e.outcome, pick, &e.note) {
                (Outcome::NotRead(why), 0, _) | (Outcome::Rejected(why), 1, _) => {
                    Some(format!("{}: {why}", e.key))
                }
                (_, 2, Some(note)) => Some(format!("{}: {note}", e.key)),
                _ => None,
            })
            .collect();
        if !lines.is_empty() {
            let _ = writeln!(out, "{title}:");
            for line in lines {
                let _ = writeln!(out, "  - {}", clean(&line));
            }
        }
    }
    let _ = writeln!(
        out,
        "Use it with: leakscope run --profile {}",
        path.display()
    );
}

/// A device prepared by `run --android`, for the steps that must wait until
/// the proxy listens.
#[derive(Debug)]
pub struct AndroidRun {
    device: Device,
    app: Option<String>,
}

/// `run --android`: sets the device up for the proxy on `args.listen`'s port
/// and, unless `--profile` was given, reads its profile into
/// `<out>/device.toml`, setting `args.out` (from `default_out` when unset)
/// and `args.privacy.profile` so the session uses it. Returns `None` without
/// `--android`. Progress goes to stderr, like the proxy's banner.
///
/// Call [`AndroidRun::launch_app`] once the proxy is listening.
pub fn prepare_run(
    args: &mut RunArgs,
    default_out: fn() -> PathBuf,
) -> anyhow::Result<Option<AndroidRun>> {
    if !args.android.android {
        return Ok(None);
    }
    let listen = args.listen;
    if listen.port() == 0 {
        bail!("--android needs a fixed --listen port to give the device, not port 0");
    }
    if !(listen.ip().is_loopback() || listen.ip().is_unspecified()) {
        eprintln!(
            "WARNING: --listen {listen}: the device reaches this computer's loopback \
             (10.0.2.2 on emulators, adb reverse on phones); listen on 127.0.0.1:{} instead",
            listen.port()
        );
    }
    let app = match &args.android.app {
        Some(app) => Some(
            crate::detect::profile::check_value("app", app)
                .map_err(|why| anyhow::anyhow!("--app: {why}"))?,
        ),
        None => None,
    };
    let device = connect(args.android.serial.clone())?;
    if let Some(app) = &app {
        // Not installed: no output, exit status 1 (0 before Android 7).
        let path = device.adb.shell_output(&format!("pm path {app}"))?;
        if !path.stdout.contains("package:") {
            bail!(
                "--app {app} is not installed on {}; install it first (adb install APP.apk)",
                clean(&device.serial)
            );
        }
    }
    let (ca, created) = CertAuthority::load_or_init(&args.certs.dir)?;
    if created {
        eprintln!("Created a new CA in {}", args.certs.dir.display());
    }
    let report = setup_device(&device, &ca, listen.port())?;
    print_report(&report, &mut std::io::stderr());

    if let Some(given) = &args.privacy.profile {
        eprintln!(
            "Using --profile {}; the device's identifiers were not read.",
            given.display()
        );
    } else {
        let out = args.out.get_or_insert_with(default_out).clone();
        std::fs::create_dir_all(&out)
            .with_context(|| format!("creating the output directory {}", out.display()))?;
        let path = out.join("device.toml");
        let options = profile::Options {
            geo: None,
            app: app.clone(),
        };
        let reading = profile::read(&device, &options)?;
        let text = profile::render(&device, &reading)?;
        profile::write(&path, &text, true)?;
        print_reading(&reading, &path, &mut std::io::stderr());
        args.privacy.profile = Some(path);
    }
    eprintln!(
        "After the session: leakscope android teardown {}{}",
        device.serial_flag(),
        port_flag(listen.port())
    );
    Ok(Some(AndroidRun { device, app }))
}

impl AndroidRun {
    /// With `--app`: `pm clear PACKAGE` (stops it and deletes its data, so
    /// it starts as on first install) and `monkey -p PACKAGE -c
    /// android.intent.category.LAUNCHER 1` (starts its launcher activity).
    /// Failures are warnings: the proxy is already recording, and the user
    /// can still start the app by hand.
    pub fn launch_app(&self) {
        let Some(app) = &self.app else {
            return;
        };
        if let Err(err) = self.try_launch(app) {
            eprintln!("WARNING: could not start {app} fresh: {err:#}; start it by hand");
        }
    }

    fn try_launch(&self, app: &str) -> anyhow::Result<()> {
        let cleared = self.device.adb.shell(&format!("pm clear {app}"))?;
        if !cleared.contains("Success") {
            bail!("`pm clear {app}` printed {}", clean(&cleared));
        }
        let started = self.device.adb.shell(&format!(
            "monkey -p {app} -c android.intent.category.LAUNCHER 1"
        ))?;
        if !started.contains("Events injected: 1") {
            bail!("`monkey` could not start it: {}", clean(&started));
        }
        eprintln!("Started {app} with its data cleared: the session covers its first start.");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geo_values() {
        assert_eq!(parse_geo("48.8584,2.2945"), Ok((48.8584, 2.2945)));
        assert_eq!(parse_geo("-33.8568, 151.2153"), Ok((-33.8568, 151.2153)));
        assert!(parse_geo("48.8584").is_err());
        assert!(parse_geo("91,0").is_err());
        assert!(parse_geo("NaN,0").is_err());
        assert!(parse_geo("a,b").is_err());
    }
}

/// The fake adb (`tests/android/fake-adb`) behind a per-test wrapper that
/// sets its variables, so library tests inject it as [`Adb::program`]
/// without touching the process environment.
#[cfg(test)]
pub(crate) mod fake {
    use super::adb::Adb;

    /// A fake device: `vars` are `FAKE_ADB_*` settings. The directory holds
    /// the wrapper, the log and the state; keep it alive while testing.
    pub fn adb(vars: &[(&str, &str)]) -> (tempfile::TempDir, Adb) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let fake = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/android/fake-adb");
        let mut script = String::from("#!/bin/sh\n");
        script.push_str(&format!(
            "export FAKE_ADB_LOG='{}/log'\n",
            dir.path().display()
        ));
        for (key, value) in vars {
            script.push_str(&format!("export {key}='{value}'\n"));
        }
        script.push_str(&format!("exec '{fake}' \"$@\"\n"));
        // The script is written under another name and copied into place
        // by `cp`: an executable this process had open for writing could
        // be held open by a child another test thread forks meanwhile, and
        // running it would then fail with "Text file busy".
        let source = dir.path().join("adb.sh");
        std::fs::write(&source, script).unwrap_or_else(|e| panic!("wrapper: {e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o755));
        }
        let wrapper = dir.path().join("adb");
        let copied = std::process::Command::new("cp")
            .arg("-p")
            .arg(&source)
            .arg(&wrapper)
            .status()
            .unwrap_or_else(|e| panic!("cp: {e}"));
        assert!(copied.success(), "cp {} failed", source.display());
        (dir, Adb::new(wrapper, None))
    }

    /// The adb calls logged so far.
    pub fn log(dir: &tempfile::TempDir) -> Vec<String> {
        std::fs::read_to_string(dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}
