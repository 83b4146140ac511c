use proptest::prelude::*;

use super::*;

fn set(bytes: &[u8]) -> ByteSet {
    ByteSet::matching(|b| bytes.contains(&b))
}

const DIGITS: &[u8] = b"0123456789";

fn digits_rule(min_len: usize) -> RuleNeeds {
    RuleNeeds {
        bit: 1,
        alphabet: set(DIGITS),
        min_len,
        refused_before: set(DIGITS),
        required: None,
    }
}

fn visited(f: &BlockFilter, buf: &[u8], from: usize, to: usize) -> Vec<usize> {
    with_rules(f, buf, from, to)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// The positions visited, each with the rules handed out with it.
fn with_rules(f: &BlockFilter, buf: &[u8], from: usize, to: usize) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    f.positions(buf, from, to, |p, rules, _| out.push((p, rules)));
    out
}

#[test]
fn each_position_comes_with_the_rules_of_the_groups_that_let_it_through() {
    let digits = digits_rule(4);
    let letters = RuleNeeds {
        bit: 2,
        alphabet: set(b"abcxyz"),
        min_len: 3,
        refused_before: set(b"abcxyz"),
        required: None,
    };
    let f = BlockFilter::new(&[digits, letters]);
    let text = b" 1234 abc 12 xyzab 567890";
    assert_eq!(
        with_rules(&f, text, 1, text.len()),
        vec![(1, 1), (6, 2), (13, 2), (19, 1)]
    );
}

#[test]
fn only_the_starts_of_long_enough_runs_are_visited() {
    let f = BlockFilter::new(&[digits_rule(15)]);
    let mut text = b"x".repeat(60);
    text.extend_from_slice(b"123456789012345 12345678901234 ");
    text.extend_from_slice(&b"y".repeat(100));
    // The 15-digit run starts at 60 and crosses into the next block; the
    // 14-digit one is too short.
    assert_eq!(visited(&f, &text, 1, text.len()), vec![60]);
    // Cut off at `to`, the run is no longer visited.
    assert_eq!(visited(&f, &text, 1, 60), Vec::<usize>::new());
}

#[test]
fn a_run_after_an_escape_is_visited_though_its_raw_byte_before_is_in_it() {
    let hex = RuleNeeds {
        bit: 1,
        alphabet: set(b"0123456789abcdefABCDEF"),
        min_len: 16,
        refused_before: set(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        required: None,
    };
    let f = BlockFilter::new(&[hex]);
    // `%3A` decodes to `:`, which the boundary allows, but the raw byte
    // before the value is the escape's `A`, a hex digit: the run that
    // counts starts at 5, inside the raw run that starts at 3.
    let text = b"a=%3A9774d56d682e549d&";
    assert_eq!(visited(&f, text, 1, text.len()), vec![3, 5]);
    let plain = b"a=:9774d56d682e549d&";
    assert_eq!(visited(&f, plain, 1, plain.len()), vec![3]);
}

#[test]
fn a_required_byte_must_lie_within_the_run_and_its_reach() {
    let email = RuleNeeds {
        bit: 1,
        alphabet: set(b"abcdefghijklmnopqrstuvwxyz.@"),
        min_len: 6,
        refused_before: ByteSet::default(),
        required: Some((set(b"@"), 4)),
    };
    let f = BlockFilter::new(&[email]);
    let text = b" abcd@x.cn abcdefgh@x.cn abcdef ";
    let got = visited(&f, text, 1, text.len());
    // Within four bytes of an `@` (offsets 0..=4) and with six bytes of
    // run ahead: 1..=4 in the first word, 15..=18 in the second.
    assert_eq!(got, vec![1, 2, 3, 4, 15, 16, 17, 18]);
}

/// `n` rules, each with its own one-letter alphabet.
fn one_letter_rules(n: u8) -> Vec<RuleNeeds> {
    (0..n)
        .map(|k| RuleNeeds {
            bit: 1 << k,
            alphabet: set(&[b'a' + k]),
            min_len: 3,
            refused_before: set(DIGITS),
            required: None,
        })
        .collect()
}

#[test]
fn past_the_slots_a_condition_is_left_out_not_the_filter() {
    // Sixteen alphabets fill every slot; the `@` one rule requires, and
    // the digits all of them refuse before, get none.
    let mut rules = one_letter_rules(SLOTS as u8);
    rules[0].required = Some((set(b"@"), 0));
    let f = BlockFilter::new(&rules);
    assert_eq!(f.slot_of(&set(b"@")), None);
    // Without the `@` test the run of `a` is a candidate, and without the
    // digits test so is the run after `9`: still only the runs long enough.
    assert_eq!(visited(&f, b"xaaaxbb9ccc", 1, 11), vec![1, 8]);
}

#[test]
fn too_many_alphabets_means_every_position_is_checked() {
    let f = BlockFilter::new(&one_letter_rules(SLOTS as u8 + 1));
    assert_eq!(visited(&f, b"0123456", 2, 5), vec![2, 3, 4]);
}

proptest! {
    #[test]
    fn reaches_match_their_definition(
        runs in any::<u64>(),
        sparse in any::<[u64; 3]>(),
        within in 0usize..HALF,
    ) {
        // Long runs, and a required set that is rare, as in traffic.
        let a = runs | runs >> 1 | runs >> 3;
        let set = sparse[0] & sparse[1] & sparse[2];
        let got = reaches(a, set, &Reach::new(0, within));
        for p in 0..HALF {
            let want = (p..=p + within)
                .take_while(|&q| q < 64 && a >> q & 1 == 1)
                .any(|q| set >> q & 1 == 1);
            prop_assert_eq!(got >> p & 1 == 1, want, "p={}", p);
        }
    }
}

/// Byte pools the rules' sets and the text are drawn from: few enough
/// that runs, required bytes and refused bytes before runs all happen.
const POOL: &[u8] = b"0123456789abcdefxyzAF-:.@% +";

fn pool_set() -> impl Strategy<Value = ByteSet> {
    proptest::sample::subsequence(POOL, 1..=POOL.len()).prop_map(|bytes| set(&bytes))
}

/// Alphabets inside one another, so that groups fold into wider ones.
const NESTED: &[&[u8]] = &[
    b"0123456789",
    b"0123456789x",
    b"0123456789abcdef",
    b"0123456789abcdef-",
    b"0123456789abcdef-:",
    b".0123456789",
    b"-.0123456789+",
];

fn nested_set() -> impl Strategy<Value = ByteSet> {
    proptest::sample::select(NESTED).prop_map(set)
}

fn rule_needs() -> impl Strategy<Value = RuleNeeds> {
    (
        prop_oneof![pool_set(), nested_set()],
        1usize..=40,
        prop_oneof![Just(ByteSet::default()), pool_set(), nested_set()],
        proptest::option::of((prop_oneof![pool_set(), Just(set(b"."))], 0usize..80)),
    )
        .prop_map(|(alphabet, min_len, refused_before, required)| RuleNeeds {
            bit: 0,
            alphabet,
            min_len,
            refused_before,
            required,
        })
}

/// Rules (numbered), a text and where the filter starts in it. The text
/// is single bytes and long runs of one byte, so that runs past the
/// window's half, with or without a required byte, are common.
fn filter_case() -> impl Strategy<Value = (Vec<RuleNeeds>, Vec<u8>, usize)> {
    (
        proptest::collection::vec(rule_needs(), 1..=14),
        proptest::collection::vec(
            (
                proptest::sample::select(POOL),
                prop_oneof![Just(1usize), 1usize..70],
            ),
            1..100,
        ),
        1usize..70,
    )
        .prop_map(|(rules, pieces, from)| {
            let text = pieces
                .iter()
                .flat_map(|&(b, n)| std::iter::repeat_n(b, n))
                .collect();
            (numbered(rules), text, from)
        })
}

/// The filter takes the widest vectors the CPU has, and classifies with
/// them: AVX-512 where it has it, AVX2 where it has only that.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_widest_vectors_the_cpu_has_are_taken() {
    let f = BlockFilter::new(&[digits_rule(4)]);
    let avx512 = crate::detect::cpu::has_avx512bw();
    assert_eq!(f.octets.is_some(), avx512);
    assert_eq!(f.classify.has_avx512(), avx512);
    assert_eq!(f.lanes.is_some(), !avx512 && crate::detect::cpu::has_avx2());
}

#[cfg(target_arch = "x86_64")]
proptest! {
    #[test]
    fn every_vector_path_names_the_positions_the_group_loop_names(
        (rules, text, from) in filter_case(),
    ) {
        let mut f = BlockFilter::new(&rules);
        prop_assume!(!f.every_position && crate::detect::cpu::has_avx2());
        let fast = with_rules(&f, &text, from, text.len());
        // Where the CPU has AVX-512, the path above took the octets: now
        // the AVX2 lanes, with the AVX2 classification.
        f.octets = None;
        f.classify.forget_avx512();
        f.lanes = Some(f.vectors());
        prop_assert_eq!(&fast, &with_rules(&f, &text, from, text.len()));
        f.lanes = None;
        prop_assert_eq!(fast, with_rules(&f, &text, from, text.len()));
    }
}

/// `rules`, each given its index as its bit.
fn numbered(mut rules: Vec<RuleNeeds>) -> Vec<RuleNeeds> {
    for (i, r) in rules.iter_mut().enumerate() {
        r.bit = 1 << i;
    }
    rules
}

/// Whether `rule`'s needs hold at `p`: its alphabet's run from `p` is
/// long enough and holds a required byte within reach, and the byte
/// before is not one it refuses.
fn needs_hold(rule: &RuleNeeds, text: &[u8], p: usize) -> bool {
    let run = run_of(rule.alphabet, text, p);
    let required = rule.required.is_none_or(|(set, within)| {
        text[p..p + run]
            .iter()
            .take(within + 1)
            .any(|&b| set.contains(b))
    });
    run >= rule.min_len && required && !rule.refused_before.contains(text[p - 1])
}

/// How many bytes from `text[p]` on are in `alphabet`.
fn run_of(alphabet: ByteSet, text: &[u8], p: usize) -> usize {
    text[p..]
        .iter()
        .take_while(|&&b| alphabet.contains(b))
        .count()
}

proptest! {
    #[test]
    fn a_position_carries_every_rule_that_may_start_there_and_only_its_groups(
        (rules, text, from) in filter_case(),
    ) {
        let f = BlockFilter::new(&rules);
        let got = with_rules(&f, &text, from, text.len());
        for p in from..text.len() {
            let want = rules
                .iter()
                .filter(|r| needs_hold(r, &text, p))
                .fold(0, |m, r| m | r.bit);
            let handed = got.iter().find(|&&(q, _)| q == p).map_or(0, |&(_, m)| m);
            prop_assert_eq!(want & !handed, 0, "p={}", p);
            // A rule comes only with a position its own group let
            // through: the group's alphabet (the rule's, or a wider one it
            // was folded into) runs there at least as far as the group's
            // shortest match (as far as the window sees).
            for r in rules.iter().filter(|r| handed & r.bit != 0) {
                let (alphabet, group) = f.group_of(r.bit).expect("every rule has a group");
                prop_assert_eq!(alphabet.intersect(r.alphabet), r.alphabet);
                let shortest = rules
                    .iter()
                    .filter(|o| o.bit & group != 0)
                    .map(|o| o.min_len.max(1))
                    .min()
                    .unwrap_or(1);
                let run = run_of(alphabet, &text, p);
                prop_assert!(run >= shortest.min(HALF + 1), "p={} bit={}", p, r.bit);
            }
        }
    }
}

/// A rule of `alphabet` that refuses `refused` before a match and
/// requires `required` within 4 bytes.
fn rule(alphabet: &[u8], refused: &[u8], required: Option<&[u8]>) -> RuleNeeds {
    RuleNeeds {
        bit: 0,
        alphabet: set(alphabet),
        min_len: 8,
        refused_before: set(refused),
        required: required.map(|r| (set(r), 4)),
    }
}

#[test]
fn groups_fold_only_where_lane_work_is_saved() {
    let hex = b"0123456789abcdef";
    // Five groups, one of them inside another: four fill a quad.
    let five = numbered(vec![
        rule(DIGITS, DIGITS, None),
        rule(b"0123456789x", DIGITS, None),
        rule(hex, hex, None),
        rule(b"xyz", b"", None),
        rule(b"AF", b"", None),
    ]);
    let f = BlockFilter::new(&five);
    assert_eq!(f.groups.len(), 4);
    assert_eq!(f.group_of(1).map(|g| g.0), Some(set(b"0123456789x")));
    // The folded alphabet keeps a slot for the checks.
    assert!(f.slot_of(&set(DIGITS)).is_some());
    // Nothing inside anything: no quad to save, nothing folded.
    let apart = numbered(vec![
        rule(DIGITS, DIGITS, None),
        rule(b"xyz", b"", None),
        rule(b"AF", b"", None),
        rule(b"@", b"", None),
        rule(b"-:", b"", None),
    ]);
    assert_eq!(BlockFilter::new(&apart).groups.len(), 5);
    // Five groups requiring a set, three not: one requiring group folds
    // into one that does not, so that a quad requires nothing.
    let mixed = numbered(vec![
        rule(b"0123456789.", b"", Some(b".")),
        rule(b"xyz.", b"", Some(b".")),
        rule(b"AF.", b"", Some(b".")),
        rule(b"@.", b"", Some(b".")),
        rule(b"+0123456789", b"", Some(b"+")),
        rule(b"-+0123456789", b"", None),
        rule(hex, b"", None),
        rule(b"z:", b"", None),
    ]);
    let f = BlockFilter::new(&mixed);
    assert_eq!(f.groups.len(), 7);
    assert_eq!(f.group_of(1 << 4).map(|g| g.0), Some(set(b"-+0123456789")));
    let requiring = f.groups.iter().filter(|g| g.required.is_some()).count();
    assert_eq!(requiring, 4);
    // All requiring groups in one quad already: none folds, though one
    // could.
    let one_quad = numbered(vec![
        rule(b"xyz.", b"", Some(b".")),
        rule(b"AF.", b"", Some(b".")),
        rule(b"+0123456789", b"", Some(b"+")),
        rule(b"-+0123456789", b"", None),
    ]);
    assert_eq!(BlockFilter::new(&one_quad).groups.len(), 4);
}
