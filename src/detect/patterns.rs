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
use super::rules::{PatternRule, RuleSet};
use super::secret::Secret;
use super::spares::{self, Spares};

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
    prepass: Prepass,
    /// What a key allows, for the rules the pre-pass covers.
    key_masks: KeyMasks,
    /// What finished streams left for the next ones.
    spares: Spares<PatternParts>,
    /// Rules the pre-pass does not cover, searched the plain way.
    plain: Vec<usize>,
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
        let prepass = Prepass::new(scan.iter().map(|s| {
            (
                s.rule.regex.as_str(),
                refused_before(&s.rule),
                &s.rule.after,
            )
        }));
        let plain = (0..scan.len())
            .filter(|i| !prepass.rules.contains(i))
            .collect();
        let key_masks = KeyMasks::new(&scan, &prepass.rules, rules.kinds().len());
        PatternScanner {
            rules: rules.clone(),
            scan,
            pair_kinds,
            prepass,
            key_masks,
            spares: Spares::new(),
            plain,
        }
    }

    /// The same rules with the pre-pass off: every rule searched the plain
    /// way. The reference the pre-pass is tested against.
    #[cfg(test)]
    fn plain_only(rules: &RuleSet) -> PatternScanner {
        let mut scanner = PatternScanner::new(rules);
        scanner.prepass = Prepass::new(std::iter::empty());
        scanner.key_masks = KeyMasks::new(&scanner.scan, &[], rules.kinds().len());
        scanner.plain = (0..scanner.scan.len()).collect();
        scanner
    }

    /// A stream for one message.
    pub fn stream(&self) -> PatternStream<'_> {
        let parts = self.spares.take();
        let mut next = parts.next;
        next.resize(self.scan.len(), 0);
        PatternStream {
            scanner: self,
            buf: parts.buf,
            buf_start: 0,
            next,
            pre_next: 0,
            unscanned: 0,
            pairs: HashMap::new(),
            lists: HashMap::new(),
            key_verdicts: parts.verdicts,
            finished: false,
        }
    }
}

/// What a finished stream leaves for the next one of its scanner: its
/// buffer and per-rule offsets, and the verdicts on the keys it met. A
/// message's base64 payloads, and its URL-encoded regions, get streams of
/// their own, most a few hundred bytes long, which would otherwise start
/// knowing no key.
#[derive(Default)]
struct PatternParts {
    verdicts: KeyVerdicts,
    buf: Vec<u8>,
    next: Vec<u64>,
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

/// A hit that passed every check: rule index, (value, list group), span.
type Accepted = (usize, (String, String), (u64, u64));

/// Scanning state for one message. Feed chunks in order, then call
/// [`finish`](PatternStream::finish) once; after that the stream ignores
/// further input (start a new stream for the next message).
pub struct PatternStream<'a> {
    scanner: &'a PatternScanner,
    /// Undecided bytes plus look-behind; `buf[0]` is message offset
    /// `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    /// Per rule: message offset where its next match may start.
    next: Vec<u64>,
    /// Message offset where the pre-pass resumes.
    pre_next: u64,
    unscanned: usize,
    /// First held hit per (kind, pair group).
    pairs: HashMap<(usize, String), Held>,
    /// Per list rule (index into `scan`) and list group.
    lists: HashMap<(usize, String), ListState>,
    /// What the keys before the pre-pass's candidates said.
    key_verdicts: KeyVerdicts,
    finished: bool,
}
impl Drop for PatternStream<'_> {
    fn drop(&mut self) {
        self.scanner.spares.give_back(PatternParts {
            verdicts: std::mem::take(&mut self.key_verdicts),
            buf: spares::taken_emptied(&mut self.buf),
            next: spares::taken_emptied(&mut self.next),
        });
    }
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
        self.buf.clear();
        self.pairs.clear();
    }

    /// Decides every candidate that can be decided: all of them when
    /// `final_`, else those starting at least `LOOKAHEAD` bytes before the
    /// end of the data so far.
    fn scan(&mut self, final_: bool, on_match: &mut dyn FnMut(PatternMatch)) {
        self.unscanned = 0;
        let scanner = self.scanner;
        let base = self.buf_start;
        let data_end = base + self.buf.len() as u64;
        let limit = if final_ {
            u64::MAX
        } else {
            (data_end + 1).saturating_sub(LOOKAHEAD as u64)
        };
        let decided = limit.min(data_end);
        let mut accepted: Vec<Accepted> = Vec::new();
        let from = (self.pre_next.max(base) - base) as usize;
        let to = decided.saturating_sub(base) as usize;
        if from < to {
            self.prepass(from, to, &mut accepted);
        }
        self.pre_next = self.pre_next.max(decided);
        for &i in &scanner.plain {
            self.plain_search(i, limit, &mut accepted);
        }
        let mut found = Vec::new();
        for (i, hit, span) in accepted {
            self.accept(i, &scanner.scan[i], hit, span, &mut found);
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
            let plain_next = scanner.plain.iter().map(|&i| self.next[i]).min();
            let first = plain_next.unwrap_or(u64::MAX).min(self.pre_next).min(limit);
            let keep_from = first.saturating_sub(LOOKBEHIND as u64).max(base);
            self.buf.drain(..(keep_from - base) as usize);
            self.buf_start = keep_from;
        }
    }

    /// Runs the pre-pass over `buf[from..to]` for the rules it covers.
    fn prepass(&mut self, from: usize, to: usize, accepted: &mut Vec<Accepted>) {
        let scanner = self.scanner;
        let pre = &scanner.prepass;
        let (buf, base, next) = (&self.buf[..], self.buf_start, &mut self.next);
        let (rules, scan) = (&scanner.rules, &scanner.scan[..]);
        let verdicts = &mut self.key_verdicts;
        // The key before `p` is the same for every rule: one lookup
        // settles them all.
        let key_masks = &scanner.key_masks;
        let key_allows = |p, m| key_masks.allowed_at(rules, scan, verdicts, (buf, p), m);
        pre.candidates(buf, from, to, key_allows, |p, mask| {
            for bit in prepass::ones(mask) {
                let i = pre.rules[bit];
                let sr = &scanner.scan[i];
                if base + (p as u64) < next[i] {
                    continue;
                }
                let Some(end) = pre.probe(bit, buf, p) else {
                    continue;
                };
                if let Some(hit) = evaluate(scanner, buf, sr, p, end) {
                    next[i] = base + end as u64;
                    accepted.push((i, hit, (base + p as u64, base + end as u64)));
                }
            }
        });
    }

    /// The plain search for rule `i`, for rules the pre-pass cannot cover:
    /// its regex over the whole window, candidate after candidate.
    fn plain_search(&mut self, i: usize, limit: u64, accepted: &mut Vec<Accepted>) {
        let sr = &self.scanner.scan[i];
        let (buf, base) = (&self.buf[..], self.buf_start);
        let data_end = base + buf.len() as u64;
        let mut pos = (self.next[i].max(base) - base) as usize;
        while pos <= buf.len() {
            let Some(m) = sr.rule.regex.find_at(buf, pos) else {
                break;
            };
            if base + m.start() as u64 >= limit {
                break;
            }
            if m.is_empty() || m.len() > MAX_MATCH_LEN {
                pos = m.start() + 1;
                continue;
            }
            let Some(hit) = evaluate(self.scanner, buf, sr, m.start(), m.end()) else {
                // Starts that the before-boundary refuses whatever follows
                // (inside a digit or hex run) are skipped without asking
                // the regex again.
                pos = m.start() + 1;
                while pos < buf.len() && blocked_before(&sr.rule, buf, pos) {
                    pos += 1;
                }
                continue;
            };
            pos = m.end();
            let span = (base + m.start() as u64, base + m.end() as u64);
            accepted.push((i, hit, span));
        }
        self.next[i] = (base + pos as u64).max(limit.min(data_end));
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
}

#[path = "patterns_blocks.rs"]
mod blocks;
#[path = "patterns_context.rs"]
mod context;
#[path = "patterns_prepass.rs"]
mod prepass;
#[path = "patterns_shape.rs"]
mod shape;

use context::{
    KeyMasks, KeyVerdicts, blocked_before, escaped_before, evaluate, join_truncated, refused_before,
};
use prepass::Prepass;

#[cfg(test)]
#[path = "patterns_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "patterns_prepass_tests.rs"]
mod prepass_tests;
