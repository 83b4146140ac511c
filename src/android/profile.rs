//! `leakscope android profile`: the device's identifiers, read over adb,
//! checked, and written as a device profile for `run --profile`.
//!
//! Every value goes through the profile's own validators
//! ([`crate::detect::profile::check_value`]) before it is written, and the
//! finished file is parsed back with [`DeviceProfile::from_toml`], so a
//! written profile always loads. What could not be read, and what was read
//! but refused, is listed with the reason and never written.

use super::adb::{AdbError, clean};
use super::device::{Device, Root};
use super::parse::{self, ParcelString, TelephonyCodes};
use crate::detect::profile::{DeviceProfile, check_value};
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::path::Path;

/// What to read besides the device's own identifiers.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Emulator only: `adb emu geo fix LON LAT` first, as `(lat, lon)`.
    pub geo: Option<(f64, f64)>,
    /// The package under test (written as `app`, informational).
    pub app: Option<String>,
}

/// A value as the profile stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Location(f64, f64),
    Apps(Vec<String>),
}

/// What happened to one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Read(Value),
    /// Not available, with the reason (permission, API level, not set).
    NotRead(String),
    /// Read but refused by the profile's validators; the reason never
    /// repeats the value.
    Rejected(String),
}

/// One profile key.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub outcome: Outcome,
    /// A caveat about a value that was written.
    pub note: Option<String>,
}

/// Everything read from the device.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub entries: Vec<Entry>,
}

impl Reading {
    fn push(&mut self, key: &str, outcome: Outcome) {
        self.entries.push(Entry {
            key: key.to_string(),
            outcome,
            note: None,
        });
    }

    /// Checks `raw` for `key` and records it as read or rejected.
    fn checked(&mut self, key: &str, raw: &str) {
        let outcome = match check_value(key, raw.trim()) {
            Ok(value) => Outcome::Read(Value::Text(value)),
            Err(reason) => Outcome::Rejected(reason),
        };
        self.push(key, outcome);
    }

    /// Adds a caveat to the last entry if it was read.
    fn note_last(&mut self, note: String) {
        if let Some(entry) = self.entries.last_mut()
            && matches!(entry.outcome, Outcome::Read(_))
        {
            entry.note = Some(note);
        }
    }

    /// The entry for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Outcome> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.outcome)
    }
}

/// Reads every identifier the device gives up, in this order: `adb emu geo
/// fix` (with `--geo`), ANDROID_ID, advertising ID (root), IMEI, IMSI,
/// ICCID and phone number (`service call iphonesubinfo`), Wi-Fi MAC,
/// Bluetooth MAC, serial, model, third-party packages, and last the
/// location (`dumpsys location`), which gives the fix time to arrive.
pub fn read(device: &Device, options: &Options) -> anyhow::Result<Reading> {
    if let Some((lat, lon)) = options.geo {
        if !device.emulator {
            bail!(
                "--geo works only on emulators (it uses the emulator console); {} is a phone",
                clean(&device.serial)
            );
        }
        // The console takes longitude first.
        let (lon_text, lat_text) = (lon.to_string(), lat.to_string());
        device
            .adb
            .run(&["emu", "geo", "fix", &lon_text, &lat_text])?;
    }
    let mut reading = Reading::default();

    match setting(device, "secure", "android_id")? {
        Some(id) => {
            reading.checked("android_id", &id);
            if device.sdk >= 26 {
                reading.note_last(
                    "Android 8+ gives each app signing key its own ANDROID_ID: this is the \
                     one adb's shell sees, so the app under test may send another"
                        .to_string(),
                );
            }
        }
        None => reading.push("android_id", Outcome::NotRead("not set".to_string())),
    }

    read_adid(device, &mut reading)?;
    read_telephony(device, &mut reading)?;

    let mac = device
        .adb
        .shell_output("cat /sys/class/net/wlan0/address")?;
    if mac.success() && !mac.stdout.trim().is_empty() {
        reading.checked("mac", &mac.stdout);
        if let Some(Outcome::Read(Value::Text(value))) = reading.get("mac")
            && locally_administered(value)
        {
            reading.note_last(
                "a randomized (locally administered) MAC: Android 10+ uses one per Wi-Fi \
                 network, so this is what the current network sees, not the factory MAC"
                    .to_string(),
            );
        }
    } else {
        reading.push(
            "mac",
            Outcome::NotRead(format!(
                "/sys/class/net/wlan0/address is not readable ({}); Wi-Fi off, or hidden from \
                 the shell on this version",
                mac.summary()
            )),
        );
    }

    match setting(device, "secure", "bluetooth_address")? {
        Some(mac) => reading.checked("bt_mac", &mac),
        None => reading.push(
            "bt_mac",
            Outcome::NotRead(
                "not set (Bluetooth never turned on, or hidden on this version)".to_string(),
            ),
        ),
    }

    let serial = device.adb.shell("getprop ro.serialno")?;
    if serial.trim().is_empty() {
        reading.push(
            "serial",
            Outcome::NotRead("ro.serialno is empty".to_string()),
        );
    } else {
        reading.checked("serial", &serial);
    }

    let model = device.adb.shell("getprop ro.product.model")?;
    if model.trim().is_empty() {
        reading.push(
            "model",
            Outcome::NotRead("ro.product.model is empty".to_string()),
        );
    } else {
        reading.checked("model", &clean(&model));
    }

    read_packages(device, &mut reading)?;
    read_location(device, options.geo, &mut reading)?;

    if let Some(app) = &options.app {
        reading.checked("app", app);
    }
    Ok(reading)
}

/// `settings get NAMESPACE KEY`; `None` when unset (`null`) or empty.
fn setting(device: &Device, namespace: &str, key: &str) -> Result<Option<String>, AdbError> {
    let value = device
        .adb
        .shell(&format!("settings get {namespace} {key}"))?;
    let value = value.trim();
    Ok((!value.is_empty() && value != "null").then(|| value.to_string()))
}

/// The advertising ID from Google Play services' private preferences,
/// which only root can read.
fn read_adid(device: &Device, reading: &mut Reading) -> anyhow::Result<()> {
    if let Root::No(_) = device.root {
        reading.push(
            "adid",
            Outcome::NotRead(
                "kept in Google Play services' private data: needs root (or read it in \
                 Settings > Google > Ads)"
                    .to_string(),
            ),
        );
        return Ok(());
    }
    let path = "/data/data/com.google.android.gms/shared_prefs/adid_settings.xml";
    let xml = device.shell_maybe_root(&format!("cat {path}"))?;
    match parse::parse_adid(&xml.stdout) {
        Some(adid) => reading.checked("adid", &adid),
        None => reading.push(
            "adid",
            Outcome::NotRead(
                "no advertising ID on the device (no Google Play services, or none created yet)"
                    .to_string(),
            ),
        ),
    }
    Ok(())
}

/// IMEI, IMSI, ICCID and phone number through `service call iphonesubinfo`.
fn read_telephony(device: &Device, reading: &mut Reading) -> anyhow::Result<()> {
    let Some(codes) = parse::telephony_codes(device.sdk) else {
        let why = format!(
            "leakscope knows the `service call iphonesubinfo` codes of API 29-34 only (this \
             device: API {}); copy it from Settings > About phone > Status",
            device.sdk
        );
        for key in ["imei", "imsi", "iccid", "phone"] {
            reading.push(key, Outcome::NotRead(why.clone()));
        }
        return Ok(());
    };
    let TelephonyCodes {
        device_id,
        subscriber_id,
        icc_serial,
        line1_number,
        line1_feature,
    } = codes;
    // A null String16 (int32 -1) for the calling feature ID.
    let line1_extra = if line1_feature { " i32 -1" } else { "" };
    let calls = [
        ("imei", device_id, "", true),
        ("imsi", subscriber_id, "", true),
        ("iccid", icc_serial, "", true),
        ("phone", line1_number, line1_extra, false),
    ];
    for (key, code, extra, privileged) in calls {
        if privileged && device.sdk >= 29 && !device.has_root() {
            reading.push(
                key,
                Outcome::NotRead(
                    "API 29+ restricts it to READ_PRIVILEGED_PHONE_STATE, which adb's shell \
                     lacks: only readable with root"
                        .to_string(),
                ),
            );
            continue;
        }
        let command = format!("service call iphonesubinfo {code} s16 com.android.shell{extra}");
        // Wi-Fi-only devices have no such service: that is "not read".
        let reply = device.shell_maybe_root(&command)?;
        match parse::parse_parcel_string(&reply.stdout) {
            Ok(ParcelString::Value(value)) if value.trim().is_empty() => reading.push(
                key,
                Outcome::NotRead("empty (the SIM does not store it)".to_string()),
            ),
            Ok(ParcelString::Value(value)) => {
                // getDeviceId is the MEID (14 hex digits) on CDMA phones.
                let key = if key == "imei" && looks_like_meid(&value) {
                    "meid"
                } else {
                    key
                };
                reading.checked(key, &value);
            }
            Ok(ParcelString::Null) => reading.push(
                key,
                Outcome::NotRead("none (no SIM, or no value on this device)".to_string()),
            ),
            Ok(ParcelString::Exception { message, .. }) => reading.push(
                key,
                Outcome::NotRead(format!("the phone service refused: {}", clean(&message))),
            ),
            Err(why) => reading.push(key, Outcome::NotRead(why)),
        }
    }
    Ok(())
}

fn looks_like_meid(value: &str) -> bool {
    value.len() == 14
        && value.bytes().all(|b| b.is_ascii_hexdigit())
        && !value.bytes().all(|b| b.is_ascii_digit())
}

/// The locally administered bit: set on randomized MACs.
fn locally_administered(mac: &str) -> bool {
    mac.get(0..2)
        .and_then(|octet| u8::from_str_radix(octet, 16).ok())
        .is_some_and(|octet| octet & 0x02 != 0)
}

/// Third-party packages; names the validator refuses are counted, not kept.
fn read_packages(device: &Device, reading: &mut Reading) -> anyhow::Result<()> {
    let listed = device.adb.shell("pm list packages -3")?;
    let names = parse::parse_packages(&listed);
    if names.is_empty() {
        reading.push(
            "installed_apps",
            Outcome::NotRead("`pm list packages -3` listed no third-party package".to_string()),
        );
        return Ok(());
    }
    let mut apps: Vec<String> = Vec::new();
    let mut refused = Vec::new();
    for name in &names {
        match check_value("installed_apps", name) {
            Ok(name) => apps.push(name),
            Err(reason) => refused.push(reason),
        }
    }
    apps.sort();
    apps.dedup();
    if let Some(reason) = refused.first() {
        reading.push(
            "installed_apps",
            Outcome::Rejected(format!(
                "{} of {} package names refused ({reason})",
                refused.len(),
                names.len()
            )),
        );
    }
    if !apps.is_empty() {
        reading.push("installed_apps", Outcome::Read(Value::Apps(apps)));
    }
    Ok(())
}

/// The last known location from `dumpsys location`. With `--geo`, the
/// coordinates sent are used when dumpsys does not show them yet: the
/// emulator delivers a fix only once something asks for a location.
fn read_location(
    device: &Device,
    geo: Option<(f64, f64)>,
    reading: &mut Reading,
) -> anyhow::Result<()> {
    let dump = device.adb.shell_output("dumpsys location")?;
    let found = parse::parse_location(&dump.stdout);
    let (outcome, note) = match (found, geo) {
        (Some((lat, lon)), Some((want_lat, want_lon)))
            if (lat - want_lat).abs() > 0.0005 || (lon - want_lon).abs() > 0.0005 =>
        {
            (
                check_location(want_lat, want_lon),
                Some(
                    "dumpsys location still shows an older fix; wrote the --geo coordinates"
                        .to_string(),
                ),
            )
        }
        (Some((lat, lon)), _) => (check_location(lat, lon), None),
        (None, Some((lat, lon))) => (
            check_location(lat, lon),
            Some(
                "dumpsys location shows no fix yet (no app asked for one); wrote the --geo \
                 coordinates"
                    .to_string(),
            ),
        ),
        (None, None) => (
            Outcome::NotRead(
                "no last known location (location off, or no app asked for a fix; on an \
                 emulator use --geo LAT,LON)"
                    .to_string(),
            ),
            None,
        ),
    };
    reading.push("location", outcome);
    if let Some(note) = note {
        reading.note_last(note);
    }
    Ok(())
}

/// A location checked by the profile loader itself (range, and 0,0 being
/// the no-fix placeholder).
pub fn check_location(lat: f64, lon: f64) -> Outcome {
    let text = format!("location = {{ lat = {lat:?}, lon = {lon:?} }}\n");
    match DeviceProfile::from_toml(&text, "location") {
        Ok(_) => Outcome::Read(Value::Location(lat, lon)),
        Err(err) => Outcome::Rejected(err.to_string().trim_start_matches("location: ").to_string()),
    }
}

/// The profile text: a header naming the device, the keys read, and as
/// comments what was not read or was rejected (with reasons, never values).
/// Parsed back before it is returned, so it always loads.
pub fn render(device: &Device, reading: &Reading) -> anyhow::Result<String> {
    let model = match reading.get("model") {
        Some(Outcome::Read(Value::Text(model))) => model.as_str(),
        _ => "unknown model",
    };
    let mut text = String::new();
    let today = time::OffsetDateTime::now_utc().date();
    let _ = writeln!(
        text,
        "# Device profile read by `leakscope android profile` from {} ({}, API {}) on {today}.",
        clean(&device.serial),
        clean(model),
        device.sdk
    );
    let _ = writeln!(
        text,
        "# Use it with `leakscope run --profile FILE`. Values were checked before writing."
    );
    let mut comments = |title: &str, pick: &dyn Fn(&Entry) -> Option<String>| {
        let lines: Vec<String> = reading.entries.iter().filter_map(pick).collect();
        if !lines.is_empty() {
            let _ = writeln!(text, "#\n# {title}:");
            for line in lines {
                let _ = writeln!(text, "#   {}", clean(&line));
            }
        }
    };
    comments("Not read", &|e| match &e.outcome {
        Outcome::NotRead(why) => Some(format!("{}: {why}", e.key)),
        _ => None,
    });
    comments("Rejected (not written)", &|e| match &e.outcome {
        Outcome::Rejected(why) => Some(format!("{}: {why}", e.key)),
        _ => None,
    });
    comments("Notes", &|e| {
        e.note.as_ref().map(|note| format!("{}: {note}", e.key))
    });
    text.push('\n');
    for entry in &reading.entries {
        let Outcome::Read(value) = &entry.outcome else {
            continue;
        };
        match value {
            Value::Text(v) => {
                let _ = writeln!(text, "{} = {}", entry.key, toml_string(v));
            }
            Value::Location(lat, lon) => {
                let _ = writeln!(text, "{} = {{ lat = {lat:?}, lon = {lon:?} }}", entry.key);
            }
            Value::Apps(apps) => {
                let _ = writeln!(text, "{} = [", entry.key);
                for app in apps {
                    let _ = writeln!(text, "  {},", toml_string(app));
                }
                let _ = writeln!(text, "]");
            }
        }
    }
    DeviceProfile::from_toml(&text, "the generated profile")
        .context("leakscope produced a profile it cannot load (a bug; please report it)")?;
    Ok(text)
}

/// A TOML basic string, escaped by the toml crate.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// Writes `text` to `path` through a temporary file and a rename, so a
/// reader never sees half a profile. An existing file is kept unless
/// `force`.
pub fn write(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!(
            "{} already exists; use --force to replace it (or --out another file)",
            path.display()
        );
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    std::fs::write(&temp, text)
        .with_context(|| format!("writing {}", Path::new(&temp).display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
