//! Tests of the streaming content decoder.
use super::*;
use ContentCoding::{Brotli as Br, Deflate, Gzip, Zstd};
use flate2::Crc;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::{Compress, Compression, FlushCompress};
use inflate::{FEXTRA, FHCRC, looks_like_zlib};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::io::Write;

const ALL: [ContentCoding; 4] = [Gzip, Deflate, Br, Zstd];
const MIB: usize = 1 << 20;
type Outcome = (Vec<u8>, Result<(), DecodeError>);

fn fed<W: Write>(mut w: W, data: &[u8]) -> W {
    w.write_all(data).unwrap();
    w
}
fn gzip(d: &[u8]) -> Vec<u8> {
    let encoder = GzEncoder::new(vec![], Compression::default());
    fed(encoder, d).finish().unwrap()
}
fn zlib(d: &[u8]) -> Vec<u8> {
    let encoder = ZlibEncoder::new(vec![], Compression::default());
    fed(encoder, d).finish().unwrap()
}
fn raw_deflate(d: &[u8]) -> Vec<u8> {
    let encoder = DeflateEncoder::new(vec![], Compression::default());
    fed(encoder, d).finish().unwrap()
}
fn br(d: &[u8]) -> Vec<u8> {
    fed(brotli::CompressorWriter::new(vec![], 4096, 5, 22), d).into_inner()
}
fn encode(coding: ContentCoding, d: &[u8]) -> Vec<u8> {
    match coding {
        Gzip => gzip(d),
        Deflate => zlib(d),
        Br => br(d),
        Zstd => zstd::encode_all(d, 3).unwrap(),
    }
}
/// Every coding's encoding of `data`, plus "deflate" as raw deflate.
fn all_bodies(data: &[u8]) -> Vec<(ContentCoding, Vec<u8>)> {
    let mut bodies: Vec<_> = ALL.iter().map(|&c| (c, encode(c, data))).collect();
    bodies.push((Deflate, raw_deflate(data)));
    bodies
}

/// Alternating 1 KiB runs of word salad and noise, so encoders emit both
/// compressed and stored blocks.
fn sample(len: usize) -> Vec<u8> {
    let words: [&[u8]; 5] = [b"email ", b"imei=", b"&lat=", b"GET /", b"42 "];
    let (mut x, mut out) = (0x1234_5678u32, Vec::with_capacity(len + 8));
    while out.len() < len {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        match (out.len() / 1024) % 2 {
            0 => out.extend_from_slice(words[(x >> 28) as usize % words.len()]),
            _ => out.push((x >> 24) as u8),
        }
    }
    out.truncate(len);
    out
}

/// Pushes `pieces`, then finishes; returns all output and the first
/// error, checking `output_len` and the chunk-size bound on the way.
fn decode_pieces<'a>(
    codings: &[ContentCoding],
    pieces: impl IntoIterator<Item = &'a [u8]>,
    max: u64,
) -> Outcome {
    let (mut dec, mut out) = (StreamDecoder::new(codings, max), Vec::new());
    let mut sink = |b: &[u8]| {
        assert!(!b.is_empty() && b.len() <= SCRATCH_LEN, "{} bytes", b.len());
        out.extend_from_slice(b);
    };
    let mut first = Ok(());
    for piece in pieces {
        first = first.and(dec.push(piece, &mut sink));
    }
    first = first.and(dec.finish(&mut sink));
    assert_eq!(dec.output_len(), out.len() as u64);
    (out, first)
}

fn decode(codings: &[ContentCoding], body: &[u8], chunk: usize, max: u64) -> Outcome {
    decode_pieces(codings, body.chunks(chunk.max(1)), max)
}

fn corrupt_in(r: &Result<(), DecodeError>, name: &str) -> bool {
    matches!(r, Err(DecodeError::Corrupt { coding, .. }) if *coding == name)
}

#[test]
fn parses_header_values() {
    let p = parse_content_encoding;
    assert_eq!(p("gzip"), Ok(vec![Gzip]));
    assert_eq!(p("X-GZip"), Ok(vec![Gzip]));
    assert_eq!(p("  gzip ,\tBR  "), Ok(vec![Gzip, Br]));
    assert_eq!(p("deflate, identity, zstd"), Ok(vec![Deflate, Zstd]));
    assert_eq!((p("Identity"), p("")), (Ok(vec![]), Ok(vec![])));
    assert_eq!(p("gzip,,br,"), Ok(vec![Gzip, Br]));
    let unknown = |name: &str| Err(DecodeError::UnknownCoding(name.into()));
    assert_eq!(p("gzip, compress"), unknown("compress"));
    assert_eq!(p(" x-Bzip2 "), unknown("x-Bzip2"));
    let names = ALL.map(ContentCoding::name);
    assert_eq!(names, ["gzip", "deflate", "br", "zstd"]);
}

#[test]
fn every_coding_round_trips_whole_and_in_small_chunks() {
    for len in [0, 1, 100 * 1024] {
        let data = sample(len);
        for (coding, body) in all_bodies(&data) {
            for chunk in [body.len(), 1, 7, 4096] {
                let ok = decode(&[coding], &body, chunk, u64::MAX) == (data.clone(), Ok(()));
                assert!(ok, "{coding:?} len {len} chunk {chunk}");
            }
        }
    }
}

#[test]
fn every_split_point_of_a_small_body() {
    let data = sample(300);
    for (coding, body) in all_bodies(&data) {
        for i in 0..=body.len() {
            let (out, r) = decode_pieces(&[coding], [&body[..i], &body[i..]], u64::MAX);
            assert!(r.is_ok() && out == data, "{coding:?} split at {i}: {r:?}");
        }
    }
}

#[test]
fn empty_bodies_and_empty_pushes_are_fine() {
    for coding in ALL {
        assert_eq!(decode_pieces(&[coding], [], 0), (vec![], Ok(())));
        assert_eq!(
            decode_pieces(&[coding], [&b""[..], b""], 0),
            (vec![], Ok(()))
        );
    }
    // The empty raw deflate stream is two bytes: final fixed block, end code.
    assert_eq!(
        decode(&[Deflate], &raw_deflate(b""), 1, 0),
        (vec![], Ok(()))
    );
}

#[test]
fn stacked_and_aliased_codings() {
    let data = sample(20_000);
    let codings = parse_content_encoding("gzip, br").unwrap();
    assert_eq!(codings, [Gzip, Br]);
    let body = br(&gzip(&data));
    for chunk in [body.len(), 1, 333] {
        assert_eq!(
            decode(&codings, &body, chunk, u64::MAX),
            (data.clone(), Ok(()))
        );
    }
    let codings = parse_content_encoding("deflate, zstd, x-gzip").unwrap();
    let body = gzip(&encode(Zstd, &zlib(&data)));
    assert_eq!(
        decode(&codings, &body, 100, u64::MAX),
        (data.clone(), Ok(()))
    );
    // The inner gzip is cut short inside an intact br: it is named.
    let inner = gzip(&data);
    let (out, r) = decode(&[Gzip, Br], &br(&inner[..inner.len() - 3]), 50, u64::MAX);
    assert_eq!(r, Err(DecodeError::Truncated { coding: "gzip" }));
    assert!(data.starts_with(&out));
    // No codings: bytes pass through, still limited.
    assert_eq!(decode(&[], b"hello", 2, 5), (b"hello".to_vec(), Ok(())));
    let limited = (b"hel".to_vec(), Err(DecodeError::OutputLimit { limit: 3 }));
    assert_eq!(decode(&[], b"hello", 2, 3), limited);
    // Too many codings: the first call fails, nothing is emitted.
    let (out, r) = decode(&[Gzip, Gzip, Br, Zstd], &gzip(b"x"), 1, u64::MAX);
    assert!(out.is_empty() && corrupt_in(&r, "zstd"), "{r:?}");
    let mut dec = StreamDecoder::new(&[Br; 4], 1);
    assert!(corrupt_in(&dec.finish(&mut |_| {}), "br"));
}

#[test]
fn deflate_detects_zlib_else_raw() {
    assert!(looks_like_zlib(0x78, 0x9c) && looks_like_zlib(0x78, 0x01));
    assert!(!looks_like_zlib(0x78, 0x9d) && !looks_like_zlib(0x88, 0x98));
    let data = sample(5000);
    for body in [zlib(&data), raw_deflate(&data)] {
        for chunk in [body.len(), 1, 2, 3] {
            assert_eq!(
                decode(&[Deflate], &body, chunk, u64::MAX),
                (data.clone(), Ok(()))
            );
        }
    }
}

#[test]
fn gzip_members_and_header_fields() {
    let (a, b) = (sample(3000), b"second member".to_vec());
    let body = [gzip(&a), gzip(&b), gzip(b""), gzip(&a)].concat();
    let want = [&a[..], &b[..], &a[..]].concat();
    for chunk in [body.len(), 1, 10] {
        assert_eq!(
            decode(&[Gzip], &body, chunk, u64::MAX),
            (want.clone(), Ok(()))
        );
    }
    let builder = flate2::GzBuilder::new()
        .filename("leak.json")
        .comment("a comment");
    let builder = builder.extra(vec![1, 2, 3, 4]);
    let mut body = fed(builder.write(vec![], Compression::fast()), &a)
        .finish()
        .unwrap();
    assert_eq!(decode(&[Gzip], &body, 1, u64::MAX), (a.clone(), Ok(())));
    // FHCRC by hand (flate2 cannot write it): 2 bytes after FCOMMENT.
    let header_end = 10 + 2 + 4 + "leak.json\0".len() + "a comment\0".len();
    body[3] |= FHCRC;
    body.splice(header_end..header_end, [0xab, 0xcd]);
    assert_eq!(decode(&[Gzip], &body, 3, u64::MAX), (a.clone(), Ok(())));
    // FEXTRA of length 0, hand-built around a raw deflate body.
    let mut crc = Crc::new();
    crc.update(&a);
    let mut body = vec![0x1f, 0x8b, 8, FEXTRA, 0, 0, 0, 0, 0, 0xff, 0, 0];
    body.extend(raw_deflate(&a));
    body.extend(crc.sum().to_le_bytes());
    body.extend((a.len() as u32).to_le_bytes());
    assert_eq!(decode(&[Gzip], &body, 1, u64::MAX), (a, Ok(())));
}

#[test]
fn corrupt_input_is_reported() {
    let data = sample(4000);
    let body = gzip(&data);
    let n = body.len();
    for (at, byte) in [(0, b'x'), (2, 7), (3, 0x80), (n - 8, body[n - 8] ^ 1)] {
        let mut bad = body.clone();
        bad[at] = byte;
        let (_, r) = decode(&[Gzip], &bad, 5, u64::MAX);
        assert!(corrupt_in(&r, "gzip"), "byte {at}: {r:?}");
    }
    let mut bad_len = body.clone();
    bad_len[n - 1] ^= 1; // ISIZE: caught after all data was emitted
    let (out, r) = decode(&[Gzip], &bad_len, 5, u64::MAX);
    assert!(out == data && corrupt_in(&r, "gzip"), "{r:?}");
    assert!(corrupt_in(
        &decode(&[Deflate], &[0xff; 64], 1, 99).1,
        "deflate"
    ));
    // zlib with a preset dictionary cannot be decoded.
    let dict = [0x78, 0xbb, 0, 0, 0, 1, 3, 0];
    assert!(corrupt_in(&decode(&[Deflate], &dict, 1, 99).1, "deflate"));
    assert!(corrupt_in(
        &decode(&[Zstd], b"definitely not zstd", 4, 99).1,
        "zstd"
    ));
    // Large-window brotli (windows up to 1 GiB) is not RFC 7932 "br".
    let params = brotli::enc::BrotliEncoderParams {
        large_window: true,
        lgwin: 26,
        ..Default::default()
    };
    let w = brotli::CompressorWriter::with_params(vec![], 4096, &params);
    let large = fed(w, &data).into_inner();
    assert!(corrupt_in(&decode(&[Br], &large, 1, 99).1, "br"));
    // So is a zstd window past ZSTD_WINDOW_LOG_MAX.
    let mut w = zstd::stream::write::Encoder::new(vec![], 3).unwrap();
    let log = zstd::stream::raw::CParameter::WindowLog(ZSTD_WINDOW_LOG_MAX + 1);
    w.set_parameter(log).unwrap();
    let wide = fed(w, &data).finish().unwrap();
    assert!(corrupt_in(&decode(&[Zstd], &wide, 64, u64::MAX).1, "zstd"));
}

#[test]
fn trailing_bytes_are_corrupt() {
    let data = sample(1000);
    for (coding, body) in all_bodies(&data) {
        let body = [&body[..], b"\0junk"].concat();
        for chunk in [body.len(), 1] {
            let (out, r) = decode(&[coding], &body, chunk, u64::MAX);
            assert!(
                out == data && corrupt_in(&r, coding.name()),
                "{coding:?}: {r:?}"
            );
        }
    }
}

#[test]
fn truncated_input_is_reported_at_finish() {
    let data = sample(3000);
    for (coding, body) in all_bodies(&data) {
        for cut in 1..body.len() {
            let (out, r) = decode(&[coding], &body[..cut], 512, u64::MAX);
            let truncated = r
                == Err(DecodeError::Truncated {
                    coding: coding.name(),
                });
            assert!(
                truncated && data.starts_with(&out),
                "{coding:?} cut at {cut}: {r:?}"
            );
        }
    }
}

#[test]
fn output_limit_cuts_exactly_and_fails_once() {
    let data = sample(50_000);
    for (coding, body) in all_bodies(&data) {
        let (out, r) = decode(&[coding], &body, 1000, 30_000);
        assert_eq!(
            r,
            Err(DecodeError::OutputLimit { limit: 30_000 }),
            "{coding:?}"
        );
        assert!(out == data[..30_000], "{coding:?}");
        let exact = decode(&[coding], &body, 1000, data.len() as u64);
        assert!(exact == (data.clone(), Ok(())), "{coding:?}");
    }
    let (mut dec, mut out) = (StreamDecoder::new(&[Gzip], 10), Vec::new());
    let r = dec.push(&gzip(&data), &mut |b| out.extend_from_slice(b));
    assert_eq!(r, Err(DecodeError::OutputLimit { limit: 10 }));
    assert_eq!(
        dec.push(&[0xff; 10], &mut |b| out.extend_from_slice(b)),
        Ok(())
    );
    assert_eq!(dec.finish(&mut |b| out.extend_from_slice(b)), Ok(()));
    assert_eq!((out.len(), dec.output_len()), (10, 10));
}

/// A valid gzip member inflating to `mib` MiB of zeros. Deflating that
/// many zeros takes ~50 s per GiB in a debug build, so only two MiB are
/// deflated: the first fills the window, and the second, byte-aligned by
/// sync flushes and referring only to zeros, is repeated.
fn zero_bomb(mib: usize) -> Vec<u8> {
    let (zeros, mut c) = (vec![0u8; MIB], Compress::new(Compression::best(), false));
    let mut deflate = |input: &[u8], flush| {
        let (mut out, before) = (Vec::with_capacity(MIB), c.total_in());
        c.compress_vec(input, &mut out, flush).unwrap();
        assert_eq!(c.total_in() - before, input.len() as u64);
        out
    };
    let first = deflate(&zeros, FlushCompress::Sync);
    let repeat = deflate(&zeros, FlushCompress::Sync);
    let last = deflate(&[], FlushCompress::Finish);
    let (mut crc, mut one_mib) = (Crc::new(), Crc::new());
    one_mib.update(&zeros);
    (0..mib).for_each(|_| crc.combine(&one_mib));
    let mut body = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    body.extend(first);
    (1..mib).for_each(|_| body.extend_from_slice(&repeat));
    body.extend(last);
    body.extend(crc.sum().to_le_bytes());
    body.extend(((mib * MIB) as u32).to_le_bytes());
    body
}

/// Decodes a bomb in 64 KiB pieces, counting (zero) bytes, not keeping them.
fn detonate(coding: ContentCoding, body: &[u8], max: u64) -> (u64, Result<(), DecodeError>) {
    let (mut dec, mut total, mut first) = (StreamDecoder::new(&[coding], max), 0, Ok(()));
    let mut sink = |b: &[u8]| {
        assert!(b.len() <= SCRATCH_LEN && b.iter().all(|&x| x == 0));
        total += b.len() as u64;
    };
    for piece in body.chunks(64 * 1024) {
        first = first.and(dec.push(piece, &mut sink));
    }
    first = first.and(dec.finish(&mut sink));
    assert_eq!(dec.output_len(), total);
    (total, first)
}

#[test]
fn bombs_stop_at_the_limit() {
    // The bomb builder is sound: a small one decodes fully, CRC and all.
    assert_eq!(
        detonate(Gzip, &zero_bomb(16), u64::MAX),
        (16 * MIB as u64, Ok(()))
    );
    let body = zero_bomb(1024);
    assert!(body.len() < 2 * MIB, "compressed size {}", body.len());
    let limit = 10 * MIB as u64;
    let stopped = (limit, Err(DecodeError::OutputLimit { limit }));
    assert_eq!(detonate(Gzip, &body, limit), stopped);
    let zeros = vec![0u8; 32 * MIB];
    let limit = MIB as u64;
    let stopped = (limit, Err(DecodeError::OutputLimit { limit }));
    let body = fed(
        brotli::CompressorWriter::new(vec![], 1 << 16, 1, 24),
        &zeros,
    );
    assert_eq!(detonate(Br, &body.into_inner(), limit), stopped);
    assert_eq!(
        detonate(Zstd, &zstd::encode_all(&zeros[..], 1).unwrap(), limit),
        stopped
    );
}

/// Splits `body` at the given cut points (any order, repeats allowed).
fn split<'a>(body: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    points.sort_unstable();
    points.push(body.len());
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in points {
        pieces.push(&body[start..end]);
        start = end;
    }
    pieces
}

fn any_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..4096), vec(0u8..3, 0..16384)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn prop_round_trip_any_chunking(
        data in any_data(),
        cuts in vec(any::<Index>(), 0..12),
        coding in prop::sample::select(&ALL[..]),
    ) {
        let body = encode(coding, &data);
        let (out, r) = decode_pieces(&[coding], split(&body, &cuts), u64::MAX);
        prop_assert_eq!(r, Ok(()));
        prop_assert!(out == data);
    }

    #[test]
    fn prop_garbage_never_panics(
        body in vec(any::<u8>(), 0..2048),
        chunk in 1usize..300,
        codings in vec(prop::sample::select(&ALL[..]), 0..3),
        max in 0u64..100_000,
    ) {
        let (out, _) = decode(&codings, &body, chunk, max);
        prop_assert!(out.len() as u64 <= max);
    }

    /// Damaged streams are judged by their bytes, not by where they were
    /// cut: one push and any split succeed or fail together, with the same
    /// output when they succeed and agreeing output as far as both go when
    /// they fail. A br stage's decompressor sees the same blocks either
    /// way, so for br the outcome is identical.
    #[test]
    fn prop_damaged_streams_are_judged_alike_however_cut(
        data in any_data(),
        damage in vec((any::<Index>(), 1u8..), 1..6),
        cuts in vec(any::<Index>(), 0..6),
        coding in prop::sample::select(&ALL[..]),
    ) {
        let mut body = encode(coding, &data);
        for (at, x) in damage {
            let i = at.index(body.len());
            body[i] ^= x;
        }
        let (whole, whole_result) = decode_pieces(&[coding], [&body[..]], 1 << 20);
        let (cut, cut_result) = decode_pieces(&[coding], split(&body, &cuts), 1 << 20);
        prop_assert!(cut.len() <= 1 << 20);
        prop_assert_eq!(whole_result.is_ok(), cut_result.is_ok(), "{:?} vs {:?}", whole_result, cut_result);
        let common = whole.len().min(cut.len());
        prop_assert!(whole[..common] == cut[..common]);
        if coding == Br || whole_result.is_ok() {
            prop_assert!(whole == cut);
            prop_assert_eq!(whole_result, cut_result);
        }
    }
}

/// A stream abandoned after `prefix` of its bytes (its decoder dropped
/// unfinished), as a proxy drops a body whose connection failed.
fn abandon(codings: &[ContentCoding], body: &[u8], prefix: usize) {
    let mut dec = StreamDecoder::new(codings, u64::MAX);
    let _ = dec.push(&body[..prefix.min(body.len())], &mut |_| {});
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Decoders reuse the inflaters and output buffers of dropped ones
    /// (kept per thread). Whatever ran on this thread before (streams
    /// abandoned midway, damaged, stacked), a decoder gives what it gives
    /// on a thread where nothing ran.
    #[test]
    fn prop_reused_inflaters_start_clean(
        before in vec((any_data(), any::<Index>(), 0usize..3), 1..5),
        data in any_data(),
        damage in vec((any::<Index>(), 1u8..), 0..3),
        coding in prop::sample::select(&[Gzip, Deflate][..]),
    ) {
        let mut body = encode(coding, &data);
        for (at, x) in damage {
            let i = at.index(body.len());
            body[i] ^= x;
        }
        let fresh = {
            let body = body.clone();
            std::thread::spawn(move || decode(&[coding], &body, 700, 1 << 20)).join().unwrap()
        };
        for (earlier, cut, kind) in &before {
            let codings: &[ContentCoding] = [&[Gzip][..], &[Deflate], &[Gzip, Gzip]][*kind];
            let mut stream = earlier.clone();
            for &c in codings.iter().rev() {
                stream = encode(c, &stream);
            }
            abandon(codings, &stream, cut.index(stream.len() + 1));
        }
        prop_assert_eq!(decode(&[coding], &body, 700, 1 << 20), fresh);
    }
}

/// Found by the `decode` fuzz target: a damaged brotli stream that the
/// brotli decompressor alone accepts whole (66 bytes out) but refuses
/// (`BLOCK_LENGTH_1`) when its last three bytes come in a later call. Fed
/// in blocks, it gets one verdict however the body was cut.
#[test]
fn a_damaged_brotli_stream_gets_one_verdict_however_it_was_cut() {
    let body: &[u8] = &[
        3, 30, 0, 0, 128, 170, 170, 170, 234, 31, 15, 183, 11, 31, 249, 122, 97, 134, 3, 184, 63,
        127, 210, 37, 54, 128, 11, 112, 216, 133, 61, 248, 155, 1,
    ];
    let whole = decode_pieces(&[Br], [body], u64::MAX);
    assert_eq!((whole.0.len(), &whole.1), (66, &Ok(())));
    for at in 0..=body.len() {
        let cut = decode_pieces(&[Br], [&body[..at], &body[at..]], u64::MAX);
        assert_eq!(cut, whole, "cut at {at}");
    }
    assert_eq!(decode(&[Br], body, 1, u64::MAX), whole);
}

/// The block mechanism loses nothing at its seams: a br body of several
/// blocks round-trips in pieces that end inside, on and across block
/// boundaries, including output still pending when a block is used up.
#[test]
fn brotli_bodies_of_several_blocks_round_trip_in_any_pieces() {
    // A long zero run in the middle: a few input bytes that decode to far
    // more than one output buffer, so output is still pending when a
    // block is used up.
    let data = [
        sample(6 * BROTLI_BLOCK),
        vec![0; 40 * SCRATCH_LEN],
        sample(6 * BROTLI_BLOCK),
    ]
    .concat();
    let body = br(&data);
    assert!(body.len() > 2 * BROTLI_BLOCK, "{} bytes", body.len());
    for chunk in [
        1,
        7,
        1000,
        BROTLI_BLOCK - 1,
        BROTLI_BLOCK,
        BROTLI_BLOCK + 1,
        body.len(),
    ] {
        let (out, result) = decode(&[Br], &body, chunk, u64::MAX);
        assert_eq!(result, Ok(()), "chunks of {chunk}");
        assert!(out == data, "chunks of {chunk}");
    }
}
