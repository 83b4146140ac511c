//! Key/value pairs whose key names an identifier — streaming, over raw bytes.
//!
//! One [`KeyStream`] scans one message fed in chunks of any size and finds
//! pairs in every syntax apps use to send them:
//!
//! | syntax | example | value ends at |
//! |---|---|---|
//! | query / form / cookie | `?imei=4901…&x=1`, `imei=4901…; other=1` | `& ; # " ' < >`, `\`, whitespace |
//! | JSON (also escaped inside a JSON string) | `"imei": "4901…"`, `"imei": 4901…` | the closing quote / `, } ]` |
//! | header line | `X-Device-IMEI: 4901…` | end of line |
//! | multipart part | `Content-Disposition: form-data; name="imei"` ⏎⏎ `4901…` | `\r\n--` |
//! | XML element | `<imei>4901…</imei>` | `<` |
//!
//! A pair is reported when [`RuleSet::kind_for_key`] names a kind for the key
//! and [`RuleSet::accepts_key_value`] accepts the value (not empty, not a
//! placeholder, long enough, shaped as the kind requires). Values from query
//! strings and forms are URL-decoded, JSON strings unescaped, before that
//! check. Values longer than 256 bytes are truncated in the report. A value
//! that is itself a JSON object or array is skipped — the pairs inside it
//! are found on their own, so nested objects report their innermost key —
//! except arrays under kinds with `allow_list` (an installed-app list),
//! whose first ~200 bytes are reported as they appear.
//!
//! Reported offsets (`start..end`) span the value as it appears in the
//! message (before decoding), so a UI can highlight or redact it. Each pair
//! is reported once whatever the chunking; the stream keeps at most ~2 KiB
//! of look-back.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::bytes::{Captures, Regex};

use super::rules::RuleSet;
use super::secret::Secret;

/// Longest key introducer the regex below can match.
const MAX_INTRO: usize = 420;
/// Raw bytes of a value read at most (3 × 256, for URL-encoded values).
const MAX_RAW_VALUE: usize = 768;
/// Raw bytes of a list value reported.
const MAX_LIST_RAW: usize = 200;
/// Reported values are cut to this many bytes.
const MAX_VALUE: usize = 256;
/// Multipart part headers skipped at most before the value.
const MAX_PART_HEADERS: usize = 512;
/// Bytes after an introducer that always suffice to decide its value.
const VALUE_SPAN: usize = MAX_PART_HEADERS + MAX_RAW_VALUE + 8;
/// Bytes kept before the next search position (`\n` for header lines, the
/// separator before a form key).
const LOOKBEHIND: usize = 8;
/// New bytes to gather before scanning again.
const SCAN_EVERY: usize = 256;

/// Finds where a key starts (keys are 1–96 bytes). One regex, so alternatives never overlap and
/// leftmost-first order breaks ties (multipart before plain header).
static INTRO: LazyLock<Regex> = LazyLock::new(|| {
    let parts = [
        // "key": / \"key\": (JSON, or JSON escaped inside a JSON string)
        r#"(?P<jesc>\\?)"(?P<jkey>(?-u:[^"\\\x00-\x1f]){1,96})\\?"[ \t\r\n]{0,16}(?P<jsep>:)[ \t\r\n]{0,16}"#,
        // key= after a separator (`\u0026` is `&` in JSON-escaped URLs) or
        // at the start of the message
        r#"(?:\A|[?&;,\s"']|\\u0026)(?P<fkey>[A-Za-z0-9_.\[\]%-]{1,96})="#,
        // multipart part header naming a field
        r#"(?m:^)(?i:content-disposition):[ \t]{0,16}form-data;[^\r\n]{0,128}?[ ;\t]name="(?P<mkey>[^"\r\n]{1,96})"[^\r\n]{0,128}\r?\n"#,
        // header line
        r#"(?m:^)(?P<hkey>[A-Za-z0-9_-]{1,96})(?P<hsep>:)[ \t]{0,16}"#,
        // XML element
        r#"<(?P<xkey>[A-Za-z][A-Za-z0-9_.:-]{0,95})>"#,
    ];
    Regex::new(&parts.join("|")).expect("the key introducer regex is a constant and tested")
});

/// One key/value pair whose key names an identifier.
#[derive(Debug, Clone)]
pub struct KeyMatch {
    /// The kind's `id` (`imei`, `phone`, …).
    pub identifier: String,
    /// The key as sent (URL-decoded for query strings and forms).
    pub key: String,
    /// The decoded value, at most 256 bytes; for lists, the raw first ~200
    /// bytes of the array.
    pub value: Secret,
    /// Whole-message byte offsets of the raw value.
    pub start: u64,
    pub end: u64,
}

/// Key rules, shareable by any number of streams.
pub struct KeyScanner {
    rules: RuleSet,
}

impl KeyScanner {
    pub fn new(rules: &RuleSet) -> KeyScanner {
        KeyScanner {
            rules: rules.clone(),
        }
    }

    /// A stream for one message.
    pub fn stream(&self) -> KeyStream<'_> {
        KeyStream {
            scanner: self,
            buf: Vec::new(),
            buf_start: 0,
            next: 0,
            unscanned: 0,
            finished: false,
        }
    }
}

/// Scanning state for one message. Feed chunks in order, then call
/// [`finish`](KeyStream::finish) once; after that the stream ignores further
/// input (start a new stream for the next message).
pub struct KeyStream<'a> {
    scanner: &'a KeyScanner,
    buf: Vec<u8>,
    /// Message offset of `buf[0]`.
    buf_start: u64,
    /// Message offset where the next introducer search starts.
    next: u64,
    unscanned: usize,
    finished: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Json { escaped: bool },
    Form,
    Multipart,
    Header,
    Xml,
}

/// What reading a value gave.
enum Value {
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
    /// Feeds the next chunk; pairs decided by it are passed to `on_match` in
    /// message order.
    pub fn feed(&mut self, chunk: &[u8], on_match: &mut dyn FnMut(KeyMatch)) {
        if self.finished || chunk.is_empty() {
            return;
        }
        self.buf.extend_from_slice(chunk);
        self.unscanned += chunk.len();
        if self.unscanned >= SCAN_EVERY {
            self.scan(false, on_match);
        }
    }

    /// Ends the message and reports the pairs still undecided. Idempotent.
    pub fn finish(&mut self, on_match: &mut dyn FnMut(KeyMatch)) {
        if !self.finished {
            self.scan(true, on_match);
            self.finished = true;
            self.buf = Vec::new();
        }
    }

    fn scan(&mut self, final_: bool, on_match: &mut dyn FnMut(KeyMatch)) {
        self.unscanned = 0;
        let end = self.buf_start + self.buf.len() as u64;
        // An introducer starting before `limit` is fully in the buffer.
        let limit = if final_ {
            u64::MAX
        } else {
            end.saturating_sub(MAX_INTRO as u64 + 1)
        };
        loop {
            let pos = (self.next - self.buf_start) as usize;
            let Some(caps) = INTRO.captures_at(&self.buf, pos) else {
                self.next = self.next.max(limit.min(end));
                break;
            };
            let whole = caps.get(0).map_or(pos..pos, |m| m.range());
            if self.buf_start + whole.start as u64 >= limit {
                self.next = self.next.max(limit);
                break;
            }
            match self.pair_at(&caps, final_) {
                Step::Wait => {
                    self.next = self.buf_start + whole.start as u64;
                    break;
                }
                Step::Resume(at, found) => {
                    if let Some(m) = found {
                        on_match(m);
                    }
                    // Always move forward, whatever the introducer was.
                    let at = at.max(whole.start + 1);
                    self.next = self.buf_start + at as u64;
                }
            }
        }
        if !final_ {
            let keep_from = self
                .next
                .saturating_sub(LOOKBEHIND as u64)
                .max(self.buf_start);
            self.buf.drain(..(keep_from - self.buf_start) as usize);
            self.buf_start = keep_from;
        }
    }

    /// Handles one introducer: where to resume and what (if anything) to
    /// report, or `Wait` if its value is not all here yet.
    fn pair_at(&self, caps: &Captures<'_>, final_: bool) -> Step {
        let whole = caps.get(0).map_or(0..0, |m| m.range());
        let (syntax, key_raw, resume) = if let Some(k) = caps.name("jkey") {
            let escaped = caps.name("jesc").is_some_and(|m| !m.is_empty());
            let sep = caps.name("jsep").map_or(whole.end, |m| m.end());
            (Syntax::Json { escaped }, k.as_bytes(), sep)
        } else if let Some(k) = caps.name("fkey") {
            (Syntax::Form, k.as_bytes(), whole.end)
        } else if let Some(k) = caps.name("mkey") {
            (Syntax::Multipart, k.as_bytes(), whole.end)
        } else if let Some(k) = caps.name("hkey") {
            let sep = caps.name("hsep").map_or(whole.end, |m| m.end());
            (Syntax::Header, k.as_bytes(), sep)
        } else if let Some(k) = caps.name("xkey") {
            (Syntax::Xml, k.as_bytes(), whole.end)
        } else {
            return Step::Resume(whole.end, None);
        };
        let key = if syntax == Syntax::Form {
            url_decode(key_raw)
        } else {
            String::from_utf8_lossy(key_raw).into_owned()
        };
        let rules = &self.scanner.rules;
        let Some(identifier) = rules.kind_for_key(&key) else {
            // Resume right after the separator: the value may hold pairs of
            // its own (`Cookie: imei=…`, `"q": "a=1&imei=…"`).
            return Step::Resume(resume, None);
        };
        let allow_list = rules.kind(identifier).is_some_and(|k| k.allow_list);
        let from = whole.end;
        let complete = final_ || self.buf.len() - from >= VALUE_SPAN;
        let value = match syntax {
            Syntax::Json { escaped } => self.json_value(from, escaped, allow_list, complete),
            Syntax::Form => self.form_value(from, allow_list, complete),
            Syntax::Multipart => self.multipart_value(from, complete),
            Syntax::Header => self.until(from, b"\r\n", complete, |s| s.trim().to_string()),
            Syntax::Xml => self.until(from, b"<", complete, |s| s.trim().to_string()),
        };
        match value {
            Value::NeedMore => Step::Wait,
            Value::Skip => Step::Resume(resume, None),
            Value::Found { start, end, text } => {
                let text = truncate(&text, MAX_VALUE);
                if !rules.accepts_key_value(identifier, &text) {
                    return Step::Resume(resume, None);
                }
                let m = KeyMatch {
                    identifier: identifier.to_string(),
                    key,
                    value: Secret::new(text),
                    start: self.buf_start + start as u64,
                    end: self.buf_start + end as u64,
                };
                Step::Resume(end, Some(m))
            }
        }
    }

    /// The raw value from `from` to the first byte in `stops` (or
    /// `MAX_RAW_VALUE` bytes, or the end of the message), decoded by `decode`.
    fn until(
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

    fn form_value(&self, from: usize, allow_list: bool, complete: bool) -> Value {
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

    fn json_value(&self, from: usize, escaped: bool, allow_list: bool, complete: bool) -> Value {
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
    fn multipart_value(&self, from: usize, complete: bool) -> Value {
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

enum Step {
    Wait,
    Resume(usize, Option<KeyMatch>),
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Percent-decoding with `+` as space; malformed escapes are kept as they
/// are, invalid UTF-8 is replaced.
pub fn url_decode(raw: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
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
fn json_unescape(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if !text.contains('\\') {
        return text.into_owned();
    }
    serde_json::from_str::<String>(&format!("\"{text}\"")).unwrap_or_else(|_| text.into_owned())
}

/// A set of normalised aliases.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    suffix: HashSet<String>,
}

impl Aliases {
    /// Normalises `keys`; keys without letters or digits are dropped.
    pub fn new(keys: &[String]) -> Aliases {
        let suffix = keys
            .iter()
            .map(|k| normalize_key(k))
            .filter(|k| !k.is_empty());
        Aliases {
            suffix: suffix.collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.suffix.is_empty()
    }

    /// True if `key` (any spelling) equals an alias or ends with one, by the
    /// token rules of [`key_tokens`].
    pub fn matches(&self, key: &str) -> bool {
        match NormalizedKey::new(key) {
            Some(k) => k.suffixes().any(|(suffix, _)| self.suffix.contains(suffix)),
            None => key_suffixes(key).any(|(suffix, _)| self.suffix.contains(&suffix)),
        }
    }
}

/// Splits a key into lowercase tokens: on every character that is not
/// alphanumeric and on camelCase boundaries.
///
/// # How keys name kinds
///
/// A key is normalised into lowercase tokens, split on every character that
/// is not alphanumeric and on camelCase boundaries (`deviceIMEIValue` →
/// `device`, `imei`, `value`; `x-device-imei` → `x`, `device`, `imei`).
/// Aliases are normalised the same way and compared with the tokens joined
/// without separators, so `mac_address`, `macAddress` and `macaddress` are one
/// alias. A key names kind K when
///
/// 1. the whole key equals one of K's `keys` or `exact_keys`, or
/// 2. a suffix of its tokens — the last token, the last two, … — equals one of
///    K's `keys` (`user.phone`, `device_imei`, `wifiMac`).
///
/// The longest matching suffix wins, so the more specific alias decides:
/// `wifi_ap_mac` is a BSSID (`ap_mac`), not a device MAC (`mac`), and
/// `id_card_no` is an ID card (`id_card_no`), not a bank card (`card_no`).
/// Tokens are never matched by substring: `machine`, `macro`, `imei_count`
/// and `phone_model` name nothing. `exact_keys` hold aliases too generic to
/// match as a suffix (`sn`, `mc`, `apps`): `sn` is a serial, `order_sn` is not.
pub fn key_tokens(key: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_uppercase() && !current.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // `deviceImei`, `wifi2Mac`: lower/digit → upper starts a token;
            // `IMEIValue`: the last capital of a run starts the next word.
            if prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_lower) {
                tokens.push(std::mem::take(&mut current));
            }
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// The normalised form of an alias or key: its tokens joined.
pub fn normalize_key(key: &str) -> String {
    key_tokens(key).concat()
}

/// Every token suffix of `key`, longest (the whole key, flagged `true`)
/// first. Keys are capped at 32 tokens: nothing real is longer, and it
/// bounds the work an adversarial key can cause.
pub(crate) fn key_suffixes(key: &str) -> impl Iterator<Item = (String, bool)> {
    let tokens = key_tokens(key);
    let start = tokens.len().saturating_sub(32);
    (start..tokens.len()).map(move |i| (tokens[i..].concat(), i == 0))
}

#[path = "keys_normalize.rs"]
mod normalize;

pub(crate) use normalize::NormalizedKey;

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
