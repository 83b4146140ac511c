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
use values::{
    Problem, coordinate, free_form, package_name, string, validate_identifier, wrong_type,
};
pub(crate) use values::{is_cn_mobile, split_country_code};

#[path = "profile_values.rs"]
mod values;

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
