//! Bodies as HAR writers store them: text, base64, or only form fields;
//! usually already content-decoded whatever `Content-Encoding` says.

use super::har_input::{Content, Field, JsonPath, PostData, Problem, Text};
use crate::flow::Header;
use crate::flow::decode::{DecodeError, StreamDecoder, parse_content_encoding};
use base64::Engine;

/// Binary bytes handed to a trial decode to tell a still-compressed body
/// from one the HAR writer already decoded.
const TRIAL_BYTES: usize = 4096;

pub fn is_base64(field: &Field<Text>) -> bool {
    field
        .present()
        .is_some_and(|t| t.0.eq_ignore_ascii_case("base64"))
}

pub fn post_body(
    post: PostData,
    path: &JsonPath<'_>,
    warnings: &mut Vec<Problem>,
) -> Option<Vec<u8>> {
    let base64 = is_base64(&post.encoding) || is_base64(&post.leakscope_encoding);
    let text_path = path.key("text");
    if let Some(text) = post.text.lenient(&text_path, warnings) {
        return Some(if base64 {
            decode_or_keep(text, &text_path, warnings)
        } else {
            text.into_bytes()
        });
    }
    // Some writers give a form's fields instead of its text: rebuild it, so
    // the detectors read the fields as they would in the body.
    let params_path = path.key("params");
    let params = post.params.lenient(&params_path, warnings)?;
    let mut form = String::new();
    for (index, item) in params.into_iter().enumerate() {
        let Some(pair) = item.lenient(&params_path.index(index), warnings) else {
            continue;
        };
        let name = pair.name.present().map_or("", |t| t.0.as_str());
        let value = pair.value.present().map_or("", |t| t.0.as_str());
        if !form.is_empty() {
            form.push('&');
        }
        form_encode(name, &mut form);
        form.push('=');
        form_encode(value, &mut form);
    }
    Some(form.into_bytes())
}

fn form_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

pub fn content_body(
    content: Content,
    path: &JsonPath<'_>,
    warnings: &mut Vec<Problem>,
) -> Option<Vec<u8>> {
    let base64 = is_base64(&content.encoding) || is_base64(&content.leakscope_encoding);
    let text_path = path.key("text");
    let text = content.text.lenient(&text_path, warnings)?;
    Some(if base64 {
        decode_or_keep(text, &text_path, warnings)
    } else {
        text.into_bytes()
    })
}

/// Decodes base64 the way writers produce it (with or without padding,
/// line-wrapped, URL-safe alphabet). Text that is not base64 is kept as
/// text with a warning: it is still what the file says was sent.
pub fn decode_or_keep(text: String, path: &JsonPath<'_>, warnings: &mut Vec<Problem>) -> Vec<u8> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if let Ok(bytes) = STANDARD.decode(&text) {
        return bytes;
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(&compact).ok());
    decoded.unwrap_or_else(|| {
        warnings.push(path.problem("marked base64 but is not valid base64; scanned as text"));
        text.into_bytes()
    })
}

/// The Content-Encoding the pipeline should undo for a HAR body, if any.
///
/// Most HAR writers (Chrome, mitmproxy, Charles, HTTP Toolkit) store a body
/// after undoing its content coding but keep the `Content-Encoding` header.
/// Running the decoder over such a body would fail at its first byte and
/// hide the body from the detectors, so the header is honoured only when
/// the bytes really are in that coding: text never is (compressed streams
/// are not valid UTF-8: the gzip, zlib and zstd magic bytes are not), and
/// binary bytes are given to the decoder on trial.
pub fn encoding_to_undo(headers: &[Header], body: &[u8]) -> Option<String> {
    let value = header(headers, "content-encoding")?;
    if body.is_empty() || std::str::from_utf8(body).is_ok() {
        return None;
    }
    let Ok(codings) = parse_content_encoding(value) else {
        // An unknown coding over binary bytes: let the capture record that
        // it could not be undone.
        return Some(value.to_owned());
    };
    if codings.is_empty() {
        return None;
    }
    let prefix = &body[..body.len().min(TRIAL_BYTES)];
    let mut decoder = StreamDecoder::new(&codings, 1);
    match decoder.push(prefix, &mut |_| {}) {
        // Decoded output appeared: the body is in that coding.
        Err(DecodeError::OutputLimit { .. }) => Some(value.to_owned()),
        // No output and no error: only believable for a tiny whole body.
        Ok(()) if prefix.len() == body.len() => Some(value.to_owned()),
        _ => None,
    }
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}
