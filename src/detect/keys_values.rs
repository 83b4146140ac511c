//! Reading the value of a key/value pair in each syntax, once its
//! introducer is found: where it ends, and its decoded text.

use super::{KeyStream, MAX_LIST_RAW, MAX_PART_HEADERS, MAX_RAW_VALUE};
use crate::detect::percent::escape_at;

/// What reading a value gave.
pub(super) enum Value {
    /// The buffer ends before the value could be decided.
    NeedMore,
    /// Nothing to report (object, empty, …).
    Skip,
    /// Raw span in `buf` and the text to check and report.
    Found {
        start: usize,
        end: usize,
        text: String,
    },
}

impl KeyStream<'_> {
    /// The raw value from `from` to the first byte in `stops` (or
    /// `MAX_RAW_VALUE` bytes, or the end of the message), decoded by `decode`.
    pub(super) fn until(
        &self,
        from: usize,
        stops: &[u8],
        complete: bool,
        decode: impl Fn(&str) -> String,
    ) -> Value {
        let window = &self.buf[from..self.buf.len().min(from + MAX_RAW_VALUE)];
        let end = match window.iter().position(|b| stops.contains(b)) {
            Some(n) => from + n,
            None if complete => from + window.len(),
            None => return Value::NeedMore,
        };
        let text = decode(&String::from_utf8_lossy(&self.buf[from..end]));
        Value::Found {
            start: from,
            end,
            text,
        }
    }

    pub(super) fn form_value(&self, from: usize, allow_list: bool, complete: bool) -> Value {
        let value = self.until(from, b"&;#\"'<>\\ \t\r\n", complete, |s| {
            url_decode(s.as_bytes())
        });
        match value {
            Value::Found { ref text, .. } => {
                let structured = text.starts_with('{') || text.starts_with('[');
                if structured && !(allow_list && text.starts_with('[')) {
                    Value::Skip
                } else {
                    value
                }
            }
            other => other,
        }
    }

    pub(super) fn json_value(
        &self,
        from: usize,
        escaped: bool,
        allow_list: bool,
        complete: bool,
    ) -> Value {
        let rest = &self.buf[from..];
        let quote: &[u8] = if escaped { b"\\\"" } else { b"\"" };
        match rest.first() {
            None if complete => Value::Skip,
            None => Value::NeedMore,
            Some(b'{') => Value::Skip,
            Some(b'[') if allow_list => self.list_value(from, complete),
            Some(b'[') => Value::Skip,
            Some(_) if rest.starts_with(quote) => {
                let start = from + quote.len();
                self.json_string(start, escaped, complete)
            }
            // `\` alone: cannot tell `\"` (a string) from a literal yet.
            Some(_) if !complete && rest.len() < quote.len() && quote.starts_with(rest) => {
                Value::NeedMore
            }
            Some(_) => self.until(from, b",}] \t\r\n\\", complete, |s| s.to_string()),
        }
    }

    /// A JSON string body starting at `start`; ends at the first unescaped
    /// quote (or `\"` for JSON escaped inside a string).
    fn json_string(&self, start: usize, escaped: bool, complete: bool) -> Value {
        let window = &self.buf[start..self.buf.len().min(start + MAX_RAW_VALUE)];
        let mut i = 0;
        let end = loop {
            match window.get(i) {
                None if complete => break window.len(),
                None => return Value::NeedMore,
                Some(b'\\') if escaped && window.get(i + 1) == Some(&b'"') => break i,
                Some(b'\\') if escaped => i += 1,
                Some(b'\\') => i += 2,
                Some(b'"') if !escaped => break i,
                Some(_) => i += 1,
            }
        }
        .min(window.len());
        let raw = &window[..end];
        let text = if escaped {
            String::from_utf8_lossy(raw).into_owned()
        } else {
            json_unescape(raw)
        };
        Value::Found {
            start,
            end: start + end,
            text,
        }
    }

    /// The first `MAX_LIST_RAW` bytes of an array starting at `from` (or all
    /// of it if shorter); skipped if empty.
    fn list_value(&self, from: usize, complete: bool) -> Value {
        let window = &self.buf[from..self.buf.len().min(from + MAX_LIST_RAW)];
        let (mut depth, mut in_str, mut i) = (0usize, false, 0);
        let end = loop {
            let Some(&b) = window.get(i) else {
                if complete || window.len() >= MAX_LIST_RAW {
                    break window.len();
                }
                return Value::NeedMore;
            };
            match b {
                b'\\' if in_str => i += 1,
                b'"' => in_str = !in_str,
                b'[' | b'{' if !in_str => depth += 1,
                b']' | b'}' if !in_str => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        .min(window.len());
        let raw = &window[..end];
        let inner = raw.strip_prefix(b"[").unwrap_or(raw);
        let inner = inner.strip_suffix(b"]").unwrap_or(inner);
        if inner.iter().all(u8::is_ascii_whitespace) {
            return Value::Skip;
        }
        Value::Found {
            start: from,
            end: from + end,
            text: String::from_utf8_lossy(raw).into_owned(),
        }
    }

    /// Skips the part's remaining header lines up to the blank line, then
    /// reads the value up to the next boundary line.
    pub(super) fn multipart_value(&self, from: usize, complete: bool) -> Value {
        let headers = &self.buf[from..self.buf.len().min(from + MAX_PART_HEADERS)];
        let mut line_start = 0;
        let body = loop {
            let Some(nl) = headers[line_start..].iter().position(|b| *b == b'\n') else {
                if complete || headers.len() >= MAX_PART_HEADERS {
                    return Value::Skip;
                }
                return Value::NeedMore;
            };
            let line = &headers[line_start..line_start + nl];
            if line.is_empty() || line == b"\r" {
                break from + line_start + nl + 1;
            }
            line_start += nl + 1;
        };
        let window = &self.buf[body..self.buf.len().min(body + MAX_RAW_VALUE)];
        let end = match find(window, b"\n--") {
            Some(n) if n > 0 && window[n - 1] == b'\r' => body + n - 1,
            Some(n) => body + n,
            None if complete || window.len() >= MAX_RAW_VALUE => body + window.len(),
            None => return Value::NeedMore,
        };
        Value::Found {
            start: body,
            end,
            text: String::from_utf8_lossy(&self.buf[body..end])
                .trim()
                .to_string(),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Percent-decoding with `+` as space; malformed escapes are kept as they
/// are, invalid UTF-8 is replaced.
pub fn url_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match escape_at(raw, i) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// JSON string unescaping (`\n`, `\"`, `\uXXXX` with surrogate pairs).
/// A string JSON refuses (a lone surrogate, a bad escape) is returned as
/// sent.
pub(super) fn json_unescape(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if !text.contains('\\') {
        return text.into_owned();
    }
    serde_json::from_str::<String>(&format!("\"{text}\"")).unwrap_or_else(|_| text.into_owned())
}
