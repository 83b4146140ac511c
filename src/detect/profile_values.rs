//! Checking one device-profile value: the identifiers' shapes, check
//! digits and placeholders, and the normal forms values are stored in.

use toml::{Table, Value};

use super::MIN_VALUE_LEN;

/// A value's problem before the file and key are attached.
pub(super) enum Problem {
    Invalid { expected: String, got: String },
    Placeholder(&'static str),
}

fn invalid(expected: impl Into<String>, got: impl Into<String>) -> Problem {
    Problem::Invalid {
        expected: expected.into(),
        got: got.into(),
    }
}

pub(super) fn wrong_type(expected: &str, value: &Value) -> Problem {
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
pub(super) fn string(value: &Value) -> Result<&str, Problem> {
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

pub(super) fn validate_identifier(key: &str, v: &str) -> Result<String, Problem> {
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
    if sum.is_multiple_of(10) {
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
pub(super) fn free_form(v: &str, what: &str, max: usize) -> Result<(), Problem> {
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
pub(super) fn package_name(v: &str) -> Result<(), Problem> {
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

pub(super) fn coordinate(table: &Table, key: &str, limit: f64) -> Result<f64, Problem> {
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
