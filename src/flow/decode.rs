//! Push-based, bounded decoding of HTTP content codings (RFC 9110 §8.4.1).
//!
//! A [`StreamDecoder`] undoes a stack of codings as a body arrives in chunks
//! of any size. Each coding is a stage whose output goes straight into the
//! next stage, and finally through an output limiter to the caller; nothing
//! ever holds a whole body.
//!
//! The result depends only on the bytes, not on how the network cut them.
//! For brotli that takes one measure: its decompressor judges some damaged
//! streams differently depending on how much input each call is given (its
//! fast path, taken while enough input is at hand, skips a block-length
//! check that its careful path makes), so a br stage hands it input in
//! [`BROTLI_BLOCK`]-byte blocks whatever the pushes were, the last one at
//! [`StreamDecoder::finish`].
//!
//! # Memory
//!
//! Bounded per decoder whatever the body size or compression ratio: each
//! stage has one [`SCRATCH_LEN`] output buffer plus its codec's state —
//! gzip/deflate about 40 KiB (zlib-rs, 32 KiB window); br at most 16 MiB
//! of ring buffer (the RFC 7932 maximum: the non-standard 1 GiB "large
//! window" extension is off, such streams are Corrupt) plus some hundred KiB
//! of tables; zstd at most 8 MiB of window ([`ZSTD_WINDOW_LOG_MAX`], larger
//! frames are Corrupt) plus about 300 KiB, and a br stage's input block
//! ([`BROTLI_BLOCK`]). With [`MAX_CODINGS`] stages the
//! worst case is about 50 MiB (three br stages). Brotli and zstd size their
//! buffers from the stream, so small bodies cost far less, and all of it is
//! freed as soon as the decoder fails or finishes, but for two inflaters
//! and two output buffers per thread, kept for the next decoder (see
//! `decode_spare.rs`).

use brotli::writer::StandardAlloc;
use brotli::{BrotliDecompressStream, BrotliResult, BrotliState};
use zstd::stream::raw::{DParameter, Decoder as ZstdDecoder, InBuffer, Operation, OutBuffer};

#[path = "decode_inflate.rs"]
mod inflate;
#[path = "decode_spare.rs"]
mod spare;

use inflate::{Framing, Gz, Inflate};

/// Size of each stage's output buffer, so the largest chunk handed to `out`.
pub const SCRATCH_LEN: usize = 16 * 1024;

/// Input a br stage gathers before its decompressor sees any of it (see the
/// module docs): at most this much of a br body waits for the next push.
pub const BROTLI_BLOCK: usize = 4096;

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

    /// Whether a body starting with `head` may be in this coding: `None`
    /// while `head` is too short to tell. gzip and zstd streams start with
    /// a signature (a zstd stream may also start with a skippable frame);
    /// deflate and br have none, so any start may be theirs.
    pub fn starts_like(self, head: &[u8]) -> Option<bool> {
        match self {
            ContentCoding::Gzip => against(head, &[0x1f, 0x8b]),
            ContentCoding::Zstd => {
                let frame = against(head, &[0x28, 0xb5, 0x2f, 0xfd]);
                let skippable = match head.first() {
                    None => None,
                    Some(&b) if b & 0xf0 == 0x50 => against(head, &[b, 0x2a, 0x4d, 0x18]),
                    Some(_) => Some(false),
                };
                match (frame, skippable) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                }
            }
            ContentCoding::Deflate | ContentCoding::Brotli => Some(true),
        }
    }
}

/// `Some(true)` when `head` starts with `signature`, `Some(false)` when it
/// cannot, `None` while `head` is a shorter prefix of it.
fn against(head: &[u8], signature: &[u8]) -> Option<bool> {
    let n = head.len().min(signature.len());
    if head[..n] != signature[..n] {
        Some(false)
    } else if n == signature.len() {
        Some(true)
    } else {
        None
    }
}

/// Bytes [`ContentCoding::starts_like`] needs at most to decide.
pub const SIGNATURE_LEN: usize = 4;

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
/// all of it to `out` before returning, except for the last partial
/// [`BROTLI_BLOCK`] of a br stage's input; [`finish`](Self::finish)
/// decodes that and checks that every stream was complete. A body of zero
/// bytes is fine for every coding: servers routinely label empty
/// 204/304/HEAD bodies with a Content-Encoding.
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
        let mut limit = limiter(self.max_output, &mut self.emitted, out);
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

    /// Signals end of input: decodes what br stages still hold (handing it
    /// to `out`), then reports Truncated if a compressed stream ended early
    /// (naming the outermost incomplete coding). A second `finish`, or one
    /// on a failed decoder, returns Ok(()).
    pub fn finish(&mut self, out: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        self.drain(out, true)
    }

    /// The body broke off: decodes what br stages still hold, as far as it
    /// goes, without asking whether the streams were complete (the caller
    /// knows they were not). Otherwise like [`finish`](Self::finish).
    pub fn abandon(&mut self, out: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        self.drain(out, false)
    }

    fn drain(&mut self, out: &mut dyn FnMut(&[u8]), check: bool) -> Result<(), DecodeError> {
        let Some(mut stages) = self.stages.take() else {
            return Ok(());
        };
        if let Some(error) = self.setup_error.take() {
            return Err(error);
        }
        let mut limit = limiter(self.max_output, &mut self.emitted, out);
        // Outermost first: what a stage still holds goes into the stages
        // after it before they are asked whether they are complete.
        let mut rest = &mut stages[..];
        while let Some((stage, after)) = rest.split_first_mut() {
            stage.end_of_input(&mut |chunk| feed(after, chunk, &mut limit))?;
            if check {
                stage.finish()?;
            }
            rest = after;
        }
        Ok(())
    }

    /// Decoded bytes emitted so far.
    pub fn output_len(&self) -> u64 {
        self.emitted
    }
}

/// The end of the chain: a chunk that would pass `max` is cut there, and
/// the `Err` stops every stage above it at once.
fn limiter<'a>(
    max: u64,
    emitted: &'a mut u64,
    out: &'a mut dyn FnMut(&[u8]),
) -> impl FnMut(&[u8]) -> Result<(), DecodeError> + 'a {
    move |chunk: &[u8]| {
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
        let scratch = spare::buffer();
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

    /// Decodes what the codec still holds (a br stage's last partial
    /// block), handing the output to `sink`.
    fn end_of_input(&mut self, sink: &mut Sink<'_>) -> Result<(), DecodeError> {
        match &mut self.codec {
            Codec::Brotli(c) if !c.held.is_empty() => {
                c.feeding = true;
                self.push(&[], sink)
            }
            _ => Ok(()),
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

impl Drop for Stage {
    fn drop(&mut self) {
        spare::keep_buffer(std::mem::take(&mut self.scratch));
    }
}

/// Brotli (RFC 7932) through the decompressor's low-level stream API, fed
/// in [`BROTLI_BLOCK`]-byte blocks.
#[derive(Default)]
struct Brotli {
    /// Created with the first block: an empty body allocates nothing.
    state: Option<Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>>,
    ended: bool,
    /// Input gathered for the next block; while `feeding`, the block being
    /// decoded, of which the first `fed` bytes were used.
    held: Vec<u8>,
    feeding: bool,
    fed: usize,
}

impl Brotli {
    /// Decodes the current block if there is one (returning 0: no new
    /// input used) until it yields output or is used up; then gathers
    /// `input` into the next block, which starts being decoded once full.
    fn step(&mut self, input: &[u8], out: &mut [u8], made: &mut usize) -> Result<usize, String> {
        if self.feeding {
            self.decode_block(out, made)?;
            if *made > 0 {
                return Ok(0);
            }
        }
        match (self.ended, input) {
            (true, []) => return Ok(0),
            (true, _) => return Err(TRAILING.into()),
            _ => {}
        }
        let take = input.len().min(BROTLI_BLOCK - self.held.len());
        self.held.extend_from_slice(&input[..take]);
        self.feeding = self.held.len() == BROTLI_BLOCK;
        Ok(take)
    }

    /// One decompressor call on the rest of the current block; the block
    /// is done (and cleared) once the call has used all of it.
    fn decode_block(&mut self, out: &mut [u8], made: &mut usize) -> Result<(), String> {
        let block = &self.held[self.fed..];
        let state = self.state.get_or_insert_with(|| {
            let a = StandardAlloc::default;
            let mut state = BrotliState::new(a(), a(), a());
            // `new` enables the large-window extension (windows up to 1 GiB);
            // HTTP's "br" is plain RFC 7932, whose windows stop at 16 MiB.
            state.large_window = false;
            Box::new(state)
        });
        let (mut avail_in, mut used, mut avail_out, mut total) = (block.len(), 0, out.len(), 0);
        let result = BrotliDecompressStream(
            &mut avail_in,
            &mut used,
            block,
            &mut avail_out,
            made,
            out,
            &mut total,
            state,
        );
        // Output still waiting inside the decompressor keeps the block
        // current, used up or not, so the next call drains it.
        let mut pending = false;
        match result {
            BrotliResult::ResultSuccess => self.ended = true,
            BrotliResult::ResultFailure => return Err(format!("{:?}", state.error_code)),
            BrotliResult::NeedsMoreOutput => pending = true,
            BrotliResult::NeedsMoreInput => {}
        }
        self.fed += used;
        if self.ended && self.fed < self.held.len() {
            return Err(TRAILING.into());
        }
        if self.ended || (self.fed == self.held.len() && !pending) {
            self.held.clear();
            self.feeding = false;
            self.fed = 0;
        }
        Ok(())
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
#[path = "decode_tests.rs"]
mod tests;
