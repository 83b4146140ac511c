//! Pattern scanner tests: recall on realistic traffic, precision on the
//! look-alikes (timestamps, order numbers, digests, asset names), and
//! chunking independence.

use std::sync::LazyLock;

use proptest::prelude::*;

use super::*;

pub(super) static SCANNER: LazyLock<PatternScanner> =
    LazyLock::new(|| PatternScanner::new(&RuleSet::embedded()));

pub(super) type Hit = (String, String, u64, u64);

fn run(chunks: &[&[u8]]) -> Vec<Hit> {
    run_with(&SCANNER, chunks)
}

/// What `scanner` reports for the message fed as `chunks`.
pub(super) fn run_with(scanner: &PatternScanner, chunks: &[&[u8]]) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut stream = scanner.stream();
    let mut push = |m: PatternMatch| {
        hits.push((m.identifier, m.value.expose().to_string(), m.start, m.end));
    };
    for c in chunks {
        stream.feed(c, &mut push);
    }
    stream.finish(&mut push);
    hits
}

fn whole(msg: &[u8]) -> Vec<Hit> {
    run(&[msg])
}

fn ids(msg: &str) -> Vec<String> {
    whole(msg.as_bytes()).into_iter().map(|h| h.0).collect()
}

/// Asserts that every two-chunk split and 1-byte chunks give exactly the
/// whole-message result (same matches, same offsets, none twice).
fn assert_split_independent(msg: &[u8]) -> Vec<Hit> {
    let want = whole(msg);
    for k in 0..=msg.len() {
        assert_eq!(run(&[&msg[..k], &msg[k..]]), want, "split at {k}");
    }
    let bytes: Vec<&[u8]> = msg.chunks(1).collect();
    assert_eq!(run(&bytes), want, "1-byte chunks");
    want
}

fn hit(id: &str, msg: &str, value: &str) -> Hit {
    let start = msg.find(value).expect("value in message") as u64;
    (id.into(), value.into(), start, start + value.len() as u64)
}

#[test]
fn finds_identifiers_in_realistic_traffic() {
    let cases: &[(&str, &str, &str)] = &[
        ("imei", r#"{"d":"490154203237518"}"#, "490154203237518"),
        ("imei", "dev=356938035643809&os=android", "356938035643809"),
        ("imei", "imei490154203237518x", "490154203237518"),
        ("iccid", "sim:89860312345678901235;", "89860312345678901235"),
        (
            "imei",
            "q=%7B%22imei%22%3A%22490154203237518%22%7D",
            "490154203237518",
        ),
        ("imsi", "s=460001234567890", "460001234567890"),
        ("imsi", r#""imsi":"310260000000001""#, "310260000000001"),
        ("meid", "m=A0000012345678", "A0000012345678"),
        (
            "cn_resident_id",
            "sfz 11010519491231002X ok",
            "11010519491231002X",
        ),
        ("phone", "u=13800138000&", "13800138000"),
        ("phone", "to:+8613800138000", "+8613800138000"),
        ("phone", r#"{"phone":"+14155552671"}"#, "+14155552671"),
        ("email", "contact zhang.san@qq.com now", "zhang.san@qq.com"),
        ("email", "e=zhang%40qq.com&", "zhang%40qq.com"),
        (
            "email",
            "u=https://a.cn/u/zhang.san@qq.com/a@2x.png",
            "zhang.san@qq.com",
        ),
        ("mac", "wlan 3c:5a:b4:01:02:03 up", "3c:5a:b4:01:02:03"),
        ("mac", "mac=3c5ab4010203&", "3c5ab4010203"),
        (
            "bssid",
            r#"{"bssid":"3c:5a:b4:01:02:03"}"#,
            "3c:5a:b4:01:02:03",
        ),
        ("bt_mac", "X-BT-Mac: 3c:5a:b4:01:02:03", "3c:5a:b4:01:02:03"),
        (
            "adid",
            r#"{"gaid":"38400000-8cf0-11bd-b23e-10b96e40000d"}"#,
            "38400000-8cf0-11bd-b23e-10b96e40000d",
        ),
        (
            "idfa",
            "idfa=6D92078A-8246-4BA4-AE5B-76104861E7DC",
            "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        ),
        (
            "oaid",
            r#"\"oaid\":\"3f8a61b0c7d3e2f1a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6\""#,
            "3f8a61b0c7d3e2f1a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6",
        ),
        (
            "android_id",
            "<android_id>9774d56d682e549d</android_id>",
            "9774d56d682e549d",
        ),
        (
            "adid",
            "d=%7B%22gaid%22%3A%2238400000-8cf0-11bd-b23e-10b96e40000d%22%7D",
            "38400000-8cf0-11bd-b23e-10b96e40000d",
        ),
        (
            "bank_card",
            r#"{"card_no": "6222021234567890128"}"#,
            "6222021234567890128",
        ),
        ("location", "loc=39.9088,116.3975&t=1", "39.9088,116.3975"),
        (
            "location",
            r#"{"center":"116.3975%2C39.9088"}"#,
            "116.3975%2C39.9088",
        ),
    ];
    for (id, msg, value) in cases {
        assert_eq!(whole(msg.as_bytes()), vec![hit(id, msg, value)], "{msg}");
    }
}

#[test]
fn keyed_coordinates_need_both_halves() {
    let msg = r#"{"lat":39.9088,"accuracy":12.5,"lng":116.3975}"#;
    assert_eq!(
        whole(msg.as_bytes()),
        vec![
            hit("location", msg, "39.9088"),
            hit("location", msg, "116.3975")
        ]
    );
    assert!(whole(br#"{"lat":39.9088,"alt":116.3975}"#).is_empty());
    assert!(whole(br#"{"lng":116.3975}"#).is_empty());
    assert_split_independent(msg.as_bytes());
}

#[test]
fn three_distinct_packages_make_an_app_list() {
    let msg = r#"{"l":["com.tencent.mm","com.eg.android.AlipayGphone","tv.danmaku.bili","com.tencent.mm"]}"#;
    let got = assert_split_independent(msg.as_bytes());
    let start = msg.find("com.tencent.mm").unwrap() as u64;
    let end = (msg.find("tv.danmaku.bili").unwrap() + "tv.danmaku.bili".len()) as u64;
    assert_eq!(
        got,
        vec![(
            "installed_apps".into(),
            "com.tencent.mm,com.eg.android.AlipayGphone,tv.danmaku.bili".into(),
            start,
            end
        )]
    );
    assert!(whole(br#"["com.tencent.mm","tv.danmaku.bili"]"#).is_empty());
    // Lists of objects repeat one key; maps of package to version have none.
    let objects = r#"[{"pkg":"com.a.b","v":1},{"pkg":"com.c.d","v":2},{"pkg":"com.e.f"}]"#;
    assert_eq!(ids(objects), ["installed_apps"]);
    assert_eq!(
        ids(r#"{"com.a.b":"1.0","com.c.d":"2.1","com.e.f":"3"}"#),
        ["installed_apps"]
    );
    assert_eq!(ids("apps=com.a.b,com.c.d,com.e.f"), ["installed_apps"]);
}

#[test]
fn look_alikes_do_not_fire() {
    let quiet = [
        // timestamps: ms, s, µs, yyyyMMddHHmmss
        r#"{"ts":1700000000000,"t":1700000000,"us":1700000000000000,"d":20231128123456}"#,
        // order numbers, trade numbers, an IMEI-valid number under a deny key
        "order_id=202311281234567890&trade_no=4200001234202311281234567890",
        r#"{"orderId":"490154203237518","trace_id":"356938035643809"}"#,
        // IMEI-valid 15 digits inside longer digit runs
        "n=4901542032375180 m=14901542032375181",
        // digests and trace ids
        "md5=9e107d9d372bb6826bd81d3542a419d6",
        "sha1 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
        "sha256=d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
        "h=490154203237518a2fd4e1c67a2d28fced849ee1bb7",
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        // UUIDs and 16-hex ids without an ad-id key
        r#"{"request_id":"38400000-8cf0-11bd-b23e-10b96e40000d","x":"9774d56d682e549d"}"#,
        "session=6D92078A-8246-4BA4-AE5B-76104861E7DC",
        // asset names, versions, Sentry DSN user info
        "img=icon@2x.png&b=logo@3x.webp&pkg=lodash@4.17.21",
        "dsn=https://9e107d9d372bb6826bd81d3542a419d6@o12345.ingest.sentry.io/678",
        // single package parameters are not a list
        "sdk=com.bytedance.sdk.openadsdk&pkg=com.example.game&x=cn.jpush.android&y=com.umeng.analytics",
        // bank-card-valid numbers without a card key
        "amount=6222021234567890128",
        "v=4111111111111111",
        // decimals, float arrays, versions, IP addresses
        "p=0.13800138000 q=3.14159,2.71828,1.41421",
        "[0.123,0.456] [12.3456,45.6789,78.9012] 192.168.100.101 10.0.19041",
        // placeholders
        "imei=000000000000000&mac=02:00:00:00:00:00&00:00:00:00:00:00&ff:ff:ff:ff:ff:ff",
        // stack traces, host names, a single package
        "at com.foo.bar.Baz.run(Baz.java:1)\nat cn.x.y.Z.go(Z.java:2)\nat io.a.b.C.d(C.java:3)",
        "hosts=cn.bing.com,api.example.com,com.example.net pkg=com.tencent.mm",
        // 11 digits starting 12, a "phone" after a plus (foreign number)
        "n=12800138000 m=+13800138000",
    ];
    for msg in quiet {
        assert_eq!(whole(msg.as_bytes()), vec![], "{msg}");
    }
}

#[test]
fn key_context_decides_between_kinds() {
    // A MAC under a BSSID key is a BSSID only; under `ssid` it is neither.
    assert_eq!(ids(r#"{"ap_mac":"3c:5a:b4:01:02:03"}"#), ["bssid"]);
    assert_eq!(ids("ssid=3c:5a:b4:01:02:03"), Vec::<String>::new());
    // A UUID is an ad id only under the right key.
    assert_eq!(ids("oaid=38400000-8cf0-11bd-b23e-10b96e40000d"), ["oaid"]);
    assert_eq!(ids("idfv: 38400000-8cf0-11bd-b23e-10b96e40000d"), ["idfv"]);
    assert_eq!(
        ids("uid=38400000-8cf0-11bd-b23e-10b96e40000d"),
        Vec::<String>::new()
    );
    // The key must be the one the value is assigned to, close by.
    let far = format!(
        "gaid=1&{}x=38400000-8cf0-11bd-b23e-10b96e40000d",
        "p".repeat(60)
    );
    assert!(ids(&far).is_empty());
}

#[test]
fn streaming_is_chunking_independent() {
    let msg = concat!(
        "POST /v1?imei=490154203237518&lat=39.9088&lng=116.3975 HTTP/1.1\r\n",
        "X-Idfa: 6D92078A-8246-4BA4-AE5B-76104861E7DC\r\n\r\n",
        r#"{"phone":"13800138000","mail":"zhang.san@qq.com","ts":1700000000000,"#,
        r#""apps":["com.tencent.mm","com.ss.android.ugc.aweme","tv.danmaku.bili"],"#,
        r#""iccid":"89860312345678901235","wifi":"3c:5a:b4:01:02:03"}"#,
    );
    let got = assert_split_independent(msg.as_bytes());
    let names: Vec<&str> = got.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        names,
        // Whole-message rules (pairs, lists) report at `finish`, after the rest.
        [
            "imei",
            "idfa",
            "phone",
            "email",
            "iccid",
            "mac",
            "location",
            "location",
            "installed_apps",
        ]
    );
    for (_, value, start, end) in &got {
        if !value.contains(',') {
            assert_eq!(&msg[*start as usize..*end as usize], value);
        }
    }
}

#[test]
fn window_stays_bounded_and_offsets_stay_whole_message() {
    let filler = "lorem ipsum ".repeat(20_000);
    let msg = format!("{filler}imei=490154203237518 {filler}");
    let mut stream = SCANNER.stream();
    let mut hits = Vec::new();
    for chunk in msg.as_bytes().chunks(997) {
        stream.feed(chunk, &mut |m| hits.push((m.start, m.end)));
        assert!(
            stream.buf.len() <= 256,
            "window grew to {}",
            stream.buf.len()
        );
    }
    for chunk in b"x".repeat(500).chunks(1) {
        stream.feed(chunk, &mut |m| hits.push((m.start, m.end)));
        assert!(stream.buf.len() <= 256 + SCAN_EVERY);
    }
    stream.finish(&mut |m| hits.push((m.start, m.end)));
    let start = (filler.len() + 5) as u64;
    assert_eq!(hits, [(start, start + 15)]);
}

#[test]
fn odd_input_never_panics_and_finish_is_final() {
    let mut junk = vec![0xff, 0xfe, b'4', b'9', 0x80];
    junk.extend_from_slice("imei=490154203237518\u{0}\u{7f}é😀".as_bytes());
    junk.extend_from_slice(&[0xc3, 0x28, b'@', b'.', b':', b'=']);
    let got = assert_split_independent(&junk);
    assert_eq!(got.len(), 1);
    let mut stream = SCANNER.stream();
    let mut n = 0;
    stream.feed(b"imei=490154203237518", &mut |_| n += 1);
    stream.finish(&mut |_| n += 1);
    stream.finish(&mut |_| n += 1);
    stream.feed(b" 356938035643809 ", &mut |_| n += 1);
    assert_eq!(n, 1);
    assert!(whole(b"").is_empty());
}

fn with_luhn(prefix: &str) -> String {
    (0..10)
        .map(|d| format!("{prefix}{d}"))
        .find(|s| crate::detect::validate::luhn(s))
        .expect("one check digit fits")
}

fn digits(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, range)
        .prop_map(|v| v.into_iter().map(|d| char::from(b'0' + d)).collect())
}

fn imei_strategy() -> impl Strategy<Value = String> {
    let rbi = prop::sample::select(vec!["01", "35", "86", "99", "49", "51"]);
    (rbi, digits(12..=12)).prop_map(|(r, d)| with_luhn(&format!("{r}{d}")))
}

fn iccid_strategy() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["898600", "898601", "898603"]),
        digits(12..=13),
    )
        .prop_map(|(p, d)| with_luhn(&format!("{p}{d}")))
}

fn resident_id_strategy() -> impl Strategy<Value = String> {
    let region = prop::sample::select(vec!["110105", "310101", "440306", "650102"]);
    (region, 1930u32..2020, 1u32..13, 1u32..29, digits(3..=3)).prop_map(|(r, y, m, d, seq)| {
        let body = format!("{r}{y}{m:02}{d:02}{seq}");
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = body
            .bytes()
            .zip(weights)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        format!("{body}{}", char::from(b"10X98765432"[(sum % 11) as usize]))
    })
}

fn bank_card_strategy() -> impl Strategy<Value = String> {
    digits(13..=16).prop_map(|d| with_luhn(&format!("62{d}")))
}

/// Non-digit text. Hex letters are left out on purpose: an all-hex run of
/// 32+ bytes is a digest by design, whatever digits it holds.
fn text() -> impl Strategy<Value = String> {
    "[g-zG-Z ,;!?()]{0,16}"
}

/// Cuts `msg` at the given (sorted, deduplicated) points.
pub(super) fn cut(msg: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
    points.iter_mut().for_each(|p| *p %= msg.len() + 1);
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points.into_iter().chain([msg.len()]) {
        out.push(&msg[last..p]);
        last = p;
    }
    out
}

proptest! {
    #[test]
    fn valid_identifiers_are_found_under_any_chunking(
        (id, key, value) in prop_oneof![
            imei_strategy().prop_map(|v| ("imei", "", v)),
            iccid_strategy().prop_map(|v| ("iccid", "", v)),
            resident_id_strategy().prop_map(|v| ("cn_resident_id", "", v)),
            // Card numbers count only next to a card key.
            bank_card_strategy().prop_map(|v| ("bank_card", " card_no=", v)),
        ],
        before in text(),
        after in text(),
        points in proptest::collection::vec(0usize..400, 0..6),
    ) {
        let msg = format!("{before}{key}{value}{after}");
        let want = vec![hit(id, &msg, &value)];
        prop_assert_eq!(run(&cut(msg.as_bytes(), points)), want);
    }

    #[test]
    fn digit_runs_of_other_lengths_are_never_imeis(
        run_digits in digits(1..=40).prop_filter("not 15", |d| d.len() != 15),
        before in "[a-zA-Z]{0,8}",
        after in "[a-zA-Z]{0,8}",
    ) {
        let msg = format!("{before}{run_digits}{after}");
        prop_assert!(whole(msg.as_bytes()).iter().all(|h| h.0 != "imei"));
    }

    #[test]
    fn digests_never_match(
        len in prop::sample::select(vec![32usize, 40, 64]),
        hex in "[0-9a-f]{64}",
        upper in any::<bool>(),
        before in "[g-z ]{0,8}",
        points in proptest::collection::vec(0usize..100, 0..4),
    ) {
        let digest = if upper { hex[..len].to_uppercase() } else { hex[..len].to_string() };
        let msg = format!("{before}{digest} ");
        prop_assert_eq!(run(&cut(msg.as_bytes(), points)), vec![]);
    }

    #[test]
    fn timestamps_never_match(
        secs in 1_000_000_000u64..2_000_000_000,
        millis in 0u64..1000,
        form in 0usize..4,
    ) {
        let msg = match form {
            0 => format!("t={secs}"),
            1 => format!(r#"{{"time":{secs}{millis:03}}}"#),
            2 => format!("x {secs}{millis:03} y"),
            _ => format!("{secs}.{millis:03}"),
        };
        prop_assert_eq!(whole(msg.as_bytes()), vec![]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        points in proptest::collection::vec(0usize..600, 0..5),
    ) {
        let want = whole(&bytes);
        prop_assert_eq!(run(&cut(&bytes, points)), want);
    }
}
