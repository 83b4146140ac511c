//! The pattern scanner's pre-pass held to the plain search it stands in
//! for: it covers every embedded rule, the shapes it reads from the
//! regexes are sound, and on traffic-like text (and with remembered key
//! verdicts) both find the same.

use std::sync::LazyLock;

use proptest::prelude::*;

use super::context::KEY_VERDICTS;
use super::tests::{SCANNER, cut, run_with};
use super::*;

#[test]
fn the_prepass_covers_every_embedded_rule() {
    assert!(SCANNER.plain.is_empty(), "plain: {:?}", SCANNER.plain);
}

#[test]
fn shapes_describe_what_a_regex_can_match() {
    let s = shape::shape("[0-9]{15}").unwrap();
    assert_eq!((s.min_len, s.max_len), (15, Some(15)));
    assert!(s.first.contains(b'7') && !s.first.contains(b'a'));
    assert!(s.required.is_none(), "digits are too common to require");
    let s = shape::shape(r"(?:(?:\+|00)?86[ -]?)?1[3-9][0-9]{9}").unwrap();
    assert_eq!((s.min_len, s.max_len), (11, Some(16)));
    assert!(
        [b'+', b'0', b'8', b'1']
            .iter()
            .all(|b| s.first.contains(*b))
    );
    assert!(!s.first.contains(b'2'));
    let s = shape::shape(r"[A-Za-z0-9._%+-]{1,64}(?:@|%40)[A-Za-z]+").unwrap();
    let req = s.required.unwrap();
    assert!(req.set.contains(b'@') && req.set.contains(b'%') && !req.set.contains(b'a'));
    assert_eq!((req.within, s.max_len), (64, None));
    // The embedded e-mail rule: its `@`, within 64 bytes, is preferred to
    // the rarer-looking `.` of its top-level domain, hundreds of bytes on.
    let email = SCANNER.scan.iter().map(|s| s.rule.regex.as_str());
    let email = email.filter(|r| r.contains("%40")).collect::<Vec<_>>();
    assert_eq!(email.len(), 1);
    let req = shape::shape(email[0]).unwrap().required.unwrap();
    assert!(req.set.contains(b'@') && !req.set.contains(b'.'));
    assert_eq!(req.within, 64);
    let s = shape::shape("(?P<x>ab|c)d[^0-9]é").unwrap();
    assert_eq!((s.min_len, s.max_len), (5, Some(9)));
    assert!(s.alphabet.contains(0xc3) && s.alphabet.contains(b'Z'));
    // Syntax the analysis does not model, and empty matches: no shape.
    for p in [
        r"\bimei",
        "(?i)imei",
        "^x",
        "x*",
        "[[:digit:]]",
        r"\p{L}",
        "a{2",
        "(x",
    ] {
        assert!(shape::shape(p).is_none(), "{p}");
    }
}

/// Traffic-like text built from the shapes the rules look for, and their
/// look-alikes, so the two searches meet every kind of candidate.
fn traffic() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "490154203237518",
        "4901542032375181",
        "460001234567890",
        "89860312345678901235",
        "13800138000",
        "+8613800138000",
        "+14155552671",
        "zhang.san@qq.com",
        "a%40b.cn",
        "3c:5a:b4:01:02:03",
        "3c5ab4010203",
        "9774d56d682e549d",
        "11010519491231002X",
        "38400000-8cf0-11bd-b23e-10b96e40000d",
        "39.9088,116.3975",
        "116.3975%2C39.9088",
        "com.tencent.mm",
        "tv.danmaku.bili",
        "cn.jpush.android",
        "9e107d9d372bb6826bd81d3542a419d6",
        "1700000000000",
        "6222021234567890128",
        "0.1234",
        "12.345",
        "imei=",
        "\"lat\":39.9088,",
        "lng=116.3975&",
        "\"lat\":",
        "lng=",
        "\"gaid\":\"",
        "card_no=",
        "order_id=",
        "&",
        "\"",
        ",",
        " ",
        "%22",
        "[",
        "]",
        "x",
        "-",
        ":",
        ".",
        "@",
        "\r\n",
        "<mac>",
        "Z9",
        "ff",
        "%3D",
        "%3a",
        "%5B",
        "%27",
        "'",
        "\\",
        "\t",
        "=",
        ">",
        "android_id%3D",
        "oaid:",
        "<bssid>",
        "\"lat\" : [ ",
        // Runs longer than the block filter's 64-byte blocks.
        "9e107d9d372bb6826bd81d3542a419d6e4d909c290d0fb1ca068ffaddf22cbd0",
        "first.last_name-with.many.parts_and_more_letters_than_sixty_four_bytes",
        "12345678901234567890123456789012345678901234567890123456789012345678",
    ]);
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn the_prepass_finds_what_the_plain_search_finds(
        text in traffic(),
        points in proptest::collection::vec(0usize..400, 0..5),
    ) {
        static PLAIN: LazyLock<PatternScanner> =
            LazyLock::new(|| PatternScanner::plain_only(&RuleSet::embedded()));
        let msg = text.as_bytes();
        let want = run_with(&PLAIN, &[msg]);
        prop_assert_eq!(run_with(&SCANNER, &[msg]), want.clone());
        prop_assert_eq!(run_with(&SCANNER, &cut(msg, points)), want);
    }
}

/// Key verdicts carried from stream to stream, and keys taking each
/// other's slots in a stream's set, change no finding.
#[test]
fn remembered_key_verdicts_change_nothing() {
    let scan = |scanner: &PatternScanner, msg: &str| -> Vec<String> {
        let hits = run_with(scanner, &[msg.as_bytes()]);
        hits.into_iter().map(|h| h.0).collect()
    };
    let fresh = |msg: &str| scan(&PatternScanner::new(&RuleSet::embedded()), msg);
    // The same IMEI under a key that names it, one that names nothing and
    // one whose values are not identifiers: the last is no finding.
    let msg = "meid=A0000012345678&ts=490154203237518&x=490154203237518&imei=490154203237518";
    let want = fresh(msg);
    assert_eq!(
        want.iter().filter(|id| *id == "imei").count(),
        2,
        "{want:?}"
    );
    let warm = PatternScanner::new(&RuleSet::embedded());
    assert_eq!(scan(&warm, msg), want);
    assert_eq!(
        scan(&warm, msg),
        want,
        "a second stream, with the first's verdicts"
    );
    // More distinct keys than a set has slots, then the same keys again.
    let many: String = (0..KEY_VERDICTS + 40)
        .map(|i| format!("k{i}=490154203237518&"))
        .collect();
    let long = format!("{many}{msg}");
    let ids = scan(&warm, &long);
    assert_eq!(ids.len(), KEY_VERDICTS + 40 + want.len());
    assert_eq!(ids, fresh(&long));
    assert_eq!(scan(&warm, msg), want);
    // The last stream's set came back to the scanner, holding verdicts,
    // never more than its slots.
    let kept = warm.spares.take().verdicts;
    assert!(
        (1..=KEY_VERDICTS).contains(&kept.len()),
        "{} verdicts kept",
        kept.len()
    );
}

/// A context key that names no kind (user rules may have one) still lets
/// its rule count, in the pre-pass as in the plain search: the pre-pass
/// rules keys out by walking the context keys' trie as well as the
/// aliases'. (The embedded rules' context keys are all aliases too.)
#[test]
fn a_context_key_that_names_no_kind_still_counts() {
    let rules = RuleSet::from_toml(
        "[[kind]]\nid = \"ticket\"\nkeys = [\"ticket\"]\npattern = 'T[0-9]{8}'\n\
         boundary = '[0-9A-Za-z]'\nneeds_key_context = true\ncontext_keys = [\"voucher\"]\n",
        "user.toml",
    )
    .unwrap();
    let ids = |scanner: &PatternScanner, msg: &str| -> Vec<(String, u64)> {
        let hits = run_with(scanner, &[msg.as_bytes()]);
        hits.into_iter().map(|h| (h.0, h.2)).collect()
    };
    let (fast, plain) = (
        PatternScanner::new(&rules),
        PatternScanner::plain_only(&rules),
    );
    for (msg, want) in [
        ("voucher=T12345678", 1),
        ("{\"my_voucher\": \"T12345678\"}", 1),
        ("x=T12345678&vouchers=T12345678", 0),
    ] {
        assert_eq!(ids(&fast, msg).len(), want, "{msg}: {:?}", ids(&fast, msg));
        assert_eq!(ids(&fast, msg), ids(&plain, msg), "{msg}");
    }
}

/// The key lookup is never asked about a rule that needs a key where the
/// byte before the candidate opens no value (no key can be found there),
/// and still is where it does: the pre-pass refuses those bytes before such
/// rules (`refused_before`), not the lookup after them.
#[test]
fn rules_needing_a_key_are_not_looked_up_inside_a_token() {
    let pre = &SCANNER.prepass;
    let keyed = (0..pre.rules.len())
        .filter(|&bit| SCANNER.scan[pre.rules[bit]].rule.needs_key_context)
        .fold(0u64, |m, bit| m | 1 << bit);
    let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let buf = format!("x{uuid} /{uuid} \"{uuid}\" id-{uuid}");
    let buf = buf.as_bytes();
    let mut asked = Vec::new();
    let key_allows = |p: usize, m: u64| {
        asked.push((p, m));
        m
    };
    pre.candidates(buf, 0, buf.len(), key_allows, |_, _| {});
    let (inside, opened): (Vec<_>, Vec<_>) = asked
        .iter()
        .filter(|(p, _)| *p > 0)
        .partition(|(p, _)| !matches!(buf[p - 1], b'"' | b' '));
    for (p, m) in &inside {
        assert_eq!(m & keyed, 0, "asked after {:?}", buf[p - 1] as char);
    }
    assert!(
        opened.iter().any(|(_, m)| m & keyed != 0),
        "a value after a quote or a space is looked up: {asked:?}"
    );
}
