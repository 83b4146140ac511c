//! The streaming content decoder (`flow::decode`) over arbitrary bodies,
//! coding stacks, output limits and chunk splits.
//!
//! Input: 7 header bytes, then the body.
//! - `[0]`: bits 0-2 the number of codings (0..=4, so one more than
//!   `MAX_CODINGS` is tried); bit 7 "encode the body first" (a valid
//!   stream, then possibly damaged by `[5]`/`[6]`), so the fuzzer reaches
//!   deep decoder states without having to invent valid gzip itself.
//! - `[1]`: two bits per coding, in order of application.
//! - `[2]`: output limit, `1 << ([2] % 25)`, or unlimited at 255.
//! - `[3..5]`: seed of the chunk split.
//! - `[5]`, `[6]`: damage to an encoded body: at position `[5]/256` of it,
//!   xor with `[6]`, or cut it there when `[6]` is 0 (`[5]` = 0: intact).
//!
//! Checked: nothing panics; every piece handed out is 1..=SCRATCH_LEN
//! bytes; output never passes the limit and `output_len` agrees; after
//! an error later pushes emit nothing; one push and any split of the same
//! bytes succeed or fail together, with the same output when they succeed
//! (and outputs that agree as far as both go when they fail); an intact
//! encoding round-trips when the limit allows.

#![no_main]

use leakscope::flow::decode::{
    ContentCoding, DecodeError, MAX_CODINGS, SCRATCH_LEN, StreamDecoder,
};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

const CODINGS: [ContentCoding; 4] = [
    ContentCoding::Gzip,
    ContentCoding::Deflate,
    ContentCoding::Brotli,
    ContentCoding::Zstd,
];

fuzz_target!(|input: &[u8]| {
    let Some((&[flags, picks, limit, s0, s1, at, xor], data)) = input.split_first_chunk::<7>()
    else {
        return;
    };
    let count = usize::from(flags & 7) % (MAX_CODINGS + 2);
    let codings: Vec<ContentCoding> = (0..count)
        .map(|i| CODINGS[usize::from(picks >> (2 * i)) & 3])
        .collect();
    let limit = match limit {
        255 => u64::MAX,
        n => 1 << (n % 25),
    };
    let encode_first = flags & 0x80 != 0 && count <= MAX_CODINGS;
    let mut body = if encode_first {
        encode(&codings, data)
    } else {
        data.to_vec()
    };
    let intact = !encode_first || at == 0 || body.is_empty();
    if !intact {
        let pos = usize::from(at) * body.len() / 256;
        match xor {
            0 => body.truncate(pos),
            x => body[pos] ^= x,
        }
    }

    let whole = decode(&codings, limit, [&body[..]]);
    let split = decode(
        &codings,
        limit,
        Split::new(&body, u16::from_le_bytes([s0, s1])),
    );
    match (&whole.1, &split.1) {
        (Ok(()), Ok(())) => assert!(whole.0 == split.0, "output depends on the chunk split"),
        // A failing stream. Brotli keeps decoded bytes in its window until
        // it flushes them, and its failure loses them, so how much came
        // out before the failure depends on where pushes ended; but what
        // did come out must agree.
        (Err(_), Err(_)) => {
            let common = whole.0.len().min(split.0.len());
            assert!(whole.0[..common] == split.0[..common], "outputs disagree");
        }
        (a, b) => panic!("the result depends on the chunk split: {a:?} vs {b:?}"),
    }

    if count > MAX_CODINGS {
        assert!(matches!(whole.1, Err(DecodeError::Corrupt { .. })));
        assert!(whole.0.is_empty());
    } else if encode_first && intact && limit >= data.len() as u64 {
        assert_eq!(whole.1, Ok(()), "a valid stream failed");
        assert!(whole.0 == data, "a valid stream decoded to other bytes");
    }
});

/// Pushes `pieces` then finishes; returns the output and the first error,
/// checking the per-piece contract on the way.
fn decode<'a>(
    codings: &[ContentCoding],
    limit: u64,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<u8>, Result<(), DecodeError>) {
    let mut decoder = StreamDecoder::new(codings, limit);
    let mut out = Vec::new();
    let mut first = Ok(());
    for piece in pieces {
        let before = out.len();
        let result = decoder.push(piece, &mut |p| {
            assert!(!p.is_empty() && p.len() <= SCRATCH_LEN, "{} bytes", p.len());
            out.extend_from_slice(p);
        });
        if first.is_err() {
            assert_eq!(result, Ok(()), "a failed decoder failed again");
            assert_eq!(out.len(), before, "a failed decoder emitted bytes");
        }
        first = first.and(result);
    }
    let result = decoder.finish(&mut |p| out.extend_from_slice(p));
    if first.is_err() {
        assert_eq!(result, Ok(()), "finish after a failure failed again");
    }
    first = first.and(result);
    assert!(
        out.len() as u64 <= limit,
        "{} bytes past a limit of {limit}",
        out.len()
    );
    assert_eq!(decoder.output_len(), out.len() as u64);
    (out, first)
}

/// Applies `codings` in order (the first is applied first).
fn encode(codings: &[ContentCoding], data: &[u8]) -> Vec<u8> {
    let level = flate2::Compression::fast();
    codings
        .iter()
        .fold(data.to_vec(), |body, coding| match coding {
            ContentCoding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
                e.write_all(&body)
                    .and_then(|_| e.finish())
                    .unwrap_or_default()
            }
            ContentCoding::Deflate => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
                e.write_all(&body)
                    .and_then(|_| e.finish())
                    .unwrap_or_default()
            }
            ContentCoding::Brotli => {
                let mut e = brotli::CompressorWriter::new(Vec::new(), 4096, 1, 16);
                let _ = e.write_all(&body);
                e.into_inner()
            }
            ContentCoding::Zstd => zstd::encode_all(&body[..], 1).unwrap_or_default(),
        })
}

/// Splits `data` into pieces of 0..=511 bytes chosen by a xorshift
/// generator; empty pieces are part of the contract too.
struct Split<'a> {
    rest: &'a [u8],
    state: u32,
    done: bool,
}

impl<'a> Split<'a> {
    fn new(data: &'a [u8], seed: u16) -> Self {
        Split {
            rest: data,
            state: u32::from(seed) | 0x1_0000,
            done: false,
        }
    }
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let len = (self.state % 512) as usize;
        let (piece, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        self.done = rest.is_empty();
        Some(piece)
    }
}
