//! Tests of the streaming known-value search, including property tests
//! against a brute-force oracle.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

use super::*;

const EXAMPLE: &str = include_str!("../../detectors/example-profile.toml");

fn profile(toml: &str) -> DeviceProfile {
    DeviceProfile::from_toml(toml, "test.toml").unwrap_or_else(|e| panic!("profile: {e}"))
}

fn example() -> &'static KnownValueMatcher {
    static MATCHER: std::sync::OnceLock<KnownValueMatcher> = std::sync::OnceLock::new();
    MATCHER.get_or_init(|| KnownValueMatcher::new(&profile(EXAMPLE)))
}

/// Feeds `msg` in chunks of the given sizes (cycled; 0 is skipped as an
/// empty feed) and finishes.
fn search_chunked(m: &KnownValueMatcher, msg: &[u8], sizes: &[usize]) -> Vec<KnownMatch> {
    let mut out = Vec::new();
    let mut push = |k| out.push(k);
    let mut stream = m.stream();
    let mut rest = msg;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        stream.feed(chunk, &mut push);
        rest = tail;
    }
    stream.finish(&mut push);
    out
}

fn search(m: &KnownValueMatcher, msg: &[u8]) -> Vec<KnownMatch> {
    search_chunked(m, msg, &[usize::MAX])
}

fn found(matches: &[KnownMatch], id: &str) -> bool {
    matches.iter().any(|m| m.identifier == id)
}

/// Every searched value of the example profile in plain text, JSON-ish.
fn plain_message() -> String {
    let p = profile(EXAMPLE);
    let mut msg = String::from("{");
    for (id, value) in p.values() {
        msg.push_str(&format!("\"{id}\":\"{}\",", value.expose()));
    }
    msg.push_str("\"lat\":39.90881,\"lon\":116.39752,\"apps\":[");
    for app in p.installed_apps() {
        msg.push_str(&format!("\"{app}\","));
    }
    msg.push_str("]}");
    msg
}

#[test]
fn every_value_is_found_when_fed_one_byte_at_a_time() {
    let m = example();
    let msg = plain_message();
    let whole = search(m, msg.as_bytes());
    for (id, _) in profile(EXAMPLE).values() {
        assert!(found(&whole, id), "{id} not found");
    }
    assert!(found(&whole, "location") && found(&whole, "installed_apps"));
    assert_eq!(search_chunked(m, msg.as_bytes(), &[1]), whole);
    assert_eq!(search_chunked(m, msg.as_bytes(), &[7, 1, 3, 300]), whole);
}

#[test]
fn every_split_point_gives_the_same_matches() {
    let m = example();
    let msg = b"a=1&imei=490154203237518&m=02%3A1a%3A11%3Af0%3A3c%3A77&e=tester@example.com&n=9";
    let whole = search(m, msg);
    assert_eq!(whole.len(), 3, "{whole:?}");
    for split in 0..=msg.len() {
        let (a, b) = msg.split_at(split);
        assert_eq!(
            search_chunked(m, msg, &[a.len(), b.len()]),
            whole,
            "split at {split}"
        );
    }
}

#[test]
fn the_longest_form_is_found_at_every_split_point() {
    // The held bytes reach furthest into the next chunk for it.
    let longest = single_forms().iter().max_by_key(|f| f.bytes.len()).unwrap();
    let msg = [&b"v="[..], &longest.bytes, b"&"].concat();
    let whole = search(example(), &msg);
    let expected = (2, 2 + longest.bytes.len() as u64);
    assert!(
        whole.iter().any(|k| (k.start, k.end) == expected),
        "{whole:?}"
    );
    for split in 0..=msg.len() {
        let sizes = [split, msg.len() - split];
        assert_eq!(search_chunked(example(), &msg, &sizes), whole, "{split}");
    }
}

#[test]
fn forms_ending_together_keep_their_order_at_every_split_point() {
    // `wxyz`, the shortest form, ends where `uvwxyz` ends. Found a chunk
    // later than the longer one (when a split makes it start at the first
    // start not yet searched), it must still be reported first: matches
    // ending at one offset come in form order, whatever the chunking.
    let m = KnownValueMatcher::new(&profile(
        "[custom]\na_short = \"wxyz\"\nb_long = \"uvwxyz\"\n",
    ));
    // Longer than the longest form, so that some split leaves the held
    // bytes starting right at `wxyz`.
    let pad = " ".repeat(200);
    let msg = format!("{{{pad}\"k\": \"uvwxyz\", \"n\": 1{pad}}}").into_bytes();
    let msg = &msg[..];
    let whole = search(&m, msg);
    let ids: Vec<&str> = whole.iter().map(|k| k.identifier.as_str()).collect();
    assert_eq!(ids, ["custom:a_short", "custom:b_long"], "{whole:?}");
    for split in 0..=msg.len() {
        let sizes = [split, msg.len() - split];
        assert_eq!(search_chunked(&m, msg, &sizes), whole, "{split}");
    }
}

#[test]
fn offsets_span_the_value_in_the_whole_message() {
    let m = example();
    let msg = b"xx {\"imei\":\"490154203237518\"} yy";
    let matches = search_chunked(m, msg, &[5, 5, 5]);
    assert_eq!(
        matches,
        vec![KnownMatch {
            identifier: "imei".into(),
            encoding: Encoding::Plain,
            start: 12,
            end: 27
        }]
    );
    assert_eq!(&msg[12..27], b"490154203237518");
}

#[test]
fn digit_identifiers_need_digit_boundaries() {
    let m = example();
    for msg in [
        "n=1234490154203237518999",
        "n=4901542032375180",
        "n=0490154203237518",
    ] {
        for split in 0..=msg.len() {
            let (a, b) = msg.split_at(split);
            let matches = search_chunked(m, msg.as_bytes(), &[a.len(), b.len()]);
            assert!(
                !found(&matches, "imei"),
                "{msg} split at {split}: {matches:?}"
            );
        }
    }
    for msg in [
        "imei=490154203237518&x=1",
        "490154203237518",
        "a490154203237518b",
        "[490154203237518]",
    ] {
        assert!(
            found(&search_chunked(m, msg.as_bytes(), &[1]), "imei"),
            "{msg}"
        );
    }
    // The national number inside +86...: reported as the E.164 form only.
    let matches = search(m, b"tel=+8613800138000;");
    let encodings: Vec<Encoding> = matches.iter().map(|k| k.encoding).collect();
    assert!(
        encodings.contains(&Encoding::Plain) && !encodings.contains(&Encoding::National),
        "{matches:?}"
    );
}

#[test]
fn hex_forms_need_hex_boundaries() {
    let m = example();
    let md5 = "0eaed834a1e6f4b2bf0c024e0013dea1";
    assert!(!found(
        &search(m, format!("h=ff{md5}00").as_bytes()),
        "imei"
    ));
    assert!(!found(&search(m, format!("h=a{md5}").as_bytes()), "imei"));
    let matches = search_chunked(m, format!("h={md5}&").as_bytes(), &[1]);
    assert_eq!(matches.len(), 1);
    assert_eq!(
        (matches[0].identifier.as_str(), matches[0].encoding),
        ("imei", Encoding::Md5)
    );
    assert!(!found(&search(m, b"id=e3f8a2c1be47d9a05"), "android_id"));
    assert!(found(&search(m, b"id=3f8a2c1be47d9a05"), "android_id"));
}

#[test]
fn inner_base64_is_found_inside_longer_blobs_at_any_chunking() {
    let m = example();
    for prefix in 0..=2 {
        let blob = STANDARD.encode(format!("{}imei=490154203237518&a=1", "x".repeat(prefix)));
        let msg = format!("{{\"data\":\"{blob}\"}}");
        for sizes in [&[usize::MAX][..], &[1], &[3, 5]] {
            let matches = search_chunked(m, msg.as_bytes(), sizes);
            assert!(
                found(&matches, "imei"),
                "prefix {prefix}, chunks {sizes:?}: {msg}"
            );
        }
    }
}

#[test]
fn location_needs_both_coordinates() {
    let m = example();
    assert!(search(m, b"{\"lat\":39.90881,\"acc\":12}").is_empty());
    assert!(search(m, b"{\"lon\":116.39752}").is_empty());
    let msg = b"{\"lat\":39.90881,\"lng\":116.398}";
    let matches = search_chunked(m, msg, &[1]);
    assert_eq!(matches.len(), 1, "{matches:?}");
    let k = &matches[0];
    assert_eq!(
        (k.identifier.as_str(), k.encoding),
        ("location", Encoding::Decimal)
    );
    assert_eq!(&msg[k.start as usize..k.end as usize], b"116.398");
    // 139.908 is not 39.908.
    assert!(search(m, b"{\"lat\":139.90881,\"lng\":116.398}").is_empty());
}

#[test]
fn installed_apps_need_min_apps_distinct_packages() {
    let m = example();
    let two = b"[\"com.tencent.mm\",\"com.sina.weibo\",\"com.tencent.mm\"]";
    assert!(search(m, two).is_empty());
    let prefix = b"[\"com.tencent.mmkv\",\"com.sina.weibo\",\"com.eg.android.AlipayGphone\"]";
    assert!(
        search(m, prefix).is_empty(),
        "com.tencent.mmkv is not com.tencent.mm"
    );
    let three = b"[\"com.tencent.mm\",\"com.sina.weibo\",\"com.eg.android.AlipayGphone\",\"com.sina.weibo\"]";
    let matches = search_chunked(m, three, &[2]);
    assert_eq!(matches.len(), 1, "{matches:?}");
    assert_eq!(
        (matches[0].identifier.as_str(), matches[0].encoding),
        ("installed_apps", Encoding::Plain)
    );
    assert_eq!(
        &three[matches[0].start as usize..matches[0].end as usize],
        b"com.eg.android.AlipayGphone"
    );

    // Fewer listed: all of them. The app under test never counts.
    let one = KnownValueMatcher::new(&profile("installed_apps = [\"com.sina.weibo\"]"));
    assert_eq!(search(&one, b"com.sina.weibo").len(), 1);
    let own = KnownValueMatcher::new(&profile(
        "app = \"com.example.app\"\ninstalled_apps = [\"com.example.app\", \"com.sina.weibo\"]",
    ));
    assert!(search(&own, b"com.example.app").is_empty());
    assert_eq!(search(&own, b"com.example.app com.sina.weibo").len(), 1);
}

#[test]
fn empty_profile_never_matches() {
    let m = KnownValueMatcher::new(&DeviceProfile::default());
    assert!(m.is_empty());
    assert_eq!(m.pattern_count(), 0);
    assert!(search_chunked(&m, plain_message().as_bytes(), &[1, 2]).is_empty());
}

#[test]
fn a_full_profile_has_a_few_hundred_patterns() {
    let m = example();
    assert!(!m.is_empty());
    assert!(
        (200..=2000).contains(&m.pattern_count()),
        "{}",
        m.pattern_count()
    );
    let debug = format!("{m:?}");
    assert!(!debug.contains("490154") && debug.len() < 2000, "{debug}");
}

#[test]
fn finish_resets_the_stream() {
    let m = example();
    let mut out = Vec::new();
    let mut stream = m.stream();
    for _ in 0..2 {
        stream.feed(b"imei=490154203237518", &mut |k| out.push(k));
        stream.finish(&mut |k| out.push(k));
    }
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], out[1]);
    assert_eq!(out[0].start, 5);
}

/// Brute force: every occurrence of every non-aggregate form in `msg`
/// whose boundaries pass, sorted as the stream reports them.
fn oracle(msg: &[u8]) -> Vec<KnownMatch> {
    oracle_of(single_forms(), msg)
}

fn oracle_of(forms: &[Form], msg: &[u8]) -> Vec<KnownMatch> {
    let mut out = Vec::new();
    for form in forms {
        let (left, right) = boundaries(form);
        let len = form.bytes.len();
        for start in 0..msg.len().saturating_sub(len - 1) {
            if msg[start..start + len] != form.bytes[..] {
                continue;
            }
            let before = start.checked_sub(1).map(|i| msg[i]);
            let after = msg.get(start + len).copied();
            if left.is_some_and(|c| before.is_some_and(|b| c.contains(b)))
                || right.is_some_and(|c| after.is_some_and(|b| c.contains(b)))
            {
                continue;
            }
            out.push(KnownMatch {
                identifier: form.identifier.clone(),
                encoding: form.encoding,
                start: start as u64,
                end: (start + len) as u64,
            });
        }
    }
    out.sort_by(|a, b| (a.end, a.start, &a.identifier).cmp(&(b.end, b.start, &b.identifier)));
    out
}

fn sorted(mut v: Vec<KnownMatch>) -> Vec<KnownMatch> {
    v.retain(|k| k.identifier != "location" && k.identifier != "installed_apps");
    v.sort_by(|a, b| (a.end, a.start, &a.identifier).cmp(&(b.end, b.start, &b.identifier)));
    v
}

/// Forms that are reported on their own (not location or app parts).
fn single_forms() -> &'static [Form] {
    static FORMS: std::sync::OnceLock<Vec<Form>> = std::sync::OnceLock::new();
    FORMS.get_or_init(|| single_forms_of(&profile(EXAMPLE)))
}

fn single_forms_of(p: &DeviceProfile) -> Vec<Form> {
    expand(p)
        .into_iter()
        .filter(|f| !f.identifier.starts_with("location:") && f.identifier != "installed_apps")
        .collect()
}

/// A profile whose shortest form (`a.b`) is too short for the sampled
/// filter, so its search walks the automaton.
const SHORT_FORMS: &str = r#"
imei = "490154203237518"
mac = "02:1a:11:f0:3c:77"
email = "tester@example.com"
installed_apps = ["a.b", "com.tencent.mm", "c.d"]
[custom]
account = "tester_wang"
"#;

/// A profile's matcher and its forms reported on their own.
type Built = (KnownValueMatcher, Vec<Form>);

fn built(toml: &str) -> Built {
    let p = profile(toml);
    (KnownValueMatcher::new(&p), single_forms_of(&p))
}

fn short_forms() -> &'static Built {
    static SHORT: std::sync::OnceLock<Built> = std::sync::OnceLock::new();
    SHORT.get_or_init(|| built(SHORT_FORMS))
}

/// A profile with more forms under 12 bytes than the packed searcher
/// takes, so that every form is sampled, every third byte.
const MANY_SHORT_FORMS: &str = r#"
imei = "490154203237518"
ssid = "HomeNet"
location = { lat = 39.9088, lon = 116.3975 }
[custom]
a = "Kx7q"
b = "zeta9"
c = "Mo-Li"
d = "Qu_1"
"#;

fn many_short_forms() -> &'static Built {
    static MANY: std::sync::OnceLock<Built> = std::sync::OnceLock::new();
    MANY.get_or_init(|| built(MANY_SHORT_FORMS))
}

#[test]
fn each_profile_takes_the_search_path_its_tests_mean() {
    let path = |m: &KnownValueMatcher| m.search.as_ref().map(Search::path);
    // The packed searcher needs SIMD (SSSE3 or NEON); without it the
    // example's forms are all sampled.
    let packed = if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        "sampled+packed"
    } else {
        "sampled"
    };
    assert_eq!(path(example()), Some(packed));
    assert_eq!(path(&many_short_forms().0), Some("sampled"));
    assert_eq!(path(&short_forms().0), Some("automaton"));
}

/// Every occurrence of a short form is found, also where occurrences
/// overlap at consecutive starts and two forms start at the same byte, in
/// one chunk or fed a byte at a time.
#[test]
fn overlapping_short_forms_are_each_found() {
    let forms = [
        b"aaaa".to_vec(),
        b"aaaab".to_vec(),
        b"0123456789abcdef".to_vec(),
    ];
    let search = Search::new(&forms).expect("forms");
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        assert_eq!(search.path(), "sampled+packed");
    }
    let msg = b"xaaaaaab";
    for size in [msg.len(), 1] {
        let (mut cursor, mut hits) = (Cursor::default(), Vec::new());
        for chunk in msg.chunks(size) {
            search.feed(&mut cursor, chunk, &mut hits);
            cursor.advance(chunk);
        }
        search.finish(&mut cursor, &mut hits);
        let mut got: Vec<(usize, u64)> = hits.iter().map(|h| (h.pattern, h.end)).collect();
        got.sort_unstable();
        assert_eq!(got, [(0, 5), (0, 6), (0, 7), (1, 8)], "chunks of {size}");
    }
}

#[test]
fn a_long_message_agrees_with_brute_force() {
    // Every form planted once in ~40 KB of digit/hex-heavy filler, so the
    // filter's middle, the chunk edges and the boundaries all get work.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut msg = Vec::new();
    for form in single_forms() {
        for _ in 0..40 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            msg.push(b"0123456789abcdef.:+ x-\"{}"[(seed % 25) as usize]);
        }
        msg.extend_from_slice(&form.bytes);
    }
    let whole = search(example(), &msg);
    assert_eq!(sorted(whole.clone()), oracle(&msg));
    assert!(whole.len() >= single_forms().len() / 2, "{}", whole.len());
    for sizes in [&[16 << 10][..], &[4099, 1, 77], &[1]] {
        assert_eq!(search_chunked(example(), &msg, sizes), whole, "{sizes:?}");
    }
}

/// Filler that cannot touch a boundary class: no digits, no hex letters.
fn filler() -> impl Strategy<Value = String> {
    "[g-zG-Z {}\":,=&\\[\\]]{0,200}"
}

fn chunking() -> impl Strategy<Value = Vec<usize>> {
    // Chunks shorter and longer than the longest form: the held bytes
    // span several chunks, or are searched joined to the next one.
    prop::collection::vec(prop_oneof![1usize..40, 100usize..600], 1..8)
}

/// One of `forms`, as text to plant.
fn planted(forms: fn() -> &'static [Form]) -> impl Strategy<Value = String> {
    any::<prop::sample::Index>().prop_map(move |i| {
        let forms = forms();
        String::from_utf8_lossy(&forms[i.index(forms.len())].bytes).into_owned()
    })
}

/// What `matcher` reports in the message made of `parts` is what brute
/// force finds of `forms`, fed whole or in chunks of `sizes`.
fn agrees_with_brute_force(
    matcher: &KnownValueMatcher,
    forms: &[Form],
    parts: &[String],
    sizes: &[usize],
) -> Result<(), TestCaseError> {
    let msg = parts.concat().into_bytes();
    let whole = search(matcher, &msg);
    prop_assert_eq!(sorted(whole.clone()), oracle_of(forms, &msg));
    prop_assert_eq!(search_chunked(matcher, &msg, sizes), whole);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_planted_form_is_always_found(
        index in any::<prop::sample::Index>(),
        before in filler(),
        after in filler(),
        sizes in chunking(),
    ) {
        let forms = single_forms();
        let form = &forms[index.index(forms.len())];
        let mut msg = before.into_bytes();
        let start = msg.len() as u64;
        msg.extend_from_slice(&form.bytes);
        msg.extend_from_slice(after.as_bytes());
        let matches = search_chunked(example(), &msg, &sizes);
        let want = KnownMatch {
            identifier: form.identifier.clone(),
            encoding: form.encoding,
            start,
            end: start + form.bytes.len() as u64,
        };
        prop_assert!(matches.contains(&want), "{:?} not in {:?}", want, matches);
    }

    #[test]
    fn text_without_planted_values_has_no_match(
        parts in prop::collection::vec(
            prop_oneof!["[a-zA-Z{}\":,=&._ -]{1,40}", "[0-9]{1,6}", "[0-9]{16,40}"],
            0..20,
        ),
        sizes in chunking(),
    ) {
        let msg = parts.concat();
        let matches = search_chunked(example(), msg.as_bytes(), &sizes);
        prop_assert!(matches.is_empty(), "{:?} in {:?}", matches, msg);
    }

    #[test]
    fn the_stream_agrees_with_brute_force_at_any_chunking(
        parts in prop::collection::vec(
            prop_oneof!["[0-9a-f.:+ x-]{0,12}", planted(single_forms)],
            0..12,
        ),
        sizes in chunking(),
    ) {
        agrees_with_brute_force(example(), single_forms(), &parts, &sizes)?;
    }

    /// The same where every form is sampled: too many are short for the
    /// packed searcher. Forms overlap themselves and each other here
    /// (`Kx7qKx7q`, a base64 fragment inside a longer one).
    #[test]
    fn sampling_every_form_agrees_with_brute_force_at_any_chunking(
        parts in prop::collection::vec(
            prop_oneof!["[0-9a-fKxq7 .:+-]{0,12}", planted(|| &many_short_forms().1)],
            0..12,
        ),
        sizes in chunking(),
    ) {
        let (matcher, forms) = many_short_forms();
        agrees_with_brute_force(matcher, forms, &parts, &sizes)?;
    }

    /// The same for the automaton, which serves profiles with a form too
    /// short for the filter; its reports, app lists included,
    /// do not depend on the chunking.
    #[test]
    fn the_automaton_agrees_with_brute_force_at_any_chunking(
        parts in prop::collection::vec(
            prop_oneof![
                "[0-9a-f.:+ x-]{0,12}",
                Just("a.b".to_string()),
                Just("com.tencent.mm".to_string()),
                Just(" c.d ".to_string()),
                planted(|| &short_forms().1),
            ],
            0..12,
        ),
        sizes in chunking(),
    ) {
        let (matcher, forms) = short_forms();
        agrees_with_brute_force(matcher, forms, &parts, &sizes)?;
    }
}
