//! Identifier-shaped values, found by the pattern rules of a [`RuleSet`] and
//! confirmed by their validators — streaming, over raw bytes.
//!
//! One [`PatternStream`] scans one message (a URL, a header block, a body, a
//! WebSocket frame) fed in chunks of any size. Matches carry whole-message
//! byte offsets, are reported exactly once, and do not depend on where the
//! chunks were split: the stream keeps a bounded window (under 256 bytes) of
//! already-fed data, enough for the longest match plus the look-behind that
//! key context needs, and only decides about a candidate once every byte that
//! could change the decision has arrived.
//!
//! A candidate found by a rule's regex is reported only if
//! - the bytes right before and after it are not in the rule's boundary
//!   classes (so a 15-digit IMEI inside a 20-digit run is no IMEI);
//! - it is not an all-hex run lying inside a hex run of 32 or more bytes
//!   (digests and trace ids contain digit runs of every length);
//! - its validator accepts it and it is not a placeholder of its kind;
//! - the key it is assigned to (`key=`, `"key":`, `Key:` or `<key>` within
//!   40 bytes before it) does not name a *different* identifier kind, and is
//!   not a deny-context key (`timestamp`, `order_id`…) — and, for rules with
//!   `needs_key_context`, that key names the rule's kind.
//!
//! Whole-message rules are settled by [`PatternStream::finish`]: pair rules
//! (a latitude *and* a longitude under their keys) and list rules (three or
//! more distinct package names forming one list: either not assigned to
//! keys — `["com.a", "com.b", …]`, `{"com.a": "1.0", …}` — or all assigned
//! to the same key, as in `[{"pkg": "com.a"}, {"pkg": "com.b"}, …]`; three
//! single-valued parameters `app=…&sdk=…&pkg=…` are not a list).
//!
//! Rules must not match more than [`MAX_MATCH_LEN`] bytes; longer matches are
//! dropped.

use std::collections::{HashMap, HashSet};

use regex::bytes::Regex as BytesRegex;

use super::Confidence;
use super::keys::normalize_key;
use super::rules::{PatternRule, RuleSet};
use super::secret::Secret;

/// Longest match a rule may produce; anything longer is ignored.
pub const MAX_MATCH_LEN: usize = 128;
/// An all-hex match inside a hex run at least this long is part of a digest.
const HEX_BLOB_LEN: usize = 32;
/// Largest gap between a key's end and the value it is assigned to.
const KEY_GAP: usize = 40;
/// Longest key (suffix) looked at for key context.
const MAX_KEY_LEN: usize = 48;
/// Bytes kept before the first undecided position.
const LOOKBEHIND: usize = KEY_GAP + MAX_KEY_LEN;
/// Bytes that must follow a candidate's start before it can be decided: the
/// longest match, the hex-run look-ahead, and the byte after the match.
const LOOKAHEAD: usize = MAX_MATCH_LEN + HEX_BLOB_LEN + 1;
/// New bytes to gather before scanning again, so tiny chunks stay cheap.
const SCAN_EVERY: usize = 64;
/// Distinct values a list group remembers (the count stops there too).
const MAX_LIST_ITEMS: usize = 256;
/// List groups a stream tracks (items under further keys are dropped).
const MAX_LIST_GROUPS: usize = 64;
/// Longest reported value for list matches.
const MAX_LIST_VALUE: usize = 256;

/// One identifier found by a pattern rule.
#[derive(Debug, Clone)]
pub struct PatternMatch {
    /// The kind's `id` (`imei`, `phone`, …).
    pub identifier: String,
    /// The matched text; for list matches, the distinct items joined by `,`
    /// (at most 256 bytes).
    pub value: Secret,
    /// Whole-message byte offsets, `start..end`; a list match spans from its
    /// first item to its last.
    pub start: u64,
    pub end: u64,
    pub confidence: Confidence,
}

/// A set of bytes, used for the bytes that must not touch a match.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ByteClass([bool; 256]);

impl ByteClass {
    /// The empty class: nothing is forbidden.
    pub const NONE: ByteClass = ByteClass([false; 256]);

    pub fn contains(&self, byte: u8) -> bool {
        self.0[usize::from(byte)]
    }
}

impl std::fmt::Debug for ByteClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.iter().filter(|b| **b).count();
        write!(f, "ByteClass({n} bytes)")
    }
}

/// How a pattern rule's hits are reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Reported as soon as they are found.
    Immediate,
    /// Held until the message ends; reported only if every pair group of the
    /// kind found a hit (a latitude *and* a longitude).
    Pair(String),
    /// Held until the message ends; reported as one list match if at least
    /// this many distinct values were found.
    List(usize),
}

/// Compiles `[^...]`-style text into a byte table by asking a bytes regex
/// about every byte value.
pub(crate) fn byte_class(class: &str) -> Result<ByteClass, regex::Error> {
    let re = BytesRegex::new(&format!("(?s-u:^(?:{class})$)"))?;
    let mut table = [false; 256];
    for (b, slot) in table.iter_mut().enumerate() {
        *slot = re.is_match(&[b as u8]);
    }
    Ok(ByteClass(table))
}

struct ScanRule {
    kind: usize,
    rule: PatternRule,
}

/// Compiled pattern rules, shareable by any number of streams.
pub struct PatternScanner {
    rules: RuleSet,
    scan: Vec<ScanRule>,
    /// For kinds with pair rules: kind index and its groups, in rule order.
    pair_kinds: Vec<(usize, Vec<String>)>,
}

impl PatternScanner {
    pub fn new(rules: &RuleSet) -> PatternScanner {
        let mut scan = Vec::new();
        let mut pair_kinds: Vec<(usize, Vec<String>)> = Vec::new();
        for (kind, k) in rules.kinds().iter().enumerate() {
            let mut groups = Vec::new();
            for rule in &k.patterns {
                if let Hold::Pair(g) = &rule.hold
                    && !groups.contains(g)
                {
                    groups.push(g.clone());
                }
                scan.push(ScanRule {
                    kind,
                    rule: rule.clone(),
                });
            }
            if !groups.is_empty() {
                pair_kinds.push((kind, groups));
            }
        }
        PatternScanner {
            rules: rules.clone(),
            scan,
            pair_kinds,
        }
    }

    /// A stream for one message.
    pub fn stream(&self) -> PatternStream<'_> {
        PatternStream {
            scanner: self,
            buf: Vec::new(),
            buf_start: 0,
            next: vec![0; self.scan.len()],
            unscanned: 0,
            pairs: HashMap::new(),
            lists: HashMap::new(),
            finished: false,
        }
    }
}

struct Held {
    value: String,
    start: u64,
    end: u64,
    confidence: Confidence,
}

#[derive(Default)]
struct ListState {
    seen: HashSet<String>,
    items: Vec<String>,
    start: u64,
    end: u64,
}

/// Scanning state for one message. Feed chunks in order, then call
/// [`finish`](PatternStream::finish) once; after that the stream ignores
/// further input (start a new stream for the next message).
pub struct PatternStream<'a> {
    scanner: &'a PatternScanner,
    /// Undecided bytes plus look-behind; `buf[0]` is message offset
    /// `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    /// Per rule: message offset where its next search starts.
    next: Vec<u64>,
    unscanned: usize,
    /// First held hit per (kind, pair group).
    pairs: HashMap<(usize, String), Held>,
    /// Per list rule (index into `scan`) and list group.
    lists: HashMap<(usize, String), ListState>,
    finished: bool,
}

impl PatternStream<'_> {
    /// Feeds the next chunk of the message. Matches decided by this chunk are
    /// passed to `on_match` in message order; matches near the end of the
    /// data so far wait for more input or for `finish`.
    pub fn feed(&mut self, chunk: &[u8], on_match: &mut dyn FnMut(PatternMatch)) {
        if self.finished || chunk.is_empty() {
            return;
        }
        self.buf.extend_from_slice(chunk);
        self.unscanned += chunk.len();
        if self.unscanned >= SCAN_EVERY {
            self.scan(false, on_match);
        }
    }

    /// Ends the message: reports what is still undecided, then the
    /// whole-message rules (location pairs, app lists). Idempotent.
    pub fn finish(&mut self, on_match: &mut dyn FnMut(PatternMatch)) {
        if self.finished {
            return;
        }
        self.scan(true, on_match);
        self.finished = true;
        let scanner = self.scanner;
        let mut late = Vec::new();
        for (kind, groups) in &scanner.pair_kinds {
            if groups
                .iter()
                .all(|g| self.pairs.contains_key(&(*kind, g.clone())))
            {
                for g in groups {
                    if let Some(h) = self.pairs.remove(&(*kind, g.clone())) {
                        late.push(PatternMatch {
                            identifier: scanner.rules.kinds()[*kind].id.clone(),
                            value: Secret::new(h.value),
                            start: h.start,
                            end: h.end,
                            confidence: h.confidence,
                        });
                    }
                }
            }
        }
        // A list is a group of at least `min` distinct items; qualifying
        // groups of one rule merge into one match.
        let mut merged: HashMap<usize, Vec<ListState>> = HashMap::new();
        for ((i, _), list) in std::mem::take(&mut self.lists) {
            if let Hold::List(min) = scanner.scan[i].rule.hold
                && list.items.len() >= min
            {
                merged.entry(i).or_default().push(list);
            }
        }
        for (i, mut groups) in merged {
            groups.sort_by_key(|g| g.start);
            let mut seen = HashSet::new();
            let items: Vec<String> = groups
                .iter()
                .flat_map(|g| g.items.iter())
                .filter(|item| seen.insert(item.as_str()))
                .cloned()
                .collect();
            let sr = &scanner.scan[i];
            late.push(PatternMatch {
                identifier: scanner.rules.kinds()[sr.kind].id.clone(),
                value: Secret::new(join_truncated(&items, MAX_LIST_VALUE)),
                start: groups.iter().map(|g| g.start).min().unwrap_or(0),
                end: groups.iter().map(|g| g.end).max().unwrap_or(0),
                confidence: sr.rule.confidence,
            });
        }
        late.sort_by(|a, b| (a.start, a.end, &a.identifier).cmp(&(b.start, b.end, &b.identifier)));
        for m in late {
            on_match(m);
        }
        self.buf = Vec::new();
        self.pairs.clear();
    }

    /// Decides every candidate that can be decided: all of them when
    /// `final_`, else those starting at least `LOOKAHEAD` bytes before the
    /// end of the data so far.
    fn scan(&mut self, final_: bool, on_match: &mut dyn FnMut(PatternMatch)) {
        self.unscanned = 0;
        let scanner = self.scanner;
        let data_end = self.buf_start + self.buf.len() as u64;
        let limit = if final_ {
            u64::MAX
        } else {
            (data_end + 1).saturating_sub(LOOKAHEAD as u64)
        };
        let mut found = Vec::new();
        for (i, sr) in scanner.scan.iter().enumerate() {
            let mut pos = (self.next[i].max(self.buf_start) - self.buf_start) as usize;
            while pos <= self.buf.len() {
                let Some(m) = sr.rule.regex.find_at(&self.buf, pos) else {
                    break;
                };
                if self.buf_start + m.start() as u64 >= limit {
                    break;
                }
                if m.is_empty() || m.len() > MAX_MATCH_LEN {
                    pos = m.start() + 1;
                    continue;
                }
                let Some((value, group)) = self.evaluate(sr, m.start(), m.end()) else {
                    // Starts that the before-boundary refuses whatever follows
                    // (inside a digit or hex run) are skipped without asking
                    // the regex again.
                    pos = m.start() + 1;
                    while pos < self.buf.len() && blocked_before(&sr.rule, &self.buf, pos) {
                        pos += 1;
                    }
                    continue;
                };
                pos = m.end();
                let (start, end) = (
                    self.buf_start + m.start() as u64,
                    self.buf_start + m.end() as u64,
                );
                self.accept(i, sr, (value, group), (start, end), &mut found);
            }
            self.next[i] = (self.buf_start + pos as u64).max(limit.min(data_end));
        }
        // One value, one identity: when several kinds claim the same span
        // (a Luhn-valid 454… number is an IMEI shape and an IMSI shape),
        // only the most confident survive; rules of one kind report it once.
        found.sort_by(|a, b| {
            (
                a.start,
                a.end,
                std::cmp::Reverse(a.confidence),
                &a.identifier,
            )
                .cmp(&(
                    b.start,
                    b.end,
                    std::cmp::Reverse(b.confidence),
                    &b.identifier,
                ))
        });
        found.dedup_by(|later, first| {
            (later.start, later.end) == (first.start, first.end)
                && (later.confidence < first.confidence || later.identifier == first.identifier)
        });
        for m in found {
            on_match(m);
        }

        if !final_ {
            let first = self.next.iter().copied().min().unwrap_or(limit).min(limit);
            let keep_from = first.saturating_sub(LOOKBEHIND as u64).max(self.buf_start);
            let drop = (keep_from - self.buf_start) as usize;
            self.buf.drain(..drop);
            self.buf_start = keep_from;
        }
    }

    /// Records an accepted hit: reported now, or held for `finish`.
    fn accept(
        &mut self,
        rule_index: usize,
        sr: &ScanRule,
        (value, group): (String, String),
        (start, end): (u64, u64),
        found: &mut Vec<PatternMatch>,
    ) {
        let scanner = self.scanner;
        let identifier = &scanner.rules.kinds()[sr.kind].id;
        match &sr.rule.hold {
            Hold::Immediate => found.push(PatternMatch {
                identifier: identifier.clone(),
                value: Secret::new(value),
                start,
                end,
                confidence: sr.rule.confidence,
            }),
            Hold::Pair(pair) => {
                self.pairs.entry((sr.kind, pair.clone())).or_insert(Held {
                    value,
                    start,
                    end,
                    confidence: sr.rule.confidence,
                });
            }
            Hold::List(_) => {
                let slot = (rule_index, group);
                if !self.lists.contains_key(&slot) && self.lists.len() >= MAX_LIST_GROUPS {
                    return;
                }
                let list = self.lists.entry(slot).or_default();
                if list.seen.len() < MAX_LIST_ITEMS && !list.seen.contains(&value) {
                    if list.items.is_empty() {
                        list.start = start;
                    }
                    list.end = end;
                    list.seen.insert(value.clone());
                    list.items.push(value);
                }
            }
        }
    }

    /// Applies every check of the module docs to the candidate `buf[ms..me]`;
    /// returns its text if it stands.
    ///
    /// The second string is the item's list group: the normalised key it is
    /// assigned to, or empty when it has none or the key names its kind.
    fn evaluate(&self, sr: &ScanRule, ms: usize, me: usize) -> Option<(String, String)> {
        let buf = &self.buf;
        let rule = &sr.rule;
        if blocked_before(rule, buf, ms) {
            return None;
        }
        if me < buf.len() && rule.after.contains(buf[me]) {
            return None;
        }
        let bytes = &buf[ms..me];
        if bytes.iter().all(u8::is_ascii_hexdigit) && in_hex_blob(buf, ms, me) {
            return None;
        }
        let value = std::str::from_utf8(bytes).ok()?;
        if rule.validator.is_some_and(|v| !v.check(value)) {
            return None;
        }
        let rules = &self.scanner.rules;
        if rules.is_placeholder(&rules.kinds()[sr.kind].id, value) {
            return None;
        }
        let key = nearest_key(buf, ms).map(String::from_utf8_lossy);
        let key_kind = key.as_deref().and_then(|k| rules.kind_index_for_key(k));
        if rule.needs_key_context {
            let confirmed = match (&rule.context_keys, key.as_deref()) {
                (Some(aliases), Some(k)) => aliases.matches(k),
                (None, Some(_)) => key_kind == Some(sr.kind),
                (_, None) => false,
            };
            if !confirmed {
                return None;
            }
        } else if let Some(k) = key.as_deref() {
            match key_kind {
                Some(other) if other != sr.kind => return None,
                None if rules.is_deny_context(k) => return None,
                _ => {}
            }
        }
        // The first item of `"k": ["com.a", …]` belongs to the list, not to
        // the key before it.
        let group = match (key_kind, key) {
            (None, Some(k)) if !opens_array(buf, ms) => normalize_key(&k),
            _ => String::new(),
        };
        Some((value.to_string(), group))
    }
}

fn join_truncated(items: &[String], max: usize) -> String {
    let mut out = String::new();
    for item in items {
        let extra = usize::from(!out.is_empty()) + item.len();
        if out.len() + extra > max {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(item);
    }
    out
}

/// True if the all-hex candidate `buf[ms..me]` is part of a longer hex run
/// of at least `HEX_BLOB_LEN` bytes.
fn in_hex_blob(buf: &[u8], ms: usize, me: usize) -> bool {
    let mut left = ms;
    while left > ms.saturating_sub(HEX_BLOB_LEN)
        && buf[left - 1].is_ascii_hexdigit()
        && escaped_before(buf, left).is_none()
    {
        left -= 1;
    }
    let mut right = me;
    let hi = (me + HEX_BLOB_LEN).min(buf.len());
    while right < hi && buf[right].is_ascii_hexdigit() {
        right += 1;
    }
    (left < ms || right > me) && right - left >= HEX_BLOB_LEN
}

/// True if no match of `rule` may start at `buf[i]` because of the byte
/// before it. A `%XX` escape right before counts as the byte it encodes
/// (`%22490154203237518` is a quoted IMEI).
fn blocked_before(rule: &PatternRule, buf: &[u8], i: usize) -> bool {
    let before = escaped_before(buf, i).or_else(|| i.checked_sub(1).map(|p| buf[p]));
    before.is_some_and(|b| rule.before.contains(b))
}

/// The byte encoded by a `%XX` escape ending right before `buf[i]`.
fn escaped_before(buf: &[u8], i: usize) -> Option<u8> {
    let esc = buf.get(i.checked_sub(3)?..i)?;
    let hex = |b: u8| (b as char).to_digit(16);
    match (esc[0], hex(esc[1]), hex(esc[2])) {
        (b'%', Some(h), Some(l)) => u8::try_from(h * 16 + l).ok(),
        _ => None,
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_.-[]".contains(&b) || b >= 0x80
}

/// Length of a quoting/spacing token ending at `buf[..i]` (a quote, space,
/// tab, backslash, `[`, or their URL encodings), or 0.
fn filler_before(buf: &[u8], lo: usize, i: usize, value_side: bool) -> usize {
    if i <= lo {
        return 0;
    }
    let b = buf[i - 1];
    if b" \t\"'\\".contains(&b) || (value_side && b == b'[') {
        return 1;
    }
    if i >= lo + 3 && buf[i - 3] == b'%' {
        let code = [buf[i - 2], buf[i - 1].to_ascii_uppercase()];
        let fillers: &[&[u8; 2]] = if value_side {
            &[b"22", b"27", b"20", b"5B"]
        } else {
            &[b"22", b"27", b"20"]
        };
        if fillers.contains(&&code) {
            return 3;
        }
    }
    0
}

/// True if the value at `buf[s]` is the first element of an array: only
/// quotes and spaces (plain or URL-encoded) lie between it and a `[`.
fn opens_array(buf: &[u8], s: usize) -> bool {
    let lo = s.saturating_sub(LOOKBEHIND);
    let mut i = s;
    loop {
        let n = filler_before(buf, lo, i, false);
        if n == 0 {
            break;
        }
        i -= n;
    }
    i > lo && (buf[i - 1] == b'[' || escaped_before(buf, i) == Some(b'['))
}

/// The key the value starting at `buf[s]` is assigned to: the token before
/// `=`/`:` (plain or URL-encoded), or the element name of `<key>value`,
/// skipping quotes and spaces, ending at most `KEY_GAP` bytes before `s`.
fn nearest_key(buf: &[u8], s: usize) -> Option<&[u8]> {
    let lo = s.saturating_sub(LOOKBEHIND);
    let mut i = s;
    loop {
        let n = filler_before(buf, lo, i, true);
        if n == 0 {
            break;
        }
        i -= n;
    }
    if i <= lo {
        return None;
    }
    match buf[i - 1] {
        b':' | b'=' => i -= 1,
        b'>' => {
            let gt = i - 1;
            let lt = buf[lo..gt].iter().rposition(|b| *b == b'<')? + lo;
            let tag = &buf[lt + 1..gt];
            let ok = !tag.is_empty()
                && tag.len() <= MAX_KEY_LEN
                && tag.iter().all(|b| is_key_byte(*b))
                && s - gt <= KEY_GAP;
            return ok.then_some(tag);
        }
        _ if i >= lo + 3
            && buf[i - 3] == b'%'
            && (buf[i - 2] == b'3')
            && matches!(buf[i - 1].to_ascii_uppercase(), b'A' | b'D') =>
        {
            i -= 3;
        }
        _ => return None,
    }
    loop {
        let n = filler_before(buf, lo, i, false);
        if n == 0 {
            break;
        }
        i -= n;
    }
    let key_end = i;
    while i > lo && key_end - i < MAX_KEY_LEN && is_key_byte(buf[i - 1]) {
        i -= 1;
    }
    // `%22gaid`: the token swallowed the hex digits of an escaped quote.
    if i > lo
        && buf[i - 1] == b'%'
        && key_end - i > 2
        && buf[i..i + 2].iter().all(u8::is_ascii_hexdigit)
    {
        i += 2;
    }
    (i < key_end && s - key_end <= KEY_GAP).then(|| &buf[i..key_end])
}

#[cfg(test)]
#[path = "patterns_tests.rs"]
mod tests;
