//! Tests of the expansions, and of profile loading (the profile's
//! validation is what guarantees the shapes the expansions rely on).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::detect::profile::{DeviceProfile, ProfileError};

const EXAMPLE: &str = include_str!("../../detectors/example-profile.toml");

fn profile(toml: &str) -> DeviceProfile {
    match DeviceProfile::from_toml(toml, "test.toml") {
        Ok(p) => p,
        Err(e) => panic!("profile should load: {e}"),
    }
}

/// `(encoding, text)` of every form of `id`.
fn forms(toml: &str, id: &str) -> Vec<(Encoding, String)> {
    expand(&profile(toml))
        .into_iter()
        .filter(|f| f.identifier == id)
        .map(|f| (f.encoding, String::from_utf8_lossy(&f.bytes).into_owned()))
        .collect()
}

#[track_caller]
fn has(forms: &[(Encoding, String)], encoding: Encoding, text: &str) {
    assert!(
        forms.iter().any(|(e, t)| *e == encoding && t == text),
        "missing {encoding:?} {text:?} in {forms:?}"
    );
}

const IMEI: &str = "imei = \"490154203237518\"";

#[test]
fn imei_plain_hex_and_base64() {
    let f = forms(IMEI, "imei");
    has(&f, Encoding::Plain, "490154203237518");
    // The hex of a digit string is digits: both cases coincide, and the
    // deduplication keeps the stronger label.
    has(&f, Encoding::Hex, "343930313534323033323337353138");
    assert!(!f.iter().any(|(e, _)| *e == Encoding::HexUpper));
    has(&f, Encoding::Base64, "NDkwMTU0MjAzMjM3NTE4");
    assert!(
        !f.iter()
            .any(|(e, _)| matches!(e, Encoding::Lower | Encoding::Upper | Encoding::Url))
    );
}

#[test]
fn imei_digests_match_known_answers() {
    // Known answers from `printf %s 490154203237518 | md5sum` (sha1sum,
    // sha256sum, and `openssl dgst -binary | base64` for the base64).
    let f = forms(IMEI, "imei");
    has(&f, Encoding::Md5, "0eaed834a1e6f4b2bf0c024e0013dea1");
    has(&f, Encoding::Md5Upper, "0EAED834A1E6F4B2BF0C024E0013DEA1");
    has(&f, Encoding::Md5Base64, "Dq7YNKHm9LK/DAJOABPeoQ");
    has(&f, Encoding::Md5Base64, "Dq7YNKHm9LK_DAJOABPeoQ");
    has(
        &f,
        Encoding::Sha1,
        "97a2105232ecc8756f03a029a839b97ded59207d",
    );
    has(
        &f,
        Encoding::Sha1Upper,
        "97A2105232ECC8756F03A029A839B97DED59207D",
    );
    has(&f, Encoding::Sha1Base64, "l6IQUjLsyHVvA6ApqDm5fe1ZIH0");
    has(
        &f,
        Encoding::Sha256,
        "1f0b62b5f05f305e9251c88be27c9e519449e8e34a00a59ec0a534d85ecfaf08",
    );
    has(
        &f,
        Encoding::Sha256Upper,
        "1F0B62B5F05F305E9251C88BE27C9E519449E8E34A00A59EC0A534D85ECFAF08",
    );
    has(
        &f,
        Encoding::Sha256Base64,
        "HwtitfBfMF6SUciL4nyeUZRJ6ONKAKWewKU02F7Prwg",
    );
}

#[test]
fn inner_base64_finds_the_imei_at_every_alignment() {
    let f = forms(IMEI, "imei");
    let base64_forms: Vec<&String> = f
        .iter()
        .filter(|(e, _)| matches!(e, Encoding::Base64 | Encoding::Base64Inner))
        .map(|(_, t)| t)
        .collect();
    for prefix in 0..=2 {
        let blob = STANDARD.encode(format!("{}imei=490154203237518&a=1", "x".repeat(prefix)));
        assert!(
            base64_forms.iter().any(|core| blob.contains(core.as_str())),
            "IMEI not found in base64 blob with {prefix} prefix bytes: {blob}"
        );
    }
}

#[test]
fn inner_base64_cores_drop_neighbour_dependent_characters() {
    // 15 bytes at alignment 0 encode to exactly 20 characters; behind 1 or
    // 2 filler bytes the first 2 or 3 characters carry filler bits.
    let cores = inner_base64(&STANDARD_NO_PAD, b"490154203237518");
    assert_eq!(cores[0], "NDkwMTU0MjAzMjM3NTE4");
    assert_eq!(cores.len(), 3);
    for core in &cores[1..] {
        assert!((19..=20).contains(&core.len()), "{core}");
    }
    // 5 bytes give cores of at most 6 characters: too short, skipped.
    assert!(inner_base64(&STANDARD_NO_PAD, b"abcde").is_empty());
}

#[test]
fn base64_standard_and_url_safe_differ_where_the_alphabet_does() {
    let f = forms("[custom]\nnote = \"hello>>>?world\"", "custom:note");
    has(&f, Encoding::Base64, "aGVsbG8+Pj4/d29ybGQ");
    has(&f, Encoding::Base64Url, "aGVsbG8-Pj4_d29ybGQ");
}

#[test]
fn mac_separators_and_cases() {
    let f = forms("mac = \"02-1A-11-F0-3C-77\"", "mac");
    has(&f, Encoding::Plain, "02:1a:11:f0:3c:77");
    has(&f, Encoding::Upper, "02:1A:11:F0:3C:77");
    has(&f, Encoding::Dashes, "02-1a-11-f0-3c-77");
    has(&f, Encoding::DashesUpper, "02-1A-11-F0-3C-77");
    has(&f, Encoding::NoSeparators, "021a11f03c77");
    has(&f, Encoding::NoSeparatorsUpper, "021A11F03C77");
    has(&f, Encoding::Url, "02%3A1a%3A11%3Af0%3A3c%3A77");
    has(&f, Encoding::Url, "02%3a1a%3a11%3af0%3a3c%3a77");
    has(&f, Encoding::Md5, "4a75170c3f68063ee992ac4abacb724c");
    has(&f, Encoding::Md5, "7cd0898b4de3a2ae314cabb6e3f9935d");
    has(
        &f,
        Encoding::Sha1,
        "c69b752882d1defd9a01e76266fc251ffc4b34d4",
    );
}

#[test]
fn chinese_mobile_phone_forms() {
    let f = forms("phone = \"+86 138 0013 8000\"", "phone");
    has(&f, Encoding::Plain, "+8613800138000");
    has(&f, Encoding::National, "13800138000");
    has(&f, Encoding::CountryCode, "8613800138000");
    has(&f, Encoding::IntlPrefix, "008613800138000");
    has(&f, Encoding::Spaced, "+86 13800138000");
    has(&f, Encoding::Spaced, "138 0013 8000");
    has(&f, Encoding::Spaced, "+86 138 0013 8000");
    has(&f, Encoding::Dashes, "138-0013-8000");
    has(&f, Encoding::Url, "%2B8613800138000");
    has(&f, Encoding::Md5, "7945bd83237335e5376ff44d62e4f0ae");
    has(&f, Encoding::Md5, "709559e9597fadc042d59c664fe27e7e");
    has(
        &f,
        Encoding::Sha256,
        "bf08aacce7f9b2452863cf99373043c3333f0e3127f1f787c4abb46ab6cf2b83",
    );
    // A bare Chinese mobile number is taken to be Chinese.
    assert_eq!(forms("phone = \"13800138000\"", "phone"), f);
}

#[test]
fn other_countries_phone_forms() {
    let f = forms("phone = \"0044 7700 900123\"", "phone");
    has(&f, Encoding::Plain, "+447700900123");
    has(&f, Encoding::National, "7700900123");
    has(&f, Encoding::National, "07700900123");
    has(&f, Encoding::CountryCode, "447700900123");
    has(&f, Encoding::IntlPrefix, "00447700900123");
    let f = forms("phone = \"5551234567\"", "phone");
    assert_eq!(f[0], (Encoding::Plain, "5551234567".to_string()));
}

#[test]
fn email_url_encoded_and_cased() {
    let f = forms("email = \"Tester@Example.com\"", "email");
    has(&f, Encoding::Plain, "Tester@Example.com");
    has(&f, Encoding::Lower, "tester@example.com");
    has(&f, Encoding::Upper, "TESTER@EXAMPLE.COM");
    has(&f, Encoding::Url, "Tester%40Example.com");
    has(&f, Encoding::Url, "tester%40example.com");
    has(&f, Encoding::Md5, "f40aca99b2ca1491dbf6ec55597c4397");
}

#[test]
fn uuid_without_dashes_and_digests_of_both_cases() {
    let f = forms("idfa = \"6D92078A-8246-4BA4-AE5B-76104861E7DC\"", "idfa");
    has(&f, Encoding::Plain, "6D92078A-8246-4BA4-AE5B-76104861E7DC");
    has(&f, Encoding::Lower, "6d92078a-8246-4ba4-ae5b-76104861e7dc");
    has(
        &f,
        Encoding::NoSeparators,
        "6d92078a82464ba4ae5b76104861e7dc",
    );
    has(
        &f,
        Encoding::NoSeparatorsUpper,
        "6D92078A82464BA4AE5B76104861E7DC",
    );
    has(&f, Encoding::Md5, "f2d1311ca5c1ecb214c19a26e9ddbad0");
    has(&f, Encoding::Md5, "0c2074fb86930fc4a2a7bb791240a7d3");
}

#[test]
fn custom_values_url_form_and_json_escapes() {
    let f = forms(
        "[custom]\nreal_name = \"Wang Xiaoming\"\ncn = \"王小明\"",
        "custom:real_name",
    );
    has(&f, Encoding::Url, "Wang%20Xiaoming");
    has(&f, Encoding::Url, "Wang+Xiaoming");
    has(&f, Encoding::Md5, "68702b2bb91ab45227eb256566e82096");
    let f = forms("[custom]\ncn = \"王小明\"", "custom:cn");
    has(&f, Encoding::Plain, "王小明");
    has(&f, Encoding::JsonEscape, "\\u738b\\u5c0f\\u660e");
    has(&f, Encoding::JsonEscape, "\\u738B\\u5C0F\\u660E");
    has(&f, Encoding::Url, "%E7%8E%8B%E5%B0%8F%E6%98%8E");
}

#[test]
fn location_truncated_and_rounded() {
    let f = forms(
        "location = { lat = 39.9088, lon = 116.3975 }",
        "location:lat",
    );
    has(&f, Encoding::Decimal, "39.908");
    has(&f, Encoding::Decimal, "39.909");
    let f = forms(
        "location = { lat = 39.9088, lon = 116.3975 }",
        "location:lon",
    );
    has(&f, Encoding::Decimal, "116.397");
    has(&f, Encoding::Decimal, "116.398");
    assert_eq!(
        three_decimals(-33.8688),
        ("-33.868".into(), "-33.869".into())
    );
    assert_eq!(three_decimals(39.9), ("39.900".into(), "39.900".into()));
    assert_eq!(three_decimals(12.9996), ("12.999".into(), "13.000".into()));
    assert_eq!(three_decimals(151.0), ("151.000".into(), "151.000".into()));
}

#[test]
fn installed_apps_as_is() {
    let f = forms(
        "installed_apps = [\"com.tencent.mm\", \"com.sina.weibo\"]",
        "installed_apps",
    );
    assert_eq!(
        f,
        vec![
            (Encoding::Plain, "com.tencent.mm".to_string()),
            (Encoding::Plain, "com.sina.weibo".to_string())
        ]
    );
}

#[test]
fn forms_are_unique_per_identifier_and_never_empty() {
    let all = expand(&profile(EXAMPLE));
    let mut seen = std::collections::HashSet::new();
    for form in &all {
        assert!(!form.bytes.is_empty());
        assert!(
            seen.insert((form.identifier.clone(), form.bytes.clone())),
            "{form:?}"
        );
    }
    assert!(expand(&DeviceProfile::default()).is_empty());
}

#[test]
fn labels_are_the_serde_names_and_strengths_rank_plain_first() {
    for e in Encoding::ALL {
        let json = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", e.label()));
    }
    let strengths: std::collections::BTreeSet<u8> =
        Encoding::ALL.iter().map(|e| e.strength()).collect();
    assert_eq!(strengths.len(), Encoding::ALL.len());
    assert!(Encoding::Plain.strength() > Encoding::Upper.strength());
    assert!(Encoding::Url.strength() > Encoding::Hex.strength());
    assert!(Encoding::Hex.strength() > Encoding::Base64.strength());
    assert!(Encoding::Base64.strength() > Encoding::Base64Inner.strength());
    assert!(Encoding::Base64Inner.strength() > Encoding::Md5.strength());
}

#[test]
fn form_debug_hides_the_bytes() {
    let all = expand(&profile(IMEI));
    let debug = format!("{:?}", all[0]);
    assert!(!debug.contains("490154"), "{debug}");
}

// Profile loading.

fn error(toml: &str) -> String {
    match DeviceProfile::from_toml(toml, "device.toml") {
        Ok(_) => panic!("should fail: {toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn example_profile_loads_every_key() {
    let p = profile(EXAMPLE);
    let ids: Vec<&str> = p.values().map(|(k, _)| k).collect();
    assert_eq!(ids.len(), 18, "{ids:?}");
    assert!(ids.contains(&"custom:account") && ids.contains(&"custom:real_name"));
    assert_eq!(p.location(), Some((39.9088, 116.3975)));
    assert_eq!(p.installed_apps().len(), 3);
    assert_eq!(
        (p.model(), p.app()),
        (Some("Pixel 7"), Some("com.example.app"))
    );
    assert!(!p.is_empty());
    let debug = format!("{p:?}");
    assert!(
        !debug.contains("490154") && !debug.contains("39.9"),
        "{debug}"
    );
}

#[test]
fn values_are_normalised() {
    let p = profile(
        "mac = \"021A11F03C77\"\nphone = \"+86 138-0013-8000\"\nssid = \"\\\"HomeNet\\\"\"",
    );
    let values: Vec<(&str, &str)> = p.values().map(|(k, v)| (k, v.expose())).collect();
    assert_eq!(
        values,
        [
            ("mac", "02:1a:11:f0:3c:77"),
            ("ssid", "HomeNet"),
            ("phone", "+8613800138000")
        ]
    );
}

#[test]
fn informational_keys_only_is_empty() {
    assert!(profile("model = \"Pixel 7\"\napp = \"com.example.app\"").is_empty());
    assert!(profile("").is_empty());
}

#[test]
fn unknown_keys_suggest_the_closest_name() {
    assert_eq!(
        error("imie = \"1\""),
        "device.toml: unknown key `imie` (did you mean `imei`?)"
    );
    assert_eq!(
        error("andriod_id = \"1\""),
        "device.toml: unknown key `andriod_id` (did you mean `android_id`?)"
    );
    assert_eq!(
        error("location = { lat = 1.5, lng = 2.5 }"),
        "device.toml: unknown key `location.lng` (did you mean `location.lon`?)"
    );
    assert_eq!(
        error("favourite_colour = \"1\""),
        "device.toml: unknown key `favourite_colour`"
    );
}

#[test]
fn imei_length_and_luhn() {
    assert_eq!(
        error("imei = \"49015420323751\""),
        "device.toml: key `imei`: expected 15 digits (14 + Luhn check digit), got 14 characters"
    );
    let luhn = error("imei = \"490154203237519\"");
    assert!(
        luhn.starts_with("device.toml: key `imei`: expected 15 digits")
            && luhn.contains("check digit"),
        "{luhn}"
    );
    assert!(
        !luhn.contains("490154"),
        "errors never repeat values: {luhn}"
    );
    assert!(error("imei = \"49015420323751x\"").contains("position 15"));
    assert!(error("imei = 490154203237518").contains("expected a quoted string"));
}

#[test]
fn placeholders_are_refused() {
    for (toml, key) in [
        ("mac = \"02:00:00:00:00:00\"", "mac"),
        ("imei = \"000000000000000\"", "imei"),
        ("adid = \"00000000-0000-0000-0000-000000000000\"", "adid"),
        ("android_id = \"9774d56d682e549c\"", "android_id"),
        ("serial = \"unknown\"", "serial"),
        ("ssid = \"<unknown ssid>\"", "ssid"),
    ] {
        let e = error(toml);
        assert!(e.starts_with(&format!("device.toml: key `{key}`: ")), "{e}");
        assert!(e.contains("not the"), "{e}");
    }
    assert!(error("mac = \"02:00:00:00:00:00\"").contains("Android's placeholder"));
}

#[test]
fn malformed_values_name_key_and_expectation() {
    for (toml, key, expected) in [
        ("mac = \"02:1a:11:f0:3c\"", "mac", "6 hex octets"),
        ("bssid = \"02:1a-11:f0:3c:77\"", "bssid", "6 hex octets"),
        ("meid = \"A00000491234\"", "meid", "14 hex digits"),
        ("imsi = \"46000123456789\"", "imsi", "15 digits"),
        (
            "iccid = \"19860012345678901238\"",
            "iccid",
            "starting with 89",
        ),
        ("iccid = \"89860012345678901234\"", "iccid", "Luhn"),
        (
            "android_id = \"9774d56d682e549\"",
            "android_id",
            "16 hex digits",
        ),
        ("adid = \"38400000-8cf0-11bd-b23e\"", "adid", "UUID"),
        ("oaid = \"abc\"", "oaid", "16 to 64 hex digits"),
        ("phone = \"+86 (138) 0013\"", "phone", "phone number"),
        ("phone = \"123\"", "phone", "7 to 15 digits"),
        ("email = \"tester.example.com\"", "email", "one `@`"),
        ("email = \"tester@localhost\"", "email", "dot"),
        ("imei = \"\"", "imei", "non-empty"),
        (
            "location = { lat = 91.0, lon = 0.5 }",
            "location.lat",
            "[-90, 90]",
        ),
        ("location = { lat = 1.0 }", "location.lon", "required"),
        (
            "installed_apps = [\"com.tencent.mm\", \"not a package\"]",
            "installed_apps[1]",
            "Java package",
        ),
        (
            "[custom]\npin = \"123\"",
            "custom.pin",
            "at least 4 bytes (shorter values would match",
        ),
        ("custom = \"x\"", "custom", "a table"),
    ] {
        let e = error(toml);
        assert!(
            e.starts_with(&format!("device.toml: key `{key}`: expected ")),
            "{toml}: {e}"
        );
        assert!(e.contains(expected), "{toml}: {e}");
    }
    assert!(error("location = { lat = 0.0, lon = 0.0 }").contains("placeholder"));
}

#[test]
fn toml_syntax_errors_keep_the_position() {
    let e = DeviceProfile::from_toml("imei = \"490154203237518\"\nmac = \n", "device.toml");
    match e {
        Err(ProfileError::Syntax { line, column, .. }) => assert_eq!((line, column), (2, 7)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(
        error("imei = \"490154203237518\"\nmac = \n")
            .starts_with("device.toml:2:7: TOML syntax error: ")
    );
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("device.toml");
    let missing = DeviceProfile::load(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        missing.contains("device.toml: cannot read the device profile"),
        "{missing}"
    );
    std::fs::write(&path, "imie = \"1\"").unwrap_or_else(|e| panic!("write: {e}"));
    let unknown = DeviceProfile::load(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        unknown.contains("device.toml: unknown key `imie` (did you mean `imei`?)"),
        "{unknown}"
    );
}
