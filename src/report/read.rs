//! Reading a session's files for the report, streaming and tolerant.
//!
//! The writers' types (`Flow`, `Finding`) only serialize, and the report
//! needs a handful of their fields, so this module declares narrow
//! read-only mirrors of them. Unknown fields are ignored, which keeps the
//! report readable across versions that add fields.
//!
//! Contract for `.jsonl` input: every line is parsed on its own; a line
//! that is not a valid record (a truncated last line after a crash, a line
//! of garbage, a line longer than [`MAX_LINE`]) is skipped and counted,
//! never an error. Only I/O failures are errors.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::io::{self, BufRead};
use time::OffsetDateTime;

/// Longest line parsed. A flow line holds the captured WebSocket messages
/// of its flow (bounded per flow), so this is generous; it
/// exists so that a corrupted file without newlines cannot make the report
/// hold the whole file in memory.
pub const MAX_LINE: usize = 256 * 1024 * 1024;

/// The SDK fields a finding or HAR entry carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
pub struct SdkRef {
    pub name: String,
    pub vendor: String,
    pub category: String,
}

/// The fields of a `findings.jsonl` line the report uses.
#[derive(Debug, Clone, Deserialize)]
pub struct FindingLine {
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    pub flow_id: u64,
    pub phase: String,
    #[serde(default)]
    pub url: String,
    pub host: String,
    #[serde(default)]
    pub method: String,
    #[serde(rename = "where")]
    pub place: String,
    pub identifier: String,
    pub encoding: String,
    #[serde(default)]
    pub decoded_from: Vec<String>,
    #[serde(default)]
    pub detector: String,
    #[serde(default)]
    pub confidence: String,
    pub party: String,
    pub sdk: Option<SdkRef>,
    #[serde(default)]
    pub violations: Vec<String>,
    #[serde(default)]
    pub evidence: String,
}

/// The fields of a `flows.jsonl` line the report uses.
#[derive(Debug, Clone, Deserialize)]
pub struct FlowLine {
    pub id: u64,
    pub kind: String,
    pub timing: FlowTiming,
    pub request: Option<FlowRequest>,
    pub tunnel: Option<FlowTunnel>,
    pub tls: Option<FlowTls>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FlowTiming {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FlowRequest {
    pub host: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FlowTunnel {
    pub host: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FlowTls {
    pub sni: Option<String>,
    pub alert: Option<String>,
}

impl FlowLine {
    /// The host the flow talked to, by the same precedence as
    /// `Flow::host`: request, then tunnel target, then SNI.
    pub fn host(&self) -> &str {
        if let Some(req) = &self.request {
            &req.host
        } else if let Some(tunnel) = &self.tunnel {
            &tunnel.host
        } else {
            self.tls
                .as_ref()
                .and_then(|t| t.sni.as_deref())
                .unwrap_or_default()
        }
    }
}

/// Calls `each` with every line of `input` that parses as a `T`; returns
/// how many lines were skipped as malformed. Blank lines are neither.
pub fn for_each_line<T, R, F>(input: R, each: F) -> io::Result<u64>
where
    T: for<'de> Deserialize<'de>,
    R: BufRead,
    F: FnMut(T),
{
    for_each_line_max(input, MAX_LINE, each)
}

/// [`for_each_line`] with a given longest line (tests use a small one).
pub(crate) fn for_each_line_max<T, R, F>(mut input: R, max: usize, mut each: F) -> io::Result<u64>
where
    T: for<'de> Deserialize<'de>,
    R: BufRead,
    F: FnMut(T),
{
    let mut line = Vec::with_capacity(4096);
    let mut malformed = 0;
    loop {
        line.clear();
        let outcome = read_bounded_line(&mut input, &mut line, max)?;
        if outcome == LineOutcome::Eof {
            return Ok(malformed);
        }
        if outcome == LineOutcome::TooLong {
            malformed += 1;
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<T>(&line) {
            Ok(record) => each(record),
            Err(_) => malformed += 1,
        }
        // A huge line's buffer is not kept for the rest of the file.
        if line.capacity() > 1024 * 1024 {
            line = Vec::with_capacity(4096);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum LineOutcome {
    Line,
    TooLong,
    Eof,
}

/// Reads one line (without its `\n`) into `line`, keeping at most `max`
/// bytes; the rest of a longer line is consumed and dropped.
fn read_bounded_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineOutcome> {
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if buf.is_empty() {
            return Ok(match (read_any, too_long) {
                (false, _) => LineOutcome::Eof,
                (true, true) => LineOutcome::TooLong,
                (true, false) => LineOutcome::Line,
            });
        }
        read_any = true;
        let (chunk, found_end) = match buf.iter().position(|&b| b == b'\n') {
            Some(at) => (&buf[..at], true),
            None => (buf, false),
        };
        if !too_long {
            if line.len() + chunk.len() > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = chunk.len() + usize::from(found_end);
        input.consume(used);
        if found_end {
            return Ok(if too_long {
                LineOutcome::TooLong
            } else {
                LineOutcome::Line
            });
        }
    }
}

/// The `_leakscope` fields of one HAR entry the report uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HarEntryLine {
    #[serde(rename = "startedDateTime", default)]
    pub started: Option<String>,
    #[serde(default)]
    pub request: Option<HarRequest>,
    #[serde(rename = "_leakscope", default)]
    pub leakscope: Option<HarExtra>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HarRequest {
    #[serde(default)]
    pub url: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HarExtra {
    #[serde(default)]
    pub flow_id: Option<u64>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub sdk: Option<SdkRef>,
}

impl HarEntryLine {
    /// When the entry started, if its time parses.
    pub fn started_at(&self) -> Option<OffsetDateTime> {
        let text = self.started.as_deref()?;
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
    }

    /// The lower-case host of the request URL (no port, no credentials).
    pub fn host(&self) -> Option<String> {
        let url = &self.request.as_ref()?.url;
        let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            authority.split(':').next().unwrap_or_default()
        };
        (!host.is_empty()).then(|| host.to_ascii_lowercase())
    }
}

/// Streams `log.entries` of a HAR document, calling `each` per entry, in
/// memory bounded by one entry's `_leakscope` fields: bodies and headers
/// are skipped by the parser, not collected. Fails on JSON that is not a
/// complete HAR (the entries seen before the failure have been delivered).
pub fn for_each_har_entry<R, F>(input: R, each: F) -> serde_json::Result<()>
where
    R: io::Read,
    F: FnMut(HarEntryLine),
{
    let mut each = each;
    let mut de = serde_json::Deserializer::from_reader(input);
    Root(&mut each).deserialize(&mut de)?;
    de.end()
}

/// Seeds that walk `{ "log": { "entries": [ ... ] } }` and ignore the rest.
struct Root<'a, F>(&'a mut F);
struct Log<'a, F>(&'a mut F);
struct Entries<'a, F>(&'a mut F);

impl<'de, F: FnMut(HarEntryLine)> DeserializeSeed<'de> for Root<'_, F> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, F: FnMut(HarEntryLine)> Visitor<'de> for Root<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a HAR document")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "log" {
                map.next_value_seed(Log(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de, F: FnMut(HarEntryLine)> DeserializeSeed<'de> for Log<'_, F> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, F: FnMut(HarEntryLine)> Visitor<'de> for Log<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a HAR log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "entries" {
                map.next_value_seed(Entries(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de, F: FnMut(HarEntryLine)> DeserializeSeed<'de> for Entries<'_, F> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(HarEntryLine)> Visitor<'de> for Entries<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of HAR entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // A value that is not an object is skipped like a malformed line;
        // an object with a mistyped field ends the walk with an error (the
        // parser is mid-object then and cannot resynchronise).
        while let Some(Lenient(entry)) = seq.next_element::<Lenient>()? {
            if let Some(entry) = entry {
                (self.0)(entry);
            }
        }
        Ok(())
    }
}

/// An entry, or `None` when the value is not an object of the right shape.
struct Lenient(Option<HarEntryLine>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        // Buffering the entry as a `Value` would hold its bodies, so the
        // typed parse runs on the object directly.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a HAR entry")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient, A::Error> {
                HarEntryLine::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|e| Lenient(Some(e)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
        }
        de.deserialize_any(V)
    }
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
