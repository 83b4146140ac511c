//! Whether a base64 run is worth scanning, and what it holds: the quick
//! look at its first decoded bytes, the decoding (and gunzipping), and the
//! test that what came out is text.

use base64::Engine;

use super::MIN_TOKEN;
use crate::detect::spares;
use crate::flow::decode::{ContentCoding, StreamDecoder};

/// The buffers a scan decodes base64 payloads into: what a run decodes to,
/// and what that inflates to. Kept from one payload to the next (and, as
/// one of a scan's parts, from one scan to the next): a body of analytics
/// batches holds a payload every few KiB.
#[derive(Default)]
pub(in crate::detect::scan) struct PayloadBuffers {
    decoded: Vec<u8>,
    inflated: Vec<u8>,
}

impl PayloadBuffers {
    /// The buffers, taken out and emptied for a later scan (see
    /// [`spares::taken_emptied`]).
    pub(in crate::detect::scan) fn taken_emptied(&mut self) -> PayloadBuffers {
        PayloadBuffers {
            decoded: spares::taken_emptied(&mut self.decoded),
            inflated: spares::taken_emptied(&mut self.inflated),
        }
    }
}

/// Decodes a base64 run into `buffers`; returns the containers opened and
/// the payload when it holds something worth scanning (gzip/zlib data or
/// text).
pub(super) fn decode_nested<'b>(
    token: &[u8],
    limit: u64,
    buffers: &'b mut PayloadBuffers,
) -> Option<(Vec<&'static str>, &'b [u8])> {
    let trimmed = token
        .strip_suffix(b"==")
        .or_else(|| token.strip_suffix(b"="))
        .unwrap_or(token);
    // `=` inside the run is a key/value separator (`data=H4sI...`): the
    // payload is what follows the last one.
    let trimmed = match memchr::memrchr(b'=', trimmed) {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    };
    if trimmed.len() < MIN_TOKEN {
        return None;
    }
    let url_safe = memchr::memchr2(b'-', b'_', trimmed).is_some();
    if surely_binary(trimmed, url_safe) {
        return None;
    }
    decode_payload(trimmed, url_safe, limit, buffers)
}

/// Decodes base64 text (without padding) and what it holds into `buffers`.
pub(in crate::detect::scan) fn decode_payload<'b>(
    trimmed: &[u8],
    url_safe: bool,
    limit: u64,
    buffers: &'b mut PayloadBuffers,
) -> Option<(Vec<&'static str>, &'b [u8])> {
    let PayloadBuffers { decoded, inflated } = buffers;
    decoded.clear();
    engine(url_safe).decode_vec(trimmed, decoded).ok()?;
    let compressed = match decoded.as_slice() {
        [0x1f, 0x8b, ..] => Some((ContentCoding::Gzip, "gzip")),
        [0x78, flg, ..] if (0x7800u16 | *flg as u16).is_multiple_of(31) => {
            Some((ContentCoding::Deflate, "zlib"))
        }
        _ => None,
    };
    let (mut containers, payload) = match compressed {
        Some((coding, name)) => {
            inflated.clear();
            let mut decoder = StreamDecoder::new(&[coding], limit);
            let _ = decoder.push(decoded, &mut |piece| inflated.extend_from_slice(piece));
            let _ = decoder.finish(&mut |piece| inflated.extend_from_slice(piece));
            (vec!["base64", name], &inflated[..])
        }
        None if mostly_text(decoded) => (vec!["base64"], &decoded[..]),
        None => return None,
    };
    if let Some(kind) = sniff_container(payload) {
        containers.push(kind);
    }
    Some((containers, payload))
}

/// True when what `b64` decodes to is certainly not worth scanning (not
/// gzip or zlib, and not [`mostly_text`]), judged from its first 24 bytes:
/// hex digests and ids are base64-shaped, and decoding them whole only to
/// throw the bytes away is most of what looking into base64 costs.
pub(in crate::detect::scan) fn surely_binary(b64: &[u8], url_safe: bool) -> bool {
    let total = b64.len() * 3 / 4;
    let Some((prefix, n)) = decode_prefix(b64, url_safe) else {
        // Not valid here: the full decode fails on its own.
        return false;
    };
    let prefix = &prefix[..n];
    if matches!(prefix, [0x1f, 0x8b, ..] | [0x78, ..]) {
        return false;
    }
    // `mostly_text` accepts valid UTF-8 without control characters, or at
    // least 90% printable bytes; the prefix can rule out both. The count
    // comes first: it is cheaper, and it is what turns text away.
    let unprintable = prefix.len() - printable(prefix);
    if unprintable * 10 <= total {
        return false;
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => has_control(prefix),
        // A byte that is not UTF-8 is not text; a character cut at the
        // prefix's end may be, and the bytes before it decide.
        Err(e) => e.error_len().is_some() || has_control(&prefix[..e.valid_up_to()]),
    }
}

/// Bytes of a base64 run [`surely_binary`] decodes.
const PREFIX: usize = 24;

/// What the first whole quads of `b64` (at most [`PREFIX`] bytes' worth)
/// decode to, as the `base64` engine of the alphabet decodes them; `None`
/// at a byte outside the alphabet. Decoded here: the engine's general
/// decoder cost several times the rest of [`surely_binary`].
pub(in crate::detect::scan) fn decode_prefix(
    b64: &[u8],
    url_safe: bool,
) -> Option<([u8; PREFIX], usize)> {
    let table = &SEXTETS[usize::from(url_safe)];
    let mut out = [0u8; PREFIX];
    let quads = b64.chunks_exact(4).take(PREFIX / 3);
    let mut n = 0;
    for (quad, bytes) in quads.zip(out.chunks_exact_mut(3)) {
        let mut word = 0u32;
        for &c in quad {
            let v = table[usize::from(c)];
            if v == INVALID {
                return None;
            }
            word = word << 6 | u32::from(v);
        }
        bytes.copy_from_slice(&word.to_be_bytes()[1..]);
        n += 3;
    }
    Some((out, n))
}

/// Not a base64 digit.
const INVALID: u8 = 0xFF;

/// Per alphabet (standard, URL-safe): each byte's 6-bit value.
static SEXTETS: [[u8; 256]; 2] = [sextets(b'+', b'/'), sextets(b'-', b'_')];

const fn sextets(c62: u8, c63: u8) -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        table[b'A' as usize + i] = i as u8;
        table[b'a' as usize + i] = 26 + i as u8;
        if i < 10 {
            table[b'0' as usize + i] = 52 + i as u8;
        }
        i += 1;
    }
    table[c62 as usize] = 62;
    table[c63 as usize] = 63;
    table
}

/// The base64 alphabet a run uses (padding is trimmed before decoding).
fn engine(url_safe: bool) -> &'static base64::engine::GeneralPurpose {
    if url_safe {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    }
}

/// True when at least 90% of the bytes are printable ASCII or whitespace,
/// or the bytes are valid UTF-8 text: binary noise decoded from a
/// base64-looking word is not worth scanning.
fn mostly_text(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        return false;
    }
    if std::str::from_utf8(bytes).is_ok() && !has_control(bytes) {
        return true;
    }
    printable(bytes) * 10 >= bytes.len() * 9
}

/// How many of `bytes` are printable ASCII or whitespace. Counted from a
/// table: on decoded noise, testing the two classes byte by byte was a
/// branch the CPU mostly guessed wrong.
pub(in crate::detect::scan) fn printable(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .map(|&b| usize::from(PRINTABLE[usize::from(b)]))
        .sum()
}

static PRINTABLE: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = (c.is_ascii_graphic() || c.is_ascii_whitespace()) as u8;
        b += 1;
    }
    table
};

/// True when the UTF-8 text `b` holds a control character that is not
/// whitespace (`c.is_control() && !c.is_whitespace()`), read from its
/// bytes: the C0 controls and DEL are single bytes, the C1 controls are
/// `0xC2` followed by `0x80..=0x9F`, and of them all only `\t \n \x0B \x0C
/// \r` and U+0085 are whitespace. Decoding every character cost more than
/// the rest of deciding whether a base64 payload is text. Bytes, not a
/// `str`: callers have checked them, and checking again cost as much.
/// On bytes that are not UTF-8 the answer means nothing.
pub(in crate::detect::scan) fn has_control(b: &[u8]) -> bool {
    // Text without a lead byte, the usual case, is decided by the first
    // pass, many bytes at a time.
    any_lead(b)
        && b.iter().enumerate().any(|(i, &c)| {
            leads(c) && (c != 0xc2 || matches!(b.get(i + 1), Some(0x80..=0x84 | 0x86..=0x9f)))
        })
}

/// The first byte of every character [`has_control`] looks for: C0 but
/// `\t..=\r`, DEL, and the lead byte of the C1 block. Comparisons without
/// short circuits, so that the compiler tests a vector of bytes at once.
fn leads(c: u8) -> bool {
    (c < 0x09) | (c.wrapping_sub(0x0e) < 0x20 - 0x0e) | (c == 0x7f) | (c == 0xc2)
}

/// True if some byte of `b` [`leads`]. Each 32-byte piece is tested whole
/// before the answer is looked at: an early exit per byte would keep the
/// compiler from comparing them together (a count did too, in practice).
fn any_lead(b: &[u8]) -> bool {
    let mut pieces = b.chunks_exact(32);
    for piece in &mut pieces {
        if piece.iter().fold(false, |any, &c| any | leads(c)) {
            return true;
        }
    }
    pieces.remainder().iter().any(|&c| leads(c))
}

/// Names the container a payload looks like, for `decoded_from`: JSON by
/// its first byte, a form when some `=` assigns a value and no space
/// separates words. Base64 text ends in its padding `=`, which assigns
/// nothing: a payload that is itself base64 is not a form.
pub fn sniff_container(payload: &[u8]) -> Option<&'static str> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
    let assigns = || {
        memchr::memchr_iter(b'=', payload).any(|i| {
            payload
                .get(i + 1)
                .is_some_and(|b| !matches!(b, b'=' | b'\r' | b'\n'))
        })
    };
    match first {
        b'{' | b'[' => Some("json"),
        _ if !payload.contains(&b' ') && assigns() => Some("form"),
        _ => None,
    }
}
