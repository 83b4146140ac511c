//! Every form a profile value takes on the wire.
//!
//! [`expand`] turns a [`DeviceProfile`] into byte strings ([`Form`]s) for
//! the known-value search. Which forms each value gets:
//!
//! | value | text forms | hex, base64 and inner base64 of | MD5, SHA-1, SHA-256 of |
//! | --- | --- | --- | --- |
//! | any | as is; lower and upper case where they differ | as is | as is, lower, upper |
//! | UUID-shaped IDs | + without dashes, lower and upper | as is | as is, lower, upper |
//! | MAC (`mac`, `bt_mac`, `bssid`) | `:`, `-` and none, each lower and upper | `02:1a:..` | `:` lower and upper, none lower and upper |
//! | phone | see [`Encoding::National`] to [`Encoding::Spaced`] | E.164 and national | national, country code + national, with and without `+` |
//!
//! Every text form is also emitted URL-encoded (percent-encoding with
//! upper- and lower-case hex, and form encoding with `+` for space) and
//! JSON-escaped (`\uXXXX` for non-ASCII, `\/`), each only where that
//! differs from the text form. Each digest is emitted as lower- and
//! upper-case hex and as base64 (standard and URL-safe, unpadded) of the
//! raw digest. Base64 forms are unpadded so they match both padded and
//! unpadded text.
//!
//! Location yields `location:lat` and `location:lon` forms: the decimal
//! degrees truncated and rounded (half away from zero) to 3 decimals.
//! As patterns they match longer decimals by prefix (`39.908` inside
//! `39.90881`); a location sent with fewer than 3 decimals, or scaled
//! (micro-degrees), is not searched. Installed apps yield their package
//! names as is, identifier `installed_apps`.
//!
//! Forms are deduplicated per identifier: when two encodings of one value
//! give the same bytes (the hex of a digit string is the same in both
//! cases), the one with the higher [`Encoding::strength`] is kept. Two
//! identifiers may share a form; both are kept.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use super::profile::{DeviceProfile, is_cn_mobile, split_country_code};

/// Shortest inner base64 core, in characters. A core carries 6 bits per
/// character; below 8 characters (48 bits) a core would match by chance
/// inside the large base64 blobs apps send, so shorter ones are skipped:
/// values of 6 bytes are found inside base64 blobs only at alignment 0,
/// shorter values not at all (whole-value base64 is still searched).
pub const MIN_INNER_BASE64_LEN: usize = 8;

/// How a value was transformed before it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// As in the profile, normalised: MAC `02:1a:..`, phone in E.164
    /// (`+8613800138000`) when its country is known.
    Plain,
    Lower,
    Upper,
    /// Separators removed (MAC, UUID), lower case.
    NoSeparators,
    NoSeparatorsUpper,
    /// MAC with `-`, lower case; phone with `-` between groups.
    Dashes,
    DashesUpper,
    /// Phone number without country code (`13800138000`; other countries
    /// also with the trunk prefix `0`).
    National,
    /// Phone with the international call prefix: `008613800138000`.
    IntlPrefix,
    /// Phone country code and number without `+`: `8613800138000`.
    CountryCode,
    /// Phone with spaces: `+86 13800138000`; Chinese mobile numbers also
    /// grouped 3-4-4 (`138 0013 8000`, `+86 138 0013 8000`).
    Spaced,
    /// Location degrees as a 3-decimal prefix (truncated or rounded).
    Decimal,
    /// JSON string escapes: `\uXXXX` (either case) for non-ASCII, `\/`.
    JsonEscape,
    /// URL-encoded (percent-encoding or form encoding).
    Url,
    /// Hex of the bytes (the text's UTF-8), lower case.
    Hex,
    HexUpper,
    /// Standard base64 of the whole value, unpadded.
    Base64,
    /// URL-safe base64 of the whole value, unpadded.
    Base64Url,
    /// Part of the value's standard base64 inside a longer base64 text.
    Base64Inner,
    /// Part of the value's URL-safe base64 inside a longer base64 text.
    Base64UrlInner,
    /// Digests: hex lower, hex upper, base64 of the raw digest.
    Md5,
    Md5Upper,
    Md5Base64,
    Sha1,
    Sha1Upper,
    Sha1Base64,
    Sha256,
    Sha256Upper,
    Sha256Base64,
}

impl Encoding {
    /// Every encoding, strongest first.
    pub const ALL: [Encoding; 29] = {
        use Encoding::*;
        [
            Plain,
            Lower,
            Upper,
            NoSeparators,
            NoSeparatorsUpper,
            Dashes,
            DashesUpper,
            National,
            IntlPrefix,
            CountryCode,
            Spaced,
            Decimal,
            JsonEscape,
            Url,
            Hex,
            HexUpper,
            Base64,
            Base64Url,
            Base64Inner,
            Base64UrlInner,
            Md5,
            Md5Upper,
            Md5Base64,
            Sha1,
            Sha1Upper,
            Sha1Base64,
            Sha256,
            Sha256Upper,
            Sha256Base64,
        ]
    };

    /// Name used in findings; the same as the serde name.
    pub fn label(self) -> &'static str {
        use Encoding::*;
        match self {
            Plain => "plain",
            Lower => "lower",
            Upper => "upper",
            NoSeparators => "no-separators",
            NoSeparatorsUpper => "no-separators-upper",
            Dashes => "dashes",
            DashesUpper => "dashes-upper",
            National => "national",
            IntlPrefix => "intl-prefix",
            CountryCode => "country-code",
            Spaced => "spaced",
            Decimal => "decimal",
            JsonEscape => "json-escape",
            Url => "url",
            Hex => "hex",
            HexUpper => "hex-upper",
            Base64 => "base64",
            Base64Url => "base64-url",
            Base64Inner => "base64-inner",
            Base64UrlInner => "base64-url-inner",
            Md5 => "md5",
            Md5Upper => "md5-upper",
            Md5Base64 => "md5-base64",
            Sha1 => "sha1",
            Sha1Upper => "sha1-upper",
            Sha1Base64 => "sha1-base64",
            Sha256 => "sha256",
            Sha256Upper => "sha256-upper",
            Sha256Base64 => "sha256-base64",
        }
    }

    /// Rank, higher is stronger: how directly the bytes show the value.
    /// Plain > reformatted (case, separators, phone forms, decimal) >
    /// escaped (JSON, URL) > hex > base64 > inner base64 > digests.
    /// Distinct for every encoding, so "the strongest" is never a tie.
    pub fn strength(self) -> u8 {
        let index = Encoding::ALL.iter().position(|e| *e == self).unwrap_or(0);
        // ALL is ordered strongest first and is far shorter than 255.
        u8::try_from(Encoding::ALL.len() - index).unwrap_or(0)
    }

    /// Base64 forms: by design found inside longer alphanumeric runs, so
    /// they get no word-boundary check.
    pub fn is_base64(self) -> bool {
        use Encoding::*;
        matches!(
            self,
            Base64
                | Base64Url
                | Base64Inner
                | Base64UrlInner
                | Md5Base64
                | Sha1Base64
                | Sha256Base64
        )
    }

    /// Hex output (of the value's bytes or of a digest): must not sit
    /// inside a longer hex run.
    pub fn is_hex(self) -> bool {
        use Encoding::*;
        matches!(
            self,
            Hex | HexUpper | Md5 | Md5Upper | Sha1 | Sha1Upper | Sha256 | Sha256Upper
        )
    }
}

/// One searched byte string. `Debug` shows the identifier, encoding and
/// length, never the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Form {
    /// Profile key (`"imei"`, `"custom:account"`), `"location:lat"`,
    /// `"location:lon"` or `"installed_apps"`.
    pub identifier: String,
    pub encoding: Encoding,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Form")
            .field("identifier", &self.identifier)
            .field("encoding", &self.encoding)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// All forms of every searched value in `profile` (see the module docs).
/// Empty for an empty profile; never contains an empty byte string.
pub fn expand(profile: &DeviceProfile) -> Vec<Form> {
    let mut forms = Forms::default();
    for (id, value) in profile.values() {
        let v = value.expose();
        let value = match id {
            "mac" | "bt_mac" | "bssid" => mac(v),
            "phone" => phone(v),
            _ if is_uuid(v) => uuid(v),
            _ => generic(v),
        };
        forms.value(id, &value);
    }
    if let Some((lat, lon)) = profile.location() {
        for (id, degrees) in [("location:lat", lat), ("location:lon", lon)] {
            let (truncated, rounded) = three_decimals(degrees);
            forms.push(id, Encoding::Decimal, truncated.into_bytes());
            forms.push(id, Encoding::Decimal, rounded.into_bytes());
        }
    }
    for app in profile.installed_apps() {
        forms.push("installed_apps", Encoding::Plain, app.as_bytes().to_vec());
    }
    forms.list
}

/// The forms of one value before the generic encodings are applied.
struct Value {
    /// Text forms, the first being `Plain`.
    text: Vec<(Encoding, String)>,
    /// Inputs to hex, base64 and inner base64.
    core: Vec<String>,
    /// Inputs to the digests.
    digest: Vec<String>,
}

#[derive(Default)]
struct Forms {
    list: Vec<Form>,
    /// `(identifier, bytes)` to index in `list`, for deduplication.
    seen: HashMap<(String, Vec<u8>), usize>,
}

impl Forms {
    fn push(&mut self, id: &str, encoding: Encoding, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let key = (id.to_string(), bytes);
        if let Some(&i) = self.seen.get(&key) {
            if let Some(form) = self.list.get_mut(i)
                && encoding.strength() > form.encoding.strength()
            {
                form.encoding = encoding;
            }
            return;
        }
        self.seen.insert(key.clone(), self.list.len());
        self.list.push(Form {
            identifier: key.0,
            encoding,
            bytes: key.1,
        });
    }

    fn value(&mut self, id: &str, value: &Value) {
        for (encoding, text) in &value.text {
            self.push(id, *encoding, text.clone().into_bytes());
            for encoded in url_encodings(text) {
                self.push(id, Encoding::Url, encoded.into_bytes());
            }
            for escaped in json_escapes(text) {
                self.push(id, Encoding::JsonEscape, escaped.into_bytes());
            }
        }
        for core in &value.core {
            let bytes = core.as_bytes();
            self.push(id, Encoding::Hex, hex(bytes, false).into_bytes());
            self.push(id, Encoding::HexUpper, hex(bytes, true).into_bytes());
            for (engine, full, inner) in [
                (STANDARD_NO_PAD, Encoding::Base64, Encoding::Base64Inner),
                (
                    URL_SAFE_NO_PAD,
                    Encoding::Base64Url,
                    Encoding::Base64UrlInner,
                ),
            ] {
                self.push(id, full, engine.encode(bytes).into_bytes());
                for core in inner_base64(&engine, bytes) {
                    self.push(id, inner, core.into_bytes());
                }
            }
        }
        for input in &value.digest {
            self.digests(id, input.as_bytes());
        }
    }

    fn digests(&mut self, id: &str, input: &[u8]) {
        use Encoding::*;
        let md5 = <md5::Md5 as md5::Digest>::digest(input).to_vec();
        let sha1 = <sha1::Sha1 as sha1::Digest>::digest(input).to_vec();
        let sha256 = <sha2::Sha256 as sha2::Digest>::digest(input).to_vec();
        for (raw, lower, upper, b64) in [
            (md5, Md5, Md5Upper, Md5Base64),
            (sha1, Sha1, Sha1Upper, Sha1Base64),
            (sha256, Sha256, Sha256Upper, Sha256Base64),
        ] {
            self.push(id, lower, hex(&raw, false).into_bytes());
            self.push(id, upper, hex(&raw, true).into_bytes());
            self.push(id, b64, STANDARD_NO_PAD.encode(&raw).into_bytes());
            self.push(id, b64, URL_SAFE_NO_PAD.encode(&raw).into_bytes());
        }
    }
}

/// Plain, lower and upper case (the latter two only where they differ).
fn cases(v: &str) -> Vec<(Encoding, String)> {
    let mut text = vec![(Encoding::Plain, v.to_string())];
    for (encoding, cased) in [
        (Encoding::Lower, v.to_lowercase()),
        (Encoding::Upper, v.to_uppercase()),
    ] {
        if cased != v {
            text.push((encoding, cased));
        }
    }
    text
}

fn generic(v: &str) -> Value {
    let text = cases(v);
    let digest = text.iter().map(|(_, t)| t.clone()).collect();
    Value {
        text,
        core: vec![v.to_string()],
        digest,
    }
}

fn is_uuid(v: &str) -> bool {
    let lens: Vec<usize> = v.split('-').map(str::len).collect();
    lens == [8, 4, 4, 4, 12] && v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn uuid(v: &str) -> Value {
    let mut value = generic(v);
    let bare = v.replace('-', "");
    value
        .text
        .push((Encoding::NoSeparators, bare.to_ascii_lowercase()));
    value
        .text
        .push((Encoding::NoSeparatorsUpper, bare.to_ascii_uppercase()));
    value
}

/// `v` is the profile's canonical `aa:bb:cc:dd:ee:ff`.
fn mac(v: &str) -> Value {
    use Encoding::*;
    let lower = v.to_ascii_lowercase();
    let upper = v.to_ascii_uppercase();
    let text = vec![
        (Plain, v.to_string()),
        (Lower, lower.clone()),
        (Upper, upper.clone()),
        (Dashes, lower.replace(':', "-")),
        (DashesUpper, upper.replace(':', "-")),
        (NoSeparators, lower.replace(':', "")),
        (NoSeparatorsUpper, upper.replace(':', "")),
    ];
    Value {
        digest: vec![
            lower.clone(),
            upper.clone(),
            lower.replace(':', ""),
            upper.replace(':', ""),
        ],
        text,
        core: vec![v.to_string()],
    }
}

/// `v` is the profile's normalised number: `+` country code and national
/// digits, or bare digits when the country is unknown.
fn phone(v: &str) -> Value {
    use Encoding::*;
    let Some((cc, national)) = v.strip_prefix('+').and_then(split_country_code) else {
        return generic(v);
    };
    let mut text = vec![
        (Plain, v.to_string()),
        (National, national.to_string()),
        (CountryCode, format!("{cc}{national}")),
        (IntlPrefix, format!("00{cc}{national}")),
        (Spaced, format!("+{cc} {national}")),
    ];
    if cc == "86" && is_cn_mobile(national) {
        let (a, rest) = national.split_at(3);
        let (b, c) = rest.split_at(4);
        text.push((Spaced, format!("{a} {b} {c}")));
        text.push((Spaced, format!("+{cc} {a} {b} {c}")));
        text.push((Dashes, format!("{a}-{b}-{c}")));
        text.push((Dashes, format!("+{cc}-{a}-{b}-{c}")));
    } else if cc != "1" && !national.starts_with('0') {
        // Most countries outside North America dial national numbers
        // with a trunk prefix 0 (UK 07700 900123).
        text.push((National, format!("0{national}")));
    }
    Value {
        text,
        core: vec![v.to_string(), national.to_string()],
        digest: vec![
            national.to_string(),
            format!("{cc}{national}"),
            v.to_string(),
        ],
    }
}

/// `(truncated, rounded)` to 3 decimals, computed on the shortest decimal
/// representation of `degrees` so no binary rounding creeps in
/// (39.9088 gives `39.908` and `39.909`; 116.3975 gives `116.397` and
/// `116.398`). Rounding is half away from zero.
fn three_decimals(degrees: f64) -> (String, String) {
    let sign = if degrees < 0.0 { "-" } else { "" };
    let text = format!("{}", degrees.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let digit = |i: usize| u64::from(frac.as_bytes().get(i).map_or(0, |b| b.wrapping_sub(b'0')));
    let whole: u64 = int.parse().unwrap_or(0);
    let milli = whole * 1000 + digit(0) * 100 + digit(1) * 10 + digit(2);
    let rounded = milli + u64::from(digit(3) >= 5);
    let show = |m: u64| format!("{sign}{}.{:03}", m / 1000, m % 1000);
    (show(milli), show(rounded))
}

fn hex(bytes: &[u8], upper: bool) -> String {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(digits[usize::from(b >> 4)]));
        out.push(char::from(digits[usize::from(b & 15)]));
    }
    out
}

/// Percent-encoding with upper- and lower-case hex, and form encoding
/// (space as `+`), each only where it differs from `text`. Unreserved
/// characters (RFC 3986: letters, digits, `-._~`) stay as they are.
fn url_encodings(text: &str) -> Vec<String> {
    let encode = |upper: bool, form: bool| {
        let mut out = String::new();
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else if form && b == b' ' {
                out.push('+');
            } else {
                out.push('%');
                out.push_str(&hex(&[b], upper));
            }
        }
        out
    };
    let mut out: Vec<String> = Vec::new();
    for encoded in [
        encode(true, false),
        encode(false, false),
        encode(true, true),
    ] {
        if encoded != text && !out.contains(&encoded) {
            out.push(encoded);
        }
    }
    out
}

/// JSON escapes of `text` (`\uXXXX` lower and upper case for non-ASCII,
/// UTF-16 surrogate pairs beyond the BMP, and `\/`), where they differ.
fn json_escapes(text: &str) -> Vec<String> {
    let escape = |upper: bool| {
        let mut out = String::new();
        for c in text.chars() {
            if c == '/' {
                out.push_str("\\/");
            } else if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str("\\u");
                    out.push_str(&hex(&unit.to_be_bytes(), upper));
                }
            }
        }
        out
    };
    let mut out: Vec<String> = Vec::new();
    for escaped in [escape(false), escape(true)] {
        if escaped != text && !out.contains(&escaped) {
            out.push(escaped);
        }
    }
    out
}

/// The base64 characters that encode only `value`'s bits when `value`
/// sits at byte offset 0, 1 or 2 (mod 3) inside a longer base64-encoded
/// text: `value` is encoded behind 0-2 filler bytes and the characters
/// that also carry bits of the (unknown) neighbouring bytes are dropped at
/// both ends. Character `i` covers bits `6i..6i+6`, so with `k` filler
/// bytes the kept characters are `ceil(8k/6) .. floor(8(k+n)/6)`. Cores
/// shorter than [`MIN_INNER_BASE64_LEN`] are skipped.
fn inner_base64(engine: &GeneralPurpose, value: &[u8]) -> Vec<String> {
    let mut cores = Vec::new();
    for k in 0..3usize {
        let mut buf = vec![0u8; k];
        buf.extend_from_slice(value);
        let encoded = engine.encode(&buf);
        let first = (8 * k).div_ceil(6);
        let last = 8 * (k + value.len()) / 6;
        if let Some(core) = encoded.get(first..last)
            && core.len() >= MIN_INNER_BASE64_LEN
        {
            cores.push(core.to_string());
        }
    }
    cores
}

#[cfg(test)]
#[path = "expand_tests.rs"]
mod tests;
