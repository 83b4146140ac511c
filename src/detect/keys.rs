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

use std::sync::LazyLock;

use regex::bytes::{Captures, Regex};

use super::rules::RuleSet;
use super::secret::Secret;
use super::spares::{self, Spares};
use candidates::KeyCandidates;
use values::{Value, truncate};

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
        // (counted in bytes, so the introducer stays within `MAX_INTRO`)
        r#"(?m:^)(?i:content-disposition):[ \t]{0,16}form-data;(?-u:[^\r\n]){0,128}?[ ;\t]name="(?P<mkey>(?-u:[^"\r\n]){1,96})"(?-u:[^\r\n]){0,128}\r?\n"#,
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
    /// Where keys that may name a kind start; `None` runs the regex at
    /// every introducer (the reference the tests compare with).
    candidates: Option<KeyCandidates>,
    /// The buffers of finished streams, for the next ones.
    spares: Spares<KeyParts>,
}

/// A finished stream's buffers: its bytes and its introducer starts.
#[derive(Default)]
struct KeyParts {
    buf: Vec<u8>,
    starts: Vec<usize>,
}

impl KeyScanner {
    pub fn new(rules: &RuleSet) -> KeyScanner {
        KeyScanner {
            rules: rules.clone(),
            candidates: Some(KeyCandidates::new(rules)),
            spares: Spares::new(),
        }
    }

    /// The same rules, with the regex run at every introducer.
    #[cfg(test)]
    fn reference(rules: &RuleSet) -> KeyScanner {
        KeyScanner {
            rules: rules.clone(),
            candidates: None,
            spares: Spares::new(),
        }
    }

    /// A stream for one message.
    pub fn stream(&self) -> KeyStream<'_> {
        let parts = self.spares.take();
        KeyStream {
            scanner: self,
            buf: parts.buf,
            buf_start: 0,
            next: 0,
            unscanned: 0,
            starts: parts.starts,
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
    /// Candidate introducer starts (indices into `buf`), reused per scan.
    starts: Vec<usize>,
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

impl Drop for KeyStream<'_> {
    fn drop(&mut self) {
        self.scanner.spares.give_back(KeyParts {
            buf: spares::taken_emptied(&mut self.buf),
            starts: spares::taken_emptied(&mut self.starts),
        });
    }
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
            self.buf.clear();
        }
    }

    /// Decides every introducer that starts before `limit` (those after it
    /// may still be incomplete), in message order. Each position where an
    /// introducer starts is looked at on its own (the introducers inside a
    /// key that names nothing are looked at too); a reported value is
    /// skipped over.
    fn scan(&mut self, final_: bool, on_match: &mut dyn FnMut(KeyMatch)) {
        self.unscanned = 0;
        let end = self.buf_start + self.buf.len() as u64;
        // An introducer starting before `limit` is fully in the buffer.
        let limit = if final_ {
            u64::MAX
        } else {
            end.saturating_sub(MAX_INTRO as u64 + 1)
        };
        let mut starts = std::mem::take(&mut self.starts);
        starts.clear();
        if let Some(candidates) = &self.scanner.candidates {
            let from = (self.next - self.buf_start) as usize;
            candidates.collect(&self.buf, from, &mut starts);
            starts.sort_unstable();
            starts.dedup();
        }
        let mut queue = starts.iter().copied();
        let mut waiting = false;
        loop {
            let pos = (self.next - self.buf_start) as usize;
            let t = if self.scanner.candidates.is_some() {
                queue.find(|&t| t >= pos)
            } else {
                INTRO.find_at(&self.buf, pos).map(|m| m.start())
            };
            let Some(t) = t.filter(|&t| self.buf_start + (t as u64) < limit) else {
                break;
            };
            self.next = self.buf_start + t as u64 + 1;
            // The introducer starting at `t`, if any: every introducer is
            // at most `MAX_INTRO` bytes long.
            let hay = &self.buf[..self.buf.len().min(t + MAX_INTRO)];
            let Some(caps) = INTRO.captures_at(hay, t) else {
                continue;
            };
            if caps.get(0).is_none_or(|m| m.start() != t) {
                continue;
            }
            match self.pair_at(&caps, final_) {
                Step::Wait => {
                    self.next -= 1;
                    waiting = true;
                    break;
                }
                Step::Nothing => {}
                Step::Found(value_end, m) => {
                    on_match(m);
                    self.next = self.next.max(self.buf_start + value_end as u64);
                }
            }
        }
        self.starts = starts;
        if !waiting {
            self.next = self.next.max(limit.min(end));
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

    /// Handles one introducer: what (if anything) to report, or `Wait` if
    /// its value is not all here yet.
    fn pair_at(&self, caps: &Captures<'_>, final_: bool) -> Step {
        let whole = caps.get(0).map_or(0..0, |m| m.range());
        let (syntax, key_raw) = if let Some(k) = caps.name("jkey") {
            let escaped = caps.name("jesc").is_some_and(|m| !m.is_empty());
            (Syntax::Json { escaped }, k.as_bytes())
        } else if let Some(k) = caps.name("fkey") {
            (Syntax::Form, k.as_bytes())
        } else if let Some(k) = caps.name("mkey") {
            (Syntax::Multipart, k.as_bytes())
        } else if let Some(k) = caps.name("hkey") {
            (Syntax::Header, k.as_bytes())
        } else if let Some(k) = caps.name("xkey") {
            (Syntax::Xml, k.as_bytes())
        } else {
            return Step::Nothing;
        };
        let key = if syntax == Syntax::Form {
            url_decode(key_raw)
        } else {
            String::from_utf8_lossy(key_raw).into_owned()
        };
        let rules = &self.scanner.rules;
        let Some(identifier) = rules.kind_for_key(&key) else {
            return Step::Nothing;
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
            Value::Skip => Step::Nothing,
            Value::Found { start, end, text } => {
                let text = truncate(&text, MAX_VALUE);
                if !rules.accepts_key_value(identifier, &text) {
                    return Step::Nothing;
                }
                let m = KeyMatch {
                    identifier: identifier.to_string(),
                    key,
                    value: Secret::new(text),
                    start: self.buf_start + start as u64,
                    end: self.buf_start + end as u64,
                };
                Step::Found(end, m)
            }
        }
    }
}

enum Step {
    Wait,
    Nothing,
    /// A pair to report, and where its raw value ends in `buf`.
    Found(usize, KeyMatch),
}

#[path = "keys_candidates.rs"]
mod candidates;
#[path = "keys_normalize.rs"]
mod normalize;
#[path = "keys_trie.rs"]
mod trie;
#[path = "keys_values.rs"]
mod values;

pub use normalize::{Aliases, key_tokens, normalize_key};
pub(crate) use normalize::{KeyMap, KeySet, NormalizedKey, key_suffixes};
pub(crate) use trie::{ByteTrie, EXACT, FOLD_OTHER, FOLD_SKIP, SUFFIX};
pub use values::url_decode;

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
