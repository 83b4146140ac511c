use proptest::prelude::*;

use super::*;

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
