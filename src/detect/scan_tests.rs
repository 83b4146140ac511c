//! Message scan tests: evidence, nested decoding, and chunking independence.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use proptest::prelude::*;

use super::*;
use crate::detect::profile::DeviceProfile;
use crate::detect::rules::RuleSet;

/// A match decided after its bytes left the kept tail (a latitude held
/// until the longitude shows up 20 KiB later, a key value decided in
/// the next chunk) gets the reported value as evidence; cutting it out
/// of the tail used to panic.
#[test]
fn late_decisions_keep_their_evidence() {
    let rules = RuleSet::embedded();
    let detectors = Detectors {
        known: KnownValueMatcher::new(&DeviceProfile::default()),
        patterns: PatternScanner::new(&rules),
        keys: KeyScanner::new(&rules),
        limits: ScanLimits::default(),
        redact: false,
    };
    let mut msg = String::from(r#"{"lat":39.9088,"#);
    msg.push_str(&"x".repeat(20_000));
    msg.push_str(r#","lng":116.3975,"#);
    msg.push_str(&"y".repeat(16_384 - msg.len() % 16_384 - 30));
    msg.push_str(r#""imei":"490154203237518""#);
    msg.push_str(&"z".repeat(1000));
    let mut scan = MessageScan::new(&detectors, Vec::new());
    for chunk in msg.as_bytes().chunks(16_384) {
        scan.feed(chunk);
    }
    let hits = scan.finish();
    let evidence = |id: &str| {
        let hit = hits.iter().find(|h| h.identifier == id);
        hit.map(|h| h.evidence.clone()).unwrap_or_default()
    };
    assert!(evidence("location").contains("39.9088"), "{hits:?}");
    assert!(evidence("imei").contains("490154203237518"), "{hits:?}");
}

static DETECTORS: LazyLock<Detectors> = LazyLock::new(|| {
    let profile = include_str!("../../detectors/example-profile.toml");
    let profile = DeviceProfile::from_toml(profile, "example-profile.toml").expect("profile");
    let rules = RuleSet::embedded();
    Detectors {
        known: KnownValueMatcher::new(&profile),
        patterns: PatternScanner::new(&rules),
        keys: KeyScanner::new(&rules),
        limits: ScanLimits::default(),
        redact: false,
    }
});

/// What a scan found, without the evidence (whose context depends on
/// where chunks were cut).
fn found(hits: &[Hit]) -> Vec<(String, String, DetectorKind, Confidence, Vec<String>)> {
    let id = |h: &Hit| {
        let (enc, chain) = (h.encoding.clone(), h.chain.clone());
        (h.identifier.clone(), enc, h.detector, h.confidence, chain)
    };
    hits.iter().map(id).collect()
}

fn scan_chunks(chunks: &[&[u8]]) -> Vec<Hit> {
    let mut scan = MessageScan::new(&DETECTORS, Vec::new());
    for c in chunks {
        scan.feed(c);
    }
    scan.finish()
}

fn identifiers(hits: &[Hit]) -> BTreeSet<String> {
    hits.iter().map(|h| h.identifier.clone()).collect()
}

/// Every `%XX` decoded, as the whole-message child used to see it.
fn percent_decoded(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len());
    let mut i = 0;
    while i < msg.len() {
        match crate::detect::percent::escape_at(msg, i) {
            Some(b) => (out.push(b), i += 3),
            None => (out.push(msg[i]), i += 1),
        };
    }
    out
}

/// Messages mixing plain and URL-encoded identifiers (as parameters, in
/// URL-encoded JSON, in base64 with escaped `+` and `/`) with filler.
fn traffic() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "imei=490154203237518&",
        "q=imei%3D356938035643809%26x%3D1&",
        "data=%7B%22phone%22%3A%2213912345678%22%2C%22n%22%3A1%7D&",
        "contact=zhang.wei%40mail.qq.com&",
        "mac=02%3A1a%3A11%3Af0%3A3c%3A77&",
        "{\"lat\":39.90881,",
        "\"lng\":116.39752}",
        "loc=31.230416%2C121.473701&",
        "lat%3D22.543096%26lng%3D114.057865",
        "page=%2Fhome%2F123&",
        "blob=eyJpbWVpIjoiNDkwMTU0MjAzMjM3NTE4In0%3D&",
        // `{"t":"~~~>>>???","imei":"356938035643809"}` and
        // `{"s":"??>","android_id":"9c2f1e4a7b3d5e60"}`: the escapes cut the
        // base64 run before the identifier.
        "b=eyJ0Ijoifn5%2BPj4%2BPz8%2FIiwiaW1laSI6IjM1NjkzODAzNTY0MzgwOSJ9&",
        "d=eyJzIjoiPz8%2BIiwiYW5kcm9pZF9pZCI6IjljMmYxZTRhN2IzZDVlNjAifQ%3D%3D&",
        "%",
        "%2",
        " ",
        "\n",
        "&",
        "the quick brown fox jumps over the lazy dog ",
        "0123456789abcdef0123456789abcdef",
    ]);
    let filler = (0usize..3).prop_map(|n| "lorem ipsum dolor sit amet ".repeat(n * 40));
    let part = prop_oneof![4 => piece.prop_map(String::from), 1 => filler];
    proptest::collection::vec(part, 0..16).prop_map(|v| v.concat())
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
    /// Decoding only the escaped regions finds the identifiers decoding
    /// the whole message finds.
    #[test]
    fn escaped_regions_find_what_decoding_everything_finds(text in traffic()) {
        let msg = text.as_bytes();
        let got = identifiers(&scan_chunks(&[msg]));
        let mut want = identifiers(&scan_chunks(&[msg]));
        want.extend(identifiers(&scan_chunks(&[&percent_decoded(msg)])));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn findings_do_not_depend_on_chunking(
        text in traffic(),
        points in proptest::collection::vec(0usize..4000, 0..6),
    ) {
        let msg = text.as_bytes();
        let want = found(&scan_chunks(&[msg]));
        prop_assert_eq!(found(&scan_chunks(&cut(msg, points))), want.clone());
        let bytes: Vec<&[u8]> = msg.chunks(1).collect();
        prop_assert_eq!(found(&scan_chunks(&bytes)), want);
    }
}

proptest! {
    /// Scans take over the buffers finished ones leave (`Spares`), on any
    /// thread: what a message yields, evidence included, does not depend
    /// on what was scanned before it, however that was chunked.
    #[test]
    fn a_scan_finds_the_same_whatever_was_scanned_before(
        before in traffic(),
        text in traffic(),
        points in proptest::collection::vec(0usize..4000, 0..6),
    ) {
        let with_evidence = |hits: Vec<Hit>| {
            let evidence: Vec<String> = hits.iter().map(|h| h.evidence.clone()).collect();
            (found(&hits), evidence)
        };
        let msg = text.as_bytes();
        let want = with_evidence(scan_chunks(&[msg]));
        scan_chunks(&cut(before.as_bytes(), points));
        prop_assert_eq!(with_evidence(scan_chunks(&[msg])), want);
    }
}

/// Plain text decodes to itself: only the region around an escape goes
/// to the percent-decoded child, however long the message.
#[test]
fn only_escaped_regions_are_decoded_again() {
    let filler = "lorem ipsum dolor sit amet ".repeat(40_000);
    let msg = format!("{filler}q=imei%3D356938035643809&{filler}");
    let mut scan = MessageScan::new(&DETECTORS, Vec::new());
    for chunk in msg.as_bytes().chunks(16 << 10) {
        scan.feed(chunk);
    }
    let child_fed = scan.percent.child.as_ref().map(|c| c.fed);
    assert!(
        child_fed.is_some_and(|n| n < 2048),
        "child fed: {child_fed:?}"
    );
    let hits = scan.finish();
    assert!(hits.iter().any(|h| h.identifier == "imei"), "{hits:?}");
}

proptest! {
    /// The quick look at a base64 run's first bytes only turns away runs
    /// that decoding them whole would turn away too.
    #[test]
    fn surely_binary_runs_decode_to_nothing_worth_scanning(
        payload in prop_oneof![
            proptest::collection::vec(any::<u8>(), 18..200),
            "[0-9a-f]{24,96}".prop_map(String::into_bytes),
            "[ -~]{18,120}".prop_map(String::into_bytes),
            "[ -~é€\u{7f}]{10,60}".prop_map(String::into_bytes),
            // Mostly non-ASCII text with every kind of whitespace:
            // the UTF-8 reading decides these.
            "[é€\t\n\u{b}\u{c}\r\u{85}a]{10,40}".prop_map(String::into_bytes),
        ],
        as_text in any::<bool>(),
        url_safe in any::<bool>(),
    ) {
        use base64::Engine as _;
        let engine = if url_safe {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
        } else {
            base64::engine::general_purpose::STANDARD_NO_PAD
        };
        // Either the bytes themselves read as base64 (hex ids), or their
        // encoding.
        let b64 = if as_text { payload } else { engine.encode(&payload).into_bytes() };
        if b64.iter().all(|b| nested::BASE64[usize::from(*b)] && *b != b'=') && b64.len() >= 24 {
            let safe = b64.iter().any(|b| matches!(b, b'-' | b'_'));
            if nested::surely_binary(&b64, safe) {
                let mut buffers = PayloadBuffers::default();
                prop_assert!(nested::decode_payload(&b64, safe, 1 << 20, &mut buffers).is_none());
            }
        }
    }
}

proptest! {
    /// The hand-made prefix decoder agrees with the `base64` engine, on
    /// runs of either alphabet, of both, and with bytes of neither.
    #[test]
    fn the_prefix_decoder_agrees_with_the_engine(
        b64 in "[A-Za-z0-9+/_=-]{0,40}|[A-Za-z0-9+/]{0,40}|[A-Za-z0-9_-]{0,40}",
        url_safe in any::<bool>(),
    ) {
        use base64::Engine as _;
        let engine = if url_safe {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
        } else {
            base64::engine::general_purpose::STANDARD_NO_PAD
        };
        let b64 = b64.as_bytes();
        let whole = &b64[..(b64.len() / 4).min(8) * 4];
        let mut want = [0u8; 32];
        let want = engine.decode_slice(whole, &mut want).ok().map(|n| want[..n].to_vec());
        let got = nested::decode_prefix(b64, url_safe).map(|(bytes, n)| bytes[..n].to_vec());
        prop_assert_eq!(got, want);
    }
}

/// Deterministic noise: what compressed or encrypted bodies look like.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn scan_body(chunks: &[&[u8]]) -> Vec<Hit> {
    let mut scan = MessageScan::body(&DETECTORS, Vec::new());
    for c in chunks {
        scan.feed(c);
    }
    scan.finish()
}

#[test]
fn binary_tells_noise_from_text_and_protobuf() {
    assert!(is_binary(&noise(SNIFF_LEN, 7)));
    assert!(!is_binary(br#"{"imei":"490154203237518","n":[1,2,3]}"#));
    assert!(!is_binary("用户 手机号 13800138000\r\n\tok".as_bytes()));
    // Protobuf with string fields: a tag and a length byte per field.
    let mut proto = Vec::new();
    for field in ["com.tencent.mm", "zhang.san@qq.com", "Xiaomi Redmi Note 12"] {
        proto.extend_from_slice(&[0x0a, field.len() as u8]);
        proto.extend_from_slice(field.as_bytes());
    }
    assert!(!is_binary(&proto));
    assert!(!is_binary(b""));
}

/// In a binary body only the known-value search reads: the profile's IMEI
/// planted in noise is found, while an e-mail address that is not the
/// profile's (found by its pattern in text) is not.
#[test]
fn binary_bodies_are_read_by_the_known_value_search_only() {
    let (profile_imei, other_email) = (b"imei=490154203237518&", b"to=zhang.wei@mail.qq.com&");
    let plant = |body: &mut Vec<u8>, at: usize, what: &[u8]| {
        body.splice(at..at + what.len(), what.iter().copied());
    };
    let mut body = noise(256 * 1024, 0x9e37_79b9_7f4a_7c15);
    plant(&mut body, 100_000, profile_imei);
    plant(&mut body, 200_000, other_email);
    let hits = scan_body(&[&body]);
    assert_eq!(
        identifiers(&hits),
        BTreeSet::from(["imei".to_owned()]),
        "{hits:?}"
    );
    assert_eq!(hits[0].detector, DetectorKind::Profile);

    // The same bytes after a text start: every detector reads them.
    let mut text = b"hello ".repeat(SNIFF_LEN);
    text.extend_from_slice(&body);
    let hits = scan_body(&[&text]);
    assert!(identifiers(&hits).contains("email"), "{hits:?}");
}

proptest! {
    /// The text-or-binary decision, and so what is found, does not depend
    /// on how the body is chunked, including bodies shorter than the
    /// sniffed start.
    #[test]
    fn body_findings_do_not_depend_on_chunking(
        text in traffic(),
        binary in any::<bool>(),
        len in 0usize..2000,
        points in proptest::collection::vec(0usize..4000, 0..6),
    ) {
        let mut msg = if binary { noise(len, 3) } else { Vec::new() };
        msg.extend_from_slice(text.as_bytes());
        let want = found(&scan_body(&[&msg]));
        prop_assert_eq!(found(&scan_body(&cut(&msg, points))), want.clone());
        let bytes: Vec<&[u8]> = msg.chunks(1).collect();
        prop_assert_eq!(found(&scan_body(&bytes)), want);
    }
}

/// The quick look does turn runs away: a short run of noise (ids, digests)
/// is judged binary from its prefix in both alphabets, while gzip and text
/// are left to decode. (Longer runs can only be judged whole: the prefix
/// bounds their share of unprintable bytes from below.)
#[test]
fn surely_binary_turns_noise_away_and_keeps_gzip_and_text() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let noise = noise(30, 5);
    for (engine, safe) in [(STANDARD_NO_PAD, false), (URL_SAFE_NO_PAD, true)] {
        let b64 = engine.encode(&noise).into_bytes();
        assert!(nested::surely_binary(&b64, safe), "{safe}");
    }
    let mut gzip = vec![0x1f, 0x8b];
    gzip.extend_from_slice(&noise);
    let text = b"{\"imei\":\"490154203237518\",\"note\":\"hello there\"}";
    for kept in [&gzip[..], &text[..]] {
        assert!(!nested::surely_binary(
            STANDARD_NO_PAD.encode(kept).as_bytes(),
            false
        ));
    }
}

/// Containers are named by their syntax: JSON by its first byte, a form
/// by a `=` that assigns something.
#[test]
fn containers_are_named_by_their_syntax() {
    let cases: [(&[u8], Option<&str>); 7] = [
        (b" {\"imei\":1}", Some("json")),
        (b"[1,2]", Some("json")),
        (b"imei=1&mac=2", Some("form")),
        (b"a=&b=1", Some("form")),
        (b"imei = 1", None),
        (b"aGVsbG8=", None),
        (b"aGVsbA==\r\n", None),
    ];
    for (payload, want) in cases {
        assert_eq!(
            sniff_container(payload),
            want,
            "{:?}",
            String::from_utf8_lossy(payload)
        );
    }
}

proptest! {
    /// Base64 text, padded or not, is never taken for a form (a gzip'd
    /// payload holding base64 was named `form` when its padding was `=`).
    #[test]
    fn base64_text_is_not_a_form(bytes in proptest::collection::vec(any::<u8>(), 1..200)) {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        for engine in [STANDARD, URL_SAFE] {
            let text = engine.encode(&bytes);
            prop_assert_eq!(sniff_container(text.as_bytes()), None, "{}", text);
        }
    }
}

/// Hex digests, UUIDs and hex ids are not decoded, whole or carried over
/// a chunk's end, even one whose bytes decode to printable text; a run of
/// other base64 bytes is.
#[test]
fn hex_ids_and_digests_are_not_decoded() {
    use base64::Engine as _;
    let limit: usize = 1 << 20;
    // "h04h05h06h07h08h09h0Ah0B", which encodes to hex digits only.
    let hex = b"aDA0aDA1aDA2aDA3aDA4aDA5aDBBaDBC";
    let mut buffers = PayloadBuffers::default();
    assert!(nested::decode_payload(hex, false, 1 << 20, &mut buffers).is_some());
    let uuid = b"550e8400-e29b-41d4-a716-446655440000";
    let md5 = b"D41D8CD98F00B204E9800998ECF8427E";
    for id in [&hex[..], uuid, md5] {
        assert!(Base64Runs::default().close(id, limit).is_none());
        let mut carried = Base64Runs::default();
        carried.carry(&id[..10], limit);
        assert!(carried.close(&id[10..], limit).is_none());
    }
    let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode("imei=490154203237518&x=1");
    assert!(
        Base64Runs::default()
            .close(text.as_bytes(), limit)
            .is_some()
    );
}

proptest! {
    /// A run is left undecoded for its bytes only when each is a hex digit
    /// or a `-`; the byte test is held to the standard library's.
    #[test]
    fn only_runs_of_hex_digits_and_dashes_are_left_undecoded(
        run in "[0-9a-fA-F-]{24,70}[A-Za-z0-9+/_-]{0,2}[0-9a-fA-F-]{0,40}",
    ) {
        let hex = run.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        let kept = Base64Runs::default().close(run.as_bytes(), 1 << 20);
        prop_assert_eq!(kept.is_none(), hex);
    }

    /// What leaving hex runs undecoded rests on: in either alphabet, the
    /// first of every three bytes such a run decodes to is never a
    /// printable byte below `h` (no digit, quote, `=`, `&`, `:` or space).
    #[test]
    fn a_hex_run_decodes_to_no_digit_or_separator_at_every_third_byte(
        run in "([0-9a-fA-F-]{4}){6,24}",
    ) {
        use base64::Engine as _;
        let engine = if run.contains('-') {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
        } else {
            base64::engine::general_purpose::STANDARD_NO_PAD
        };
        let bytes = engine.decode(&run).expect("whole quads of the alphabet");
        for b in bytes.iter().step_by(3) {
            prop_assert!(!(0x20..0x68).contains(b), "{b:#x}");
        }
    }
}

/// The runs `nested_base64` decodes or carries, found by reading every
/// byte: (start, end) of each run at least `MIN_TOKEN` long, and of the
/// run that ends the chunk whatever its length.
fn runs_read_bytewise(chunk: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chunk.len() {
        if !nested::BASE64[usize::from(chunk[i])] {
            i += 1;
            continue;
        }
        let end = chunk[i..]
            .iter()
            .position(|b| !nested::BASE64[usize::from(*b)])
            .map_or(chunk.len(), |n| i + n);
        if end - i >= 24 || end == chunk.len() {
            runs.push((i, end));
        }
        i = end;
    }
    runs
}

proptest! {
    /// Looking for long runs a block at a time finds exactly the runs
    /// reading every byte finds.
    #[test]
    fn base64_runs_found_by_blocks_are_the_runs_read_bytewise(
        chunk in proptest::collection::vec(
            prop_oneof![
                // Separators rare enough for runs of 24 and more.
                40 => Just(b'A'), 4 => Just(b'='), 2 => Just(b'-'),
                1 => Just(b' '), 1 => Just(b'"'), 1 => Just(b'%'),
            ],
            0..400,
        ),
    ) {
        let mut found = Vec::new();
        let mut from = 0;
        let mut blocks = Vec::new();
        let map = nested::Base64Map::new(&chunk, &mut blocks);
        while let Some((start, read)) = map.next_run(from) {
            prop_assert!((start..=read).all(|k| k == read || nested::BASE64[usize::from(chunk[k])]));
            let end = chunk[read..]
                .iter()
                .position(|b| !nested::BASE64[usize::from(*b)])
                .map_or(chunk.len(), |n| read + n);
            found.push((start, end));
            from = end;
        }
        prop_assert_eq!(found, runs_read_bytewise(&chunk));
    }
}

proptest! {
    /// The byte-level control test agrees with asking every character.
    #[test]
    fn control_characters_are_found_from_the_bytes(
        s in prop_oneof![
            any::<String>(),
            "[\u{0}-\u{a0}a-z]{0,40}",
            // Past the 32-byte pieces the first pass tests whole.
            "[a-z]{20,80}[\u{0}-\u{a0}a-z]{0,3}[a-z]{0,80}",
            "[\t\n\u{b}\u{c}\r\u{1c}-\u{1f}\u{7f}-\u{9f}\u{a0}é€ ]{0,12}",
        ],
    ) {
        let by_char = s.chars().any(|c| c.is_control() && !c.is_whitespace());
        prop_assert_eq!(nested::has_control(s.as_bytes()), by_char, "{:?}", s);
    }

    /// Printable bytes are counted as the byte classes define them.
    #[test]
    fn printable_bytes_are_counted_by_their_definition(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let want = bytes
            .iter()
            .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
            .count();
        prop_assert_eq!(nested::printable(&bytes), want);
    }
}
