//! The device profile: the test device's real identifiers, loaded from a
//! flat TOML file (see `detectors/example-profile.toml`).
//!
//! Every value is validated when the profile is loaded, because a typo in
//! an identifier does not fail loudly later: it silently finds nothing.
//! Values are normalised where the identifier has one canonical spelling
//! (MAC addresses become lower-case with `:`, phone numbers become digits
//! with their country code); [`super::expand`] derives every other form.

use std::fmt;
use std::path::Path;

use toml::{Table, Value};

use super::secret::Secret;

/// Keys that hold one searched identifier each, in the order
/// [`DeviceProfile::values`] yields them.
#[rustfmt::skip]
const IDENTIFIER_KEYS: [&str; 16] = [
    "imei", "meid", "imsi", "iccid", "serial", "android_id", "adid", "oaid", "idfa", "idfv",
    "mac", "bt_mac", "ssid", "bssid", "phone", "email",
];

/// The other top-level keys.
const OTHER_KEYS: [&str; 5] = ["location", "installed_apps", "model", "app", "custom"];

/// Shortest free-form value (custom values, SSID, serial) in bytes: three
/// bytes occur by chance in almost any traffic.
pub const MIN_VALUE_LEN: usize = 4;

/// Longest free-form value in bytes: every value becomes dozens of search
/// patterns, and identifiers are short.
pub const MAX_VALUE_LEN: usize = 256;

/// The test device's identifiers. `Debug` shows which keys are set, never
/// a value.
#[derive(Clone, Default)]
pub struct DeviceProfile {
    values: Vec<(String, Secret)>,
    location: Option<(f64, f64)>,
    installed_apps: Vec<String>,
    model: Option<String>,
    app: Option<String>,
}

/// Why a profile could not be loaded. Every message names the file, and
/// the key when there is one; none repeats a personal value.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: cannot read the device profile: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax error; `line` and `column` are 1-based (0 when toml gave
    /// no position).
    #[error("{origin}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: unknown key `{key}`{}", hint(.suggestion.as_deref()))]
    UnknownKey {
        origin: String,
        key: String,
        suggestion: Option<String>,
    },
    #[error("{origin}: key `{key}`: expected {expected}, got {got}")]
    Invalid {
        origin: String,
        key: String,
        expected: String,
        got: String,
    },
    #[error("{origin}: key `{key}`: {reason}")]
    Placeholder {
        origin: String,
        key: String,
        reason: &'static str,
    },
}

fn hint(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// A value's problem before the file and key are attached.
enum Problem {
    Invalid { expected: String, got: String },
    Placeholder(&'static str),
}

fn invalid(expected: impl Into<String>, got: impl Into<String>) -> Problem {
    Problem::Invalid {
        expected: expected.into(),
        got: got.into(),
    }
}

impl DeviceProfile {
    /// Reads and validates the profile at `path`; messages name the file.
    pub fn load(path: &Path) -> Result<DeviceProfile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: origin.clone(),
            source,
        })?;
        DeviceProfile::from_toml(&text, &origin)
    }

    /// Parses and validates a profile; `origin` (a file name) prefixes
    /// every error message. Unknown keys are errors, so a misspelt key is
    /// not silently ignored. The first problem found is returned.
    pub fn from_toml(text: &str, origin: &str) -> Result<DeviceProfile, ProfileError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            let (line, column) = e.span().map_or((0, 0), |s| line_column(text, s.start));
            ProfileError::Syntax {
                origin: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let err = |key: &str, problem: Problem| match problem {
            Problem::Invalid { expected, got } => ProfileError::Invalid {
                origin: origin.to_string(),
                key: key.to_string(),
                expected,
                got,
            },
            Problem::Placeholder(reason) => ProfileError::Placeholder {
                origin: origin.to_string(),
                key: key.to_string(),
                reason,
            },
        };
        let unknown = |key: &str, candidates: &[&str], prefix: &str| ProfileError::UnknownKey {
            origin: origin.to_string(),
            key: format!("{prefix}{key}"),
            suggestion: closest(key, candidates).map(|s| format!("{prefix}{s}")),
        };

        let all_keys: Vec<&str> = IDENTIFIER_KEYS.iter().chain(&OTHER_KEYS).copied().collect();
        if let Some(key) = table.keys().find(|k| !all_keys.contains(&k.as_str())) {
            return Err(unknown(key, &all_keys, ""));
        }

        let mut profile = DeviceProfile::default();
        for key in IDENTIFIER_KEYS {
            let Some(value) = table.get(key) else {
                continue;
            };
            let text = string(value).map_err(|p| err(key, p))?;
            let normalised = validate_identifier(key, text).map_err(|p| err(key, p))?;
            profile
                .values
                .push((key.to_string(), Secret::new(normalised)));
        }
        if let Some(value) = table.get("location") {
            let Value::Table(loc) = value else {
                return Err(err(
                    "location",
                    wrong_type("a table `{ lat = .., lon = .. }`", value),
                ));
            };
            if let Some(k) = loc.keys().find(|k| *k != "lat" && *k != "lon") {
                return Err(unknown(k, &["lat", "lon"], "location."));
            }
            let lat = coordinate(loc, "lat", 90.0).map_err(|p| err("location.lat", p))?;
            let lon = coordinate(loc, "lon", 180.0).map_err(|p| err("location.lon", p))?;
            if lat == 0.0 && lon == 0.0 {
                return Err(err(
                    "location",
                    Problem::Placeholder(
                        "0,0 is the placeholder sent when there is no fix, not the device's location",
                    ),
                ));
            }
            profile.location = Some((lat, lon));
        }
        if let Some(value) = table.get("installed_apps") {
            let Value::Array(items) = value else {
                return Err(err(
                    "installed_apps",
                    wrong_type("an array of package names", value),
                ));
            };
            for (i, item) in items.iter().enumerate() {
                let key = format!("installed_apps[{i}]");
                let name = string(item).map_err(|p| err(&key, p))?;
                package_name(name).map_err(|p| err(&key, p))?;
                if !profile.installed_apps.iter().any(|a| a == name) {
                    profile.installed_apps.push(name.to_string());
                }
            }
        }
        if let Some(value) = table.get("model") {
            let model = string(value).map_err(|p| err("model", p))?;
            profile.model = Some(model.to_string());
        }
        if let Some(value) = table.get("app") {
            let app = string(value).map_err(|p| err("app", p))?;
            package_name(app).map_err(|p| err("app", p))?;
            profile.app = Some(app.to_string());
        }
        if let Some(value) = table.get("custom") {
            let Value::Table(custom) = value else {
                return Err(err(
                    "custom",
                    wrong_type("a table of name = \"value\"", value),
                ));
            };
            // Sorted, so the order never depends on toml's map type.
            let mut entries: Vec<_> = custom.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (name, value) in entries {
                let key = format!("custom.{name}");
                let text = string(value).map_err(|p| err(&key, p))?;
                free_form(text, "a value", MAX_VALUE_LEN).map_err(|p| err(&key, p))?;
                profile
                    .values
                    .push((format!("custom:{name}"), Secret::new(text)));
            }
        }
        Ok(profile)
    }

    /// The searched `(identifier, value)` pairs: identifiers are the
    /// profile keys (`"imei"`, `"mac"`, ...) and `"custom:NAME"` for
    /// `[custom]` entries, in file-independent order (fixed keys first,
    /// then custom names sorted). Values are normalised: MAC addresses
    /// lower-case with `:`, phone numbers `+` country code and digits
    /// (digits only when the country is unknown). Location and installed
    /// apps are not included (see [`Self::location`], [`Self::installed_apps`]).
    pub fn values(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// `(latitude, longitude)` in degrees.
    pub fn location(&self) -> Option<(f64, f64)> {
        self.location
    }

    /// Package names, duplicates removed, in file order.
    pub fn installed_apps(&self) -> &[String] {
        &self.installed_apps
    }

    /// Device model (informational, not searched).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Package under test (informational, not searched).
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// True when nothing would be searched (informational keys only).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.location.is_none() && self.installed_apps.is_empty()
    }
}

/// Checks one string value for `key` exactly as [`DeviceProfile::from_toml`]
/// would, for values that come from elsewhere (a device over adb) and are
/// checked before a profile is written. `key` is an identifier key,
/// `model`, `app`, or `installed_apps` (one package name).
///
/// Returns the value as the profile stores it (normalised), or why it was
/// refused; like every profile message, the reason never repeats the value.
pub fn check_value(key: &str, value: &str) -> Result<String, String> {
    let describe = |problem: Problem| match problem {
        Problem::Invalid { expected, got } => format!("expected {expected}, got {got}"),
        Problem::Placeholder(reason) => reason.to_string(),
    };
    let wrapped = Value::String(value.to_string());
    let text = string(&wrapped).map_err(describe)?;
    match key {
        "model" => Ok(text.to_string()),
        "app" | "installed_apps" => package_name(text)
            .map(|()| text.to_string())
            .map_err(describe),
        _ if IDENTIFIER_KEYS.contains(&key) => validate_identifier(key, text).map_err(describe),
        _ => Err(format!("`{key}` is not a string key of a device profile")),
    }
}

impl fmt::Debug for DeviceProfile {
    // Location and app list are personal too: show only what is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceProfile")
            .field(
                "identifiers",
                &self.values.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("location", &self.location.map(|_| "(redacted)"))
            .field("installed_apps", &self.installed_apps.len())
            .field("model", &self.model)
            .field("app", &self.app)
            .finish()
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Known name closest to `key`: a common synonym (`lng`, `gaid`), or
/// the nearest by edit distance (transpositions count once, so `imie`
/// suggests `imei`) if close enough to be a likely typo.
fn closest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    #[rustfmt::skip]
    const SYNONYMS: [(&str, &str); 12] = [
        ("lng", "lon"), ("long", "lon"), ("longitude", "lon"), ("latitude", "lat"),
        ("gaid", "adid"), ("wifi_mac", "mac"), ("bluetooth_mac", "bt_mac"),
        ("phone_number", "phone"), ("mobile", "phone"), ("sn", "serial"),
        ("apps", "installed_apps"), ("packages", "installed_apps"),
    ];
    let key = key.to_ascii_lowercase();
    if let Some((_, name)) = SYNONYMS.iter().find(|(alias, _)| *alias == key) {
        return candidates.iter().find(|c| *c == name).copied();
    }
    let limit = (key.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(&key, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent swaps).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * width + j] + 1)
                    .min(d[i * width + j - 1] + 1)
                    .min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
}

fn wrong_type(expected: &str, value: &Value) -> Problem {
    let got = value.type_str();
    let article = if got.starts_with(['a', 'i']) {
        "an"
    } else {
        "a"
    };
    invalid(expected, format!("{article} {got}"))
}

/// The value as a non-empty string. Numbers are refused rather than
/// converted: as TOML integers, identifiers would lose leading zeros.
fn string(value: &Value) -> Result<&str, Problem> {
    match value {
        Value::String(s) if s.trim().is_empty() => {
            Err(invalid("a non-empty string", "an empty string"))
        }
        Value::String(s) => Ok(s),
        Value::Integer(_) | Value::Float(_) => Err(invalid(
            "a quoted string (as a TOML number, leading zeros would be lost)",
            "a number",
        )),
        other => Err(wrong_type("a string", other)),
    }
}

fn validate_identifier(key: &str, v: &str) -> Result<String, Problem> {
    match key {
        "imei" => {
            let expected = "15 digits (14 + Luhn check digit)";
            digits(v, 15..=15, expected)?;
            zeros(v)?;
            luhn(v, expected)?;
        }
        "meid" => {
            hex(v, 14..=14, "14 hex digits")?;
            zeros(v)?;
        }
        "imsi" => {
            digits(v, 15..=15, "15 digits")?;
            zeros(v)?;
        }
        "iccid" => {
            let expected = "19 or 20 digits starting with 89, the last a Luhn check digit";
            digits(v, 19..=20, expected)?;
            if !v.starts_with("89") {
                return Err(invalid(expected, "a value not starting with 89"));
            }
            luhn(v, expected)?;
        }
        "serial" => {
            let expected = "4 to 64 letters, digits, `-`, `_` or `.`";
            let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
            shaped(v, MIN_VALUE_LEN..=64, ok, expected)?;
            if v.eq_ignore_ascii_case("unknown") || v.eq_ignore_ascii_case("0123456789abcdef") {
                return Err(Problem::Placeholder(
                    "this is Android's placeholder serial (returned without permission), not the device's value",
                ));
            }
            zeros(v)?;
        }
        "android_id" => {
            hex(v, 16..=16, "16 hex digits")?;
            zeros(v)?;
            if v.eq_ignore_ascii_case("9774d56d682e549c") {
                return Err(Problem::Placeholder(
                    "this ANDROID_ID is shared by many Android 2.2 devices and emulators, not the device's value",
                ));
            }
        }
        "adid" | "idfa" | "idfv" => {
            uuid(v).ok_or_else(|| invalid(UUID_SHAPE, describe(v)))?;
            zeros(v)?;
        }
        "oaid" => {
            let expected = "a UUID (8-4-4-4-12 hex digits) or 16 to 64 hex digits";
            if uuid(v).is_none() {
                hex(v, 16..=64, expected)?;
            }
            zeros(v)?;
        }
        "mac" | "bt_mac" | "bssid" => return mac(v),
        "ssid" => {
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(v);
            free_form(v, "an SSID", 32)?;
            if v == "<unknown ssid>" {
                return Err(Problem::Placeholder(
                    "this is Android's placeholder SSID (returned without location permission), not the network's name",
                ));
            }
            return Ok(v.to_string());
        }
        "phone" => return phone(v),
        "email" => email(v)?,
        _ => {}
    }
    Ok(v.to_string())
}

const UUID_SHAPE: &str = "a UUID: 8-4-4-4-12 hex digits separated by `-`";

/// Describes a malformed value by its length only, never its content.
fn describe(v: &str) -> String {
    format!("{} characters", v.chars().count())
}

/// Checks that `v` has a length in `len` (in characters) and that every
/// character passes `ok`, naming the first that does not.
fn shaped(
    v: &str,
    len: std::ops::RangeInclusive<usize>,
    ok: impl Fn(char) -> bool,
    expected: &str,
) -> Result<(), Problem> {
    if let Some((i, c)) = v.chars().enumerate().find(|(_, c)| !ok(*c)) {
        let what = if c.is_whitespace() {
            "whitespace"
        } else {
            "an unexpected character"
        };
        return Err(invalid(expected, format!("{what} at position {}", i + 1)));
    }
    if !len.contains(&v.chars().count()) {
        return Err(invalid(expected, describe(v)));
    }
    Ok(())
}

fn digits(v: &str, len: std::ops::RangeInclusive<usize>, expected: &str) -> Result<(), Problem> {
    shaped(v, len, |c| c.is_ascii_digit(), expected)
}

fn hex(v: &str, len: std::ops::RangeInclusive<usize>, expected: &str) -> Result<(), Problem> {
    shaped(v, len, |c| c.is_ascii_hexdigit(), expected)
}

/// Placeholder check: every hex digit is zero (separators ignored).
fn zeros(v: &str) -> Result<(), Problem> {
    if v.chars().filter(char::is_ascii_hexdigit).all(|c| c == '0') {
        Err(Problem::Placeholder(
            "all zeros is a placeholder (what the OS reports without permission or with ad tracking limited), not the device's value",
        ))
    } else {
        Ok(())
    }
}

/// Luhn check over an all-digit string whose last digit is the check digit.
fn luhn(v: &str, expected: &str) -> Result<(), Problem> {
    let sum: u32 = v
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.wrapping_sub(b'0'));
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    if sum % 10 == 0 {
        Ok(())
    } else {
        Err(invalid(
            expected,
            "a check digit that does not match the other digits (a typo?)",
        ))
    }
}

/// `Some(())` when `v` is 8-4-4-4-12 hex digits separated by `-`.
fn uuid(v: &str) -> Option<()> {
    let groups: Vec<&str> = v.split('-').collect();
    let lens = groups.iter().map(|g| g.len()).collect::<Vec<_>>();
    let hex = groups
        .iter()
        .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    (lens == [8, 4, 4, 4, 12] && hex).then_some(())
}

fn mac(v: &str) -> Result<String, Problem> {
    let expected = "6 hex octets separated by `:`, `-` or nothing (like 02:1a:11:f0:3c:77)";
    let separator = v.chars().find(|c| !c.is_ascii_hexdigit());
    let octets: Vec<&str> = match separator {
        None if v.len() == 12 => (0..6).filter_map(|i| v.get(i * 2..i * 2 + 2)).collect(),
        None => return Err(invalid(expected, describe(v))),
        Some(sep @ (':' | '-')) => v.split(sep).collect(),
        Some(_) => return Err(invalid(expected, "a separator other than `:` or `-`")),
    };
    if octets.len() != 6
        || octets
            .iter()
            .any(|o| o.len() != 2 || !o.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(invalid(
            expected,
            format!(
                "{} characters in {} groups",
                v.chars().count(),
                octets.len()
            ),
        ));
    }
    let canonical = octets.join(":").to_ascii_lowercase();
    match canonical.as_str() {
        "02:00:00:00:00:00" => Err(Problem::Placeholder(
            "this is Android's placeholder (returned to apps since Android 6), not the device's value",
        )),
        "00:00:00:00:00:00" => Err(Problem::Placeholder(
            "an all-zero MAC is a placeholder, not the device's value",
        )),
        "ff:ff:ff:ff:ff:ff" => Err(Problem::Placeholder(
            "this is the broadcast address, not the device's value",
        )),
        _ => Ok(canonical),
    }
}

/// Normalises a phone number to `+` country code and national digits when
/// the country is known (`+` or `00` prefix, or an 11-digit Chinese mobile
/// number starting 13-19), otherwise to its digits as written.
fn phone(v: &str) -> Result<String, Problem> {
    let expected =
        "a phone number: digits with an optional leading `+`, spaces or `-` (7 to 15 digits)";
    let body = v.strip_prefix('+');
    let ok = |c: char| c.is_ascii_digit() || c == ' ' || c == '-';
    shaped(body.unwrap_or(v), 1..=64, ok, expected)?;
    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
    if !(7..=15).contains(&digits.len()) {
        return Err(invalid(expected, format!("{} digits", digits.len())));
    }
    zeros(&digits)?;
    let international = match (body.is_some(), digits.strip_prefix("00")) {
        (true, _) => Some(digits.as_str()),
        (false, Some(rest)) => Some(rest),
        (false, None) => None,
    };
    Ok(match international {
        Some(d) if split_country_code(d).is_none() => {
            return Err(invalid(
                expected,
                "a country code followed by too few digits",
            ));
        }
        Some(d) => format!("+{d}"),
        None if is_cn_mobile(&digits) => format!("+86{digits}"),
        None => digits,
    })
}

/// An 11-digit mainland Chinese mobile number (13x-19x).
pub(crate) fn is_cn_mobile(national: &str) -> bool {
    let b = national.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

/// Splits international digits (no `+`) into country code and national
/// number by the E.164 prefix plan: codes 1 and 7 have one digit, the
/// two-digit codes are listed, every other code has three digits.
/// `None` when fewer than 4 national digits would remain.
pub(crate) fn split_country_code(digits: &str) -> Option<(&str, &str)> {
    const TWO_DIGIT: [&str; 44] = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    let len = match digits.as_bytes().first()? {
        b'1' | b'7' => 1,
        _ if TWO_DIGIT.iter().any(|cc| digits.starts_with(cc)) => 2,
        _ => 3,
    };
    let split = digits.split_at_checked(len)?;
    (split.1.len() >= 4).then_some(split)
}

fn email(v: &str) -> Result<(), Problem> {
    let expected = "an email address: one `@` and a domain containing a dot";
    let mut parts = v.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid(expected, format!("{} `@`", v.matches('@').count())));
    };
    if v.chars().any(char::is_whitespace) {
        return Err(invalid(expected, "whitespace"));
    }
    let dotted = domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty());
    if local.is_empty() || !dotted {
        return Err(invalid(
            expected,
            "an empty local part or a domain without an inner dot",
        ));
    }
    Ok(())
}

/// Free-form values (custom, SSID): at least [`MIN_VALUE_LEN`] bytes,
/// and at most `max`.
fn free_form(v: &str, what: &str, max: usize) -> Result<(), Problem> {
    let expected = if v.len() < MIN_VALUE_LEN {
        format!(
            "{what} of at least {MIN_VALUE_LEN} bytes (shorter values would match almost everywhere)"
        )
    } else if v.len() > max {
        format!("{what} of at most {max} bytes")
    } else {
        return Ok(());
    };
    Err(invalid(expected, format!("{} bytes", v.len())))
}

/// A Java package name: at least two dot-separated segments, each a
/// letter or `_` followed by letters, digits or `_`.
fn package_name(v: &str) -> Result<(), Problem> {
    let segment_ok = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if v.split('.').count() >= 2 && v.split('.').all(segment_ok) {
        Ok(())
    } else {
        Err(invalid(
            "a Java package name like com.example.app",
            describe(v),
        ))
    }
}

fn coordinate(table: &Table, key: &str, limit: f64) -> Result<f64, Problem> {
    let expected = format!("a number of degrees in [-{limit}, {limit}]");
    let value = match table.get(key) {
        Some(Value::Float(f)) => *f,
        Some(Value::Integer(i)) => *i as f64,
        Some(other) => return Err(wrong_type(&expected, other)),
        None => {
            return Err(invalid(
                expected,
                "nothing (both `lat` and `lon` are required)",
            ));
        }
    };
    if !value.is_finite() || value.abs() > limit {
        return Err(invalid(expected, "a number out of range"));
    }
    Ok(value)
}
