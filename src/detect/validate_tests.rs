//! Table tests for every built-in validator: real-shaped valid values and
//! the tricky near-misses detectors must not fire on.

use super::*;

/// Runs `check` over `(value, expected)` rows and reports every wrong row at
/// once, so a table failure shows the whole picture.
fn table(name: &str, check: fn(&str) -> bool, rows: &[(&str, bool)]) {
    let wrong: Vec<String> = rows
        .iter()
        .filter(|(v, want)| check(v) != *want)
        .map(|(v, want)| format!("{name}({v:?}) should be {want}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn luhn_table() {
    table(
        "luhn",
        luhn,
        &[
            ("79927398713", true),
            ("490154203237518", true),
            ("4111111111111111", true),
            ("00", true),
            ("79927398710", false),
            ("490154203237519", false),
            ("4", false),
            ("", false),
            ("7992 7398 713", false),
            ("-79927398713", false),
            ("७९९", false),
        ],
    );
}

#[test]
fn imei_table() {
    table(
        "imei",
        imei,
        &[
            ("490154203237518", true),
            ("356938035643809", true),
            ("352099001761481", true),
            ("861234567890127", true),
            // wrong check digit
            ("490154203237519", false),
            ("356938035643808", false),
            // placeholders / fillers
            ("000000000000000", false),
            ("111111111111111", false),
            // Luhn-valid but no GSMA reporting body starts with 46 / 17
            ("460001234567895", false),
            ("170000000000008", false),
            // wrong lengths: 14 digits, 16 digits, 13-digit ms timestamp
            ("49015420323751", false),
            ("4901542032375180", false),
            ("1700000000000", false),
            ("49015420323751a", false),
            ("", false),
        ],
    );
}

#[test]
fn meid_table() {
    table(
        "meid",
        meid,
        &[
            ("A0000012345678", true),
            ("a1000034b7c9d2", true),
            ("99000123456789", true),
            ("00000000000000", false),
            ("AAAAAAAAAAAAAA", false),
            // yyyyMMddHHmmss timestamp: 14 digits, but RR 20 is not a MEID
            ("20231128123456", false),
            ("A000001234567", false),
            ("A00000123456789", false),
            ("G0000012345678", false),
        ],
    );
}

#[test]
fn imsi_table() {
    table(
        "imsi",
        imsi,
        &[
            ("460001234567890", true),
            ("310260000000001", true),
            ("234150999999999", true),
            ("100001234567890", false),
            ("800001234567890", false),
            ("555555555555555", false),
            ("46000123456789", false),
            ("4600012345678901", false),
            ("46000123456789x", false),
        ],
    );
}

#[test]
fn iccid_table() {
    table(
        "iccid",
        iccid,
        &[
            ("89860312345678901235", true),
            ("8986001234567890120", true),
            ("89860312345678901234", false),
            ("8986001234567890121", false),
            // right length and Luhn, but not the 89 telecom prefix
            ("6222021234567890128", false),
            ("898600123456789012", false),
            ("898603123456789012350", false),
        ],
    );
}

#[test]
fn mac_table() {
    table(
        "mac",
        mac,
        &[
            ("3c:5a:b4:01:02:03", true),
            ("3C-5A-B4-01-02-03", true),
            ("3c5ab4010203", true),
            ("3c:5a:b4-01:02:03", false),
            ("02:00:00:00:00:00", false),
            ("00:00:00:00:00:00", false),
            ("ff:ff:ff:ff:ff:ff", false),
            ("FF-FF-FF-FF-FF-FF", false),
            ("12:12:12:12:12:12", false),
            ("3c:5a:b4:01:02", false),
            ("3c:5a:b4:01:02:0g", false),
            ("3c.5a.b4.01.02.03", false),
            ("3c5ab401020", false),
        ],
    );
}

#[test]
fn uuid_and_ad_id_tables() {
    table(
        "uuid",
        uuid,
        &[
            ("38400000-8cf0-11bd-b23e-10b96e40000d", true),
            ("6D92078A-8246-4BA4-AE5B-76104861E7DC", true),
            ("00000000-0000-0000-0000-000000000000", false),
            ("ffffffff-ffff-ffff-ffff-ffffffffffff", false),
            ("38400000-8cf0-11bd-b23e-10b96e40000", false),
            ("384000008cf011bdb23e10b96e40000d", false),
            ("38400000-8cf0-11bd-b23e-10b96e40000z", false),
        ],
    );
    table(
        "android_id",
        android_id,
        &[
            ("9774d56d682e549d", true),
            ("A1B2C3D4E5F60718", true),
            ("0000000000000000", false),
            ("9774d56d682e549", false),
            ("9774d56d682e549cd", false),
            ("9774d56d682e549g", false),
        ],
    );
    table(
        "oaid",
        oaid,
        &[
            ("6d92078a-8246-4ba4-ae5b-76104861e7dc", true),
            ("a1b2c3d4e5f60718", true),
            (
                "3f8a61b0c7d3e2f1a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6",
                true,
            ),
            ("00000000-0000-0000-0000-000000000000", false),
            ("0000000000000000", false),
            // 32 hex (an MD5) is not an OAID shape
            ("9e107d9d372bb6826bd81d3542a419d6", false),
        ],
    );
}

#[test]
fn phone_tables() {
    table(
        "cn_mobile",
        cn_mobile,
        &[
            ("13800138000", true),
            ("19912345678", true),
            ("+8613800138000", true),
            ("008613800138000", true),
            ("8613800138000", true),
            ("+86 13800138000", true),
            ("+86-13800138000", true),
            ("12800138000", false),
            ("23800138000", false),
            ("1380013800", false),
            ("138001380001", false),
            // ms / s epoch timestamps
            ("1700000000000", false),
            ("1700000000", false),
            ("+8523800138000", false),
            ("+86  13800138000", false),
        ],
    );
    table(
        "e164",
        e164,
        &[
            ("+14155552671", true),
            ("+8613800138000", true),
            ("+442071838750", true),
            ("14155552671", false),
            ("+0155552671", false),
            ("+1234567", false),
            ("+1234567890123456", false),
            ("+11111111111", false),
            ("+1415555267a", false),
        ],
    );
}

#[test]
fn email_table() {
    table(
        "email",
        email,
        &[
            ("zhang.san@qq.com", true),
            ("li_si+promo@163.com", true),
            ("a@b.co", true),
            ("user%40gmail.com", true),
            ("first.last@mail.example-corp.cn", true),
            // asset names and versions
            ("icon@2x.png", false),
            ("logo@3x.webp", false),
            ("bg@1.5x.jpg", false),
            ("button@2x.ios.json", false),
            ("lodash@4.17.21", false),
            // Sentry DSN public key in URL user info
            (
                "9e107d9d372bb6826bd81d3542a419d6@o12345.ingest.sentry.io",
                false,
            ),
            // reserved domains used in docs and tests
            ("user@example.com", false),
            ("someone@test", false),
            ("x@foo.invalid", false),
            // malformed
            ("@qq.com", false),
            ("zhang@", false),
            ("zhang@qq", false),
            (".zhang@qq.com", false),
            ("zhang..san@qq.com", false),
            ("zhang@-qq.com", false),
            ("zhang@qq..com", false),
            ("zhang@@qq.com", false),
        ],
    );
}

#[test]
fn cn_resident_id_table() {
    table(
        "cn_resident_id",
        cn_resident_id,
        &[
            ("11010519491231002X", true),
            ("11010519491231002x", true),
            ("440306199003071232", true),
            // 29 February of a leap year
            ("320102200002298883", true),
            // wrong check character
            ("110105194912310021", false),
            ("440306199003071233", false),
            // 1900 was not a leap year
            ("320102190002298887", false),
            // order number: province 20 does not exist, month 28 neither
            ("202311281234567890", false),
            // invalid month / day
            ("440306199013071232", false),
            ("440306199002301232", false),
            ("44030619900307123", false),
            ("4403061990030712321", false),
            ("44030619900307123Y", false),
        ],
    );
}

#[test]
fn bank_card_table() {
    table(
        "bank_card",
        bank_card,
        &[
            ("6222021234567890128", true),
            ("6228480012345671", true),
            ("4111111111111111", true),
            ("5500000000000004", true),
            ("378282246310005", true),
            ("6222021234567890129", false),
            // Luhn-valid but 1x / 7x / 89 are no card scheme
            ("1700000000008", false),
            ("8986001234567890120", false),
            // Amex prefix with a Visa length
            ("3782822463100005", false),
            ("0000000000000000", false),
            ("411111111111", false),
            ("41111111111111111111", false),
            // order number
            ("202311281234567890", false),
        ],
    );
}

#[test]
fn coordinate_tables() {
    table(
        "latitude",
        latitude,
        &[
            ("39.9088", true),
            ("-33.868", true),
            ("90.000", true),
            ("39.9", false),
            ("39.90", false),
            ("90.001", false),
            ("0.000", false),
            ("-0.0000", false),
            ("1e1.000", false),
            ("+39.908", false),
            (".908", false),
        ],
    );
    table(
        "longitude",
        longitude,
        &[
            ("116.3975", true),
            ("-122.419", true),
            ("180.000", true),
            ("180.001", false),
            ("1161.397", false),
            ("116.39", false),
        ],
    );
    table(
        "lat_lon_pair",
        lat_lon_pair,
        &[
            ("39.9088,116.3975", true),
            ("116.3975,39.9088", true),
            ("39.9088, 116.3975", true),
            ("-33.8688|151.2093", true),
            ("39.9088%2C116.3975", true),
            ("0.3123,32.5811", true),
            ("116.3975,139.9088", false),
            ("0.123,0.456", false),
            ("39.9088,116.39", false),
            ("0.000,0.000", false),
            ("39.9088116.3975", false),
        ],
    );
}

#[test]
fn package_name_table() {
    table(
        "package_name",
        package_name,
        &[
            ("com.tencent.mm", true),
            ("com.ss.android.ugc.aweme", true),
            ("com.eg.android.AlipayGphone", true),
            ("tv.danmaku.bili", true),
            ("com.UCMobile", true),
            ("cn.wps.moffice_eng", true),
            ("cn.bing.com", false),
            ("me.png", false),
            ("Com.tencent.mm", false),
            ("com", false),
            ("com..mm", false),
            ("com.tencent.", false),
            ("com.1tencent.mm", false),
            ("com.tencent-mm", false),
        ],
    );
}

#[test]
fn names_round_trip_and_are_listed() {
    for v in Validator::ALL {
        assert_eq!(Validator::from_name(v.name()), Some(*v));
        assert!(Validator::known_names().contains(v.name()));
    }
    assert_eq!(Validator::from_name("lunh"), None);
    assert_eq!(Validator::from_name("IMEI"), None);
}

#[test]
fn validators_never_panic_on_odd_input() {
    let odd = [
        "",
        "\u{0}",
        "é",
        "٣٣٣",
        "+",
        "-",
        ".",
        "@",
        "%40",
        "--",
        "::",
        "a.b.",
        "9999999999999999999999",
        "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
        "18位身份证号码是这样的吗吗吗吗",
    ];
    for v in Validator::ALL {
        for s in odd {
            let _ = v.check(s);
        }
    }
}
