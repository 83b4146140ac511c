//! Runs every detector over one message, including what is nested in it.
//!
//! A *message* is one place data can sit: the URL, one header, a body, one
//! WebSocket message. [`MessageScan`] streams it through the three
//! detectors at once and also looks inside it: a run of base64 is decoded
//! (and gunzipped when it holds gzip) and scanned as a child message, and
//! percent-encoded text is decoded on the fly into another child. Children
//! are bounded in depth (`--decode-depth`) and in size, so a nested bomb
//! costs a bounded amount of memory and time.
//!
//! The scan keeps, per identifier, only the strongest hit: profile beats
//! pattern beats key, then higher confidence, then the more direct
//! encoding, then the shorter container chain.

use super::Confidence;
use super::finding::DetectorKind;
use super::keys::{KeyScanner, KeyStream};
use super::known::{KnownValueMatcher, KnownValueStream};
use super::patterns::{PatternScanner, PatternStream};
use super::recent::RecentBytes;
use super::secret::Secret;
use super::spares::{self, Spares};
use nested::{Base64Runs, HISTORY, PayloadBuffers, PercentRegions};
use std::collections::HashMap;

/// Bounds on looking inside messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Nested containers opened at most (`--decode-depth`).
    pub decode_depth: usize,
    /// Bytes one nested payload may decode to.
    pub nested_output: u64,
    /// Longest base64 run that is decoded; longer runs are scanned as text
    /// only (the known-value search still finds base64 forms inside them).
    pub max_token: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            decode_depth: 4,
            nested_output: 1 << 20,
            max_token: 256 * 1024,
        }
    }
}

/// The compiled detectors, shared by every scan.
pub struct Detectors {
    pub known: KnownValueMatcher,
    pub patterns: PatternScanner,
    pub keys: KeyScanner,
    pub limits: ScanLimits,
    /// Mask matched values in evidence (`--redact`).
    pub redact: bool,
}

/// The best evidence of one identifier in one message.
#[derive(Debug, Clone)]
pub struct Hit {
    pub identifier: String,
    pub encoding: String,
    pub detector: DetectorKind,
    pub confidence: Confidence,
    /// Containers opened to reach the value, outermost first.
    pub chain: Vec<String>,
    pub evidence: String,
    /// The matched text, when the detector reports one (patterns, keys):
    /// what `--redact` must mask in the flow record.
    pub value: Option<Secret>,
    strength: u8,
}

impl Hit {
    fn rank(&self) -> Rank {
        rank(
            self.detector,
            self.confidence,
            self.strength,
            self.chain.len(),
        )
    }
}

/// How hits of one identifier compare: profile beats pattern beats key,
/// then higher confidence, then the more direct encoding, then the shorter
/// container chain.
type Rank = (DetectorKind, Confidence, u8, std::cmp::Reverse<usize>);

fn rank(detector: DetectorKind, confidence: Confidence, strength: u8, chain: usize) -> Rank {
    (detector, confidence, strength, std::cmp::Reverse(chain))
}

/// Bytes of context kept for evidence on each side of a match.
const CONTEXT: usize = 32;
/// Tail of earlier chunks kept for evidence and split matches.
const TAIL: usize = 160;

/// A match before its evidence is cut out.
struct Raw {
    /// The matched text as the detector saw it, when it reports one: the
    /// evidence for a match decided after its bytes left the kept tail.
    value: Option<String>,
    identifier: String,
    encoding: String,
    strength: u8,
    detector: DetectorKind,
    confidence: Confidence,
    start: u64,
    end: u64,
}

/// One message being scanned. See the module docs.
pub struct MessageScan<'d> {
    detectors: &'d Detectors,
    depth: usize,
    chain: Vec<String>,
    known: KnownValueStream<'d>,
    patterns: PatternStream<'d>,
    keys: KeyStream<'d>,
    /// Bytes fed before the current chunk.
    fed: u64,
    tail: RecentBytes<TAIL>,
    base64: Base64Runs,
    percent: PercentRegions<'d>,
    best: HashMap<String, Hit>,
    /// The current chunk's matches, before their evidence is cut.
    raws: Vec<Raw>,
    payloads: PayloadBuffers,
    reading: Reading,
}

/// A finished scan's buffers, which the next scan on any thread takes
/// over (see [`Spares`]): its tails, its base64 run and maps, its matches
/// and best hits. Nested payloads and header lines are scans of their own.
#[derive(Default)]
struct ScanParts {
    tail: RecentBytes<TAIL>,
    history: RecentBytes<HISTORY>,
    run: Vec<u8>,
    blocks: Vec<u64>,
    raws: Vec<Raw>,
    best: HashMap<String, Hit>,
    payloads: PayloadBuffers,
}

static SCAN_SPARES: Spares<ScanParts> = Spares::new();

impl Drop for MessageScan<'_> {
    fn drop(&mut self) {
        let mut best = std::mem::take(&mut self.best);
        best.clear();
        SCAN_SPARES.give_back(ScanParts {
            tail: std::mem::take(&mut self.tail).forgotten(),
            history: std::mem::take(&mut self.percent.history).forgotten(),
            run: spares::taken_emptied(&mut self.base64.run),
            blocks: spares::taken_emptied(&mut self.base64.blocks),
            raws: spares::taken_emptied(&mut self.raws),
            best,
            payloads: self.payloads.taken_emptied(),
        });
    }
}

/// Which detectors read the message.
enum Reading {
    /// All of them, and nested decoding.
    Text,
    /// Only the known-value search: the message is binary (compressed,
    /// encrypted or random bytes), where the profile's exact byte forms
    /// can still sit but patterns, keys and nested text find only noise.
    Binary,
    /// A body's first bytes, held until [`SNIFF_LEN`] of them (or the end)
    /// decide, so the decision does not depend on how it is chunked.
    Undecided(Vec<u8>),
}

/// Bytes at the start of a body that decide whether it is binary.
pub const SNIFF_LEN: usize = 512;

/// True when `start` (a body's first bytes) is binary: more than 30% of
/// it is control bytes other than whitespace, or not UTF-8. Protobuf
/// with string fields stays text (its tags and lengths are ~10%); random,
/// compressed and encrypted bytes are ~60% or more.
pub fn is_binary(start: &[u8]) -> bool {
    let odd: usize = start
        .utf8_chunks()
        .map(|c| {
            let control = c
                .valid()
                .chars()
                .filter(|ch| ch.is_control() && !ch.is_whitespace())
                .count();
            control + c.invalid().len()
        })
        .sum();
    odd * 10 > start.len() * 3
}

impl<'d> MessageScan<'d> {
    /// Starts a scan of a message reached through `chain` (e.g. `["gzip",
    /// "json"]` for a gzip'd JSON body).
    pub fn new(detectors: &'d Detectors, chain: Vec<String>) -> MessageScan<'d> {
        MessageScan::at_depth(detectors, chain, 0)
    }

    fn at_depth(detectors: &'d Detectors, chain: Vec<String>, depth: usize) -> MessageScan<'d> {
        let parts = SCAN_SPARES.take();
        let mut percent = PercentRegions::default();
        percent.history = parts.history;
        let mut base64 = Base64Runs::default();
        (base64.run, base64.blocks) = (parts.run, parts.blocks);
        MessageScan {
            detectors,
            depth,
            chain,
            known: detectors.known.stream(),
            patterns: detectors.patterns.stream(),
            keys: detectors.keys.stream(),
            fed: 0,
            tail: parts.tail,
            base64,
            percent,
            best: parts.best,
            raws: parts.raws,
            payloads: parts.payloads,
            reading: Reading::Text,
        }
    }

    /// Starts the scan of a body: its first [`SNIFF_LEN`] bytes decide
    /// whether every detector reads it or, when it [`is_binary`], only the
    /// known-value search.
    pub fn body(detectors: &'d Detectors, chain: Vec<String>) -> MessageScan<'d> {
        let mut scan = MessageScan::new(detectors, chain);
        scan.reading = Reading::Undecided(Vec::new());
        scan
    }

    /// Scans one message given whole.
    pub fn scan_all(detectors: &'d Detectors, chain: Vec<String>, message: &[u8]) -> Vec<Hit> {
        let mut scan = MessageScan::new(detectors, chain);
        scan.feed(message);
        scan.finish()
    }

    /// Feeds the next chunk of the message.
    pub fn feed(&mut self, chunk: &[u8]) {
        if let Reading::Undecided(start) = &mut self.reading {
            let take = chunk.len().min(SNIFF_LEN - start.len());
            start.extend_from_slice(&chunk[..take]);
            if start.len() < SNIFF_LEN {
                return;
            }
            self.decide();
            self.feed(&chunk[take..]);
            return;
        }
        if chunk.is_empty() {
            return;
        }
        let text = matches!(self.reading, Reading::Text);
        let mut raws = std::mem::take(&mut self.raws);
        self.known.feed(chunk, &mut |m| raws.push(known_raw(m)));
        if text {
            self.patterns
                .feed(chunk, &mut |m| raws.push(pattern_raw(m)));
            self.keys.feed(chunk, &mut |m| raws.push(key_raw(m)));
        }
        self.offer_all(raws, chunk);
        if text && self.depth < self.detectors.limits.decode_depth {
            self.nested_base64(chunk, false);
            self.nested_percent(chunk, false);
        }
        self.fed += chunk.len() as u64;
        self.tail.remember(chunk);
    }

    /// Settles how an undecided body is read and feeds what was held.
    fn decide(&mut self) {
        if let Reading::Undecided(start) = &mut self.reading {
            let start = std::mem::take(start);
            self.reading = if is_binary(&start) {
                Reading::Binary
            } else {
                Reading::Text
            };
            self.feed(&start);
        }
    }

    /// Ends the message and returns the best hit per identifier.
    pub fn finish(mut self) -> Vec<Hit> {
        self.decide();
        let text = matches!(self.reading, Reading::Text);
        let mut raws = std::mem::take(&mut self.raws);
        self.known.finish(&mut |m| raws.push(known_raw(m)));
        if text {
            self.patterns.finish(&mut |m| raws.push(pattern_raw(m)));
            self.keys.finish(&mut |m| raws.push(key_raw(m)));
        }
        self.offer_all(raws, &[]);
        if text && self.depth < self.detectors.limits.decode_depth {
            self.nested_base64(&[], true);
            self.finish_percent();
        }
        let mut hits: Vec<Hit> = self.best.drain().map(|(_, hit)| hit).collect();
        hits.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        hits
    }

    /// Offers each of `raws`, whose room is kept for the next chunk's.
    fn offer_all(&mut self, mut raws: Vec<Raw>, chunk: &[u8]) {
        for raw in raws.drain(..) {
            self.offer(raw, chunk);
        }
        self.raws = raws;
    }

    /// Keeps `raw` if it beats the best hit of its identifier so far. The
    /// evidence is cut only then: a value sent in many encodings matches
    /// many times, and formatting each excerpt was a visible cost.
    fn offer(&mut self, raw: Raw, chunk: &[u8]) {
        let rank = rank(raw.detector, raw.confidence, raw.strength, self.chain.len());
        if self
            .best
            .get(&raw.identifier)
            .is_some_and(|old| old.rank() >= rank)
        {
            return;
        }
        let evidence = self.excerpt(chunk, &raw);
        let hit = Hit {
            identifier: raw.identifier,
            encoding: raw.encoding,
            detector: raw.detector,
            confidence: raw.confidence,
            chain: self.chain.clone(),
            evidence,
            value: raw.value.map(Secret::new),
            strength: raw.strength,
        };
        self.keep(hit);
    }

    fn keep(&mut self, hit: Hit) {
        match self.best.get(&hit.identifier) {
            Some(old) if old.rank() >= hit.rank() => {}
            _ => {
                self.best.insert(hit.identifier.clone(), hit);
            }
        }
    }

    /// Cuts the evidence for the match's bytes out of the kept tail and
    /// the current chunk, masking the value when redacting. Matches decided
    /// late (a pair or list held to the end of the message, a key value
    /// decided a chunk later) may lie before the kept tail: their evidence
    /// is the value the detector reported, without context.
    fn excerpt(&self, chunk: &[u8], raw: &Raw) -> String {
        let (start, end, identifier) = (raw.start, raw.end, raw.identifier.as_str());
        let window_start = self.fed - self.tail.len() as u64;
        let window_end = self.fed + chunk.len() as u64;
        if start < window_start || end > window_end || start > end {
            return match &raw.value {
                _ if self.detectors.redact => format!("[{identifier}]"),
                Some(value) => printable(value.as_bytes()),
                None => format!("[{identifier}: outside the kept context]"),
            };
        }
        let byte_at = |pos: u64| -> u8 {
            let i = (pos - window_start) as usize;
            if i < self.tail.len() {
                self.tail[i]
            } else {
                chunk[i - self.tail.len()]
            }
        };
        let from = start.saturating_sub(CONTEXT as u64).max(window_start);
        // A detector may settle a match after its bytes left the kept
        // window (whole-message rules, look-ahead): then there is no
        // context to show, only the value's name.
        let to = (end + CONTEXT as u64).min(window_end).max(from);
        let (start, end) = (start.clamp(from, to), end.clamp(from, to));
        if start == end && !self.detectors.redact {
            return format!("[{identifier}: outside the kept context]");
        }
        let text = |a: u64, b: u64| -> String {
            let bytes: Vec<u8> = (a..b).map(byte_at).collect();
            printable(&bytes)
        };
        let value = if self.detectors.redact {
            format!("[{identifier}]")
        } else {
            text(start, end)
        };
        format!("{}{}{}", text(from, start), value, text(end, to))
    }
}

/// Renders bytes for humans: UTF-8 where it is, `\xNN` elsewhere, control
/// characters escaped so evidence stays on one line.
fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn known_raw(m: super::known::KnownMatch) -> Raw {
    Raw {
        value: None,
        identifier: m.identifier.to_string(),
        encoding: m.encoding.label().to_owned(),
        strength: m.encoding.strength(),
        detector: DetectorKind::Profile,
        confidence: Confidence::High,
        start: m.start,
        end: m.end,
    }
}

fn pattern_raw(m: super::patterns::PatternMatch) -> Raw {
    Raw {
        value: Some(m.value.expose().to_owned()),
        identifier: m.identifier,
        encoding: "plain".to_owned(),
        strength: u8::MAX,
        detector: DetectorKind::Pattern,
        confidence: m.confidence,
        start: m.start,
        end: m.end,
    }
}

fn key_raw(m: super::keys::KeyMatch) -> Raw {
    Raw {
        value: Some(m.value.expose().to_owned()),
        identifier: m.identifier,
        encoding: "plain".to_owned(),
        strength: u8::MAX,
        detector: DetectorKind::Key,
        confidence: Confidence::Low,
        start: m.start,
        end: m.end,
    }
}

#[path = "scan_nested.rs"]
mod nested;

pub use nested::sniff_container;

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
