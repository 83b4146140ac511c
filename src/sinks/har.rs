//! `session.har`: the session as a HAR 1.2 file any HAR viewer opens.
//!
//! Contract:
//! - One entry per HTTP and WebSocket flow, in completion order (the spec
//!   prefers start order but requires readers to sort; sorting here would
//!   need every entry in memory). Tunnels and refused TLS handshakes are
//!   not HTTP exchanges: they go to `log._leakscope.tunnels` and
//!   `log._leakscope.tls_refused`, at most [`MAX_CONNECTION_RECORDS`] each,
//!   the rest counted in `tunnels_dropped` / `tls_refused_dropped`.
//! - Consent phase periods are the HAR `pages` (`phase-<n>-<phase>`); an
//!   entry's `pageref` is the period of its phase at its start.
//! - leakscope's findings, labels, TLS facts and errors ride along in
//!   `_leakscope` fields (see [`super::har_model`]).
//! - Memory does not grow with the number of flows: each entry is written
//!   once, as its flow completes, to a spool file (`.session.har.spool`,
//!   one entry per line) and only labels and findings of flows in flight
//!   are held. The HAR is assembled by streaming the spool into
//!   `session.har.tmp`, which is fsynced and renamed over `session.har`.
//!   So `session.har` is always complete, valid JSON, and it is replaced
//!   on [`Sink::flush`] once [`HarOptions::rewrite_every`] has passed since
//!   the last rewrite, on [`HarWriter::finalize`], and when the writer is
//!   dropped (the sink hub drops its sinks after the final flush). A
//!   `kill -9` loses from `session.har` only the entries since the last
//!   rewrite; they are still in the spool, which is removed only after a
//!   clean final rewrite. Two limits on "every `rewrite_every`": the hub
//!   flushes only when its queue runs dry, so after a burst followed by
//!   silence the rewrite waits for the next event (or the end); and once a
//!   rewrite takes over a second, the next waits four times that long.
//! - Existing evidence is never overwritten: [`HarWriter::create`] takes
//!   the first of `session.har`, `session-2.har`, `session-3.har`, ... for
//!   which neither the HAR nor its spool exists.

use super::har_body;
use super::har_model::{self, EntryContext};
use super::line_log::{Durability, LineLog};
use crate::consent::{ConsentPhase, PhaseChange};
use crate::detect::finding::{Finding, FlowLabels};
use crate::flow::{Flow, FlowError, FlowId, FlowKind, TlsFacts, TunnelReason};
use crate::session::{SessionEvent, Sink};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How often `session.har` is rewritten unless told otherwise.
pub const DEFAULT_REWRITE_EVERY: Duration = Duration::from_secs(5);

/// Tunnels (and, separately, refused handshakes) kept in the HAR; more are
/// only counted. Each costs a few hundred bytes of memory.
pub const MAX_CONNECTION_RECORDS: usize = 10_000;

/// Flows in flight whose labels and findings are held. Beyond this the
/// oldest are let go (counted in `log._leakscope.pending_evicted`): only a
/// flow whose end never arrives can stay this long.
const MAX_PENDING_FLOWS: usize = 65_536;

/// A rewrite that took longer than [`SLOW_REWRITE`] makes the next one due
/// no sooner than this many times as long, so that on a huge session the
/// sink thread (shared with the terminal and findings.jsonl) spends at most
/// about a fifth of its time rewriting.
const REWRITE_COST_FACTOR: u32 = 4;
const SLOW_REWRITE: Duration = Duration::from_secs(1);

/// Highest `session-<n>.har` tried before giving up.
const MAX_SESSION_NUMBER: u32 = 100_000;

/// How the HAR writer behaves.
#[derive(Debug, Clone)]
pub struct HarOptions {
    /// Least time between two rewrites of `session.har` on `flush`.
    pub rewrite_every: Duration,
    /// When the session started (`log._leakscope.session_start`).
    pub session_start: OffsetDateTime,
    /// The phase the session started in: the first page.
    pub first_phase: PhaseChange,
}

impl HarOptions {
    /// Defaults: rewrite every [`DEFAULT_REWRITE_EVERY`], session starting
    /// when `first_phase` does.
    pub fn new(first_phase: PhaseChange) -> HarOptions {
        HarOptions {
            rewrite_every: DEFAULT_REWRITE_EVERY,
            session_start: first_phase.since,
            first_phase,
        }
    }
}

/// Labels and findings of a flow still in flight.
#[derive(Default)]
struct Pending {
    labels: Option<Arc<FlowLabels>>,
    findings: Vec<Arc<Finding>>,
}

/// A consent phase period: one HAR page.
struct PagePeriod {
    phase: ConsentPhase,
    since: OffsetDateTime,
    id: String,
}

impl PagePeriod {
    fn new(number: usize, change: PhaseChange) -> PagePeriod {
        let id = format!("phase-{number}-{}", change.phase);
        PagePeriod {
            phase: change.phase,
            since: change.since,
            id,
        }
    }

    /// The `log.pages` item; the title says when the period began (in the
    /// offset of the phase change, UTC from the phase clock).
    fn har_page(&self) -> serde_json::Value {
        let (h, m, s) = self.since.to_hms();
        serde_json::json!({
            "startedDateTime": har_model::har_time(self.since),
            "id": self.id,
            "title": format!("{} (from {h:02}:{m:02}:{s:02})", self.phase),
            "pageTimings": {"onContentLoad": -1, "onLoad": -1},
        })
    }
}

/// Bounded list of serialized connection records.
#[derive(Default)]
struct Records {
    kept: Vec<String>,
    dropped: u64,
}

impl Records {
    fn push(&mut self, record: &ConnectionRecord<'_>) -> io::Result<()> {
        if self.kept.len() >= MAX_CONNECTION_RECORDS {
            self.dropped += 1;
            return Ok(());
        }
        self.kept.push(serde_json::to_string(record)?);
        Ok(())
    }
}

/// The HAR sink. See the module docs for its contract.
pub struct HarWriter {
    options: HarOptions,
    har_path: PathBuf,
    tmp_path: PathBuf,
    spool_path: PathBuf,
    /// Entry lines; the assembly reads only its whole lines
    /// ([`LineLog::written_len`]), so a half-written line never reaches the
    /// HAR, and entries a full disk refused wait in its backlog.
    spool: LineLog,
    pages: Vec<PagePeriod>,
    pending: BTreeMap<FlowId, Pending>,
    pending_evicted: u64,
    tunnels: Records,
    tls_refused: Records,
    /// Something was handled that `session.har` does not show yet.
    dirty: bool,
    last_rewrite: Instant,
    /// How long the last rewrite took.
    rewrite_cost: Duration,
}

impl HarWriter {
    /// Claims the first free `session[-n].har` name in `out_dir` (which
    /// must exist), creates its spool and writes an empty but valid HAR
    /// there at once, so the file exists from the start of the session.
    pub fn create(out_dir: &Path, options: HarOptions) -> io::Result<HarWriter> {
        let (stem, spool) = claim_name(out_dir)?;
        let first = options.first_phase;
        let mut writer = HarWriter {
            har_path: out_dir.join(format!("{stem}.har")),
            tmp_path: out_dir.join(format!("{stem}.har.tmp")),
            spool_path: out_dir.join(format!(".{stem}.har.spool")),
            spool: LineLog::new(spool, Durability::Batched)?,
            pages: vec![PagePeriod::new(1, first)],
            pending: BTreeMap::new(),
            pending_evicted: 0,
            tunnels: Records::default(),
            tls_refused: Records::default(),
            dirty: true,
            last_rewrite: Instant::now(),
            rewrite_cost: Duration::ZERO,
            options,
        };
        writer.rewrite()?;
        Ok(writer)
    }

    /// The HAR file this writer maintains.
    pub fn path(&self) -> &Path {
        &self.har_path
    }

    /// Flows whose labels or findings are held, waiting for their end.
    /// Zero once every labelled flow has completed.
    pub fn retained_flows(&self) -> usize {
        self.pending.len()
    }

    /// Rewrites `session.har` now with everything handled so far.
    pub fn finalize(&mut self) -> io::Result<()> {
        self.rewrite()
    }

    fn pending_for(&mut self, flow_id: FlowId) -> &mut Pending {
        if !self.pending.contains_key(&flow_id) && self.pending.len() >= MAX_PENDING_FLOWS {
            // Ids grow with time, so the smallest is the longest waiting.
            self.pending.pop_first();
            self.pending_evicted += 1;
        }
        self.pending.entry(flow_id).or_default()
    }

    fn flow_done(&mut self, flow: &Flow) -> io::Result<()> {
        let pending = self.pending.remove(&flow.id).unwrap_or_default();
        match flow.kind {
            FlowKind::Http | FlowKind::WebSocket => self.spool_entry(flow, &pending)?,
            FlowKind::Tunnel => self.tunnels.push(&connection_record(flow))?,
            FlowKind::TlsRefused => self.tls_refused.push(&connection_record(flow))?,
        }
        self.dirty = true;
        Ok(())
    }

    fn spool_entry(&mut self, flow: &Flow, pending: &Pending) -> io::Result<()> {
        let labels = pending.labels.as_deref();
        let page = &self.pages[page_index(&self.pages, flow.timing.start, labels.map(|l| l.phase))];
        let ctx = EntryContext {
            pageref: &page.id,
            page_phase: page.phase,
            labels,
            findings: &pending.findings,
        };
        let bodies = [
            flow.request.as_ref().map(|r| &r.body),
            flow.response.as_ref().map(|r| &r.body),
        ]
        .map(|body| body.map_or(&[][..], |b| &b.captured[..]));
        let line = har_body::entry_line(&har_model::entry(flow, ctx), bodies)?;
        self.spool.push(line)
    }

    /// Assembles the HAR from the spool into the temp file, makes it
    /// durable and renames it over the HAR file.
    fn rewrite(&mut self) -> io::Result<()> {
        let started = Instant::now();
        // Entries still queued would be missing from the HAR; while the
        // disk refuses them the HAR stays as it was (valid) and `dirty`.
        self.spool.flush()?;
        let result = self
            .write_tmp()
            .and_then(|()| fs::rename(&self.tmp_path, &self.har_path));
        if let Err(err) = result {
            let _ = fs::remove_file(&self.tmp_path);
            return Err(err);
        }
        // The rename is durable once the directory is; a failure here
        // leaves a valid file either way, so it is not worth an error.
        if let Some(dir) = self.har_path.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        self.dirty = false;
        self.last_rewrite = Instant::now();
        self.rewrite_cost = started.elapsed();
        Ok(())
    }

    fn write_tmp(&self) -> io::Result<()> {
        let file = File::create(&self.tmp_path)?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let header = Header {
            version: "1.2",
            creator: Creator {
                name: "leakscope",
                version: env!("CARGO_PKG_VERSION"),
            },
            pages: self.pages.iter().map(PagePeriod::har_page).collect(),
        };
        // The header is an object missing its closing brace: `log` goes on
        // with `entries`, then `_leakscope`.
        let header = serde_json::to_vec(&header)?;
        out.write_all(b"{\"log\":")?;
        out.write_all(header.strip_suffix(b"}").unwrap_or(&header))?;
        out.write_all(b",\"entries\":[")?;
        let entries = self.copy_spool(&mut out)?;
        out.write_all(b"\n],\"_leakscope\":")?;
        let extra = serde_json::to_vec(&LogExtra {
            session_start: har_model::har_time(self.options.session_start),
            entries,
            pending_evicted: self.pending_evicted,
            tunnels_dropped: self.tunnels.dropped,
            tls_refused_dropped: self.tls_refused.dropped,
        })?;
        // Same trick: the two record lists are already JSON text.
        out.write_all(extra.strip_suffix(b"}").unwrap_or(&extra))?;
        write_list(&mut out, "tunnels", &self.tunnels.kept)?;
        write_list(&mut out, "tls_refused", &self.tls_refused.kept)?;
        out.write_all(b"}}}\n")?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()
    }

    /// Streams the spool's whole lines into `out`, comma-separated.
    /// Returns how many entries were copied.
    fn copy_spool(&self, out: &mut impl Write) -> io::Result<u64> {
        let spool = File::open(&self.spool_path)?;
        let mut reader = BufReader::with_capacity(256 * 1024, spool.take(self.spool.written_len()));
        let mut line = Vec::new();
        let mut entries = 0u64;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(entries);
            }
            let json = line.strip_suffix(b"\n").unwrap_or(&line);
            if json.is_empty() {
                continue;
            }
            out.write_all(if entries == 0 { b"\n" } else { b",\n" })?;
            out.write_all(json)?;
            entries += 1;
        }
    }
}

/// Writes `,"<name>":[...]` from records that are JSON text already.
fn write_list(out: &mut impl Write, name: &str, records: &[String]) -> io::Result<()> {
    write!(out, ",\"{name}\":[")?;
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(record.as_bytes())?;
    }
    out.write_all(b"]")
}

/// A tunnel or refused TLS handshake, for `log._leakscope.tunnels` and
/// `log._leakscope.tls_refused`.
/// Every field is always present (`null` when unknown), so consumers see
/// one shape.
#[derive(Serialize)]
pub struct ConnectionRecord<'a> {
    pub flow_id: FlowId,
    pub host: &'a str,
    pub port: Option<u16>,
    pub sni: Option<&'a str>,
    pub alert: Option<&'a str>,
    pub reason: Option<TunnelReason>,
    pub bytes_up: Option<u64>,
    pub bytes_down: Option<u64>,
    pub first_bytes_hex: Option<&'a str>,
    pub tls: Option<&'a TlsFacts>,
    pub client: String,
    pub started: String,
    pub ended: Option<String>,
    pub error: Option<&'a FlowError>,
}

/// The connection record of a tunnel or refused-TLS flow.
pub fn connection_record(flow: &Flow) -> ConnectionRecord<'_> {
    let tunnel = flow.tunnel.as_ref();
    let tls = flow.tls.as_ref();
    ConnectionRecord {
        flow_id: flow.id,
        host: flow.host(),
        port: tunnel.map(|t| t.port),
        sni: tls.and_then(|t| t.sni.as_deref()),
        alert: tls.and_then(|t| t.alert.as_deref()),
        reason: tunnel.map(|t| t.reason),
        bytes_up: tunnel.and_then(|t| t.bytes_up),
        bytes_down: tunnel.and_then(|t| t.bytes_down),
        first_bytes_hex: tunnel.and_then(|t| t.first_bytes_hex.as_deref()),
        tls,
        client: flow.client_addr.to_string(),
        started: har_model::har_time(flow.timing.start),
        ended: flow.timing.end.map(har_model::har_time),
        error: flow.error.as_ref(),
    }
}

/// `log` fields before `entries`.
#[derive(Serialize)]
struct Header {
    version: &'static str,
    creator: Creator,
    pages: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct Creator {
    name: &'static str,
    version: &'static str,
}

/// `log._leakscope`, without its two record lists.
#[derive(Serialize)]
struct LogExtra {
    session_start: String,
    entries: u64,
    pending_evicted: u64,
    tunnels_dropped: u64,
    tls_refused_dropped: u64,
}

/// The page a flow belongs to. Without a phase: the period current at
/// `start`. With one (from the flow's labels): the period of that phase
/// nearest to `start`, since the proxy's phase clock and the event order
/// can disagree by a moment around a switch.
fn page_index(pages: &[PagePeriod], start: OffsetDateTime, phase: Option<ConsentPhase>) -> usize {
    let current = pages.iter().rposition(|p| p.since <= start).unwrap_or(0);
    let Some(phase) = phase else { return current };
    if pages.get(current).is_some_and(|p| p.phase == phase) {
        return current;
    }
    // An earlier period is as far away as its end (the next period's
    // start); a later one as its start.
    let earlier = pages[..current]
        .iter()
        .rposition(|p| p.phase == phase)
        .map(|i| (i, start - pages[i + 1].since));
    let later = pages
        .iter()
        .enumerate()
        .skip(current + 1)
        .find(|(_, p)| p.phase == phase)
        .map(|(i, p)| (i, p.since - start));
    match (earlier, later) {
        (Some((e, de)), Some((l, dl))) => {
            if de <= dl {
                e
            } else {
                l
            }
        }
        (Some((i, _)), None) | (None, Some((i, _))) => i,
        // The phase never had a period of its own: keep the clock's.
        (None, None) => current,
    }
}

/// Takes the first `session[-n]` stem whose HAR and spool are both absent;
/// creating the spool with `create_new` makes the claim race-free.
fn claim_name(out_dir: &Path) -> io::Result<(String, File)> {
    for n in 1..=MAX_SESSION_NUMBER {
        let stem = if n == 1 {
            "session".to_owned()
        } else {
            format!("session-{n}")
        };
        // symlink_metadata: any directory entry by that name is taken,
        // including a dangling link.
        if fs::symlink_metadata(out_dir.join(format!("{stem}.har"))).is_ok() {
            continue;
        }
        let spool = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(out_dir.join(format!(".{stem}.har.spool")));
        match spool {
            Ok(file) => return Ok((stem, file)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::other(format!(
        "{} already holds session.har to session-{MAX_SESSION_NUMBER}.har",
        out_dir.display()
    )))
}

impl Sink for HarWriter {
    fn name(&self) -> &'static str {
        "session.har"
    }

    fn handle(&mut self, event: &SessionEvent) -> io::Result<()> {
        match event {
            SessionEvent::FlowLabels(labels) => {
                self.pending_for(labels.flow_id).labels = Some(labels.clone());
            }
            SessionEvent::Finding(finding) => {
                self.pending_for(finding.flow_id)
                    .findings
                    .push(finding.clone());
            }
            SessionEvent::PhaseChanged(change) => {
                self.pages
                    .push(PagePeriod::new(self.pages.len() + 1, *change));
                self.dirty = true;
            }
            SessionEvent::FlowDone(flow) => self.flow_done(flow)?,
        }
        Ok(())
    }

    /// Rewrites `session.har` when something changed and at least
    /// `rewrite_every` passed since the last rewrite — or, when the last
    /// rewrite took over a second (a HAR of gigabytes), at least four times
    /// as long as it took.
    fn flush(&mut self) -> io::Result<()> {
        let mut due = self.options.rewrite_every;
        if self.rewrite_cost > SLOW_REWRITE {
            due = due.max(self.rewrite_cost * REWRITE_COST_FACTOR);
        }
        if self.dirty && self.last_rewrite.elapsed() >= due {
            self.rewrite()?;
        }
        Ok(())
    }
}

impl Drop for HarWriter {
    /// The final rewrite: whatever `flush` held back is written now, and
    /// the spool goes once the HAR holds all of it.
    fn drop(&mut self) {
        if self.dirty
            && let Err(err) = self.rewrite()
        {
            tracing::error!(
                "writing {} failed: {err}; the entries that reached the disk remain in {}",
                self.har_path.display(),
                self.spool_path.display()
            );
            return;
        }
        let _ = fs::remove_file(&self.spool_path);
    }
}

#[cfg(test)]
#[path = "har_tests.rs"]
mod tests;
