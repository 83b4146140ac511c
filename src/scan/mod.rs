//! `leakscope scan`: the detectors over a HAR captured elsewhere.
//!
//! Chrome DevTools, mitmproxy (`hardump`), Charles, HTTP Toolkit, PCAPdroid
//! and leakscope itself all export HAR. A scan reads the file
//! ([`har_input`]), sorts its entries by start time, and replays each one
//! ([`entry`]) through the same [`Pipeline`] and privacy inspector as a live
//! session: request head, request body, response head, response body and
//! WebSocket messages, in that order. The outputs are a live session's
//! (`flows.jsonl`, `findings.jsonl`, `session.har`, `session.json`, then
//! `report.html` and `summary.json`), minus the terminal's live log.
//!
//! Phases ([`phases`]): `--consent-at` / `--refused-at`, else HAR pages
//! named after phases, else the whole capture is `consented` — a scan
//! without phase information cannot tell what was sent before consent,
//! and says so.
//!
//! Differences from a live session, all deliberate:
//! - bodies are what the HAR holds, usually already content-decoded;
//! - `session.json`'s `ended` is the capture's end, not the scan's;
//! - findings' `ts` is when the scan found them, and the over-frequency
//!   rule counts sends per window of *replay* time (the inspector reads the
//!   wall clock): a long capture replays in seconds, so that rule can
//!   over-report until the inspector takes the flow's own time.
//!
//! Memory: the file's entries are held as typed values (about the size of
//! the file), each dropped once replayed; bodies are captured up to
//! `--body-limit` as live.

pub mod body;
pub mod entry;
pub mod har_input;
pub mod phases;

use crate::app::{Session, SessionSpec, start_session};
use crate::cli::ScanArgs;
use crate::consent::{ConsentPhase, PhaseChange, PhaseClock};
use crate::detect::inspector::PrivacySettings;
use crate::flow::capture::CaptureLimits;
use crate::flow::{Direction, Flow, FlowErrorKind};
use crate::pipeline::Pipeline;
use crate::session::{SessionEvent, Sink};
use crate::sinks::har_model::har_time;
use crate::sinks::session_info::SessionInfo;
use anyhow::{Context, bail};
use entry::ScanEntry;
use har_input::{JsonPath, Problem};
use phases::{PhasePoint, PhaseSource, Timeline};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// Body bytes handed to the pipeline at a time, as a network would.
const CHUNK: usize = 64 * 1024;

/// Warnings kept word for word; the rest are only counted.
const MAX_WARNINGS_KEPT: usize = 100;

/// Entries between two progress lines of `leakscope scan`.
const PROGRESS_EVERY: usize = 5000;

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub har: PathBuf,
    /// Output directory; must not already hold a session.
    pub out: PathBuf,
    pub privacy: PrivacySettings,
    pub limits: CaptureLimits,
    /// Captured bytes that may wait for the evidence writers
    /// (`--queue-limit`).
    pub queue_limit: u64,
    /// `--consent-at`, `--refused-at`, as given.
    pub consent_at: Option<String>,
    pub refused_at: Option<String>,
    /// Print a progress line to stderr every this many entries.
    pub progress_every: Option<usize>,
}

/// What a scan did.
#[derive(Debug, Clone)]
pub struct ScanSummary {
    pub out: PathBuf,
    /// The HAR's `creator`, e.g. `mitmproxy 11.0.2`.
    pub creator: Option<String>,
    /// Entries in the file.
    pub entries: usize,
    /// Entries replayed as flows.
    pub flows: usize,
    /// Entries that could not be read (each has a warning).
    pub skipped: usize,
    /// The first `MAX_WARNINGS_KEPT` warnings, each `path: problem`.
    pub warnings: Vec<String>,
    pub warning_count: usize,
    pub findings: u64,
    /// Violations found, by name.
    pub violations: BTreeMap<&'static str, u64>,
    pub phase_source: PhaseSource,
    /// Things the user should know about how the scan read the capture.
    pub notes: Vec<String>,
}

/// `leakscope scan`.
pub fn run(args: ScanArgs) -> anyhow::Result<()> {
    let options = ScanOptions {
        har: args.har.clone(),
        out: args.out.clone().unwrap_or_else(default_out_dir),
        privacy: args.privacy.settings(),
        limits: args.capture.limits()?,
        queue_limit: args.capture.queue_limit,
        consent_at: args.consent_at.clone(),
        refused_at: args.refused_at.clone(),
        progress_every: Some(PROGRESS_EVERY),
    };
    let summary = scan(&options)?;
    print_summary(&options.har, &summary);
    // The report's own summary names its files.
    let (_, text) = crate::report::write_report(&summary.out).with_context(|| {
        format!(
            "the evidence is in {}, but the report could not be written",
            summary.out.display()
        )
    })?;
    println!("{text}");
    println!("Evidence written to {}", summary.out.display());
    Ok(())
}

/// `./leakscope-out/scan-<time>/`, next to `run`'s sessions.
fn default_out_dir() -> PathBuf {
    let run_dir = crate::app::default_out_dir();
    let stamp = run_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_dir.with_file_name(format!("scan-{stamp}"))
}

/// Scans `options.har` into `options.out`. Errors: the file is not a
/// readable HAR (the message names the file, and the line and column or
/// the JSON path), no entry could be read, the output directory already
/// holds a session, or the detectors or outputs could not be set up.
pub fn scan(options: &ScanOptions) -> anyhow::Result<ScanSummary> {
    refuse_existing_session(&options.out)?;
    let har = har_input::read_har_file(&options.har)?;
    let mut problems = Problems::default();
    let mut page_warnings = Vec::new();
    let page_points = phases::from_pages(har.pages, &mut page_warnings);
    page_warnings.into_iter().for_each(|p| problems.push(p));

    let mut entries: Vec<_> = har
        .entries
        .into_iter()
        .enumerate()
        .map(|(index, raw)| (index, entry::start_of(&raw), raw))
        .collect();
    let first_start = entries.iter().filter_map(|e| e.1).min();
    let last_start = entries.iter().filter_map(|e| e.1).max();
    let mut notes = Vec::new();
    let (points, phase_source) = phase_points(options, page_points, first_start, &mut notes)?;
    if let (Some(first), Some(last)) = (first_start, last_start) {
        note_points_outside(&points, first, last, &mut notes);
    }
    let capture_start = first_start.unwrap_or_else(OffsetDateTime::now_utc);
    let mut timeline = Timeline::new(points, capture_start);
    entries.sort_by_cached_key(|(index, start, raw)| {
        let pageref = raw
            .present()
            .and_then(|e| e.pageref.present())
            .map(|t| t.0.as_str());
        (
            start.is_none(),
            *start,
            timeline.page_order(pageref),
            *index,
        )
    });

    let tally = Tally::default();
    let initial = timeline.initial();
    let clock = PhaseClock::starting_in(initial.phase);
    let open_session = || {
        start_session(SessionSpec {
            privacy: &options.privacy,
            limits: options.limits,
            queue_limit: options.queue_limit,
            out: &options.out,
            phases: clock.clone(),
            first_phase: initial,
            mode: "scan",
            source: Some(source_name(&options.har)),
            extra_sinks: vec![Box::new(tally.clone())],
        })
    };
    // The session starts with the first readable entry, so a file none of
    // whose entries can be read leaves no output directory behind.
    let mut session: Option<Session> = None;
    let total = entries.len();
    let (mut flows, mut skipped) = (0, 0);
    let mut capture_end = initial.since;
    let root = JsonPath::root("log");
    let list = root.key("entries");
    for (done, (index, _, raw)) in entries.into_iter().enumerate() {
        let path = list.index(index);
        match entry::convert(raw, &path) {
            Err(mut problem) => {
                problem.message.push_str("; entry skipped");
                problems.push(problem);
                skipped += 1;
            }
            Ok((scan_entry, warnings)) => {
                warnings.into_iter().for_each(|p| problems.push(p));
                let session = match &mut session {
                    Some(session) => session,
                    None => session.insert(open_session()?),
                };
                let start = scan_entry.timing.start;
                for change in timeline.before(start, scan_entry.pageref.as_deref()) {
                    session.switch.switch_at(change.phase, change.since);
                }
                capture_end = capture_end.max(scan_entry.timing.end.unwrap_or(start));
                // A bug in a detector must cost one entry, not the whole
                // scan; the flow is still recorded as its LiveFlow drops.
                let pipeline = &session.pipeline;
                let replayed =
                    panic::catch_unwind(AssertUnwindSafe(|| replay(pipeline, scan_entry)));
                if let Err(payload) = replayed {
                    problems.push(path.problem(format!(
                        "internal error while scanning this entry ({}); its findings may be incomplete, please report it",
                        panic_text(payload.as_ref())
                    )));
                }
                flows += 1;
            }
        }
        let every = options.progress_every.unwrap_or(0);
        if every > 0 && (done + 1) % every == 0 {
            eprintln!(
                "scan: {}/{total} entries, {} findings so far",
                done + 1,
                tally.findings()
            );
        }
    }
    if flows == 0 && total > 0 {
        bail!(
            "{}: none of its {total} entries could be read; the first problem: {}",
            options.har.display(),
            problems.kept.first().map_or("?", String::as_str)
        );
    }
    let session = match session {
        Some(session) => session,
        None => open_session()?,
    };
    for change in timeline.remaining() {
        session.switch.switch_at(change.phase, change.since);
        capture_end = capture_end.max(change.since);
    }
    let Session {
        hub,
        pipeline,
        switch,
    } = session;
    drop((pipeline, switch));
    hub.close();
    record_capture_end(&options.out, capture_end)?;
    let counts = tally.counts();
    Ok(ScanSummary {
        out: options.out.clone(),
        creator: har.creator,
        entries: total,
        flows,
        skipped,
        warnings: problems.kept,
        warning_count: problems.count,
        findings: counts.findings,
        violations: counts.violations,
        phase_source,
        notes,
    })
}

/// Feeds one entry through the pipeline in the order a live exchange
/// happens; the flow is recorded when `live` drops at the end. Public for
/// the HAR fuzz target, which replays into one long-lived pipeline.
pub fn replay(pipeline: &Pipeline, entry: ScanEntry) {
    let mut flow = Flow::new(entry.kind, entry.client_addr);
    flow.timing.start = entry.timing.start;
    flow.request = Some(entry.request);
    let live = pipeline.open(flow, entry.request_encoding.as_deref());
    for chunk in entry
        .request_body
        .as_deref()
        .unwrap_or_default()
        .chunks(CHUNK)
    {
        live.request_chunk(chunk);
    }
    live.body_end(Direction::Upstream);
    if let Some(response) = entry.response {
        live.response_head(response.record, response.encoding.as_deref());
        for chunk in response.body.as_deref().unwrap_or_default().chunks(CHUNK) {
            live.response_chunk(chunk);
        }
        live.body_end(Direction::Downstream);
    }
    for message in entry.messages {
        let mut kept_before = 0;
        live.edit(|flow| kept_before = flow.websocket.as_ref().map_or(0, |ws| ws.messages.len()));
        live.ws_message(message.direction, message.opcode, &message.payload);
        if let Some(time) = message.time {
            // The message's capture time, unless the body limit dropped it.
            live.edit(|flow| {
                let ws = flow
                    .websocket
                    .as_mut()
                    .filter(|ws| ws.messages.len() > kept_before);
                if let Some(last) = ws.and_then(|ws| ws.messages.last_mut()) {
                    last.time = time;
                }
            });
        }
    }
    if let Some(error) = entry.error {
        live.fail(FlowErrorKind::Other, error);
    }
    // The pipeline stamps stages with the clock; the capture's own times
    // replace them.
    let timing = entry.timing;
    live.edit(|flow| flow.timing = timing);
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}

fn refuse_existing_session(out: &Path) -> anyhow::Result<()> {
    // findings.jsonl and flows.jsonl are appended to: scanning into an old
    // session's directory would mix two sessions' evidence.
    for name in ["session.json", "findings.jsonl", "flows.jsonl"] {
        if out.join(name).exists() {
            bail!(
                "{} already holds a session ({name}); give a new --out directory",
                out.display()
            );
        }
    }
    Ok(())
}

/// The timeline's points and where they came from.
fn phase_points(
    options: &ScanOptions,
    page_points: Vec<PhasePoint>,
    first_start: Option<OffsetDateTime>,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Vec<PhasePoint>, PhaseSource)> {
    let flags = [
        ("--consent-at", &options.consent_at, ConsentPhase::Consented),
        ("--refused-at", &options.refused_at, ConsentPhase::Refused),
    ];
    let mut points = Vec::new();
    for (flag, value, phase) in flags {
        let Some(text) = value else { continue };
        let since = phases::parse_flag_time(flag, text, first_start).map_err(anyhow::Error::msg)?;
        notes.push(format!("{flag} {text}: {phase} from {}", har_time(since)));
        points.push(PhasePoint {
            change: PhaseChange { phase, since },
            page: None,
        });
    }
    if !points.is_empty() {
        if !page_points.is_empty() {
            notes.push(
                "the HAR's pages name phases too; --consent-at/--refused-at take precedence"
                    .to_owned(),
            );
        }
        return Ok((points, PhaseSource::Flags));
    }
    if !page_points.is_empty() {
        let names: Vec<_> = page_points.iter().map(|p| p.change.phase.name()).collect();
        notes.push(format!("phases from the HAR's pages: {}", names.join(", ")));
        return Ok((page_points, PhaseSource::Pages));
    }
    notes.push(
        "no phase information (no --consent-at/--refused-at, no phase pages): the whole capture \
         counts as consented, so nothing is flagged pre-consent or after-refusal; give \
         --consent-at TIME (and --refused-at TIME) to judge consent timing"
            .to_owned(),
    );
    Ok((points, PhaseSource::Assumed))
}

/// A switch outside the capture puts every entry in one phase: likely a
/// wrong date or offset, worth saying.
fn note_points_outside(
    points: &[PhasePoint],
    first: OffsetDateTime,
    last: OffsetDateTime,
    notes: &mut Vec<String>,
) {
    for point in points.iter().filter(|p| p.page.is_none()) {
        let since = point.change.since;
        if since < first || since > last {
            notes.push(format!(
                "{} from {} lies outside the capture ({} to {}): check the date and UTC offset",
                point.change.phase,
                har_time(since),
                har_time(first),
                har_time(last)
            ));
        }
    }
}

fn source_name(har: &Path) -> String {
    har.file_name().map_or_else(
        || har.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `session.json` says when the sink closed, which for a scan is when the
/// scan finished; the session is the capture, which ended with its last
/// entry. Rewritten the way the sink writes it: temp file, then rename.
fn record_capture_end(out: &Path, end: OffsetDateTime) -> anyhow::Result<()> {
    let mut info = SessionInfo::read(out).map_err(anyhow::Error::msg)?;
    info.ended = Some(end);
    let path = out.join("session.json");
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(&info)?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn print_summary(har: &Path, summary: &ScanSummary) {
    let creator = summary
        .creator
        .as_deref()
        .map_or_else(String::new, |c| format!(" (written by {c})"));
    println!(
        "Scanned {}{creator}: {} entries, {} replayed, {} skipped, {} warnings.",
        har.display(),
        summary.entries,
        summary.flows,
        summary.skipped,
        summary.warning_count
    );
    let violations: Vec<_> = summary
        .violations
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!(
        "Findings: {}{}",
        summary.findings,
        if violations.is_empty() {
            String::new()
        } else {
            format!(" (violations: {})", violations.join(", "))
        }
    );
    for note in &summary.notes {
        println!("Note: {note}");
    }
    if summary.violations.contains_key("over-frequency") {
        println!(
            "Note: over-frequency is judged on replay time, not capture time; it can over-report for captures longer than the --max-rate window."
        );
    }
    for warning in &summary.warnings {
        eprintln!("warning: {warning}");
    }
    if summary.warning_count > summary.warnings.len() {
        eprintln!(
            "warning: ... and {} more",
            summary.warning_count - summary.warnings.len()
        );
    }
}

/// Warnings: the first few kept, all counted.
#[derive(Default)]
struct Problems {
    kept: Vec<String>,
    count: usize,
}

impl Problems {
    fn push(&mut self, problem: Problem) {
        self.count += 1;
        if self.kept.len() < MAX_WARNINGS_KEPT {
            self.kept.push(problem.to_string());
        }
    }
}

/// Counts findings and violations for the summary, as the sinks see them.
#[derive(Clone, Default)]
struct Tally(Arc<Mutex<Counts>>);

#[derive(Clone, Default)]
struct Counts {
    findings: u64,
    violations: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn counts(&self) -> Counts {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn findings(&self) -> u64 {
        self.counts().findings
    }
}

impl Sink for Tally {
    fn name(&self) -> &'static str {
        "scan summary"
    }

    fn handle(&mut self, event: &SessionEvent) -> std::io::Result<()> {
        if let SessionEvent::Finding(finding) = event {
            let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
            counts.findings += 1;
            for violation in &finding.violations {
                *counts.violations.entry(violation.name()).or_default() += 1;
            }
        }
        Ok(())
    }
}
