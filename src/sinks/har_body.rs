//! Body text in a HAR entry, and writing an entry as one line of JSON.
//!
//! A body that is not UTF-8 goes into the HAR as base64. Built as a
//! `String` and handed to serde_json, it would be copied once more and
//! run through JSON string escaping byte by byte, although base64 never
//! needs escaping: for a 1 MiB download that was most of what the HAR
//! cost. So a binary body is serialised as a one-byte placeholder instead,
//! and [`entry_line`]'s formatter, seeing that placeholder, encodes the
//! body's bytes straight into the output.
//!
//! The placeholder is recognised by its address, not its text: it is a
//! slice of `SLOT_MARKS`, and serde_json hands a string that needs no
//! escaping to the formatter as that same slice. A body or header that
//! happens to read like a placeholder lives elsewhere in memory and is
//! written as text.

use std::io::{self, Write};

use serde::{Serialize, Serializer};
use serde_json::ser::{CompactFormatter, Formatter};

/// Which of a flow's two bodies a base64 text stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodySlot {
    Request = 0,
    Response = 1,
}

/// One byte per [`BodySlot`]; only their addresses matter.
static SLOT_MARKS: &str = "QR";

/// The `text` of a HAR `postData` or `content`.
#[derive(Debug)]
pub enum BodyText<'a> {
    /// The body itself, which is UTF-8.
    Text(&'a str),
    /// Base64 of the slot's body, written by [`entry_line`].
    Base64(BodySlot),
}

impl<'a> BodyText<'a> {
    /// The text for `bytes`, and the `encoding` marker HAR wants with it.
    pub fn of(bytes: &'a [u8], slot: BodySlot) -> (BodyText<'a>, Option<&'static str>) {
        match std::str::from_utf8(bytes) {
            Ok(text) => (BodyText::Text(text), None),
            Err(_) => (BodyText::Base64(slot), Some("base64")),
        }
    }
}

impl Serialize for BodyText<'_> {
    /// Only [`entry_line`] turns a base64 placeholder into the body.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            BodyText::Text(text) => serializer.serialize_str(text),
            BodyText::Base64(slot) => {
                let i = *slot as usize;
                serializer.serialize_str(&SLOT_MARKS[i..i + 1])
            }
        }
    }
}

/// Serialises `entry` as compact JSON plus a line break, with the base64
/// placeholders replaced by base64 of `bodies` (request, response).
pub fn entry_line(entry: &impl Serialize, bodies: [&[u8]; 2]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let formatter = BodyFormatter { bodies };
    entry.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    out.push(b'\n');
    Ok(out)
}

/// serde_json's compact output, except for the placeholders.
struct BodyFormatter<'b> {
    bodies: [&'b [u8]; 2],
}

impl Formatter for BodyFormatter<'_> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let base = SLOT_MARKS.as_ptr() as usize;
        let at = (fragment.as_ptr() as usize).wrapping_sub(base);
        match self.bodies.get(at) {
            Some(body) if fragment.len() == 1 => write_base64(writer, body),
            _ => CompactFormatter.write_string_fragment(writer, fragment),
        }
    }
}

/// Writes standard base64 of `bytes`, encoded as it is written.
fn write_base64<W: ?Sized + Write>(writer: &mut W, bytes: &[u8]) -> io::Result<()> {
    let mut encoder =
        base64::write::EncoderWriter::new(writer, &base64::engine::general_purpose::STANDARD);
    encoder.write_all(bytes)?;
    encoder.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Pair<'a> {
        note: &'a str,
        request: BodyText<'a>,
        response: BodyText<'a>,
    }

    proptest! {
        /// Whatever the bodies and the text around them (placeholder
        /// lookalikes included), the line parses as the JSON that plain
        /// serde_json would give with the base64 built as a string.
        #[test]
        fn entry_lines_read_as_if_base64_had_been_a_string(
            request in proptest::collection::vec(any::<u8>(), 0..300),
            response in proptest::collection::vec(any::<u8>(), 0..300),
            note in prop_oneof![Just("Q".to_owned()), Just("R".to_owned()), ".{0,20}"],
        ) {
            let (req_text, req_enc) = BodyText::of(&request, BodySlot::Request);
            let (resp_text, resp_enc) = BodyText::of(&response, BodySlot::Response);
            let pair = Pair { note: &note, request: req_text, response: resp_text };
            let line = entry_line(&pair, [&request, &response]).unwrap();
            prop_assert_eq!(line.last(), Some(&b'\n'));
            let got: serde_json::Value = serde_json::from_slice(&line).unwrap();
            let expect = |bytes: &[u8], enc: Option<&str>| match enc {
                Some(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
                None => String::from_utf8(bytes.to_vec()).unwrap(),
            };
            prop_assert_eq!(got, serde_json::json!({
                "note": note,
                "request": expect(&request, req_enc),
                "response": expect(&response, resp_enc),
            }));
        }
    }

    /// Bodies longer than the encoder's buffer come out whole and padded
    /// only at the end.
    #[test]
    fn long_binary_bodies_are_encoded_whole() {
        let body: Vec<u8> = (0..200_001u32)
            .map(|i| (i * 7 % 251) as u8 | 0x80)
            .collect();
        let (text, enc) = BodyText::of(&body, BodySlot::Response);
        assert_eq!(enc, Some("base64"));
        let line = entry_line(&text, [&[], &body]).unwrap();
        let got: String = serde_json::from_slice(&line).unwrap();
        assert_eq!(got, base64::engine::general_purpose::STANDARD.encode(&body));
    }
}
