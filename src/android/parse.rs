//! Parsers for what the device prints: `service call` Parcel dumps,
//! `dumpsys location`, `pm list packages` and Google Play services'
//! advertising-ID preferences. All take untrusted text and never panic:
//! anything unexpected is `None` or an `Err` describing the shape found.

/// A `String` returned through `service call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParcelString {
    Value(String),
    /// The service returned `null` (no SIM, no value).
    Null,
    /// The service threw; `code` is the Parcel exception code (-1 is
    /// `SecurityException`), `message` its text.
    Exception {
        code: i32,
        message: String,
    },
}

/// Decodes the reply of `service call SERVICE CODE ...` for a method
/// returning a `String`.
///
/// The reply is printed as a hex dump of 32-bit little-endian words:
///
/// ```text
/// Result: Parcel(
///   0x00000000: 00000000 0000000f 00350033 00380034 '........3.5.4.8.'
///   0x00000010: ...                                 '...')
/// ```
///
/// or, when short, on one line: `Result: Parcel(00000000 ffffffff '........')`.
/// The payload is an `int32` exception code (0: none), then a String16: an
/// `int32` length in UTF-16 units (-1: null) and the units themselves.
pub fn parse_parcel_string(text: &str) -> Result<ParcelString, String> {
    let Some((_, body)) = text.split_once("Parcel(") else {
        return Err(format!("no Parcel in the reply: {}", short(text)));
    };
    if body.trim_start().starts_with("Error") {
        return Err(format!("the call failed: {}", short(body)));
    }
    let mut bytes = Vec::new();
    for line in body.lines() {
        // The quoted ASCII column follows the words; it can contain anything.
        let words = line.split('\'').next().unwrap_or_default();
        for token in words.split_whitespace() {
            if token.ends_with(':') || token.len() != 8 {
                continue; // an offset column, or `)`
            }
            if let Ok(word) = u32::from_str_radix(token, 16) {
                bytes.extend_from_slice(&word.to_le_bytes());
            }
        }
    }
    let code = read_i32(&bytes, 0).ok_or("an empty Parcel")?;
    if code != 0 {
        let message = match read_string16(&bytes, 4) {
            Ok(Some(message)) => message,
            _ => String::new(),
        };
        return Ok(ParcelString::Exception { code, message });
    }
    match read_string16(&bytes, 4)? {
        Some(value) => Ok(ParcelString::Value(value)),
        None => Ok(ParcelString::Null),
    }
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(i32::from_le_bytes([word[0], word[1], word[2], word[3]]))
}

/// A String16 at `at`: `None` for the null string.
fn read_string16(bytes: &[u8], at: usize) -> Result<Option<String>, String> {
    let len = read_i32(bytes, at).ok_or("no string length in the Parcel")?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| format!("a string length of {len}"))?;
    let start = at + 4;
    let units: Vec<u16> = (0..len)
        .map(|i| {
            let pos = start.checked_add(i.checked_mul(2)?)?;
            let pair = bytes.get(pos..pos.checked_add(2)?)?;
            Some(u16::from_le_bytes([pair[0], pair[1]]))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| format!("a string of {len} characters cut short"))?;
    Ok(Some(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
    ))
}

/// `service call iphonesubinfo` transaction codes of one API level, for the
/// methods that take the calling package (and, from API 30, a feature ID).
/// Codes are the methods' positions in `IPhoneSubInfo.aidl`, which change
/// between releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephonyCodes {
    /// `getDeviceId(callingPackage)`: IMEI (MEID on CDMA phones).
    pub device_id: u32,
    /// `getSubscriberId(callingPackage)`: IMSI.
    pub subscriber_id: u32,
    /// `getIccSerialNumber(callingPackage)`: ICCID.
    pub icc_serial: u32,
    /// `getLine1Number(callingPackage[, callingFeatureId])`: phone number.
    pub line1_number: u32,
    /// Whether `getLine1Number` also takes `callingFeatureId` (API 30+).
    pub line1_feature: bool,
}

/// The codes for `sdk`, where known: API 29 (Android 10) and API 30-34
/// (Android 11-14, which share the first 16 methods). Other levels are not
/// guessed: a wrong code calls a different method and returns a wrong,
/// plausible-looking value.
pub fn telephony_codes(sdk: u32) -> Option<TelephonyCodes> {
    match sdk {
        29 => Some(TelephonyCodes {
            device_id: 1,
            subscriber_id: 7,
            icc_serial: 10,
            line1_number: 12,
            line1_feature: false,
        }),
        30..=34 => Some(TelephonyCodes {
            device_id: 1,
            subscriber_id: 8,
            icc_serial: 12,
            line1_number: 15,
            line1_feature: true,
        }),
        _ => None,
    }
}

/// The last known location in `dumpsys location`: the first
/// `Location[PROVIDER LAT,LON ...]` outside coarse sections and lines
/// (coarse locations are deliberately blurred to about 2 km).
pub fn parse_location(text: &str) -> Option<(f64, f64)> {
    let mut in_coarse = false;
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        let Some(at) = line.find("Location[") else {
            // A header line: coarse sections run until the next header.
            if line.trim_end().ends_with(':') {
                in_coarse = lower.contains("coarse");
            }
            continue;
        };
        if in_coarse || lower.contains("coarse") {
            continue;
        }
        let rest = line.get(at + "Location[".len()..).unwrap_or_default();
        let mut tokens = rest.split_whitespace();
        let _provider = tokens.next();
        let Some((lat, lon)) = tokens.next().and_then(|t| t.split_once(',')) else {
            continue;
        };
        let (Ok(lat), Ok(lon)) = (lat.parse::<f64>(), lon.parse::<f64>()) else {
            continue;
        };
        if lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0 {
            return Some((lat, lon));
        }
    }
    None
}

/// Package names from `pm list packages` (`package:NAME` lines; CRLF and
/// blank lines tolerated, other lines ignored).
pub fn parse_packages(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("package:"))
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The advertising ID in Google Play services'
/// `shared_prefs/adid_settings.xml`: `<string name="adid_key">UUID</string>`.
pub fn parse_adid(xml: &str) -> Option<String> {
    let key = xml.find("name=\"adid_key\"")?;
    let rest = xml.get(key..)?;
    let start = rest.find('>')? + 1;
    let end = rest.find("</string>")?;
    rest.get(start..end)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Untrusted text shortened for a message.
fn short(text: &str) -> String {
    super::adb::clean(text).chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an API 29 emulator prints for `service call iphonesubinfo 1 s16
    /// com.android.shell` as root: IMEI 358240051111110.
    const IMEI_DUMP: &str = "Result: Parcel(\n  0x00000000: 00000000 0000000f 00350033 00320038 '........3.5.8.2.'\n  0x00000010: 00300034 00350030 00310031 00310031 '4.0.0.5.1.1.1.1.'\n  0x00000020: 00310031 00000030                   '1.1.0...        ')\n";

    #[test]
    fn decodes_a_string_reply() {
        assert_eq!(
            parse_parcel_string(IMEI_DUMP),
            Ok(ParcelString::Value("358240051111110".into()))
        );
    }

    #[test]
    fn decodes_null_and_exceptions() {
        assert_eq!(
            parse_parcel_string("Result: Parcel(00000000 ffffffff   '........')"),
            Ok(ParcelString::Null)
        );
        // SecurityException "No" (2 characters), as a shape test.
        let text = "Result: Parcel(\n  0x00000000: ffffffff 00000002 006f004e 00000000 '........N.o.....')";
        assert_eq!(
            parse_parcel_string(text),
            Ok(ParcelString::Exception {
                code: -1,
                message: "No".into()
            })
        );
    }

    #[test]
    fn rejects_malformed_replies_without_panicking() {
        for text in [
            "",
            "service: Service iphonesubinfo does not exist",
            "Result: Parcel(Error: 0xffffffb6 \"Not a data message\")",
            "Result: Parcel(",
            "Result: Parcel(00000000 7fffffff '....')",
            "Result: Parcel(00000000 00000010 00350033 '....')",
            "Result: Parcel(00000000 80000000)",
        ] {
            assert!(parse_parcel_string(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn codes_are_known_for_29_to_34_only() {
        assert_eq!(telephony_codes(29).map(|c| c.subscriber_id), Some(7));
        assert_eq!(telephony_codes(33).map(|c| c.icc_serial), Some(12));
        assert_eq!(telephony_codes(34).map(|c| c.line1_number), Some(15));
        assert_eq!(telephony_codes(28), None);
        assert_eq!(telephony_codes(35), None);
    }

    #[test]
    fn finds_the_fine_location() {
        let api29 = "  Last Known Locations:\n    passive: Location[gps 48.858370,2.294481 hAcc=20 et=+5m alt=0.0]\n  Last Known Locations Coarse Intervals:\n    passive: Location[gps 48.860000,2.290000 hAcc=2000]\n";
        assert_eq!(parse_location(api29), Some((48.85837, 2.294481)));
        let api33 = "  gps provider:\n    last coarse location=Location[gps 48.86,2.29 hAcc=2000.0]\n    last location=Location[gps -33.856784,151.215297 hAcc=5.0 et=+1h alt=0.0]\n";
        assert_eq!(parse_location(api33), Some((-33.856784, 151.215297)));
        assert_eq!(parse_location("Location[gps NaN,1.0]"), None);
        assert_eq!(parse_location("Location[gps 99.0,1.0]"), None);
        assert_eq!(parse_location("Location["), None);
        assert_eq!(parse_location(""), None);
    }

    #[test]
    fn lists_packages_with_crlf() {
        let text =
            "package:com.example.app\r\npackage:org.mozilla.firefox\r\n\r\nWARNING: linker\r\n";
        assert_eq!(
            parse_packages(text),
            vec!["com.example.app", "org.mozilla.firefox"]
        );
    }

    #[test]
    fn reads_the_advertising_id() {
        let xml = "<?xml version='1.0' encoding='utf-8' standalone='yes' ?>\n<map>\n    <boolean name=\"enable_limit_ad_tracking\" value=\"false\" />\n    <string name=\"adid_key\">38400000-8cf0-11bd-b23e-10b96e40000d</string>\n    <int name=\"adid_reset_count\" value=\"0\" />\n</map>\n";
        assert_eq!(
            parse_adid(xml).as_deref(),
            Some("38400000-8cf0-11bd-b23e-10b96e40000d")
        );
        assert_eq!(parse_adid("<map/>"), None);
        assert_eq!(parse_adid("name=\"adid_key\""), None);
    }
}
