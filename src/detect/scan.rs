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
use super::secret::Secret;
use crate::flow::decode::{ContentCoding, StreamDecoder};
use base64::Engine;
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
    fn rank(&self) -> (DetectorKind, Confidence, u8, std::cmp::Reverse<usize>) {
        (
            self.detector,
            self.confidence,
            self.strength,
            std::cmp::Reverse(self.chain.len()),
        )
    }
}

/// Shortest base64 run worth decoding: shorter runs are mostly words and
/// identifiers themselves, and decode to too little to hold a container.
const MIN_TOKEN: usize = 24;
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
    tail: Vec<u8>,
    run: Vec<u8>,
    run_overflow: bool,
    percent: Option<PercentChild<'d>>,
    best: HashMap<String, Hit>,
}

impl<'d> MessageScan<'d> {
    /// Starts a scan of a message reached through `chain` (e.g. `["gzip",
    /// "json"]` for a gzip'd JSON body).
    pub fn new(detectors: &'d Detectors, chain: Vec<String>) -> MessageScan<'d> {
        MessageScan::at_depth(detectors, chain, 0)
    }

    fn at_depth(detectors: &'d Detectors, chain: Vec<String>, depth: usize) -> MessageScan<'d> {
        MessageScan {
            detectors,
            depth,
            chain,
            known: detectors.known.stream(),
            patterns: detectors.patterns.stream(),
            keys: detectors.keys.stream(),
            fed: 0,
            tail: Vec::with_capacity(TAIL),
            run: Vec::new(),
            run_overflow: false,
            percent: None,
            best: HashMap::new(),
        }
    }

    /// Scans one message given whole.
    pub fn scan_all(detectors: &'d Detectors, chain: Vec<String>, message: &[u8]) -> Vec<Hit> {
        let mut scan = MessageScan::new(detectors, chain);
        scan.feed(message);
        scan.finish()
    }

    /// Feeds the next chunk of the message.
    pub fn feed(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let mut raws = Vec::new();
        self.known.feed(chunk, &mut |m| raws.push(known_raw(m)));
        self.patterns
            .feed(chunk, &mut |m| raws.push(pattern_raw(m)));
        self.keys.feed(chunk, &mut |m| raws.push(key_raw(m)));
        for raw in raws {
            let evidence = self.excerpt(chunk, &raw);
            self.offer(raw, evidence);
        }
        if self.depth < self.detectors.limits.decode_depth {
            self.nested_base64(chunk, false);
            self.nested_percent(chunk);
        }
        self.remember_tail(chunk);
    }

    /// Ends the message and returns the best hit per identifier.
    pub fn finish(mut self) -> Vec<Hit> {
        let mut raws = Vec::new();
        self.known.finish(&mut |m| raws.push(known_raw(m)));
        self.patterns.finish(&mut |m| raws.push(pattern_raw(m)));
        self.keys.finish(&mut |m| raws.push(key_raw(m)));
        for raw in raws {
            let evidence = self.excerpt(&[], &raw);
            self.offer(raw, evidence);
        }
        if self.depth < self.detectors.limits.decode_depth {
            self.nested_base64(&[], true);
        }
        if let Some(child) = self.percent.take() {
            for hit in child.scan.finish() {
                self.keep(hit);
            }
        }
        let mut hits: Vec<Hit> = self.best.into_values().collect();
        hits.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        hits
    }

    fn offer(&mut self, raw: Raw, evidence: String) {
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

    fn remember_tail(&mut self, chunk: &[u8]) {
        self.fed += chunk.len() as u64;
        if chunk.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - TAIL..]);
        } else {
            let drop = (self.tail.len() + chunk.len()).saturating_sub(TAIL);
            self.tail.drain(..drop);
            self.tail.extend_from_slice(chunk);
        }
    }

    /// Finds base64 runs (carried across chunks) and scans what they decode
    /// to. `end` closes a run still open at the end of the message.
    fn nested_base64(&mut self, chunk: &[u8], end: bool) {
        let mut run_start = if self.run.is_empty() && !self.run_overflow {
            None
        } else {
            Some(0)
        };
        let mut tokens = Vec::new();
        for (i, &b) in chunk.iter().enumerate() {
            if is_base64_byte(b) {
                run_start.get_or_insert(i);
            } else if let Some(s) = run_start.take() {
                if let Some(token) = self.close_run(&chunk[s..i]) {
                    tokens.push(token);
                }
            }
        }
        match run_start {
            Some(s) if end => tokens.extend(self.close_run(&chunk[s..])),
            Some(s) => self.carry_run(&chunk[s..]),
            None => {}
        }
        for token in tokens {
            if let Some((containers, payload)) =
                decode_nested(&token, self.detectors.limits.nested_output)
            {
                let mut chain = self.chain.clone();
                chain.extend(containers.into_iter().map(str::to_owned));
                let mut child = MessageScan::at_depth(self.detectors, chain, self.depth + 1);
                child.feed(&payload);
                for hit in child.finish() {
                    self.keep(hit);
                }
            }
        }
    }

    fn carry_run(&mut self, piece: &[u8]) {
        if self.run_overflow || self.run.len() + piece.len() > self.detectors.limits.max_token {
            self.run_overflow = true;
            self.run.clear();
        } else {
            self.run.extend_from_slice(piece);
        }
    }

    /// Completes the current run with `last`; returns it when worth decoding.
    fn close_run(&mut self, last: &[u8]) -> Option<Vec<u8>> {
        let overflow = std::mem::take(&mut self.run_overflow);
        let mut token = std::mem::take(&mut self.run);
        let fits = token.len() + last.len() <= self.detectors.limits.max_token;
        if overflow || !fits || token.len() + last.len() < MIN_TOKEN {
            return None;
        }
        token.extend_from_slice(last);
        Some(token)
    }

    /// Decodes `%XX` escapes into a child scan once the message shows one.
    /// The child starts with the kept tail and the whole current chunk, so
    /// a value whose escapes begin mid-way (a base64 run with `%2F` in it)
    /// is decoded from its start.
    fn nested_percent(&mut self, chunk: &[u8]) {
        if self.percent.is_none() {
            if first_escape(chunk).is_none() {
                return;
            }
            let mut chain = self.chain.clone();
            chain.push("url".to_owned());
            let mut child = PercentChild {
                scan: Box::new(MessageScan::at_depth(self.detectors, chain, self.depth + 1)),
                pending: Vec::new(),
            };
            child.feed(&self.tail);
            self.percent = Some(child);
        }
        if let Some(child) = self.percent.as_mut() {
            child.feed(chunk);
        }
    }
}

/// A percent-decoded view of a message, decoded as it streams.
struct PercentChild<'d> {
    scan: Box<MessageScan<'d>>,
    /// An escape split across chunks (`%` or `%4`).
    pending: Vec<u8>,
}

impl PercentChild<'_> {
    fn feed(&mut self, chunk: &[u8]) {
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(input.len());
        let mut i = 0;
        while i < input.len() {
            if input[i] == b'%' {
                if input.len() - i < 3 {
                    // Wait for the rest of the escape in the next chunk.
                    self.pending.extend_from_slice(&input[i..]);
                    break;
                }
                if let (Some(h), Some(l)) = (hex_value(input[i + 1]), hex_value(input[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(input[i]);
            i += 1;
        }
        self.scan.feed(&out);
    }
}

fn first_escape(chunk: &[u8]) -> Option<usize> {
    chunk
        .windows(3)
        .position(|w| w[0] == b'%' && hex_value(w[1]).is_some() && hex_value(w[2]).is_some())
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
}

/// Decodes a base64 run; returns the containers opened and the payload
/// when it holds something worth scanning (gzip/zlib data or text).
fn decode_nested(token: &[u8], limit: u64) -> Option<(Vec<&'static str>, Vec<u8>)> {
    let trimmed = token
        .strip_suffix(b"==")
        .or_else(|| token.strip_suffix(b"="))
        .unwrap_or(token);
    // `=` inside the run is a key/value separator (`data=H4sI...`): the
    // payload is what follows the last one.
    let trimmed = match trimmed.iter().rposition(|&b| b == b'=') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    };
    if trimmed.len() < MIN_TOKEN {
        return None;
    }
    let url_safe = trimmed.iter().any(|b| matches!(b, b'-' | b'_'));
    let engine = if url_safe {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    let raw = engine.decode(trimmed).ok()?;
    let compressed = match raw.as_slice() {
        [0x1f, 0x8b, ..] => Some((ContentCoding::Gzip, "gzip")),
        [0x78, flg, ..] if (0x7800u16 | *flg as u16) % 31 == 0 => {
            Some((ContentCoding::Deflate, "zlib"))
        }
        _ => None,
    };
    let (mut containers, payload) = match compressed {
        Some((coding, name)) => {
            let mut out = Vec::new();
            let mut decoder = StreamDecoder::new(&[coding], limit);
            let _ = decoder.push(&raw, &mut |piece| out.extend_from_slice(piece));
            let _ = decoder.finish(&mut |piece| out.extend_from_slice(piece));
            (vec!["base64", name], out)
        }
        None if mostly_text(&raw) => (vec!["base64"], raw),
        None => return None,
    };
    if let Some(kind) = sniff_container(&payload) {
        containers.push(kind);
    }
    Some((containers, payload))
}

/// True when at least 90% of the bytes are printable ASCII or whitespace,
/// or the bytes are valid UTF-8 text: binary noise decoded from a
/// base64-looking word is not worth scanning.
fn mostly_text(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        return false;
    }
    if std::str::from_utf8(bytes)
        .is_ok_and(|s| !s.chars().any(|c| c.is_control() && !c.is_whitespace()))
    {
        return true;
    }
    let printable = bytes
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    printable * 10 >= bytes.len() * 9
}

/// Names the container a payload looks like, for `decoded_from`.
pub fn sniff_container(payload: &[u8]) -> Option<&'static str> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
    match first {
        b'{' | b'[' => Some("json"),
        _ if payload.contains(&b'=') && !payload.contains(&b' ') => Some("form"),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::profile::DeviceProfile;
    use crate::detect::rules::RuleSet;

    /// A match decided after its bytes left the kept tail (a latitude held
    /// until the longitude shows up 20 KiB later, a key value decided in
    /// the next chunk) gets the reported value as evidence; cutting it out
    /// of the tail used to panic.
    #[test]
    fn late_decisions_keep_their_evidence() {
        let rules = RuleSet::embedded();
        let detectors = Detectors {
            known: KnownValueMatcher::new(&DeviceProfile::default()),
            patterns: PatternScanner::new(&rules),
            keys: KeyScanner::new(&rules),
            limits: ScanLimits::default(),
            redact: false,
        };
        let mut msg = String::from(r#"{"lat":39.9088,"#);
        msg.push_str(&"x".repeat(20_000));
        msg.push_str(r#","lng":116.3975,"#);
        msg.push_str(&"y".repeat(16_384 - msg.len() % 16_384 - 30));
        msg.push_str(r#""imei":"490154203237518""#);
        msg.push_str(&"z".repeat(1000));
        let mut scan = MessageScan::new(&detectors, Vec::new());
        for chunk in msg.as_bytes().chunks(16_384) {
            scan.feed(chunk);
        }
        let hits = scan.finish();
        let evidence = |id: &str| {
            let hit = hits.iter().find(|h| h.identifier == id);
            hit.map(|h| h.evidence.clone()).unwrap_or_default()
        };
        assert!(evidence("location").contains("39.9088"), "{hits:?}");
        assert!(evidence("imei").contains("490154203237518"), "{hits:?}");
    }
}
