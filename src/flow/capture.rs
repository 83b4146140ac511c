//! Bounded capture of a body as it streams past.
//!
//! [`BodyCapture`] sees every wire chunk of one body exactly once. It counts
//! the wire bytes, undoes the content coding (gzip, deflate, br, zstd) on the
//! fly, keeps the first `body_limit` decoded bytes, and hands every decoded
//! piece to a callback so streaming observers see the whole decoded body
//! without anyone holding it. Memory per body is bounded by `body_limit` plus
//! the decoder's fixed buffers, whatever the body's size.
//!
//! A body labelled with a coding it does not have (apps that send plain
//! JSON with `Content-Encoding: gzip` exist) would decode to nothing. When
//! the outermost coding has a signature (gzip, zstd) and the body's first
//! bytes are not it, the body is recorded and observed as sent, from its
//! first byte, after a [`BodyPiece::NotEncoded`] notice. deflate and br
//! streams have no signature to check.

use super::decode::{
    ContentCoding, DecodeError, SIGNATURE_LEN, StreamDecoder, parse_content_encoding,
};
use bytes::{Bytes, BytesMut};
use serde::Serialize;

/// What a capture hands its observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPiece<'a> {
    /// The next bytes of the body: decoded, or as sent when it has no
    /// coding (or turned out not to have its labelled one).
    Bytes(&'a [u8]),
    /// The body does not start like its labelled content coding: the
    /// pieces that follow are the body as sent, from its first byte.
    NotEncoded,
}

/// Limits that bound what one body may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureLimits {
    /// Decoded bytes kept in the record per body (`--body-limit`).
    pub body_limit: usize,
    /// Decoded bytes produced per body before decoding stops
    /// (`--decode-limit`): the bound on a decompression bomb.
    pub decode_limit: u64,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        CaptureLimits {
            body_limit: 1024 * 1024,
            decode_limit: 64 * 1024 * 1024,
        }
    }
}

/// The completed record of one body.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BodyRecord {
    /// Bytes relayed on the wire (after chunked framing, before content
    /// decoding).
    pub wire_size: u64,
    /// Content codings that were undone, in the order they were applied.
    pub content_encoding: Vec<&'static str>,
    /// Decoded bytes produced (equals `wire_size` when there is no coding;
    /// stops growing at the decode limit).
    pub decoded_size: u64,
    /// The first `body_limit` decoded bytes: raw bytes for an unknown coding,
    /// and what was decoded before the failure for a corrupt one. Left out
    /// of the JSON when empty (and so in `flows.jsonl`, which leaves bodies
    /// to the HAR).
    #[serde(
        with = "bytes_as_text_or_base64",
        skip_serializing_if = "Bytes::is_empty"
    )]
    pub captured: Bytes,
    /// True when `captured` holds less than the whole decoded body.
    pub truncated: bool,
    /// Why decoding stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_error: Option<String>,
    /// True when the body stream reached its end (false: it broke off).
    pub complete: bool,
}

/// Streaming capture of one body. See the module docs.
pub struct BodyCapture {
    limits: CaptureLimits,
    kept: BytesMut,
    decoder: Option<StreamDecoder>,
    /// While it is unsettled whether the body starts like its outermost
    /// coding (the one applied last): that coding and the first bytes.
    sniff: Option<(ContentCoding, Vec<u8>)>,
    record: BodyRecord,
}

impl BodyCapture {
    /// Starts a capture for a body sent with the given `Content-Encoding`
    /// header value (`None` when absent). An unknown coding is recorded as
    /// a decode error and the raw bytes are captured instead.
    pub fn new(content_encoding: Option<&str>, limits: CaptureLimits) -> BodyCapture {
        let mut record = BodyRecord::default();
        let codings = match content_encoding.map(parse_content_encoding) {
            None => Vec::new(),
            Some(Ok(codings)) => codings,
            Some(Err(err)) => {
                record.decode_error = Some(err.to_string());
                Vec::new()
            }
        };
        record.content_encoding = codings.iter().map(|c| c.name()).collect();
        let decoder =
            (!codings.is_empty()).then(|| StreamDecoder::new(&codings, limits.decode_limit));
        BodyCapture {
            limits,
            kept: BytesMut::new(),
            sniff: codings.last().map(|&outer| (outer, Vec::new())),
            decoder,
            record,
        }
    }

    /// Codings this capture undoes.
    pub fn codings(&self) -> &[&'static str] {
        &self.record.content_encoding
    }

    /// Feeds one wire chunk. Every decoded piece is kept (up to the body
    /// limit) and handed to `observe`.
    pub fn push(&mut self, wire: &[u8], observe: &mut dyn FnMut(BodyPiece<'_>)) {
        self.record.wire_size += wire.len() as u64;
        if let Some(sent) = self.not_as_labelled(wire) {
            self.read_as_sent(&sent, observe);
            return;
        }
        if self.record.content_encoding.is_empty() {
            keep(&mut self.kept, &mut self.record, self.limits, wire);
            observe(BodyPiece::Bytes(wire));
            return;
        }
        // Decoding failed or hit the decode limit: the rest is relayed and
        // counted on the wire, but it is not decoded, so it must not be
        // kept, counted or observed as if it were (a bomb's remaining
        // compressed bytes used to be, past the limit).
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        let (kept, record, limits) = (&mut self.kept, &mut self.record, self.limits);
        let result = decoder.push(wire, &mut |piece| {
            keep(kept, record, limits, piece);
            observe(BodyPiece::Bytes(piece));
        });
        if let Err(err) = result {
            self.fail(err);
        }
    }

    /// Marks the end of the body: flushes the decoder.
    pub fn finish(&mut self, observe: &mut dyn FnMut(BodyPiece<'_>)) {
        self.record.complete = true;
        self.end(observe, StreamDecoder::finish);
    }

    /// The body broke off before its end: decodes what the decoder still
    /// holds (the last partial block of a br body), so every byte that
    /// arrived is observed; the record stays incomplete. Does nothing after
    /// [`finish`](Self::finish).
    pub fn abandon(&mut self, observe: &mut dyn FnMut(BodyPiece<'_>)) {
        self.end(observe, StreamDecoder::abandon);
    }

    /// Ends the decoder the given way, keeping and observing its output.
    fn end(&mut self, observe: &mut dyn FnMut(BodyPiece<'_>), how: EndDecoder) {
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        let (kept, record, limits) = (&mut self.kept, &mut self.record, self.limits);
        let result = how(decoder, &mut |piece| {
            keep(kept, record, limits, piece);
            observe(BodyPiece::Bytes(piece));
        });
        if let Err(err) = result {
            self.fail(err);
        }
    }

    /// The record as it stands (for a body that never finished, too).
    pub fn into_record(mut self) -> BodyRecord {
        self.record.captured = self.kept.freeze();
        self.record
    }

    /// Adds `wire` to the body's first bytes while they are unsettled;
    /// returns every byte so far once they differ from the signature of the
    /// outermost coding.
    fn not_as_labelled(&mut self, wire: &[u8]) -> Option<Vec<u8>> {
        let (outer, head) = self.sniff.as_mut()?;
        let before = head.len();
        head.extend_from_slice(&wire[..wire.len().min(SIGNATURE_LEN - before)]);
        // Undecided: keep the bytes and wait for more.
        let fits = outer.starts_like(head)?;
        let (_, mut sent) = self.sniff.take()?;
        if fits {
            return None;
        }
        sent.truncate(before);
        sent.extend_from_slice(wire);
        Some(sent)
    }

    /// Gives up the labelled coding: `sent` (the body so far) and all that
    /// follows are recorded and observed as they are.
    fn read_as_sent(&mut self, sent: &[u8], observe: &mut dyn FnMut(BodyPiece<'_>)) {
        let labelled = self.record.content_encoding.join(", ");
        self.record.decode_error = Some(format!(
            "the body does not start like {labelled} data as its Content-Encoding says; \
             read as sent"
        ));
        self.record.content_encoding.clear();
        self.decoder = None;
        observe(BodyPiece::NotEncoded);
        keep(&mut self.kept, &mut self.record, self.limits, sent);
        observe(BodyPiece::Bytes(sent));
    }

    fn fail(&mut self, err: DecodeError) {
        if self.record.decode_error.is_none() {
            self.record.decode_error = Some(err.to_string());
        }
        // Decoding is over for this body; nothing more will be decoded.
        self.decoder = None;
    }
}

/// [`StreamDecoder::finish`] or [`StreamDecoder::abandon`].
type EndDecoder = fn(&mut StreamDecoder, &mut dyn FnMut(&[u8])) -> Result<(), DecodeError>;

/// Appends `piece` to the kept prefix, respecting the body limit.
fn keep(kept: &mut BytesMut, record: &mut BodyRecord, limits: CaptureLimits, piece: &[u8]) {
    record.decoded_size += piece.len() as u64;
    let room = limits.body_limit.saturating_sub(kept.len());
    if piece.len() > room {
        record.truncated = true;
    }
    kept.extend_from_slice(&piece[..piece.len().min(room)]);
}

/// Serialises bytes as `{"text": "..."}` when they are UTF-8 and as
/// `{"base64": "..."}` otherwise, so JSON consumers never guess.
pub mod bytes_as_text_or_base64 {
    use base64::Engine;
    use serde::Serializer;
    use serde::ser::SerializeMap;

    pub fn serialize<S: Serializer>(bytes: &bytes::Bytes, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(Some(1))?;
        match std::str::from_utf8(bytes) {
            Ok(text) => map.serialize_entry("text", text)?,
            Err(_) => map.serialize_entry(
                "base64",
                &base64::engine::general_purpose::STANDARD.encode(bytes),
            )?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("gzip into a Vec");
        enc.finish().expect("gzip into a Vec")
    }

    /// Stands for [`BodyPiece::NotEncoded`] in what a test observed.
    const NOT_ENCODED: &[u8] = b"<not encoded>";

    fn capture_all(
        encoding: Option<&str>,
        wire: &[u8],
        limits: CaptureLimits,
    ) -> (BodyRecord, Vec<u8>) {
        let mut cap = BodyCapture::new(encoding, limits);
        let mut seen = Vec::new();
        let mut observe = |p: BodyPiece<'_>| match p {
            BodyPiece::Bytes(p) => seen.extend_from_slice(p),
            BodyPiece::NotEncoded => seen.extend_from_slice(NOT_ENCODED),
        };
        for byte in wire.chunks(1) {
            cap.push(byte, &mut observe);
        }
        cap.finish(&mut observe);
        (cap.into_record(), seen)
    }

    #[test]
    fn plain_body_is_kept_up_to_the_limit_and_observed_whole() {
        let limits = CaptureLimits {
            body_limit: 4,
            decode_limit: 100,
        };
        let (record, seen) = capture_all(None, b"abcdefgh", limits);
        assert_eq!(&record.captured[..], b"abcd");
        assert!(record.truncated);
        assert_eq!(record.wire_size, 8);
        assert_eq!(seen, b"abcdefgh");
        assert!(record.complete);
    }

    #[test]
    fn gzip_body_is_decoded_byte_by_byte() {
        let body = b"{\"imei\":\"490154203237518\"}".repeat(10);
        let wire = gzip(&body);
        let (record, seen) = capture_all(Some("gzip"), &wire, CaptureLimits::default());
        assert_eq!(seen, body);
        assert_eq!(&record.captured[..], &body[..]);
        assert_eq!(record.wire_size, wire.len() as u64);
        assert_eq!(record.content_encoding, vec!["gzip"]);
        assert!(!record.truncated);
    }

    /// A br body that breaks off: what arrived is still decoded and
    /// observed (the decompressor only sees whole blocks while the body
    /// goes on), and the record says the body is incomplete.
    #[test]
    fn a_broken_off_br_body_is_decoded_as_far_as_it_arrived() {
        let body: Vec<u8> = (0..200u32)
            .flat_map(|i| format!("{{\"seq\":{},\"t\":{}}}", i * 7919 % 1000, i * i).into_bytes())
            .collect();
        let mut enc = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
        enc.write_all(&body).expect("brotli into a Vec");
        let wire = enc.into_inner();
        let arrived = &wire[..wire.len() - 1];
        let mut cap = BodyCapture::new(Some("br"), CaptureLimits::default());
        let mut seen = Vec::new();
        let observe = |seen: &mut Vec<u8>, p: BodyPiece<'_>| {
            if let BodyPiece::Bytes(p) = p {
                seen.extend_from_slice(p);
            }
        };
        cap.push(arrived, &mut |p| observe(&mut seen, p));
        assert!(seen.is_empty(), "a partial block waits for more");
        cap.abandon(&mut |p| observe(&mut seen, p));
        let record = cap.into_record();
        assert!(
            seen.len() > body.len() / 2,
            "{} of {} bytes",
            seen.len(),
            body.len()
        );
        assert!(body.starts_with(&seen));
        assert_eq!(&record.captured[..], &seen[..]);
        assert!(!record.complete);
        assert_eq!(record.decode_error, None);
    }

    /// Regression: once decoding stopped, the remaining wire bytes were
    /// kept, counted and observed as decoded ones.
    #[test]
    fn nothing_raw_follows_a_decode_limit_or_a_corrupt_stream() {
        let body = b"imei=490154203237518&".repeat(100);
        let limits = CaptureLimits {
            body_limit: 1 << 20,
            decode_limit: 64,
        };
        let (record, seen) = capture_all(Some("gzip"), &gzip(&body), limits);
        assert_eq!(seen, &body[..64]);
        assert_eq!(&record.captured[..], &body[..64]);
        assert_eq!(record.decoded_size, 64);
        assert!(record.decode_error.unwrap().contains("limit"));

        let mut corrupt = gzip(&body);
        let end = corrupt.len() - 8;
        corrupt[end - 40..end].fill(0xff);
        let (record, seen) = capture_all(Some("gzip"), &corrupt, CaptureLimits::default());
        assert!(record.decode_error.is_some());
        // Deflate carries no check before the gzip trailer: what the
        // inflater decodes from the damaged part before it meets a code it
        // cannot read is decoded output, and is handed on. What is observed
        // is that output, as one push of the whole stream gives it, and
        // nothing of the wire after it.
        let mut decoded = Vec::new();
        let mut one = StreamDecoder::new(&[ContentCoding::Gzip], u64::MAX);
        assert!(
            one.push(&corrupt, &mut |p| decoded.extend_from_slice(p))
                .is_err()
        );
        assert_eq!(seen, decoded, "only decoded bytes are observed");
        assert_eq!(&record.captured[..], &seen[..]);
        assert_eq!(record.decoded_size, seen.len() as u64);
        assert_eq!(record.wire_size, corrupt.len() as u64);
    }

    /// Apps send plain text labelled gzip: a body that does not start like
    /// its outermost coding is read as sent, from its first byte.
    #[test]
    fn a_body_without_its_labelled_coding_is_read_as_sent() {
        let body = br#"{"imei":"490154203237518","os":"android"}"#;
        // deflate and br have no signature: plain text may decode to noise.
        for coding in ["gzip", "x-gzip", "zstd", "br, gzip"] {
            let (record, seen) = capture_all(Some(coding), body, CaptureLimits::default());
            assert_eq!(seen, [NOT_ENCODED, &body[..]].concat(), "{coding}");
            assert_eq!(&record.captured[..], &body[..], "{coding}");
            assert_eq!(record.decoded_size, body.len() as u64);
            assert!(record.content_encoding.is_empty(), "{coding}");
            let error = record.decode_error.unwrap();
            assert!(error.contains("read as sent"), "{coding}: {error}");
        }
    }

    /// A zstd body may start with a skippable frame; and a gzip body cut
    /// off after its first byte is not "plain".
    #[test]
    fn signatures_decide_only_on_enough_bytes() {
        use ContentCoding::{Brotli, Gzip, Zstd};
        assert_eq!(Gzip.starts_like(b""), None);
        assert_eq!(Gzip.starts_like(&[0x1f]), None);
        assert_eq!(Gzip.starts_like(&[0x1f, 0x8b, 8]), Some(true));
        assert_eq!(Gzip.starts_like(b"{\""), Some(false));
        assert_eq!(Zstd.starts_like(&[0x28, 0xb5, 0x2f]), None);
        assert_eq!(Zstd.starts_like(&[0x28, 0xb5, 0x2f, 0xfd]), Some(true));
        assert_eq!(Zstd.starts_like(&[0x5e, 0x2a, 0x4d, 0x18]), Some(true));
        assert_eq!(Zstd.starts_like(&[0x5e, 0x2a, 0x4d, 0x19]), Some(false));
        assert_eq!(Zstd.starts_like(b"{"), Some(false));
        assert_eq!(Brotli.starts_like(b"{"), Some(true));

        let (record, seen) = capture_all(Some("gzip"), &[0x1f], CaptureLimits::default());
        assert!(seen.is_empty());
        assert_eq!(record.content_encoding, vec!["gzip"]);
        assert!(record.decode_error.is_some());
    }

    #[test]
    fn unknown_coding_keeps_raw_bytes_and_says_why() {
        let (record, seen) = capture_all(Some("snappy"), b"raw", CaptureLimits::default());
        assert_eq!(&record.captured[..], b"raw");
        assert_eq!(seen, b"raw");
        assert!(record.decode_error.unwrap().contains("snappy"));
    }

    #[test]
    fn body_that_never_finished_is_marked_incomplete() {
        let mut cap = BodyCapture::new(None, CaptureLimits::default());
        cap.push(b"part", &mut |_| {});
        let record = cap.into_record();
        assert!(!record.complete);
        assert_eq!(&record.captured[..], b"part");
    }
}
