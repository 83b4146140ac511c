//! Key scanner tests: every syntax, decoding, placeholders, truncation, and
//! chunking independence.

use std::sync::LazyLock;

use proptest::prelude::*;

use super::values::json_unescape;
use super::*;

static SCANNER: LazyLock<KeyScanner> = LazyLock::new(|| KeyScanner::new(&RuleSet::embedded()));

/// (identifier, key, value, start, end)
type Hit = (String, String, String, u64, u64);

fn run(chunks: &[&[u8]]) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut stream = SCANNER.stream();
    let mut push = |m: KeyMatch| {
        hits.push((
            m.identifier,
            m.key,
            m.value.expose().to_string(),
            m.start,
            m.end,
        ));
    };
    for c in chunks {
        stream.feed(c, &mut push);
    }
    stream.finish(&mut push);
    hits
}

fn whole(msg: &str) -> Vec<Hit> {
    run(&[msg.as_bytes()])
}

/// (identifier, key, decoded value) only.
fn pairs(msg: &str) -> Vec<(String, String, String)> {
    whole(msg).into_iter().map(|h| (h.0, h.1, h.2)).collect()
}

fn p(id: &str, key: &str, value: &str) -> (String, String, String) {
    (id.into(), key.into(), value.into())
}

fn assert_split_independent(msg: &[u8]) -> Vec<Hit> {
    let want = run(&[msg]);
    for k in 0..=msg.len() {
        assert_eq!(run(&[&msg[..k], &msg[k..]]), want, "split at {k}");
    }
    let bytes: Vec<&[u8]> = msg.chunks(1).collect();
    assert_eq!(run(&bytes), want, "1-byte chunks");
    want
}

#[test]
fn query_strings_and_forms_are_decoded() {
    let url = "https://ad.example.cn/v1?imei=490154203237518&deviceImei=356938035643809&x=1&phone=138%200013%208000#frag";
    assert_eq!(
        pairs(url),
        [
            p("imei", "imei", "490154203237518"),
            p("imei", "deviceImei", "356938035643809"),
            p("phone", "phone", "138 0013 8000"),
        ]
    );
    let form = "email=zhang.san%40qq.com&wifi_mac=3c%3A5a%3Ab4%3A01%3A02%3A03&applist=com.a.b%2Ccom.c.d&user%2Ephone=13800138000";
    assert_eq!(
        pairs(form),
        [
            p("email", "email", "zhang.san@qq.com"),
            p("mac", "wifi_mac", "3c:5a:b4:01:02:03"),
            p("installed_apps", "applist", "com.a.b,com.c.d"),
            p("phone", "user.phone", "13800138000"),
        ]
    );
    // Offsets cover the raw value.
    let hits = whole("a=1&imei=490154203237518&b=2");
    assert_eq!((hits[0].3, hits[0].4), (9, 24));
}

#[test]
fn json_pairs_report_the_innermost_key() {
    let body = r#"{"device":{"imei":"490154203237518","model":"Pixel 7","oaid":"6d92078a-8246-4ba4-ae5b-76104861e7dc"},"user":{"phone":13800138000,"mail":"zhang.san@qq.com"},"geo":{"lat":39.9088,"lng":116.3975}}"#;
    assert_eq!(
        pairs(body),
        [
            p("imei", "imei", "490154203237518"),
            p("oaid", "oaid", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
            p("phone", "phone", "13800138000"),
            p("email", "mail", "zhang.san@qq.com"),
            p("location", "lat", "39.9088"),
            p("location", "lng", "116.3975"),
        ]
    );
    let start = body.find("490154203237518").unwrap() as u64;
    assert_eq!((whole(body)[0].3, whole(body)[0].4), (start, start + 15));
}

#[test]
fn json_strings_are_unescaped_and_escaped_json_is_read() {
    assert_eq!(
        pairs(
            r#"{"phone":"\u0031\u0033800138000","ssid":"caf\u00e9 \"home\"","email":"a\ud83d\ude00@qq.com"}"#
        ),
        [
            p("phone", "phone", "13800138000"),
            p("ssid", "ssid", "café \"home\""),
            p("email", "email", "a😀@qq.com"),
        ]
    );
    assert_eq!(
        pairs(
            r#"{"data":"{\"imei\":\"490154203237518\",\"androidId\":\"9774d56d682e549d\",\"n\":1}"}"#
        ),
        [
            p("imei", "imei", "490154203237518"),
            p("android_id", "androidId", "9774d56d682e549d"),
        ]
    );
    // A query string inside a JSON string, with `\u0026` for `&`.
    assert_eq!(
        pairs(r#"{"url":"https://x.cn/?a=1\u0026oaid=a1b2c3d4e5f60718\u0026b=2"}"#),
        [p("oaid", "oaid", "a1b2c3d4e5f60718")]
    );
}

#[test]
fn structured_values_are_skipped_except_app_lists() {
    let body = r#"{"imei":{"v":"490154203237518"},"mac":["3c:5a:b4:01:02:03"],"applist":["com.tencent.mm", "tv.danmaku.bili"],"apps":[],"pkg_list":[ ]}"#;
    assert_eq!(
        pairs(body),
        [p(
            "installed_apps",
            "applist",
            r#"["com.tencent.mm", "tv.danmaku.bili"]"#
        )]
    );
    let long: Vec<String> = (0..40).map(|i| format!("\"com.example.app{i}\"")).collect();
    let body = format!(r#"{{"installed_apps":[{}]}}"#, long.join(","));
    let hits = whole(&body);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].2.len(), 200);
    assert!(hits[0].2.starts_with("[\"com.example.app0\""));
    assert_eq!(
        pairs("imei=%7B%22a%22%3A1%7D&apps=%5B%22com.a.b%22%5D").len(),
        1
    );
}

#[test]
fn headers_cookies_multipart_and_xml() {
    let headers = "GET / HTTP/1.1\r\nHost: a.cn\r\nX-Device-IMEI: 490154203237518\r\nCookie: sid=abc; imei=356938035643809; oaid=a1b2c3d4e5f60718\r\nX-Phone-Model: Pixel\r\n\r\n";
    assert_eq!(
        pairs(headers),
        [
            p("imei", "X-Device-IMEI", "490154203237518"),
            p("imei", "imei", "356938035643809"),
            p("oaid", "oaid", "a1b2c3d4e5f60718"),
        ]
    );
    let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"imei\"\r\n\r\n490154203237518\r\n--XyZ\r\nContent-Disposition: form-data; name=\"android_id\"\r\nContent-Type: text/plain\r\n\r\n9774d56d682e549d\r\n--XyZ\r\ncontent-disposition: form-data; name=\"note\"\r\n\r\nimei: 1\r\n--XyZ--\r\n";
    let hits = whole(multipart);
    assert_eq!(
        hits.iter()
            .map(|h| (h.1.as_str(), h.2.as_str()))
            .collect::<Vec<_>>(),
        [
            ("imei", "490154203237518"),
            ("android_id", "9774d56d682e549d")
        ]
    );
    let start = multipart.find("490154203237518").unwrap() as u64;
    assert_eq!((hits[0].3, hits[0].4), (start, start + 15));
    assert_eq!(
        pairs("<req><imei>490154203237518</imei><sn>R58M12345</sn><ssid> Home </ssid></req>"),
        [
            p("imei", "imei", "490154203237518"),
            p("serial", "sn", "R58M12345"),
            p("ssid", "ssid", "Home"),
        ]
    );
}

#[test]
fn placeholders_and_non_identifier_keys_are_quiet() {
    let quiet = [
        "imei=000000000000000&mac=02:00:00:00:00:00&serial=unknown&android_id=&oaid=null&idfa=00000000-0000-0000-0000-000000000000",
        r#"{"imei":"","phone":null,"ssid":"<unknown ssid>","lat":0.0,"lng":"0.000000","email":"none"}"#,
        "imei_count=2&phone_model=Pixel&machine=x86&macro=1&order_sn=123456&hmac=9e107d9d372bb6826bd81d3542a419d6",
        // right key, wrong kind of value
        "mac=9e107d9d372bb6826bd81d3542a419d6&ad_id=123456&lng=en&location=https%3A%2F%2Fa.cn%2F&is_mobile=1",
        "X-Android-Id: unknown\r\nX-Mobile: true\r\n",
    ];
    for msg in quiet {
        assert_eq!(pairs(msg), vec![], "{msg}");
    }
}

#[test]
fn long_values_are_truncated() {
    let value = "é".repeat(300);
    let msg = format!(r#"{{"ssid":"{value}","imei":"490154203237518"}}"#);
    let hits = whole(&msg);
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].2, "é".repeat(128));
    let long_form = format!("serial={}&imei=490154203237518", "A".repeat(2000));
    let hits = whole(&long_form);
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[0].2.len(), 256);
    assert_eq!(hits[1].2, "490154203237518");
    // Deciding a long value mid-stream gives the whole-message answer.
    let msg = format!(
        "--b\r\nContent-Disposition: form-data; name=\"imei\"\r\n\r\n{}\r\n--b\r\nserial={}&sn=R58M1",
        "4".repeat(900),
        "%41".repeat(400)
    );
    let hits = assert_split_independent(msg.as_bytes());
    let got: Vec<(&str, usize)> = hits.iter().map(|h| (h.0.as_str(), h.2.len())).collect();
    assert_eq!(got, [("imei", 256), ("serial", 256), ("serial", 5)]);
}

#[test]
fn streaming_is_chunking_independent() {
    let msg = concat!(
        "POST /v1?imei=490154203237518&ts=1700000000 HTTP/1.1\r\n",
        "X-Idfa: 6D92078A-8246-4BA4-AE5B-76104861E7DC\r\n",
        "Cookie: a=1; phone=13800138000\r\n\r\n",
        r#"{"u":{"email":"zhang.san@qq.com"},"applist":["com.tencent.mm","tv.danmaku.bili"],"#,
        r#""d":"{\"oaid\":\"a1b2c3d4e5f60718\"}","card_no":"6222021234567890128"}"#,
    );
    let got = assert_split_independent(msg.as_bytes());
    let ids: Vec<&str> = got.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "imei",
            "idfa",
            "phone",
            "email",
            "installed_apps",
            "oaid",
            "bank_card"
        ]
    );
    for (_, _, value, start, end) in &got {
        assert_eq!(&msg[*start as usize..*end as usize], value);
    }
}

#[test]
fn window_stays_bounded() {
    let filler = "k=v&".repeat(50_000);
    let msg = format!("{filler}imei=490154203237518&{filler}");
    let mut stream = SCANNER.stream();
    let mut hits = Vec::new();
    for chunk in msg.as_bytes().chunks(1000) {
        stream.feed(chunk, &mut |m| hits.push(m.start));
        assert!(
            stream.buf.len() <= 4096,
            "window grew to {}",
            stream.buf.len()
        );
    }
    stream.finish(&mut |m| hits.push(m.start));
    assert_eq!(hits, [(filler.len() + 5) as u64]);
}

#[test]
fn url_decoding_keeps_malformed_escapes() {
    assert_eq!(url_decode(b"a%2Cb+c%zz%4"), "a,b c%zz%4");
    assert_eq!(url_decode(b"%E6%89%8B%E6%9C%BA"), "手机");
    assert_eq!(url_decode(b"%ff"), "\u{fffd}");
    assert_eq!(json_unescape(br"caf\u00e9\n\ud83d\ude00"), "café\n😀");
    // JSON refuses these; they are kept as sent.
    assert_eq!(json_unescape(br"\ud83d"), r"\ud83d");
    assert_eq!(json_unescape(br"a\x"), r"a\x");
}

fn cut(msg: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
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
    fn any_chunking_gives_the_whole_message_result(
        pieces in proptest::collection::vec(prop::sample::select(vec![
            "imei=490154203237518&", "\"phone\": \"13800138000\", ", "X-Oaid: a1b2c3d4e5f60718\r\n",
            "<ssid>home</ssid>", "{\"a\":{\"mac\":\"3c:5a:b4:01:02:03\"}}", "k=v&", "  ", "\r\n",
            "Content-Disposition: form-data; name=\"sn\"\r\n\r\nR58M1\r\n--b\r\n",
        ]), 0..12),
        points in proptest::collection::vec(0usize..500, 0..6),
    ) {
        let msg = pieces.concat();
        let want = run(&[msg.as_bytes()]);
        prop_assert_eq!(run(&cut(msg.as_bytes(), points)), want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        points in proptest::collection::vec(0usize..600, 0..5),
    ) {
        let want = run(&[&bytes]);
        prop_assert_eq!(run(&cut(&bytes, points)), want);
    }

    #[test]
    fn key_like_bytes_never_panic(
        text in "[\"'{}\\[\\]:=&;,\\\\ \r\na-z0-9%<>/-]{0,300}",
        points in proptest::collection::vec(0usize..300, 0..5),
    ) {
        let msg = format!("imei={text}\"oaid\":{text}<sn>{text}");
        let want = run(&[msg.as_bytes()]);
        prop_assert_eq!(run(&cut(msg.as_bytes(), points)), want);
    }
}

/// Key/value text built from aliases in every spelling, look-alike keys,
/// and the bytes each syntax is made of, so the candidate filter meets
/// every way a key can name a kind.
fn key_traffic() -> impl Strategy<Value = String> {
    let noise = prop::sample::select(vec![
        "imei",
        "IMEI",
        "Imei",
        "device",
        "mac",
        "Address",
        "sn",
        "ime",
        "手机",
        "É",
        "ß",
        "_",
        "-",
        ".",
        " ",
        "%5F",
        "%69",
        "%20",
        "\\u0026",
        "\"",
        "\\\"",
        ":",
        "=",
        "&",
        "?",
        ";",
        "<",
        ">",
        "</",
        "\n",
        "\r\n",
        "{",
        "}",
        "[",
        "]",
        ",",
        "'",
        "\u{3000}",
        "\u{a0}",
        "\r\n\r\n",
        "Content-Disposition: form-data; name=\"",
        "490154203237518",
        "3c:5a:b4:01:02:03",
    ]);
    let prefix = prop::sample::select(vec![
        "", "user", "order", "x", "wifi", "ap", "ble", "2", "Device", "_", "É", "手", "%61",
    ]);
    let sep = prop::sample::select(vec!["", "_", "-", ".", " ", "%5F", "\u{a0}"]);
    let alias = prop::sample::select(vec![
        "imei",
        "IMEI",
        "Imei",
        "iMEI",
        "Mac",
        "MAC",
        "mac_address",
        "MacAddress",
        "sn",
        "SN",
        "ime",
        "phone",
        "Phone",
        "手机号",
        "电话",
        "ssid",
        "Bssid",
        "%69mei",
        "im%65i",
        "ImeiValue",
    ]);
    let syntax = prop::sample::select(vec![
        ("\"", "\":\"", "\""),
        ("\"", "\" \r\n: ", ","),
        ("\\\"", "\\\":\\\"", "\\\""),
        ("&", "=", "&"),
        ("\\u0026", "=", ""),
        ("\n", ": ", "\r\n"),
        ("<", ">", "</x>"),
        ("\u{3000}", "=", " "),
        (
            "\r\nContent-Disposition: form-data; name=\"",
            "\"\r\n\r\n",
            "\r\n--b\r\n",
        ),
        (
            "\r\nCONTENT-DISPOSITION: form-data; name=\"",
            "\"\r\n\r\n",
            "\r\n--b\r\n",
        ),
        // `ſ` (U+017F) folds to `s`: the regex takes it.
        (
            "\r\nContent-Diſpoſitio\u{4e}: form-data; name=\"",
            "\"\r\n\r\n",
            "\r\n--b\r\n",
        ),
    ]);
    let value = prop::sample::select(vec![
        "490154203237518",
        "3c:5a:b4:01:02:03",
        "13800138000",
        "a1b2c3d4e5f60718",
        "R58M12345",
        "Home",
        "",
    ]);
    let pair = (prefix, sep, alias, syntax, value)
        .prop_map(|(p, s, a, (open, mid, close), v)| format!("{open}{p}{s}{a}{mid}{v}{close}"));
    let piece = prop_oneof![noise.prop_map(String::from), pair];
    proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

fn run_with(scanner: &KeyScanner, chunks: &[&[u8]]) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut stream = scanner.stream();
    let mut push = |m: KeyMatch| {
        let value = m.value.expose().to_string();
        hits.push((m.identifier, m.key, value, m.start, m.end));
    };
    for c in chunks {
        stream.feed(c, &mut push);
    }
    stream.finish(&mut push);
    hits
}

static REFERENCE: LazyLock<KeyScanner> =
    LazyLock::new(|| KeyScanner::reference(&RuleSet::embedded()));

proptest! {
    /// The candidate filter only skips introducers whose key names nothing:
    /// the fast scan reports what the regex at every introducer reports.
    #[test]
    fn candidates_find_what_the_regex_at_every_introducer_finds(
        text in key_traffic(),
        points in proptest::collection::vec(0usize..600, 0..5),
    ) {
        let msg = text.as_bytes();
        let want = run_with(&REFERENCE, &[msg]);
        prop_assert_eq!(run_with(&SCANNER, &[msg]), want.clone());
        prop_assert_eq!(run_with(&SCANNER, &cut(msg, points)), want);
    }

    #[test]
    fn candidates_agree_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        points in proptest::collection::vec(0usize..600, 0..5),
    ) {
        let want = run_with(&REFERENCE, &[&bytes]);
        prop_assert_eq!(run_with(&SCANNER, &cut(&bytes, points)), want);
    }
}

#[test]
fn a_key_lowercasing_changes_outside_ascii_is_still_read() {
    // KELVIN SIGN lowercases to an ASCII `k`: the key is `bank_card`.
    let msg = "{\"ban\u{212A}_card\":\"6222600260001072444\"}";
    assert_eq!(
        pairs(msg),
        [p("bank_card", "ban\u{212A}_card", "6222600260001072444")]
    );
}

/// A finished stream's buffer goes to the next stream of its scanner, but
/// not once it grew past `KEPT_CAPACITY`: one long message leaves no
/// buffer that size behind.
#[test]
fn the_next_stream_takes_over_a_buffer_unless_it_grew_too_large() {
    let scanner = KeyScanner::new(&RuleSet::embedded());
    let scan = |msg: &[u8]| {
        let mut stream = scanner.stream();
        stream.feed(msg, &mut |_| {});
        stream.finish(&mut |_| {});
    };
    scan(&[b'x'; 1000]);
    let next = scanner.stream();
    assert!(next.buf.is_empty() && next.buf.capacity() >= 1000);
    drop(next);
    scan(&vec![b'x'; crate::detect::spares::KEPT_CAPACITY * 2]);
    assert_eq!(scanner.stream().buf.capacity(), 0);
}
