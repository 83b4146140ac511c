use proptest::prelude::*;

use super::*;
use crate::detect::patterns::MAX_KEY_LEN;

/// Keys from two bytes, so that different keys often share their ends.
fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop::sample::select(b"ab".to_vec()), 1..=MAX_KEY_LEN)
}

proptest! {
    #[test]
    fn key_words_are_equal_exactly_when_the_keys_are(
        (a, b) in key().prop_flat_map(|a| {
            let n = a.len();
            // Another key, or one a byte away: changed, longer or shorter.
            let near = (0..n, 0..3usize).prop_map({
                let a = a.clone();
                move |(i, how)| {
                    let mut b = a.clone();
                    match how {
                        0 => b[i] ^= 3,
                        1 => b.insert(i, b'a'),
                        _ => drop(b.remove(i)),
                    }
                    b
                }
            });
            (Just(a), prop_oneof![key(), near])
        }),
    ) {
        let words = KeyWords {
            len: a.len(),
            ends: KeyWords::ends(&a),
            middle: KeyWords::middle(&a).into(),
        };
        prop_assert_eq!(words.is(&b, KeyWords::ends(&b)), a == b);
    }

    #[test]
    fn each_key_gets_its_own_verdict_and_is_not_judged_again_at_once(
        keys in proptest::collection::vec(key(), 1..40),
    ) {
        // Each distinct key's verdict names it by a number of its own, and
        // judging counts.
        let ids: std::collections::HashMap<&[u8], u64> =
            keys.iter().enumerate().map(|(i, k)| (&k[..], i as u64)).collect();
        let judged = std::cell::Cell::new(0);
        let mut verdicts = KeyVerdicts::default();
        let mut ask = |k: &[u8]| {
            verdicts
                .get_or_judge(k, |k| {
                    judged.set(judged.get() + 1);
                    KeyVerdict { kind: None, deny_context: false, context: ids[k] }
                })
                .context
        };
        for k in &keys {
            prop_assert_eq!(ask(k), ids[&k[..]]);
            // Asked again at once, the key is still in its slot.
            let before = judged.get();
            prop_assert_eq!(ask(k), ids[&k[..]]);
            prop_assert_eq!(judged.get(), before);
        }
    }
}

proptest! {
    #[test]
    fn the_key_before_a_value_is_its_token_cut_to_the_longest_key(
        key in proptest::collection::vec(
            prop::sample::select(b"az09_.-[]".to_vec()),
            1..=MAX_KEY_LEN + 12,
        ),
        before in prop::sample::select(b"{,\" \n&?".to_vec()),
    ) {
        let mut text = vec![before];
        text.extend_from_slice(&key);
        text.extend_from_slice(b"\":\"");
        let s = text.len();
        text.push(b'v');
        let want = &key[key.len().saturating_sub(MAX_KEY_LEN)..];
        prop_assert_eq!(nearest_key(&text, s), Some(want));
    }
}

/// Bytes that steer the key walk: key bytes, quotes and spaces, what ends
/// a key, `<`, and the pieces of `%22`, `%3A`, `%3D` and `%5B`.
/// Short texts too, so that keys often run to the start; and often an
/// escape right before the value.
/// Every `(x, y)` with `x` from `a` and `y` from `b`.
fn pairs<T: Copy>(a: &[T], b: &[T]) -> Vec<(T, T)> {
    a.iter()
        .flat_map(|&x| b.iter().map(move |&y| (x, y)))
        .collect()
}

const KEY_SYNTAX: &[u8] = b"ab_.-[]\"' \t\\:=<>%235ABD&,{";

fn key_syntax() -> impl Strategy<Value = Vec<u8>> {
    let bytes = |len| proptest::collection::vec(prop::sample::select(KEY_SYNTAX.to_vec()), len);
    let escape = prop::sample::select(vec!["", "", "%3A", "%3d", "%22", "%5B", "%20"]);
    (prop_oneof![bytes(0..8), bytes(0..80)], escape).prop_map(|(mut text, escape)| {
        text.extend_from_slice(escape.as_bytes());
        text
    })
}

proptest! {
    /// What [`Reach`] claims: a walk that bytes alone decided gives the
    /// same key, at the same distance, wherever those bytes come again,
    /// whatever comes before them.
    #[test]
    fn a_key_walk_answers_the_same_wherever_its_bytes_come_again(
        text in key_syntax(),
        prefix in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let s = text.len();
        let (key, reach) = key_and_reach(&text, s);
        if let Some(len) = reach.decided_by(s) {
            let mut moved = prefix;
            moved.extend_from_slice(&text[s - len..]);
            let s2 = moved.len();
            moved.push(b'v');
            let (key2, reach2) = key_and_reach(&moved, s2);
            let from_end = |k: Option<std::ops::Range<usize>>, at: usize| {
                k.map(|k| (at - k.start, at - k.end))
            };
            prop_assert_eq!(from_end(key2, s2), from_end(key.clone(), s));
            prop_assert_eq!(reach2.decided_by(s2), Some(len));
            // Every byte the walk may have read unreported lies at most
            // three bytes before what it claims: any two of those, changed
            // to any bytes of the syntax (an escape takes two), change
            // nothing.
            let window = (s - len).saturating_sub(3)..s - len;
            let places: Vec<usize> = window.collect();
            for (p, q) in pairs(&places, &places) {
                for (x, y) in pairs(KEY_SYNTAX, KEY_SYNTAX) {
                    let mut changed = text.clone();
                    (changed[p], changed[q]) = (x, y);
                    let (key3, reach3) = key_and_reach(&changed, s);
                    let as_chars = (x as char, y as char);
                    prop_assert_eq!(&key3, &key, "bytes {}, {} as {:?}", p, q, as_chars);
                    prop_assert_eq!(reach3.decided_by(s), Some(len));
                }
            }
        }
    }

    /// The shortcut before the walk never says "no key" where the walk
    /// finds one.
    #[test]
    fn a_value_inside_a_token_has_no_key(text in key_syntax()) {
        let s = text.len();
        if inside_token(&text, s) {
            prop_assert_eq!(nearest_key(&text, s), None);
        }
    }

    /// What the pre-pass refuses before a rule that needs a key, beyond its
    /// boundary, is a byte after which the walk finds no key: at the
    /// message's first bytes too, and where an escape ends right before
    /// (the byte it encodes is the one refused).
    #[test]
    fn no_key_follows_a_byte_refused_for_want_of_one(text in key_syntax()) {
        static RULES: std::sync::LazyLock<RuleSet> = std::sync::LazyLock::new(RuleSet::embedded);
        let keyed = RULES.kinds().iter().flat_map(|k| &k.patterns).filter(|r| r.needs_key_context);
        for rule in keyed {
            let refused = refused_before(rule);
            for s in 1..=text.len() {
                let before = escaped_before(&text, s).unwrap_or(text[s - 1]);
                if refused.contains(before) && !rule.before.contains(before) {
                    prop_assert_eq!(nearest_key(&text, s), None, "at {}", s);
                }
            }
        }
    }

    /// Outcomes remembered by context change nothing: every position of a
    /// text of keys and values, asked about any rules, is answered as by a
    /// lookup that remembers nothing, with the contexts of the whole text
    /// (asked twice over) remembered.
    #[test]
    fn remembered_contexts_change_no_answer(
        pieces in proptest::collection::vec(
            (
                prop::sample::select(vec![
                    "imei", "gaid", "oaid", "device_imei", "ts", "order_id", "request_id",
                    "x", "adid", "%22gaid%22", "lat", "bank_card", "k", "id", "aid",
                ]),
                prop::sample::select(vec!["\":\"", "=", "%3A", "%3D", ": ", "\":", ">", "\":[\""]),
                prop::sample::select(vec![
                    "490154203237518", "38400000-8cf0-11bd-b23e-10b96e40000d", "a0b1c2d3e4f5",
                    "13800138000", "x@y.cn", "39.9088",
                ]),
                prop::sample::select(vec!["\",\"", "&", "<", " ", "\n", "}"]),
            ),
            1..12,
        ),
        asks in proptest::collection::vec(any::<u64>(), 1..4),
    ) {
        let text: String = pieces
            .iter()
            .map(|(k, sep, v, end)| format!("{k}{sep}{v}{end}"))
            .collect();
        let buf = text.as_bytes();
        let scanner = PatternScanner::new(&RuleSet::embedded());
        let (masks, rules, scan) = (&scanner.key_masks, &scanner.rules, &scanner.scan[..]);
        let all = u64::MAX >> (64 - scanner.prepass.rules.len());
        let mut warm = KeyVerdicts::default();
        for _ in 0..2 {
            for s in 0..buf.len() {
                for &m in &asks {
                    let m = m & all;
                    let mut none = KeyVerdicts::default();
                    let fresh = masks.allowed_at(rules, scan, &mut none, (buf, s), m);
                    let remembered = masks.allowed_at(rules, scan, &mut warm, (buf, s), m);
                    prop_assert_eq!(remembered, fresh, "at {} in {:?}", s, text);
                }
            }
        }
    }
}

/// The walks before common values are decided by their bytes: the
/// contexts the lookup remembers.
#[test]
fn common_contexts_are_decided_by_their_bytes() {
    let cases: [(&str, Option<usize>, Option<&str>); 5] = [
        ("{\"request_id\":\"", Some(14), Some("request_id")),
        ("x&ts=", Some(4), Some("ts")),
        ("\nX-Request-Id: ", Some(15), Some("X-Request-Id")),
        ("a,\"sha256\":\"", Some(10), Some("sha256")),
        // A key running to the start of the buffer: the start decided it.
        ("imei=", None, Some("imei")),
    ];
    // Values inside a token are answered before any walk; values after
    // a separator, a quote or an escape are not.
    let ua = b"User-Agent: Dalvik/2.1.0 (Linux; U; Android 13)";
    for at in [19, 20, 22] {
        assert!(inside_token(ua, at), "{}", ua[at - 1] as char);
    }
    for text in [&b"x=1"[..], b"\"k\":\"v", b"k%3Dv", b"ab[1"] {
        assert!(!inside_token(text, text.len() - 1), "{text:?}");
    }
    for (text, decided, want) in cases {
        let s = text.len();
        let (key, reach) = key_and_reach(text.as_bytes(), s);
        assert_eq!(key.map(|k| &text[k]), want, "{text}");
        assert_eq!(reach.decided_by(s), decided, "{text}");
    }
}

/// The lookup asks the remembered contexts first: an outcome planted for
/// a context is what it answers there.
#[test]
fn the_key_lookup_answers_from_remembered_contexts() {
    let scanner = PatternScanner::new(&RuleSet::embedded());
    let (masks, rules, scan) = (&scanner.key_masks, &scanner.rules, &scanner.scan[..]);
    let text = b"................................{\"zz\":\"490154203237518\"";
    let s = text.iter().rposition(|&b| b == b':').unwrap() + 2;
    let all = u64::MAX >> (64 - scanner.prepass.rules.len());
    let mut verdicts = KeyVerdicts::default();
    let keyed = masks.allowed_at(rules, scan, &mut verdicts, (text, s), all);
    assert_eq!(verdicts.contexts.len(), 1, "the context is remembered");
    let imei = rules.kinds().iter().position(|k| k.id == "imei").unwrap();
    let planted = KeyVerdict {
        kind: Some(imei),
        deny_context: false,
        context: 0,
    };
    verdicts
        .contexts
        .put(text, s, 7, KeyOutcome::Judged(planted));
    let now = masks.allowed_at(rules, scan, &mut verdicts, (text, s), all);
    assert_eq!(now, all & masks.by_kind[imei]);
    assert_ne!(now, keyed);
}

/// A rule that needs a key refuses, before a match, what its boundary
/// refuses and every byte after which no key is found; a rule that needs
/// none refuses only what its boundary does.
#[test]
fn rules_needing_a_key_refuse_what_no_key_follows() {
    let rules = RuleSet::embedded();
    let first = |id: &str| &rules.kind(id).expect("an embedded kind").patterns[0];
    let oaid = refused_before(first("oaid"));
    for b in *b"-,/&{\n0aZ" {
        assert!(oaid.contains(b), "{:?} is refused", b as char);
    }
    for b in *b"\"' \t\\[:=>" {
        assert!(!oaid.contains(b), "{:?} may end a key", b as char);
    }
    let imei = first("imei");
    assert!(!imei.needs_key_context);
    assert_eq!(
        refused_before(imei),
        ByteSet::matching(|b| imei.before.contains(b))
    );
}
