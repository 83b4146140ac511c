//! Built-in validators: pure checks that a candidate value really has the
//! shape, ranges and check digits of the identifier a rule claims it is.
//!
//! Every validator takes the matched text as `&str` and answers `bool`; none
//! allocates on the happy path and none panics, whatever the input. A rule
//! file names a validator by [`Validator::name`]; unknown names are rejected
//! when the rules load (see [`crate::detect::rules`]).
//!
//! Validators are deliberately strict: a pattern hit is only worth reporting
//! if a compliance tester can trust it, so "looks a bit like an IMEI" is not
//! enough — the check digit, the reporting body, the date of birth… must all
//! agree.

/// A validator a rule can name in its `validator = "..."` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validator {
    Luhn,
    Imei,
    Meid,
    Imsi,
    Iccid,
    Mac,
    Uuid,
    AndroidId,
    Oaid,
    CnMobile,
    E164,
    Email,
    CnResidentId,
    BankCard,
    Latitude,
    Longitude,
    LatLonPair,
    PackageName,
}

impl Validator {
    /// Every validator, in the order error messages list them.
    pub const ALL: &'static [Validator] = &[
        Validator::Luhn,
        Validator::Imei,
        Validator::Meid,
        Validator::Imsi,
        Validator::Iccid,
        Validator::Mac,
        Validator::Uuid,
        Validator::AndroidId,
        Validator::Oaid,
        Validator::CnMobile,
        Validator::E164,
        Validator::Email,
        Validator::CnResidentId,
        Validator::BankCard,
        Validator::Latitude,
        Validator::Longitude,
        Validator::LatLonPair,
        Validator::PackageName,
    ];

    /// The name rule files use.
    pub fn name(self) -> &'static str {
        match self {
            Validator::Luhn => "luhn",
            Validator::Imei => "imei",
            Validator::Meid => "meid",
            Validator::Imsi => "imsi",
            Validator::Iccid => "iccid",
            Validator::Mac => "mac",
            Validator::Uuid => "uuid",
            Validator::AndroidId => "android_id",
            Validator::Oaid => "oaid",
            Validator::CnMobile => "cn_mobile",
            Validator::E164 => "e164",
            Validator::Email => "email",
            Validator::CnResidentId => "cn_resident_id",
            Validator::BankCard => "bank_card",
            Validator::Latitude => "latitude",
            Validator::Longitude => "longitude",
            Validator::LatLonPair => "lat_lon_pair",
            Validator::PackageName => "package_name",
        }
    }

    /// Looks a validator up by its exact (case-sensitive) name.
    pub fn from_name(name: &str) -> Option<Validator> {
        Validator::ALL.iter().copied().find(|v| v.name() == name)
    }

    /// `"luhn, imei, ..."`, for error messages.
    pub fn known_names() -> String {
        let names: Vec<&str> = Validator::ALL.iter().map(|v| v.name()).collect();
        names.join(", ")
    }

    /// Runs the validator.
    pub fn check(self, value: &str) -> bool {
        match self {
            Validator::Luhn => luhn(value),
            Validator::Imei => imei(value),
            Validator::Meid => meid(value),
            Validator::Imsi => imsi(value),
            Validator::Iccid => iccid(value),
            Validator::Mac => mac(value),
            Validator::Uuid => uuid(value),
            Validator::AndroidId => android_id(value),
            Validator::Oaid => oaid(value),
            Validator::CnMobile => cn_mobile(value),
            Validator::E164 => e164(value),
            Validator::Email => email(value),
            Validator::CnResidentId => cn_resident_id(value),
            Validator::BankCard => bank_card(value),
            Validator::Latitude => latitude(value),
            Validator::Longitude => longitude(value),
            Validator::LatLonPair => lat_lon_pair(value),
            Validator::PackageName => package_name(value),
        }
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn all_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True if every byte is the same (`"0000"`, `"aaaa"`): such values are
/// fillers, never real identifiers.
fn all_same(s: &str) -> bool {
    let mut bytes = s.bytes().map(|b| b.to_ascii_lowercase());
    match bytes.next() {
        Some(first) => bytes.all(|b| b == first),
        None => true,
    }
}

/// Luhn (mod 10) check over a string of ASCII digits, check digit last.
/// Needs at least two digits; anything else (signs, spaces) fails.
pub fn luhn(s: &str) -> bool {
    if s.len() < 2 || !all_digits(s) {
        return false;
    }
    let sum: u32 = s
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// GSMA reporting-body identifiers (the first two digits of every TAC).
/// Checking them rejects ~80% of random Luhn-valid 15-digit numbers.
const IMEI_REPORTING_BODIES: &[&str] = &[
    "01", "10", "30", "33", "35", "44", "45", "49", "50", "51", "52", "53", "54", "86", "91", "98",
    "99",
];

/// IMEI: exactly 15 digits, Luhn-valid, not one repeated digit, and the TAC
/// starts with a real GSMA reporting body (01, 35, 86, …).
pub fn imei(s: &str) -> bool {
    s.len() == 15
        && luhn(s)
        && !all_same(s)
        && IMEI_REPORTING_BODIES.contains(&s.get(..2).unwrap_or(""))
}

/// MEID in hex form: exactly 14 hex digits, not all equal, regional code
/// `A0`–`FF` (globally administered) or `99` (IMEI-harmonised). The RR check
/// keeps 14-digit `yyyyMMddHHmmss` timestamps out.
pub fn meid(s: &str) -> bool {
    if s.len() != 14 || !all_hex(s) || all_same(s) {
        return false;
    }
    let first = s.as_bytes()[0].to_ascii_lowercase();
    (b'a'..=b'f').contains(&first) || s.starts_with("99")
}

/// IMSI: exactly 15 digits, plausible MCC (200–799), not one repeated digit.
pub fn imsi(s: &str) -> bool {
    s.len() == 15 && all_digits(s) && !all_same(s) && (b'2'..=b'7').contains(&s.as_bytes()[0])
}

/// ICCID: 19 or 20 digits, telecom industry prefix `89`, Luhn-valid.
pub fn iccid(s: &str) -> bool {
    (s.len() == 19 || s.len() == 20) && s.starts_with("89") && luhn(s)
}

/// MAC address: `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` (one separator used
/// consistently) or 12 bare hex digits. Rejects all-zero, broadcast
/// (`ff:…`), the Android "no permission" value `02:00:00:00:00:00` and
/// addresses whose six octets are all equal.
pub fn mac(s: &str) -> bool {
    let octets: Vec<&str> = if s.len() == 12 {
        (0..6).filter_map(|i| s.get(i * 2..i * 2 + 2)).collect()
    } else if s.len() == 17 {
        let sep = s.as_bytes()[2];
        if sep != b':' && sep != b'-' {
            return false;
        }
        s.split(sep as char).collect()
    } else {
        return false;
    };
    if octets.len() != 6 || octets.iter().any(|o| o.len() != 2 || !all_hex(o)) {
        return false;
    }
    let bare: String = octets.concat().to_ascii_lowercase();
    bare != "020000000000"
        && !all_same(&bare)
        && !octets.windows(2).all(|w| w[0].eq_ignore_ascii_case(w[1]))
}

/// UUID in canonical 8-4-4-4-12 hex form (any case); not all zeros or one
/// repeated digit.
pub fn uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && all_hex(g))
        && !all_same(&groups.concat())
}

/// `Settings.Secure.ANDROID_ID`: exactly 16 hex digits, not one repeated
/// digit.
pub fn android_id(s: &str) -> bool {
    s.len() == 16 && all_hex(s) && !all_same(s)
}

/// OAID (MSA): vendors use a UUID (Huawei, Honor), 16 hex digits (Xiaomi)
/// or 64 hex digits (vivo, OPPO). Not all zeros or one repeated digit.
pub fn oaid(s: &str) -> bool {
    match s.len() {
        36 => uuid(s),
        16 | 64 => all_hex(s) && !all_same(s),
        _ => false,
    }
}

/// Mainland China mobile number: 11 digits `1[3-9]x…`, optionally prefixed
/// by `+86`, `0086` or `86`, with at most one space or dash after the
/// prefix.
pub fn cn_mobile(s: &str) -> bool {
    let rest = ["+86", "0086", "86"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .map(|r| r.strip_prefix([' ', '-']).unwrap_or(r));
    let number = match rest {
        Some(r) if r.len() == 11 => r,
        _ => s,
    };
    number.len() == 11
        && all_digits(number)
        && number.as_bytes()[0] == b'1'
        && (b'3'..=b'9').contains(&number.as_bytes()[1])
}

/// E.164 international number: `+`, a non-zero country code digit, 8–15
/// digits in total, not one repeated digit.
pub fn e164(s: &str) -> bool {
    match s.strip_prefix('+') {
        Some(d) => {
            (8..=15).contains(&d.len()) && all_digits(d) && !d.starts_with('0') && !all_same(d)
        }
        None => false,
    }
}

/// File extensions that end asset names like `icon@2x.png`, which share the
/// shape of an e-mail address.
const ASSET_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "svg", "bmp", "ico", "heic", "js", "css", "json", "html",
    "htm", "xml", "mp3", "mp4", "webm", "m4a", "ttf", "otf", "woff", "woff2", "so", "dex", "apk",
    "zip", "txt", "pdf", "gz", "jar", "dat", "bin", "lottie", "pag", "svga",
];

/// E-mail address, RFC-ish: local part 1–64 of `[A-Za-z0-9._%+-]` without
/// leading, trailing or doubled dots; `@` (or URL-encoded `%40`); a domain of
/// at least two labels (1–63 alphanumerics/dashes, no edge dashes) ending in
/// an alphabetic TLD. Rejects local parts of 16+ hex digits (URL user-info
/// keys), asset names (`icon@2x.png`: a `2x`-style label
/// or a file-extension TLD) and reserved domains (`example.com`, `.test`,
/// `.invalid`, `.localhost`, `.example`).
pub fn email(s: &str) -> bool {
    let decoded;
    let s = if s.contains("%40") {
        decoded = s.replacen("%40", "@", 1);
        decoded.as_str()
    } else {
        s
    };
    if s.len() > 254 {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    // A long all-hex "local part" is a key in a URL's user info (Sentry
    // DSNs: `https://<32 hex>@o1.ingest.sentry.io/2`), not a mailbox.
    let key_like = local.len() >= 16 && local.bytes().all(|b| b.is_ascii_hexdigit());
    let local_ok = !key_like
        && (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if !local_ok {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !labels.iter().all(label_ok) {
        return false;
    }
    let tld = labels[labels.len() - 1].to_ascii_lowercase();
    let is_scale =
        |l: &&str| l.len() >= 2 && l.ends_with(['x', 'X']) && all_digits(&l[..l.len() - 1]);
    let domain_lc = domain.to_ascii_lowercase();
    let reserved = ["example.com", "example.net", "example.org"].contains(&domain_lc.as_str())
        || ["example", "test", "invalid", "localhost"].contains(&tld.as_str());
    (2..=24).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
        && !ASSET_EXTENSIONS.contains(&tld.as_str())
        && !labels.iter().any(is_scale)
        && !reserved
}

/// First two digits of the administrative division code (GB/T 2260):
/// provinces, autonomous regions, municipalities, Taiwan, HK, Macau, and 91
/// (issued to residents abroad / special cases).
const CN_PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
];

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// A real calendar date `YYYYMMDD` with 1900 ≤ year ≤ 2099. (No clock is
/// consulted, so a birth date later this century still passes.)
fn valid_date(yyyymmdd: &str) -> bool {
    if yyyymmdd.len() != 8 || !all_digits(yyyymmdd) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| yyyymmdd[r].parse::<u32>().unwrap_or(0);
    let (y, m, d) = (num(0..4), num(4..6), num(6..8));
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2099).contains(&y) && (1..=days).contains(&d)
}

/// Chinese resident identity card number (GB 11643-1999): 18 characters —
/// 6-digit region code with a valid province prefix, a valid `YYYYMMDD`
/// birth date, a 3-digit sequence number, and the ISO 7064 MOD 11-2 check
/// character (`0`–`9` or `X`, either case).
pub fn cn_resident_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let province = (b[0] - b'0') * 10 + (b[1] - b'0');
    if !CN_PROVINCES.contains(&province) || !valid_date(&s[6..14]) {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize] == b[17].to_ascii_uppercase()
}

/// Payment card number: 13–19 digits, Luhn-valid, not one repeated digit,
/// and an issuer prefix that belongs to a real scheme with a length that
/// scheme issues: UnionPay `62`/`81` and other `6x` (16–19), Visa `4`
/// (13/16/19), Mastercard `51`–`55`/`2221`–`2720` (16), Amex `34`/`37` (15),
/// JCB `35` (16–19), Diners `30`/`36`/`38`/`39` (14–19), Maestro `50`/`56`–`58`
/// (16–19), legacy ICBC `9558` (19).
pub fn bank_card(s: &str) -> bool {
    let n = s.len();
    if !(13..=19).contains(&n) || !luhn(s) || all_same(s) {
        return false;
    }
    let p2: u32 = s[..2].parse().unwrap_or(0);
    let p4: u32 = s[..4].parse().unwrap_or(0);
    match p2 {
        40..=49 => [13, 16, 19].contains(&n),
        51..=55 => n == 16,
        22..=27 => (2221..=2720).contains(&p4) && n == 16,
        34 | 37 => n == 15,
        35 => (16..=19).contains(&n),
        30 | 36 | 38 | 39 => (14..=19).contains(&n),
        50 | 56..=58 | 60..=69 | 81 => (16..=19).contains(&n),
        95 => p4 == 9558 && n == 19,
        _ => false,
    }
}

/// Parses a coordinate written as plain decimal with at least 3 (at most 15)
/// fractional digits and 1–3 integer digits, optional leading `-`. Returns
/// `None` for anything else (exponents, `+`, `.5`, `39.9`).
fn coordinate(s: &str) -> Option<f64> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.')?;
    let shape_ok = (1..=3).contains(&int.len())
        && all_digits(int)
        && (3..=15).contains(&frac.len())
        && all_digits(frac);
    if !shape_ok {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Latitude: a decimal with ≥ 3 fractional digits in [-90, 90], not 0.
pub fn latitude(s: &str) -> bool {
    coordinate(s).is_some_and(|v| v != 0.0 && (-90.0..=90.0).contains(&v))
}

/// Longitude: a decimal with ≥ 3 fractional digits in [-180, 180], not 0.
pub fn longitude(s: &str) -> bool {
    coordinate(s).is_some_and(|v| v != 0.0 && (-180.0..=180.0).contains(&v))
}

/// Two coordinates separated by `,`, `;`, `|` or URL-encoded `%2C`
/// (optionally one space either side), in either order (`lat,lng` as in
/// most SDKs, `lng,lat` as in AMap/Baidu): one must be a latitude and the
/// other a longitude. Pairs where both are below 1 in magnitude are refused:
/// they are far likelier to be probabilities or ratios than a spot in the
/// Gulf of Guinea.
pub fn lat_lon_pair(s: &str) -> bool {
    let normalised = s.replace("%2C", ",").replace("%2c", ",");
    let Some((a, b)) = normalised.split_once([',', ';', '|']) else {
        return false;
    };
    let (a, b) = (a.trim_matches(' '), b.trim_matches(' '));
    let (Some(x), Some(y)) = (coordinate(a), coordinate(b)) else {
        return false;
    };
    let ordered = (latitude(a) && longitude(b)) || (longitude(a) && latitude(b));
    ordered && (x.abs() >= 1.0 || y.abs() >= 1.0)
}

/// Last segments that make a dotted name a host name or a file name rather
/// than an Android package (`cn.bing.com`, `me.png`).
const NOT_PACKAGE_ENDINGS: &[&str] = &[
    "com", "net", "org", "cn", "edu", "gov", "io", "info", "html", "htm", "js", "json", "png",
    "jpg", "jpeg", "gif", "webp", "css", "xml", "txt", "apk", "so", "jar", "dex", "java", "kt",
    "mp4", "mp3", "zip", "php", "jsp", "aspx",
];

/// Android package name: at least two dot-separated segments, each starting
/// with a letter and made of ASCII letters, digits and `_`; the first
/// segment lowercase (`com`, `cn`, `tv`…); at most 128 bytes; and not ending
/// like a host or file name (`.com`, `.png`). Later segments may contain
/// capitals (`com.eg.android.AlipayGphone`).
pub fn package_name(s: &str) -> bool {
    if s.len() > 128 {
        return false;
    }
    let segments: Vec<&str> = s.split('.').collect();
    let segment_ok = |seg: &&str| {
        seg.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let first_lower = segments[0]
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let last = segments[segments.len() - 1].to_ascii_lowercase();
    segments.len() >= 2
        && segments.iter().all(segment_ok)
        && first_lower
        && !NOT_PACKAGE_ENDINGS.contains(&last.as_str())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
