//! Push-based, bounded decoding of HTTP content codings (RFC 9110 §8.4.1).
//!
//! A [`StreamDecoder`] undoes a stack of codings as a body arrives in chunks
//! of any size. Each coding is a stage whose output goes straight into the
//! next stage, and finally through an output limiter to the caller; nothing
//! ever holds a whole body.
//!
//! # Memory
//!
//! Bounded per decoder whatever the body size or compression ratio: each
//! stage has one [`SCRATCH_LEN`] output buffer plus its codec's state —
//! gzip/deflate about 43 KiB (miniz_oxide, 32 KiB window); br at most 16 MiB
//! of ring buffer (the RFC 7932 maximum: the non-standard 1 GiB "large
//! window" extension is off, such streams are Corrupt) plus some hundred KiB
//! of tables; zstd at most 8 MiB of window ([`ZSTD_WINDOW_LOG_MAX`], larger
//! frames are Corrupt) plus about 300 KiB. With [`MAX_CODINGS`] stages the
//! worst case is about 50 MiB (three br stages). Brotli and zstd size their
//! buffers from the stream, so small bodies cost far less, and all of it is
//! freed as soon as the decoder fails or finishes.

use brotli::writer::StandardAlloc;
use brotli::{BrotliDecompressStream, BrotliResult, BrotliState};
use flate2::{Crc, Decompress, FlushDecompress, Status};
use zstd::stream::raw::{DParameter, Decoder as ZstdDecoder, InBuffer, Operation, OutBuffer};

/// Size of each stage's output buffer, so the largest chunk handed to `out`.
pub const SCRATCH_LEN: usize = 16 * 1024;

/// Most codings one decoder will stack. Real servers send one, rarely two
/// (misconfigured double compression); each stage may hold a multi-MiB
/// window, so a header listing dozens must not multiply that.
pub const MAX_CODINGS: usize = 3;

/// Largest zstd window accepted, as a power of two: 2^23 = 8 MiB. RFC 9659
/// forbids HTTP encoders from using more and browsers refuse more, so no
/// conforming server needs it; libzstd's default limit (27, 128 MiB) would
/// let one hostile response pin 128 MiB.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// One HTTP content coding (RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCoding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl ContentCoding {
    /// Name as written in HAR / findings: "gzip", "deflate", "br", "zstd".
    pub fn name(self) -> &'static str {
        match self {
            ContentCoding::Gzip => "gzip",
            ContentCoding::Deflate => "deflate",
            ContentCoding::Brotli => "br",
            ContentCoding::Zstd => "zstd",
        }
    }
}

/// Parses a Content-Encoding header value ("gzip", "x-gzip", "deflate", "br",
/// "zstd", "identity", lists like "gzip, br", any case, extra spaces).
///
/// Returns the codings in the order they were APPLIED (header order).
/// Identity entries and empty list elements (`"gzip,,br"`, which RFC 9110
/// §5.6.1 says to tolerate) are dropped, so `""` gives an empty list. An
/// unknown coding → `Err(UnknownCoding(name))`, the name trimmed but as
/// written; "compress" (LZW) is unknown too.
pub fn parse_content_encoding(value: &str) -> Result<Vec<ContentCoding>, DecodeError> {
    let mut codings = Vec::new();
    for token in value.split(',').map(str::trim) {
        codings.push(match token.to_ascii_lowercase().as_str() {
            "" | "identity" => continue,
            "gzip" | "x-gzip" => ContentCoding::Gzip,
            "deflate" => ContentCoding::Deflate,
            "br" => ContentCoding::Brotli,
            "zstd" => ContentCoding::Zstd,
            _ => return Err(DecodeError::UnknownCoding(token.to_owned())),
        });
    }
    Ok(codings)
}

/// Why a body could not be (fully) decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The header named a coding this module cannot undo.
    #[error("unknown content coding {0:?}")]
    UnknownCoding(String),
    /// The bytes are not a valid `coding` stream. Also used for bytes after
    /// the end of the stream, a gzip checksum mismatch, a zstd window above
    /// [`ZSTD_WINDOW_LOG_MAX`] and more than [`MAX_CODINGS`] codings.
    #[error("corrupt {coding} stream: {detail}")]
    Corrupt {
        coding: &'static str,
        detail: String,
    },
    /// Decoding would emit more than `limit` bytes; exactly `limit` were.
    #[error("decoded body exceeds the limit of {limit} bytes")]
    OutputLimit { limit: u64 },
    /// The body ended before the `coding` stream did.
    #[error("{coding} stream ended early")]
    Truncated { coding: &'static str },
}

fn corrupt(coding: ContentCoding, detail: impl Into<String>) -> DecodeError {
    let detail = detail.into();
    DecodeError::Corrupt {
        coding: coding.name(),
        detail,
    }
}

const TRAILING: &str = "trailing data after the end of the stream";
const STALLED: &str = "decoder made no progress";

/// Where a stage hands its output: the next stage, or finally the limiter.
/// An `Err` aborts the stage at once, which is what stops a bomb.
type Sink<'a> = dyn FnMut(&[u8]) -> Result<(), DecodeError> + 'a;

/// Decodes a stack of codings (undoing them in reverse order of application)
/// as bytes are pushed.
///
/// Each [`push`](Self::push) decodes everything its input allows and hands
/// all of it to `out` before returning; nothing is held back, so
/// [`finish`](Self::finish) only checks that every stream was complete. A
/// body of zero bytes is fine for every coding: servers routinely label
/// empty 204/304/HEAD bodies with a Content-Encoding.
pub struct StreamDecoder {
    /// In decoding order (`[0]` undoes the coding applied last); `None`
    /// after an `Err` or `finish`, which frees the (possibly multi-MiB)
    /// windows at once rather than when the caller drops the decoder.
    stages: Option<Vec<Stage>>,
    /// A problem found by `new`, reported by the first `push` or `finish`.
    setup_error: Option<DecodeError>,
    max_output: u64,
    emitted: u64,
}

impl StreamDecoder {
    /// `max_output`: total decoded bytes this decoder will ever emit; past it,
    /// push/finish return Err(OutputLimit) once and emit nothing more.
    ///
    /// `codings` is in order of application, as [`parse_content_encoding`]
    /// returns it; an empty slice passes bytes through (still limited). More
    /// than [`MAX_CODINGS`] make the first push/finish return `Corrupt`
    /// naming the outermost coding.
    pub fn new(codings: &[ContentCoding], max_output: u64) -> StreamDecoder {
        let too_many = codings.len() > MAX_CODINGS;
        let setup_error = codings.last().filter(|_| too_many).map(|&outer| {
            let n = codings.len();
            corrupt(
                outer,
                format!("{n} codings exceed the limit of {MAX_CODINGS}"),
            )
        });
        let kept = if too_many { &[][..] } else { codings };
        let stages = Some(kept.iter().rev().map(|&c| Stage::new(c)).collect());
        StreamDecoder {
            stages,
            setup_error,
            max_output,
            emitted: 0,
        }
    }

    /// Feeds the next chunk; decoded bytes are handed to `out` (possibly in
    /// several calls of at most [`SCRATCH_LEN`] bytes, possibly none).
    ///
    /// After any Err, the decoder is "failed": later pushes return Ok(()) and
    /// emit nothing (the caller records the first error only). Pushes after
    /// [`finish`](Self::finish) are ignored the same way.
    pub fn push(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        let Some(stages) = self.stages.as_mut() else {
            return Ok(());
        };
        let (max, emitted) = (self.max_output, &mut self.emitted);
        // The limiter, last in the chain: a chunk that would pass `max` is
        // cut there, and the `Err` stops every stage above it at once.
        let mut limit = |chunk: &[u8]| {
            let room = usize::try_from(max.saturating_sub(*emitted)).unwrap_or(usize::MAX);
            let keep = chunk.get(..room).unwrap_or(chunk);
            if !keep.is_empty() {
                out(keep);
            }
            *emitted += keep.len() as u64;
            let whole = keep.len() == chunk.len();
            whole
                .then_some(())
                .ok_or(DecodeError::OutputLimit { limit: max })
        };
        let result = match self.setup_error.take() {
            Some(error) => Err(error),
            None if input.is_empty() => Ok(()),
            None => feed(stages, input, &mut limit),
        };
        if result.is_err() {
            self.stages = None;
        }
        result
    }

    /// Signals end of input; flushes; reports Truncated if the compressed
    /// stream ended early (naming the outermost incomplete coding).
    ///
    /// Every push already drained all stages, so nothing is left to emit;
    /// `out` is taken so callers need not rely on that. A second `finish`,
    /// or one on a failed decoder, returns Ok(()).
    pub fn finish(&mut self, out: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        let _ = out;
        let Some(stages) = self.stages.take() else {
            return Ok(());
        };
        match self.setup_error.take() {
            Some(error) => Err(error),
            None => stages.iter().try_for_each(Stage::finish),
        }
    }

    /// Decoded bytes emitted so far.
    pub fn output_len(&self) -> u64 {
        self.emitted
    }
}

/// Pushes `input` through `stages` in order, then into `last`. Recursion
/// depth is the stage count, at most [`MAX_CODINGS`].
fn feed(stages: &mut [Stage], input: &[u8], last: &mut Sink<'_>) -> Result<(), DecodeError> {
    match stages.split_first_mut() {
        None => last(input),
        Some((stage, rest)) => stage.push(input, &mut |chunk| feed(rest, chunk, last)),
    }
}

/// One coding being undone: a codec driven over a fixed output buffer.
struct Stage {
    coding: ContentCoding,
    codec: Codec,
    scratch: Box<[u8]>,
}

/// Each codec's `step` makes one decoder call on `input`, writing into
/// `out` and setting `made` to the bytes written (even when it then fails:
/// output decoded before corruption is still good). It returns how many
/// input bytes it used; input after the end of the stream is an error.
enum Codec {
    Inflate(Inflate),
    Brotli(Brotli),
    Zstd(Zstd),
}

impl Stage {
    fn new(coding: ContentCoding) -> Stage {
        let codec = match coding {
            ContentCoding::Gzip => Codec::Inflate(Inflate::new(Framing::Gzip(Gz::START))),
            ContentCoding::Deflate => Codec::Inflate(Inflate::new(Framing::Sniff(None))),
            ContentCoding::Brotli => Codec::Brotli(Brotli::default()),
            ContentCoding::Zstd => Codec::Zstd(Zstd::default()),
        };
        let scratch = vec![0; SCRATCH_LEN].into_boxed_slice();
        Stage {
            coding,
            codec,
            scratch,
        }
    }

    /// Decodes all of `input`, handing every resulting byte to `sink` (in
    /// non-empty chunks) before returning.
    fn push(&mut self, mut input: &[u8], sink: &mut Sink<'_>) -> Result<(), DecodeError> {
        loop {
            let (out, mut made) = (&mut self.scratch[..], 0);
            let used = match &mut self.codec {
                Codec::Inflate(c) => c.step(input, out, &mut made),
                Codec::Brotli(c) => c.step(input, out, &mut made),
                Codec::Zstd(c) => c.step(input, out, &mut made),
            };
            if let Some(chunk) = self.scratch.get(..made).filter(|c| !c.is_empty()) {
                sink(chunk)?;
            }
            let used = used.map_err(|detail| corrupt(self.coding, detail))?;
            input = input.get(used..).unwrap_or_default();
            // Every call gets the whole (drained) buffer, so one that did
            // nothing has no output pending either: this push is done.
            match (used, made, input) {
                (0, 0, []) => return Ok(()),
                (0, 0, _) => return Err(corrupt(self.coding, STALLED)),
                _ => {}
            }
        }
    }

    /// Ok if the input so far was a complete stream, or nothing at all.
    fn finish(&self) -> Result<(), DecodeError> {
        let complete = match &self.codec {
            Codec::Inflate(c) => match c.framing {
                Framing::Gzip(gz) => gz == Gz::START || gz == Gz::End,
                Framing::Sniff(first) => first.is_none(),
                Framing::Deflate(ended) => ended,
            },
            Codec::Brotli(c) => c.ended || c.state.is_none(),
            Codec::Zstd(c) => !c.mid_frame,
        };
        let coding = self.coding.name();
        complete
            .then_some(())
            .ok_or(DecodeError::Truncated { coding })
    }
}

/// gzip (RFC 1952) and "deflate" (zlib, RFC 1950, or raw RFC 1951).
struct Inflate {
    z: Decompress,
    /// CRC-32 and length (mod 2^32) of the current gzip member's output.
    crc: Crc,
    framing: Framing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Gzip(Gz),
    /// "deflate" before its first two bytes are in; holds the first.
    Sniff(Option<u8>),
    /// zlib or raw deflate data; `true` once the stream is complete.
    Deflate(bool),
}

/// Position in a gzip stream of one or more members. Header fields are
/// skipped byte by byte: a huge FNAME costs time but no memory. `flags` is
/// the FLG byte, with each optional field's bit cleared once it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gz {
    /// (bytes of the 10-byte fixed header seen, flags).
    Fixed(u8, u8),
    /// (flags, low byte of the FEXTRA length once read).
    ExtraLen(u8, Option<u8>),
    /// (flags, bytes left to skip): FEXTRA data, or the header CRC-16,
    /// which goes unchecked (optional, rare, and the body's CRC-32 is what
    /// catches corruption).
    Skip(u8, u16),
    /// (flags): in zero-terminated FNAME, or FCOMMENT once FNAME is cleared.
    Text(u8),
    Body,
    /// (trailer bytes gathered little-endian, count): CRC-32 then ISIZE.
    Trailer(u64, u8),
    /// A member is complete; more input must be another member.
    End,
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

impl Gz {
    const START: Gz = Gz::Fixed(0, 0);

    /// The state reading the first optional header field left in `flags`
    /// (RFC 1952 order), or the body once none is.
    fn next_field(flags: u8) -> Gz {
        if flags & FEXTRA != 0 {
            Gz::ExtraLen(flags & !FEXTRA, None)
        } else if flags & (FNAME | FCOMMENT) != 0 {
            Gz::Text(flags)
        } else if flags & FHCRC != 0 {
            Gz::Skip(flags & !FHCRC, 2)
        } else {
            Gz::Body
        }
    }

    /// Consumes one header byte; only valid in the header states.
    fn step(self, b: u8) -> Result<Gz, &'static str> {
        Ok(match self {
            Gz::Fixed(pos, flags) => {
                let flags = match (pos, b) {
                    (0, 0x1f) | (1, 0x8b) | (2, 8) => flags,
                    (0 | 1, _) => return Err("not a gzip stream (bad magic bytes)"),
                    (2, _) => return Err("unsupported compression method"),
                    (3, f) if f & FRESERVED != 0 => return Err("reserved header flags set"),
                    (3, f) => f,
                    _ => flags, // MTIME, XFL, OS: not needed
                };
                match pos {
                    9 => Gz::next_field(flags),
                    _ => Gz::Fixed(pos + 1, flags),
                }
            }
            Gz::ExtraLen(flags, None) => Gz::ExtraLen(flags, Some(b)),
            Gz::ExtraLen(flags, Some(lo)) => match u16::from_le_bytes([lo, b]) {
                0 => Gz::next_field(flags),
                len => Gz::Skip(flags, len),
            },
            Gz::Skip(flags, 0 | 1) => Gz::next_field(flags),
            Gz::Skip(flags, left) => Gz::Skip(flags, left - 1),
            Gz::Text(flags) if b == 0 => {
                let field = if flags & FNAME != 0 { FNAME } else { FCOMMENT };
                Gz::next_field(flags & !field)
            }
            Gz::Text(_) => self,
            Gz::Body | Gz::Trailer(..) | Gz::End => return Err("not in a header"),
        })
    }
}

/// zlib header check (RFC 1950 §2.2): method 8, window ≤ 32 KiB, FCHECK.
/// Raw deflate practically never passes: a low nibble of 8 in its first
/// byte means a stored block with non-zero padding bits.
fn looks_like_zlib(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

impl Inflate {
    fn new(framing: Framing) -> Inflate {
        // Always raw: gzip framing is parsed here, and "deflate" switches
        // to zlib once its first two bytes have been seen.
        let z = Decompress::new(false);
        Inflate {
            z,
            crc: Crc::new(),
            framing,
        }
    }

    fn step(&mut self, input: &[u8], out: &mut [u8], made: &mut usize) -> Result<usize, String> {
        let b = match (self.framing, input) {
            (Framing::Gzip(Gz::Body) | Framing::Deflate(false), _) => {
                return self.inflate(input, out, made);
            }
            (_, []) => return Ok(0),
            (_, [b, ..]) => *b,
        };
        self.framing = match self.framing {
            Framing::Sniff(None) => Framing::Sniff(Some(b)),
            Framing::Sniff(Some(first)) => {
                self.z.reset(looks_like_zlib(first, b));
                self.framing = Framing::Deflate(false);
                // Both bytes belong to the stream, but only `b` is in `input`.
                return Ok(self.inflate(&[first, b], out, made)?.saturating_sub(1));
            }
            Framing::Gzip(Gz::Trailer(acc, len)) => {
                let acc = acc | u64::from(b) << (8 * u32::from(len));
                match len {
                    7 => self.check_trailer(acc)?,
                    _ => Framing::Gzip(Gz::Trailer(acc, len + 1)),
                }
            }
            // Concatenated members form one gzip stream (RFC 1952 §2.2).
            Framing::Gzip(Gz::End) if b == 0x1f => {
                self.z.reset(false);
                self.crc.reset();
                Framing::Gzip(Gz::Fixed(1, 0))
            }
            Framing::Gzip(Gz::End) | Framing::Deflate(_) => return Err(TRAILING.into()),
            Framing::Gzip(gz) => Framing::Gzip(gz.step(b)?),
        };
        Ok(1)
    }

    /// One inflater call; moves on to the trailer (gzip) or the end once
    /// the deflate stream is complete.
    fn inflate(&mut self, input: &[u8], out: &mut [u8], made: &mut usize) -> Result<usize, String> {
        let (in0, out0) = (self.z.total_in(), self.z.total_out());
        let status = self.z.decompress(input, out, FlushDecompress::None);
        // Both deltas are bounded by the slices just passed in.
        *made = (self.z.total_out() - out0) as usize;
        let used = (self.z.total_in() - in0) as usize;
        if let (Framing::Gzip(_), Some(chunk)) = (self.framing, out.get(..*made)) {
            self.crc.update(chunk);
        }
        if status.map_err(|e| e.to_string())? == Status::StreamEnd {
            self.framing = match self.framing {
                Framing::Gzip(_) => Framing::Gzip(Gz::Trailer(0, 0)),
                _ => Framing::Deflate(true),
            };
        }
        Ok(used)
    }

    /// Checks a gzip member's trailer against what was actually decoded.
    fn check_trailer(&self, trailer: u64) -> Result<Framing, &'static str> {
        // Low half: CRC-32; high half: ISIZE, the length modulo 2^32.
        if trailer as u32 != self.crc.sum() {
            return Err("CRC-32 mismatch");
        }
        if (trailer >> 32) as u32 != self.crc.amount() {
            return Err("length (ISIZE) mismatch");
        }
        Ok(Framing::Gzip(Gz::End))
    }
}

/// Brotli (RFC 7932) through the decompressor's low-level stream API.
#[derive(Default)]
struct Brotli {
    /// Created with the first input byte: an empty body allocates nothing.
    state: Option<Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>>,
    ended: bool,
}

impl Brotli {
    fn step(&mut self, input: &[u8], out: &mut [u8], made: &mut usize) -> Result<usize, String> {
        match (self.ended, input) {
            (true, []) => return Ok(0),
            (true, _) => return Err(TRAILING.into()),
            _ => {}
        }
        let state = self.state.get_or_insert_with(|| {
            let a = StandardAlloc::default;
            let mut state = BrotliState::new(a(), a(), a());
            // `new` enables the large-window extension (windows up to 1 GiB);
            // HTTP's "br" is plain RFC 7932, whose windows stop at 16 MiB.
            state.large_window = false;
            Box::new(state)
        });
        let (mut avail_in, mut used, mut avail_out, mut total) = (input.len(), 0, out.len(), 0);
        let result = BrotliDecompressStream(
            &mut avail_in,
            &mut used,
            input,
            &mut avail_out,
            made,
            out,
            &mut total,
            state,
        );
        match result {
            BrotliResult::ResultSuccess => self.ended = true,
            BrotliResult::ResultFailure => return Err(format!("{:?}", state.error_code)),
            BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => {}
        }
        Ok(used)
    }
}

/// Zstandard (RFC 8878), possibly several frames back to back.
#[derive(Default)]
struct Zstd {
    /// Created with the first input byte: an empty body allocates nothing.
    dctx: Option<ZstdDecoder<'static>>,
    /// A frame is half-decoded, so the body must not end here.
    mid_frame: bool,
}

impl Zstd {
    fn step(&mut self, input: &[u8], out: &mut [u8], made: &mut usize) -> Result<usize, String> {
        if self.dctx.is_none() {
            let mut dctx = ZstdDecoder::new().map_err(|e| e.to_string())?;
            let window = DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX);
            dctx.set_parameter(window).map_err(|e| e.to_string())?;
            self.dctx = Some(dctx);
        }
        let Some(dctx) = self.dctx.as_mut() else {
            return Ok(0); // just set above
        };
        let (mut src, mut dst) = (InBuffer::around(input), OutBuffer::around(out));
        let hint = dctx.run(&mut src, &mut dst);
        let used = src.pos();
        *made = dst.pos();
        let hint = hint.map_err(|e| e.to_string())?;
        // Only a call that did something says where we are (asked for more
        // after a frame, zstd hints at the size of the next header). A hint
        // of 0 means a frame just ended and was fully flushed; zstd stops
        // there, and further input starts a new frame.
        if used > 0 || *made > 0 {
            self.mid_frame = hint != 0;
        }
        Ok(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContentCoding::{Brotli as Br, Deflate, Gzip, Zstd};
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::{Compress, Compression, FlushCompress};
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

        #[test]
        fn prop_damaged_streams_never_panic(
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
            let (out, _) = decode_pieces(&[coding], split(&body, &cuts), 1 << 20);
            prop_assert!(out.len() <= 1 << 20);
        }
    }
}
